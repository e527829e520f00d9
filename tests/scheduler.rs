//! The durable scheduler on SQLite and PostgreSQL, with a moved clock: rescheduling, catch-up
//! after a downtime, cron catch-up, stale claims, expired leases, graceful shutdown and the
//! outbox.

mod common;

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use procedo::catalog::{self, Catalog};
use procedo::clock::{Clock, ManualClock};
use procedo::engine::{Actor, Command, Effect, TimerAction};
use procedo::scheduler::{CronJob, Dispatch, Options, Outcome, Scheduler, StartInstance};
use procedo::service::{Service, TimerOutcome};
use procedo::store::{InstanceFilter, OutboxStatus, Store, TimerRow, TimerStatus};
use serde_json::{Map, Value, json};

/// A meeting: a timer at the meeting that closes it, two reminders before it.
const SEDUTA: &str = r#"
id: seduta
version: 1
title: "Seduta"
roles:
  ufficio_di_piano: "Ufficio di Piano (per il Presidente)"
  sindaco: "Sindaci"
variables:
  data_seduta: { type: datetime, required: true }
  link: { type: text }
states:
  bozza: { initial: true }
  convocata: { title: "Convocata" }
  chiusa: { final: true }
transitions:
  - event: convoca
    from: bozza
    to: convocata
    roles: [ufficio_di_piano]
  - event: sposta
    from: convocata
    to: convocata
    roles: [ufficio_di_piano]
    inputs: { data_seduta: required }
  - event: scade
    from: convocata
    to: chiusa
    roles: [ufficio_di_piano]
timers:
  - id: seduta
    while: convocata
    at: data_seduta
    fires: scade
    reminders:
      - { days_before: 7, notify: { role: sindaco, template: promemoria_scadenza } }
      - { hours_before: 2, notify: { role: sindaco, template: promemoria_scadenza } }
"#;

/// A procedure with a recurring job of its own.
const REGISTRO: &str = r#"
id: registro
version: 1
title: "Registro"
roles:
  ufficio_di_piano: "Ufficio di Piano"
states:
  aperto: { initial: true }
  chiuso: { final: true }
transitions:
  - event: chiudi
    from: aperto
    to: chiuso
    roles: [ufficio_di_piano]
cron:
  - { id: registro_giornaliero, schedule: "0 5 0 * * *", job: protocol_register }
"#;

/// A procedure that starts a sub-procedure, and the sub-procedure.
const PADRE: &str = r#"
id: padre
version: 1
title: "Padre"
roles:
  ufficio_di_piano: "Ufficio di Piano"
variables:
  oggetto: { type: text, required: true }
states:
  aperto: { initial: true }
  avviato: { final: true }
transitions:
  - event: avvia
    from: aperto
    to: avviato
    roles: [ufficio_di_piano]
    actions:
      - start: { procedure: figlio, variables: { oggetto: oggetto } }
      - protocollo: { direction: uscita, subject: "Avvio {{oggetto}}" }
"#;

const FIGLIO: &str = r#"
id: figlio
version: 1
title: "Figlio"
roles:
  ufficio_di_piano: "Ufficio di Piano"
variables:
  oggetto: { type: text, required: true }
states:
  aperto: { initial: true }
  chiuso: { final: true }
transitions:
  - event: chiudi
    from: aperto
    to: chiuso
    roles: [ufficio_di_piano]
"#;

/// A catalog of the given procedures (with the shipped templates).
/// An instance whose applications each have their own timer: the benchmark's procedure.
const PARTECIPANTI: &str = include_str!("../src/cli/bench_partecipanti.yaml");

fn catalog_of(files: &[(&str, &str)]) -> Catalog {
    let dir = tempfile::tempdir().expect("cartella temporanea");
    for (name, text) in files {
        std::fs::write(dir.path().join(format!("{name}.yaml")), text)
            .expect("scrittura della procedura");
    }
    load(dir.path())
}

fn load(dir: &Path) -> Catalog {
    let (catalog, diags) = catalog::load(&[dir.to_path_buf()]);
    assert!(diags.is_empty(), "procedure di test non valide: {diags:?}");
    catalog.expect("catalogo")
}

fn presidente() -> Actor {
    Actor {
        id: "anna.bianchi".into(),
        role: "ufficio_di_piano".into(),
    }
}

fn cmd(event: &str, actor: Actor, payload: Value) -> Command {
    Command {
        event: event.into(),
        actor,
        payload: payload.as_object().cloned().unwrap_or_default(),
        participant: None,
    }
}

fn vars(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn options(worker: &str) -> Options {
    Options {
        worker_id: worker.into(),
        batch_size: 50,
        lease: Duration::seconds(30),
        ..Options::default()
    }
}

/// A service with a manual clock over a store, the given catalog installed.
async fn service(store: &Store, clock: &ManualClock, catalog: &Catalog) -> Service {
    let service = Service::new(store.clone(), Arc::new(clock.clone()));
    service.install(catalog).await.expect("installazione");
    service
}

/// Ticks until nothing is due; returns how much was handled. Fails if it never settles.
async fn settle(scheduler: &Scheduler) -> usize {
    let mut handled = 0;
    for _ in 0..10_000 {
        match scheduler.tick().await.expect("tick") {
            Outcome::Progressed(n) => handled += n,
            Outcome::Idle => return handled,
        }
    }
    panic!("the scheduler never became idle");
}

/// Three convened meetings whose timers fall due at noon of 1/12/2026, the clock at noon.
async fn three_meetings_due_at_noon(
    store: &Store,
) -> (ManualClock, Service, DateTime<Utc>, [String; 3]) {
    let clock = ManualClock::new(common::at("2026-12-01T10:30:00+01:00"));
    let service = service(store, &clock, &catalog_of(&[("seduta", SEDUTA)])).await;
    let noon = common::at("2026-12-01T12:00:00+01:00");
    let ids = [
        convened_meeting(&service, noon).await,
        convened_meeting(&service, noon).await,
        convened_meeting(&service, noon).await,
    ];
    clock.set(noon);
    (clock, service, noon, ids)
}

/// A convened meeting at `at`.
async fn convened_meeting(service: &Service, at: DateTime<Utc>) -> String {
    let started = service
        .start(
            "seduta",
            None,
            vars(json!({ "data_seduta": at.to_rfc3339() })),
            &presidente(),
            None,
        )
        .await
        .expect("avvio");
    let id = started.instance.id;
    service
        .fire(&id, &cmd("convoca", presidente(), json!({})), None)
        .await
        .expect("convoca");
    id
}

fn by_key<'a>(timers: &'a [TimerRow], key: &str, status: TimerStatus) -> Vec<&'a TimerRow> {
    timers
        .iter()
        .filter(|t| t.key == key && t.status == status)
        .collect()
}

