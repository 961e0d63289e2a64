//! The identity provider as a library: the `idp` binary is a thin CLI over it, and the tests
//! drive the same code.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod app;
pub mod audit;
pub mod authn;
pub mod cleanup;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod error;
pub mod expiring;
pub mod http;
pub mod lang;
pub mod listen_fds;
pub mod mail;
pub mod metrics;
pub mod metrics_server;
pub mod national_id;
pub mod oidc;
pub mod outbound;
pub mod portal;
pub mod site;
pub mod state;
pub mod store;
pub mod templates;
