//! A scheduler killed with SIGKILL in the middle of a batch, then restarted: every timer fires
//! exactly once — what the first process committed is not repeated, what it held is taken
//! back after the lease. On SQLite, and on PostgreSQL when configured.

mod common;
mod fleet;

use std::time::Duration;

use chrono::Utc;
use procedo::store::{Store, TimerStatus};

/// Timers due at once; enough that the kill lands mid-way.
const TIMERS: usize = 3_000;
/// The lease of the children: what the restarted one waits for the dead one's claims.
const LEASE_SECONDS: u64 = 2;

async fn crash_and_restart(backend: &str, store: Store, url: &str) {
    let dir = tempfile::tempdir().expect("cartella temporanea");
    let workflows = fleet::workflows(dir.path());
    fleet::arm_due_timers(
        &store,
        &workflows,
        TIMERS,
        Utc::now() - chrono::Duration::minutes(1),
    )
    .await;

    let mut first = fleet::spawn_scheduler(url, &workflows, "first", LEASE_SECONDS);
    let done_at_kill = fleet::wait_for(
        &store,
        TimerStatus::Done,
        (TIMERS / 10) as u64,
        Duration::from_secs(120),
    )
    .await;
    first.kill().expect("SIGKILL"); // std sends SIGKILL on Unix
    first.wait().expect("attesa del processo ucciso");
    let done = store.count_timers(TimerStatus::Done).await.expect("count");
    let claimed = store
        .count_timers(TimerStatus::Claimed)
        .await
        .expect("count");
    eprintln!(
        "{backend}: ucciso con {done} timer scattati ({done_at_kill} al segnale), {claimed} in carico"
    );
    assert!(
        done < TIMERS as u64,
        "{backend}: the kill came after the last timer; nothing was tested"
    );

    let second = fleet::spawn_scheduler(url, &workflows, "second", LEASE_SECONDS);
    fleet::wait_for(
        &store,
        TimerStatus::Done,
        TIMERS as u64,
        Duration::from_secs(180),
    )
    .await;
    fleet::terminate(second);
    assert_eq!(
        store
            .count_timers(TimerStatus::Claimed)
            .await
            .expect("count"),
        0,
        "{backend}"
    );
    assert_eq!(
        store
            .count_timers(TimerStatus::Pending)
            .await
            .expect("count"),
        0,
        "{backend}"
    );
    let by_worker = fleet::assert_each_fired_once(url, TIMERS).await;
    eprintln!("{backend}: timer per processo {by_worker:?}");
    assert!(
        by_worker.iter().any(|(w, n)| w == "second" && *n > 0),
        "{backend}: the restarted process fired the rest"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_killed_mid_batch_fires_every_timer_exactly_once_after_restart() {
    let (store, scratch) = common::scratch_store().await;
    crash_and_restart("sqlite", store, &scratch.url).await;
    if let Some(admin) = common::postgres_url() {
        let (store, scratch) = common::scratch_postgres(&admin).await;
        crash_and_restart("postgres", store, &scratch.url).await;
    }
}
