//! The durable scheduler: timers (deadlines and reminders), recurring jobs and the outbox,
//! carried out on time, once, across restarts and replicas.
//!
//! Everything it does starts from a row in the store and ends in a transaction that marks the
//! row done together with its effect:
//!
//! - **Timers** are armed by steps (in the step's transaction). Each `tick` fires one batch of
//!   due timers in place: a transaction locks due timers (`FOR UPDATE SKIP LOCKED` on
//!   PostgreSQL, the write lock on SQLite), and the steps of their events are committed in
//!   it with the timers done (`Store::fire_due_in_place`). A crash before the commit leaves
//!   the timers pending and locked by nobody; a commit makes them done, so no firing repeats
//!   another, and the instance version (the optimistic lock) turns a concurrent change into
//!   a conflict. Reminders and what the engine refuses are claimed in that transaction with
//!   a lease and fired one by one through `Service::fire_timer`, which commits the effect and
//!   marks the timer done in one transaction; a crash between claim and commit leaves the
//!   timer claimed until the lease runs out, when any worker claims it again. A timer
//!   rescheduled or cancelled meanwhile is a no-op (`TimerOutcome::Stale`). Timers that came
//!   due while procedo was down fire at the first tick, once, marked late in the history.
//! - **Recurring jobs** (`cron`): see the `cron` module, also for daylight saving time.
//! - **The outbox**: rows of the kinds a `Dispatch` is registered for are claimed, carried out,
//!   and marked done, retried with backoff or failed; rows of other kinds stay pending for the
//!   process that can carry them out.
//!
//! Replicas: several processes on one PostgreSQL share the work through the row locks and the
//! claims; a process that dies loses its locks at once and its claims to the others when the
//! lease runs out. On SQLite run one scheduling process: a second one would be correct (every
//! firing transaction holds the write lock) but only queue on the same lock.
//!
//! Tests drive `tick` with a `ManualClock` until it reports `Outcome::Idle`; `run` is the same
//! loop with sleeps and a graceful shutdown.
//!
//! Architecture Invariant: the scheduler writes nothing itself; every write goes through the
//! service or the store, in the transactions they define.

pub mod cron;
pub mod heartbeat;
pub mod outbox;
mod retry;
mod timers;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use futures_util::StreamExt as _;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::service::{self, Service};
use crate::store::{self, Backend, Claim};
pub use cron::{CronJob, JobKind};
pub use heartbeat::{Beat, Heartbeat};
pub use outbox::{Dispatch, DispatchError, DispatchFuture, ResumeParent, StartInstance};
pub use retry::backoff;

/// Why the scheduler failed or refused its configuration. Messages are Italian.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed (the tick is retried after a pause).
    #[error(transparent)]
    Store(#[from] store::Error),
    /// The service failed.
    #[error(transparent)]
    Service(#[from] service::Error),
    /// A recurring job names a job procedo does not know.
    #[error(
        "lavoro pianificato '{id}': il lavoro '{job}' non esiste (ammessi: digest, protocol_register, protocol_reconcile)"
    )]
    UnknownJob {
        /// The job's id.
        id: String,
        /// The job it names.
        job: String,
    },
    /// A recurring job's expression does not parse.
    #[error(
        "lavoro pianificato '{id}': espressione cron '{schedule}' non valida ({message}); \
         formato: secondi minuti ore giorno mese giorno-della-settimana [anno], ad es. '0 0 8 * * *'"
    )]
    InvalidSchedule {
        /// The job's id.
        id: String,
        /// The expression.
        schedule: String,
        /// What the parser said.
        message: String,
    },
    /// Two recurring jobs have the same id.
    #[error("lavoro pianificato '{id}' dichiarato due volte")]
    DuplicateJob {
        /// The id.
        id: String,
    },
}

