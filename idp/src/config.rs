//! One typed configuration for the server and every CLI command.
//!
//! Layers, later ones winning: built-in defaults (the embedded mode), an optional TOML file
//! (`--config FILE` or `IDP_CONFIG`), then `IDP_<KEY>` environment variables with `__` for
//! nesting (`IDP_HTTP__BIND=0.0.0.0:8080`). Unknown keys are refused with their name, so a typo
//! never silently falls back to a default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// A URL that may carry credentials (`postgres://user:password@…`, `redis://:password@…`,
/// `smtp://user:password@…`, or a `password=` query parameter). Its `Debug`, `Display` and
/// `Serialize` forms show the URL with the password replaced by `***`, so the effective
/// configuration can be logged and errors can name the URL; only [`expose`](Self::expose) gives
/// the real value, to the code that connects.
#[derive(Clone, Default)]
pub struct SecretUrl(SecretString);

impl SecretUrl {
    pub fn new(url: &str) -> Self {
        Self(SecretString::from(url))
    }

    /// The URL with its credentials, for connecting only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }

    /// Whether the URL starts with `prefix` (a scheme such as `sqlite://`); reveals nothing else.
    pub fn starts_with(&self, prefix: &str) -> bool {
        self.expose().starts_with(prefix)
    }

    /// The URL with any password (user-info or query parameter) replaced by `***`; unchanged
    /// when it holds none, and wholly hidden when it cannot be parsed.
    pub fn redacted(&self) -> String {
        let raw = self.expose();
        if raw.is_empty() || !raw.contains('@') && !raw.contains("pass") {
            return raw.to_string();
        }
        let Ok(mut u) = url::Url::parse(raw) else { return "[redacted]".into() };
        if u.password().is_some() && u.set_password(Some("***")).is_err() {
            return "[redacted]".into();
        }
        let sensitive = |k: &str| k.to_ascii_lowercase().contains("pass");
        if u.query_pairs().any(|(k, _)| sensitive(&k)) {
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let v = if sensitive(&k) { "***".to_string() } else { v.into_owned() };
                    (k.into_owned(), v)
                })
                .collect();
            u.query_pairs_mut().clear().extend_pairs(pairs);
        }
        u.to_string()
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl std::fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for SecretUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Only the built-in defaults are serialized (as figment's first layer), and they hold no
        // credentials; anything else serialized comes out redacted.
        s.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for SecretUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self(SecretString::deserialize(d)?))
    }
}

#[cfg(test)]
mod secret_url_tests {
    use super::*;

    #[test]
    fn urls_with_credentials_never_show_the_password() {
        for (url, shown) in [
            ("postgres://idp:S3cret-pw@db.internal:5432/idp", "postgres://idp:***@db.internal:5432/idp"),
            ("redis://:S3cret-pw@cache:6379/0", "redis://:***@cache:6379/0"),
            (
                "smtp://mailer:S3cret-pw@smtp.example:587?tls=required",
                "smtp://mailer:***@smtp.example:587?tls=required",
            ),
            ("postgres://db/idp?user=idp&password=S3cret-pw", "postgres://db/idp?user=idp&password=***"),
            ("memory://", "memory://"),
            ("sqlite://idp-data/idp.sqlite3", "sqlite://idp-data/idp.sqlite3"),
            ("", ""),
        ] {
            let s = SecretUrl::new(url);
            assert_eq!(s.redacted(), shown);
            assert_eq!(s.expose(), url);
            for form in [format!("{s:?}"), s.to_string(), serde_json::to_string(&s).unwrap()] {
                assert!(!form.contains("S3cret"), "{form}");
            }
        }
        let mut config = Config::default();
        config.database.url = SecretUrl::new("postgres://idp:S3cret-pw@db/idp");
        config.cache.url = SecretUrl::new("redis://:S3cret-pw@cache:6379");
        config.mail.smtp_url = SecretUrl::new("smtps://u:S3cret-pw@smtp.example");
        assert!(!format!("{config:?}").contains("S3cret"));
        assert!(!format!("{config:#?}").contains("S3cret"));
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The issuer identifier: the base URL every endpoint hangs off.
    pub issuer: String,
    /// Folder for the embedded defaults: SQLite file, mail outbox, data-protection key.
    pub data_dir: PathBuf,
    pub http: HttpConfig,
    pub database: DatabaseConfig,
    pub cache: CacheConfig,
    pub mail: MailConfig,
    pub secrets: SecretsConfig,
    pub login: LoginConfig,
    pub tokens: TokenConfig,
    pub keys: KeysConfig,
    pub log: LogConfig,
    pub certificates: CertificatesConfig,
    pub card_login: CardLoginConfig,
    pub outbound: OutboundConfig,
    pub cleanup: CleanupConfig,
    pub audit: AuditConfig,
    pub metrics: MetricsConfig,
    pub forgot: ForgotConfig,
    pub site: SiteConfig,
    pub links: LinksConfig,
}

/// The official pages the site sends people to when their computer lacks something (the
/// environment check, the login page, the help pages and the wrong-PIN message). They belong to
/// other agencies and move from time to time, so they are configuration, with today's addresses
/// as defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinksConfig {
    /// MOICA's page of the cross-platform web component (跨平台網頁元件, HiPKI Local Sign Server).
    pub card_component: String,
    /// MOICA's downloads: HiCOS 卡片管理工具, the card and reader driver.
    pub card_driver: String,
    /// NHI's page of the health-card component, with its own environment check.
    pub health_component: String,
    /// MOICA's page for unlocking a citizen-certificate card locked by three wrong PINs.
    pub moica_unblock: String,
    /// GCA's page for unlocking an agency-certificate card.
    pub gca_unblock: String,
}

