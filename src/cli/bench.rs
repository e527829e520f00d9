//! `procedo bench timers`: how fast the scheduler fires timers, and how late. It creates
//! `--count` instances of a one-timer procedure (setup, not timed), each armed to fire at once
//! or spread over `--spread` seconds, then runs the real scheduler until every timer fired —
//! each firing a real transition with its history row — and reports throughput and lateness
//! (`fired_at − fire_at` per timer, read back from the store).
//!
//! The clock is the machine's, shifted: instances are created with their instants in the
//! future, then the scheduler's clock is moved so that the first timer falls due the moment
//! firing starts, so the setup time does not count as lateness.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde_json::{Map, Value};

use crate::catalog;
use crate::clock::Clock;
use crate::engine::{self, Actor};
use crate::scheduler::{Options, Scheduler};
use crate::service::Service;
use crate::store::{InstanceFilter, StartRecord, Store, TimerStatus};

/// `procedo bench …` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Fire N timers with real transitions; report throughput and lateness.
    Timers(TimersArgs),
    /// N ETS apply to one avviso, each with its own lifecycle; report the cost per step.
    Applications(super::bench_applications::ApplicationsArgs),
}

/// Options of `procedo bench timers`.
#[derive(clap::Args, Debug)]
pub struct TimersArgs {
    /// How many timers (one instance each).
    #[arg(long, default_value_t = 100_000)]
    pub count: usize,
    /// Spread the instants evenly over this many seconds (0: all due at once).
    #[arg(long, default_value_t = 0)]
    pub spread: u64,
    /// Database URL (default: a scratch SQLite file, removed at the end). Use an empty
    /// database: the benchmark refuses one with armed timers.
    #[arg(long)]
    pub database: Option<String>,
    /// Timers claimed per round.
    #[arg(long, default_value_t = crate::scheduler::DEFAULT_BATCH)]
    pub batch: u64,
    /// Timers fired at once on PostgreSQL.
    #[arg(long, default_value_t = 8)]
    pub parallelism: usize,
    /// Participants per instance, each with its own timer (0: the one-timer procedure, one
    /// timer per instance). `--count` stays the number of timers.
    #[arg(long, default_value_t = 0)]
    pub participants: usize,
}

/// Runs a `bench` subcommand.
pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Timers(args) => timers(args).await,
        BenchCommand::Applications(args) => super::bench_applications::applications(args).await,
    }
}

/// The procedure under test: one datetime, one timer that fires one transition.
const PROCEDURE: &str = r#"# Benchmark: a timer per instance, firing one transition.
id: bench_timer
version: 1
title: "Benchmark dei timer"
roles:
  ufficio_di_piano: "Ufficio di Piano"
variables:
  termine: { type: datetime, required: true, label: "Termine" }
states:
  attesa: { initial: true, title: "In attesa" }
  scaduta: { final: true, title: "Scaduta" }
transitions:
  - event: scade
    from: attesa
    to: scaduta
    roles: [ufficio_di_piano]
timers:
  - id: scadenza
    while: attesa
    at: termine
    fires: scade
"#;

/// The procedure with participants: each instance has `--participants` applications, each
/// with its own timer firing its own transition (`procedo bench timers --participants P`).
const PARTICIPANTS_PROCEDURE: &str = include_str!("bench_partecipanti.yaml");

/// The start of an instance of the participants' procedure with `count` applications
/// already joined, as one step (setup, not timed): the data after the joins and the effects
/// of the start and of every join (the participants' timers among them).
fn with_applications(
    procedure: &crate::definition::Procedure,
    id: &str,
    vars: &Map<String, Value>,
    actor: &Actor,
    now: DateTime<Utc>,
    count: usize,
) -> anyhow::Result<engine::Step> {
    let mut step = engine::start(procedure, id, vars, actor, now)?;
    for n in 0..count {
        let participant = format!("{id}-{n}");
        let organisation = format!("ets-{n}");
        let joined = engine::join(
            procedure,
            &engine::Snapshot {
                id,
                state: &step.to,
                data: &step.data,
            },
            &engine::Joining {
                id: &participant,
                organisation_id: &organisation,
                name: &organisation,
                members: &[],
                received_at: None,
                pec: None,
            },
            now,
        )?;
        step.data = joined.data;
        step.effects.extend(joined.effects);
    }
    Ok(step)
}