/// How a scheduler works. `Options::default()` suits one `procedo serve`; tests shorten the
/// lease and the batch.
#[derive(Debug, Clone)]
pub struct Options {
    /// Names this process in claims (`claimed_by`): unique per process, so that a restarted
    /// process does not mistake a dead one's claims for its own.
    pub worker_id: String,
    /// Due timers fired per tick (in transactions of at most 500, 250 on PostgreSQL): the
    /// unit of work between two looks at the shutdown signal.
    pub batch_size: u64,
    /// How long a claim holds without renewal. A process that dies loses its claims to the
    /// others after this; a live one renews them every `heartbeat` while it works, so the
    /// lease need not cover a whole batch.
    pub lease: Duration,
    /// The pause between two renewals of the leases held (`None`: a third of the lease).
    pub heartbeat: Option<StdDuration>,
    /// The longest sleep between two ticks while there is nothing to do: the worst lateness of
    /// a timer armed by another process, and of a recurring job.
    pub poll_interval: StdDuration,
    /// Timers fired at once one by one on PostgreSQL (reminders, lapsed claims), and, up to
    /// eight, the transactions that fire due timers in place. SQLite has one writer, so it
    /// fires one at a time.
    pub parallelism: usize,
    /// Recurring jobs from the configuration; installed definitions add theirs.
    pub cron: Vec<CronJob>,
    /// Outbox rows claimed per tick.
    pub outbox_batch: u64,
    /// Attempts after which an outbox row that keeps failing transiently is given up (a timer
    /// is never given up: it is retried, with the error visible in `procedo timers list`).
    pub outbox_max_attempts: u32,
    /// The delay before the first retry of a failed outbox row or timer; it doubles (with
    /// jitter) up to `retry_max_backoff`. Apart from the lease.
    pub retry_backoff: StdDuration,
    /// The longest delay between two attempts of an outbox row or a timer.
    pub retry_max_backoff: StdDuration,
    /// How often (clock time) the recurring jobs of installed definitions are read again.
    pub definitions_refresh: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            worker_id: default_worker_id(),
            batch_size: DEFAULT_BATCH,
            lease: Duration::seconds(DEFAULT_LEASE_SECONDS),
            heartbeat: None,
            poll_interval: StdDuration::from_secs(1),
            parallelism: 8,
            cron: Vec::new(),
            outbox_batch: 100,
            outbox_max_attempts: 10,
            retry_backoff: StdDuration::from_secs(30),
            retry_max_backoff: StdDuration::from_secs(3600),
            definitions_refresh: Duration::seconds(60),
        }
    }
}

/// The lease of a claim, in seconds, unless configured: what a worker killed with SIGKILL
/// delays the work it held.
pub const DEFAULT_LEASE_SECONDS: i64 = 15;

impl Options {
    /// The pause between two renewals of the leases.
    pub fn heartbeat_interval(&self) -> StdDuration {
        self.heartbeat
            .unwrap_or_else(|| Heartbeat::default_interval(self.lease))
    }
}

/// `host-pid-random`: unique per process, readable in the `claimed_by` column.
pub fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "procedo".to_string());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &random[..6])
}

/// What a tick did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// This many timers, recurring jobs and outbox rows were handled.
    Progressed(usize),
    /// Nothing was due.
    Idle,
}

/// What one tick handled, for logs and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Timers whose event moved their instance.
    pub fired: usize,
    /// Reminders queued.
    pub reminded: usize,
    /// Timers that no longer applied (recorded as such).
    pub skipped: usize,
    /// Timers changed by someone else first (no-op).
    pub stale: usize,
    /// Timers that failed and were given back.
    pub failed: usize,
    /// Recurring jobs run.
    pub cron_runs: usize,
    /// Outbox rows carried out, retried or given up.
    pub outbox: usize,
    /// A batch (of timers or outbox rows) came back full: more may be due already.
    pub full: bool,
}

impl Tally {
    /// Everything handled (failures excluded: they are not progress).
    pub fn handled(&self) -> usize {
        self.fired + self.reminded + self.skipped + self.stale + self.cron_runs + self.outbox
    }

