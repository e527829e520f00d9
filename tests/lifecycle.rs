//! End to end through the service: a shipped procedure from start to a final state, the store
//! closed and reopened, the same state and full history — on SQLite and PostgreSQL.

mod common;

use common::apply;

use std::sync::Arc;

use chrono::Duration;
use procedo::catalog;
use procedo::clock::ManualClock;
use procedo::engine::{self, Actor, Command};
use procedo::service::{self, Service};
use procedo::store::{self, Store};
use serde_json::{Map, Value, json};

fn catalog() -> procedo::catalog::Catalog {
    common::shipped_catalog()
}

fn rup() -> Actor {
    Actor {
        id: "maria.rossi".into(),
        role: "rup".into(),
    }
}

fn cmd(event: &str, payload: Value) -> Command {
    Command {
        event: event.into(),
        actor: rup(),
        payload: payload.as_object().cloned().unwrap_or_default(),
        participant: None,
    }
}

fn on(participant: &str, event: &str, payload: Value) -> Command {
    Command {
        participant: Some(participant.into()),
        ..cmd(event, payload)
    }
}

#[tokio::test]
async fn an_avviso_runs_to_its_end_and_survives_a_reopen() {
    common::init_tracing();
    for (backend, store, scratch) in common::scratch_stores().await {
        let clock = ManualClock::new(common::at("2026-11-26T09:00:00+01:00"));
        let service = Service::new(store, Arc::new(clock.clone()));
        service.install(&catalog()).await.expect("install");

        let mut vars = Map::new();
        vars.insert("oggetto".into(), json!("Servizi per la disabilità"));
        let started = service
            .start("avviso_coprogettazione", None, vars, &rup(), None)
            .await
            .expect("start");
        let id = started.instance.id.clone();
        assert_eq!(started.instance.state, "bozza");

        service
            .fire(
                &id,
                &cmd("pubblica", json!({"data_pubblicazione": "2026-11-27", "atto_criteri": "determina n. 12 del 26/11/2026"})),
                None,
            )
            .await
            .expect("pubblica");
        let row = service
            .store()
            .instance(&id)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(
            row.data.variables["scadenza_domande"],
            json!("2026-12-28T12:00:00+01:00"),
            "{backend}"
        );

        // Before the deadline the RUP cannot close: a typed refusal that changes nothing.
        let refused = service
            .fire(&id, &cmd("chiudi_domande", json!({})), None)
            .await
            .unwrap_err();
        assert!(
            matches!(
                refused,
                service::Error::Engine(engine::Error::GuardFailed { .. })
            ),
            "{refused}"
        );
        assert_eq!(
            service
                .store()
                .instance(&id)
                .await
                .expect("read")
                .expect("exists")
                .version,
            row.version
        );

        clock.set(common::at("2026-12-01T10:00:00+01:00"));
        let domanda = apply(&service, &id, "ets-1").await;

        clock.set(common::at("2026-12-28T12:00:01+01:00"));
        let closed = service
            .fire(&id, &cmd("chiudi_domande", json!({})), None)
            .await
            .expect("chiudi_domande");
        assert_eq!(
            closed.instance.state, "istruttoria",
            "{backend}: one application"
        );
        service
            .fire(
                &id,
                &on(
                    &domanda,
                    "richiedi_soccorso",
                    json!({"documenti_mancanti": ["DURC"]}),
                ),
                None,
            )
            .await
            .expect("soccorso");
        let row = service
            .store()
            .instance(&id)
            .await
            .expect("read")
            .expect("exists");
        let part = &row.data.participants[&domanda];
        assert_eq!(part.state, "in_soccorso");
        assert_eq!(
            part.variables["data_richiesta_soccorso"],
            json!("2026-12-28")
        );
        // 28 Dec + 10 days = 7 Jan 2027 (a Thursday), at 12:00: this ETS's own term.
        assert_eq!(
            part.variables["termine_integrazione"],
            json!("2027-01-07T12:00:00+01:00")
        );
        assert!(!row.data.variables.contains_key("termine_integrazione"));
        clock.advance(Duration::days(3));
        let answer = store::NewSoccorsoResponse {
            id: uuid::Uuid::new_v4().to_string(),
            submission_id: domanda.clone(),
            person_id: "referente-ets-1".into(),
            note: Some("DURC allegato".into()),
            documents: Vec::new(),
            at: service.now(),
        };
        let ets = Actor {
            id: "referente-ets-1".into(),
            role: "ets".into(),
        };
        service
            .answer_soccorso(&answer, &id, &ets)
            .await
            .expect("integra");
        service
            .fire(
                &id,
                &on(
                    &domanda,
                    "decidi_ammissione",
                    json!({"esito": "ammessa", "requisiti_verificati": true}),
                ),
                None,
            )
            .await
            .expect("ammessa");
        service
            .fire(&id, &cmd("ammetti", json!({})), None)
            .await
            .expect("ammetti");
        // The commissione: named, declared, one collegial-mean score per leaf criterion.
        use procedo::engine::evaluation::{self, MemberRole, NewMember, ScoreInput};
        let presidente = procedo::engine::Actor {
            id: "maria.rossi".into(),
            role: "commissione".into(),
        };
        let members = vec![NewMember {
            person_id: "maria.rossi".into(),
            name: "Maria Rossi".into(),
            role: MemberRole::Presidente,
        }];
        service
            .record_step(&id, &presidente, &json!({}), None, |p, row, now| {
                evaluation::appoint(p, &row.snapshot(), &members, "determina n. 3", now)
            })
            .await
            .expect("nomina");
        service
            .record_step(&id, &presidente, &json!({}), None, |p, row, now| {
                evaluation::declare(p, &row.snapshot(), "maria.rossi", false, false, None, now)
            })
            .await
            .expect("dichiarazione");
        let scores: Vec<ScoreInput> = [
            ("obiettivi", 18),
            ("metodologia", 17),
            ("esperienza", 26),
            ("risorse", 25),
        ]
        .into_iter()
        .map(|(criterion, points)| ScoreInput {
            criterion: criterion.into(),
            points: points.into(),
            motivazione: "motivata".into(),
        })
        .collect();
        service
            .record_step(&id, &presidente, &json!({}), None, |p, row, now| {
                evaluation::score(p, &row.snapshot(), &domanda, "maria.rossi", &scores, now)
            })
            .await
            .expect("punteggio");
        service
            .fire(&id, &on(&domanda, "valuta", json!({})), None)
            .await
            .expect("valuta");
        service
            .fire(
                &id,
                &cmd(
                    "approva_graduatoria",
                    json!({"data_graduatoria": "2027-01-15", "numero_determina_graduatoria": "88"}),
                ),
                None,
            )
            .await
            .expect("graduatoria");
        clock.set(common::at("2027-03-20T09:00:00+01:00"));
        let done = service
            .fire(&id, &cmd("chiudi", json!({})), None)
            .await
            .expect("chiudi");
        assert_eq!(done.instance.state, "concluso");
        assert!(done.instance.is_final);

        let history_before = service.store().history(&id).await.expect("history");
        let url = scratch.url.clone();
        service.store().clone().close().await.expect("close");
        drop(service);

        let reopened = Store::connect(&url).await.expect("reopen");
        let row = reopened.instance(&id).await.expect("read").expect("exists");
        assert_eq!(row.state, "concluso", "{backend}");
        assert_eq!(row.data.participants[&domanda].state, "valutata");
        let history = reopened.history(&id).await.expect("history");
        assert_eq!(history, history_before, "{backend}");
        let events: Vec<(&str, Option<&str>)> = history
            .iter()
            .map(|h| {
                (
                    h.event.as_str(),
                    h.participant.as_ref().map(|m| m.to.as_str()),
                )
            })
            .collect();
        assert_eq!(
            events,
            vec![
                ("avvio", None),
                ("pubblica", None),
                ("presentazione", Some("ricevuta")),
                ("chiudi_domande", None),
                ("richiedi_soccorso", Some("in_soccorso")),
                ("integra", Some("ricevuta")),
                ("decidi_ammissione", Some("ammessa")),
                ("ammetti", None),
                ("nomina_commissione", None),
                ("dichiarazione_commissario", None),
                ("punteggio", Some("ammessa")),
                ("valuta", Some("valutata")),
                ("approva_graduatoria", None),
                ("chiudi", None),
            ]
        );
        let seqs: Vec<i64> = history.iter().map(|h| h.seq).collect();
        assert_eq!(seqs, (1..=14).collect::<Vec<i64>>(), "{backend}: no gaps");
        assert_eq!(row.version, 14);
        // The total is computed, never typed in: 18 + 17 + 26 + 25.
        assert_eq!(
            row.data.participants[&domanda].variables["punteggio"],
            json!(86),
            "{backend}"
        );
        drop(scratch);
    }
}