/// Reminder rows queued in the outbox.
async fn reminders_queued(store: &Store) -> Vec<Value> {
    store
        .outbox_rows(None)
        .await
        .expect("outbox")
        .into_iter()
        .filter_map(|row| match row.payload {
            Effect::Notify(plan) if plan.template == "promemoria_scadenza" => Some(plan.context),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn moving_a_meeting_cancels_its_old_reminders_and_only_the_new_ones_fire() {
    for (backend, store, _scratch) in common::scratch_stores().await {
        let clock = ManualClock::new(common::at("2026-03-02T09:00:00+01:00"));
        let service = service(&store, &clock, &catalog_of(&[("seduta", SEDUTA)])).await;
        let scheduler = Scheduler::new(service.clone(), options("a")).expect("scheduler");
        let id = convened_meeting(&service, common::at("2026-03-20T15:00:00+01:00")).await;
        let timers = store.timers(&id).await.expect("timers");
        assert_eq!(
            timers
                .iter()
                .filter(|t| t.status == TimerStatus::Pending)
                .count(),
            3,
            "{backend}: {timers:#?}"
        );

        // The meeting moves by three weeks: every timer of the key is replaced in the step.
        service
            .fire(
                &id,
                &cmd(
                    "sposta",
                    presidente(),
                    json!({ "data_seduta": "2026-04-10T15:00:00+02:00" }),
                ),
                None,
            )
            .await
            .expect("sposta");
        let timers = store.timers(&id).await.expect("timers");
        for key in ["seduta", "seduta#promemoria-1", "seduta#promemoria-2"] {
            let cancelled = by_key(&timers, key, TimerStatus::Cancelled);
            let pending = by_key(&timers, key, TimerStatus::Pending);
            assert_eq!(
                (cancelled.len(), pending.len()),
                (1, 1),
                "{backend} {key}: {timers:#?}"
            );
            assert!(pending[0].fire_at > cancelled[0].fire_at, "{backend} {key}");
            assert_eq!(
                cancelled[0].outcome.as_deref(),
                Some("replaced"),
                "{backend} {key}"
            );
        }
        assert_eq!(
            by_key(&timers, "seduta#promemoria-1", TimerStatus::Pending)[0].fire_at,
            common::at("2026-04-03T15:00:00+02:00")
        );

        // Past the old instants nothing fires; past the new reminders only they fire.
        clock.set(common::at("2026-03-21T09:00:00+01:00"));
        assert_eq!(settle(&scheduler).await, 0, "{backend}");
        assert!(reminders_queued(&store).await.is_empty(), "{backend}");
        clock.set(common::at("2026-04-10T14:00:00+02:00"));
        assert_eq!(settle(&scheduler).await, 2, "{backend}");
        let queued = reminders_queued(&store).await;
        assert_eq!(queued.len(), 2, "{backend}");
        assert!(
            queued
                .iter()
                .all(|c| c["scadenza"]["data"] == json!("2026-04-10T15:00:00+02:00")),
            "{backend}: {queued:#?}"
        );
        assert_eq!(
            store
                .instance(&id)
                .await
                .expect("read")
                .expect("exists")
                .state,
            "convocata"
        );

        clock.set(common::at("2026-04-10T15:00:00+02:00"));
        assert_eq!(settle(&scheduler).await, 1, "{backend}");
        let history = store.history(&id).await.expect("history");
        assert_eq!(
            history.iter().filter(|h| h.event == "scade").count(),
            1,
            "{backend}"
        );
        assert_eq!(
            store
                .instance(&id)
                .await
                .expect("read")
                .expect("exists")
                .state,
            "chiusa"
        );
    }
}

#[tokio::test]
async fn after_ten_days_of_downtime_each_due_timer_fires_once_marked_late() {
    for (backend, store, _scratch) in common::scratch_stores().await {
        let clock = ManualClock::new(common::at("2026-05-04T09:00:00+02:00"));
        let service = service(&store, &clock, &catalog_of(&[("seduta", SEDUTA)])).await;
        // Twelve meetings, one a day from tomorrow: ten fall inside the downtime.
        let mut ids = Vec::new();
        for day in 1..=12 {
            ids.push(convened_meeting(&service, clock.now() + Duration::days(day)).await);
        }
        // procedo is down for ten days and a half; then a fresh process starts.
        clock.advance(Duration::days(10) + Duration::hours(12));
        let scheduler =
            Scheduler::new(service.clone(), options("after-restart")).expect("scheduler");
        settle(&scheduler).await;
        for (n, id) in ids.iter().enumerate() {
            let history = store.history(id).await.expect("history");
            let fired: Vec<_> = history.iter().filter(|h| h.event == "scade").collect();
            let instance = store.instance(id).await.expect("read").expect("exists");
            if n < 10 {
                assert_eq!(fired.len(), 1, "{backend}: meeting {n}");
                assert!(
                    fired[0].late,
                    "{backend}: meeting {n} fired late and says so"
                );
                assert_eq!(fired[0].actor, Actor::system());
                assert_eq!(instance.state, "chiusa", "{backend}");
            } else {
                assert!(fired.is_empty(), "{backend}: meeting {n} is not due yet");
                assert_eq!(instance.state, "convocata", "{backend}");
            }
        }
        // Another process, or the same one again, finds nothing more to do.
        let again = Scheduler::new(service.clone(), options("second-restart")).expect("scheduler");
        assert_eq!(settle(&again).await, 0, "{backend}");
        assert_eq!(settle(&scheduler).await, 0, "{backend}");
        assert_eq!(
            store
                .count_timers(TimerStatus::Claimed)
                .await
                .expect("count"),
            0,
            "{backend}"
        );
    }
}

#[tokio::test]
async fn a_cron_job_missed_five_times_runs_once() {
    for (backend, store, _scratch) in common::scratch_stores().await {
        let clock = ManualClock::new(common::at("2026-06-01T09:00:00+02:00"));
        let service = service(&store, &clock, &catalog_of(&[("registro", REGISTRO)])).await;
        let digest = CronJob::new("riepilogo", "0 0 8 * * *", "digest").expect("job");
        let a = Scheduler::new(
            service.clone(),
            Options {
                cron: vec![digest.clone()],
                ..options("a")
            },
        )
        .expect("scheduler");
        let b = Scheduler::new(
            service.clone(),
            Options {
                cron: vec![digest],
                ..options("b")
            },
        )
        .expect("scheduler");
        let of_kind = |kind: &'static str| {
            let store = store.clone();
            async move {
                store
                    .outbox_rows(None)
                    .await
                    .expect("outbox")
                    .into_iter()
                    .filter(|r| r.kind == kind)
                    .collect::<Vec<_>>()
            }
        };

        // First sight: today's 08:00 digest and today's 00:05 register (a job of the definition).
        assert_eq!(settle(&a).await, 2, "{backend}");
        assert_eq!(
            settle(&b).await,
            0,
            "{backend}: the other replica finds both done"
        );
        assert_eq!(of_kind("digest").await.len(), 1);
        assert_eq!(of_kind("protocol_register").await.len(), 1);

        // Down for five days: five digests were missed; one runs, for the latest day.
        clock.advance(Duration::days(5));
        assert_eq!(settle(&b).await, 2, "{backend}");
        assert_eq!(settle(&a).await, 0, "{backend}");
        let digests = of_kind("digest").await;
        assert_eq!(digests.len(), 2, "{backend}");
        let Effect::Notify(plan) = &digests[1].payload else {
            panic!("a digest is a notification")
        };
        assert_eq!(
            plan.context["data_riepilogo"],
            json!("2026-06-06"),
            "{backend}"
        );
        assert_eq!(plan.context["esecuzioni"], json!(5), "{backend}");
        assert_eq!(
            digests[1].status,
            OutboxStatus::Pending,
            "{backend}: nobody delivers digests yet"
        );
        let registers = of_kind("protocol_register").await;
        assert_eq!(registers.len(), 2, "{backend}");
        let Effect::RegisterProtocol { context, .. } = &registers[1].payload else {
            panic!("a register")
        };
        assert_eq!(context["data_registro"], json!("2026-06-05"), "{backend}");
        assert_eq!(
            store.cron_last_run("riepilogo").await.expect("last run"),
            Some(common::at("2026-06-06T08:00:00+02:00"))
        );
        assert_eq!(
            store
                .cron_last_run("registro.registro_giornaliero")
                .await
                .expect("last run"),
            Some(common::at("2026-06-06T00:05:00+02:00"))
        );

        // Before the next 08:00 nothing more; at 08:00 exactly, the digest.
        clock.set(common::at("2026-06-07T07:59:59+02:00"));
        assert_eq!(settle(&a).await, 1, "{backend}: only the 00:05 register");
        clock.set(common::at("2026-06-07T08:00:00+02:00"));
        assert_eq!(settle(&a).await, 1, "{backend}");
        assert_eq!(of_kind("digest").await.len(), 3, "{backend}");
    }
}

#[tokio::test]
async fn a_claimed_timer_whose_meeting_moved_meanwhile_is_a_no_op() {
    for (backend, store, _scratch) in common::scratch_stores().await {
        let clock = ManualClock::new(common::at("2026-09-01T10:30:00+02:00"));
        let service = service(&store, &clock, &catalog_of(&[("seduta", SEDUTA)])).await;
        let id = convened_meeting(&service, common::at("2026-09-01T12:00:00+02:00")).await;

        // Worker "a" claims the due timer (the 2-hour reminder is already past, so not armed)...
        clock.set(common::at("2026-09-01T12:00:01+02:00"));
        let claimed = store
            .claim_due_timers(clock.now(), 10, "a", Duration::seconds(30))
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 1, "{backend}: {claimed:#?}");
        assert!(matches!(claimed[0].action, TimerAction::Fire { .. }));
        // ...and before it fires, the meeting moves to next week.
        service
            .fire(
                &id,
                &cmd(
                    "sposta",
                    presidente(),
                    json!({ "data_seduta": "2026-09-08T12:00:00+02:00" }),
                ),
                None,
            )
            .await
            .expect("sposta");

        assert_eq!(
            service.fire_timer(&claimed[0], "a").await.expect("fire"),
            TimerOutcome::Stale,
            "{backend}"
        );
        let instance = store.instance(&id).await.expect("read").expect("exists");
        assert_eq!(instance.state, "convocata", "{backend}");
        assert!(
            store
                .history(&id)
                .await
                .expect("history")
                .iter()
                .all(|h| h.event != "scade"),
            "{backend}"
        );
        let scheduler = Scheduler::new(service.clone(), options("b")).expect("scheduler");
        assert_eq!(
            settle(&scheduler).await,
            0,
            "{backend}: the new timer is not due"
        );
        clock.set(common::at("2026-09-08T12:00:00+02:00"));
        assert_eq!(
            settle(&scheduler).await,
            2,
            "{backend}: the new 2-hour reminder and the meeting"
        );
        assert_eq!(
            store
                .instance(&id)
                .await
                .expect("read")
                .expect("exists")
                .state,
            "chiusa"
        );
    }
}

#[tokio::test]
async fn a_worker_that_died_holding_a_timer_loses_it_to_another_after_the_lease() {
    for (backend, store, _scratch) in common::scratch_stores().await {
        let clock = ManualClock::new(common::at("2026-10-01T09:00:00+02:00"));
        let service = service(&store, &clock, &catalog_of(&[("seduta", SEDUTA)])).await;
        let id = convened_meeting(&service, common::at("2026-10-01T10:00:00+02:00")).await;
        clock.set(common::at("2026-10-01T10:00:00+02:00"));
        let dead = store
            .claim_due_timers(clock.now(), 10, "dead", Duration::seconds(30))
            .await
            .expect("claim");
        assert_eq!(dead.len(), 1, "{backend}");

        let survivor = Scheduler::new(service.clone(), options("survivor")).expect("scheduler");
        assert_eq!(
            settle(&survivor).await,
            0,
            "{backend}: the claim is still live"
        );
        clock.advance(Duration::seconds(31));
        assert_eq!(settle(&survivor).await, 1, "{backend}");
        let timer = store
            .timers(&id)
            .await
            .expect("timers")
            .into_iter()
            .find(|t| t.key == "seduta")
            .expect("the timer");
        assert_eq!(
            (timer.status, timer.claimed_by.as_deref()),
            (TimerStatus::Done, Some("survivor")),
            "{backend}"
        );

        // The dead worker comes back and tries to finish its claim: nothing is written (the
        // service sees the instance concluded, or the claim gone).
        let late = service.fire_timer(&dead[0], "dead").await.expect("fire");
        assert!(
            matches!(late, TimerOutcome::Stale | TimerOutcome::Skipped(_)),
            "{backend}: {late:?}"
        );
        let again = store
            .timers(&id)
            .await
            .expect("timers")
            .into_iter()
            .find(|t| t.key == "seduta")
            .expect("the timer");
        assert_eq!(
            again, timer,
            "{backend}: the row is as the survivor left it"
        );
        let history = store.history(&id).await.expect("history");
        assert_eq!(
            history.iter().filter(|h| h.event == "scade").count(),
            1,
            "{backend}"
        );
    }
}

/// How many meetings are closed (their timer fired).
async fn closed(store: &Store) -> usize {
    store
        .instances(&InstanceFilter {
            state: Some("chiusa".into()),
            ..InstanceFilter::default()
        })
        .await
        .expect("instances")
        .len()
}

#[tokio::test]
async fn a_graceful_shutdown_leaves_no_timer_claimed() {
    for (backend, store, _scratch) in common::scratch_stores().await {
        let clock = ManualClock::new(common::at("2026-11-02T09:00:00+01:00"));
        let service = service(&store, &clock, &catalog_of(&[("seduta", SEDUTA)])).await;
        let total = 60;
        for n in 0..total {
            convened_meeting(&service, clock.now() + Duration::minutes(30 + n)).await;
        }
        clock.advance(Duration::days(1));
        let scheduler = Scheduler::new(
            service.clone(),
            Options {
                batch_size: 7,
                ..options("a")
            },
        )
        .expect("scheduler");
        scheduler
            .run(tokio::time::sleep(std::time::Duration::from_millis(30)))
            .await
            .expect("run");
        let fired = closed(&store).await;
        assert_eq!(
            store
                .count_timers(TimerStatus::Claimed)
                .await
                .expect("count"),
            0,
            "{backend}"
        );
        let pending = store
            .count_timers(TimerStatus::Pending)
            .await
            .expect("count");
        assert_eq!(
            fired as u64 + pending,
            total as u64,
            "{backend}: every timer fired or is pending again"
        );
    }
}

/// Under `run`, a full batch claims the next one while it fires: every due timer still fires
/// once, and nothing stays claimed when the scheduler stops.
#[tokio::test]
async fn a_running_scheduler_that_claims_ahead_fires_every_timer_once() {
    for (backend, store, _scratch) in common::scratch_stores().await {
        let clock = ManualClock::new(common::at("2026-11-02T09:00:00+01:00"));
        let service = service(&store, &clock, &catalog_of(&[("seduta", SEDUTA)])).await;
        let total = 45;
        let mut ids = Vec::new();
        for n in 0..total {
            ids.push(convened_meeting(&service, clock.now() + Duration::minutes(30 + n)).await);
        }
        clock.advance(Duration::days(1));
        let scheduler = Scheduler::new(
            service.clone(),
            Options {
                batch_size: 4,
                ..options("a")
            },
        )
        .expect("scheduler");
        let watcher = store.clone();
        scheduler
            .run(async move {
                for _ in 0..400 {
                    if closed(&watcher).await == total as usize {
                        return;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            })
            .await
            .expect("run");
        for id in &ids {
            let history = store.history(id).await.expect("history");
            assert_eq!(
                history.iter().filter(|h| h.to_state == "chiusa").count(),
                1,
                "{backend}: {id} closed once"
            );
        }
        assert_eq!(
            store
                .count_timers(TimerStatus::Claimed)
                .await
                .expect("count"),
            0,
            "{backend}: nothing left claimed"
        );
    }
}

#[tokio::test]
async fn a_sub_procedure_is_started_once_even_if_its_outbox_row_is_dispatched_again() {
    for (backend, store, _scratch) in common::scratch_stores().await {
        let clock = ManualClock::new(common::at("2026-02-02T09:00:00+01:00"));
        let service = service(
            &store,
            &clock,
            &catalog_of(&[("padre", PADRE), ("figlio", FIGLIO)]),
        )
        .await;
        let upd = Actor {
            id: "ufficio".into(),
            role: "ufficio_di_piano".into(),
        };
        let parent = service
            .start(
                "padre",
                None,
                vars(json!({ "oggetto": "Centri estivi" })),
                &upd,
                None,
            )
            .await
            .expect("avvio")
            .instance
            .id;
        service
            .fire(&parent, &cmd("avvia", upd.clone(), json!({})), None)
            .await
            .expect("avvia");
        let rows = store.outbox_rows(None).await.expect("outbox");
        assert!(
            rows.iter().any(|r| r.kind == "protocollo"),
            "{backend}: {rows:#?}"
        );
        let start_row = rows
            .iter()
            .find(|r| r.kind == "start_instance")
            .cloned()
            .expect("a start_instance row");

        let scheduler = Scheduler::new(service.clone(), options("a")).expect("scheduler");
        assert_eq!(settle(&scheduler).await, 1, "{backend}");
        let children = store
            .instances(&InstanceFilter {
                definition_id: Some("figlio".into()),
                ..InstanceFilter::default()
            })
            .await
            .expect("instances");
        assert_eq!(children.len(), 1, "{backend}");
        assert_eq!(
            children[0].parent_id.as_deref(),
            Some(parent.as_str()),
            "{backend}"
        );
        assert_eq!(
            children[0].data.variables["oggetto"],
            json!("Centri estivi")
        );

        // The same row dispatched again (a crash before it was marked done): no second child.
        StartInstance::new(service.clone())
            .dispatch(&start_row)
            .await
            .expect("dispatch again");
        let children = store
            .instances(&InstanceFilter {
                definition_id: Some("figlio".into()),
                ..InstanceFilter::default()
            })
            .await
            .expect("instances");
        assert_eq!(children.len(), 1, "{backend}");

        // The protocollo row, which no dispatcher here carries out, stays pending, untouched.
        for row in &store.outbox_rows(None).await.expect("outbox") {
            let expected = if row.kind == "start_instance" {
                OutboxStatus::Done
            } else {
                OutboxStatus::Pending
            };
            assert_eq!(row.status, expected, "{backend}: {row:#?}");
            if row.kind != "start_instance" {
                assert_eq!(row.attempts, 0, "{backend}: never claimed");
            }
        }
    }
}

#[tokio::test]
async fn a_job_with_an_unknown_kind_in_a_definition_is_refused_with_its_name() {
    // Refused by `procedo validate`, with its position…
    let procedure = REGISTRO.replace("job: protocol_register", "job: pulizia");
    let dir = tempfile::tempdir().expect("cartella temporanea");
    std::fs::write(dir.path().join("registro.yaml"), &procedure).expect("scrittura");
    let (_, diags) = catalog::load(&[dir.path().to_path_buf()]);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(
        diags[0].message.contains("'pulizia'") && diags[0].line > 0,
        "{diags:?}"
    );
    // …and by the scheduler, should a stored definition carry one.
    let valid = catalog_of(&[("registro", REGISTRO)]);
    let mut stored = valid.procedures[0].procedure.clone();
    stored.cron[0].job = "pulizia".into();
    let err = CronJob::from_definition(&stored).map(|_| ()).unwrap_err();
    assert!(
        err.to_string().contains("registro.registro_giornaliero")
            && err.to_string().contains("'pulizia'"),
        "{err}"
    );
}

#[tokio::test]
async fn timers_committed_together_refuse_a_stale_or_conflicting_one_and_keep_the_others() {
    for (backend, store, _scratch) in common::scratch_stores().await {
        let (clock, service, noon, ids) = three_meetings_due_at_noon(&store).await;
        let claimed = store
            .claim_due_timers(clock.now(), 10, "a", Duration::seconds(30))
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 3, "{backend}");
        let mut planned = Vec::new();
        for timer in &claimed {
            let row = store
                .instance(&timer.instance_id)
                .await
                .expect("read")
                .expect("exists");
            let procedure = service.procedure("seduta", None).await.expect("procedure");
            let event = cmd("scade", Actor::system(), json!({}));
            let step = procedo::engine::fire(
                &procedure,
                &procedo::engine::Snapshot {
                    id: &row.id,
                    state: &row.state,
                    data: &row.data,
                },
                &event,
                clock.now(),
            )
            .expect("step");
            planned.push((timer.clone(), row, step));
        }
        // Meanwhile the second meeting moves (its timer is replaced) and the third is touched
        // without moving (same date: its timer stays, its version changes).
        let position = |id: &str| {
            planned
                .iter()
                .position(|(t, ..)| t.instance_id == id)
                .expect("planned")
        };
        let (moved, touched) = (position(&ids[1]), position(&ids[2]));
        service
            .fire(
                &ids[1],
                &cmd(
                    "sposta",
                    presidente(),
                    json!({ "data_seduta": "2026-12-15T12:00:00+01:00" }),
                ),
                None,
            )
            .await
            .expect("sposta");
        service
            .fire(
                &ids[2],
                &cmd(
                    "sposta",
                    presidente(),
                    json!({ "data_seduta": noon.to_rfc3339() }),
                ),
                None,
            )
            .await
            .expect("sposta");

        let actor = Actor::system();
        let payload = json!({});
        let records: Vec<_> = planned
            .iter()
            .map(|(timer, row, step)| {
                let record = procedo::store::StepRecord {
                    instance_id: &row.id,
                    expected_version: row.version,
                    actor: &actor,
                    step,
                    payload: &payload,
                    idempotency_key: None,
                    at: clock.now(),
                    late: false,
                    fired_timer: Some(timer.id),
                    submission: None,
                };
                (record, timer.key.as_str())
            })
            .collect();
        let results = store.commit_timer_steps(&records).await.expect("batch");
        for (n, result) in results.iter().enumerate() {
            match n {
                n if n == moved => assert!(
                    matches!(result, Err(procedo::store::Error::StaleTimer { .. })),
                    "{backend}: {result:?}"
                ),
                n if n == touched => assert!(
                    matches!(result, Err(procedo::store::Error::Conflict { .. })),
                    "{backend}: {result:?}"
                ),
                _ => assert!(result.is_ok(), "{backend}: {result:?}"),
            }
        }
        let fired = |id: &str| {
            let store = store.clone();
            let id = id.to_string();
            async move {
                store
                    .history(&id)
                    .await
                    .expect("history")
                    .iter()
                    .filter(|h| h.event == "scade")
                    .count()
            }
        };
        assert_eq!(
            (
                fired(&ids[0]).await,
                fired(&ids[1]).await,
                fired(&ids[2]).await
            ),
            (1, 0, 0),
            "{backend}"
        );
        let touched_timer = store
            .timers(&ids[2])
            .await
            .expect("timers")
            .into_iter()
            .find(|t| t.key == "seduta")
            .expect("timer");
        assert_eq!(
            (touched_timer.status, touched_timer.claimed_by),
            (TimerStatus::Pending, None),
            "{backend}: given back"
        );

        // The given-back timer fires on the new state; the moved meeting waits for its day.
        let scheduler = Scheduler::new(service.clone(), options("b")).expect("scheduler");
        assert_eq!(settle(&scheduler).await, 1, "{backend}");
        assert_eq!(
            (
                fired(&ids[0]).await,
                fired(&ids[1]).await,
                fired(&ids[2]).await
            ),
            (1, 0, 1),
            "{backend}"
        );
    }
}

#[tokio::test]
async fn a_timer_whose_firing_fails_waits_for_its_own_retry_delay_not_for_the_lease() {
    use sea_orm::{ConnectionTrait, Database};
    for (backend, store, scratch) in common::scratch_stores().await {
        let clock = ManualClock::new(common::at("2026-10-01T09:00:00+02:00"));
        let service = service(&store, &clock, &catalog_of(&[("seduta", SEDUTA)])).await;
        let id = convened_meeting(&service, common::at("2026-10-01T10:00:00+02:00")).await;
        clock.set(common::at("2026-10-01T10:00:00+02:00"));

        // The stored definition no longer loads: every firing fails, and writes nothing.
        let db = Database::connect(&scratch.url).await.expect("connessione");
        let original: String = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT source FROM definitions WHERE id = 'seduta'",
            ))
            .await
            .expect("lettura")
            .expect("la definizione")
            .try_get("", "source")
            .expect("source");
        db.execute_unprepared("UPDATE definitions SET source = 'id: [' WHERE id = 'seduta'")
            .await
            .expect("guasto");
        let fresh = Service::new(store.clone(), Arc::new(clock.clone()));
        let scheduler = Scheduler::new(
            fresh,
            Options {
                lease: Duration::seconds(15),
                retry_backoff: std::time::Duration::from_secs(60),
                retry_max_backoff: std::time::Duration::from_secs(3600),
                ..options("a")
            },
        )
        .expect("scheduler");
        let seduta = || async {
            store
                .timers(&id)
                .await
                .expect("timers")
                .into_iter()
                .find(|t| t.key == "seduta")
                .expect("the timer")
        };

        let tally = scheduler.tick_tally().await.expect("tick");
        assert_eq!(tally.failed, 1, "{backend}: {tally:?}");
        let timer = seduta().await;
        let first_retry = timer.retry_at.expect("a retry instant");
        let waited = first_retry - clock.now();
        assert_eq!(
            (timer.status, timer.attempts, timer.claimed_by.as_deref()),
            (TimerStatus::Pending, 1, None),
            "{backend}"
        );
        assert!(
            waited >= Duration::seconds(30) && waited <= Duration::seconds(60),
            "{backend}: first retry after {waited}"
        );
        assert!(timer.last_error.is_some(), "{backend}");
        assert_eq!(timer.fire_at, common::at("2026-10-01T10:00:00+02:00"));

        // The lease (15 s) is long over, the retry delay is not: nothing is claimed, nothing
        // spins.
        clock.advance(Duration::seconds(25));
        let tally = scheduler.tick_tally().await.expect("tick");
        assert_eq!((tally.failed, tally.handled()), (0, 0), "{backend}");
        assert_eq!(seduta().await.attempts, 1, "{backend}");

        // At the retry it fails again: the delay doubles.
        clock.set(first_retry);
        assert_eq!(scheduler.tick_tally().await.expect("tick").failed, 1);
        let timer = seduta().await;
        let second_retry = timer.retry_at.expect("a retry instant");
        let waited = second_retry - clock.now();
        assert_eq!(timer.attempts, 2, "{backend}");
        assert!(
            waited >= Duration::seconds(60) && waited <= Duration::seconds(120),
            "{backend}: second retry after {waited}"
        );

        // Repaired, it fires once at its next retry, marked late.
        db.execute_raw(sea_orm::Statement::from_sql_and_values(
            db.get_database_backend(),
            match db.get_database_backend() {
                sea_orm::DbBackend::Postgres => {
                    "UPDATE definitions SET source = $1 WHERE id = 'seduta'"
                }
                _ => "UPDATE definitions SET source = ? WHERE id = 'seduta'",
            },
            [original.into()],
        ))
        .await
        .expect("riparazione");
        clock.set(second_retry);
        settle(&scheduler).await;
        let timer = seduta().await;
        assert_eq!(timer.status, TimerStatus::Done, "{backend}");
        let history = store.history(&id).await.expect("history");
        let fired: Vec<_> = history.iter().filter(|h| h.event == "scade").collect();
        assert_eq!(fired.len(), 1, "{backend}");
        assert!(fired[0].late, "{backend}");
        db.close().await.expect("chiusura");
    }
}