    pub(crate) fn add(&mut self, other: Tally) {
        self.fired += other.fired;
        self.reminded += other.reminded;
        self.skipped += other.skipped;
        self.stale += other.stale;
        self.failed += other.failed;
        self.cron_runs += other.cron_runs;
        self.outbox += other.outbox;
        self.full |= other.full;
    }
}

/// A due run of a recurring job already handled here, and when to look at it again.
#[derive(Debug, Clone, Copy)]
struct Seen {
    due: DateTime<Utc>,
    again_at: DateTime<Utc>,
}

/// What became of the due run of a recurring job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobRun {
    /// Ran here: its outbox row is queued.
    Ran,
    /// Already recorded (by this or another worker).
    AlreadyRan,
    /// Another worker holds a live claim on it.
    HeldElsewhere,
}

/// Recurring jobs read from installed definitions, and when.
#[derive(Debug, Default)]
struct DefinitionJobs {
    read_at: Option<DateTime<Utc>>,
    jobs: Vec<CronJob>,
}

/// After a tick that found less than a full batch, how long a running scheduler waits before
/// the next one (at most `poll_interval`): timers falling due one by one are fired in groups,
/// each at most this late, instead of each tick paying its fixed cost for one timer.
const GATHER: StdDuration = StdDuration::from_millis(50);

/// Due timers a tick takes on by default: on PostgreSQL enough for all its transactions to
/// be in flight at once (`fire_due_timers`); the outbox and the recurring jobs run between
/// two ticks.
pub const DEFAULT_BATCH: u64 = 2_000;

/// How often a running scheduler checkpoints SQLite's write-ahead log (`Store::checkpoint`).
const CHECKPOINT_EVERY: StdDuration = StdDuration::from_secs(1);

/// Checkpoints the store every `CHECKPOINT_EVERY` until `stop` (only SQLite does anything):
/// off the path of the commits, on a connection of its own.
async fn checkpoints(store: store::Store, stop: tokio::sync::oneshot::Receiver<()>) {
    if store.backend() != Backend::Sqlite {
        return;
    }
    let mut stop = std::pin::pin!(stop);
    let mut every = tokio::time::interval(CHECKPOINT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = every.tick() => {}
        }
        if let Err(e) = store.checkpoint().await {
            debug!(error = %e, "checkpoint del WAL non riuscito: riprova al prossimo giro");
        }
    }
}

