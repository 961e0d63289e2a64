//! `idp users`: one-time passwords (helpdesk) and role grants.

use clap::Subcommand;

use super::{fail, Failure};
use crate::accounts::one_time::{self, IssueError, IssueRequest, ResetBy};
use crate::accounts::roles::{self, RoleChange, RoleError};
use crate::audit::Actor;
use crate::config::Config;
use crate::error::{now, InfraError};
use crate::national_id::NationalId;
use crate::state::Core;

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

/// Runs an `idp users` command.
pub(super) fn run(config: Config, command: UsersCommand) -> Result<(), Failure> {
    match command {
        UsersCommand::ResetPassword { national_id, email } => reset_password(config, &national_id, &email),
        UsersCommand::Grant { national_id, role } => change_role(config, &national_id, &role, true),
        UsersCommand::RevokeRole { national_id, role } => change_role(config, &national_id, &role, false),
    }
}

/// The actor of resets from the command line (the helpdesk on the server).
const HELPDESK_CLI: &str = "helpdesk:cli";

fn reset_password(config: Config, national_id: &str, email: &str) -> Result<(), Failure> {
    let nid = NationalId::parse(national_id).map_err(|e| fail(format!("--national-id: {e}")))?;
    let ttl = config.login.one_time_password_ttl.as_secs() as i64;
    let core = Core::open(config)?;
    let mut conn = core.db.get()?;
    let request =
        IssueRequest { national_id: &nid, email, issued_by: HELPDESK_CLI, by: ResetBy::Server, ttl_secs: ttl };
    match one_time::issue_by(&mut conn, &core.protector, &core.mailer, &request, &Actor::named(HELPDESK_CLI), now()) {
        Ok(issued) => {
            let (sessions, tokens) = (issued.ended.sids.len(), issued.ended.refresh_tokens);
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
        // The helpdesk must know whether to tell the person to wait for a mail: a failed
        // delivery rolled the whole reset back.
        Err(e @ IssueError::Infra(InfraError::Mail(_))) => Err(fail(format!(
            "{e}; nothing was reset: no one-time password was issued, and the old password, \
             sessions and any earlier one-time password still work"
        ))),
        Err(e) => Err(fail(e.to_string())),
    }
}

/// `idp users grant` / `revoke-role` (see [`roles::change_by`]).
fn change_role(config: Config, national_id: &str, role: &str, grant: bool) -> Result<(), Failure> {
    let nid = NationalId::parse(national_id).map_err(|e| fail(format!("--national-id: {e}")))?;
    let core = Core::open(config)?;
    let mut conn = core.db.get()?;
    match roles::change_by(&mut conn, &core.protector, &nid, role, grant, &Actor::cli(), now()) {
        Ok(RoleChange::Granted) => println!("role {role} granted to {nid}"),
        Ok(RoleChange::AlreadyHeld) => println!("{nid} already holds role {role}"),
        Ok(RoleChange::Withdrawn) => println!("role {role} withdrawn from {nid}"),
        Ok(RoleChange::NotHeld) => println!("{nid} does not hold role {role}; nothing changed"),
        Err(RoleError::NotInRegister) => {
            return Err(fail(format!("no one with national ID {nid} is in the personnel register")))
        }
        Err(RoleError::Separated) => {
            return Err(fail(format!("{nid} is separated (not in service); no role can be granted")))
        }
        Err(RoleError::Infra(e)) => return Err(e.into()),
    }
    Ok(())
}
