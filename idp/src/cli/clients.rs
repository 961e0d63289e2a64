//! `idp clients`: relying applications and registration tokens.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{fail, Failure};
use crate::audit::Actor;
use crate::config::Config;
use crate::error::now;
use crate::oidc::clients::{self, ClientError, NewClient};
use crate::oidc::keys::rfc3339;
use crate::oidc::registration;
use crate::state::Core;

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
    #[arg(long)]
    pub id_token_alg: Option<String>,
    /// client_secret_basic (default), client_secret_post, private_key_jwt or none.
    #[arg(long)]
    pub token_endpoint_auth_method: Option<String>,
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
    #[arg(long)]
    pub subject_type: Option<String>,
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
    #[arg(long)]
    pub audience: Option<String>,
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
    /// The algorithm the client signs request objects with: RS256, PS256 or ES256 (default: any
    /// of them). Needs --jwks-file or --jwks-uri.
    #[arg(long)]
    pub request_object_signing_alg: Option<String>,
    /// Accept authorization requests from this client only as signed request objects.
    #[arg(long)]
    pub require_signed_request_object: bool,
    /// Accept only pushed authorization requests (RFC 9126 `require_pushed_authorization_requests`).
    #[arg(long)]
    pub require_par: bool,
    /// Refuse token requests without a DPoP proof (RFC 9449 `dpop_bound_access_tokens`).
    #[arg(long)]
    pub dpop_bound_access_tokens: bool,
    /// Follow the FAPI 2.0 Security Profile: needs --token-endpoint-auth-method private_key_jwt;
    /// switches on --require-par and --dpop-bound-access-tokens, PKCE S256 and codes of at most 60 s.
    #[arg(long)]
    pub fapi2: bool,
    /// The URI other clients ask for this resource server by (RFC 8707 `resource`); its tokens'
    /// audience. Needs --resource-server.
    #[arg(long)]
    pub resource_uri: Option<String>,
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
    /// Accept authorization requests only as signed request objects (`=false` withdraws it).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub require_signed_request_object: Option<bool>,
    /// Accept only pushed authorization requests (`=false` accepts plain ones again).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub require_par: Option<bool>,
    /// Refuse token requests without a DPoP proof (`=false` allows bearer tokens again).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub dpop_bound_access_tokens: Option<bool>,
    /// Follow the FAPI 2.0 Security Profile (`=false` leaves it; PAR and DPoP then stay as they are).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub fapi2: Option<bool>,
    /// The resource server's URI (RFC 8707), or `none` to remove it.
    #[arg(long)]
    pub resource_uri: Option<String>,
}

impl CreateClient {
    /// The client asked for: [`NewClient::new`]'s defaults (the operator page's too) with what
    /// the options change.
    fn into_new_client(self) -> Result<NewClient, Failure> {
        let given = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let mut new = NewClient::new(&self.name, self.redirect_uris);
        new.client_id = self.client_id;
        new.post_logout_redirect_uris = self.post_logout_redirect_uris;
        if let Some(alg) = self.id_token_alg {
            new.id_token_alg = alg;
        }
        if self.public {
            new.token_endpoint_auth_method = "none".into();
        } else if let Some(method) = self.token_endpoint_auth_method {
            new.token_endpoint_auth_method = method;
        }
        if !self.grant_types.is_empty() {
            new.grant_types = self.grant_types;
        }
        if let Some(scope) = self.scope.as_deref().and_then(clients::operator_scope) {
            new.scope = scope;
        }
        new.consent_required = self.require_consent;
        new.min_acr = self.min_acr;
        if let Some(subject_type) = self.subject_type {
            new.subject_type = subject_type;
        }
        new.jwks_uri = self.jwks_uri;
        new.backchannel_logout_uri = self.backchannel_logout_uri;
        if let Some(audience) = self.audience {
            new.audience = clients::Audience::parse(&audience).map_err(fail)?;
        }
        new.resource_server = self.resource_server;
        new.request_object_signing_alg = self.request_object_signing_alg;
        new.require_signed_request_object = self.require_signed_request_object;
        new.require_pushed_authorization_requests = self.require_par;
        new.dpop_bound_access_tokens = self.dpop_bound_access_tokens;
        new.fapi2 = self.fapi2;
        new.resource_uri = self.resource_uri.clone();
        new.portal = clients::Portal {
            category: given(self.portal_category),
            description: given(self.portal_description),
            url: given(self.portal_url),
        };
        if let Some(file) = self.jwks_file {
            let text = std::fs::read_to_string(&file).map_err(|e| fail(format!("{}: {e}", file.display())))?;
            new.jwks = Some(serde_json::from_str(&text).map_err(|e| fail(format!("{}: {e}", file.display())))?);
        }
        Ok(new)
    }
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
    if let Some(alg) = &c.request_object_signing_alg {
        println!("request_object_signing_alg: {alg}");
    }
    if c.require_signed_request_object {
        println!("require_signed_request_object: yes");
    }
    if c.require_pushed_authorization_requests {
        println!("require_pushed_authorization_requests: yes");
    }
    if c.dpop_bound_access_tokens {
        println!("dpop_bound_access_tokens:   yes");
    }
    if c.fapi2 {
        println!("fapi2:                      yes (FAPI 2.0 Security Profile)");
    }
    if let Some(uri) = &c.resource_uri {
        println!("resource_uri:               {uri}");
    }
    if let Some(uri) = &c.backchannel_logout_uri {
        println!("backchannel_logout_uri:     {uri}");
    }
    println!("redirect_uris:              {}", c.redirect_uris.join(" "));
    println!("post_logout_redirect_uris:  {}", c.post_logout_redirect_uris.join(" "));
    println!("id_token_signed_response_alg: {}", c.id_token_signed_response_alg);
}