/// The scheduler of one process.
pub struct Scheduler {
    service: Service,
    options: Options,
    dispatchers: BTreeMap<String, Arc<dyn Dispatch>>,
    definition_jobs: Mutex<DefinitionJobs>,
    /// Per job: the due instant last handled here and when to look at it again (another
    /// worker held it), so that a tick does not write to `cron_runs` for nothing.
    cron_seen: Mutex<HashMap<String, Seen>>,
    stopping: AtomicBool,
    /// The last tick's due timers filled its batch: more are likely due, and the next tick
    /// starts all its transactions at once instead of probing with one.
    timers_full: AtomicBool,
    /// The leases of what this worker holds, renewed while `run` runs.
    heartbeat: Heartbeat,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("options", &self.options)
            .field("dispatchers", &self.dispatchers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    /// A scheduler over a service. Refuses configuration jobs with the same id; the built-in
    /// `start_instance` dispatcher is registered.
    pub fn new(service: Service, options: Options) -> Result<Scheduler, Error> {
        let mut ids = std::collections::BTreeSet::new();
        for job in &options.cron {
            if !ids.insert(job.id.as_str()) {
                return Err(Error::DuplicateJob { id: job.id.clone() });
            }
        }
        let start_instance: Arc<dyn Dispatch> = Arc::new(StartInstance::new(service.clone()));
        let heartbeat = Heartbeat::new(
            service.store().clone(),
            service.clock(),
            &options.worker_id,
            options.lease,
        );
        let mut dispatchers = BTreeMap::new();
        dispatchers.insert(outbox::START_INSTANCE.to_string(), start_instance);
        let resume_parent: Arc<dyn Dispatch> = Arc::new(ResumeParent::new(service.clone()));
        dispatchers.insert(outbox::RESUME_PARENT.to_string(), resume_parent);
        let approve_verbale: Arc<dyn Dispatch> =
            Arc::new(outbox::ApproveVerbale::new(service.clone()));
        dispatchers.insert(outbox::APPROVE_VERBALE.to_string(), approve_verbale);
        Ok(Scheduler {
            service,
            options,
            dispatchers,
            definition_jobs: Mutex::new(DefinitionJobs::default()),
            cron_seen: Mutex::new(HashMap::new()),
            stopping: AtomicBool::new(false),
            timers_full: AtomicBool::new(false),
            heartbeat,
        })
    }

    /// Carries out outbox rows of `kind` with `dispatcher` (replacing any registered one).
    #[must_use]
    pub fn with_dispatcher(mut self, kind: &str, dispatcher: Arc<dyn Dispatch>) -> Scheduler {
        self.dispatchers.insert(kind.to_string(), dispatcher);
        self
    }

    /// The options.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The service.
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// The heartbeat that renews this scheduler's claims (`run` spawns its renewals).
    pub fn heartbeat(&self) -> &Heartbeat {
        &self.heartbeat
    }

    /// One round at the clock's `now`: claims one batch of due timers and fires them, runs the
    /// recurring jobs that are due, and carries out one batch of outbox rows. Tests call it
    /// until it returns `Idle`.
    pub async fn tick(&self) -> Result<Outcome, Error> {
        let tally = self.tick_tally().await?;
        Ok(if tally.handled() == 0 {
            Outcome::Idle
        } else {
            Outcome::Progressed(tally.handled())
        })
    }

    /// `tick`, with the detail of what it did.
    pub async fn tick_tally(&self) -> Result<Tally, Error> {
        let now = self.service.now();
        let mut tally = self.fire_due_timers(now).await?;
        if self.is_stopping() {
            return Ok(tally);
        }
        tally.add(self.run_due_jobs(now).await?);
        tally.add(self.drain_outbox(now).await?);
        if tally.handled() > 0 || tally.failed > 0 {
            debug!(?tally, "giro del pianificatore");
        }
        Ok(tally)
    }

    /// Runs until `shutdown` completes: tick, then sleep — not at all while there is work,
    /// until the next timer (at most `poll_interval`) when idle. On shutdown the current tick
    /// stops claiming, fires what it already started and gives back the rest.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error> {
        let span = info_span!("scheduler", worker = %self.options.worker_id);
        async move {
            info!(backend = %self.service.store().backend(), lease = %self.options.lease, "pianificatore avviato");
            // The renewals go on while the last tick finishes, and stop after it.
            let (beats_stop, beats_stopped) = tokio::sync::oneshot::channel::<()>();
            let beats = self.heartbeat.spawn(self.options.heartbeat_interval(), async move {
                let _ = beats_stopped.await;
            });
            let (checkpoints_stop, checkpoints_stopped) = tokio::sync::oneshot::channel::<()>();
            let checkpoints = tokio::spawn(checkpoints(
                self.service.store().clone(),
                checkpoints_stopped,
            ));
            let mut shutdown = std::pin::pin!(shutdown);
            let mut signalled = false;
            while !self.is_stopping() {
                let tick = self.tick_tally();
                let mut tick = std::pin::pin!(tick);
                let result = tokio::select! {
                    result = &mut tick => result,
                    () = &mut shutdown, if !signalled => {
                        signalled = true;
                        self.stop();
                        tick.await
                    }
                };
                let pause = match result {
                    Ok(tally) if tally.full => StdDuration::ZERO,
                    // What came due during the tick is gathered for a moment, so that the
                    // next tick fires many timers in one go rather than one at a time.
                    Ok(tally) if tally.handled() > 0 => self
                        .idle_pause()
                        .await
                        .max(GATHER.min(self.options.poll_interval)),
                    Ok(_) => self.idle_pause().await,
                    Err(e) => {
                        error!(error = %e, "giro del pianificatore non riuscito: nuovo tentativo");
                        self.options.poll_interval
                    }
                };
                if self.is_stopping() {
                    break;
                }
                if pause.is_zero() {
                    tokio::task::yield_now().await;
                    continue;
                }
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = &mut shutdown, if !signalled => {
                        signalled = true;
                        self.stop();
                    }
                }
            }
            let _ = beats_stop.send(());
            let _ = beats.await;
            let _ = checkpoints_stop.send(());
            let _ = checkpoints.await;
            info!("pianificatore fermato");
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Asks a running tick to stop claiming and give back what it has not started.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// How long to sleep when nothing was due: until the next armed timer, at most
    /// `poll_interval`.
    async fn idle_pause(&self) -> StdDuration {
        let now = self.service.now();
        match self.service.store().next_timer_at().await {
            Ok(Some(next)) if next > now => (next - now)
                .to_std()
                .unwrap_or(StdDuration::ZERO)
                .min(self.options.poll_interval),
            Ok(Some(_)) => StdDuration::from_millis(10).min(self.options.poll_interval),
            Ok(None) => self.options.poll_interval,
            Err(e) => {
                warn!(error = %e, "prossimo timer non letto");
                self.options.poll_interval
            }
        }
    }

    fn work(&self) -> timers::Work<'_> {
        timers::Work {
            service: &self.service,
            worker: &self.options.worker_id,
            heartbeat: &self.heartbeat,
            stopping: &self.stopping,
            options: &self.options,
        }
    }

