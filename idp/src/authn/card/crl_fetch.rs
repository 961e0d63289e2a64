//! CRLs from `certificates.crl_urls`: downloaded, checked before they replace anything, and kept
//! on disk.
//!
//! A downloaded CRL is only believed once its signature verifies with the key of a configured CA
//! whose name it carries: a CRL is what makes a revoked card fail, so a forged or truncated one
//! must never replace a good one. A CRL older than the one held (by `thisUpdate`) is refused too,
//! so a replayed old CRL cannot un-revoke a card. The last accepted copy of each address is
//! written to a cache file, so a restart while the CA's site is down still has revocation data
//! (and strict mode still refuses once that copy passes its `nextUpdate`).

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateRevocationListDer;
use sha2::Digest;

use super::crl::{CaKey, RevocationList};

/// The largest CRL accepted: complete CRLs of a national CA run to tens of megabytes.
pub const MAX_CRL_BYTES: usize = 256 * 1024 * 1024;

/// An accepted CRL, read into its index (the DER is not kept in memory).
#[derive(Debug, Clone)]
pub struct FetchedCrl {
    pub url: String,
    pub list: Arc<RevocationList>,
    pub this_update: i64,
    pub next_update: i64,
}

impl PartialEq for FetchedCrl {
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url && self.list.digest == other.list.digest
    }
}

/// Why a download does not replace what is held.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrlRefusal {
    #[error("download failed: {0}")]
    Download(String),
    #[error("not a CRL: {0}")]
    Malformed(String),
    #[error("issued by no configured CA")]
    UnknownIssuer,
    #[error("signature does not verify with the issuing CA's key")]
    BadSignature,
    #[error("no nextUpdate")]
    NoNextUpdate,
    #[error("older than the CRL held (thisUpdate {offered} < {held})")]
    Older { offered: i64, held: i64 },
}

impl CrlRefusal {
    /// Short name for the audit log.
    pub fn outcome(&self) -> &'static str {
        match self {
            CrlRefusal::Download(_) => "unavailable",
            CrlRefusal::Malformed(_) | CrlRefusal::NoNextUpdate => "malformed",
            CrlRefusal::UnknownIssuer => "unknown_issuer",
            CrlRefusal::BadSignature => "bad_signature",
            CrlRefusal::Older { .. } => "older",
        }
    }
}

/// Checks a CRL (DER or PEM) against the configured CAs and what is held for its address.
/// One pass over the bytes, no copy of a DER body: a complete CRL is tens of megabytes.
pub fn accept(url: &str, bytes: &[u8], cas: &[CaKey], held: Option<&FetchedCrl>) -> Result<FetchedCrl, CrlRefusal> {
    let der: Cow<'_, [u8]> = if bytes.starts_with(b"-----") {
        let pem =
            CertificateRevocationListDer::from_pem_slice(bytes).map_err(|e| CrlRefusal::Malformed(e.to_string()))?;
        Cow::Owned(pem.as_ref().to_vec())
    } else {
        Cow::Borrowed(bytes)
    };
    let list = RevocationList::parse(&der, cas).map_err(|e| CrlRefusal::Malformed(e.0))?;
    if !cas.iter().any(|ca| ca.subject_der == list.issuer_der) {
        return Err(CrlRefusal::UnknownIssuer);
    }
    if !list.verified_at_load() {
        return Err(CrlRefusal::BadSignature);
    }
    let (this_update, next_update) = (list.this_update, list.next_update);
    if let Some(held) = held {
        if this_update < held.this_update {
            return Err(CrlRefusal::Older { offered: this_update, held: held.this_update });
        }
    }
    Ok(FetchedCrl { url: url.to_owned(), list: Arc::new(list), this_update, next_update })
}

/// Downloads a CRL, refusing bodies over [`MAX_CRL_BYTES`] while they arrive.
pub async fn download(http: &reqwest::Client, url: &str, timeout: Duration) -> Result<Vec<u8>, CrlRefusal> {
    let fail = |e: String| CrlRefusal::Download(e);
    let resp = http.get(url).timeout(timeout).send().await.map_err(|e| fail(e.without_url().to_string()))?;
    if !resp.status().is_success() {
        return Err(fail(format!("HTTP {}", resp.status().as_u16())));
    }
    crate::outbound::read_limited(resp, MAX_CRL_BYTES).await.map_err(|e| fail(e.to_string()))
}