/// Starts the planned instances (id, start step, variables) of `procedure` in one transaction.
async fn start_all(
    store: &Store,
    procedure: &crate::definition::Procedure,
    actor: &Actor,
    now: DateTime<Utc>,
    planned: &[(String, engine::Step, Value)],
) -> anyhow::Result<()> {
    let records: Vec<StartRecord<'_>> = planned
        .iter()
        .map(|(id, step, payload)| StartRecord {
            instance_id: id,
            definition_id: &procedure.id,
            definition_version: procedure.version,
            parent_id: None,
            actor,
            step,
            payload,
            idempotency_key: None,
            at: now,
        })
        .collect();
    store.commit_starts(&records).await?;
    Ok(())
}

/// The process's peak resident set (kB), on Linux.
fn peak_rss() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// CPU time (user + system) this process has used so far, on Linux.
fn cpu_time() -> Option<StdDuration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command's closing parenthesis: utime and stime are the 12th and
    // 13th of them, in clock ticks (100 per second on Linux).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(StdDuration::from_millis(ticks * 10))
}

/// Timers of the bare loop that gives the ceiling, at most.
const CEILING_COUNT: usize = 100_000;

/// Instances started per transaction during the setup.
const SETUP_CHUNK: usize = 5_000;

/// The machine's clock plus an offset set once the setup is done.
#[derive(Debug, Default)]
struct ShiftedClock {
    offset: Mutex<Duration>,
}

