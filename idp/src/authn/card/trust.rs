//! Card trust at run time: the validator in use, CRLs kept fresh from `certificates.crl_urls`,
//! and OCSP where a responder is configured.
//!
//! The validator is immutable; a CRL that arrives builds a new one from the configured files plus
//! every accepted download, and swaps it in whole. A login in flight keeps the validator it
//! started with, so no login ever sees half an update.
//!
//! How revocation is decided for a certificate whose issuing CA has an OCSP responder:
//! - a current CRL that lists it refuses, whatever OCSP says;
//! - the responder's "revoked" refuses; its "unknown" refuses too (the CA does not know a
//!   certificate that chains to it);
//! - "good" accepts;
//! - no usable answer (down, time-out, bad signature): a current CRL that does not list it
//!   accepts; otherwise strict mode refuses and best-effort accepts.
//!
//! Without a responder, the CRLs alone decide ([`super::validate`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::FromDer;

use super::crl::CaKey;
use super::crl_fetch::{self, CrlRefusal, FetchedCrl};
use super::ocsp::{self, CertStatus, OcspAnswer};
use super::validate::{
    read_certificates, CardError, CardValidator, ConfigError, InvalidReason, RevocationMode, RevocationStatus,
    TrustSettings, ValidatedCard,
};
use crate::config::Config;
use crate::expiring::ExpiringMap;
use crate::store::db::Db;

/// How long an OCSP answer is reused at most (less when its `nextUpdate` is sooner): long enough
/// to spare the responder a burst of logins, short enough that a revocation shows within minutes.
const OCSP_CACHE_SECS: i64 = 300;
/// Until when an answer got at `now` is reused: at most [`OCSP_CACHE_SECS`], never past the
/// responder's `nextUpdate`, and not at all without one (RFC 6960 §4.2.2.1: newer status may be
/// available at any time).
fn ocsp_reuse_until(answer: &OcspAnswer, now: i64) -> i64 {
    answer.next_update.unwrap_or(now).min(now + OCSP_CACHE_SECS)
}

/// Entries kept before the OCSP answer cache is emptied (bounds memory under a flood of cards).
const OCSP_CACHE_MAX: usize = 10_000;

/// An OCSP responder and the CA it answers for.
struct Responder {
    url: String,
    issuer_der: Vec<u8>,
    issuer_spki: Vec<u8>,
}

/// The run-time trust state for card sign-in, shared by every worker.
pub struct CardTrust {
    /// What the configuration files give; every rebuild starts from it.
    base: TrustSettings,
    current: ArcSwap<CardValidator>,
    fetched: Mutex<BTreeMap<String, FetchedCrl>>,
    /// The configured CAs' keys, which downloaded CRLs must be signed by.
    cas: Vec<CaKey>,
    responders: Vec<Responder>,
    /// Answers by (responder, serial), each until `min(nextUpdate, now + OCSP_CACHE_SECS)`.
    ocsp_cache: ExpiringMap<(usize, String), OcspAnswer, i64>,
    http: reqwest::Client,
    crl_urls: Vec<String>,
    cache_dir: PathBuf,
    fetch_timeout: Duration,
    crl_download_timeout: Duration,
    refresh_interval: Duration,
}

impl std::fmt::Debug for CardTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardTrust")
            .field("validator", &*self.current.load())
            .field("crl_urls", &self.crl_urls)
            .field("ocsp_responders", &self.responders.iter().map(|r| &r.url).collect::<Vec<_>>())
            .finish()
    }
}

impl CardTrust {
    /// Reads `certificates.*`; `None` when no anchor is configured (card sign-in off). Downloads
    /// nothing yet: [`CardTrust::load_crls`] does, so building stays quick and offline.
    pub fn from_config(config: &Config, http: reqwest::Client) -> Result<Option<Self>, ConfigError> {
        let c = &config.certificates;
        if !c.enabled() {
            return Ok(None);
        }
        let mut base = TrustSettings::load_files(
            &c.citizen_trust_anchors,
            &c.agency_trust_anchors,
            &c.intermediates,
            &c.crl_files,
        )?;
        base.revocation =
            if c.revocation == "best-effort" { RevocationMode::BestEffort } else { RevocationMode::Required };
        base.test_policy_oids = c.test_policy_oids.clone();
        let mut responders = Vec::new();
        for r in &c.ocsp_responders {
            let issuer_der = read_certificates(&r.issuer)?.swap_remove(0);
            let (_, cert) = x509_parser::certificate::X509Certificate::from_der(issuer_der.as_ref())
                .map_err(|e| ConfigError::File { path: r.issuer.clone(), message: e.to_string() })?;
            let issuer_spki = cert.public_key().raw.to_vec();
            base.ocsp_issuers.push(issuer_spki.clone());
            responders.push(Responder { url: r.url.clone(), issuer_der: issuer_der.as_ref().to_vec(), issuer_spki });
        }
        let cas = base.ca_keys();
        // The files are read once; every rebuild shares what was read.
        base.read_crls()?;
        let validator = CardValidator::new(base.clone())?;
        Ok(Some(CardTrust {
            base,
            current: ArcSwap::from_pointee(validator),
            fetched: Mutex::new(BTreeMap::new()),
            cas,
            responders,
            ocsp_cache: ExpiringMap::new(OCSP_CACHE_MAX),
            http,
            crl_urls: c.crl_urls.clone(),
            cache_dir: config.data_dir.join("crl-cache"),
            fetch_timeout: c.fetch_timeout,
            crl_download_timeout: c.crl_download_timeout,
            refresh_interval: c.crl_refresh_interval,
        }))
    }