impl Default for LinksConfig {
    fn default() -> Self {
        Self {
            card_component: "https://moica.nat.gov.tw/rac_plugin.html".into(),
            card_driver: "https://moica.nat.gov.tw/download_1.html".into(),
            health_component: "https://cloudicweb.nhi.gov.tw/cloudic/system/SMC/mEventesting.htm".into(),
            moica_unblock: "http://moica.nat.gov.tw/html/unblockcard.htm#2".into(),
            gca_unblock: "https://gcaweb.nat.gov.tw/gcacms/04-04.html".into(),
        }
    }
}

/// 忘記密碼 on the sign-in page: how often a one-time password may be asked for. Every request
/// counts, whether or not it matched, so the limits say nothing about who is registered.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForgotConfig {
    /// Requests per person (national ID) and per e-mail address allowed without waiting; each
    /// further one waits `delay`, doubling up to `max_delay`.
    pub per_person: u64,
    /// Requests per client address within `window`.
    pub per_address: u64,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    #[serde(with = "humantime_serde")]
    pub delay: Duration,
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
    /// A person's requests are forgotten after this long without another.
    #[serde(with = "humantime_serde")]
    pub forget_after: Duration,
}

impl Default for ForgotConfig {
    fn default() -> Self {
        Self {
            per_person: 3,
            per_address: 20,
            window: Duration::from_secs(3600),
            delay: Duration::from_secs(15 * 60),
            max_delay: Duration::from_secs(24 * 3600),
            forget_after: Duration::from_secs(24 * 3600),
        }
    }
}

/// Who runs the site, as every page names them: the agency in the header and footer, its logo
/// and favicon, and the helpdesk people are sent to where the site cannot help (作法三). Each
/// fact is one setting, read by every page that shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiteConfig {
    /// The agency running the site, in Traditional Chinese (header, footer, page titles).
    pub agency_name: String,
    /// The same agency's English name, for English pages.
    pub agency_name_en: String,
    /// An image file (SVG, PNG, JPEG, GIF or WebP, by its extension) shown in the header;
    /// empty for the built-in emblem. Read at start: a missing or unreadable file stops it.
    pub logo_file: PathBuf,
    /// The browser-tab icon (ICO, SVG or PNG); empty for the built-in one.
    pub favicon_file: PathBuf,
    /// The helpdesk's telephone number, as shown; empty (the default) to show none.
    pub helpdesk_phone: String,
    /// When the helpdesk answers, as shown (e.g. `週一至週五 08:30–17:30`); empty to show none.
    pub helpdesk_hours: String,
    /// The helpdesk's e-mail address; empty to show none.
    pub helpdesk_email: String,
}

impl Default for SiteConfig {
    fn default() -> Self {
        Self {
            agency_name: "行政院人事行政總處".into(),
            agency_name_en: "Directorate-General of Personnel Administration, Executive Yuan".into(),
            logo_file: PathBuf::new(),
            favicon_file: PathBuf::new(),
            helpdesk_phone: String::new(),
            helpdesk_hours: String::new(),
            helpdesk_email: String::new(),
        }
    }
}

/// The periodic clean-up of expired and finished rows (see `cleanup`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CleanupConfig {
    /// How often a node purges; one node at a time does it.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// How long finished or given-up back-channel deliveries stay on record.
    #[serde(with = "humantime_serde")]
    pub outbox_keep: Duration,
}

impl Default for CleanupConfig {
    fn default() -> Self {
        Self { interval: Duration::from_secs(3600), outbox_keep: Duration::from_secs(7 * 24 * 3600) }
    }
}

/// The audit log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Audit events older than this are purged by the clean-up. The default, 400 days, keeps
    /// a whole year for the yearly audit with a month to spare (see the README).
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self { retention: Duration::from_secs(400 * 24 * 3600) }
    }
}

/// The Prometheus `/metrics` endpoint, on a listener of its own so it is never public.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address the metrics listener binds to, e.g. `127.0.0.1:9090`; empty means off.
    pub bind: String,
}

/// Requests the provider makes to addresses clients registered.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// Let dynamically registered clients' `jwks_uri` and `backchannel_logout_uri` reach
    /// loopback, private and link-local addresses. For tests on one machine only: it opens the
    /// provider to server-side request forgery, so it is off by default and logged at warn when on.
    pub allow_private_addresses: bool,
}

/// The TLS client-certificate channel of card sign-in: a separate listener that asks for a
/// client certificate (the main site never does). Empty `bind` means the channel is off.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct CardLoginConfig {
    /// Address the TLS listener binds to, e.g. `127.0.0.1:8443`; empty means off.
    pub bind: String,
    /// PEM server certificate (chain) and private key; when both are empty a self-signed one
    /// is generated into `<data_dir>/card-tls/` on first start.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// The listener's base URL as browsers reach it; empty means `https://<bind>`.
    pub public_url: String,
}

impl CardLoginConfig {
    /// Whether the TLS listener is configured.
    pub fn enabled(&self) -> bool {
        !self.bind.is_empty()
    }

    /// The listener's base URL, without a trailing slash.
    pub fn public_url(&self) -> String {
        if self.public_url.is_empty() {
            format!("https://{}", self.bind)
        } else {
            self.public_url.trim_end_matches('/').to_string()
        }
    }
}