/// Three applications of one instance fall due together: one batch fires them in a chain,
/// each planned on the step before, in one transaction — three history rows in order, the
/// instance three versions on, every participant moved, every timer done.
#[tokio::test]
async fn the_timers_of_one_instance_fire_in_a_chain_in_one_batch() {
    for (backend, store, _scratch) in common::scratch_stores().await {
        let clock = ManualClock::new(common::at("2026-12-01T09:00:00+01:00"));
        let service = service(
            &store,
            &clock,
            &catalog_of(&[("bench_partecipanti", PARTECIPANTI)]),
        )
        .await;
        let started = service
            .start(
                "bench_partecipanti",
                None,
                vars(json!({
                    "scadenza_domande": "2026-12-20T12:00:00+01:00",
                    "termine": "2026-12-02T10:00:00+01:00"
                })),
                &presidente(),
                None,
            )
            .await
            .expect("avvio");
        let id = started.instance.id.clone();
        for n in 0..3 {
            let org = format!("ets-{n}");
            store
                .add_organisation(&procedo::store::NewOrganisation {
                    id: org.clone(),
                    name: format!("Ente {n}"),
                    kind: procedo::store::OrganisationKind::Ets,
                    codice_fiscale: None,
                    runts: None,
                    pec: None,
                    at: clock.now(),
                })
                .await
                .expect("ente");
            store
                .add_person(&procedo::store::NewPerson {
                    id: org.clone(),
                    name: format!("Referente {n}"),
                    email: format!("referente{n}@example.org"),
                    organisation_id: org.clone(),
                    roles: vec!["ets".into()],
                    digest: "immediato".into(),
                    at: clock.now(),
                })
                .await
                .expect("referente");
            service
                .submit(
                    &procedo::store::NewSubmission {
                        id: format!("domanda-{n}"),
                        instance_id: id.clone(),
                        organisation_id: org.clone(),
                        person_id: org.clone(),
                        note: None,
                        documents: Vec::new(),
                        at: clock.now(),
                    },
                    &procedo::service::Group::default(),
                    &Actor {
                        id: org,
                        role: "ets".into(),
                    },
                )
                .await
                .expect("domanda");
        }
        let before = store.instance(&id).await.expect("store").expect("istanza");
        clock.set(common::at("2026-12-02T10:00:01+01:00"));
        let scheduler = Scheduler::new(service.clone(), options("a")).expect("scheduler");
        assert_eq!(
            scheduler.tick().await.expect("tick"),
            Outcome::Progressed(3),
            "{backend}: one batch"
        );
        let after = store.instance(&id).await.expect("store").expect("istanza");
        assert_eq!(after.version, before.version + 3, "{backend}");
        assert!(
            after
                .data
                .participants
                .values()
                .all(|p| p.state == "scaduta"),
            "{backend}: {:?}",
            after.data.participants
        );
        let history = store.history(&id).await.expect("history");
        let fired: Vec<(i64, Option<String>)> = history
            .iter()
            .filter(|h| h.event == "scade")
            .map(|h| (h.seq, h.participant.as_ref().map(|m| m.id.clone())))
            .collect();
        assert_eq!(fired.len(), 3, "{backend}: {fired:?}");
        assert_eq!(
            fired.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
            [before.version + 1, before.version + 2, before.version + 3],
            "{backend}: one row per step, in order"
        );
        let mut participants: Vec<_> = fired.iter().filter_map(|(_, p)| p.clone()).collect();
        participants.sort();
        participants.dedup();
        assert_eq!(participants.len(), 3, "{backend}: each its own");
        let timers = store.timers(&id).await.expect("timers");
        assert!(
            timers.iter().all(|t| t.status == TimerStatus::Done),
            "{backend}: {timers:?}"
        );
        assert_eq!(
            scheduler.tick().await.expect("tick"),
            Outcome::Idle,
            "{backend}"
        );
    }
}