#[tokio::test]
async fn an_instance_keeps_its_definition_version() {
    for (backend, store, _scratch) in common::scratch_stores().await {
        let clock = ManualClock::new(common::at("2026-11-26T09:00:00+01:00"));
        let service = Service::new(store, Arc::new(clock));
        let mut cat = catalog();
        service.install(&cat).await.expect("install v1");
        let mut vars = Map::new();
        vars.insert("oggetto".into(), json!("x"));
        let v1 = service
            .start("avviso_coprogettazione", None, vars.clone(), &rup(), None)
            .await
            .expect("start");

        // The next version renames the first state's title; instances of the shipped version
        // do not see it.
        let shipped = v1.instance.definition_version;
        let loaded = cat
            .procedures
            .iter_mut()
            .find(|l| l.procedure.id == "avviso_coprogettazione")
            .expect("shipped");
        let source = loaded
            .source
            .replace(
                &format!("version: {shipped}"),
                &format!("version: {}", shipped + 1),
            )
            .replace(
                "bozza: { initial: true, title: \"Bozza\" }",
                "bozza: { initial: true, title: \"Bozza v2\" }",
            );
        let procedure = catalog::from_stored("v2", &source, &loaded.assets).expect("v2 valid");
        loaded.hash = procedo::definition::content_hash(&source, &loaded.assets.to_string());
        loaded.source = source;
        loaded.procedure = procedure;
        service.install(&cat).await.expect("install v2");
        let v2 = service
            .start("avviso_coprogettazione", None, vars, &rup(), None)
            .await
            .expect("start v2");
        assert_eq!(v2.instance.definition_version, shipped + 1, "{backend}");
        let pinned = service
            .procedure("avviso_coprogettazione", Some(shipped))
            .await
            .expect("v1");
        assert_eq!(pinned.initial_state().title, "Bozza");

        // The same id and version with another content is refused.
        let changed = cat
            .procedures
            .iter_mut()
            .find(|l| l.procedure.id == "avviso_coprogettazione")
            .expect("shipped");
        changed.hash = "0".repeat(64);
        let err = service.install(&cat).await.unwrap_err();
        assert!(
            matches!(
                err,
                service::Error::Store(store::Error::DefinitionChanged { .. })
            ),
            "{err}"
        );
        // At start-up the database is the source of truth: the conflicting file is reported
        // and skipped; the start goes on.
        let conflicts = service.import(&cat).await.expect("import goes on");
        assert_eq!(conflicts.len(), 1, "{backend}: {conflicts:?}");
        assert!(
            conflicts[0].contains("avviso_coprogettazione") && conflicts[0].contains("ignorato"),
            "{backend}: {conflicts:?}"
        );
    }
}

