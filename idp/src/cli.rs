//! The `idp` command line: every command reads the same configuration as the server.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::accounts::one_time::{self, IssueError, IssueRequest, ResetBy};
use crate::accounts::register::{self, ImportError};
use crate::audit::{self, Event};
use crate::config::Config;
use crate::error::{now, InfraError};
use crate::national_id::NationalId;
use crate::oidc::clients::{self, ClientError, NewClient};
use crate::oidc::registration;
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
    /// Grant a role to a person in the register (their account is created if needed).
    Grant {
        #[arg(long)]
        national_id: String,
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(crate::accounts::roles::GRANTABLE))]
        role: String,
    },
    /// Withdraw a granted role.
    RevokeRole {
        #[arg(long)]
        national_id: String,
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(crate::accounts::roles::GRANTABLE))]
        role: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClientsCommand {
    /// Register an application; prints the client id and, once, its secret.
    Create(Box<CreateClient>),
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
    /// Change what only an operator decides about an application: who may use it, its minimum
    /// assurance level, and its permissions. Settings not given stay as they are.
    Update(UpdateClient),
    /// Remove an application.
    Delete { client_id: String },
    /// Replace an application's secret; prints the new one, once. The old one keeps working
    /// beside it for `--old-valid-for`, then stops on every node.
    RotateSecret {
        client_id: String,
        /// How long the old secret keeps working: `0` (stops at once) or e.g. `1h`, `7d` (1 minute to 30 days).
        #[arg(long, default_value = "0", value_parser = clients::parse_secret_overlap)]
        old_valid_for: std::time::Duration,
        /// Print `{"client_id": …, "client_secret": …, "old_secret_valid_until": …}` (epoch seconds or null).
        #[arg(long)]
        json: bool,
    },
    /// Print a single-use initial access token for dynamic client registration (RFC 7591).
    IssueRegistrationToken {
        /// How long the token can be used, e.g. `24h`, `30m`, `7d` (at most 30 days).
        #[arg(long, default_value = "24h", value_parser = parse_registration_token_ttl)]
        ttl: std::time::Duration,
        /// Print `{"initial_access_token": …, "expires_at": …}` (epoch seconds).
        #[arg(long)]
        json: bool,
    },
}

/// A human duration (`humantime` syntax) within the initial access token's allowed lifetime,
/// checked here so a typo is a usage error before anything is stored.
fn parse_registration_token_ttl(s: &str) -> Result<std::time::Duration, String> {
    let ttl = humantime_serde::re::humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if ttl.is_zero() || ttl > registration::MAX_INITIAL_ACCESS_TOKEN_TTL {
        return Err("must be between 1s and 30 days".into());
    }
    Ok(ttl)
}

