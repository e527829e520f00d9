//! Firing due timers. The event timers are fired in place (`fire_in_place`,
//! `Store::fire_due_in_place`): one transaction locks a batch of due timers, and the steps
//! planned here are committed in it with the timers done — a few set-based statements per
//! batch, no claim written, and still each timer's state change, history row and completion
//! in the same transaction. The rest (reminders, what the engine refuses) is claimed in that
//! transaction and goes through `Service::fire_timer` one transaction each (`fire_batch`),
//! with bounded parallelism on PostgreSQL; so do the claims of a dead replica whose lease ran
//! out.
//!
//! A claimed timer is started only while its claim is alive (`Heartbeat::may_start`). A
//! firing that fails writes nothing; the timer is then pending again with a retry delay of
//! its own (`Store::retry_timer`), so neither a short lease nor a persistent failure makes it
//! spin.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::task::JoinSet;
use tracing::{Instrument, debug, info_span, warn};

use super::retry::backoff;
use super::{Heartbeat, Options, Tally};
use crate::engine::{Step, TimerAction};
use crate::service::{Service, TimerOutcome};
use crate::store::{self, Claim, InstanceRow, PlannedFiring, TimerRow};

/// What firing a claimed batch needs from the scheduler.
pub(super) struct Work<'a> {
    pub service: &'a Service,
    pub worker: &'a str,
    pub heartbeat: &'a Heartbeat,
    pub stopping: &'a AtomicBool,
    pub options: &'a Options,
}

impl Work<'_> {
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

/// Timers fired per transaction by `fire_in_place`: bounds how long other writers wait.
pub(super) const TOGETHER: u64 = 500;

/// Fires `timers`, claimed by the worker. When the scheduler is stopping, the timers not yet
/// started are given back (pending again) for another worker or the next start; a timer whose
/// claim could not be kept alive is not started.
pub(super) async fn fire_batch(
    work: &Work<'_>,
    timers: Vec<TimerRow>,
    parallelism: usize,
) -> Tally {
    let mut tally = Tally::default();
    let mut running = JoinSet::new();
    let mut timers = timers.into_iter();
    while let Some(timer) = timers.next() {
        if work.stopping() {
            let mut not_started = vec![timer];
            not_started.extend(timers.by_ref());
            give_back(work, &not_started).await;
            break;
        }
        let claim = Claim::Timer(timer.id);
        if !work.heartbeat.may_start(&claim) {
            warn!(
                id = timer.id,
                "presa in carico non rinnovata: il timer non viene eseguito"
            );
            give_back(work, std::slice::from_ref(&timer)).await;
            tally.failed += 1;
            continue;
        }
        let job = fire_one(
            work.service.clone(),
            timer,
            work.worker.to_string(),
            work.options.retry_backoff,
            work.options.retry_max_backoff,
        );
        if parallelism <= 1 {
            count(&mut tally, job.await);
            work.heartbeat.forget(&claim);
            continue;
        }
        while running.len() >= parallelism {
            if let Some(joined) = running.join_next().await {
                finished(work, &mut tally, joined);
            }
        }
        running.spawn(async move { (claim, job.await) });
    }
    while let Some(joined) = running.join_next().await {
        finished(work, &mut tally, joined);
    }
    tally
}

/// Counts a timer fired in a task, and forgets its claim.
fn finished(
    work: &Work<'_>,
    tally: &mut Tally,
    joined: Result<(Claim, Fired), tokio::task::JoinError>,
) {
    match joined {
        Ok((claim, fired)) => {
            count(tally, fired);
            work.heartbeat.forget(&claim);
        }
        // A panic is a bug: the claim lapses with its lease (not renewed: forgotten below
        // when the id is known, else at the next renewal, which finds it still held).
        Err(e) => count(tally, Fired::Panicked(e.to_string())),
    }
}

