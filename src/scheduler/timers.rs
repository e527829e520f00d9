//! Firing one claimed batch of timers. The timers that fire an event on distinct instances are
//! planned here and committed together (`fire_together`, `Store::commit_timer_steps`): a few
//! set-based statements per transaction instead of several round trips and a commit per
//! timer, and still each timer's state change, history row and completion in the same
//! transaction. The rest (reminders, a second timer of an instance, what the engine refuses)
//! goes through `Service::fire_timer` one transaction each — with bounded parallelism on
//! PostgreSQL.
//!
//! A timer is started only while its claim is alive (`Heartbeat::may_start`). A firing that
//! fails writes nothing; the timer is then pending again with a retry delay of its own
//! (`Store::retry_timer`), so neither a short lease nor a persistent failure makes it spin.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt as _;
use tokio::task::JoinSet;
use tracing::{Instrument, debug, info_span, warn};

use super::retry::backoff;
use super::{Heartbeat, Options, Tally};
use crate::engine::{Actor, Step, TimerAction};
use crate::service::{Service, TimerOutcome};
use crate::store::{self, Claim, InstanceRow, StepRecord, TimerRow};

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

/// Steps committed per transaction by `fire_together`: bounds how long other writers wait.
const TOGETHER: usize = 500;

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

/// Fires a claimed batch: the event timers of distinct instances are computed here and
/// committed together (`Store::commit_timer_steps`), each as `Service::fire_timer` would
/// commit it; reminders, a second timer of the same instance, and anything the engine refuses
/// go through `Service::fire_timer` afterwards, `parallelism` at a time.
pub(super) async fn fire_together(
    work: &Work<'_>,
    timers: Vec<TimerRow>,
    parallelism: usize,
) -> Tally {
    let mut tally = Tally::default();
    let mut alone = Vec::new();
    // The event timers by instance, in the order they fall due: each instance's timers are
    // planned one on the other and committed together.
    let mut chains: Vec<Vec<TimerRow>> = Vec::new();
    let mut chain_of: HashMap<String, usize> = HashMap::new();
    for timer in timers {
        if matches!(timer.action, TimerAction::Fire { .. }) {
            match chain_of.get(&timer.instance_id) {
                Some(&n) => chains[n].push(timer),
                None => {
                    chain_of.insert(timer.instance_id.clone(), chains.len());
                    chains.push(vec![timer]);
                }
            }
        } else {
            alone.push(timer);
        }
    }
    // On SQLite one writer: the transactions go one after the other. On PostgreSQL up to
    // `parallelism` of them (at most 4) are in flight at once — their instances are
    // distinct, so they never wait on each other — and smaller, so that the database works
    // on one while procedo plans the next.
    let (size, in_flight) = if parallelism > 1 {
        (TOGETHER / 2, parallelism.min(4))
    } else {
        (TOGETHER, 1)
    };
    let mut ready = Vec::new();
    for chunk in chunks(chains, size) {
        if work.stopping() {
            alone.extend(chunk.into_iter().flatten());
            continue;
        }
        // What lost its claim goes the one-by-one way, which does not start it; a chain keeps
        // the timers before it.
        let mut alive = Vec::with_capacity(chunk.len());
        for chain in chunk {
            let cut = chain
                .iter()
                .position(|t| !work.heartbeat.may_start(&Claim::Timer(t.id)))
                .unwrap_or(chain.len());
            let mut chain = chain;
            alone.extend(chain.split_off(cut));
            if !chain.is_empty() {
                alive.push(chain);
            }
        }
        ready.push(alive);
    }
    let mut committing = futures_util::stream::iter(ready.into_iter().map(|alive| async move {
        let ids: Vec<i64> = alive.iter().flatten().map(|t| t.id).collect();
        let (committed, rest) = commit_chunk(work.service, alive).await;
        (ids, committed, rest)
    }))
    .buffer_unordered(in_flight);
    while let Some((ids, committed, rest)) = committing.next().await {
        tally.add(committed);
        let left: HashSet<i64> = rest.iter().map(|t| t.id).collect();
        for id in ids.into_iter().filter(|id| !left.contains(id)) {
            work.heartbeat.forget(&Claim::Timer(id));
        }
        alone.extend(rest);
    }
    alone.sort_by_key(|t| (t.fire_at, t.id));
    tally.add(fire_batch(work, alone, parallelism).await);
    tally
}