#[derive(Args, Debug)]
pub struct CreateClient {
    #[arg(long)]
    pub name: String,
    #[arg(long = "redirect-uri")]
    pub redirect_uris: Vec<String>,
    #[arg(long = "post-logout-redirect-uri")]
    pub post_logout_redirect_uris: Vec<String>,
    /// A public client (no secret; PKCE required); same as `--token-endpoint-auth-method none`.
    #[arg(long)]
    pub public: bool,
    /// Choose the client id instead of a random one.
    #[arg(long)]
    pub client_id: Option<String>,
    /// ID token signing algorithm: ES256 (default) or RS256.
    #[arg(long, default_value = "ES256")]
    pub id_token_alg: String,
    /// client_secret_basic (default), client_secret_post, private_key_jwt or none.
    #[arg(long, default_value = "client_secret_basic")]
    pub token_endpoint_auth_method: String,
    /// Allowed grant types (repeatable): authorization_code, refresh_token, client_credentials.
    /// Default: authorization_code and refresh_token.
    #[arg(long = "grant-type")]
    pub grant_types: Vec<String>,
    /// Allowed scopes, space-separated. Default: every scope except national_id.
    #[arg(long)]
    pub scope: Option<String>,
    /// Ask people for consent (third-party applications). First-party ones are pre-approved.
    #[arg(long)]
    pub require_consent: bool,
    /// Minimum assurance level: loa-1 or loa-2.
    #[arg(long)]
    pub min_acr: Option<String>,
    /// `public` (default) or `pairwise` subject identifiers.
    #[arg(long, default_value = "public")]
    pub subject_type: String,
    /// A JWK set file with the client's public keys (private_key_jwt).
    #[arg(long)]
    pub jwks_file: Option<PathBuf>,
    /// Where the client publishes its JWK set (private_key_jwt).
    #[arg(long)]
    pub jwks_uri: Option<String>,
    /// Back-channel logout endpoint of the client.
    #[arg(long)]
    pub backchannel_logout_uri: Option<String>,
    /// Who may use it: everyone (default), hr-staff, or agency:CODE[,CODE].
    #[arg(long, default_value = "everyone")]
    pub audience: String,
    /// Portal (應用系統) category, e.g. "B. 人事資料服務"; without one the portal does not list it.
    #[arg(long)]
    pub portal_category: Option<String>,
    /// Portal description.
    #[arg(long)]
    pub portal_description: Option<String>,
    /// Portal link (the application's start page).
    #[arg(long)]
    pub portal_url: Option<String>,
    /// May introspect tokens issued to other clients (an API that receives them).
    #[arg(long)]
    pub resource_server: bool,
    /// Print a JSON object with `client_id` and `client_secret` (RFC 7591 names).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct UpdateClient {
    pub client_id: String,
    /// Who may use it: everyone, hr-staff, or agency:CODE[,CODE].
    #[arg(long)]
    pub audience: Option<String>,
    /// Minimum assurance level: loa-1 or loa-2, or `none` to remove it.
    #[arg(long)]
    pub min_acr: Option<String>,
    /// Let a dynamically registered client use client_credentials (`=false` withdraws it).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub allow_client_credentials: Option<bool>,
    /// Let the client introspect tokens issued to other clients (`=false` withdraws it).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub resource_server: Option<bool>,
}

impl CreateClient {
    fn into_new_client(self) -> Result<NewClient, Failure> {
        let mut new = NewClient::new(&self.name, self.redirect_uris);
        new.client_id = self.client_id;
        new.post_logout_redirect_uris = self.post_logout_redirect_uris;
        new.id_token_alg = self.id_token_alg;
        new.token_endpoint_auth_method = if self.public { "none".into() } else { self.token_endpoint_auth_method };
        if !self.grant_types.is_empty() {
            new.grant_types = self.grant_types;
        } else if new.token_endpoint_auth_method == "none" {
            new.grant_types = vec!["authorization_code".into(), "refresh_token".into()];
        }
        if let Some(scope) = self.scope {
            new.scope = scope.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect();
            if !new.scope.iter().any(|s| s == "openid") && new.grant_types.iter().any(|g| g == "authorization_code") {
                new.scope.insert(0, "openid".into());
            }
        }
        new.consent_required = self.require_consent;
        new.min_acr = self.min_acr;
        new.subject_type = self.subject_type;
        new.jwks_uri = self.jwks_uri;
        new.backchannel_logout_uri = self.backchannel_logout_uri;
        new.audience = clients::Audience::parse(&self.audience).map_err(fail)?;
        new.resource_server = self.resource_server;
        new.portal = clients::Portal {
            category: self.portal_category,
            description: self.portal_description,
            url: self.portal_url,
        };
        if let Some(file) = self.jwks_file {
            let text = std::fs::read_to_string(&file).map_err(|e| fail(format!("{}: {e}", file.display())))?;
            new.jwks = Some(serde_json::from_str(&text).map_err(|e| fail(format!("{}: {e}", file.display())))?);
        }
        Ok(new)
    }
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
        Command::Users { command: UsersCommand::Grant { national_id, role } } => {
            role_command(config, &national_id, &role, true)
        }
        Command::Users { command: UsersCommand::RevokeRole { national_id, role } } => {
            role_command(config, &national_id, &role, false)
        }
        Command::Clients { command } => clients_command(config, command),
        Command::Keys { command } => keys_command(config, command),
        Command::Dev { command: DevCommand::Pki { out } } => dev_pki(&out),
    }
}

