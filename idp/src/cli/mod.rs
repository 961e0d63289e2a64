//! The `idp` command line: every command reads the same configuration as the server. Each
//! command group is one file with its clap definitions; a command parses, calls one domain
//! function and prints.

mod clients;
mod demo;
mod dev;
mod imports;
mod keys;
mod serve;
mod users;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::error::InfraError;

pub use clients::{ClientsCommand, CreateClient, UpdateClient};
pub use demo::DEMO_CLIENT_ID;
pub use dev::DevCommand;
pub use imports::ImportCommand;
pub use keys::KeysCommand;
pub use users::UsersCommand;

#[derive(Parser, Debug)]
#[command(name = "idp", version, about = "人事服務網 單一登入 — OpenID Connect identity provider")]
pub struct Cli {
    /// TOML configuration file (also `IDP_CONFIG`); `IDP_<KEY>` variables override it.
    #[arg(long, global = true, env = "IDP_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server.
    Serve,
    /// Load demo data (agencies, people, two applications, announcements, an operator; one-time
    /// passwords into the outbox) and run the server.
    Demo {
        /// Load the demo data and exit instead of serving (e.g. before `idp serve`).
        #[arg(long)]
        no_serve: bool,
    },
    /// Apply pending database migrations.
    Migrate,
    /// The agency table (機關代碼檔).
    Agencies {
        #[command(subcommand)]
        command: ImportCommand,
    },
    /// The personnel register (公務人力資料庫).
    Personnel {
        #[command(subcommand)]
        command: ImportCommand,
    },
    /// People's accounts.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Relying applications.
    Clients {
        #[command(subcommand)]
        command: ClientsCommand,
    },
    /// Token signing keys: list and rotate.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Development tools (test data; never for production).
    Dev {
        #[command(subcommand)]
        command: DevCommand,
    },
}

/// A command's failure: the message for the operator and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub code: i32,
}

impl<E: Into<InfraError>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure { message: e.into().to_string(), code: 1 }
    }
}

pub(crate) fn fail(message: impl Into<String>) -> Failure {
    Failure { message: message.into(), code: 1 }
}

/// Sets up logging to standard error (standard output is for command results).
pub fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level).unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if config.log.format == "json" { builder.json().try_init() } else { builder.try_init() };
}

/// Runs a parsed command.
pub fn run(cli: Cli) -> Result<(), Failure> {
    let config = Config::load(cli.config.as_deref()).map_err(|e| fail(e.to_string()))?;
    init_logging(&config);
    tracing::debug!(?config, "effective configuration");
    match cli.command {
        Command::Serve => serve::serve(config, false),
        Command::Demo { no_serve: false } => serve::serve(config, true),
        Command::Demo { no_serve: true } => demo::load_demo(config),
        Command::Migrate => {
            let core = crate::state::Core::open(config)?;
            let ran = core.db.migrate()?;
            println!("database is up to date ({ran} migration(s) applied now)");
            Ok(())
        }
        Command::Agencies { command } => imports::run(config, command, false),
        Command::Personnel { command } => imports::run(config, command, true),
        Command::Users { command } => users::run(config, command),
        Command::Clients { command } => clients::run(config, command),
        Command::Keys { command } => keys::run(config, command),
        Command::Dev { command } => dev::run(command),
    }
}
