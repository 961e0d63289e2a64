//! Everything a request handler or CLI command needs, built once from the configuration.

use std::sync::Arc;

use crate::authn::card::trust::CardTrust;
use crate::authn::throttle::Throttle;
use crate::config::Config;
use crate::crypto::DataProtector;
use crate::error::{now, InfraError};
use crate::mail::Mailer;
use crate::oidc::client_cache::ClientCache;
use crate::oidc::keys::{self, KeyPolicy, KeySet};
use crate::store::db::Db;
use crate::store::ephemeral::Ephemeral;
use crate::templates::Templates;

/// Shared application state; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub eph: Ephemeral,
    pub protector: Arc<DataProtector>,
    pub keys: Arc<KeySet>,
    pub mailer: Mailer,
    pub templates: Arc<Templates>,
    /// Who runs the site; its logo and favicon are served from here.
    pub site: Arc<crate::site::Site>,
    pub throttle: Throttle,
    /// Recently used clients and their key sets, so the token endpoint rarely asks the database.
    pub client_cache: Arc<ClientCache>,
    /// Outgoing HTTP to the provider's own peers (CAs, verification services).
    pub http: reqwest::Client,
    /// Outgoing HTTP to clients' URLs (`jwks_uri`, back-channel logout), internal addresses
    /// refused for third parties.
    pub client_http: crate::outbound::ClientHttp,
    /// The discovery document, serialized once: it only changes with the configuration.
    pub discovery: Arc<String>,
    /// Card certificate validation and revocation, when trust anchors are configured.
    pub card: Option<Arc<CardTrust>>,
    /// The certificate authority's online ownership service, when `certificates.ownership_verifier_url` is set.
    pub ownership: Option<Arc<crate::accounts::ownership::OnlineOwnership>>,
    /// Set once the process has been asked to stop: `/readyz` answers 503 from then on.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
}

/// The parts the CLI needs (no ephemeral store, no keys).
pub struct Core {
    pub config: Config,
    pub db: Db,
    pub protector: DataProtector,
    pub mailer: Mailer,
}

impl Core {
    /// Opens storage (applying migrations) and the data key.
    pub fn open(config: Config) -> Result<Self, InfraError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| InfraError::Internal(format!("data_dir {}: {e}", config.data_dir.display())))?;
        let protector = DataProtector::load_or_create(&config.data_key_file())?;
        let db = Db::connect_with(
            config.database_url().expose(),
            config.database.pool_size,
            crate::store::db::Timeouts::from_config(&config.database),
        )?;
        db.migrate()?;
        let mailer = Mailer::from_config(&config)?;
        Ok(Self { config, db, protector, mailer })
    }
}

impl AppState {
    /// How many clones of this state are alive: every clone shares `draining`, so its count is
    /// theirs. The server waits on it at exit (see `cli::serve`).
    pub fn holders(&self) -> usize {
        Arc::strong_count(&self.draining)
    }

    /// Builds the server state: storage, keys, ephemeral store, templates.
    pub async fn build(config: Config) -> Result<Self, InfraError> {
        let core = tokio::task::spawn_blocking(move || Core::open(config))
            .await
            .map_err(|e| InfraError::Internal(e.to_string()))??;
        let Core { config, db, protector, mailer } = core;
        let protector = Arc::new(protector);
        let p = protector.clone();
        let policy = KeyPolicy::from_config(&config);
        let keys = Arc::new(db.run_long(move |c| KeySet::load_or_generate(c, &p, policy, now())).await?);
        // Rotations are made by the CLI, possibly on another node: every node reloads.
        keys::spawn_reloader(&keys, db.clone(), protector.clone(), config.keys.reload_interval);
        let eph =
            Ephemeral::open_with(config.cache.url.expose(), &config.cache.key_prefix, config.cache.timeout).await?;
        let throttle = Throttle {
            per_account: config.login.max_failures_per_account,
            per_address: config.login.max_failures_per_address,
            window: config.login.throttle_window,
            delay: config.login.throttle_delay,
            max_delay: config.login.throttle_max_delay,
            reset_after: config.login.throttle_forget_after,
            protector: protector.clone(),
        };
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| InfraError::Internal(format!("HTTP client: {e}")))?;
        let allow_internal = config.outbound.allow_private_addresses;
        if allow_internal {
            tracing::warn!(
                "outbound.allow_private_addresses is on: third-party clients' URLs may reach internal addresses; \
                 never run like this outside tests"
            );
        }
        let client_http = crate::outbound::ClientHttp::new(http.clone(), allow_internal)
            .map_err(|e| InfraError::Internal(format!("HTTP client: {e}")))?;
        let card = CardTrust::from_config(&config, http.clone())
            .map_err(|e| InfraError::Internal(format!("certificates: {e}")))?
            .map(Arc::new);
        if let Some(card) = &card {
            // Before serving: strict mode would refuse every card until the CRLs are in.
            let from_cache = card.load_crls(&db).await;
            card.spawn_refresher(db.clone(), &from_cache);
        }
        let discovery = Arc::new(crate::oidc::discovery::document(&config.issuer, card.is_some()).to_string());
        let site = crate::site::Site::load(&config.site)?;
        Ok(Self {
            discovery,
            card,
            ownership: crate::accounts::ownership::OnlineOwnership::from_config(&config.certificates)?.map(Arc::new),
            config: Arc::new(config),
            db,
            eph,
            protector,
            keys,
            mailer,
            templates: Arc::new(Templates::for_site(site.clone())?),
            site: Arc::new(site),
            throttle,
            client_cache: Arc::new(ClientCache::default()),
            http,
            client_http,
            draining: Arc::default(),
        })
    }
}