fn serve(mut config: Config, demo: bool) -> Result<(), Failure> {
    // Before any thread exists: taking them clears the protocol's environment variables.
    let inherited = crate::listen_fds::take().map_err(|e| fail(format!("socket activation: {e}")))?;
    if demo && !config.certificates.enabled() {
        demo_pki(&mut config)?;
    }
    let runtime = tokio::runtime::Runtime::new().map_err(|e| fail(e.to_string()))?;
    let served = runtime.block_on(async move {
        if demo {
            let c = config.clone();
            tokio::task::spawn_blocking(move || load_demo(c)).await.map_err(|e| fail(e.to_string()))??;
        }
        let (listener, activated) = match inherited.http {
            Some(l) => (l, true),
            None => (
                std::net::TcpListener::bind(&config.http.bind)
                    .map_err(|e| fail(format!("http.bind {}: {e}", config.http.bind)))?,
                false,
            ),
        };
        let addr = listener.local_addr().map_err(|e| fail(e.to_string()))?;
        let state = AppState::build(config).await?;
        crate::oidc::backchannel::spawn_pending_delivery(state.clone());
        crate::cleanup::spawn(state.clone());
        crate::metrics::serve(&state, inherited.metrics)?;
        tracing::info!(%addr, issuer = %state.config.issuer, database = if state.config.database_url().starts_with("sqlite") { "sqlite" } else { "postgresql" }, shared_cache = state.eph.is_shared(), socket_activation = activated, "listening");
        let card_server = crate::http::card_tls::serve(state.clone(), inherited.card_tls)?;
        let server = crate::app::serve(state.clone(), listener).map_err(|e| fail(e.to_string()))?;
        let handles = std::iter::once(server.handle()).chain(card_server.as_ref().map(|c| c.handle())).collect();
        tokio::spawn(crate::app::stop_on_signal(state, handles));
        match card_server {
            Some(card) => {
                let (main, card) = tokio::join!(server, card);
                main.and(card).map_err(|e| fail(e.to_string()))
            }
            None => server.await.map_err(|e| fail(e.to_string())),
        }
    });
    // Background work still running (a database call on a server that never answers cannot be
    // interrupted) must not keep a stopped server from exiting.
    runtime.shutdown_timeout(crate::app::RUNTIME_SHUTDOWN);
    served
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
        &IssueRequest { national_id: &nid, email, issued_by: "helpdesk:cli", by: ResetBy::Server, ttl_secs: ttl },
        now,
    ) {
        Ok(issued) => {
            let (sessions, tokens) = (issued.ended.sids.len(), issued.ended.refresh_tokens);
            let notice = if issued.notice_to.is_some() { ", notice sent to the account's own address" } else { "" };
            audit::record(
                &mut conn,
                Event {
                    event: "password.reset",
                    outcome: "success",
                    actor: Some("helpdesk:cli"),
                    account_id: Some(&issued.account.id),
                    detail: format!(
                        "one-time password mailed for {nid}; old password ended, {sessions} session(s) ended, \
                         {tokens} refresh token(s) revoked{notice}"
                    ),
                    ..Default::default()
                },
                now,
            )?;
            println!(
                "a one-time password for {nid} was mailed to {}; it expires in {} hours",
                email.trim(),
                ttl / 3600
            );
            // The running servers send the back-channel logouts (they sweep for ended sessions).
            println!(
                "the old password no longer works; {sessions} session(s) ended, {tokens} refresh token(s) revoked"
            );
            if issued.notice_to.is_some() {
                println!("the account's own e-mail address was told of the reset (without the password)");
            }
            Ok(())
        }
        Err(e) => {
            let outcome = match &e {
                IssueError::NotInRegister => "not_in_register",
                IssueError::Separated => "separated",
                IssueError::BadEmail(_) => "bad_email",
                IssueError::Privileged => "privileged",
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
            // The helpdesk must know whether to tell the person to wait for a mail: a failed
            // delivery rolled the whole reset back.
            if let IssueError::Infra(InfraError::Mail(_)) = e {
                return Err(fail(format!(
                    "{e}; nothing was reset: no one-time password was issued, and the old password, \
                     sessions and any earlier one-time password still work"
                )));
            }
            Err(fail(e.to_string()))
        }
    }
}