/// Runs an `idp clients` command.
pub(super) fn run(config: Config, command: ClientsCommand) -> Result<(), Failure> {
    let core = Core::open(config)?;
    let mut conn = core.db.get()?;
    let now = now();
    match command {
        ClientsCommand::Create(a) => {
            let json = a.json;
            let new = (*a).into_new_client()?;
            let (client, secret) = clients::create_by(&mut conn, new, &Actor::cli(), now).map_err(refused)?;
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
                require_signed_request_object: u.require_signed_request_object,
                require_pushed_authorization_requests: u.require_par,
                dpop_bound_access_tokens: u.dpop_bound_access_tokens,
                fapi2: u.fapi2,
                resource_uri: u.resource_uri.map(|r| (r != "none").then_some(r)),
            };
            let client = clients::change_by(&mut conn, &u.client_id, &change, &Actor::cli(), now)
                .map_err(refused)?
                .ok_or_else(|| fail(format!("no client `{}`", u.client_id)))?;
            print_client(&client);
            Ok(())
        }
        ClientsCommand::Delete { client_id } => {
            if !clients::delete_by(&mut conn, &client_id, &Actor::cli(), now)? {
                return Err(fail(format!("no client `{client_id}`")));
            }
            println!("client {client_id} deleted");
            Ok(())
        }
        ClientsCommand::RotateSecret { client_id, old_valid_for, json } => {
            let rotated = clients::rotate_secret_by(&mut conn, &client_id, old_valid_for, &Actor::cli(), now)?
                .ok_or_else(|| fail(format!("no client `{client_id}` with a secret")))?;
            if json {
                let v = serde_json::json!({
                    "client_id": client_id,
                    "client_secret": rotated.secret,
                    "old_secret_valid_until": rotated.old_valid_until,
                });
                println!("{v}");
            } else {
                let until = rotated.old_valid_until.map(rfc3339);
                println!("client_secret:              {}", rotated.secret);
                println!("old secret valid until:     {}", until.as_deref().unwrap_or("(stopped now)"));
                println!("(the secret is shown this once; store it now)");
            }
            Ok(())
        }
        ClientsCommand::IssueRegistrationToken { ttl, json } => {
            let issued = registration::issue_initial_access_token(&mut conn, ttl, &Actor::cli(), now)?;
            if json {
                let v = serde_json::json!({ "initial_access_token": issued.token, "expires_at": issued.expires_at });
                println!("{v}");
            } else {
                println!("initial_access_token:       {}", issued.token);
                println!("expires_at:                 {}", rfc3339(issued.expires_at));
                println!("(single use: send it as `Authorization: Bearer …` to POST /register; shown this once)");
            }
            Ok(())
        }
    }
}

/// A refused client: the reason for the operator; a database failure as such.
fn refused(e: ClientError) -> Failure {
    match e {
        ClientError::Infra(e) => e.into(),
        e => fail(e.to_string()),
    }
}
