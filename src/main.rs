//! The `procedo` binary: parse the command line, start logging, dispatch.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use procedo::cli::{Cli, Command};

/// The scheduler and the API allocate and free many small buffers per step (rows, JSON,
/// statements); mimalloc does that with less work and less fragmentation than the system
/// allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Logs go to stderr, in colour only when stderr is a terminal. `default` is the filter when
/// `PROCEDO_LOG` is not set.
fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PROCEDO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo says in its own timeline, in Italian, what a user must know; its logs are
    // for errors only unless PROCEDO_LOG asks for more.
    init_tracing(if matches!(cli.command, Command::Demo(_)) {
        "error"
    } else {
        "warn"
    });
    match cli.command {
        Command::Demo(args) => async_main(procedo::cli::demo::run(args)),
        Command::Mail(args) => async_main(procedo::cli::mail::run(args)),
        Command::Pec(args) => async_main(procedo::cli::pec::run(args)),
        Command::Report(args) => async_main(procedo::cli::report::run(args)),
        Command::Calendar(cmd) => async_main(procedo::cli::calendar::run(cmd)),
        Command::Validate(args) => procedo::cli::validate::run(&args),
        Command::Graph(args) => procedo::cli::graph::run(&args),
        Command::Term(args) => procedo::cli::term::run(&args),
        Command::Db(cmd) => async_main(procedo::cli::db::run(cmd)),
        Command::Instance(cmd) => async_main(procedo::cli::instance::run(cmd)),
        Command::Scheduler(cmd) => async_main(procedo::cli::scheduler::run(cmd)),
        Command::Timers(cmd) => async_main(procedo::cli::timers::run(cmd)),
        Command::Bench(cmd) => async_main(procedo::cli::bench::run(cmd)),
        Command::Serve(args) => async_main(procedo::cli::serve::run(args)),
        Command::Api(cmd) => procedo::cli::serve::run_api(&cmd),
        Command::Org(cmd) => async_main(procedo::cli::identity::run_org(cmd)),
        Command::Person(cmd) => async_main(procedo::cli::identity::run_person(cmd)),
        Command::Token(cmd) => async_main(procedo::cli::identity::run_token(cmd)),
        Command::Protocollo(cmd) => async_main(procedo::cli::protocollo::run(cmd)),
        Command::Commissione(cmd) => async_main(procedo::cli::commissione::run(cmd)),
        Command::Seduta(cmd) => async_main(procedo::cli::seduta::run(cmd)),
        Command::Organo(cmd) => async_main(async { procedo::cli::seduta::run_organo(cmd) }),
    }
}

fn async_main<F>(future: F) -> ExitCode
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("errore: impossibile avviare il runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(future) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("errore: {e:#}");
            ExitCode::from(1)
        }
    }
}