    /// Fires one batch (`batch_size`) of due timers. The claims of a dead replica whose
    /// lease ran out are claimed again and fired one by one; the due timers are fired in
    /// place (`timers::fire_in_place`), in transactions of at most `TOGETHER` timers: one
    /// after the other on SQLite's single writer, up to eight at once on PostgreSQL — they
    /// lock disjoint rows, and the database works on one while procedo plans the next. What
    /// they leave (reminders, what the engine refuses) goes one by one afterwards.
    async fn fire_due_timers(&self, now: DateTime<Utc>) -> Result<Tally, Error> {
        if self.is_stopping() {
            return Ok(Tally::default());
        }
        let store = self.service.store();
        let work = self.work();
        let batch = self.options.batch_size.max(1);
        let lapsed = store
            .claim_lapsed_timers(now, batch, &self.options.worker_id, self.options.lease)
            .await?;
        for timer in &lapsed {
            self.heartbeat.hold(
                [Claim::Timer(timer.id)],
                timer.lease_until.unwrap_or(now + self.options.lease),
            );
        }
        let alone = match store.backend() {
            Backend::Sqlite => 1,
            Backend::Postgres => self.options.parallelism.max(1),
        };
        let (size, in_flight) = if alone > 1 {
            ((timers::TOGETHER / 2).min(batch), alone.min(8))
        } else {
            (timers::TOGETHER.min(batch), 1)
        };
        let mut tally = Tally::default();
        let mut rest = lapsed;
        let mut full = true;
        let mut failure = None;
        // The first transaction alone: only when it comes back full are more due, and the
        // others start — up to `in_flight` at once — until one comes back short. After a
        // full tick, more are due: all start at once, the pipeline stays full.
        let rounds = batch.div_ceil(size);
        let exhausted = AtomicBool::new(false);
        let mut record = |round: Option<Result<timers::Round, store::Error>>,
                          tally: &mut Tally,
                          rest: &mut Vec<store::TimerRow>| {
            match round {
                Some(Ok(round)) => {
                    if (round.locked as u64) < size {
                        full = false;
                        exhausted.store(true, Ordering::SeqCst);
                    }
                    tally.add(round.tally);
                    rest.extend(round.claimed);
                }
                None => full = false,
                Some(Err(e)) => {
                    full = false;
                    exhausted.store(true, Ordering::SeqCst);
                    warn!(error = %e, "transazione dei timer non riuscita: i timer restano da eseguire");
                    failure.get_or_insert(e);
                }
            }
        };
        let mut probed = 0;
        if !self.timers_full.load(Ordering::SeqCst) {
            let first = if self.is_stopping() {
                None
            } else {
                Some(timers::fire_in_place(&work, size).await)
            };
            record(first, &mut tally, &mut rest);
            probed = 1;
        }
        let mut firing = futures_util::stream::iter(probed..rounds)
            .map(|_| {
                let work = &work;
                let exhausted = &exhausted;
                async move {
                    if exhausted.load(Ordering::SeqCst) || work.stopping.load(Ordering::SeqCst) {
                        return None;
                    }
                    Some(timers::fire_in_place(work, size).await)
                }
            })
            .buffer_unordered(in_flight);
        while let Some(round) = firing.next().await {
            record(round, &mut tally, &mut rest);
        }
        drop(firing);
        self.timers_full.store(full, Ordering::SeqCst);
        rest.sort_by_key(|t| (t.fire_at, t.id));
        tally.add(timers::fire_batch(&work, rest, alone).await);
        match failure {
            Some(e) if tally.handled() == 0 => Err(e.into()),
            _ => {
                tally.full = full;
                Ok(tally)
            }
        }
    }

