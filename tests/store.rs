//! The store on SQLite and on PostgreSQL (when `PROCEDO_TEST_DATABASE_URL` is set): steps
//! survive a reopen with a gapless history, idempotency keys, optimistic concurrency, timers
//! and their claims, the outbox and cron runs. Steps come from the real engine on a small
//! procedure without term rules.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use common::{at, scratch_stores};
use procedo::definition::{self, Environment, Procedure};
use procedo::engine::{self, Actor, Command, Effect, Snapshot, Step, TimerAction, TimerPlan};
use procedo::store::{
    self, Committed, InstanceFilter, InstanceRow, NewDefinition, OutboxStatus, Saved, StartRecord,
    StepRecord, Store, TimerStatus,
};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Map, Value, json};
use tokio::task::JoinSet;

const PROCEDURE: &str = r#"
id: prova_store
version: 1
title: Prova dello store
roles:
  ufficio: Ufficio di Piano
variables:
  entro_il:
    type: datetime
    required: true
  nota:
    type: text
states:
  bozza:
    initial: true
    on_enter:
      - notify: { role: ufficio, template: avviso }
  revisione: {}
  chiusa:
    final: true
transitions:
  - event: annota
    from: bozza
    to: bozza
    roles: [ufficio]
    inputs:
      nota: optional
  - event: proroga
    from: bozza
    to: bozza
    roles: [ufficio]
    inputs:
      entro_il: required
  - event: rivedi
    from: bozza
    to: revisione
    roles: [ufficio]
  - event: scade
    from: bozza
    to: chiusa
    roles: [ufficio]
  - event: chiudi
    from: revisione
    to: chiusa
    roles: [ufficio]
timers:
  - id: termine
    while: bozza
    at: entro_il
    fires: scade
"#;

/// When the tests start.
const T0: &str = "2025-03-03T09:00:00Z";
/// The instance's deadline, when its timer fires.
const DEADLINE: &str = "2025-03-10T10:00:00Z";

fn procedure() -> Procedure {
    definition::validate("prova_store.yaml", PROCEDURE, &Environment::default())
        .unwrap_or_else(|diags| panic!("procedura di prova non valida: {diags:?}"))
}

fn ufficio() -> Actor {
    Actor {
        id: "mario.rossi".into(),
        role: "ufficio".into(),
    }
}

