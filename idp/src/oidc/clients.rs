//! Relying applications registered by operators.

use diesel::prelude::*;

use crate::crypto::{constant_time_eq, random_token, sha256_b64};
use crate::error::InfraError;
use crate::store::db::models::ClientRow;
use crate::store::db::schema::clients;
use crate::store::db::DbConn;

/// A registered client.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Client {
    pub client_id: String,
    pub client_name: String,
    /// Public clients (browser or native apps) have no secret and must use PKCE.
    pub public: bool,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// `ES256` (default) or `RS256`.
    pub id_token_signed_response_alg: String,
    #[serde(skip)]
    secret_hash: Option<String>,
    pub created_at: i64,
}

impl Client {
    /// Checks a presented secret in constant time. The secret is a generated 256-bit value, so
    /// a fast hash is enough and keeps the token endpoint fast.
    pub fn secret_matches(&self, presented: &str) -> bool {
        match &self.secret_hash {
            Some(h) => constant_time_eq(sha256_b64(presented.as_bytes()).as_bytes(), h.as_bytes()),
            None => false,
        }
    }

    /// Exact, character-for-character redirect URI matching.
    pub fn has_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|r| r == uri)
    }

    pub fn has_post_logout_redirect_uri(&self, uri: &str) -> bool {
        self.post_logout_redirect_uris.iter().any(|r| r == uri)
    }
}

impl TryFrom<ClientRow> for Client {
    type Error = InfraError;
    fn try_from(r: ClientRow) -> Result<Self, InfraError> {
        let list = |s: &str| {
            serde_json::from_str::<Vec<String>>(s).map_err(|e| InfraError::Internal(format!("client {}: {e}", r.id)))
        };
        Ok(Self {
            redirect_uris: list(&r.redirect_uris)?,
            post_logout_redirect_uris: list(&r.post_logout_redirect_uris)?,
            client_id: r.id,
            client_name: r.name,
            public: r.kind == "public",
            id_token_signed_response_alg: r.id_token_alg,
            secret_hash: r.secret_hash,
            created_at: r.created_at,
        })
    }
}

/// What an operator asks for.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub client_id: Option<String>,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub public: bool,
    pub id_token_alg: String,
}

/// Why a client was not created.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid_redirect_uri: {0}")]
    RedirectUri(String),
    #[error("invalid_client_metadata: {0}")]
    Metadata(String),
    #[error("a client with id `{0}` already exists")]
    Exists(String),
    #[error(transparent)]
    Infra(#[from] InfraError),
}

/// A redirect URI must be absolute, without fragment, and use https — or http on a loopback
/// host, for development and native apps (RFC 8252).
pub fn check_redirect_uri(uri: &str) -> Result<(), String> {
    let u = url::Url::parse(uri).map_err(|e| format!("`{uri}` is not an absolute URL: {e}"))?;
    if u.fragment().is_some() {
        return Err(format!("`{uri}` must not contain a fragment"));
    }
    if uri.len() > 2000 {
        return Err("a redirect URI may be at most 2000 characters".into());
    }
    match u.scheme() {
        "https" => Ok(()),
        "http" => match u.host_str() {
            Some("localhost" | "127.0.0.1" | "[::1]") => Ok(()),
            _ => Err(format!("`{uri}`: plain http is only allowed for localhost")),
        },
        s => Err(format!("`{uri}`: scheme `{s}` is not allowed")),
    }
}

/// Registers a client; returns it and, for confidential clients, the secret (shown once).
pub fn create(conn: &mut DbConn, new: NewClient, now: i64) -> Result<(Client, Option<String>), ClientError> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ClientError::Metadata("the name must be 1–200 characters".into()));
    }
    if new.redirect_uris.is_empty() {
        return Err(ClientError::RedirectUri("at least one redirect URI is required".into()));
    }
    for uri in &new.redirect_uris {
        check_redirect_uri(uri).map_err(ClientError::RedirectUri)?;
    }
    for uri in &new.post_logout_redirect_uris {
        check_redirect_uri(uri).map_err(|e| ClientError::Metadata(format!("post_logout_redirect_uri {e}")))?;
    }
    if !matches!(new.id_token_alg.as_str(), "ES256" | "RS256") {
        return Err(ClientError::Metadata("the ID token algorithm must be ES256 or RS256".into()));
    }
    let id = match new.client_id {
        Some(id) => {
            if id.is_empty() || id.len() > 100 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            {
                return Err(ClientError::Metadata("a client id must be 1–100 letters, digits, `.`, `_` or `-`".into()));
            }
            id
        }
        None => random_token(16),
    };
    let secret = (!new.public).then(|| random_token(32));
    let row = ClientRow {
        id: id.clone(),
        name: name.to_string(),
        secret_hash: secret.as_deref().map(|s| sha256_b64(s.as_bytes())),
        kind: if new.public { "public" } else { "confidential" }.into(),
        redirect_uris: serde_json::to_string(&new.redirect_uris).map_err(|e| InfraError::Internal(e.to_string()))?,
        post_logout_redirect_uris: serde_json::to_string(&new.post_logout_redirect_uris)
            .map_err(|e| InfraError::Internal(e.to_string()))?,
        id_token_alg: new.id_token_alg,
        created_at: now,
    };
    match diesel::insert_into(clients::table).values(&row).execute(conn) {
        Ok(_) => {}
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {
            return Err(ClientError::Exists(id))
        }
        Err(e) => return Err(InfraError::from(e).into()),
    }
    Ok((row.try_into()?, secret))
}

/// A client by id.
pub fn get(conn: &mut DbConn, id: &str) -> Result<Option<Client>, InfraError> {
    clients::table.find(id).select(ClientRow::as_select()).first(conn).optional()?.map(Client::try_from).transpose()
}

/// Every client, oldest first.
pub fn list(conn: &mut DbConn) -> Result<Vec<Client>, InfraError> {
    clients::table
        .order((clients::created_at.asc(), clients::id.asc()))
        .select(ClientRow::as_select())
        .load(conn)?
        .into_iter()
        .map(Client::try_from)
        .collect()
}

/// Removes a client; returns whether it existed.
pub fn delete(conn: &mut DbConn, id: &str) -> Result<bool, InfraError> {
    Ok(diesel::delete(clients::table.find(id)).execute(conn)? > 0)
}
