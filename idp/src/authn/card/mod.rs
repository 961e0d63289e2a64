//! Card sign-in (citizen and agency certificate cards): the foundation.
//!
//! - [`oids`]: every OID and issuer name the card code knows, in one table.
//! - [`profile`]: what a certificate claims (name, serial, key hash, GPKI attributes), unverified.
//! - [`validate`]: whether to believe it: chain to the configured anchors of one card kind,
//!   validity, key usage, CRLs, test certificates, agency lookup.
//! - [`crl`]: a CRL read once into a hash set of serials, its signature verified once.
//! - [`crl_fetch`]: CRLs from `certificates.crl_urls`, checked before they replace anything.
//! - [`trust`]: the validator in use, swapped whole when a CRL arrives, plus OCSP.
//! - [`challenge`], [`health`]: the signed-challenge channel and the health-card verifier.
//! - [`ocsp`]: revocation by OCSP: requests, fetching, and verifying the CA's answers.
//!
//! The test PKI shaped like the real one (`idp dev pki`), its OCSP responder and the software
//! card's signature are the `test-pki` crate, outside the product; [`oids`] is the `pki-oids`
//! crate, which both read.

pub mod challenge;
pub mod crl;
pub mod crl_fetch;
pub mod health;
pub mod ocsp;
pub use pki_oids as oids;
pub mod profile;
pub mod trust;
pub mod validate;