#[tokio::test]
async fn the_same_command_twice_has_one_effect() {
    for (backend, store, _scratch) in common::scratch_stores().await {
        let clock = ManualClock::new(common::at("2026-11-26T09:00:00+01:00"));
        let service = Service::new(store, Arc::new(clock));
        service.install(&catalog()).await.expect("install");
        let mut vars = Map::new();
        vars.insert("oggetto".into(), json!("x"));
        let a = service
            .start(
                "avviso_coprogettazione",
                None,
                vars.clone(),
                &rup(),
                Some("start-1"),
            )
            .await
            .expect("start");
        let b = service
            .start(
                "avviso_coprogettazione",
                None,
                vars,
                &rup(),
                Some("start-1"),
            )
            .await
            .expect("replay");
        assert_eq!(a.instance.id, b.instance.id, "{backend}");
        assert!(b.committed.replayed);
        let publish = cmd(
            "pubblica",
            json!({"data_pubblicazione": "2026-11-27", "atto_criteri": "determina n. 12 del 26/11/2026"}),
        );
        service
            .fire(&a.instance.id, &publish, Some("pub-1"))
            .await
            .expect("fire");
        let again = service
            .fire(&a.instance.id, &publish, Some("pub-1"))
            .await
            .expect("replayed fire");
        assert!(again.committed.replayed);
        assert_eq!(
            service
                .store()
                .history(&a.instance.id)
                .await
                .expect("history")
                .len(),
            2,
            "{backend}"
        );
        let outbox = service.store().outbox_rows(None).await.expect("outbox");
        // pubblicato: one protocollo row and one notification, once.
        assert_eq!(outbox.len(), 2, "{backend}: {outbox:?}");
    }
}