    /// Every recurring job: configuration ones and those of installed definitions.
    async fn jobs(&self, now: DateTime<Utc>) -> Vec<CronJob> {
        let stale = {
            let cached = self
                .definition_jobs
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            cached
                .read_at
                .is_none_or(|at| now - at >= self.options.definitions_refresh || now < at)
        };
        if stale {
            match self.read_definition_jobs().await {
                Ok(jobs) => {
                    let mut cached = self
                        .definition_jobs
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    *cached = DefinitionJobs {
                        read_at: Some(now),
                        jobs,
                    };
                }
                Err(e) => warn!(error = %e, "lavori pianificati delle procedure non letti"),
            }
        }
        let cached = self
            .definition_jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut jobs = self.options.cron.clone();
        for job in &cached.jobs {
            if jobs.iter().any(|j| j.id == job.id) {
                continue;
            }
            jobs.push(job.clone());
        }
        jobs
    }

    /// The recurring jobs of the latest version of every installed procedure. A job with an
    /// unknown kind is logged and left out (the others still run).
    async fn read_definition_jobs(&self) -> Result<Vec<CronJob>, Error> {
        let mut latest: BTreeMap<String, u32> = BTreeMap::new();
        for row in self.service.store().definitions().await? {
            let version = latest.entry(row.id).or_insert(row.version);
            *version = (*version).max(row.version);
        }
        let mut jobs = Vec::new();
        for (id, version) in latest {
            let procedure = self.service.procedure(&id, Some(version)).await?;
            for job in &procedure.cron {
                match CronJob::new(&format!("{id}.{}", job.id), &job.schedule, &job.job) {
                    Ok(mut job) => {
                        job.procedure = Some(id.clone());
                        jobs.push(job);
                    }
                    Err(e) => {
                        error!(procedure = %id, version, error = %e, "lavoro pianificato ignorato")
                    }
                }
            }
        }
        Ok(jobs)
    }

