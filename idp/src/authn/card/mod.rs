//! Card sign-in (citizen and agency certificate cards): the foundation.
//!
//! - [`oids`]: every OID and issuer name the card code knows, in one table.
//! - [`profile`]: what a certificate claims (name, serial, key hash, GPKI attributes), unverified.
//! - [`validate`]: whether to believe it: chain to the configured anchors of one card kind,
//!   validity, key usage, CRLs, test certificates, agency lookup.
//! - [`crl_fetch`]: CRLs from `certificates.crl_urls`, checked before they replace anything.
//! - [`trust`]: the validator in use, swapped whole when a CRL arrives, plus OCSP.
//! - [`challenge`], [`health`]: the signed-challenge channel and the health-card verifier.
//! - [`ocsp`]: revocation by OCSP: requests, fetching, and verifying the CA's answers.
//! - [`pki_fixtures`]: `idp dev pki`, a test PKI shaped like the real one.
//! - [`ocsp_responder`]: an OCSP responder for that test PKI (CA simulator and tests only).

pub mod challenge;
pub mod crl_fetch;
pub mod health;
pub mod ocsp;
pub mod ocsp_responder;
pub mod oids;
pub mod pki_fixtures;
pub mod profile;
pub mod trust;
pub mod validate;