/// `idp users grant` / `revoke-role`: the helpdesk and operator roles are not in the register,
/// so an operator grants them by national ID; the account is created (pending) if the person
/// never signed in, so the role is there at their first sign-in. Audited as `role.grant` /
/// `role.revoke`, the national ID only masked.
fn role_command(config: Config, national_id: &str, role: &str, grant: bool) -> Result<(), Failure> {
    use crate::accounts::{self, roles};
    let nid = NationalId::parse(national_id).map_err(|e| fail(format!("--national-id: {e}")))?;
    let core = Core::open(config)?;
    let mut conn = core.db.get()?;
    let now = now();
    let event = if grant { "role.grant" } else { "role.revoke" };
    let Some(person) = accounts::person_by_national_id(&mut conn, &core.protector, &nid)? else {
        let e = Event {
            event,
            outcome: "not_in_register",
            actor: Some("cli"),
            detail: format!("{role} for {nid}"),
            ..Default::default()
        };
        audit::record(&mut conn, e, now)?;
        return Err(fail(format!("no one with national ID {nid} is in the personnel register")));
    };
    if grant && person.status == accounts::PersonStatus::Separated {
        let e = Event {
            event,
            outcome: "separated",
            actor: Some("cli"),
            detail: format!("{role} for {nid}"),
            ..Default::default()
        };
        audit::record(&mut conn, e, now)?;
        return Err(fail(format!("{nid} is separated (not in service); no role can be granted")));
    }
    let (account, changed) = if grant {
        let account = accounts::ensure_account(&mut conn, &person, now)?;
        let held = roles::granted(&mut conn, &account.id)?.iter().any(|r| r == role);
        roles::grant(&mut conn, &account.id, role, "cli", now)?;
        (Some(account), !held)
    } else {
        match accounts::account_of_person(&mut conn, &person.id)? {
            Some(account) => {
                let held = roles::revoke(&mut conn, &account.id, role)?;
                (Some(account), held)
            }
            None => (None, false),
        }
    };
    let outcome = match (grant, changed) {
        (_, true) => "success",
        (true, false) => "already_held",
        (false, false) => "not_held",
    };
    let e = Event {
        event,
        outcome,
        actor: Some("cli"),
        account_id: account.as_ref().map(|a| a.id.as_str()),
        detail: format!("{role} for {nid}"),
        ..Default::default()
    };
    audit::record(&mut conn, e, now)?;
    match (grant, changed) {
        (true, true) => println!("role {role} granted to {nid}"),
        (true, false) => println!("{nid} already holds role {role}"),
        (false, true) => println!("role {role} withdrawn from {nid}"),
        (false, false) => println!("{nid} does not hold role {role}; nothing changed"),
    }
    Ok(())
}

