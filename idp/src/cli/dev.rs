//! `idp dev`: development tools.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;

use super::{fail, Failure};

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

/// Runs an `idp dev` command.
pub(super) fn run(command: DevCommand) -> Result<(), Failure> {
    match command {
        DevCommand::Pki { out } => dev_pki(&out),
    }
}

/// `idp dev pki`: generates the card test PKI and lists what it wrote.
fn dev_pki(out: &std::path::Path) -> Result<(), Failure> {
    let manifest = crate::authn::card::pki_fixtures::generate(out).map_err(|e| fail(e.to_string()))?;
    let mut stdout = std::io::stdout().lock();
    for entry in &manifest.files {
        let _ = writeln!(stdout, "{:<42} {}", entry.file, entry.description);
    }
    let _ = writeln!(
        stdout,
        "wrote {} files and {} to {}",
        manifest.files.len(),
        crate::authn::card::pki_fixtures::MANIFEST,
        out.display()
    );
    Ok(())
}