#[tokio::test]
async fn timers_fired_in_place_commit_with_their_steps_and_leave_the_rest_claimed_or_pending() {
    for (backend, store, _scratch) in common::scratch_stores().await {
        let (clock, service, noon, ids) = three_meetings_due_at_noon(&store).await;
        let procedure = service.procedure("seduta", None).await.expect("procedure");
        // The first meeting fires; the second is left to the one-by-one path; the third is
        // planned on a version that is no longer the instance's.
        let done = store
            .fire_due_in_place(clock.now(), 10, "w", Duration::seconds(30), |due, rows| {
                let procedure = procedure.clone();
                let ids = ids.clone();
                let backend = backend.clone();
                async move {
                    assert_eq!(due.len(), 3, "{backend}: {due:#?}");
                    assert_eq!(rows.len(), 3, "{backend}");
                    let mut planned = Vec::new();
                    let mut rest = Vec::new();
                    for timer in due {
                        let row = rows
                            .iter()
                            .find(|r| r.id == timer.instance_id)
                            .expect("its instance");
                        if timer.instance_id == ids[1] {
                            rest.push(timer);
                            continue;
                        }
                        let step = procedo::engine::fire(
                            &procedure,
                            &procedo::engine::Snapshot {
                                id: &row.id,
                                state: &row.state,
                                data: &row.data,
                            },
                            &cmd("scade", Actor::system(), json!({})),
                            noon,
                        )
                        .expect("step");
                        let stale = timer.instance_id == ids[2];
                        planned.push(procedo::store::PlannedFiring {
                            expected_version: row.version - i64::from(stale),
                            step,
                            payload: json!({}),
                            late: false,
                            at: noon,
                            timer,
                        });
                    }
                    (planned, rest)
                }
            })
            .await
            .expect("in place");
        assert_eq!(done.locked, 3, "{backend}");
        let outcome = |id: &str| {
            &done
                .fired
                .iter()
                .find(|(t, _)| t.instance_id == id)
                .expect("planned")
                .1
        };
        assert!(outcome(&ids[0]).is_ok(), "{backend}");
        assert!(
            matches!(
                outcome(&ids[2]),
                Err(procedo::store::Error::Conflict { .. })
            ),
            "{backend}"
        );
        assert_eq!(
            done.claimed
                .iter()
                .map(|t| (t.instance_id.as_str(), t.status, t.claimed_by.as_deref()))
                .collect::<Vec<_>>(),
            vec![(ids[1].as_str(), TimerStatus::Claimed, Some("w"))],
            "{backend}"
        );
        let timer = |id: &str| {
            let store = store.clone();
            let id = id.to_string();
            async move {
                store
                    .timers(&id)
                    .await
                    .expect("timers")
                    .into_iter()
                    .find(|t| t.key == "seduta")
                    .expect("timer")
            }
        };
        let fired = timer(&ids[0]).await;
        assert_eq!(
            (fired.status, fired.claimed_by.as_deref(), fired.fired_at),
            (TimerStatus::Done, Some("w"), Some(noon)),
            "{backend}: done in the step's transaction, by the worker"
        );
        let stale = timer(&ids[2]).await;
        assert_eq!(
            (stale.status, stale.claimed_by, stale.fired_at),
            (TimerStatus::Pending, None, None),
            "{backend}: pending again, untouched"
        );
        let history = store.history(&ids[0]).await.expect("history");
        assert_eq!(
            history.iter().filter(|h| h.event == "scade").count(),
            1,
            "{backend}"
        );
        assert!(
            store
                .history(&ids[2])
                .await
                .expect("history")
                .iter()
                .all(|h| h.event != "scade"),
            "{backend}"
        );

        // The next scheduler fires the pending one at once, on the instance's new version;
        // the claimed one once its lease has run out.
        let scheduler = Scheduler::new(service.clone(), options("b")).expect("scheduler");
        assert_eq!(settle(&scheduler).await, 1, "{backend}: the stale one");
        assert_eq!(
            timer(&ids[1]).await.status,
            TimerStatus::Claimed,
            "{backend}"
        );
        clock.advance(Duration::seconds(31));
        assert_eq!(settle(&scheduler).await, 1, "{backend}: the lapsed claim");
        for id in &ids {
            let row = timer(id).await;
            assert_eq!(row.status, TimerStatus::Done, "{backend}: {row:?}");
            assert_eq!(
                store
                    .history(id)
                    .await
                    .expect("history")
                    .iter()
                    .filter(|h| h.event == "scade")
                    .count(),
                1,
                "{backend}: once"
            );
        }
    }
}

