//! Firing one claimed batch of timers. Each timer goes through `Service::fire_timer`, whose
//! transaction marks it done with its effect — with bounded parallelism on PostgreSQL — except
//! on SQLite, where the timers that fire an event on distinct instances are committed together
//! (`fire_together`): SQLite has one writer, and a statement costs a hop to the connection's
//! thread, so one transaction for many steps is several times faster than one each.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::task::JoinSet;
use tracing::{Instrument, debug, info_span, warn};

use super::Tally;
use crate::engine::{Actor, Step, TimerAction};
use crate::service::{Service, TimerOutcome};
use crate::store::{self, InstanceRow, StepRecord, TimerRow};

/// Steps committed per transaction by `fire_together`: bounds how long other writers wait.
const TOGETHER: usize = 250;

/// Fires `timers`, claimed by `worker`. When `stopping` turns true, the timers not yet started
/// are given back (pending again) for another worker or the next start.
pub(super) async fn fire_batch(
    service: &Service,
    worker: &str,
    timers: Vec<TimerRow>,
    parallelism: usize,
    stopping: &AtomicBool,
) -> Tally {
    let mut tally = Tally::default();
    let mut running = JoinSet::new();
    let mut timers = timers.into_iter();
    while let Some(timer) = timers.next() {
        if stopping.load(Ordering::SeqCst) {
            let mut not_started = vec![timer];
            not_started.extend(timers.by_ref());
            give_back(service, worker, &not_started).await;
            break;
        }
        if parallelism <= 1 {
            count(
                &mut tally,
                fire_one(service.clone(), timer, worker.to_string()).await,
            );
            continue;
        }
        while running.len() >= parallelism {
            if let Some(joined) = running.join_next().await {
                count(
                    &mut tally,
                    joined.unwrap_or_else(|e| Fired::Panicked(e.to_string())),
                );
            }
        }
        running.spawn(fire_one(service.clone(), timer, worker.to_string()));
    }
    while let Some(joined) = running.join_next().await {
        count(
            &mut tally,
            joined.unwrap_or_else(|e| Fired::Panicked(e.to_string())),
        );
    }
    tally
}

/// What became of one timer.
enum Fired {
    /// Handled.
    Done(TimerOutcome),
    /// The firing failed; the timer stays claimed until its lease runs out.
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

async fn fire_one(service: Service, timer: TimerRow, worker: String) -> Fired {
    let span = info_span!("timer", id = timer.id, instance = %timer.instance_id, key = %timer.key, fire_at = %timer.fire_at);
    async move {
        match service.fire_timer(&timer, &worker).await {
            Ok(outcome) => {
                debug!(?outcome, "timer eseguito");
                Fired::Done(outcome)
            }
            Err(e) => {
                // A failure (database busy or unreachable, a definition that no longer loads)
                // wrote nothing. The timer stays claimed, and is retried when the lease runs
                // out: the lease is the backoff, so a persistent failure is not retried in a
                // tight loop.
                warn!(error = %e, "timer non eseguito: verrà ritentato alla scadenza della presa in carico");
                Fired::Failed
            }
        }
    }
    .instrument(span)
    .await
}

/// Gives timers back at shutdown.
async fn give_back(service: &Service, worker: &str, timers: &[TimerRow]) {
    for timer in timers {
        match service.store().release_timer(timer.id, worker).await {
            Ok(()) | Err(store::Error::StaleTimer { .. }) => {}
            Err(e) => {
                warn!(id = timer.id, error = %e, "timer non restituito: tornerà disponibile alla scadenza della presa in carico")
            }
        }
    }
    if !timers.is_empty() {
        debug!(count = timers.len(), "timer restituiti allo spegnimento");
    }
}

/// Fires a claimed batch on SQLite: the event timers of distinct instances are computed here
/// and committed together (`Store::commit_timer_steps`), each as `Service::fire_timer` would
/// commit it; reminders, a second timer of the same instance, and anything the engine refuses
/// go through `Service::fire_timer` one at a time afterwards.
pub(super) async fn fire_together(
    service: &Service,
    worker: &str,
    timers: Vec<TimerRow>,
    stopping: &AtomicBool,
) -> Tally {
    let mut tally = Tally::default();
    let mut alone = Vec::new();
    let mut together = Vec::new();
    let mut seen = HashSet::new();
    for timer in timers {
        if matches!(timer.action, TimerAction::Fire { .. })
            && seen.insert(timer.instance_id.clone())
        {
            together.push(timer);
        } else {
            alone.push(timer);
        }
    }
    for chunk in chunks(together, TOGETHER) {
        if stopping.load(Ordering::SeqCst) {
            alone.extend(chunk);
            continue;
        }
        let (committed, rest) = commit_chunk(service, chunk).await;
        tally.add(committed);
        alone.extend(rest);
    }
    alone.sort_by_key(|t| (t.fire_at, t.id));
    tally.add(fire_batch(service, worker, alone, 1, stopping).await);
    tally
}

fn chunks(mut timers: Vec<TimerRow>, size: usize) -> Vec<Vec<TimerRow>> {
    let mut out = Vec::new();
    while timers.len() > size {
        let rest = timers.split_off(size);
        out.push(std::mem::replace(&mut timers, rest));
    }
    if !timers.is_empty() {
        out.push(timers);
    }
    out
}

/// One transaction of event timers; returns what it did and the timers left to the one-by-one
/// path.
async fn commit_chunk(service: &Service, chunk: Vec<TimerRow>) -> (Tally, Vec<TimerRow>) {
    let mut tally = Tally::default();
    let store = service.store();
    let ids: Vec<&str> = chunk.iter().map(|t| t.instance_id.as_str()).collect();
    let instances: HashMap<String, InstanceRow> = match store.instances_by_id(&ids).await {
        Ok(rows) => rows.into_iter().map(|row| (row.id.clone(), row)).collect(),
        Err(e) => {
            warn!(error = %e, "istanze non lette: i timer scattano uno alla volta");
            return (tally, chunk);
        }
    };
    let now = service.now();
    let mut planned: Vec<(TimerRow, InstanceRow, Step, serde_json::Value)> =
        Vec::with_capacity(chunk.len());
    let mut rest = Vec::new();
    for timer in chunk {
        let Some(row) = instances.get(&timer.instance_id).cloned() else {
            rest.push(timer);
            continue;
        };
        match plan(service, &timer, &row, now).await {
            Some(step) => {
                let payload = crate::service::timer_payload(&timer);
                planned.push((timer, row, step, payload));
            }
            // Refused, or the definition did not load: the service records why.
            None => rest.push(timer),
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
            };
            (record, timer.key.as_str())
        })
        .collect();
    match store.commit_timer_steps(&records).await {
        Ok(results) => {
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
                        warn!(error = %e, "timer non eseguito");
                        tally.failed += 1;
                    }
                }
            }
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