#[tokio::test]
async fn eight_concurrent_fires_record_one_transition_per_accepted_command() {
    for (backend, store, _scratch) in common::scratch_stores().await {
        let clock = ManualClock::new(common::at("2026-12-01T09:00:00+01:00"));
        let service = Service::new(store, Arc::new(clock));
        service.install(&catalog()).await.expect("install");
        let presidente = Actor {
            id: "sindaco.capofila".into(),
            role: "ufficio_di_piano".into(),
        };
        let vars = json!({
            "organo": "Assemblea dei Sindaci",
            "ordine_del_giorno": ["Piano di Zona"],
            "luogo": "Sala consiliare",
            "data_seduta": "2027-01-14T17:00:00+01:00"
        });
        let started = service
            .start(
                "convocazione_assemblea",
                None,
                vars.as_object().cloned().unwrap_or_default(),
                &presidente,
                None,
            )
            .await
            .expect("start");
        let id = started.instance.id.clone();
        service
            .fire(
                &id,
                &Command {
                    event: "convoca".into(),
                    actor: presidente.clone(),
                    payload: Map::new(),
                    participant: None,
                },
                None,
            )
            .await
            .expect("convoca");

        let mut tasks = Vec::new();
        for day in 0..8 {
            let service = service.clone();
            let id = id.clone();
            let actor = presidente.clone();
            tasks.push(tokio::spawn(async move {
                let when = format!("2027-01-{:02}T17:00:00+01:00", 15 + day);
                let payload = json!({ "data_seduta": when })
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                service
                    .fire(
                        &id,
                        &Command {
                            event: "sposta".into(),
                            actor,
                            payload,
                            participant: None,
                        },
                        None,
                    )
                    .await
            }));
        }
        let mut accepted = 0;
        let mut conflicts = 0;
        for task in tasks {
            match task.await.expect("task") {
                Ok(_) => accepted += 1,
                Err(service::Error::Store(store::Error::Conflict { .. })) => conflicts += 1,
                Err(other) => panic!("{backend}: unexpected error {other}"),
            }
        }
        assert!(accepted >= 1, "{backend}");
        assert_eq!(accepted + conflicts, 8, "{backend}");
        let history = service.store().history(&id).await.expect("history");
        assert_eq!(
            history.len(),
            2 + accepted,
            "{backend}: one row per accepted command"
        );
        let seqs: Vec<i64> = history.iter().map(|h| h.seq).collect();
        assert_eq!(
            seqs,
            (1..=history.len() as i64).collect::<Vec<_>>(),
            "{backend}: no gaps"
        );
        // Exactly one pending row per timer key survives, whatever the interleaving.
        let armed = service
            .store()
            .timers_between(
                common::at("2026-01-01T00:00:00Z"),
                common::at("2028-01-01T00:00:00Z"),
                Some(&id),
            )
            .await
            .expect("timers");
        let keys: std::collections::BTreeSet<&str> = armed.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(keys.len(), armed.len(), "{backend}: {keys:?}");
    }
}
