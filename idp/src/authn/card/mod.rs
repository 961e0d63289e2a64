//! Card sign-in (citizen and agency certificate cards): the foundation.
//!
//! - [`oids`]: every OID and issuer name the card code knows, in one table.
//! - [`profile`]: what a certificate claims (name, serial, key hash, GPKI attributes), unverified.
//! - [`validate`]: whether to believe it: chain to the configured anchors of one card kind,
//!   validity, key usage, CRLs, test certificates, agency lookup.
//! - [`pki_fixtures`]: `idp dev pki`, a test PKI shaped like the real one.
//!
//! The sign-in channels (TLS client certificate, signed challenge) build on these and come later.

pub mod challenge;
pub mod health;
pub mod oids;
pub mod pki_fixtures;
pub mod profile;
pub mod validate;