fn minutes(n: i64) -> DateTime<Utc> {
    at(T0) + Duration::minutes(n)
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

async fn install(store: &Store, p: &Procedure) {
    let saved = store
        .save_definition(&NewDefinition {
            id: p.id.clone(),
            version: p.version,
            title: p.title.clone(),
            content_hash: definition::content_hash(PROCEDURE, "{}"),
            source: PROCEDURE.to_string(),
            assets: json!({}),
            loaded_at: at(T0),
        })
        .await
        .expect("salvataggio della definizione");
    assert_eq!(saved, Saved::Inserted);
}

/// Starts an instance with a new id and the given deadline.
async fn start(
    store: &Store,
    p: &Procedure,
    deadline: &str,
    key: Option<&str>,
) -> Result<Committed, store::Error> {
    let id = uuid::Uuid::new_v4().to_string();
    start_as(store, p, &id, deadline, key).await
}

async fn start_as(
    store: &Store,
    p: &Procedure,
    id: &str,
    deadline: &str,
    key: Option<&str>,
) -> Result<Committed, store::Error> {
    let variables = object(json!({ "entro_il": deadline }));
    let actor = ufficio();
    let step = engine::start(p, id, &variables, &actor, at(T0)).expect("avvio");
    store
        .commit_start(&StartRecord {
            instance_id: id,
            definition_id: &p.id,
            definition_version: p.version,
            parent_id: None,
            actor: &actor,
            step: &step,
            payload: &Value::Object(variables),
            idempotency_key: key,
            at: at(T0),
        })
        .await
}

/// The engine's step for `event` on the instance as read.
fn step_on(
    p: &Procedure,
    row: &InstanceRow,
    event: &str,
    payload: Value,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Step {
    let command = Command {
        event: event.into(),
        actor: actor.clone(),
        payload: object(payload),
        participant: None,
    };
    let snapshot = Snapshot {
        id: &row.id,
        state: &row.state,
        data: &row.data,
    };
    engine::fire(p, &snapshot, &command, now).unwrap_or_else(|e| panic!("{event}: {e}"))
}

async fn read(store: &Store, id: &str) -> InstanceRow {
    store
        .instance(id)
        .await
        .expect("lettura")
        .expect("istanza presente")
}

/// Fires `event` as the Ufficio on the current version.
async fn fire(
    store: &Store,
    p: &Procedure,
    id: &str,
    event: &str,
    payload: Value,
    key: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Committed, store::Error> {
    let row = read(store, id).await;
    let actor = ufficio();
    let step = step_on(p, &row, event, payload.clone(), &actor, now);
    store
        .commit_step(&StepRecord {
            instance_id: id,
            expected_version: row.version,
            actor: &actor,
            step: &step,
            payload: &payload,
            idempotency_key: key,
            at: now,
            late: false,
            fired_timer: None,
            submission: None,
        })
        .await
}

/// Fires the timer's event as the scheduler, on the current version.
async fn fire_timer(
    store: &Store,
    p: &Procedure,
    id: &str,
    timer_id: i64,
    now: DateTime<Utc>,
) -> Result<Committed, store::Error> {
    let row = read(store, id).await;
    let actor = Actor::system();
    let step = step_on(p, &row, "scade", json!({}), &actor, now);
    store
        .commit_step(&StepRecord {
            instance_id: id,
            expected_version: row.version,
            actor: &actor,
            step: &step,
            payload: &json!({ "timer": "termine" }),
            idempotency_key: None,
            at: now,
            late: now > at(DEADLINE),
            fired_timer: Some(timer_id),
            submission: None,
        })
        .await
}

#[tokio::test]
async fn a_reopened_store_has_the_same_state_and_a_gapless_history() {
    for (backend, store, scratch) in scratch_stores().await {
        let p = procedure();
        install(&store, &p).await;
        let id = start(&store, &p, DEADLINE, None)
            .await
            .expect("avvio")
            .instance_id;
        for n in 1..=3 {
            fire(
                &store,
                &p,
                &id,
                "annota",
                json!({ "nota": format!("nota {n}") }),
                None,
                minutes(n),
            )
            .await
            .expect("annota");
        }
        fire(
            &store,
            &p,
            &id,
            "proroga",
            json!({ "entro_il": "2025-03-12T10:00:00Z" }),
            None,
            minutes(4),
        )
        .await
        .expect("proroga");
        let last = fire(&store, &p, &id, "rivedi", json!({}), None, minutes(5))
            .await
            .expect("rivedi");
        assert_eq!(
            (last.seq, last.version, last.replayed),
            (6, 6, false),
            "{backend}"
        );

        let before = read(&store, &id).await;
        store.close().await.expect("chiusura");
        let store = Store::connect(&scratch.url).await.expect("riapertura");
        let after = read(&store, &id).await;
        assert_eq!(before, after, "{backend}: l'istanza riletta è diversa");
        assert_eq!(
            (after.state.as_str(), after.version, after.is_final),
            ("revisione", 6, false),
            "{backend}"
        );
        assert_eq!(
            after.data.variables.get("nota"),
            Some(&json!("nota 3")),
            "{backend}"
        );
        assert_eq!(after.created_at, at(T0), "{backend}");
        assert_eq!(after.updated_at, minutes(5), "{backend}");

        let history = store.history(&id).await.expect("storia");
        let seqs: Vec<i64> = history.iter().map(|h| h.seq).collect();
        assert_eq!(
            seqs,
            (1..=6).collect::<Vec<_>>(),
            "{backend}: la storia ha buchi"
        );
        let events: Vec<&str> = history.iter().map(|h| h.event.as_str()).collect();
        assert_eq!(
            events,
            ["avvio", "annota", "annota", "annota", "proroga", "rivedi"],
            "{backend}"
        );
        assert_eq!(history[0].from_state, None, "{backend}");
        assert_eq!(history[5].from_state.as_deref(), Some("bozza"), "{backend}");
        assert_eq!(history[5].to_state, "revisione", "{backend}");
        assert_eq!(history[1].payload, json!({ "nota": "nota 1" }), "{backend}");
        assert_eq!(history[1].actor, ufficio(), "{backend}");
        assert_eq!(history[3].at, minutes(3), "{backend}");
        let first_effects: Vec<Effect> =
            serde_json::from_value(history[0].effects.clone()).expect("effetti");
        assert!(
            matches!(
                first_effects.as_slice(),
                [Effect::Notify(_), Effect::ScheduleTimer(_)]
            ),
            "{backend}: {first_effects:?}"
        );

        let outbox = store.outbox_rows(None).await.expect("outbox");
        assert_eq!(outbox.len(), 1, "{backend}: una notifica all'avvio");
        assert_eq!(
            (outbox[0].kind.as_str(), outbox[0].status),
            ("notify", OutboxStatus::Pending),
            "{backend}"
        );
        assert!(matches!(outbox[0].payload, Effect::Notify(_)), "{backend}");

        let timers = store.timers(&id).await.expect("timer");
        let ends: Vec<(TimerStatus, Option<&str>)> = timers
            .iter()
            .map(|t| (t.status, t.outcome.as_deref()))
            .collect();
        assert_eq!(
            ends,
            [
                (TimerStatus::Cancelled, Some("replaced")),
                (TimerStatus::Cancelled, Some("cancelled"))
            ],
            "{backend}"
        );
        store.close().await.expect("chiusura");
    }
}

#[tokio::test]
async fn the_same_idempotency_key_twice_has_one_effect() {
    for (backend, store, _scratch) in scratch_stores().await {
        let p = procedure();
        install(&store, &p).await;
        let first = start(&store, &p, DEADLINE, Some("avvio-1"))
            .await
            .expect("avvio");
        let again = start(&store, &p, DEADLINE, Some("avvio-1"))
            .await
            .expect("avvio ripetuto");
        assert!(!first.replayed && again.replayed, "{backend}");
        assert_eq!(
            again.instance_id, first.instance_id,
            "{backend}: la ripetizione indica l'istanza originale"
        );
        let all = store
            .instances(&InstanceFilter::default())
            .await
            .expect("istanze");
        assert_eq!(all.len(), 1, "{backend}: un solo avvio");
        let id = first.instance_id;

        let row = read(&store, &id).await;
        let actor = ufficio();
        let payload = json!({ "nota": "una volta sola" });
        let step = step_on(&p, &row, "annota", payload.clone(), &actor, minutes(1));
        let record = StepRecord {
            instance_id: &id,
            expected_version: row.version,
            actor: &actor,
            step: &step,
            payload: &payload,
            idempotency_key: Some("passo-1"),
            at: minutes(1),
            late: false,
            fired_timer: None,
            submission: None,
        };
        let once = store.commit_step(&record).await.expect("passo");
        let twice = store.commit_step(&record).await.expect("passo ripetuto");
        assert_eq!((once.seq, once.replayed), (2, false), "{backend}");
        assert_eq!(
            (twice.seq, twice.version, twice.replayed),
            (2, 2, true),
            "{backend}"
        );
        // A client that re-read the instance before retrying gets the same answer.
        let reread = fire(
            &store,
            &p,
            &id,
            "annota",
            payload.clone(),
            Some("passo-1"),
            minutes(2),
        )
        .await
        .expect("terza volta");
        assert_eq!((reread.seq, reread.replayed), (2, true), "{backend}");

        assert_eq!(
            store.history(&id).await.expect("storia").len(),
            2,
            "{backend}"
        );
        assert_eq!(read(&store, &id).await.version, 2, "{backend}");
        let command = store
            .command("passo-1")
            .await
            .expect("comando")
            .expect("registrato");
        assert_eq!(
            (command.instance_id.as_str(), command.seq),
            (id.as_str(), 2),
            "{backend}"
        );
        assert_eq!(
            store.history(&id).await.expect("storia")[1]
                .idempotency_key
                .as_deref(),
            Some("passo-1"),
            "{backend}"
        );
        assert_eq!(
            store.outbox_rows(None).await.expect("outbox").len(),
            1,
            "{backend}"
        );
        assert!(
            store.command("mai-usata").await.expect("comando").is_none(),
            "{backend}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_sent_eight_times_at_once_commits_once() {
    for (backend, store, _scratch) in scratch_stores().await {
        let p = Arc::new(procedure());
        install(&store, &p).await;
        let id = start(&store, &p, DEADLINE, None)
            .await
            .expect("avvio")
            .instance_id;
        let row = read(&store, &id).await;
        let mut tasks = JoinSet::new();
        for _ in 0..8 {
            let (store, p, row) = (store.clone(), p.clone(), row.clone());
            tasks.spawn(async move {
                let actor = ufficio();
                let payload = json!({ "nota": "doppio clic" });
                let step = step_on(&p, &row, "annota", payload.clone(), &actor, minutes(1));
                store
                    .commit_step(&StepRecord {
                        instance_id: &row.id,
                        expected_version: row.version,
                        actor: &actor,
                        step: &step,
                        payload: &payload,
                        idempotency_key: Some("doppio-clic"),
                        at: minutes(1),
                        late: false,
                        fired_timer: None,
                        submission: None,
                    })
                    .await
            });
        }
        let outcomes: Vec<Committed> = tasks
            .join_all()
            .await
            .into_iter()
            .map(|r| r.expect("ogni invio riesce"))
            .collect();
        assert_eq!(
            outcomes.iter().filter(|c| !c.replayed).count(),
            1,
            "{backend}: {outcomes:?}"
        );
        assert!(
            outcomes.iter().all(|c| c.seq == 2),
            "{backend}: {outcomes:?}"
        );
        assert_eq!(
            store.history(&id).await.expect("storia").len(),
            2,
            "{backend}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_start_key_sent_eight_times_at_once_starts_one_instance() {
    for (backend, store, _scratch) in scratch_stores().await {
        let p = Arc::new(procedure());
        install(&store, &p).await;
        let mut tasks = JoinSet::new();
        for _ in 0..8 {
            let (store, p) = (store.clone(), p.clone());
            tasks.spawn(async move { start(&store, &p, DEADLINE, Some("avvio-doppio")).await });
        }
        let outcomes: Vec<Committed> = tasks
            .join_all()
            .await
            .into_iter()
            .map(|r| r.expect("ogni invio riesce"))
            .collect();
        let first: Vec<&Committed> = outcomes.iter().filter(|c| !c.replayed).collect();
        assert_eq!(first.len(), 1, "{backend}: {outcomes:?}");
        assert!(
            outcomes
                .iter()
                .all(|c| c.instance_id == first[0].instance_id && c.seq == 1),
            "{backend}: {outcomes:?}"
        );
        let all = store
            .instances(&InstanceFilter::default())
            .await
            .expect("istanze");
        assert_eq!(all.len(), 1, "{backend}: un solo avvio scritto");
        assert_eq!(
            store.outbox_rows(None).await.expect("outbox").len(),
            1,
            "{backend}"
        );
        assert_eq!(
            store
                .count_timers(TimerStatus::Pending)
                .await
                .expect("conteggio"),
            1,
            "{backend}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_steps_on_one_version_let_exactly_one_through() {
    for (backend, store, _scratch) in scratch_stores().await {
        let p = Arc::new(procedure());
        install(&store, &p).await;
        let id = start(&store, &p, DEADLINE, None)
            .await
            .expect("avvio")
            .instance_id;
        let row = read(&store, &id).await;

        let mut tasks = JoinSet::new();
        for n in 0..8 {
            let (store, p, row) = (store.clone(), p.clone(), row.clone());
            tasks.spawn(async move {
                let actor = ufficio();
                let payload = json!({ "nota": format!("gara {n}") });
                let step = step_on(&p, &row, "annota", payload.clone(), &actor, minutes(1));
                store
                    .commit_step(&StepRecord {
                        instance_id: &row.id,
                        expected_version: row.version,
                        actor: &actor,
                        step: &step,
                        payload: &payload,
                        idempotency_key: None,
                        at: minutes(1),
                        late: false,
                        fired_timer: None,
                        submission: None,
                    })
                    .await
            });
        }
        let results = tasks.join_all().await;
        let accepted = results.iter().filter(|r| r.is_ok()).count();
        let conflicts = results
            .iter()
            .filter(|r| {
                matches!(
                    r,
                    Err(store::Error::Conflict {
                        expected_version: 1,
                        ..
                    })
                )
            })
            .count();
        assert_eq!((accepted, conflicts), (1, 7), "{backend}: {results:?}");
        assert_eq!(
            store.history(&id).await.expect("storia").len(),
            2,
            "{backend}: niente scritto a metà"
        );
        assert_eq!(
            store.outbox_rows(None).await.expect("outbox").len(),
            1,
            "{backend}"
        );

        // Each writer retries on the new version until accepted.
        let mut tasks = JoinSet::new();
        for n in 0..8 {
            let (store, p, id) = (store.clone(), p.clone(), id.clone());
            tasks.spawn(async move {
                for attempt in 1..=500 {
                    let result = fire(
                        &store,
                        &p,
                        &id,
                        "annota",
                        json!({ "nota": format!("a turno {n}") }),
                        None,
                        minutes(2),
                    )
                    .await;
                    match result {
                        Ok(committed) => return (committed.seq, attempt),
                        Err(store::Error::Conflict { .. }) => tokio::task::yield_now().await,
                        Err(other) => panic!("errore inatteso: {other}"),
                    }
                }
                panic!("lo scrittore {n} non è mai passato");
            });
        }
        let mut accepted: Vec<i64> = tasks
            .join_all()
            .await
            .into_iter()
            .map(|(seq, _)| seq)
            .collect();
        accepted.sort_unstable();
        assert_eq!(accepted, (3..=10).collect::<Vec<_>>(), "{backend}");
        let seqs: Vec<i64> = store
            .history(&id)
            .await
            .expect("storia")
            .iter()
            .map(|h| h.seq)
            .collect();
        assert_eq!(
            seqs,
            (1..=10).collect::<Vec<_>>(),
            "{backend}: 1 + 1 + 8 righe, senza buchi"
        );
        assert_eq!(read(&store, &id).await.version, 10, "{backend}");
    }
}

#[tokio::test]
async fn a_stale_or_unknown_target_writes_nothing() {
    for (backend, store, _scratch) in scratch_stores().await {
        let p = procedure();
        install(&store, &p).await;
        let id = start(&store, &p, DEADLINE, None)
            .await
            .expect("avvio")
            .instance_id;
        let old = read(&store, &id).await;
        fire(&store, &p, &id, "annota", json!({}), None, minutes(1))
            .await
            .expect("annota");

        let actor = ufficio();
        let step = step_on(
            &p,
            &old,
            "proroga",
            json!({ "entro_il": "2025-04-01T10:00:00Z" }),
            &actor,
            minutes(2),
        );
        let stale = StepRecord {
            instance_id: &id,
            expected_version: old.version,
            actor: &actor,
            step: &step,
            payload: &json!({}),
            idempotency_key: Some("in-ritardo"),
            at: minutes(2),
            late: false,
            fired_timer: None,
            submission: None,
        };
        let err = store
            .commit_step(&stale)
            .await
            .expect_err("versione superata");
        assert!(
            matches!(&err, store::Error::Conflict { expected_version: 1, instance_id } if *instance_id == id),
            "{backend}: {err:?}"
        );
        assert_eq!(
            err.to_string(),
            "l'istanza è stata modificata da un'altra operazione: riprovare"
        );
        assert_eq!(
            store.history(&id).await.expect("storia").len(),
            2,
            "{backend}"
        );
        assert_eq!(
            store
                .count_timers(TimerStatus::Pending)
                .await
                .expect("conteggio"),
            1,
            "{backend}"
        );
        assert!(
            store
                .command("in-ritardo")
                .await
                .expect("comando")
                .is_none(),
            "{backend}"
        );

        let missing = StepRecord {
            instance_id: "non-esiste",
            ..stale.clone()
        };
        let err = store
            .commit_step(&missing)
            .await
            .expect_err("istanza inesistente");
        assert!(
            matches!(
                err,
                store::Error::NotFound {
                    what: "istanza",
                    ..
                }
            ),
            "{backend}: {err:?}"
        );

        let err = start_as(&store, &p, &id, DEADLINE, None)
            .await
            .expect_err("id già usato");
        assert!(
            matches!(
                err,
                store::Error::Conflict {
                    expected_version: 0,
                    ..
                }
            ),
            "{backend}: {err:?}"
        );

        let mut other = p.clone();
        other.version = 9;
        let err = start(&store, &other, DEADLINE, None)
            .await
            .expect_err("definizione assente");
        assert!(
            matches!(
                err,
                store::Error::NotFound {
                    what: "definizione",
                    ..
                }
            ),
            "{backend}: {err:?}"
        );
        assert_eq!(
            store
                .instances(&InstanceFilter::default())
                .await
                .expect("istanze")
                .len(),
            1,
            "{backend}"
        );
    }
}

#[tokio::test]
async fn arming_a_key_again_replaces_its_timer_and_cancelling_disarms_it() {
    for (backend, store, _scratch) in scratch_stores().await {
        let p = procedure();
        install(&store, &p).await;
        let id = start(&store, &p, DEADLINE, None)
            .await
            .expect("avvio")
            .instance_id;
        let armed = store.timers(&id).await.expect("timer");
        assert_eq!(armed.len(), 1, "{backend}");
        assert_eq!(
            (armed[0].key.as_str(), armed[0].status, armed[0].fire_at),
            ("termine", TimerStatus::Pending, at(DEADLINE)),
            "{backend}"
        );
        assert_eq!(
            armed[0].action,
            TimerAction::Fire {
                event: "scade".into(),
                participant: None,
            },
            "{backend}"
        );
        assert!(!armed[0].trace.is_empty(), "{backend}");

        // The engine moves the deadline: the key is armed again.
        fire(
            &store,
            &p,
            &id,
            "proroga",
            json!({ "entro_il": "2025-03-20T10:00:00Z" }),
            None,
            minutes(1),
        )
        .await
        .expect("proroga");
        // A hand-built step arming the same key twice.
        let row = read(&store, &id).await;
        let actor = ufficio();
        let mut step = step_on(&p, &row, "annota", json!({}), &actor, minutes(2));
        for day in [21, 22] {
            step.effects.push(Effect::ScheduleTimer(TimerPlan {
                key: "promemoria".into(),
                timer: "termine".into(),
                fire_at: at(&format!("2025-03-{day}T08:00:00Z")),
                action: TimerAction::Remind {
                    role: "ufficio".into(),
                    template: "promemoria".into(),
                    urgent: false,
                    participant: None,
                },
                trace: vec![format!("promemoria del {day}")],
            }));
        }
        store
            .commit_step(&StepRecord {
                instance_id: &id,
                expected_version: row.version,
                actor: &actor,
                step: &step,
                payload: &json!({}),
                idempotency_key: None,
                at: minutes(2),
                late: false,
                fired_timer: None,
                submission: None,
            })
            .await
            .expect("passo con due ScheduleTimer");

        let pending = store
            .timers_between(at(T0), at("2026-01-01T00:00:00Z"), Some(&id))
            .await
            .expect("timer");
        let keys: Vec<(&str, DateTime<Utc>)> = pending
            .iter()
            .map(|t| (t.key.as_str(), t.fire_at))
            .collect();
        assert_eq!(
            keys,
            [
                ("termine", at("2025-03-20T10:00:00Z")),
                ("promemoria", at("2025-03-22T08:00:00Z"))
            ],
            "{backend}"
        );
        assert_eq!(
            store
                .count_timers(TimerStatus::Pending)
                .await
                .expect("conteggio"),
            2,
            "{backend}"
        );
        assert_eq!(
            store
                .count_timers(TimerStatus::Cancelled)
                .await
                .expect("conteggio"),
            2,
            "{backend}"
        );
        let window = store
            .timers_between(at("2025-03-21T00:00:00Z"), at("2025-03-22T08:00:00Z"), None)
            .await
            .expect("timer");
        let everything = store
            .timers_between(DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC, None)
            .await
            .expect("timer tra estremi aperti");
        assert_eq!(everything.len(), 2, "{backend}");
        assert!(
            window.is_empty(),
            "{backend}: l'intervallo esclude il suo estremo: {window:?}"
        );

        // Leaving the state disarms `termine`; a hand-built CancelTimer disarms the reminder.
        let row = read(&store, &id).await;
        let mut step = step_on(&p, &row, "rivedi", json!({}), &actor, minutes(3));
        assert!(
            step.effects.contains(&Effect::CancelTimer {
                key: "termine".into()
            }),
            "{backend}"
        );
        step.effects.push(Effect::CancelTimer {
            key: "promemoria".into(),
        });
        store
            .commit_step(&StepRecord {
                instance_id: &id,
                expected_version: row.version,
                actor: &actor,
                step: &step,
                payload: &json!({}),
                idempotency_key: None,
                at: minutes(3),
                late: false,
                fired_timer: None,
                submission: None,
            })
            .await
            .expect("rivedi");
        assert_eq!(
            store
                .count_timers(TimerStatus::Pending)
                .await
                .expect("conteggio"),
            0,
            "{backend}"
        );
        assert_eq!(
            store
                .count_timers(TimerStatus::Cancelled)
                .await
                .expect("conteggio"),
            4,
            "{backend}"
        );

        // A step that arms a key and cancels it again: the row is written, already
        // cancelled, as if its effects had been applied one by one.
        let row = read(&store, &id).await;
        let mut step = step_on(&p, &row, "chiudi", json!({}), &actor, minutes(4));
        step.effects.push(Effect::ScheduleTimer(TimerPlan {
            key: "ripensamento".into(),
            timer: "termine".into(),
            fire_at: at("2025-03-23T08:00:00Z"),
            action: TimerAction::Remind {
                role: "ufficio".into(),
                template: "promemoria".into(),
                urgent: false,
                participant: None,
            },
            trace: vec!["ripensamento".into()],
        }));
        step.effects.push(Effect::CancelTimer {
            key: "ripensamento".into(),
        });
        store
            .commit_step(&StepRecord {
                instance_id: &id,
                expected_version: row.version,
                actor: &actor,
                step: &step,
                payload: &json!({}),
                idempotency_key: None,
                at: minutes(4),
                late: false,
                fired_timer: None,
                submission: None,
            })
            .await
            .expect("chiudi e ripensa");
        let trail: Vec<(String, TimerStatus, Option<String>)> = store
            .timers(&id)
            .await
            .expect("timer")
            .into_iter()
            .map(|t| (t.key, t.status, t.outcome))
            .collect();
        let cancelled = |key: &str, outcome: &str| {
            (
                key.to_string(),
                TimerStatus::Cancelled,
                Some(outcome.to_string()),
            )
        };
        assert_eq!(
            trail,
            [
                cancelled("termine", "replaced"),
                cancelled("termine", "cancelled"),
                cancelled("promemoria", "replaced"),
                cancelled("promemoria", "cancelled"),
                cancelled("ripensamento", "cancelled"),
            ],
            "{backend}"
        );
        assert!(
            store
                .timers_between(at(T0), at("2026-01-01T00:00:00Z"), None)
                .await
                .expect("timer")
                .is_empty(),
            "{backend}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_claiming_at_once_never_get_the_same_timer() {
    for (backend, store, _scratch) in scratch_stores().await {
        let p = procedure();
        install(&store, &p).await;
        for day in 10..22 {
            start(&store, &p, &format!("2025-03-{day}T10:00:00Z"), None)
                .await
                .expect("avvio");
        }
        start(&store, &p, "2025-05-01T10:00:00Z", None)
            .await
            .expect("avvio non ancora dovuto");
        let now = at("2025-04-01T00:00:00Z");
        let claim_all = |worker: &'static str| {
            let store = store.clone();
            async move {
                let mut got = Vec::new();
                loop {
                    let batch = store
                        .claim_due_timers(now, 2, worker, Duration::minutes(5))
                        .await
                        .expect("presa in carico");
                    if batch.is_empty() {
                        return got;
                    }
                    assert!(
                        batch.windows(2).all(|w| w[0].fire_at <= w[1].fire_at),
                        "ordinati per istante"
                    );
                    for t in batch {
                        assert_eq!(
                            (t.status, t.claimed_by.as_deref()),
                            (TimerStatus::Claimed, Some(worker))
                        );
                        assert_eq!(t.lease_until, Some(now + Duration::minutes(5)));
                        got.push(t.id);
                    }
                    tokio::task::yield_now().await;
                }
            }
        };
        let (a, b) = tokio::join!(tokio::spawn(claim_all("a")), tokio::spawn(claim_all("b")));
        let (a, b) = (a.expect("worker a"), b.expect("worker b"));
        let a_ids: BTreeSet<i64> = a.iter().copied().collect();
        let b_ids: BTreeSet<i64> = b.iter().copied().collect();
        assert_eq!(
            a_ids.len() + b_ids.len(),
            a.len() + b.len(),
            "{backend}: nessun duplicato nello stesso worker"
        );
        assert!(
            a_ids.is_disjoint(&b_ids),
            "{backend}: {a_ids:?} e {b_ids:?} si sovrappongono"
        );
        assert_eq!(
            a_ids.len() + b_ids.len(),
            12,
            "{backend}: tutti i dovuti, nessun altro"
        );
        assert_eq!(
            store
                .count_timers(TimerStatus::Claimed)
                .await
                .expect("conteggio"),
            12,
            "{backend}"
        );
        assert_eq!(
            store
                .count_timers(TimerStatus::Pending)
                .await
                .expect("conteggio"),
            1,
            "{backend}"
        );
    }
}

/// The next instant an idle scheduler must wake at: the earliest pending timer, or the earliest
/// retry of a timer whose firing failed, whichever comes first.
#[tokio::test]
async fn the_next_timer_is_the_earliest_pending_one_or_retry() {
    for (backend, store, _scratch) in scratch_stores().await {
        let p = procedure();
        install(&store, &p).await;
        assert_eq!(
            store.next_timer_at().await.expect("next"),
            None,
            "{backend}"
        );
        start(&store, &p, DEADLINE, None).await.expect("avvio");
        let due = at(DEADLINE);
        assert_eq!(
            store.next_timer_at().await.expect("next"),
            Some(due),
            "{backend}"
        );
        let claimed = store
            .claim_due_timers(due, 10, "a", Duration::minutes(5))
            .await
            .expect("presa");
        assert_eq!(claimed.len(), 1, "{backend}");
        // Claimed: nothing pending to wake for.
        assert_eq!(
            store.next_timer_at().await.expect("next"),
            None,
            "{backend}"
        );
        let retry_at = due + Duration::minutes(10);
        store
            .retry_timer(claimed[0].id, "a", retry_at, "database occupato")
            .await
            .expect("nuovo tentativo");
        assert_eq!(
            store.next_timer_at().await.expect("next"),
            Some(retry_at),
            "{backend}: the retry, not the original instant"
        );
        // A timer due before the retry comes first.
        let earlier = "2025-03-10T10:05:00Z";
        assert!(at(earlier) < retry_at, "{backend}");
        start(&store, &p, earlier, None).await.expect("avvio");
        assert_eq!(
            store.next_timer_at().await.expect("next"),
            Some(at(earlier).min(retry_at)),
            "{backend}"
        );
    }
}

#[tokio::test]
async fn an_expired_lease_makes_a_timer_claimable_again() {
    for (backend, store, _scratch) in scratch_stores().await {
        let p = procedure();
        install(&store, &p).await;
        let id = start(&store, &p, DEADLINE, None)
            .await
            .expect("avvio")
            .instance_id;
        let due = at(DEADLINE);
        assert!(
            store
                .claim_due_timers(due - Duration::seconds(1), 10, "a", Duration::minutes(5))
                .await
                .expect("presa")
                .is_empty(),
            "{backend}: non ancora dovuto"
        );
        let claimed = store
            .claim_due_timers(due + Duration::minutes(1), 10, "a", Duration::minutes(5))
            .await
            .expect("presa");
        assert_eq!(claimed.len(), 1, "{backend}");
        let timer_id = claimed[0].id;
        assert!(
            store
                .claim_due_timers(due + Duration::minutes(3), 10, "b", Duration::minutes(5))
                .await
                .expect("presa")
                .is_empty(),
            "{backend}: il lease di a vale ancora"
        );

        // a dies; once its lease runs out, b takes the timer over.
        let taken = store
            .claim_due_timers(due + Duration::minutes(7), 10, "b", Duration::minutes(5))
            .await
            .expect("presa");
        assert_eq!(
            taken
                .iter()
                .map(|t| (t.id, t.claimed_by.as_deref()))
                .collect::<Vec<_>>(),
            [(timer_id, Some("b"))],
            "{backend}"
        );
        assert_eq!(
            taken[0].lease_until,
            Some(due + Duration::minutes(12)),
            "{backend}"
        );
        assert!(
            matches!(
                store.finish_timer(timer_id, "a", "ignorato").await,
                Err(store::Error::StaleTimer { .. })
            ),
            "{backend}"
        );
        assert!(
            matches!(
                store.release_timer(timer_id, "a").await,
                Err(store::Error::StaleTimer { .. })
            ),
            "{backend}"
        );

        // b gives it back at shutdown, then claims and fires it.
        store.release_timer(timer_id, "b").await.expect("rilascio");
        assert_eq!(
            store
                .count_timers(TimerStatus::Pending)
                .await
                .expect("conteggio"),
            1,
            "{backend}"
        );
        let again = store
            .claim_due_timers(due + Duration::minutes(8), 10, "b", Duration::minutes(5))
            .await
            .expect("presa");
        assert_eq!(again.len(), 1, "{backend}");
        let fired = fire_timer(&store, &p, &id, timer_id, due + Duration::minutes(9))
            .await
            .expect("scatto del timer");
        assert_eq!(fired.seq, 2, "{backend}");
        let row = read(&store, &id).await;
        assert_eq!(
            (row.state.as_str(), row.is_final),
            ("chiusa", true),
            "{backend}"
        );
        let timer = store.timers(&id).await.expect("timer").remove(0);
        assert_eq!(
            (timer.status, timer.outcome.as_deref(), timer.fired_at),
            (
                TimerStatus::Done,
                Some("fired"),
                Some(due + Duration::minutes(9))
            ),
            "{backend}"
        );
        let last = store
            .history(&id)
            .await
            .expect("storia")
            .pop()
            .expect("riga");
        assert_eq!(
            (last.event.as_str(), last.late, last.actor),
            ("scade", true, Actor::system()),
            "{backend}"
        );
        assert!(
            matches!(
                store.finish_timer(timer_id, "b", "doppio").await,
                Err(store::Error::StaleTimer { .. })
            ),
            "{backend}"
        );
    }
}

#[tokio::test]
async fn a_timer_cancelled_or_replaced_after_its_claim_is_stale_when_fired() {
    for (backend, store, _scratch) in scratch_stores().await {
        let p = procedure();
        install(&store, &p).await;
        let now = at(DEADLINE) + Duration::minutes(1);

        // Cancelled: a step with a CancelTimer for the claimed key.
        let id = start(&store, &p, DEADLINE, None)
            .await
            .expect("avvio")
            .instance_id;
        let timer_id = store
            .claim_due_timers(now, 10, "a", Duration::minutes(5))
            .await
            .expect("presa")[0]
            .id;
        let row = read(&store, &id).await;
        let actor = ufficio();
        let mut step = step_on(&p, &row, "annota", json!({}), &actor, now);
        step.effects.push(Effect::CancelTimer {
            key: "termine".into(),
        });
        store
            .commit_step(&StepRecord {
                instance_id: &id,
                expected_version: row.version,
                actor: &actor,
                step: &step,
                payload: &json!({}),
                idempotency_key: None,
                at: now,
                late: false,
                fired_timer: None,
                submission: None,
            })
            .await
            .expect("annota con CancelTimer");
        let err = fire_timer(&store, &p, &id, timer_id, now)
            .await
            .expect_err("timer annullato");
        assert!(
            matches!(err, store::Error::StaleTimer { timer_id: t } if t == timer_id),
            "{backend}: {err:?}"
        );
        let row = read(&store, &id).await;
        assert_eq!(
            (row.state.as_str(), row.version),
            ("bozza", 2),
            "{backend}: niente scritto"
        );
        assert_eq!(
            store.history(&id).await.expect("storia").len(),
            2,
            "{backend}"
        );

        // Replaced: the deadline moved after the claim.
        let id = start(&store, &p, DEADLINE, None)
            .await
            .expect("avvio")
            .instance_id;
        let timer_id = store
            .claim_due_timers(now, 10, "a", Duration::minutes(5))
            .await
            .expect("presa")[0]
            .id;
        fire(
            &store,
            &p,
            &id,
            "proroga",
            json!({ "entro_il": "2025-06-01T10:00:00Z" }),
            None,
            now,
        )
        .await
        .expect("proroga");
        let err = fire_timer(&store, &p, &id, timer_id, now)
            .await
            .expect_err("timer sostituito");
        assert!(
            matches!(err, store::Error::StaleTimer { .. }),
            "{backend}: {err:?}"
        );
        assert_eq!(read(&store, &id).await.version, 2, "{backend}");
        let timers = store.timers(&id).await.expect("timer");
        let states: Vec<(TimerStatus, Option<&str>)> = timers
            .iter()
            .map(|t| (t.status, t.outcome.as_deref()))
            .collect();
        assert_eq!(
            states,
            [
                (TimerStatus::Cancelled, Some("replaced")),
                (TimerStatus::Pending, None)
            ],
            "{backend}"
        );
    }
}

#[tokio::test]
async fn a_reminder_is_completed_with_its_notification_in_one_step() {
    for (backend, store, _scratch) in scratch_stores().await {
        let p = procedure();
        install(&store, &p).await;
        let id = start(&store, &p, DEADLINE, None)
            .await
            .expect("avvio")
            .instance_id;
        let timer_id = store
            .claim_due_timers(at(DEADLINE), 1, "a", Duration::minutes(5))
            .await
            .expect("presa")[0]
            .id;
        let plan = engine::NotificationPlan {
            role: "ufficio".into(),
            template: "promemoria".into(),
            urgent: false,
            context: json!({}),
            invite: None,
            protocol: None,
            organisations: None,
            public: false,
            participant: None,
            channel: Default::default(),
            consegna: None,
        };
        let err = store
            .complete_reminder(timer_id, "b", std::slice::from_ref(&plan), at(DEADLINE))
            .await
            .expect_err("non è di b");
        assert!(
            matches!(err, store::Error::StaleTimer { .. }),
            "{backend}: {err:?}"
        );
        assert_eq!(
            store.outbox_rows(None).await.expect("outbox").len(),
            1,
            "{backend}: niente accodato"
        );
        store
            .complete_reminder(timer_id, "a", std::slice::from_ref(&plan), at(DEADLINE))
            .await
            .expect("promemoria");
        let rows = store
            .outbox_rows(Some(OutboxStatus::Pending))
            .await
            .expect("outbox");
        assert_eq!(rows.len(), 2, "{backend}");
        assert_eq!(
            (rows[1].instance_id.as_deref(), &rows[1].payload),
            (Some(id.as_str()), &Effect::Notify(plan.clone())),
            "{backend}"
        );
        let timer = store.timers(&id).await.expect("timer").remove(0);
        assert_eq!(
            (timer.status, timer.outcome.as_deref()),
            (TimerStatus::Done, Some("reminded")),
            "{backend}"
        );
    }
}

#[tokio::test]
async fn outbox_rows_are_claimed_once_retried_and_finished() {
    for (backend, store, _scratch) in scratch_stores().await {
        let p = procedure();
        install(&store, &p).await;
        for _ in 0..3 {
            start(&store, &p, DEADLINE, None).await.expect("avvio");
        }
        let lease = Duration::minutes(5);
        let (a, b) = (
            store.claim_outbox(minutes(1), 2, "a", lease),
            store.claim_outbox(minutes(1), 2, "b", lease),
        );
        let (a, b) = tokio::join!(a, b);
        let (a, b) = (a.expect("presa a"), b.expect("presa b"));
        let mut ids: Vec<i64> = a.iter().chain(&b).map(|r| r.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(
            (a.len() + b.len(), ids.len()),
            (3, 3),
            "{backend}: ogni riga a un solo worker"
        );
        let (mine, theirs) = if a.len() == 2 { (a, b) } else { (b, a) };
        let me = mine[0].claimed_by.clone().expect("worker");
        let other = theirs[0].claimed_by.clone().expect("worker");
        assert!(
            mine.iter().chain(&theirs).all(|r| r.attempts == 1
                && r.status == OutboxStatus::Claimed
                && r.kind == "notify"),
            "{backend}"
        );

        store
            .outbox_done(mine[0].id, &me, minutes(2))
            .await
            .expect("fatto");
        store
            .outbox_retry(mine[1].id, &me, minutes(10), "smtp non raggiungibile")
            .await
            .expect("da ritentare");
        store
            .outbox_failed(theirs[0].id, &other, "destinatario inesistente")
            .await
            .expect("fallito");
        let err = store
            .outbox_done(theirs[0].id, &me, minutes(2))
            .await
            .expect_err("non è mio");
        assert!(
            matches!(err, store::Error::StaleOutbox { .. }),
            "{backend}: {err:?}"
        );

        assert!(
            store
                .claim_outbox(minutes(5), 10, "a", lease)
                .await
                .expect("presa")
                .is_empty(),
            "{backend}: non ancora dovuto"
        );
        let retried = store
            .claim_outbox(minutes(11), 10, "a", lease)
            .await
            .expect("presa");
        assert_eq!(
            retried
                .iter()
                .map(|r| (r.id, r.attempts))
                .collect::<Vec<_>>(),
            [(mine[1].id, 2)],
            "{backend}"
        );
        assert_eq!(
            retried[0].last_error.as_deref(),
            Some("smtp non raggiungibile"),
            "{backend}"
        );
        // a dies: b takes the row over when the lease runs out.
        let taken = store
            .claim_outbox(minutes(17), 10, "b", lease)
            .await
            .expect("presa");
        assert_eq!(
            taken.iter().map(|r| (r.id, r.attempts)).collect::<Vec<_>>(),
            [(mine[1].id, 3)],
            "{backend}"
        );
        assert!(
            matches!(
                store.outbox_done(mine[1].id, "a", minutes(18)).await,
                Err(store::Error::StaleOutbox { .. })
            ),
            "{backend}"
        );
        store
            .outbox_done(mine[1].id, "b", minutes(18))
            .await
            .expect("fatto da b");

        let done = store
            .outbox_rows(Some(OutboxStatus::Done))
            .await
            .expect("outbox");
        assert_eq!(done.len(), 2, "{backend}");
        assert!(
            done.iter().any(|r| r.done_at == Some(minutes(18))),
            "{backend}"
        );
        let failed = store
            .outbox_rows(Some(OutboxStatus::Failed))
            .await
            .expect("outbox");
        assert_eq!(
            failed
                .iter()
                .map(|r| r.last_error.as_deref())
                .collect::<Vec<_>>(),
            [Some("destinatario inesistente")],
            "{backend}"
        );
        assert!(
            store
                .outbox_rows(Some(OutboxStatus::Pending))
                .await
                .expect("outbox")
                .is_empty(),
            "{backend}"
        );
    }
}

#[tokio::test]
async fn a_cron_run_is_claimed_by_one_worker_per_due_instant() {
    for (backend, store, _scratch) in scratch_stores().await {
        let lease = Duration::minutes(5);
        let (due1, due2) = (at("2025-03-03T07:00:00Z"), at("2025-03-04T07:00:00Z"));
        let tick = Duration::seconds(1);
        assert!(
            store
                .claim_cron("riepilogo", due1, due1 + tick, "a", lease)
                .await
                .expect("cron"),
            "{backend}"
        );
        assert!(
            !store
                .claim_cron("riepilogo", due1, due1 + tick, "b", lease)
                .await
                .expect("cron"),
            "{backend}: già preso da a"
        );
        assert!(
            store
                .claim_cron("altro", due1, due1 + tick, "b", lease)
                .await
                .expect("cron"),
            "{backend}: lavori indipendenti"
        );
        store
            .finish_cron("riepilogo", "a", due1)
            .await
            .expect("fine");
        assert!(
            !store
                .claim_cron("riepilogo", due1, due1 + lease * 2, "b", lease)
                .await
                .expect("cron"),
            "{backend}: già eseguito"
        );
        assert!(
            store
                .claim_cron("riepilogo", due2, due2 + tick, "b", lease)
                .await
                .expect("cron"),
            "{backend}"
        );
        assert!(
            !store
                .claim_cron("riepilogo", due2, due2 + tick, "a", lease)
                .await
                .expect("cron"),
            "{backend}"
        );
        // b dies: a takes the run over once b's lease runs out.
        assert!(
            store
                .claim_cron("riepilogo", due2, due2 + Duration::minutes(10), "a", lease)
                .await
                .expect("cron"),
            "{backend}"
        );
        // A late finish from b never moves the last run backwards nor frees a's claim.
        store
            .finish_cron("riepilogo", "b", due1)
            .await
            .expect("fine tardiva");
        assert!(
            !store
                .claim_cron("riepilogo", due2, due2 + Duration::minutes(11), "c", lease)
                .await
                .expect("cron"),
            "{backend}"
        );
        store
            .finish_cron("riepilogo", "a", due2)
            .await
            .expect("fine");
        assert!(
            !store
                .claim_cron("riepilogo", due2, due2 + Duration::hours(1), "c", lease)
                .await
                .expect("cron"),
            "{backend}"
        );
    }
}

#[tokio::test]
async fn a_definition_version_is_stored_once_and_never_changes() {
    for (backend, store, _scratch) in scratch_stores().await {
        let mut new = NewDefinition {
            id: "avviso".into(),
            version: 1,
            title: "Avviso".into(),
            content_hash: "aaa".into(),
            source: "id: avviso".into(),
            assets: json!({ "chiusure": ["2025-08-14"] }),
            loaded_at: at(T0),
        };
        assert_eq!(
            store.save_definition(&new).await.expect("salva"),
            Saved::Inserted,
            "{backend}"
        );
        assert_eq!(
            store.save_definition(&new).await.expect("salva"),
            Saved::Unchanged,
            "{backend}"
        );
        let changed = NewDefinition {
            content_hash: "bbb".into(),
            ..new.clone()
        };
        let err = store
            .save_definition(&changed)
            .await
            .expect_err("contenuto diverso");
        assert!(
            matches!(&err, store::Error::DefinitionChanged { version: 1, .. }),
            "{backend}: {err:?}"
        );
        assert!(
            err.to_string().contains("incrementare version"),
            "{backend}"
        );
        new.version = 2;
        new.content_hash = "bbb".into();
        assert_eq!(
            store.save_definition(&new).await.expect("salva"),
            Saved::Inserted,
            "{backend}"
        );

        let latest = store
            .latest_definition("avviso")
            .await
            .expect("ultima")
            .expect("presente");
        assert_eq!(
            (latest.version, latest.content_hash.as_str()),
            (2, "bbb"),
            "{backend}"
        );
        let first = store
            .definition("avviso", 1)
            .await
            .expect("v1")
            .expect("presente");
        assert_eq!(
            (first.content_hash.as_str(), &first.assets, first.loaded_at),
            ("aaa", &json!({ "chiusure": ["2025-08-14"] }), at(T0)),
            "{backend}"
        );
        assert_eq!(
            store.definitions().await.expect("tutte").len(),
            2,
            "{backend}"
        );
        assert!(
            store.definition("avviso", 3).await.expect("v3").is_none(),
            "{backend}"
        );
        assert!(
            store
                .latest_definition("nessuna")
                .await
                .expect("nessuna")
                .is_none(),
            "{backend}"
        );
    }
}

#[tokio::test]
async fn instances_are_listed_by_id_with_filters_and_a_cursor() {
    for (backend, store, _scratch) in scratch_stores().await {
        let p = procedure();
        install(&store, &p).await;
        for n in 0..5 {
            start_as(
                &store,
                &p,
                &format!("00000000-0000-0000-0000-00000000000{n}"),
                DEADLINE,
                None,
            )
            .await
            .expect("avvio");
        }
        fire(
            &store,
            &p,
            "00000000-0000-0000-0000-000000000003",
            "rivedi",
            json!({}),
            None,
            minutes(1),
        )
        .await
        .expect("rivedi");
        let page = |after: Option<&str>| InstanceFilter {
            after_id: after.map(str::to_string),
            limit: Some(2),
            ..InstanceFilter::default()
        };
        let first = store.instances(&page(None)).await.expect("pagina");
        let second = store
            .instances(&page(Some(&first[1].id)))
            .await
            .expect("pagina");
        let ids: Vec<String> = first
            .iter()
            .chain(&second)
            .map(|r| r.id[35..].to_string())
            .collect();
        assert_eq!(ids, ["0", "1", "2", "3"], "{backend}");
        let in_review = InstanceFilter {
            definition_id: Some("prova_store".into()),
            state: Some("revisione".into()),
            ..InstanceFilter::default()
        };
        let found = store.instances(&in_review).await.expect("filtro");
        assert_eq!(
            found.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["00000000-0000-0000-0000-000000000003"],
            "{backend}"
        );
        let none = InstanceFilter {
            definition_id: Some("altra".into()),
            ..InstanceFilter::default()
        };
        assert!(
            store.instances(&none).await.expect("filtro").is_empty(),
            "{backend}"
        );
    }
}

#[tokio::test]
async fn the_database_refuses_to_rewrite_history() {
    for (backend, store, scratch) in scratch_stores().await {
        let p = procedure();
        install(&store, &p).await;
        let id = start(&store, &p, DEADLINE, None)
            .await
            .expect("avvio")
            .instance_id;
        let raw = Database::connect(&scratch.url)
            .await
            .expect("connessione diretta");
        let update = raw
            .execute_unprepared("UPDATE history SET event = 'falsificato'")
            .await;
        let refused = |result: Result<sea_orm::ExecResult, sea_orm::DbErr>| {
            result.is_err_and(|e| e.to_string().contains("append-only"))
        };
        assert!(refused(update), "{backend}: UPDATE su history accettato");
        let delete = raw.execute_unprepared("DELETE FROM history").await;
        assert!(refused(delete), "{backend}: DELETE su history accettato");
        raw.close().await.expect("chiusura");
        let history = store.history(&id).await.expect("storia");
        assert_eq!(
            history.iter().map(|h| h.event.as_str()).collect::<Vec<_>>(),
            ["avvio"],
            "{backend}"
        );
    }
}

#[tokio::test]
async fn an_outbox_row_given_back_at_shutdown_keeps_its_attempts() {
    for (backend, store, _scratch) in scratch_stores().await {
        let p = procedure();
        install(&store, &p).await;
        start(&store, &p, DEADLINE, None).await.expect("avvio");
        let lease = Duration::minutes(5);
        let claimed = store
            .claim_outbox(minutes(1), 1, "a", lease)
            .await
            .expect("presa");
        assert_eq!(claimed[0].attempts, 1, "{backend}");
        store
            .outbox_release(claimed[0].id, "a")
            .await
            .expect("restituita");
        let again = store
            .claim_outbox(minutes(1), 1, "b", lease)
            .await
            .expect("presa");
        assert_eq!(
            (again[0].id, again[0].attempts),
            (claimed[0].id, 1),
            "{backend}: the release took its attempt back"
        );
        let err = store
            .outbox_release(again[0].id, "a")
            .await
            .expect_err("non è di a");
        assert!(
            matches!(err, store::Error::StaleOutbox { .. }),
            "{backend}: {err:?}"
        );
    }
}

#[tokio::test]
async fn a_renewed_lease_keeps_its_rows_and_a_lapsed_one_reports_them_lost() {
    use procedo::store::Claim;
    for (backend, store, _scratch) in scratch_stores().await {
        let p = procedure();
        install(&store, &p).await;
        start(&store, &p, DEADLINE, None).await.expect("avvio");
        let due = at(DEADLINE);
        let lease = Duration::seconds(15);
        let timers = store
            .claim_due_timers(due, 10, "a", lease)
            .await
            .expect("presa");
        let rows = store
            .claim_outbox(due, 10, "a", lease)
            .await
            .expect("presa");
        assert_eq!(timers.len(), 1, "{backend}");
        assert!(!rows.is_empty(), "{backend}");
        assert!(
            store
                .claim_cron("registro", due, due, "a", lease)
                .await
                .expect("cron")
        );
        let mut claims: Vec<Claim> = timers.iter().map(|t| Claim::Timer(t.id)).collect();
        claims.extend(rows.iter().map(|r| Claim::Outbox(r.id)));
        claims.push(Claim::CronRun("registro".into()));
        claims.sort();

        // Renewed every 5 s, the claims outlive their first lease by far, and nobody else can
        // take them meanwhile.
        for beat in 1..=6 {
            let now = due + Duration::seconds(5 * beat);
            let mut held = store
                .renew_claims(&claims, "a", now + lease)
                .await
                .expect("rinnovo");
            held.sort();
            assert_eq!(held, claims, "{backend}: beat {beat}");
            assert!(
                store
                    .claim_due_timers(now, 10, "b", lease)
                    .await
                    .expect("presa")
                    .is_empty(),
                "{backend}"
            );
            assert!(
                store
                    .claim_outbox(now, 10, "b", lease)
                    .await
                    .expect("presa")
                    .is_empty(),
                "{backend}"
            );
            assert!(
                !store
                    .claim_cron("registro", due, now, "b", lease)
                    .await
                    .expect("cron"),
                "{backend}"
            );
        }
        // Another worker's renewal holds nothing.
        assert!(
            store
                .renew_claims(&claims, "b", due + Duration::minutes(1))
                .await
                .expect("rinnovo")
                .is_empty(),
            "{backend}"
        );

        // a stops renewing: after its lease b takes everything, and a learns it lost them.
        let later = due + Duration::seconds(30 + 16);
        assert_eq!(
            store
                .claim_due_timers(later, 10, "b", lease)
                .await
                .expect("presa")
                .len(),
            1,
            "{backend}"
        );
        assert_eq!(
            store
                .claim_outbox(later, 10, "b", lease)
                .await
                .expect("presa")
                .len(),
            rows.len(),
            "{backend}"
        );
        assert!(
            store
                .claim_cron("registro", due, later, "b", lease)
                .await
                .expect("cron"),
            "{backend}"
        );
        assert!(
            store
                .renew_claims(&claims, "a", later + lease)
                .await
                .expect("rinnovo")
                .is_empty(),
            "{backend}: a holds nothing any more"
        );
    }
}

/// PostgreSQL drops every connection of the pool (a restart, a failover, an administrator):
/// the statements on the dropped connections fail, and within seconds the pool has closed
/// them and reads work again — a broken connection is not handed out again and again.
#[tokio::test]
async fn a_pool_whose_connections_the_server_dropped_works_again_within_seconds() {
    let Some(admin_url) = common::postgres_url() else {
        return;
    };
    let (store, scratch) = common::scratch_postgres(&admin_url).await;
    let store = Arc::new(store);
    let reads = |store: Arc<procedo::store::Store>| async move {
        let mut set = JoinSet::new();
        for _ in 0..8 {
            let store = Arc::clone(&store);
            set.spawn(async move { store.instance("nessuna").await.map(|_| ()) });
        }
        let mut failed = 0;
        while let Some(done) = set.join_next().await {
            if done.expect("lettura").is_err() {
                failed += 1;
            }
        }
        failed
    };
    assert_eq!(reads(Arc::clone(&store)).await, 0, "prima");

    let name = scratch
        .url
        .rsplit('/')
        .next()
        .and_then(|tail| tail.split('?').next())
        .expect("nome del database")
        .to_string();
    let admin = Database::connect(admin_url.as_str()).await.expect("admin");
    admin
        .execute_unprepared(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ))
        .await
        .expect("terminate");
    admin.close().await.expect("chiusura");

    // The reads on dropped connections fail at first; after a little more than the pool's
    // check interval every broken connection has been found and closed.
    let mut failures = 0;
    for _ in 0..30 {
        failures += reads(Arc::clone(&store)).await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for round in 0..5 {
        assert_eq!(
            reads(Arc::clone(&store)).await,
            0,
            "letture fallite al giro {round}, dopo {failures} fallimenti nei primi 3 s"
        );
    }
}
