//! `procedo graph FILE`: the state machine as Mermaid or Graphviz dot.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::catalog;
use crate::definition::graph;

/// Output formats.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default)]
pub enum Format {
    /// Mermaid stateDiagram-v2.
    #[default]
    Mermaid,
    /// Graphviz dot.
    Dot,
}

/// Arguments of `procedo graph`.
#[derive(clap::Args, Debug)]
pub struct GraphArgs {
    /// The workflow file.
    pub file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Mermaid)]
    pub format: Format,
}

/// Prints the graph; exit 1 if the file does not validate.
pub fn run(args: &GraphArgs) -> ExitCode {
    let (catalog, diags) = catalog::load(std::slice::from_ref(&args.file));
    let Some(loaded) = catalog.as_ref().and_then(|c| c.procedures.first()) else {
        for d in &diags {
            eprintln!("{d}");
        }
        return ExitCode::from(1);
    };
    let text = match args.format {
        Format::Mermaid => graph::mermaid(&loaded.procedure),
        Format::Dot => graph::dot(&loaded.procedure),
    };
    print!("{text}");
    ExitCode::SUCCESS
}