/// Card sign-in: which certificate authorities to trust for which card kind, and revocation.
/// With no anchors configured, card sign-in is off and the login page does not offer it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CertificatesConfig {
    /// PEM files of the citizen-certificate CAs (every current MOICA generation).
    pub citizen_trust_anchors: Vec<PathBuf>,
    /// PEM files of the agency-certificate CAs (GCA).
    pub agency_trust_anchors: Vec<PathBuf>,
    /// PEM files of further CA certificates for path building.
    pub intermediates: Vec<PathBuf>,
    /// CRL files (DER or PEM) of the issuing CAs.
    pub crl_files: Vec<PathBuf>,
    /// CRL addresses (http or https) of the issuing CAs: downloaded at start and refreshed in the
    /// background; the last good copy is kept under `<data_dir>/crl-cache` for restarts while the
    /// CA's site is down.
    pub crl_urls: Vec<String>,
    /// How often the CRLs of `crl_urls` are fetched again; sooner when one reaches its
    /// `nextUpdate`, and a failed download is retried after a tenth of this.
    #[serde(with = "humantime_serde")]
    pub crl_refresh_interval: Duration,
    /// OCSP responders, each for the certificates that one issuing CA issued.
    pub ocsp_responders: Vec<OcspResponderConfig>,
    /// How long to wait for an OCSP responder or the ownership service.
    #[serde(with = "humantime_serde")]
    pub fetch_timeout: Duration,
    /// How long one CRL download may take in all (complete CRLs are large).
    #[serde(with = "humantime_serde")]
    pub crl_download_timeout: Duration,
    /// The certificate authority's online service that tells whether a certificate belongs to a
    /// national ID; empty means the same-person check uses the certificate alone (name and the
    /// last four characters of the national ID).
    pub ownership_verifier_url: String,
    /// File holding the bearer credential for `ownership_verifier_url` (deployment-specific).
    pub ownership_verifier_token_file: PathBuf,
    /// `strict` (default: a missing or stale CRL refuses the login) or `best-effort`.
    pub revocation: String,
    /// Policy OIDs that mark a test certificate, besides the GTestCA issuer name.
    pub test_policy_oids: Vec<String>,
    /// NHI's health-card verification service; empty means health-card sign-in is off.
    pub health_verifier_url: String,
    /// Origin of NHI's local health-card component the login page gets the card token from.
    pub health_component_url: String,
    /// Origin of the local card component the login page talks to; empty means
    /// `http://localhost:61161` (HiPKI Local Sign Server).
    pub component_url: String,
    /// Addresses (or networks, `10.0.0.0/24`) of the TLS-terminating reverse proxies in front
    /// of the IdP: only from them is `X-Forwarded-For` believed, and the certificate header
    /// named by `proxy_header` read at `/card/proxy-login`.
    pub trusted_proxies: Vec<String>,
    /// The one header the trusted proxies put the client certificate in: `x-ssl-client-cert`
    /// (nginx's `$ssl_client_escaped_cert`), `client-cert` (RFC 9440) or `none`. No default:
    /// with `trusted_proxies` set it must be named, so a proxy that passes a client-written
    /// header of the other kind cannot sign anyone in.
    pub proxy_header: String,
}

/// One OCSP responder and the issuing CA it answers for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OcspResponderConfig {
    /// PEM file of the issuing CA whose certificates this responder answers for.
    pub issuer: PathBuf,
    /// The responder's address, e.g. `http://ocsp.grca.nat.gov.tw/OCSP`.
    pub url: String,
}

impl Default for CertificatesConfig {
    fn default() -> Self {
        CertificatesConfig {
            citizen_trust_anchors: Vec::new(),
            agency_trust_anchors: Vec::new(),
            intermediates: Vec::new(),
            crl_files: Vec::new(),
            crl_urls: Vec::new(),
            crl_refresh_interval: Duration::from_secs(3600),
            ocsp_responders: Vec::new(),
            fetch_timeout: Duration::from_secs(5),
            crl_download_timeout: Duration::from_secs(120),
            ownership_verifier_url: String::new(),
            ownership_verifier_token_file: PathBuf::new(),
            revocation: String::new(),
            test_policy_oids: Vec::new(),
            health_verifier_url: String::new(),
            health_component_url: String::new(),
            component_url: String::new(),
            trusted_proxies: Vec::new(),
            proxy_header: String::new(),
        }
    }
}

impl CertificatesConfig {
    /// The local card component's origin.
    pub fn component_url(&self) -> &str {
        if self.component_url.is_empty() {
            "http://localhost:61161"
        } else {
            self.component_url.trim_end_matches('/')
        }
    }

    /// NHI's local health-card component's origin; empty means `http://localhost:59001`.
    pub fn health_component_url(&self) -> &str {
        if self.health_component_url.is_empty() {
            "http://localhost:59001"
        } else {
            self.health_component_url.trim_end_matches('/')
        }
    }

    /// Whether health-card sign-in is configured.
    pub fn health_enabled(&self) -> bool {
        !self.health_verifier_url.is_empty()
    }

