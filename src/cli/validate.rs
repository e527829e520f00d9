//! `procedo validate [PATH…]`: every problem of every file, each with file:line:column.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::catalog;

/// Arguments of `procedo validate`.
#[derive(clap::Args, Debug)]
pub struct ValidateArgs {
    /// Workflow files or folders (default: workflows/).
    #[arg(default_value = "workflows")]
    pub paths: Vec<PathBuf>,
}

/// Runs the validator; exit 0 when clean, 1 otherwise.
pub fn run(args: &ValidateArgs) -> ExitCode {
    let (catalog, diags) = catalog::load(&args.paths);
    for d in &diags {
        eprintln!("{d}");
    }
    let count = catalog.as_ref().map_or(0, |c| c.procedures.len());
    if diags.is_empty() {
        match count {
            1 => println!("1 procedura valida"),
            n => println!("{n} procedure valide"),
        }
        ExitCode::SUCCESS
    } else {
        match diags.len() {
            1 => eprintln!("1 problema trovato"),
            n => eprintln!("{n} problemi trovati"),
        }
        ExitCode::from(1)
    }
}
