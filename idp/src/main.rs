//! `idp`: the command line over the library.
#![forbid(unsafe_code)]

use clap::Parser;

fn main() {
    let cli = idp::cli::Cli::parse();
    if let Err(f) = idp::cli::run(cli) {
        eprintln!("idp: {}", f.message);
        std::process::exit(f.code);
    }
}
