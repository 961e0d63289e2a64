//! End-to-end tests: the real `idp` binary, driven over HTTP and through its CLI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod adversarial;
mod browser;
mod card;
mod card_tls;
mod claims;
mod claims_cards;
mod claims_protocol;
mod cli;
mod conformance;
mod harness;
mod hr;
mod keys;
mod login;
mod mail;
mod me;
mod oidc_flow;
mod outages;
mod portal;
mod processes;
mod registration;
mod relying_party;
mod revocation;
mod setup;