    /// Whether card sign-in is configured at all.
    pub fn enabled(&self) -> bool {
        !self.citizen_trust_anchors.is_empty() || !self.agency_trust_anchors.is_empty()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address the HTTP listener binds to.
    pub bind: String,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// After SIGTERM, how long `/readyz` answers 503 while requests are still taken, so a
    /// balancer polling readiness stops sending traffic before the listener closes.
    #[serde(with = "humantime_serde")]
    pub drain_delay: Duration,
    /// After the drain, how long requests in flight may take to finish before the process exits.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
}

impl HttpConfig {
    /// `shutdown_timeout` in the whole seconds actix counts in, rounded up.
    pub fn shutdown_secs(&self) -> u64 {
        self.shutdown_timeout.as_millis().div_ceil(1000) as u64
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://…`; empty means `sqlite://<data_dir>/idp.sqlite3`.
    pub url: SecretUrl,
    /// Connections in the pool.
    pub pool_size: u32,
    /// Longest wait to open one PostgreSQL connection (libpq `connect_timeout`, whole seconds,
    /// at least 2 s: libpq's own minimum).
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest wait for a healthy connection from the pool (its check by the server included).
    #[serde(with = "humantime_serde")]
    pub checkout_timeout: Duration,
    /// Longest a request waits for one piece of PostgreSQL work once it holds a connection
    /// (time in that work, CPU included: it bounds a server that stops answering mid-request).
    #[serde(with = "humantime_serde")]
    pub query_timeout: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// `memory://` (in-process) or `redis://…`.
    pub url: SecretUrl,
    /// Prefix for every key, so several deployments can share one Redis.
    pub key_prefix: String,
    /// Longest wait for Redis: to connect, and for each command's answer.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// Folder where messages are written as `.eml` files when no SMTP server is set;
    /// empty means `<data_dir>/outbox`.
    pub outbox_dir: PathBuf,
    /// `smtp://host:port`, `smtps://…` or `smtp://…?tls=required`; empty means the outbox.
    pub smtp_url: SecretUrl,
    /// The From address of every message.
    pub from: String,
    /// PEM file of extra root certificates for the SMTP server's TLS certificate (an internal
    /// mail relay with its own CA); empty means only the built-in Mozilla roots.
    pub tls_ca_file: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// File holding the 32-byte data-protection key (national IDs and private keys at rest);
    /// empty means `<data_dir>/data.key`, created on first use. Every node must share it.
    pub data_key_file: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginConfig {
    /// How long a one-time password issued by the helpdesk or HR stays usable.
    #[serde(with = "humantime_serde")]
    pub one_time_password_ttl: Duration,
    /// How long an e-mail verification link works (it is mailed at activation and on every
    /// change of address, and on request from 我的專區).
    #[serde(with = "humantime_serde")]
    pub email_verification_ttl: Duration,
    /// How long an SSO session lasts.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// How long a login transaction (from authorize to finished sign-in) may take.
    #[serde(with = "humantime_serde")]
    pub transaction_ttl: Duration,
    /// Sign-in attempts per person allowed without waiting; each further one waits
    /// `throttle_delay`, doubling each time up to `throttle_max_delay` (no permanent lock).
    pub max_failures_per_account: u64,
    /// Failed sign-ins allowed per client address within `throttle_window`.
    pub max_failures_per_address: u64,
    /// The fixed window of the per-address count.
    #[serde(with = "humantime_serde")]
    pub throttle_window: Duration,
    /// The first wait once a person's free attempts are used up.
    #[serde(with = "humantime_serde")]
    pub throttle_delay: Duration,
    /// The longest wait between attempts for one person.
    #[serde(with = "humantime_serde")]
    pub throttle_max_delay: Duration,
    /// A person's failed attempts are forgotten after this long without another attempt.
    #[serde(with = "humantime_serde")]
    pub throttle_forget_after: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenConfig {
    #[serde(with = "humantime_serde")]
    pub id_token_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub access_token_ttl: Duration,
    /// Lifetime of a refresh token (`offline_access`); each use rotates it.
    #[serde(with = "humantime_serde")]
    pub refresh_token_ttl: Duration,
    /// Lifetime of an authorization code; the specification asks for at most ten minutes,
    /// we keep it at one.
    #[serde(with = "humantime_serde")]
    pub code_ttl: Duration,
    /// How long a pushed authorization request's `request_uri` may be used (RFC 9126 §2.2: short,
    /// since it is used once, right after the push).
    #[serde(with = "humantime_serde")]
    pub request_uri_ttl: Duration,
    /// How far a DPoP proof's `iat` may lie from now, either way (RFC 9449 §11.1); its `jti` is
    /// remembered for this window, on every node.
    #[serde(with = "humantime_serde")]
    pub dpop_proof_window: Duration,
    /// Whether DPoP proofs must carry the server's nonce (RFC 9449 §8), so a proof cannot be
    /// made in advance of the moment it is used.
    pub dpop_require_nonce: bool,
}

/// Signing-key rotation (see `oidc::keys`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// How long a key made by `idp keys rotate` is published before it signs, so every node
    /// has loaded it and relying parties' cached JWKS (`/jwks` is cached 60 s) contain it
    /// before the first token signed with it arrives.
    #[serde(with = "humantime_serde")]
    pub activation_delay: Duration,
    /// How often each node reloads the keys from the database, to pick up rotations made by
    /// the CLI or another node.
    #[serde(with = "humantime_serde")]
    pub reload_interval: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter such as `info` or `idp=debug`.
    pub level: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            issuer: "http://127.0.0.1:8080".into(),
            data_dir: PathBuf::from("idp-data"),
            http: HttpConfig::default(),
            database: DatabaseConfig::default(),
            cache: CacheConfig::default(),
            mail: MailConfig::default(),
            secrets: SecretsConfig::default(),
            login: LoginConfig::default(),
            tokens: TokenConfig::default(),
            keys: KeysConfig::default(),
            log: LogConfig::default(),
            certificates: CertificatesConfig::default(),
            card_login: CardLoginConfig::default(),
            outbound: OutboundConfig::default(),
            cleanup: CleanupConfig::default(),
            audit: AuditConfig::default(),
            metrics: MetricsConfig::default(),
            forgot: ForgotConfig::default(),
            site: SiteConfig::default(),
            links: LinksConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            workers: 0,
            drain_delay: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: SecretUrl::default(),
            pool_size: 8,
            connect_timeout: Duration::from_secs(2),
            checkout_timeout: Duration::from_secs(1),
            query_timeout: Duration::from_secs(5),
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { url: SecretUrl::new("memory://"), key_prefix: "idp:".into(), timeout: Duration::from_secs(1) }
    }
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            outbox_dir: PathBuf::new(),
            smtp_url: SecretUrl::default(),
            from: "人事服務網 <no-reply@idp.invalid>".into(),
            tls_ca_file: PathBuf::new(),
        }
    }
}