    /// The validator in use now.
    pub fn validator(&self) -> Arc<CardValidator> {
        self.current.load_full()
    }

    /// Validates a presented certificate (chain, CRLs, profile rules), then asks the issuing
    /// CA's OCSP responder when one is configured. `agency_code_for_oid` is the agency table.
    pub async fn check(
        &self,
        end_entity: &[u8],
        intermediates: &[CertificateDer<'_>],
        now: i64,
        agency_code_for_oid: impl Fn(&str) -> Option<String>,
    ) -> Result<ValidatedCard, CardError> {
        let validator = self.validator();
        let mut card = validator.validate(end_entity, intermediates, now, agency_code_for_oid)?;
        let Some(index) = self.responders.iter().position(|r| r.issuer_spki == card.issuer_spki) else {
            return Ok(card);
        };
        match self.ocsp_status(index, &card.profile.serial_hex, now).await {
            Ok(answer) => match answer.status {
                CertStatus::Good => card.revocation = RevocationStatus::OcspGood,
                CertStatus::Revoked { .. } => return Err(InvalidReason::Revoked.into()),
                CertStatus::Unknown => return Err(InvalidReason::OcspUnknown.into()),
            },
            Err(e) => {
                tracing::warn!(responder = %self.responders[index].url, error = %e, "OCSP: no usable answer");
                let crl_decided = card.revocation == RevocationStatus::Checked;
                if !crl_decided && validator.revocation_mode() == RevocationMode::Required {
                    return Err(InvalidReason::OcspUnavailable(e.to_string()).into());
                }
            }
        }
        Ok(card)
    }

    /// The responder's answer for a serial, from the cache while it is fresh.
    async fn ocsp_status(&self, index: usize, serial_hex: &str, now: i64) -> Result<OcspAnswer, ocsp::OcspError> {
        let key = (index, serial_hex.to_owned());
        if let Some(answer) = self.ocsp_cache.get(&key, now) {
            return Ok(answer);
        }
        let responder = &self.responders[index];
        let serial = super::profile::unhex(serial_hex).ok_or(ocsp::OcspError::Encoding("certificate serial".into()))?;
        let query = ocsp::build_request(&responder.issuer_der, &serial)?;
        let der = ocsp::fetch(&self.http, &responder.url, &query, self.fetch_timeout).await?;
        let answer = ocsp::check_response(&der, &query, &responder.issuer_der, now)?;
        self.ocsp_cache.put(key, answer.clone(), ocsp_reuse_until(&answer, now));
        Ok(answer)
    }

    fn lock_fetched(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, FetchedCrl>> {
        self.fetched.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// At start: each address's last good copy from `<data_dir>/crl-cache` first (checked again
    /// against the configured CAs, as a download would be), so a start while a CA's site is down
    /// or slow has that CRL at once; only addresses without a usable copy are downloaded before
    /// serving. Returns the addresses served from the cache, which the refresher downloads again
    /// straight away. Never fails: a CA site that is down must not keep the sign-in service from
    /// starting (strict mode refuses that CA's cards until a CRL arrives).
    pub async fn load_crls(&self, db: &Db) -> Vec<String> {
        let mut cached = Vec::new();
        for url in &self.crl_urls {
            if let Some(crl) = crl_fetch::load_cached(&self.cache_dir, url, &self.cas) {
                tracing::info!(url = %url, next_update = crl.next_update, "CRL: starting from the cached copy");
                self.lock_fetched().insert(url.clone(), crl);
                cached.push(url.clone());
            }
        }
        for url in self.crl_urls.iter().filter(|u| !cached.contains(u)) {
            if let Err(e) = self.refresh(url).await {
                tracing::warn!(url = %url, error = %e, "CRL download failed at start");
                if !matches!(e, CrlRefusal::Download(_)) {
                    audit_refusal(db, url, &e).await;
                }
            }
        }
        if let Err(e) = self.rebuild() {
            tracing::error!(error = %e, "card validator rebuild failed; the previous one stays in use");
        }
        cached
    }

    /// Downloads one address's CRL and, when accepted and new, swaps in a validator using it.
    /// `Ok(true)` when the CRL changed.
    pub async fn refresh(&self, url: &str) -> Result<bool, CrlRefusal> {
        let bytes = crl_fetch::download(&self.http, url, self.crl_download_timeout).await?;
        let held = self.lock_fetched().get(url).cloned();
        // Reading a complete CRL (tens of megabytes, a signature over all of it) takes a
        // moment of CPU: off the workers that serve requests.
        let (cas, address) = (self.cas.clone(), url.to_owned());
        let (bytes, accepted) = tokio::task::spawn_blocking(move || {
            let accepted = crl_fetch::accept(&address, &bytes, &cas, held.as_ref());
            let unchanged = matches!((&accepted, &held), (Ok(crl), Some(h)) if h == crl);
            (bytes, accepted.map(|crl| (crl, unchanged)))
        })
        .await
        .map_err(|e| CrlRefusal::Malformed(format!("CRL reader stopped: {e}")))?;
        let (crl, unchanged) = accepted?;
        if unchanged {
            return Ok(false);
        }
        if let Err(e) = crl_fetch::store(&self.cache_dir, url, &bytes) {
            tracing::warn!(url, error = %e, "CRL cache not written");
        }
        tracing::info!(url, this_update = crl.this_update, next_update = crl.next_update, "CRL updated");
        self.lock_fetched().insert(url.to_owned(), crl);
        self.rebuild().map_err(|e| CrlRefusal::Malformed(e.to_string()))?;
        Ok(true)
    }

    /// For each issuing CA, the `thisUpdate` of the newest CRL in use (for `/metrics`).
    pub fn crl_issued(&self) -> Vec<(String, i64)> {
        self.current.load().crl_issued()
    }

    /// Builds a validator from the configured files plus every accepted download and swaps it in.
    fn rebuild(&self) -> Result<(), ConfigError> {
        let mut settings = self.base.clone();
        settings.crl_lists.extend(self.lock_fetched().values().map(|c| c.list.clone()));
        let validator = CardValidator::new(settings)?;
        self.current.store(Arc::new(validator));
        Ok(())
    }

    /// When to fetch an address again: the refresh interval, or sooner when its CRL reaches
    /// `nextUpdate`; a failure retries after a tenth of the interval.
    fn next_delay(&self, url: &str, succeeded: bool, now: i64) -> Duration {
        let interval = self.refresh_interval;
        if !succeeded {
            return (interval / 10).max(Duration::from_secs(1));
        }
        match self.lock_fetched().get(url) {
            Some(crl) if crl.next_update > now => {
                interval.min(Duration::from_secs(u64::try_from(crl.next_update - now).unwrap_or(0)))
            }
            // Past its nextUpdate and nothing newer published yet (the CA is late), or nothing
            // held at all: ask again soon.
            _ => (interval / 10).max(Duration::from_secs(1)),
        }
    }

    /// Keeps every address fresh for as long as the trust state lives. Refused downloads (a
    /// signature that does not verify, an older CRL) are security events and audited.
    /// `from_cache` are the addresses [`load_crls`](Self::load_crls) took from the cache: they
    /// are downloaded at once, in the background.
    pub fn spawn_refresher(self: &Arc<Self>, db: Db, from_cache: &[String]) {
        for url in self.crl_urls.clone() {
            let weak = Arc::downgrade(self);
            let db = db.clone();
            let at_once = from_cache.contains(&url);
            tokio::spawn(async move {
                let mut delay = match weak.upgrade() {
                    Some(_) if at_once => Duration::ZERO,
                    // Nothing held yet (the start-up download failed): the "held" branch of
                    // next_delay retries soon.
                    Some(trust) => trust.next_delay(&url, true, crate::error::now()),
                    None => return,
                };
                loop {
                    tokio::time::sleep(delay).await;
                    let Some(trust) = weak.upgrade() else { return };
                    let result = trust.refresh(&url).await;
                    if let Err(e) = &result {
                        tracing::warn!(url = %url, error = %e, "CRL refresh failed; the CRL held stays in use");
                        if !matches!(e, CrlRefusal::Download(_)) {
                            audit_refusal(&db, &url, e).await;
                        }
                    }
                    delay = trust.next_delay(&url, result.is_ok(), crate::error::now());
                }
            });
        }
    }
}

async fn audit_refusal(db: &Db, url: &str, e: &CrlRefusal) {
    let (outcome, detail) = (e.outcome(), format!("{url}: {e}"));
    crate::audit::record_logged(db, move |c| {
        let e = crate::audit::Event {
            event: "certificates.crl_refresh",
            outcome,
            actor: Some("system"),
            detail,
            ..Default::default()
        };
        crate::audit::record(c, e, crate::error::now())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ocsp_answer_is_reused_five_minutes_at_most_and_never_past_its_next_update() {
        let now = 1_800_000_000;
        let answer = |next_update| OcspAnswer { status: CertStatus::Good, this_update: now, next_update };
        assert_eq!(ocsp_reuse_until(&answer(Some(now + 3_600)), now), now + 300, "five minutes");
        assert_eq!(ocsp_reuse_until(&answer(Some(now + 60)), now), now + 60, "its nextUpdate first");
        assert_eq!(ocsp_reuse_until(&answer(None), now), now, "no nextUpdate: not reused");
        let cache = ExpiringMap::new(OCSP_CACHE_MAX);
        let key = (0, "01ab".to_string());
        cache.put(key.clone(), answer(Some(now + 3_600)), ocsp_reuse_until(&answer(Some(now + 3_600)), now));
        assert!(cache.get(&key, now + 299).is_some(), "reused within five minutes");
        assert!(cache.get(&key, now + 300).is_none(), "asked again after five minutes");
    }
}
