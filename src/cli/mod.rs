//! The command line: one file per subcommand; `main.rs` only parses and dispatches.

pub mod bench;
pub mod bench_applications;
pub mod calendar;
pub mod commissione;
pub mod db;
pub mod demo;
pub mod graph;
pub mod identity;
pub mod instance;
pub mod mail;
pub mod pec;
pub mod protocollo;
pub mod report;
pub mod scheduler;
pub mod seduta;
pub mod serve;
pub mod term;
pub mod timers;
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
    /// Run the shipped procedures with the clock moved forward and print their timeline.
    Demo(demo::DemoArgs),
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
    /// Fire due timers, run recurring jobs and drain the outbox.
    #[command(subcommand)]
    Scheduler(scheduler::SchedulerCommand),
    /// Inspect armed timers.
    #[command(subcommand)]
    Timers(timers::TimersCommand),
    /// Email tools: `procedo mail test --to ADDRESS`.
    Mail(mail::MailArgs),
    /// The PEC mailbox: `procedo pec read|incoming|refused`.
    Pec(pec::PecArgs),
    /// The report of a procedure as a page: `procedo report ID --html FILE`.
    Report(report::ReportArgs),
    /// Personal calendar feeds: `procedo calendar create --person ID`.
    #[command(subcommand)]
    Calendar(calendar::CalendarCommand),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Serve the GraphQL API (with the scheduler unless --no-scheduler).
    Serve(serve::ServeArgs),
    /// The GraphQL API's schema.
    #[command(subcommand)]
    Api(serve::ApiCommand),
    /// Organisations: the Ambito, its comuni, ETS.
    #[command(subcommand)]
    Org(identity::OrgCommand),
    /// People and their roles.
    #[command(subcommand)]
    Person(identity::PersonCommand),
    /// API tokens.
    #[command(subcommand)]
    Token(identity::TokenCommand),
    /// The commissione of an avviso: nomina, dichiarazione, sostituzione, punteggi, seduta,
    /// rettifica dei criteri (`procedo instance evaluation ID` shows the result).
    #[command(subcommand)]
    Commissione(commissione::CommissioneCommand),
    /// The bodies of the Ambito (also `procedo body …`): `procedo organo list`, `procedo organo
    /// show workflows/organi/assemblea_sindaci.yaml`.
    #[command(subcommand, alias = "body")]
    Organo(seduta::OrganoCommand),
    /// A meeting of a body: answers, register, votes, postponements, and its picture.
    #[command(subcommand)]
    Seduta(seduta::SedutaCommand),
    /// The protocol register: list, show, segnatura, daily register, annulments, verify.
    #[command(subcommand)]
    Protocollo(protocollo::ProtocolloCommand),
}