impl Default for SecretsConfig {
    fn default() -> Self {
        Self { data_key_file: PathBuf::new() }
    }
}

impl Default for LoginConfig {
    fn default() -> Self {
        Self {
            one_time_password_ttl: Duration::from_secs(72 * 3600),
            email_verification_ttl: Duration::from_secs(24 * 3600),
            session_ttl: Duration::from_secs(8 * 3600),
            transaction_ttl: Duration::from_secs(30 * 60),
            max_failures_per_account: 5,
            max_failures_per_address: 50,
            throttle_window: Duration::from_secs(15 * 60),
            throttle_delay: Duration::from_secs(2),
            throttle_max_delay: Duration::from_secs(15 * 60),
            throttle_forget_after: Duration::from_secs(12 * 3600),
        }
    }
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            id_token_ttl: Duration::from_secs(3600),
            access_token_ttl: Duration::from_secs(3600),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            code_ttl: Duration::from_secs(60),
            request_uri_ttl: Duration::from_secs(60),
            dpop_proof_window: Duration::from_secs(60),
            dpop_require_nonce: true,
        }
    }
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self { activation_delay: Duration::from_secs(10 * 60), reload_interval: Duration::from_secs(30) }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: "text".into(), level: "info".into() }
    }
}

/// A configuration that could not be loaded; the message names the offending key.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Loads defaults, then the file (if any), then `IDP_*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError(format!("configuration file {} does not exist", file.display())));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment.merge(Env::prefixed("IDP_").ignore(&["CONFIG"]).split("__"));
        let config: Config = figment.extract().map_err(|e| ConfigError(describe(e)))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("`{key}`: {why}")));
        match url::Url::parse(&self.issuer) {
            Ok(u)
                if (u.scheme() == "https" || u.scheme() == "http") && u.query().is_none() && u.fragment().is_none() => {
            }
            _ => return bad("issuer", "must be an http(s) URL without query or fragment"),
        }
        if self.http.bind.parse::<std::net::SocketAddr>().is_err() {
            return bad("http.bind", "must be an address such as 127.0.0.1:8080");
        }
        let db = self.database_url();
        let db = db.expose();
        if !(db.starts_with("sqlite://") || db.starts_with("postgres://") || db.starts_with("postgresql://")) {
            return bad("database.url", "must start with sqlite:// or postgres://");
        }
        if self.database.pool_size == 0 {
            return bad("database.pool_size", "must be at least 1");
        }
        for (key, d, min) in [
            ("database.connect_timeout", self.database.connect_timeout, 2000),
            ("database.checkout_timeout", self.database.checkout_timeout, 100),
            ("database.query_timeout", self.database.query_timeout, 100),
            ("cache.timeout", self.cache.timeout, 100),
        ] {
            if d < Duration::from_millis(min) || d > Duration::from_secs(60) {
                return bad(key, &format!("must be between {min}ms and 60s"));
            }
        }
        if self.http.drain_delay > Duration::from_secs(300) || self.http.shutdown_timeout > Duration::from_secs(600) {
            return bad("http.drain_delay", "http.drain_delay is at most 5m and http.shutdown_timeout at most 10m");
        }
        let cache = self.cache.url.expose();
        // TLS to Redis is not built in (the redis crate's TLS features are off): refused here,
        // at start, rather than by the first request.
        if cache.starts_with("rediss://") {
            return bad(
                "cache.url",
                "rediss:// (TLS to Redis) is not supported: reach Redis over redis:// on a private network, \
                 or through a local TLS tunnel (stunnel, spiped) and point redis:// at it",
            );
        }
        if !(cache == "memory://" || cache.starts_with("redis://")) {
            return bad("cache.url", "must be memory:// or redis://…");
        }
        let smtp = self.mail.smtp_url.expose();
        if !(smtp.is_empty() || smtp.starts_with("smtp://") || smtp.starts_with("smtps://")) {
            return bad("mail.smtp_url", "must start with smtp:// or smtps://");
        }
        // Extra roots with a URL that never starts TLS would be a setting that silently does nothing.
        if !self.mail.tls_ca_file.as_os_str().is_empty() && !url_uses_tls(smtp) {
            return bad("mail.tls_ca_file", "needs an smtps:// or smtp://…?tls=required mail.smtp_url");
        }
        if self.site.agency_name.trim().is_empty() || self.site.agency_name_en.trim().is_empty() {
            return bad("site.agency_name", "site.agency_name and site.agency_name_en must not be empty");
        }
        for (key, file, allowed) in [
            ("site.logo_file", &self.site.logo_file, LOGO_TYPES),
            ("site.favicon_file", &self.site.favicon_file, FAVICON_TYPES),
        ] {
            if !file.as_os_str().is_empty() && image_type(file, allowed).is_none() {
                let names: Vec<&str> = allowed.iter().map(|(ext, _)| *ext).collect();
                return bad(key, &format!("must be a file ending in .{}", names.join(", .")));
            }
        }
        if self.mail.from.parse::<lettre::message::Mailbox>().is_err() {
            return bad("mail.from", "must be a mail address such as Name <user@example.org>");
        }
        let certs = &self.certificates;
        let urls = [
            ("certificates.health_verifier_url", &certs.health_verifier_url),
            ("certificates.health_component_url", &certs.health_component_url),
            ("certificates.ownership_verifier_url", &certs.ownership_verifier_url),
            ("links.card_component", &self.links.card_component),
            ("links.card_driver", &self.links.card_driver),
            ("links.health_component", &self.links.health_component),
            ("links.moica_unblock", &self.links.moica_unblock),
            ("links.gca_unblock", &self.links.gca_unblock),
        ]
        .into_iter()
        .chain(certs.crl_urls.iter().map(|u| ("certificates.crl_urls", u)))
        .chain(certs.ocsp_responders.iter().map(|r| ("certificates.ocsp_responders.url", &r.url)));
        for (key, v) in urls {
            if !v.is_empty() && url::Url::parse(v).map(|u| !matches!(u.scheme(), "http" | "https")).unwrap_or(true) {
                return bad(key, "must be an http(s) URL");
            }
        }
        if certs.crl_urls.iter().any(String::is_empty) || certs.ocsp_responders.iter().any(|r| r.url.is_empty()) {
            return bad("certificates.crl_urls", "addresses must not be empty");
        }
        if certs.crl_refresh_interval < Duration::from_secs(1) {
            return bad("certificates.crl_refresh_interval", "must be at least 1s");
        }
        if certs.fetch_timeout < Duration::from_millis(100) || certs.fetch_timeout > Duration::from_secs(60) {
            return bad("certificates.fetch_timeout", "must be between 100ms and 60s");
        }
        // The file itself is read when the server starts (its contents are a secret, not configuration).
        if !certs.ownership_verifier_url.is_empty() && certs.ownership_verifier_token_file.as_os_str().is_empty() {
            return bad(
                "certificates.ownership_verifier_token_file",
                "must name the bearer token file when certificates.ownership_verifier_url is set",
            );
        }
        if certs.crl_download_timeout < Duration::from_secs(1) {
            return bad("certificates.crl_download_timeout", "must be at least 1s");
        }
        if !matches!(self.certificates.revocation.as_str(), "" | "strict" | "best-effort") {
            return bad("certificates.revocation", "must be strict or best-effort");
        }
        if self.certificates.trusted_proxies.iter().any(|a| crate::http::forwarded::ProxyNet::parse(a).is_none()) {
            return bad("certificates.trusted_proxies", "must be a list of IP addresses or networks (10.0.0.0/24)");
        }
        let header = &self.certificates.proxy_header;
        if !header.is_empty() && crate::http::forwarded::CertHeader::parse(header).is_none() {
            return bad("certificates.proxy_header", "must be x-ssl-client-cert, client-cert or none");
        }
        if header.is_empty() && !self.certificates.trusted_proxies.is_empty() {
            return bad(
                "certificates.proxy_header",
                "must name the one header the trusted proxies set the client certificate in \
                 (x-ssl-client-cert for nginx's $ssl_client_escaped_cert, client-cert for RFC 9440, \
                 or none) when certificates.trusted_proxies is set",
            );
        }
        let card = &self.card_login;
        if card.enabled() && card.bind.parse::<std::net::SocketAddr>().is_err() {
            return bad("card_login.bind", "must be an address such as 127.0.0.1:8443");
        }
        if card.cert_file.as_os_str().is_empty() != card.key_file.as_os_str().is_empty() {
            return bad("card_login.cert_file", "card_login.cert_file and card_login.key_file go together");
        }
        if !card.public_url.is_empty()
            && url::Url::parse(&card.public_url)
                .map(|u| u.scheme() != "https" || u.query().is_some() || u.fragment().is_some())
                .unwrap_or(true)
        {
            return bad("card_login.public_url", "must be an https URL without query or fragment");
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return bad("log.format", "must be text or json");
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return bad("log.level", "must be a filter such as info or idp=debug");
        }
        if self.cleanup.interval < Duration::from_secs(1) {
            return bad("cleanup.interval", "must be at least 1 s");
        }
        if self.audit.retention < Duration::from_secs(24 * 3600) {
            return bad("audit.retention", "must be at least 1 day");
        }
        if !self.metrics.bind.is_empty() && self.metrics.bind.parse::<std::net::SocketAddr>().is_err() {
            return bad("metrics.bind", "must be an address such as 127.0.0.1:9090");
        }
        if self.keys.reload_interval < Duration::from_secs(1) {
            return bad("keys.reload_interval", "must be at least 1 s");
        }
        // A new key must be in every node's JWKS, and in what caches hold, before it signs.
        if self.keys.activation_delay < self.keys.reload_interval.saturating_add(Duration::from_secs(60)) {
            return bad(
                "keys.activation_delay",
                "must be at least keys.reload_interval + 60 s (the JWKS cache lifetime)",
            );
        }
        if self.tokens.code_ttl.is_zero() || self.tokens.code_ttl > Duration::from_secs(600) {
            return bad("tokens.code_ttl", "must be between 1 s and 10 min");
        }
        let login = &self.login;
        if login.max_failures_per_account == 0 || login.max_failures_per_address == 0 {
            return bad("login.max_failures_per_account", "the per-account and per-address limits must be at least 1");
        }
        if login.throttle_max_delay < login.throttle_delay {
            return bad("login.throttle_max_delay", "must be at least login.throttle_delay");
        }
        // Otherwise a person's count could expire during a wait and hand out free attempts again.
        if login.throttle_forget_after <= login.throttle_max_delay {
            return bad("login.throttle_forget_after", "must be longer than login.throttle_max_delay");
        }
        for (key, d) in [
            ("login.throttle_delay", self.login.throttle_delay),
            ("login.one_time_password_ttl", self.login.one_time_password_ttl),
            ("login.email_verification_ttl", self.login.email_verification_ttl),
            ("login.session_ttl", self.login.session_ttl),
            ("login.transaction_ttl", self.login.transaction_ttl),
            ("login.throttle_window", self.login.throttle_window),
            ("tokens.id_token_ttl", self.tokens.id_token_ttl),
            ("tokens.access_token_ttl", self.tokens.access_token_ttl),
            ("tokens.refresh_token_ttl", self.tokens.refresh_token_ttl),
        ] {
            if d.is_zero() {
                return bad(key, "must be longer than zero");
            }
        }
        Ok(())
    }

    /// The database URL, with the embedded default filled in.
    pub fn database_url(&self) -> SecretUrl {
        if self.database.url.is_empty() {
            SecretUrl::new(&format!("sqlite://{}", self.data_dir.join("idp.sqlite3").display()))
        } else {
            self.database.url.clone()
        }
    }

    /// The mail outbox folder, with the embedded default filled in.
    pub fn outbox_dir(&self) -> PathBuf {
        if self.mail.outbox_dir.as_os_str().is_empty() {
            self.data_dir.join("outbox")
        } else {
            self.mail.outbox_dir.clone()
        }
    }

    /// The data-protection key file, with the embedded default filled in.
    pub fn data_key_file(&self) -> PathBuf {
        if self.secrets.data_key_file.as_os_str().is_empty() {
            self.data_dir.join("data.key")
        } else {
            self.secrets.data_key_file.clone()
        }
    }

    /// Whether cookies must carry `Secure`.
    pub fn secure_cookies(&self) -> bool {
        self.issuer.starts_with("https://")
    }

    /// The issuer without a trailing slash, for building endpoint URLs.
    pub fn base(&self) -> &str {
        self.issuer.trim_end_matches('/')
    }
}

