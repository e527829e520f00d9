//! `procedo scheduler run`: the scheduler, with the notification dispatchers and the email
//! delivery worker beside it, in the foreground, until SIGTERM or ctrl-c (then it stops
//! claiming, finishes or gives back what it holds, and exits). Several of them
//! may share one PostgreSQL database; on SQLite run one.

use std::time::Duration as StdDuration;

use anyhow::{Context, bail};

use tokio::sync::watch;

use crate::app;
use crate::config::{StoreArgs, WorkerArgs};
use crate::notify;
use crate::scheduler::{CronJob, Options, Scheduler};

/// `procedo scheduler …` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum SchedulerCommand {
    /// Fire due timers, run recurring jobs and drain the outbox until stopped.
    Run(RunArgs),
}

/// Options of `procedo scheduler run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Store options.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Name of this process in claims (default: host-pid-random).
    #[arg(long, env = "PROCEDO_WORKER")]
    pub worker: Option<String>,
    /// Timers claimed per round.
    #[arg(long, default_value_t = crate::scheduler::DEFAULT_BATCH)]
    pub batch: u64,
    /// Leases, heartbeat and retries.
    #[command(flatten)]
    pub work: WorkerArgs,
    /// Longest pause between two rounds when idle, in milliseconds.
    #[arg(long = "poll-ms", default_value_t = 1000)]
    pub poll_ms: u64,
    /// Timers fired at once on PostgreSQL (SQLite fires one at a time).
    #[arg(long, default_value_t = 8)]
    pub parallelism: usize,
    /// A recurring job from the configuration, as ID=JOB@SCHEDULE (Europe/Rome, seconds
    /// first), e.g. `riepilogo=digest@0 0 8 * * *`. Repeatable. Without any, the defaults run:
    /// the digest at 08:00 and the protocol register at 00:05.
    #[arg(long = "cron", value_name = "ID=JOB@SCHEDULE")]
    pub cron: Vec<String>,
}

/// Parses `ID=JOB@SCHEDULE`.
pub fn parse_cron(text: &str) -> anyhow::Result<CronJob> {
    let Some((id, rest)) = text.split_once('=') else {
        bail!(
            "lavoro pianificato '{text}': scrivere ID=LAVORO@ESPRESSIONE, ad es. riepilogo=digest@0 0 8 * * *"
        );
    };
    let Some((job, schedule)) = rest.split_once('@') else {
        bail!("lavoro pianificato '{text}': manca '@ESPRESSIONE' dopo il lavoro");
    };
    Ok(CronJob::new(id.trim(), schedule.trim(), job.trim())?)
}

/// Runs a `scheduler` subcommand.
pub async fn run(cmd: SchedulerCommand) -> anyhow::Result<()> {
    match cmd {
        SchedulerCommand::Run(args) => run_scheduler(args).await,
    }
}

async fn run_scheduler(args: RunArgs) -> anyhow::Result<()> {
    let mut cron = args
        .cron
        .iter()
        .map(|c| parse_cron(c))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if cron.is_empty() {
        cron = crate::scheduler::cron::default_jobs();
    }
    let (service, catalog) = app::open(&args.store, None).await?;
    // Recurring jobs of the workflows are checked now, so that a typo stops the start-up.
    for loaded in &catalog.procedures {
        CronJob::from_definition(&loaded.procedure)
            .with_context(|| format!("{}", loaded.path.display()))?;
    }
    let mut options = Options {
        batch_size: args.batch.max(1),
        poll_interval: StdDuration::from_millis(args.poll_ms.max(1)),
        parallelism: args.parallelism.max(1),
        cron,
        ..Options::default()
    };
    if let Some(worker) = args.worker {
        options.worker_id = worker;
    }
    let worker = options.worker_id.clone();
    let store = service.store().clone();
    let mut mail = notify::delivery::MailSettings::from_env(catalog.templates)
        .context("configurazione della posta")?;
    apply_worker_args(&args.work, &mut options, &mut mail)?;
    let protocollo = app::protocollo(&service)?;
    let scheduler = crate::protocollo::install(
        notify::delivery::install(Scheduler::new(service.clone(), options)?, &mail),
        &protocollo,
        &mail,
    );
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let delivery =
        notify::delivery::spawn_delivery_worker(&service, &mail, until_stopped(stopped.clone()));
    let pec = crate::pec::ingest::from_env(&service, Some(protocollo.clone()))
        .context("configurazione della casella PEC")?
        .map(|(ingest, mailbox, every)| {
            eprintln!(
                "casella PEC: {} ogni {} s",
                mailbox.describe(),
                every.as_secs()
            );
            crate::pec::ingest::spawn_poller(ingest, mailbox, every, until_stopped(stopped.clone()))
        });
    eprintln!(
        "pianificatore {worker} avviato su {}, email tramite {} (SIGTERM o ctrl-c per fermarlo)",
        crate::cli::db::redact(&args.store.database_url),
        mail.transport.describe()
    );
    scheduler.run(until_stopped(stopped)).await?;
    delivery.await.context("consegna delle email")?;
    if let Some(pec) = pec {
        pec.await.context("lettura della casella PEC")?;
    }
    store.close().await?;
    eprintln!("pianificatore {worker} fermato");
    Ok(())
}

/// Applies the lease, heartbeat and retry settings to the scheduler and to the email worker,
/// which run under the same worker name.
pub fn apply_worker_args(
    args: &WorkerArgs,
    options: &mut Options,
    mail: &mut notify::MailSettings,
) -> anyhow::Result<()> {
    options.lease = args.lease()?;
    options.heartbeat = args.heartbeat()?;
    options.retry_backoff = args.retry_backoff();
    options.retry_max_backoff = args.retry_max_backoff();
    let delivery = &mut mail.delivery;
    delivery.worker_id.clone_from(&options.worker_id);
    delivery.poll_interval = options.poll_interval;
    delivery.lease = options.lease;
    delivery.heartbeat = options.heartbeat;
    delivery.backoff = options.retry_backoff;
    delivery.max_backoff = options.retry_max_backoff;
    delivery.max_attempts = args.mail_max_attempts.max(1);
    Ok(())
}

/// Completes when `stopped` turns true (or its sender is gone).
pub async fn until_stopped(mut stopped: watch::Receiver<bool>) {
    while !*stopped.borrow_and_update() {
        if stopped.changed().await.is_err() {
            return;
        }
    }
}

/// Completes on SIGTERM or ctrl-c (SIGINT).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "ctrl-c non intercettabile");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "SIGTERM non intercettabile");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
