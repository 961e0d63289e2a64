//! The `idp` command line: every command reads the same configuration as the server.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::accounts::one_time::{self, IssueError, IssueRequest};
use crate::accounts::register::{self, ImportError};
use crate::audit::{self, Event};
use crate::config::Config;
use crate::error::{now, InfraError};
use crate::national_id::NationalId;
use crate::oidc::clients::{self, ClientError, NewClient};
use crate::state::{AppState, Core};

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
    /// Load demo data (agency, people, the example application's client) and run the server.
    Demo,
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
}

#[derive(Subcommand, Debug)]
pub enum ImportCommand {
    /// Import a CSV file; nothing is applied if any row is invalid.
    Import { file: PathBuf },
}

#[derive(Subcommand, Debug)]
pub enum UsersCommand {
    /// Mail a one-time password (helpdesk); it is never printed.
    ResetPassword {
        #[arg(long)]
        national_id: String,
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClientsCommand {
    /// Register an application; prints the client id and, once, its secret.
    Create(CreateClient),
    /// List applications.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one application.
    Show {
        client_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove an application.
    Delete { client_id: String },
}

#[derive(Args, Debug)]
pub struct CreateClient {
    #[arg(long)]
    pub name: String,
    #[arg(long = "redirect-uri", required = true)]
    pub redirect_uris: Vec<String>,
    #[arg(long = "post-logout-redirect-uri")]
    pub post_logout_redirect_uris: Vec<String>,
    /// A public client (no secret; PKCE required).
    #[arg(long)]
    pub public: bool,
    /// Choose the client id instead of a random one.
    #[arg(long)]
    pub client_id: Option<String>,
    /// ID token signing algorithm: ES256 (default) or RS256.
    #[arg(long, default_value = "ES256")]
    pub id_token_alg: String,
    /// Print a JSON object with `client_id` and `client_secret` (RFC 7591 names).
    #[arg(long)]
    pub json: bool,
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

fn fail(message: impl Into<String>) -> Failure {
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
        Command::Serve => serve(config, false),
        Command::Demo => serve(config, true),
        Command::Migrate => {
            let core = Core::open(config)?;
            let ran = core.db.migrate()?;
            println!("database is up to date ({ran} migration(s) applied now)");
            Ok(())
        }
        Command::Agencies { command: ImportCommand::Import { file } } => import(config, &file, false),
        Command::Personnel { command: ImportCommand::Import { file } } => import(config, &file, true),
        Command::Users { command: UsersCommand::ResetPassword { national_id, email } } => {
            reset_password(config, &national_id, &email)
        }
        Command::Clients { command } => clients_command(config, command),
    }
}

fn serve(config: Config, demo: bool) -> Result<(), Failure> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| fail(e.to_string()))?;
    runtime.block_on(async move {
        if demo {
            let c = config.clone();
            tokio::task::spawn_blocking(move || load_demo(c)).await.map_err(|e| fail(e.to_string()))??;
        }
        let listener = std::net::TcpListener::bind(&config.http.bind).map_err(|e| fail(format!("http.bind {}: {e}", config.http.bind)))?;
        let addr = listener.local_addr().map_err(|e| fail(e.to_string()))?;
        let state = AppState::build(config).await?;
        tracing::info!(%addr, issuer = %state.config.issuer, database = if state.config.database_url().starts_with("sqlite") { "sqlite" } else { "postgresql" }, shared_cache = state.eph.is_shared(), "listening");
        let server = crate::app::serve(state, listener).map_err(|e| fail(e.to_string()))?;
        server.await.map_err(|e| fail(e.to_string()))
    })
}

fn import(config: Config, file: &std::path::Path, personnel: bool) -> Result<(), Failure> {
    let bytes = std::fs::read(file).map_err(|e| fail(format!("{}: {e}", file.display())))?;
    let core = Core::open(config)?;
    let mut conn = core.db.get()?;
    let now = now();
    let result = if personnel {
        register::import_personnel(&mut conn, &core.protector, &bytes, now)
    } else {
        register::import_agencies(&mut conn, &bytes, now)
    };
    let what = if personnel { "personnel.import" } else { "agencies.import" };
    match result {
        Ok(r) => {
            let detail = format!(
                "inserted {}, updated {}, unchanged {}, separated {}",
                r.inserted, r.updated, r.unchanged, r.separated
            );
            audit::record(
                &mut conn,
                Event {
                    event: what,
                    outcome: "success",
                    actor: Some("cli"),
                    detail: detail.clone(),
                    ..Default::default()
                },
                now,
            )?;
            println!("{}: {detail}", file.display());
            Ok(())
        }
        Err(ImportError::Invalid(errors)) => {
            let mut err = std::io::stderr().lock();
            for e in &errors {
                let _ = writeln!(err, "{}: {e}", file.display());
            }
            let _ = audit::record(
                &mut conn,
                Event {
                    event: what,
                    outcome: "rejected",
                    actor: Some("cli"),
                    detail: format!("{} problem(s)", errors.len()),
                    ..Default::default()
                },
                now,
            );
            Err(fail(format!("{} problem(s) found; nothing was imported", errors.len())))
        }
        Err(ImportError::Infra(e)) => Err(e.into()),
    }
}

fn reset_password(config: Config, national_id: &str, email: &str) -> Result<(), Failure> {
    let nid = NationalId::parse(national_id).map_err(|e| fail(format!("--national-id: {e}")))?;
    let ttl = config.login.one_time_password_ttl.as_secs() as i64;
    let core = Core::open(config)?;
    let mut conn = core.db.get()?;
    let now = now();
    match one_time::issue(
        &mut conn,
        &core.protector,
        &core.mailer,
        &IssueRequest { national_id: &nid, email, issued_by: "helpdesk:cli", ttl_secs: ttl },
        now,
    ) {
        Ok(issued) => {
            audit::record(
                &mut conn,
                Event {
                    event: "password.reset",
                    outcome: "success",
                    actor: Some("helpdesk:cli"),
                    account_id: Some(&issued.account.id),
                    detail: format!("one-time password mailed for {nid}"),
                    ..Default::default()
                },
                now,
            )?;
            println!(
                "a one-time password for {nid} was mailed to {}; it expires in {} hours",
                email.trim(),
                ttl / 3600
            );
            Ok(())
        }
        Err(e) => {
            let outcome = match &e {
                IssueError::NotInRegister => "not_in_register",
                IssueError::Separated => "separated",
                IssueError::BadEmail(_) => "bad_email",
                IssueError::Infra(_) => "error",
            };
            let _ = audit::record(
                &mut conn,
                Event {
                    event: "password.reset",
                    outcome,
                    actor: Some("helpdesk:cli"),
                    detail: format!("for {nid}"),
                    ..Default::default()
                },
                now,
            );
            Err(fail(e.to_string()))
        }
    }
}

fn print_client(c: &clients::Client) {
    println!("client_id:                  {}", c.client_id);
    println!("name:                       {}", c.client_name);
    println!("type:                       {}", if c.public { "public" } else { "confidential" });
    println!("redirect_uris:              {}", c.redirect_uris.join(" "));
    println!("post_logout_redirect_uris:  {}", c.post_logout_redirect_uris.join(" "));
    println!("id_token_signed_response_alg: {}", c.id_token_signed_response_alg);
}

fn clients_command(config: Config, command: ClientsCommand) -> Result<(), Failure> {
    let core = Core::open(config)?;
    let mut conn = core.db.get()?;
    let now = now();
    match command {
        ClientsCommand::Create(a) => {
            let new = NewClient {
                client_id: a.client_id,
                name: a.name,
                redirect_uris: a.redirect_uris,
                post_logout_redirect_uris: a.post_logout_redirect_uris,
                public: a.public,
                id_token_alg: a.id_token_alg,
            };
            let (client, secret) = clients::create(&mut conn, new, now).map_err(|e| match e {
                ClientError::Infra(e) => e.into(),
                e => fail(e.to_string()),
            })?;
            audit::record(
                &mut conn,
                Event {
                    event: "client.create",
                    outcome: "success",
                    actor: Some("cli"),
                    client_id: Some(&client.client_id),
                    ..Default::default()
                },
                now,
            )?;
            if a.json {
                let mut v = serde_json::to_value(&client).map_err(|e| fail(e.to_string()))?;
                if let Some(s) = &secret {
                    v["client_secret"] = serde_json::json!(s);
                }
                println!("{v}");
            } else {
                print_client(&client);
                if let Some(s) = secret {
                    println!("client_secret:              {s}");
                    println!("(the secret is shown this once; store it now)");
                }
            }
            Ok(())
        }
        ClientsCommand::List { json } => {
            let all = clients::list(&mut conn)?;
            if json {
                println!("{}", serde_json::to_string(&all).map_err(|e| fail(e.to_string()))?);
            } else {
                for c in all {
                    println!(
                        "{}\t{}\t{}",
                        c.client_id,
                        if c.public { "public" } else { "confidential" },
                        c.client_name
                    );
                }
            }
            Ok(())
        }
        ClientsCommand::Show { client_id, json } => {
            let c = clients::get(&mut conn, &client_id)?.ok_or_else(|| fail(format!("no client `{client_id}`")))?;
            if json {
                println!("{}", serde_json::to_string(&c).map_err(|e| fail(e.to_string()))?);
            } else {
                print_client(&c);
            }
            Ok(())
        }
        ClientsCommand::Delete { client_id } => {
            if !clients::delete(&mut conn, &client_id)? {
                return Err(fail(format!("no client `{client_id}`")));
            }
            audit::record(
                &mut conn,
                Event {
                    event: "client.delete",
                    outcome: "success",
                    actor: Some("cli"),
                    client_id: Some(&client_id),
                    ..Default::default()
                },
                now,
            )?;
            println!("client {client_id} deleted");
            Ok(())
        }
    }
}

/// The example application's client id in the demo.
pub const DEMO_CLIENT_ID: &str = "relying-party-example";

/// Loads the demo agency table, people and client; idempotent.
fn load_demo(config: Config) -> Result<(), Failure> {
    let core = Core::open(config)?;
    let mut conn = core.db.get()?;
    let now = now();
    let invalid = |e: ImportError| match e {
        ImportError::Invalid(errs) => fail(errs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")),
        ImportError::Infra(e) => e.into(),
    };
    register::import_agencies(&mut conn, include_bytes!("../../deploy/demo/agencies.csv"), now).map_err(invalid)?;
    register::import_personnel(&mut conn, &core.protector, include_bytes!("../../deploy/demo/personnel.csv"), now)
        .map_err(invalid)?;
    let file = core.config.data_dir.join("demo-client.json");
    if clients::get(&mut conn, DEMO_CLIENT_ID)?.is_none() || !file.exists() {
        clients::delete(&mut conn, DEMO_CLIENT_ID)?;
        let (client, secret) = clients::create(
            &mut conn,
            NewClient {
                client_id: Some(DEMO_CLIENT_ID.into()),
                name: "Relying party example / 範例應用系統".into(),
                redirect_uris: vec!["http://127.0.0.1:8081/callback".into()],
                post_logout_redirect_uris: vec!["http://127.0.0.1:8081/".into()],
                public: false,
                id_token_alg: "ES256".into(),
            },
            now,
        )
        .map_err(|e| fail(e.to_string()))?;
        let json = serde_json::json!({ "client_id": client.client_id, "client_secret": secret });
        let _ = std::fs::remove_file(&file);
        crate::crypto::write_private(&file, json.to_string().as_bytes())
            .map_err(|e| fail(format!("{}: {e}", file.display())))?;
    }
    let demo = NationalId::parse("A123456789").map_err(|e| fail(e.to_string()))?;
    let person = crate::accounts::person_by_national_id(&mut conn, &core.protector, &demo)?;
    let activated = match &person {
        Some(p) => crate::accounts::account_of_person(&mut conn, &p.id)?
            .is_some_and(|a| a.state == crate::accounts::AccountState::Active),
        None => false,
    };
    if !activated {
        let ttl = core.config.login.one_time_password_ttl.as_secs() as i64;
        one_time::issue(
            &mut conn,
            &core.protector,
            &core.mailer,
            &IssueRequest { national_id: &demo, email: "ming@example.gov.tw", issued_by: "demo", ttl_secs: ttl },
            now,
        )
        .map_err(|e| fail(e.to_string()))?;
        eprintln!(
            "demo: a one-time password for A123456789 (王小明) is in the newest .eml file of {}",
            core.config.outbox_dir().display()
        );
    }
    eprintln!("demo: the example application's credentials are in {}", file.display());
    Ok(())
}