/// Turns a figment error into one line that names the key.
fn describe(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let source = e.metadata.as_ref().map(|m| m.name.to_string()).unwrap_or_default();
            if key.is_empty() {
                format!("{} ({source})", e.kind)
            } else {
                format!("`{key}`: {} ({source})", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

// What the mail and site settings mean, read where they are checked and where they are used.

/// The TLS mode an SMTP URL asks for, as lettre reads it: `smtps://` wraps the connection in
/// TLS, `?tls=required` / `?tls=opportunistic` use STARTTLS.
pub enum TlsMode {
    None,
    Wrapper,
    Required,
    Opportunistic,
}

pub fn tls_mode(url: &url::Url) -> TlsMode {
    let tls = url.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.into_owned());
    match (url.scheme(), tls.as_deref()) {
        ("smtps", _) => TlsMode::Wrapper,
        ("smtp", Some("required")) => TlsMode::Required,
        ("smtp", Some("opportunistic")) => TlsMode::Opportunistic,
        _ => TlsMode::None,
    }
}

/// Whether an SMTP URL starts TLS at all (so that `mail.tls_ca_file` means something).
pub fn url_uses_tls(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| !matches!(tls_mode(&u), TlsMode::None))
}

/// Header logos the site serves, by file extension, with their content type.
pub const LOGO_TYPES: &[(&str, &str)] = &[
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
];

/// Favicons, likewise.
pub const FAVICON_TYPES: &[(&str, &str)] = &[("ico", "image/x-icon"), ("svg", "image/svg+xml"), ("png", "image/png")];

/// The content type for `file`, when its extension is one of `allowed` (any case).
pub fn image_type(file: &Path, allowed: &[(&str, &'static str)]) -> Option<&'static str> {
    let ext = file.extension()?.to_str()?.to_ascii_lowercase();
    allowed.iter().find(|(e, _)| *e == ext).map(|(_, t)| *t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The variables [`with_env`] sets, all cleared before and after each use, so a test sees
    /// only its own environment layer.
    const VARS: [&str; 5] = [
        "IDP_ISSUER",
        "IDP_LOGIN__MAX_FAILURES_PER_ACCOUNT",
        "IDP_LOGIN__THROTTLE_DELAY",
        "IDP_LOGIN__NO_SUCH_KEY",
        "IDP_DATABASE__POOL_SIZE",
    ];

    /// Runs `f` with exactly `vars` of [`VARS`] set, one test at a time (the environment is
    /// the process's).
    fn with_env<T>(vars: &[(&str, &str)], f: impl FnOnce() -> T) -> T {
        static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        // Whatever `IDP_*` the run itself has (CI's `IDP_TEST_EXPECT`, the PostgreSQL run's
        // URLs) is set aside, so each layer sees only what the test gives it.
        let outside: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k.starts_with("IDP_")).collect();
        outside.iter().for_each(|(k, _)| std::env::remove_var(k));
        let clear = || VARS.iter().for_each(|k| std::env::remove_var(k));
        clear();
        for (k, v) in vars {
            assert!(VARS.contains(k), "{k} is not cleared afterwards");
            std::env::set_var(k, v);
        }
        let out = f();
        clear();
        outside.iter().for_each(|(k, v)| std::env::set_var(k, v));
        out
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn with_nothing_set_the_defaults_load_and_are_valid() {
        let c = with_env(&[], || Config::load(None)).unwrap();
        let d = Config::default();
        assert_eq!(c.issuer, d.issuer);
        assert_eq!(c.login.max_failures_per_account, d.login.max_failures_per_account);
        assert_eq!(c.database.pool_size, d.database.pool_size);
        assert!(c.database_url().expose().starts_with("sqlite://"), "embedded by default");
    }

    #[test]
    fn the_file_overrides_defaults_and_the_environment_overrides_the_file() {
        let f = file(
            "issuer = \"https://idp.example.gov.tw\"\n[login]\nmax_failures_per_account = 7\nthrottle_delay = \"5s\"\n",
        );
        let c = with_env(&[], || Config::load(Some(f.path()))).unwrap();
        assert_eq!(c.issuer, "https://idp.example.gov.tw");
        assert_eq!((c.login.max_failures_per_account, c.login.throttle_delay), (7, Duration::from_secs(5)));
        assert_eq!(c.login.max_failures_per_address, LoginConfig::default().max_failures_per_address, "untouched");

        let env = [("IDP_LOGIN__MAX_FAILURES_PER_ACCOUNT", "9"), ("IDP_LOGIN__THROTTLE_DELAY", "3s")];
        let c = with_env(&env, || Config::load(Some(f.path()))).unwrap();
        assert_eq!((c.login.max_failures_per_account, c.login.throttle_delay), (9, Duration::from_secs(3)));
        assert_eq!(c.issuer, "https://idp.example.gov.tw", "what the environment does not set stays the file's");
        let c = with_env(&env[..1], || Config::load(None)).unwrap();
        assert_eq!((c.login.max_failures_per_account, c.issuer.as_str()), (9, "http://127.0.0.1:8080"));
    }

    #[test]
    fn bad_values_are_refused_with_the_key_named_from_every_layer() {
        let refused = |vars: &[(&str, &str)], text: Option<&str>| {
            let f = text.map(file);
            with_env(vars, || Config::load(f.as_ref().map(|f| f.path()))).unwrap_err().to_string()
        };
        let e = refused(&[], Some("[login]\nmax_failure = 3\n"));
        assert!(e.contains("max_failure"), "an unknown key in the file: {e}");
        let e = refused(&[("IDP_LOGIN__NO_SUCH_KEY", "1")], None);
        assert!(e.contains("no_such_key"), "an unknown key in the environment: {e}");
        let e = refused(&[("IDP_DATABASE__POOL_SIZE", "many")], None);
        assert!(e.contains("database.pool_size"), "a value of the wrong type: {e}");
        let e = refused(&[("IDP_DATABASE__POOL_SIZE", "0")], None);
        assert!(e.contains("database.pool_size"), "a value out of range: {e}");
        let e = refused(&[("IDP_ISSUER", "ftp://idp.example")], Some("issuer = \"https://idp.example\"\n"));
        assert!(e.contains("issuer"), "the environment's bad value is not hidden by the file's good one: {e}");
        let e = refused(&[("IDP_LOGIN__THROTTLE_DELAY", "soon")], None);
        assert!(e.contains("login.throttle_delay"), "a duration that does not parse: {e}");
        let e = with_env(&[], || Config::load(Some(Path::new("/nonexistent/idp.toml")))).unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
    }

    #[test]
    fn trusted_proxies_need_the_certificate_header_named() {
        let mut c = Config::default();
        c.validate().unwrap();
        c.certificates.trusted_proxies = vec!["10.0.0.1".into(), "10.1.0.0/16".into()];
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("certificates.proxy_header"), "{e}");
        c.certificates.proxy_header = "X-Client-Cert".into();
        assert!(c.validate().unwrap_err().to_string().contains("certificates.proxy_header"));
        for ok in ["x-ssl-client-cert", "client-cert", "none"] {
            c.certificates.proxy_header = ok.into();
            c.validate().unwrap();
        }
        c.certificates.trusted_proxies.push("proxy.internal".into());
        assert!(c.validate().unwrap_err().to_string().contains("certificates.trusted_proxies"));
    }

    #[test]
    fn throttle_waits_must_fit_inside_the_memory_of_failures() {
        let mut c = Config::default();
        c.login.throttle_forget_after = c.login.throttle_max_delay;
        assert!(c.validate().unwrap_err().to_string().contains("login.throttle_forget_after"));
        let mut c = Config::default();
        c.login.throttle_max_delay = Duration::from_millis(1);
        assert!(c.validate().unwrap_err().to_string().contains("login.throttle_max_delay"));
        let mut c = Config::default();
        c.login.max_failures_per_account = 0;
        assert!(c.validate().is_err());
    }
}