/// What became of one timer.
enum Fired {
    /// Handled.
    Done(TimerOutcome),
    /// The firing failed and the timer waits for its retry.
    Failed,
    /// The task panicked (a bug): the timer stays claimed until its lease runs out.
    Panicked(String),
}

fn count(tally: &mut Tally, fired: Fired) {
    match fired {
        Fired::Done(TimerOutcome::Fired) => tally.fired += 1,
        Fired::Done(TimerOutcome::Reminded) => tally.reminded += 1,
        Fired::Done(TimerOutcome::Skipped(_)) => tally.skipped += 1,
        Fired::Done(TimerOutcome::Stale) => tally.stale += 1,
        Fired::Failed => tally.failed += 1,
        Fired::Panicked(why) => {
            warn!(%why, "firing a timer panicked");
            tally.failed += 1;
        }
    }
}

async fn fire_one(
    service: Service,
    timer: TimerRow,
    worker: String,
    base: std::time::Duration,
    max: std::time::Duration,
) -> Fired {
    let span = info_span!("timer", id = timer.id, instance = %timer.instance_id, key = %timer.key, fire_at = %timer.fire_at);
    async move {
        match service.fire_timer(&timer, &worker).await {
            Ok(outcome) => {
                debug!(?outcome, "timer eseguito");
                Fired::Done(outcome)
            }
            Err(e) => {
                // The failure (database busy or unreachable, a definition that no longer
                // loads) wrote nothing: the timer waits for its own retry delay.
                let attempt = timer.attempts.saturating_add(1);
                let delay = backoff(attempt, base, max, timer.id.unsigned_abs());
                let retry_at = service.now()
                    + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1));
                let reason = e.to_string();
                match service
                    .store()
                    .retry_timer(timer.id, &worker, retry_at, &reason)
                    .await
                {
                    Ok(()) => {
                        warn!(error = %reason, attempt, retry_at = %retry_at, "timer non eseguito: nuovo tentativo più tardi")
                    }
                    Err(store::Error::StaleTimer { .. }) => {}
                    Err(record) => {
                        warn!(error = %reason, record_error = %record, "timer non eseguito e nuovo tentativo non registrato: tornerà disponibile alla scadenza della presa in carico")
                    }
                }
                Fired::Failed
            }
        }
    }
    .instrument(span)
    .await
}

/// Gives claimed timers back, untouched (at shutdown, or when their claim lapsed).
pub(super) async fn give_back(work: &Work<'_>, timers: &[TimerRow]) {
    for timer in timers {
        work.heartbeat.forget(&Claim::Timer(timer.id));
        match work
            .service
            .store()
            .release_timer(timer.id, work.worker)
            .await
        {
            Ok(()) | Err(store::Error::StaleTimer { .. }) => {}
            Err(e) => {
                warn!(id = timer.id, error = %e, "timer non restituito: tornerà disponibile alla scadenza della presa in carico")
            }
        }
    }
    if !timers.is_empty() {
        debug!(count = timers.len(), "timer restituiti");
    }
}

/// What one `fire_in_place` transaction did.
pub(super) struct Round {
    /// The event timers fired, stale or failed.
    pub tally: Tally,
    /// How many due timers it locked: fewer than asked means none is left due.
    pub locked: usize,
    /// The timers left to the one-by-one path (`fire_batch`), claimed and held.
    pub claimed: Vec<TimerRow>,
}

