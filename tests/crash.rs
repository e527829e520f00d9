//! A scheduler killed with SIGKILL in the middle of a batch, then restarted: every timer fires
//! exactly once — what the first process committed is not repeated, what it held is taken
//! back after the lease — and every email of a convocation goes out, the ones the dead process
//! held within a minute of the restart. On SQLite, and on PostgreSQL when configured.

mod common;
mod fleet;
mod smtp_receiver;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use procedo::catalog;
use procedo::clock::SystemClock;
use procedo::engine::{Actor, Command};
use procedo::service::Service;
use procedo::store::{
    DeliveryFilter, DeliveryRow, DeliveryStatus, NewOrganisation, NewPerson, OrganisationKind,
    Store, TimerStatus,
};
use serde_json::json;

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

/// Mayors convened at once: enough that the kill lands while mail is going out.
const MAYORS: usize = 300;

/// The ETS-free shipped convocation, with `MAYORS` mayors, convened for a month from now.
async fn convene_many_mayors(store: &Store) {
    let workflows = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");
    let (catalog, diags) = catalog::load(&[workflows]);
    assert!(diags.is_empty(), "{diags:?}");
    let service = Service::new(store.clone(), Arc::new(SystemClock));
    service
        .install(&catalog.expect("catalogo"))
        .await
        .expect("installazione");
    let now = Utc::now();
    for index in 0..MAYORS {
        let comune = format!("comune-{index}");
        store
            .add_organisation(&NewOrganisation {
                id: comune.clone(),
                name: format!("Comune n. {index}"),
                kind: OrganisationKind::Comune,
                codice_fiscale: None,
                runts: None,
                pec: None,
                at: now,
            })
            .await
            .expect("comune");
        store
            .add_person(&NewPerson {
                id: format!("sindaco-{index}"),
                name: format!("Sindaco {index}"),
                email: format!("sindaco@comune-{index}.example.it"),
                organisation_id: comune,
                roles: vec!["sindaco".to_owned()],
                digest: "immediato".to_owned(),
                at: now,
            })
            .await
            .expect("sindaco");
    }
    let presidente = Actor {
        id: "presidente".into(),
        role: "ufficio_di_piano".into(),
    };
    let seduta = (now + chrono::Duration::days(30)).to_rfc3339();
    // Every comune is a member of this Assemblea.
    let membri: Vec<String> = (0..MAYORS).map(|i| format!("comune-{i}")).collect();
    let variables = json!({
        "organo": "Assemblea dei Sindaci",
        "ordine_del_giorno": ["Piano di Zona"],
        "luogo": "Sala consiliare",
        "data_seduta": seduta,
        "membri": membri,
    });
    let started = service
        .start(
            "convocazione_assemblea",
            None,
            variables.as_object().cloned().unwrap_or_default(),
            &presidente,
            None,
        )
        .await
        .expect("avvio");
    let command = Command {
        event: "convoca".into(),
        actor: presidente,
        payload: serde_json::Map::new(),
        participant: None,
    };
    service
        .fire(&started.instance.id, &command, None)
        .await
        .expect("convoca");
}

async fn convocations(store: &Store) -> Vec<DeliveryRow> {
    store
        .deliveries(&DeliveryFilter::default())
        .await
        .expect("consegne")
        .into_iter()
        .filter(|delivery| delivery.kind == "convocazione")
        .collect()
}

/// Polls the convocations every 50 ms until `done` holds for them; panics after `timeout`.
async fn wait_for_mail(
    store: &Store,
    timeout: Duration,
    what: &str,
    done: impl Fn(&[DeliveryRow]) -> bool,
) -> Vec<DeliveryRow> {
    let deadline = Instant::now() + timeout;
    loop {
        let rows = convocations(store).await;
        if done(&rows) {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: non avvenuto entro {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn crash_while_sending(backend: &str, store: Store, url: &str) {
    convene_many_mayors(&store).await;
    let receiver = smtp_receiver::Receiver::start(&[]);
    // A relay that takes 40 ms per message: the first process is mid-way when it dies.
    receiver.slow(Duration::from_millis(40));
    let dir = tempfile::tempdir().expect("cartella temporanea");
    let workflows = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");
    let env = [
        (
            "PROCEDO_SMTP_URL",
            format!("smtp://127.0.0.1:{}?tls=none", receiver.port),
        ),
        (
            "PROCEDO_MAIL_DIR",
            dir.path().join("mail").display().to_string(),
        ),
    ];
    let sent = |rows: &[DeliveryRow]| {
        rows.iter()
            .filter(|delivery| delivery.status == DeliveryStatus::Sent)
            .count()
    };
    let mut first = fleet::spawn_scheduler_with(url, &workflows, "primo", &[], &env);
    wait_for_mail(
        &store,
        Duration::from_secs(120),
        "un terzo inviato",
        |rows| rows.len() == MAYORS && sent(rows) >= MAYORS / 3,
    )
    .await;
    first.kill().expect("SIGKILL");
    first.wait().expect("attesa del processo ucciso");
    let at_kill = convocations(&store).await;
    let held: Vec<i64> = at_kill
        .iter()
        .filter(|delivery| {
            delivery.status == DeliveryStatus::Pending
                && delivery.claimed_by.as_deref() == Some("primo")
                && delivery.lease_until.is_some()
        })
        .map(|delivery| delivery.id)
        .collect();
    eprintln!(
        "{backend}: ucciso con {} convocazioni inviate, {} in carico al processo ucciso",
        sent(&at_kill),
        held.len()
    );
    assert!(sent(&at_kill) < MAYORS, "{backend}: the kill came too late");
    assert!(!held.is_empty(), "{backend}: the dead process held nothing");

    // Restarted with the default lease: what the dead process held is out within a minute.
    let restarted = Instant::now();
    let second = fleet::spawn_scheduler_with(url, &workflows, "secondo", &[], &env);
    let rows = wait_for_mail(&store, Duration::from_secs(60), "tutto inviato", |rows| {
        sent(rows) == MAYORS
    })
    .await;
    eprintln!(
        "{backend}: tutto inviato {:?} dopo il riavvio",
        restarted.elapsed()
    );
    fleet::terminate(second);

    // Nothing lost: every convocation reached its mayor under its own Message-ID. Nothing
    // sent twice but what the dead process may have had on the wire when it died.
    let mut copies: BTreeMap<String, usize> = BTreeMap::new();
    for message in receiver.messages() {
        let text = String::from_utf8_lossy(&message.raw).into_owned();
        let id = text
            .lines()
            .find_map(|line| line.strip_prefix("Message-ID: "))
            .expect("Message-ID")
            .trim()
            .to_owned();
        *copies.entry(id).or_default() += 1;
    }
    for delivery in &rows {
        let count = copies.get(&delivery.message_id).copied().unwrap_or(0);
        assert!(
            count >= 1,
            "{backend}: {} never arrived",
            delivery.message_id
        );
        if count > 1 {
            assert!(
                held.contains(&delivery.id),
                "{backend}: {} arrived {count} times but was not in flight at the kill",
                delivery.message_id
            );
        }
    }
    assert_eq!(copies.len(), MAYORS, "{backend}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_killed_while_sending_a_convocation_hands_the_rest_on_within_a_minute() {
    let (store, scratch) = common::scratch_store().await;
    crash_while_sending("sqlite", store, &scratch.url).await;
    if let Some(admin) = common::postgres_url() {
        let (store, scratch) = common::scratch_postgres(&admin).await;
        crash_while_sending("postgres", store, &scratch.url).await;
    }
}
