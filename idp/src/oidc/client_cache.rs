//! Caches of clients and of their key sets, shared by every endpoint that looks a client up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;

use super::clients::{self, Client};
use crate::error::InfraError;
use crate::expiring::ExpiringMap;
use crate::outbound::ClientHttp;
use crate::store::db::Db;

/// How long a looked-up client is reused before asking the database again. Client changes made
/// on another node (or by the CLI) take effect within this time.
const CLIENT_CACHE_TTL: Duration = Duration::from_secs(5);
/// How long a fetched `jwks_uri` document is reused.
const JWKS_CACHE_TTL: Duration = Duration::from_secs(300);
/// Entries each cache keeps before it starts over (bounds memory under a flood of ids).
const CACHE_MAX: usize = 10_000;
/// Caches of clients and client key sets, so the token endpoint rarely touches the database.
pub struct ClientCache {
    clients: ExpiringMap<String, Arc<Client>, Instant>,
    jwks: ExpiringMap<String, Arc<JwkSet>, Instant>,
}

impl Default for ClientCache {
    fn default() -> Self {
        Self { clients: ExpiringMap::new(CACHE_MAX), jwks: ExpiringMap::new(CACHE_MAX) }
    }
}

impl ClientCache {
    /// A client by id, from the cache or the database.
    pub async fn get(&self, db: &Db, id: &str) -> Result<Option<Arc<Client>>, InfraError> {
        if let Some(c) = self.clients.get(&id.to_string(), Instant::now()) {
            return Ok(Some(c));
        }
        self.load(db, id).await
    }

    /// A client by id from the database, replacing what the cache held.
    pub async fn load(&self, db: &Db, id: &str) -> Result<Option<Arc<Client>>, InfraError> {
        let key = id.to_string();
        let found = db.run(move |c| clients::get(c, &key)).await?.map(Arc::new);
        if let Some(c) = &found {
            self.clients.put(id.to_string(), c.clone(), Instant::now() + CLIENT_CACHE_TTL);
        }
        Ok(found)
    }

    /// Forgets a client (after a change made by this node).
    pub fn forget(&self, id: &str) {
        self.clients.forget(&id.to_string());
    }

    /// The client's registered public keys: its `jwks`, or its `jwks_uri` document (fetched
    /// through the outbound rules, cached for a few minutes). `None` if it has none or they
    /// cannot be had now.
    pub async fn jwks_for(&self, outbound: &ClientHttp, client: &Client) -> Option<Arc<JwkSet>> {
        if let Some(jwks) = &client.jwks {
            return serde_json::from_value(jwks.clone()).ok().map(Arc::new);
        }
        let uri = client.jwks_uri.as_ref()?;
        if let Some(set) = self.jwks.get(uri, Instant::now()) {
            return Some(set);
        }
        let http = match outbound.for_url(client.third_party(), uri) {
            Ok(http) => http,
            Err(e) => {
                tracing::warn!(client = %client.client_id, error = %e, "jwks_uri not fetched");
                return None;
            }
        };
        let response = http.get(uri).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let bytes = crate::outbound::read_limited(response, 64 * 1024).await.ok()?;
        let set: Arc<JwkSet> = Arc::new(serde_json::from_slice(&bytes).ok()?);
        self.jwks.put(uri.clone(), set.clone(), Instant::now() + JWKS_CACHE_TTL);
        Some(set)
    }
}
