//! The command line: one file per subcommand; `main.rs` only parses and dispatches.

pub mod db;
pub mod graph;
pub mod instance;
pub mod mail;
pub mod term;
pub mod validate;

use clap::{Parser, Subcommand};

/// procedo: workflow orchestration for the Uffici di Piano.
#[derive(Parser, Debug)]
#[command(name = "procedo", version, about, long_about = None)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check workflow files and report every problem with file:line:column.
    Validate(validate::ValidateArgs),
    /// Print a procedure's state machine (Mermaid or Graphviz dot).
    Graph(graph::GraphArgs),
    /// Database maintenance.
    #[command(subcommand)]
    Db(db::DbCommand),
    /// Start, drive and inspect instances.
    #[command(subcommand)]
    Instance(instance::InstanceCommand),
    /// Compute a legal term with its trace.
    Term(term::TermArgs),
}