fn print_client(c: &clients::Client) {
    println!("client_id:                  {}", c.client_id);
    println!("name:                       {}", c.client_name);
    println!("token_endpoint_auth_method: {}", c.token_endpoint_auth_method);
    println!("grant_types:                {}", c.grant_types.join(" "));
    println!("scope:                      {}", c.scope.join(" "));
    println!("subject_type:               {}", c.subject_type);
    println!("consent:                    {}", if c.consent_required { "required" } else { "pre-approved" });
    if let Some(acr) = &c.min_acr {
        println!("min_acr:                    {acr}");
    }
    println!("audience:                   {}", c.audience.as_string());
    if c.resource_server {
        println!("resource_server:            yes (may introspect other clients' tokens)");
    }
    if c.client_credentials_allowed {
        println!("client_credentials_allowed: yes");
    }
    if let Some(uri) = &c.backchannel_logout_uri {
        println!("backchannel_logout_uri:     {uri}");
    }
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
            let json = a.json;
            let new = (*a).into_new_client()?;
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
            if json {
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
        ClientsCommand::Update(u) => {
            let change = clients::OperatorChange {
                audience: u.audience.as_deref().map(clients::Audience::parse).transpose().map_err(fail)?,
                min_acr: u.min_acr.map(|a| (a != "none").then_some(a)),
                client_credentials_allowed: u.allow_client_credentials,
                resource_server: u.resource_server,
            };
            let client = clients::change_by_operator(&mut conn, &u.client_id, &change, now)
                .map_err(|e| match e {
                    ClientError::Infra(e) => e.into(),
                    e => fail(e.to_string()),
                })?
                .ok_or_else(|| fail(format!("no client `{}`", u.client_id)))?;
            audit::record(
                &mut conn,
                Event {
                    event: "client.update",
                    outcome: "success",
                    actor: Some("cli"),
                    client_id: Some(&client.client_id),
                    detail: format!(
                        "audience {}, min_acr {}, client_credentials_allowed {}, resource_server {}",
                        client.audience.as_string(),
                        client.min_acr.as_deref().unwrap_or("none"),
                        client.client_credentials_allowed,
                        client.resource_server
                    ),
                    ..Default::default()
                },
                now,
            )?;
            print_client(&client);
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
        ClientsCommand::RotateSecret { client_id, old_valid_for, json } => {
            let rotated = clients::rotate_secret_with_overlap(&mut conn, &client_id, old_valid_for, now)?
                .ok_or_else(|| fail(format!("no client `{client_id}` with a secret")))?;
            let until = rotated.old_valid_until.map(timestamp);
            audit::record(
                &mut conn,
                Event {
                    event: "client.rotate_secret",
                    outcome: "success",
                    actor: Some("cli"),
                    client_id: Some(&client_id),
                    detail: clients::rotation_detail(rotated.old_valid_until),
                    ..Default::default()
                },
                now,
            )?;
            if json {
                let v = serde_json::json!({
                    "client_id": client_id,
                    "client_secret": rotated.secret,
                    "old_secret_valid_until": rotated.old_valid_until,
                });
                println!("{v}");
            } else {
                println!("client_secret:              {}", rotated.secret);
                println!("old secret valid until:     {}", until.as_deref().unwrap_or("(stopped now)"));
                println!("(the secret is shown this once; store it now)");
            }
            Ok(())
        }
        ClientsCommand::IssueRegistrationToken { ttl, json } => {
            let issued = registration::issue_initial_access_token(&mut conn, ttl, now)?;
            audit::record(
                &mut conn,
                Event {
                    event: "registration_token.issue",
                    outcome: "success",
                    actor: Some("cli"),
                    detail: format!("expires at {}", issued.expires_at),
                    ..Default::default()
                },
                now,
            )?;
            if json {
                let v = serde_json::json!({ "initial_access_token": issued.token, "expires_at": issued.expires_at });
                println!("{v}");
            } else {
                let expires = std::time::UNIX_EPOCH + std::time::Duration::from_secs(issued.expires_at.max(0) as u64);
                println!("initial_access_token:       {}", issued.token);
                println!(
                    "expires_at:                 {}",
                    humantime_serde::re::humantime::format_rfc3339_seconds(expires)
                );
                println!("(single use: send it as `Authorization: Bearer …` to POST /register; shown this once)");
            }
            Ok(())
        }
    }
}

/// The example application's client id in the demo.
pub const DEMO_CLIENT_ID: &str = "relying-party-example";

/// The demo trusts a test PKI made once in `<data_dir>/pki`, so card sign-in can be tried with
/// the card simulator (`card-simulator --card <data_dir>/pki/citizen-A123456789.pem`).
#[cfg(feature = "dev-pki")]
fn demo_pki(config: &mut Config) -> Result<(), Failure> {
    use test_pki::fixtures::{self as pki_fixtures, FixtureOptions};
    let dir = config.data_dir.join("pki");
    let manifest_file = dir.join("manifest.json");
    let manifest: pki_fixtures::Manifest = if manifest_file.exists() {
        let text =
            std::fs::read_to_string(&manifest_file).map_err(|e| fail(format!("{}: {e}", manifest_file.display())))?;
        serde_json::from_str(&text).map_err(|e| fail(format!("{}: {e}", manifest_file.display())))?
    } else {
        std::fs::create_dir_all(&dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
        pki_fixtures::generate_with(&dir, &FixtureOptions::fast()).map_err(|e| fail(e.to_string()))?
    };
    let paths = |files: &[String]| files.iter().map(|f| dir.join(f)).collect::<Vec<_>>();
    config.certificates.citizen_trust_anchors = paths(&manifest.citizen_trust_anchors);
    config.certificates.agency_trust_anchors = paths(&manifest.agency_trust_anchors);
    config.certificates.crl_files = paths(&manifest.crl_files);
    // Its CRLs are short-lived test data; a demo older than a week should still let people in.
    config.certificates.revocation = "best-effort".into();
    eprintln!("demo: card sign-in trusts the test PKI in {}", dir.display());
    Ok(())
}

/// Without the `dev-pki` feature there is no test PKI to make: the demo needs `certificates.*`.
#[cfg(not(feature = "dev-pki"))]
fn demo_pki(_: &mut Config) -> Result<(), Failure> {
    Err(fail(format!("the demo needs certificates.* configured: {NO_DEV_PKI}")))
}

/// What a command that needs the test PKI says in a build without it.
#[cfg(not(feature = "dev-pki"))]
const NO_DEV_PKI: &str = "the test PKI is not in this build (built without the dev-pki feature)";

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
                post_logout_redirect_uris: vec!["http://127.0.0.1:8081/".into()],
                ..NewClient::new("Relying party example / 範例應用系統", vec!["http://127.0.0.1:8081/callback".into()])
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
            &IssueRequest {
                national_id: &demo,
                email: "ming@example.gov.tw",
                issued_by: "demo",
                by: ResetBy::Server,
                ttl_secs: ttl,
            },
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

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// List the signing keys and where each is in its lifecycle (next, active, retiring, expired).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Make a new signing key: published at once, signing after `keys.activation_delay`; the
    /// key it replaces stays published until the tokens it signed have expired.
    Rotate {
        /// ES256, RS256 or all.
        #[arg(long, default_value = "all", ignore_case = true,
              value_parser = clap::builder::PossibleValuesParser::new(["ES256", "RS256", "all"]))]
        alg: String,
        /// Emergency rotation: the new key signs at once (relying parties that cached the JWKS
        /// fetch it again on the unknown key id).
        #[arg(long)]
        now: bool,
    },
}