    /// Runs every recurring job whose latest due instant has not run yet.
    async fn run_due_jobs(&self, now: DateTime<Utc>) -> Result<Tally, Error> {
        let mut tally = Tally::default();
        for job in self.jobs(now).await {
            let Some(due) = cron::latest_due(&job.schedule, now) else {
                continue;
            };
            let seen = self
                .cron_seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&job.id)
                .copied();
            if seen.is_some_and(|seen| seen.due >= due && now < seen.again_at) {
                continue;
            }
            let span = info_span!("cron", job = %job.id, kind = %job.job, due = %due);
            let again_at = match self.run_job(&job, due, now).instrument(span).await? {
                JobRun::Ran => {
                    tally.cron_runs += 1;
                    DateTime::<Utc>::MAX_UTC
                }
                JobRun::AlreadyRan => DateTime::<Utc>::MAX_UTC,
                JobRun::HeldElsewhere => now + self.options.lease,
            };
            self.cron_seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(job.id.clone(), Seen { due, again_at });
        }
        Ok(tally)
    }

    /// Claims and runs the run of a job due at `due`.
    async fn run_job(
        &self,
        job: &CronJob,
        due: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<JobRun, Error> {
        let store = self.service.store();
        let worker = &self.options.worker_id;
        if !store
            .claim_cron(&job.id, due, now, worker, self.options.lease)
            .await?
        {
            let last = store.cron_last_run(&job.id).await?;
            if last.is_some_and(|last| last >= due) {
                return Ok(JobRun::AlreadyRan);
            }
            debug!("in carico a un altro processo");
            return Ok(JobRun::HeldElsewhere);
        }
        let runs = match store.cron_last_run(&job.id).await? {
            Some(last) => cron::runs_between(&job.schedule, last, due, 10_000).max(1),
            None => 1,
        };
        if runs > 1 {
            warn!(
                runs,
                "esecuzioni mancate (procedo era fermo): il lavoro viene eseguito una volta sola"
            );
        }
        let effect = job.effect(due, runs);
        let claim = Claim::CronRun(job.id.clone());
        self.heartbeat
            .hold([claim.clone()], now + self.options.lease);
        let completed = store
            .complete_cron(
                &job.id,
                worker,
                due,
                job.job.as_str(),
                &effect,
                self.service.now(),
            )
            .await;
        self.heartbeat.forget(&claim);
        if completed? {
            info!(
                runs,
                late_ms = (now - due).num_milliseconds(),
                "lavoro pianificato eseguito"
            );
            Ok(JobRun::Ran)
        } else {
            warn!("presa in carico scaduta prima della fine: il lavoro resta a chi l'ha ripreso");
            Ok(JobRun::HeldElsewhere)
        }
    }

    /// Claims one batch of outbox rows of the kinds a dispatcher is registered for and
    /// carries them out.
    async fn drain_outbox(&self, now: DateTime<Utc>) -> Result<Tally, Error> {
        let kinds: Vec<&str> = self.dispatchers.keys().map(String::as_str).collect();
        let store = self.service.store();
        let rows = store
            .claim_outbox_of(
                &kinds,
                now,
                self.options.outbox_batch,
                &self.options.worker_id,
                self.options.lease,
            )
            .await?;
        for row in &rows {
            self.heartbeat.hold(
                [Claim::Outbox(row.id)],
                row.lease_until.unwrap_or(now + self.options.lease),
            );
        }
        let mut tally = Tally {
            full: rows.len() as u64 >= self.options.outbox_batch,
            ..Tally::default()
        };
        for row in rows {
            let claim = Claim::Outbox(row.id);
            let outcome = self.carry_out_claimed(&row, &claim).await;
            self.heartbeat.forget(&claim);
            if outcome? {
                tally.outbox += 1;
            }
        }
        Ok(tally)
    }

    /// Carries out one claimed outbox row, unless the scheduler is stopping or the row's
    /// lease could not be kept (then the row is given back, or left to lapse). True if it was
    /// carried out (done, retried or failed).
    async fn carry_out_claimed(
        &self,
        row: &store::OutboxRow,
        claim: &Claim,
    ) -> Result<bool, Error> {
        let store = self.service.store();
        if self.is_stopping() {
            // Not started: give it back without counting an attempt against it.
            outbox::give_back(store, row, &self.options.worker_id).await;
            return Ok(false);
        }
        if !self.heartbeat.may_start(claim) {
            warn!(
                id = row.id,
                "presa in carico non rinnovata: la riga non viene eseguita"
            );
            outbox::give_back(store, row, &self.options.worker_id).await;
            return Ok(false);
        }
        let Some(dispatcher) = self.dispatchers.get(&row.kind) else {
            return Ok(false);
        };
        let span = info_span!("outbox", id = row.id, kind = %row.kind, attempt = row.attempts);
        outbox::carry_out(&self.service, dispatcher.as_ref(), row, &self.options)
            .instrument(span)
            .await?;
        Ok(true)
    }
}
