//! End-to-end tests: the real `idp` binary, driven over HTTP and through its CLI.
// The tests stand outside the provider and make their tokens and certificates for the real clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod accessibility;
mod admin;
mod adversarial;
mod behind_nginx;
mod browser;
mod browser_environment;
mod card;
mod card_tls;
mod claims;
mod claims_cards;
mod claims_parameter;
mod claims_protocol;
mod cleanup;
mod cli;
mod conformance;
mod console;
mod dead_ends;
mod deploy;
mod email_verification;
mod fapi2_resources;
mod forgot;
mod harness;
mod help;
mod hr;
mod interop;
mod keys;
mod lang_switch;
mod login;
mod mail;
mod me;
mod metrics;
mod oidc_flow;
mod outages;
mod outbox;
mod par_dpop;
mod portal;
mod processes;
mod registration;
mod relying_party;
mod request_objects;
mod revocation;
mod secret_rotation;
mod setup;
mod site;
