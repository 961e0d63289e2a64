//! End-to-end tests: the real `idp` binary, driven over HTTP and through its CLI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli;
mod conformance;
mod harness;
mod keys;
mod login;
mod oidc_flow;
mod registration;
mod relying_party;
