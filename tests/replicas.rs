//! Two `procedo scheduler run` processes on one PostgreSQL database share 10,000 timers due
//! at once: `FOR UPDATE SKIP LOCKED` claims split the work and each timer's transition is
//! recorded exactly once. PostgreSQL only (SQLite has one scheduling process).

mod common;
mod fleet;

use std::time::Duration;

use chrono::Utc;
use procedo::store::TimerStatus;

const TIMERS: usize = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_fire_ten_thousand_timers_each_exactly_once() {
    let Some(admin) = common::postgres_url() else {
        eprintln!(
            "two_replicas_fire_ten_thousand_timers_each_exactly_once needs PostgreSQL: set {} (CI does)",
            common::POSTGRES_URL_VAR
        );
        return;
    };
    let (store, scratch) = common::scratch_postgres(&admin).await;
    let dir = tempfile::tempdir().expect("cartella temporanea");
    let workflows = fleet::workflows(dir.path());
    fleet::arm_due_timers(
        &store,
        &workflows,
        TIMERS,
        Utc::now() - chrono::Duration::minutes(1),
    )
    .await;

    let one = fleet::spawn_scheduler(&scratch.url, &workflows, "replica-1", 30);
    let two = fleet::spawn_scheduler(&scratch.url, &workflows, "replica-2", 30);
    fleet::wait_for(
        &store,
        TimerStatus::Done,
        TIMERS as u64,
        Duration::from_secs(240),
    )
    .await;
    fleet::terminate(one);
    fleet::terminate(two);

    let by_worker = fleet::assert_each_fired_once(&scratch.url, TIMERS).await;
    eprintln!("timer per replica: {by_worker:?}");
    assert_eq!(by_worker.iter().map(|(_, n)| n).sum::<i64>(), TIMERS as i64);
    assert!(
        by_worker.len() == 2 && by_worker.iter().all(|(_, n)| *n > 0),
        "both replicas took a share: {by_worker:?}"
    );
}