/// Chains grouped so that each group holds about `size` timers (a chain is never split).
fn chunks(chains: Vec<Vec<TimerRow>>, size: usize) -> Vec<Vec<Vec<TimerRow>>> {
    let mut out: Vec<Vec<Vec<TimerRow>>> = Vec::new();
    let mut current = Vec::new();
    let mut count = 0;
    for chain in chains {
        if count > 0 && count + chain.len() > size {
            out.push(std::mem::take(&mut current));
            count = 0;
        }
        count += chain.len();
        current.push(chain);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// One transaction of event timers (chains of the timers of one instance); returns what it
/// did and the timers left to the one-by-one path.
async fn commit_chunk(service: &Service, chunk: Vec<Vec<TimerRow>>) -> (Tally, Vec<TimerRow>) {
    let mut tally = Tally::default();
    let store = service.store();
    let ids: Vec<&str> = chunk.iter().map(|c| c[0].instance_id.as_str()).collect();
    let instances: HashMap<String, InstanceRow> = match store.instances_by_id(&ids).await {
        Ok(rows) => rows.into_iter().map(|row| (row.id.clone(), row)).collect(),
        Err(e) => {
            warn!(error = %e, "istanze non lette: i timer scattano uno alla volta");
            return (tally, chunk.into_iter().flatten().collect());
        }
    };
    let now = service.now();
    let mut planned: Vec<(TimerRow, InstanceRow, Step, serde_json::Value)> =
        Vec::with_capacity(chunk.iter().map(Vec::len).sum());
    let mut rest = Vec::new();
    for chain in chunk {
        let Some(mut row) = instances.get(&chain[0].instance_id).cloned() else {
            rest.extend(chain);
            continue;
        };
        let mut chain = chain.into_iter();
        while let Some(timer) = chain.next() {
            match plan(service, &timer, &row, now).await {
                Some(step) => {
                    let payload = crate::service::timer_payload(&timer);
                    // The next timer of the instance fires on this step's outcome.
                    let mut next = row.clone();
                    next.state = step.to.clone();
                    next.is_final = step.is_final;
                    next.data = step.data.clone();
                    next.version += 1;
                    planned.push((timer, row, step, payload));
                    row = next;
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
    let actor = Actor::system();
    let records: Vec<(StepRecord<'_>, &str)> = planned
        .iter()
        .map(|(timer, row, step, payload)| {
            let record = StepRecord {
                instance_id: &row.id,
                expected_version: row.version,
                actor: &actor,
                step,
                payload,
                idempotency_key: None,
                at: now,
                late: crate::service::is_late(timer, now),
                fired_timer: Some(timer.id),
                submission: None,
            };
            (record, timer.key.as_str())
        })
        .collect();
    match store.commit_timer_steps(&records).await {
        Ok(results) => {
            let mut again = Vec::new();
            for ((timer, _, _, _), result) in planned.iter().zip(results) {
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
                        // Nothing of it was written: the one-by-one path fires it, or
                        // records the failure with its retry delay.
                        warn!(error = %e, "timer non eseguito nel blocco");
                        again.push(timer.id);
                    }
                }
            }
            rest.extend(
                planned
                    .into_iter()
                    .map(|(timer, ..)| timer)
                    .filter(|timer| again.contains(&timer.id)),
            );
        }
        Err(e) => {
            warn!(error = %e, count = planned.len(), "transazione dei timer non riuscita: scattano uno alla volta");
            rest.extend(planned.into_iter().map(|(timer, ..)| timer));
        }
    }
    (tally, rest)
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