/// A timer that moves its instance to a state with a timer of its own, and a far one that
/// the move disarms.
const TAPPE: &str = r#"
id: tappe
version: 1
title: "Tappe"
roles:
  ufficio_di_piano: "Ufficio di Piano"
variables:
  prima: { type: datetime, required: true }
  seconda: { type: datetime, required: true }
  lontana: { type: datetime, required: true }
states:
  uno: { initial: true }
  due: { title: "Due" }
  fine: { final: true }
transitions:
  - event: avanza
    from: uno
    to: due
    roles: [ufficio_di_piano]
  - event: chiudi
    from: due
    to: fine
    roles: [ufficio_di_piano]
  - event: abbandona
    from: uno
    to: fine
    roles: [ufficio_di_piano]
timers:
  - { id: prima, while: uno, at: prima, fires: avanza }
  - { id: lontana, while: uno, at: lontana, fires: abbandona }
  - { id: seconda, while: due, at: seconda, fires: chiudi }
"#;

#[tokio::test]
async fn timer_steps_fired_together_disarm_and_arm_the_keys_of_each_instance() {
    for (backend, store, _scratch) in common::scratch_stores().await {
        let clock = ManualClock::new(common::at("2026-12-01T09:00:00+01:00"));
        let service = service(&store, &clock, &catalog_of(&[("tappe", TAPPE)])).await;
        let mut ids = Vec::new();
        for _ in 0..5 {
            let started = service
                .start(
                    "tappe",
                    None,
                    vars(json!({
                        "prima": "2026-12-01T10:00:00+01:00",
                        "seconda": "2026-12-03T10:00:00+01:00",
                        "lontana": "2027-06-01T10:00:00+02:00"
                    })),
                    &presidente(),
                    None,
                )
                .await
                .expect("avvio");
            ids.push(started.instance.id);
        }
        clock.set(common::at("2026-12-01T10:00:01+01:00"));
        let scheduler = Scheduler::new(service.clone(), options("a")).expect("scheduler");
        assert_eq!(
            scheduler.tick().await.expect("tick"),
            Outcome::Progressed(5),
            "{backend}: one batch"
        );
        for id in &ids {
            let row = store.instance(id).await.expect("store").expect("istanza");
            assert_eq!(row.state, "due", "{backend}");
            let mut trail: Vec<(String, TimerStatus, Option<String>)> = store
                .timers(id)
                .await
                .expect("timers")
                .into_iter()
                .map(|t| (t.key, t.status, t.outcome))
                .collect();
            trail.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(
                trail,
                [
                    (
                        "lontana".into(),
                        TimerStatus::Cancelled,
                        Some("cancelled".into())
                    ),
                    ("prima".into(), TimerStatus::Done, Some("fired".into())),
                    ("seconda".into(), TimerStatus::Pending, None),
                ],
                "{backend}: {id}"
            );
        }
        // The timers armed by the batch fire on their day, each once.
        clock.set(common::at("2026-12-03T10:00:01+01:00"));
        assert_eq!(settle(&scheduler).await, 5, "{backend}");
        for id in &ids {
            let row = store.instance(id).await.expect("store").expect("istanza");
            assert_eq!(row.state, "fine", "{backend}");
            assert!(
                store
                    .timers(id)
                    .await
                    .expect("timers")
                    .iter()
                    .all(|t| t.status != TimerStatus::Pending),
                "{backend}"
            );
        }
        clock.set(common::at("2027-06-01T10:00:01+02:00"));
        assert_eq!(
            settle(&scheduler).await,
            0,
            "{backend}: the far ones were disarmed"
        );
    }
}