impl ShiftedClock {
    /// From now on the clock reads `at` now.
    fn set(&self, at: DateTime<Utc>) {
        *self.offset.lock().unwrap_or_else(|e| e.into_inner()) = at - Utc::now();
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + *self.offset.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Removes the scratch directory when the benchmark ends, however it ends.
struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn timers(args: TimersArgs) -> anyhow::Result<()> {
    if args.count == 0 {
        bail!("--count deve essere almeno 1");
    }
    let dir = ScratchDir(
        std::env::temp_dir().join(format!("procedo-bench-{}", uuid::Uuid::new_v4().simple())),
    );
    std::fs::create_dir_all(&dir.0).with_context(|| format!("creazione di {}", dir.0.display()))?;
    let url = match &args.database {
        Some(url) => url.clone(),
        None => format!("sqlite://{}?mode=rwc", dir.0.join("bench.db").display()),
    };
    let store = Store::connect(&url)
        .await
        .with_context(|| format!("apertura del database {}", crate::cli::db::redact(&url)))?;
    let armed = store.count_timers(TimerStatus::Pending).await?
        + store.count_timers(TimerStatus::Claimed).await?;
    if armed > 0 {
        bail!("il database ha già {armed} timer armati: usare un database vuoto");
    }
    let clock = Arc::new(ShiftedClock::default());
    let service = Service::new(store.clone(), clock.clone());
    let workflows = dir.0.join("workflows");
    std::fs::create_dir_all(&workflows)?;
    std::fs::write(workflows.join("bench_timer.yaml"), PROCEDURE)?;
    std::fs::write(
        workflows.join("bench_partecipanti.yaml"),
        PARTICIPANTS_PROCEDURE,
    )?;
    let (catalog, diags) = catalog::load(std::slice::from_ref(&workflows));
    if !diags.is_empty() {
        bail!(
            "procedura di prova non valida: {}",
            diags
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    service.install(&catalog.context("template")?).await?;
    let per_instance = args.participants.max(1);
    let with_participants = args.participants > 0;
    let procedure = service
        .procedure(
            if with_participants {
                "bench_partecipanti"
            } else {
                "bench_timer"
            },
            None,
        )
        .await?;

    // Setup: instances armed from `first` on, created in the (unshifted) present.
    let first = (Utc::now() + Duration::days(1)).trunc_subsecs(3);
    let spread_ms = i64::try_from(args.spread.saturating_mul(1000)).unwrap_or(i64::MAX);
    let count_i64 = i64::try_from(args.count).unwrap_or(i64::MAX);
    let actor = Actor {
        id: "bench".into(),
        role: "ufficio_di_piano".into(),
    };
    let setup = Instant::now();
    let mut created = 0usize;
    // Timers are numbered 0..count; instance k holds timers k*P .. k*P+P-1.
    let instances = args.count.div_ceil(per_instance);
    let instant_of = |i: usize| {
        // Evenly from `first` to `first + spread`, in whole milliseconds.
        let offset = if args.count > 1 {
            i64::try_from(i128::from(spread_ms) * i as i128 / i128::from(count_i64 - 1))
                .unwrap_or(spread_ms)
        } else {
            0
        };
        first + Duration::milliseconds(offset)
    };
    let setup_chunk = (SETUP_CHUNK / per_instance).max(1);
    while created < instances {
        let upto = (created + setup_chunk).min(instances);
        let now = Utc::now();
        let mut planned = Vec::with_capacity(upto - created);
        for k in created..upto {
            let fire_at = instant_of(k * per_instance);
            let mut vars = Map::new();
            let id = crate::store::new_row_id(now);
            let step = if with_participants {
                vars.insert(
                    "scadenza_domande".into(),
                    Value::String((first + Duration::days(365)).to_rfc3339()),
                );
                vars.insert("termine".into(), Value::String(fire_at.to_rfc3339()));
                let timers = (k * per_instance..((k + 1) * per_instance).min(args.count)).count();
                with_applications(&procedure, &id, &vars, &actor, now, timers)?
            } else {
                vars.insert("termine".into(), Value::String(fire_at.to_rfc3339()));
                engine::start(&procedure, &id, &vars, &actor, now)?
            };
            planned.push((id, step, Value::Object(vars)));
        }
        start_all(&store, &procedure, &actor, now, &planned).await?;
        created = upto;
        eprint!("\rcreazione: {created}/{instances} istanze");
    }
    // The statistics a running database has (autovacuum analyzes a table once a tenth of
    // it changed), not those of the empty tables before the setup.
    store.analyze().await?;
    eprintln!(" in {:.1} s", setup.elapsed().as_secs_f64());

    // Timed part: the scheduler fires everything.
    let options = Options {
        batch_size: args.batch.max(1),
        parallelism: args.parallelism.max(1),
        poll_interval: StdDuration::from_millis(200),
        ..Options::default()
    };
    let scheduler = Scheduler::new(service.clone(), options)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    clock.set(first);
    let cpu_before = cpu_time();
    let started = Instant::now();
    let running = tokio::spawn(scheduler.run(async move {
        let _ = stopped.await;
    }));
    let total = args.count as u64;
    let mut last = (Instant::now(), 0u64);
    // Counting the done timers walks their index: every second when all are due at once,
    // every five when spread (the count only says when to stop; the figures come from the
    // instants stored).
    let every = StdDuration::from_secs(if args.spread == 0 { 1 } else { 5 });
    loop {
        tokio::time::sleep(every).await;
        let done = store.count_timers(TimerStatus::Done).await?;
        let rate = (done - last.1.min(done)) as f64 / last.0.elapsed().as_secs_f64();
        last = (Instant::now(), done);
        eprint!(
            "\rscattati: {done}/{total} ({rate:.0}/s, {:.0} s)   ",
            started.elapsed().as_secs_f64()
        );
        if done >= total {
            break;
        }
        if running.is_finished() {
            break;
        }
    }
    eprintln!();
    let _ = stop.send(());
    running.await.context("pianificatore")??;
    // What the scheduler needed, before the checks below read the timers back.
    let rss = peak_rss();
    let cpu = cpu_time()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));

    let instants = store.fired_timer_instants().await?;
    // Every timer moved its instance, or its participant, to `scaduta`.
    let moved = if with_participants {
        store
            .instances(&InstanceFilter {
                definition_id: Some("bench_partecipanti".into()),
                ..InstanceFilter::default()
            })
            .await?
            .iter()
            .map(|row| {
                row.data
                    .participants
                    .values()
                    .filter(|p| p.state == "scaduta")
                    .count()
            })
            .sum()
    } else {
        usize::try_from(store.count_instances_in("bench_timer", "scaduta").await?)
            .unwrap_or(usize::MAX)
    };
    if instants.len() != args.count || moved != args.count {
        bail!(
            "scattati {} timer e {moved} transizioni su {}",
            instants.len(),
            args.count
        );
    }
    let mut lateness: Vec<i64> = instants
        .iter()
        .map(|(fire_at, fired_at)| (*fired_at - *fire_at).num_milliseconds())
        .collect();
    lateness.sort_unstable();
    let last_fired = instants
        .iter()
        .map(|(_, fired_at)| *fired_at)
        .max()
        .unwrap_or(first);
    let elapsed = (last_fired - first).num_milliseconds().max(1) as f64 / 1000.0;
    let percentile = |p: f64| lateness[((lateness.len() as f64 - 1.0) * p).round() as usize];
    eprintln!(
        "{} ({}), {} timer, spread {} s{}",
        store.backend(),
        crate::cli::db::redact(&url),
        args.count,
        args.spread,
        if with_participants {
            format!(", {per_instance} partecipanti per istanza, un timer ciascuno")
        } else {
            String::new()
        }
    );
    println!(
        "fired {} timers in {elapsed:.1} s: {:.0} timers/s; lateness p50 {} ms, p99 {} ms, max {} ms; peak RSS {}",
        args.count,
        args.count as f64 / elapsed,
        percentile(0.50),
        percentile(0.99),
        lateness.last().copied().unwrap_or(0),
        rss.map_or_else(|| "n/d".to_owned(), |kb| format!("{} MB", kb / 1024)),
    );
    let rate = args.count as f64 / elapsed;
    // The cost per timer: the CPU this process spent (the database's own, on PostgreSQL, is
    // not in it), and the wall time when all were due at once (spread, it is the spread's).
    let cpu = cpu.map_or_else(
        || "n/d".to_owned(),
        |cpu| format!("{:.1} µs", cpu.as_secs_f64() * 1e6 / args.count as f64),
    );
    if args.spread == 0 {
        println!(
            "cost per timer: {:.1} µs wall, {cpu} of procedo's CPU",
            elapsed * 1e6 / args.count as f64,
        );
    } else {
        println!("cost per timer: {cpu} of procedo's CPU");
    }

    // The ceiling: the same rows (instance moved, history row, timer done) written by a bare
    // batched loop over as many fresh timers, all due — no engine, no planning.
    let plain = service.procedure("bench_timer", None).await?;
    let due = clock.now().trunc_subsecs(3);
    let mut created = 0usize;
    // A rate: 100,000 timers measure it as well as a million.
    let bare_count = args.count.min(CEILING_COUNT);
    while created < bare_count {
        let upto = (created + SETUP_CHUNK).min(bare_count);
        let now = clock.now();
        let mut planned = Vec::with_capacity(upto - created);
        for _ in created..upto {
            let mut vars = Map::new();
            vars.insert("termine".into(), Value::String(due.to_rfc3339()));
            let id = crate::store::new_row_id(now);
            let step = engine::start(&plain, &id, &vars, &actor, now)?;
            planned.push((id, step, Value::Object(vars)));
        }
        start_all(&store, &plain, &actor, now, &planned).await?;
        created = upto;
    }
    store.analyze().await?;
    let started = Instant::now();
    let mut bare = 0usize;
    loop {
        let n = store
            .bare_timer_batch(
                clock.now(),
                args.batch.max(1),
                "bare",
                ("scade", "attesa", "scaduta"),
            )
            .await?;
        if n == 0 {
            break;
        }
        bare += n;
    }
    let bare_elapsed = started.elapsed().as_secs_f64().max(0.001);
    let ceiling = bare as f64 / bare_elapsed;
    if args.spread == 0 {
        println!(
            "ceiling: a bare batched loop writes the same rows for {bare} timers in {bare_elapsed:.1} s: {ceiling:.0} units/s; procedo at {:.0}% of it ({:.2}x from the ceiling)",
            100.0 * rate / ceiling,
            ceiling / rate,
        );
    } else {
        // Spread over time, the rate is the spread's, not the store's: no ratio.
        println!(
            "ceiling: a bare batched loop writes the same rows for {bare} timers in {bare_elapsed:.1} s: {ceiling:.0} units/s"
        );
    }
    store.close().await?;
    Ok(())
}
