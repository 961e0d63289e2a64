//! The token endpoint's errors (RFC 6749 §5.2), with what each means to a client.

use super::client_auth::ClientAuthError;
use super::dpop::DpopError;
use super::resource::InvalidTarget;
use crate::error::InfraError;

/// An OAuth error of the token endpoint (RFC 6749 §5.2).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    #[error("invalid_client: {description}")]
    InvalidClient { description: String, basic: bool },
    #[error("invalid_grant: {0}")]
    InvalidGrant(String),
    #[error("invalid_scope: {0}")]
    InvalidScope(String),
    /// RFC 8707 §2: the `resource` asked for is not one this provider issues tokens for.
    #[error("invalid_target: {0}")]
    InvalidTarget(String),
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(String),
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    /// A refused DPoP proof (RFC 9449 §5): `invalid_dpop_proof` or `use_dpop_nonce`.
    #[error("{0}")]
    Dpop(DpopError),
    /// A pushed authorization request refused as `/authorize` would refuse it (RFC 9126 §2.3),
    /// with the authorization endpoint's error code.
    #[error("{error}: {description}")]
    Authorization { error: &'static str, description: String },
    #[error(transparent)]
    Server(#[from] InfraError),
}

impl From<InvalidTarget> for TokenError {
    fn from(e: InvalidTarget) -> Self {
        TokenError::InvalidTarget(e.0)
    }
}

impl From<DpopError> for TokenError {
    fn from(e: DpopError) -> Self {
        match e {
            DpopError::Infra(e) => TokenError::Server(e),
            e => TokenError::Dpop(e),
        }
    }
}

impl From<ClientAuthError> for TokenError {
    fn from(e: ClientAuthError) -> Self {
        match e {
            ClientAuthError::InvalidRequest(d) => TokenError::InvalidRequest(d),
            ClientAuthError::InvalidClient { description, basic } => TokenError::InvalidClient { description, basic },
            ClientAuthError::Infra(e) => TokenError::Server(e),
        }
    }
}

impl TokenError {
    /// The RFC 6749 error code.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::InvalidRequest(_) => "invalid_request",
            TokenError::InvalidClient { .. } => "invalid_client",
            TokenError::InvalidGrant(_) => "invalid_grant",
            TokenError::InvalidScope(_) => "invalid_scope",
            TokenError::InvalidTarget(_) => "invalid_target",
            TokenError::UnauthorizedClient(_) => "unauthorized_client",
            TokenError::UnsupportedGrantType => "unsupported_grant_type",
            TokenError::Dpop(e) => e.code(),
            TokenError::Authorization { error, .. } => error,
            TokenError::Server(_) => "server_error",
        }
    }
}