/// Where the last accepted copy of an address is kept: one file per address, named by a hash
/// of it so any URL is a safe file name.
pub fn cache_file(cache_dir: &Path, url: &str) -> PathBuf {
    let digest = sha2::Sha256::digest(url.as_bytes());
    let name: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    cache_dir.join(format!("{name}.crl"))
}

/// Writes the accepted bytes of an address to its cache file atomically (a reader never sees
/// half a CRL).
pub fn store(cache_dir: &Path, url: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(cache_dir)?;
    let path = cache_file(cache_dir, url);
    let tmp = path.with_extension("crl.tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}

/// The cached copy of an address, re-checked like a download (the disk is not trusted more than
/// the network).
pub fn load_cached(cache_dir: &Path, url: &str, cas: &[CaKey]) -> Option<FetchedCrl> {
    let bytes = std::fs::read(cache_file(cache_dir, url)).ok()?;
    match accept(url, &bytes, cas, None) {
        Ok(crl) => Some(crl),
        Err(e) => {
            tracing::warn!(url, error = %e, "cached CRL ignored");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_pki::fixtures::{self as fx, FixtureOptions};

    fn pki() -> (tempfile::TempDir, Vec<CaKey>) {
        let dir = tempfile::tempdir().unwrap();
        fx::generate_with(dir.path(), &FixtureOptions::fast()).unwrap();
        let cas = [fx::MOICA_G2, fx::MOICA_G3, fx::GCA]
            .iter()
            .map(|f| CaKey::from_certificate(fx::read_cert(dir.path(), f).unwrap().as_ref()).unwrap())
            .collect();
        (dir, cas)
    }

    #[test]
    fn crl_fetch_accepts_a_crl_signed_by_its_configured_ca_in_der_or_pem() {
        let (dir, cas) = pki();
        let der = std::fs::read(dir.path().join(fx::CRL_MOICA_G2)).unwrap();
        let crl = accept("http://ca/g2.crl", &der, &cas, None).unwrap();
        assert!(crl.next_update > crl.this_update);
        let pem = format!(
            "-----BEGIN X509 CRL-----\n{}\n-----END X509 CRL-----\n",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der)
        );
        assert_eq!(accept("http://ca/g2.crl", pem.as_bytes(), &cas, None).unwrap(), crl);
    }

    #[test]
    fn crl_fetch_refuses_unknown_issuers_forgeries_garbage_and_rollback() {
        let (dir, cas) = pki();
        let der = std::fs::read(dir.path().join(fx::CRL_MOICA_G2)).unwrap();
        // The root's CRL: its issuer is not among the configured CAs.
        let root = std::fs::read(dir.path().join(fx::CRL_ROOT)).unwrap();
        assert_eq!(accept("u", &root, &cas, None), Err(CrlRefusal::UnknownIssuer));
        // The G3 CRL against G2 alone: same name, another key.
        let g3 = std::fs::read(dir.path().join(fx::CRL_MOICA_G3)).unwrap();
        assert_eq!(accept("u", &g3, &cas[..1], None), Err(CrlRefusal::BadSignature));
        // One flipped bit in the signature.
        let mut forged = der.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert!(matches!(accept("u", &forged, &cas, None), Err(CrlRefusal::BadSignature | CrlRefusal::Malformed(_))));
        assert!(matches!(accept("u", b"<html>maintenance</html>", &cas, None), Err(CrlRefusal::Malformed(_))));
        let held = accept("u", &der, &cas, None).unwrap();
        let newer = FetchedCrl { this_update: held.this_update + 10, ..held.clone() };
        assert!(matches!(accept("u", &der, &cas, Some(&newer)), Err(CrlRefusal::Older { .. })));
        assert!(accept("u", &der, &cas, Some(&held)).is_ok(), "the same CRL again is fine");
    }

    #[test]
    fn crl_fetch_cache_round_trips_and_is_rechecked() {
        let (dir, cas) = pki();
        let cache = dir.path().join("cache");
        let der = std::fs::read(dir.path().join(fx::CRL_GCA)).unwrap();
        let crl = accept("https://ca.example/gca.crl", &der, &cas, None).unwrap();
        store(&cache, &crl.url, &der).unwrap();
        assert_eq!(load_cached(&cache, "https://ca.example/gca.crl", &cas), Some(crl.clone()));
        assert_eq!(load_cached(&cache, "https://ca.example/other.crl", &cas), None);
        std::fs::write(cache_file(&cache, &crl.url), b"garbage").unwrap();
        assert_eq!(load_cached(&cache, "https://ca.example/gca.crl", &cas), None);
    }
}
