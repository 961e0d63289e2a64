//! End-to-end tests: the real `idp` binary, driven over HTTP and through its CLI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod adversarial;
mod browser;
mod card;
mod card_tls;
mod claims;
mod cleanup;
mod cli;
mod conformance;
mod deploy;
mod harness;
mod hr;
mod keys;
mod login;
mod me;
mod metrics;
mod oidc_flow;
mod outbox;
mod portal;
mod registration;
mod relying_party;
mod revocation;
mod setup;
