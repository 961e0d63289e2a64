//! The domain error type, and the single place where errors become HTTP responses
//! (see [`crate::http::errors`] for pages and OAuth JSON).

use crate::crypto::CryptoError;
use crate::store::db::DbError;
use crate::store::ephemeral::EphemeralError;

/// Failures of the infrastructure under the domain logic. These are never the user's fault and
/// become a 500 page or `server_error`, logged without personal data.
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

impl From<diesel::result::Error> for InfraError {
    fn from(e: diesel::result::Error) -> Self {
        InfraError::Db(DbError::Query(e))
    }
}

/// Current time in whole seconds since the epoch; domain functions take it as an argument so
/// expiry rules are testable without sleeping.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
