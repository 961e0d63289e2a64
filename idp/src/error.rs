//! The domain error type, and the single place where errors become HTTP responses
//! (see [`crate::http::errors`] for pages and OAuth JSON).

use crate::crypto::CryptoError;
use crate::store::db::DbError;
use crate::store::ephemeral::EphemeralError;

/// Failures of the infrastructure under the domain logic. These are never the user's fault and
/// become a 500 page or `server_error`, logged without personal data — except when a dependency
/// is down or not answering ([`InfraError::unavailable`]), which becomes a 503 with
/// `Retry-After` (`temporarily_unavailable` for clients). The mapping is in
/// [`crate::http::errors`], once.
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Ephemeral(#[from] EphemeralError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("mail delivery failed: {0}")]
    Mail(String),
    #[error("{0}")]
    Internal(String),
}

impl InfraError {
    /// The dependency it came from, as `/metrics` counts it.
    pub fn dependency(&self) -> &'static str {
        match self {
            InfraError::Db(_) => "database",
            InfraError::Ephemeral(_) => "ephemeral",
            InfraError::Mail(_) => "mail",
            InfraError::Crypto(_) => "crypto",
            InfraError::Internal(_) => "internal",
        }
    }

    /// The dependency that is down or not answering, if that is what this error is: the request
    /// may succeed when tried again, and nothing about it was the person's fault.
    pub fn unavailable(&self) -> Option<&'static str> {
        match self {
            InfraError::Db(e) if e.is_unavailable() => Some("database"),
            InfraError::Ephemeral(e) if e.is_unavailable() => Some("ephemeral store"),
            _ => None,
        }
    }
}

impl From<diesel::result::Error> for InfraError {
    fn from(e: diesel::result::Error) -> Self {
        InfraError::Db(DbError::Query(e))
    }
}

/// Current time in whole seconds since the epoch: the one place the provider reads the clock
/// (clippy refuses `SystemTime::now` elsewhere). Handlers, CLI commands and background loops
/// call it; domain functions take the result as an argument, so expiry rules are testable
/// without sleeping.
#[allow(clippy::disallowed_methods)]
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