/// One transaction of due timers fired in place (`Store::fire_due_in_place`): up to `limit`
/// due timers are locked, the event timers planned here on their instances (chains of the
/// timers of one instance, each step on the one before) and committed with their timers
/// done; the rest (reminders, what the engine refuses, a definition that does not load) is
/// claimed in the same transaction and returned, held by the heartbeat, for `fire_batch`.
pub(super) async fn fire_in_place(work: &Work<'_>, limit: u64) -> Result<Round, store::Error> {
    let service = work.service;
    let now = service.now();
    let done = service
        .store()
        .fire_due_in_place(now, limit, work.worker, work.options.lease, |due, rows| {
            plan_chains(service, due, rows)
        })
        .await?;
    let mut tally = Tally {
        stale: done.disarmed,
        ..Tally::default()
    };
    for (timer, result) in done.fired {
        let span = info_span!("timer", id = timer.id, instance = %timer.instance_id, key = %timer.key, fire_at = %timer.fire_at);
        let _entered = span.enter();
        match result {
            Ok(committed) => {
                debug!(seq = committed.seq, "timer scattato");
                tally.fired += 1;
            }
            Err(store::Error::StaleTimer { .. } | store::Error::Conflict { .. }) => {
                debug!("timer superato da un'altra modifica: nessun effetto");
                tally.stale += 1;
            }
            Err(e) => {
                warn!(error = %e, "timer non eseguito nel blocco");
                tally.failed += 1;
            }
        }
    }
    for timer in &done.claimed {
        work.heartbeat.hold(
            [Claim::Timer(timer.id)],
            timer.lease_until.unwrap_or(now + work.options.lease),
        );
    }
    Ok(Round {
        tally,
        locked: done.locked,
        claimed: done.claimed,
    })
}

/// The steps of the event timers among `due`, each on its instance among `rows`: the
/// timers of one instance in the order they fall due, each planned on the step before.
/// Returns the planned firings and the timers left to the one-by-one path (reminders,
/// what the engine refuses or cannot plan, with the instance's later timers).
async fn plan_chains(
    service: &Service,
    due: Vec<TimerRow>,
    rows: Vec<InstanceRow>,
) -> (Vec<PlannedFiring>, Vec<TimerRow>) {
    let instances: HashMap<String, InstanceRow> =
        rows.into_iter().map(|row| (row.id.clone(), row)).collect();
    let mut rest = Vec::new();
    let mut chains: Vec<Vec<TimerRow>> = Vec::new();
    let mut chain_of: HashMap<String, usize> = HashMap::new();
    for timer in due {
        if matches!(timer.action, TimerAction::Fire { .. }) {
            match chain_of.get(&timer.instance_id) {
                Some(&n) => chains[n].push(timer),
                None => {
                    chain_of.insert(timer.instance_id.clone(), chains.len());
                    chains.push(vec![timer]);
                }
            }
        } else {
            rest.push(timer);
        }
    }
    let now = service.now();
    let mut planned = Vec::with_capacity(chains.iter().map(Vec::len).sum());
    for chain in chains {
        let Some(mut row) = instances.get(&chain[0].instance_id).cloned() else {
            rest.extend(chain);
            continue;
        };
        let mut chain = chain.into_iter();
        while let Some(timer) = chain.next() {
            match plan(service, &timer, &row, now).await {
                Some(step) => {
                    let expected_version = row.version;
                    // The next timer of the instance fires on this step's outcome.
                    row.state = step.to.clone();
                    row.is_final = step.is_final;
                    row.data = step.data.clone();
                    row.version += 1;
                    planned.push(PlannedFiring {
                        payload: crate::service::timer_payload(&timer),
                        late: crate::service::is_late(&timer, now),
                        timer,
                        expected_version,
                        step,
                        at: now,
                    });
                }
                // Refused, or the definition did not load: the service records why; the
                // instance's later timers wait for it.
                None => {
                    rest.push(timer);
                    rest.extend(chain.by_ref());
                }
            }
        }
    }
    rest.sort_by_key(|t| (t.fire_at, t.id));
    (planned, rest)
}

/// The step an event timer takes on its instance now, exactly as `Service::fire_timer`
/// computes it; `None` if the engine refuses it or the definition does not load (the
/// one-by-one path then records why).
async fn plan(
    service: &Service,
    timer: &TimerRow,
    row: &InstanceRow,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Step> {
    service.timer_step(timer, row, now).await.ok()?.ok()
}
