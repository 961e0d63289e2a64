//! `idp dev`: development tools.

#[cfg(feature = "dev-pki")]
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

/// What a command that needs the test PKI says in a build without it.
#[cfg(not(feature = "dev-pki"))]
pub(super) const NO_DEV_PKI: &str = "the test PKI is not in this build (built without the dev-pki feature)";

/// `idp dev pki` in a build without the test PKI.
#[cfg(not(feature = "dev-pki"))]
fn dev_pki(_: &std::path::Path) -> Result<(), Failure> {
    Err(fail(NO_DEV_PKI))
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
