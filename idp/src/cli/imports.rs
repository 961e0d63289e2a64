//! `idp agencies import` and `idp personnel import`.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;

use super::{fail, Failure};
use crate::accounts::register::{self, ImportError, Register};
use crate::audit::Actor;
use crate::config::Config;
use crate::error::now;
use crate::state::Core;

#[derive(Subcommand, Debug)]
pub enum ImportCommand {
    /// Import a CSV file; nothing is applied if any row is invalid.
    Import { file: PathBuf },
}

/// Imports `file` into the agency table or (`personnel`) the personnel register.
pub(super) fn run(config: Config, command: ImportCommand, personnel: bool) -> Result<(), Failure> {
    let ImportCommand::Import { file } = command;
    // Streamed: a register of a million people is read a chunk at a time, never whole.
    let input = std::fs::File::open(&file).map_err(|e| fail(format!("{}: {e}", file.display())))?;
    let core = Core::open(config)?;
    let mut conn = core.db.get()?;
    let which = if personnel { Register::Personnel } else { Register::Agencies };
    match register::import(&mut conn, &core.protector, which, input, &Actor::cli(), now()) {
        Ok(r) => {
            println!("{}: {}", file.display(), r.summary());
            Ok(())
        }
        Err(ImportError::Invalid(errors)) => {
            let mut err = std::io::stderr().lock();
            for e in &errors {
                let _ = writeln!(err, "{}: {e}", file.display());
            }
            Err(fail(format!("{} problem(s) found; nothing was imported", errors.len())))
        }
        Err(ImportError::Infra(e)) => Err(e.into()),
    }
}
