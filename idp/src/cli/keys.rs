//! `idp keys`: signing keys.

use clap::Subcommand;

use super::{fail, Failure};
use crate::audit::Actor;
use crate::config::Config;
use crate::error::now;
use crate::oidc::keys::{self, rfc3339, KeyPolicy};
use crate::state::Core;

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

/// Runs an `idp keys` command.
pub(super) fn run(config: Config, command: KeysCommand) -> Result<(), Failure> {
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
                let opt = |t: Option<i64>| t.map(rfc3339).unwrap_or_else(|| "-".into());
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
                            &rfc3339(k.created_at),
                            &rfc3339(k.activates_at),
                            &opt(k.retired_at),
                            &opt(k.unpublished_at),
                        ])
                    );
                }
            }
            Ok(())
        }
        KeysCommand::Rotate { alg, now: at_once } => {
            let algs = keys::algorithms_named(&alg);
            let report = keys::rotate_by(&mut conn, &core.protector, &algs, at_once, policy, &Actor::cli(), now)?;
            for detail in &report.details {
                println!("{detail}");
            }
            if !report.removed.is_empty() {
                println!("removed expired keys: {}", report.removed.join(" "));
            }
            Ok(())
        }
    }
}