/// An epoch time as RFC 3339 (UTC, whole seconds).
fn timestamp(t: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(t).unwrap_or(0));
    humantime_serde::re::humantime::format_rfc3339_seconds(at).to_string()
}

fn keys_command(config: Config, command: KeysCommand) -> Result<(), Failure> {
    use crate::oidc::keys::{self, KeyPolicy};
    let policy = KeyPolicy::from_config(&config);
    let core = Core::open(config)?;
    let mut conn = core.db.get()?;
    let now = now();
    match command {
        KeysCommand::List { json } => {
            let all = keys::list(&mut conn, policy.retention, now)?;
            if json {
                println!("{}", serde_json::to_string(&all).map_err(|e| fail(e.to_string()))?);
            } else {
                let opt = |t: Option<i64>| t.map(timestamp).unwrap_or_else(|| "-".into());
                let row = |c: [&str; 7]| {
                    format!(
                        "{:<16}  {:<5}  {:<8}  {:<20}  {:<20}  {:<20}  {}",
                        c[0], c[1], c[2], c[3], c[4], c[5], c[6]
                    )
                };
                println!("{}", row(["kid", "alg", "state", "created", "activates", "retires", "unpublished"]));
                for k in all {
                    println!(
                        "{}",
                        row([
                            &k.kid,
                            &k.alg,
                            k.state.as_str(),
                            &timestamp(k.created_at),
                            &timestamp(k.activates_at),
                            &opt(k.retired_at),
                            &opt(k.unpublished_at),
                        ])
                    );
                }
            }
            Ok(())
        }
        KeysCommand::Rotate { alg, now: at_once } => {
            let algs: Vec<&str> = if alg.eq_ignore_ascii_case("all") {
                keys::ALGORITHMS.to_vec()
            } else {
                keys::ALGORITHMS.iter().copied().filter(|a| a.eq_ignore_ascii_case(&alg)).collect()
            };
            let activates_at = if at_once { now } else { now.saturating_add(policy.activation_delay) };
            for alg in algs {
                let r = keys::rotate(&mut conn, &core.protector, alg, activates_at, now)?;
                let mut detail = format!(
                    "{alg}: new key {} signs from {}{}",
                    r.key.kid,
                    timestamp(activates_at),
                    if at_once { " (at once)" } else { "" }
                );
                if let Some(old) = &r.replaces {
                    detail.push_str(&format!(
                        "; replaces {old}, published until {}",
                        timestamp(activates_at.saturating_add(policy.retention))
                    ));
                }
                if !r.withdrawn.is_empty() {
                    detail.push_str(&format!("; withdrew pending {}", r.withdrawn.join(" ")));
                }
                audit::record(
                    &mut conn,
                    Event {
                        event: "key.rotate",
                        outcome: "success",
                        actor: Some("cli"),
                        detail: detail.clone(),
                        ..Default::default()
                    },
                    now,
                )?;
                println!("{detail}");
            }
            let removed = keys::delete_expired(&mut conn, policy.retention, now)?;
            if !removed.is_empty() {
                println!("removed expired keys: {}", removed.join(" "));
            }
            Ok(())
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum DevCommand {
    /// Write a test PKI shaped like Taiwan's government PKI (citizen, agency and test CAs, people's
    /// and agencies' certificates, CRLs, manifest.json) into DIR. Private keys are unprotected.
    Pki {
        /// Output directory (created if needed; files of the same names are overwritten).
        #[arg(long)]
        out: PathBuf,
    },
}

/// `idp dev pki`: generates the card test PKI and lists what it wrote.
#[cfg(feature = "dev-pki")]
fn dev_pki(out: &std::path::Path) -> Result<(), Failure> {
    let manifest = test_pki::fixtures::generate(out).map_err(|e| fail(e.to_string()))?;
    let mut stdout = std::io::stdout().lock();
    for entry in &manifest.files {
        let _ = writeln!(stdout, "{:<42} {}", entry.file, entry.description);
    }
    let _ = writeln!(
        stdout,
        "wrote {} files and {} to {}",
        manifest.files.len(),
        test_pki::fixtures::MANIFEST,
        out.display()
    );
    Ok(())
}

/// `idp dev pki` in a build without the test PKI.
#[cfg(not(feature = "dev-pki"))]
fn dev_pki(_: &std::path::Path) -> Result<(), Failure> {
    Err(fail(NO_DEV_PKI))
}
