//! Meetings of the Ambito's bodies, from real minutes: the Assemblea dei Sindaci of the
//! Distretto di Tradate of 30.01.2019 (the verbale that opens the seed document
//! `002_8dc9ed983e5765ab.txt`) goes into procedo's register, and procedo's verbale says what
//! that verbale says — the same comuni, names, roles, times, items and outcomes, one signature
//! — and nothing it does not: no vote counts, no quorum, no convocation reference, no
//! secretary.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use procedo::clock::{Clock, ManualClock};
use procedo::engine::meeting::{
    self, Ballot, Body, Capacity, ItemRecord, MeetingRecord, Outcome, Presence, Rules, Seat,
    verbale_context,
};
use procedo::engine::{Actor, Command};
use procedo::notify::Templates;
use procedo::scheduler::{Options as SchedulerOptions, Scheduler};
use procedo::service::Service;
use serde_json::{Value, json};

/// The eight comuni of the district, one seat each; its rules are not in the document.
fn tradate() -> Body {
    let comuni = [
        "Castelseprio",
        "Castiglione Olona",
        "Gornate Olona",
        "Lonate Ceppino",
        "Tradate",
        "Vedano Olona",
        "Venegono Inferiore",
        "Venegono Superiore",
    ];
    Body {
        id: "assemblea-tradate".into(),
        title: "Assemblea dei Sindaci del Distretto di Tradate".into(),
        seats: comuni
            .iter()
            .map(|c| Seat {
                id: c.to_lowercase().replace(' ', "-"),
                name: format!("Comune di {c}"),
                weight: rust_decimal::Decimal::ONE,
            })
            .collect(),
        attendees: vec!["Responsabile dell'Ufficio di Piano".into()],
        rules: Rules::default(),
        presidente: None,
        delegates: Vec::new(),
    }
}

fn seat(comune: &str, name: &str, capacity: Capacity) -> Presence {
    Presence {
        seat: Some(comune.into()),
        name: name.into(),
        capacity,
        note: None,
        arrived: None,
        left: None,
    }
}

fn without_vote(name: &str, capacity: Capacity, note: &str) -> Presence {
    Presence {
        seat: None,
        name: name.into(),
        capacity,
        note: Some(note.into()),
        arrived: None,
        left: None,
    }
}

fn record() -> MeetingRecord {
    MeetingRecord {
        date: "30/01/2019".into(),
        place: Some("il Comune di Gornate Olona".into()),
        convened: Some("18.30".into()),
        opened: Some("18.45".into()),
        closed: Some("19.15".into()),
        convocation: None,
        presidente: Some("Barbara Bison".into()),
        verbalizzante: None,
        register: vec![
            // "=====" in the source: the role is not stated.
            seat("castelseprio", "Monica Baruzzo", Capacity::NonIndicata),
            seat("castiglione-olona", "Emanuele Poretti", Capacity::Sindaco),
            seat("gornate-olona", "Barbara Bison", Capacity::Sindaco),
            seat("lonate-ceppino", "Massimo Colombo", Capacity::NonIndicata),
            seat("tradate", "Claudio Ceriani", Capacity::ViceSindaco),
            seat("vedano-olona", "Cristiano Citterio", Capacity::Sindaco),
            seat("venegono-inferiore", "Maria Chiara Cremona", Capacity::Assessore),
            seat("venegono-superiore", "Ambrogio Crespi", Capacity::Sindaco),
            // Present, holding no extra seat.
            without_vote(
                "Luisa Limido",
                Capacity::Assessore,
                "assessore ai servizi sociali di Venegono Superiore",
            ),
            without_vote(
                "Franco Accordino",
                Capacity::Assessore,
                "assessore ai servizi sociali di Tradate",
            ),
            without_vote(
                "Mariella Luciani",
                Capacity::NonIndicata,
                "responsabile dell'Ufficio di Piano",
            ),
        ],
        items: vec![
            ItemRecord {
                title: "Approvazione piano povertà dell'ambito distrettuale".into(),
                discussion: None,
                outcome: Some(Outcome::Approvato),
                decision: Some(
                    "il piano territoriale di contrasto alla povertà, allegato al presente verbale"
                        .into(),
                ),
                tally: None,
            },
            ItemRecord {
                title: "Approvazione bilancio preventivo 2019".into(),
                discussion: None,
                outcome: Some(Outcome::Approvato),
                decision: Some("il bilancio di previsione per l'anno 2019".into()),
                tally: None,
            },
            ItemRecord {
                title: "Varie ed eventuali".into(),
                discussion: Some(
                    "Il vice sindaco di Tradate comunica l'intenzione di costruire una caserma dei vigili del fuoco; i sindaci accolgono favorevolmente la proposta."
                        .into(),
                ),
                outcome: Some(Outcome::NessunaDecisione),
                decision: None,
                tally: None,
            },
        ],
        approved_in_session: true,
    }
}

#[test]
fn the_tradate_verbale_says_what_the_minutes_say_and_nothing_more() {
    let templates = Templates::builtin().expect("shipped templates");
    let context = json!({
        "verbale": verbale_context(&tradate(), &record()),
        "ambito": { "nome": "Distretto di Tradate" },
        "protocollo": null,
        "destinatario": { "nome": "Destinatari in indirizzo", "email": "" },
    });
    let rendered = templates
        .render("verbale_seduta", &context)
        .expect("the verbale renders");
    // The HTML escapes apostrophes; read it as a person would.
    let html = rendered
        .html
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    for text in [&rendered.text, &html] {
        // The eight comuni with who sat for them, in the role the minutes give.
        for line in [
            "Comune di Castiglione Olona",
            "Emanuele Poretti",
            "Claudio Ceriani",
            "Vice Sindaco",
            "Maria Chiara Cremona",
            "Assessore",
            "Comune di Venegono Superiore",
            "Ambrogio Crespi",
        ] {
            assert!(text.contains(line), "missing «{line}»:\n{text}");
        }
        // The three times, the place, the three items with their outcomes.
        for line in ["18.30", "18.45", "19.15", "Gornate Olona"] {
            assert!(text.contains(line), "missing «{line}»:\n{text}");
        }
        assert!(text.contains("Approvazione piano povertà dell'ambito distrettuale"));
        assert!(text.contains("Varie ed eventuali"));
        assert_eq!(
            text.matches("approvato").count() - text.matches("Letto, approvato").count(),
            2,
            "{text}"
        );
        assert!(text.contains("nessuna decisione"), "{text}");
        // Who attends without a vote: the Responsabile dell'Ufficio di Piano and the two
        // extra assessori.
        assert!(text.contains("senza diritto di voto"), "{text}");
        assert!(text.contains("Mariella Luciani"), "{text}");
        assert!(text.contains("Franco Accordino"), "{text}");
        // One signature, the presidente's.
        assert!(text.contains("Letto, approvato e sottoscritto"), "{text}");
        assert!(text.contains("Il Presidente"), "{text}");
        // Nothing the source does not say.
        for absent in [
            "unanimità",
            "numero legale",
            "favorevoli",
            "prot.",
            "Convocazione:",
            "Segretario",
            "Assenti",
        ] {
            assert!(
                !text.contains(absent),
                "«{absent}» is not in the minutes:\n{text}"
            );
        }
    }
    // The text version: the two representatives whose role is not stated say so.
    assert_eq!(
        rendered.text.matches("(carica non indicata)").count(),
        2,
        "{}",
        rendered.text
    );
    // The Responsabile is in the register but holds no seat.
    let body = tradate();
    let register = record().register;
    let q = procedo::engine::meeting::quorum(&body, &register, chrono::Utc::now(), false);
    assert_eq!((q.heads, q.seats), (8, 8));
    assert_eq!(q.met, None, "the minutes give no quorum rule: not assumed");
}

fn ufficio() -> Actor {
    Actor {
        id: "ufficio".into(),
        role: "ufficio_di_piano".into(),
    }
}

fn cmd(event: &str, payload: Value) -> Command {
    Command {
        event: event.into(),
        actor: ufficio(),
        payload: payload.as_object().cloned().unwrap_or_default(),
        participant: None,
    }
}

/// Starts the shipped Assemblea with `vars` (as the Ufficio di Piano); returns its id.
async fn start_assemblea(service: &Service, vars: Value) -> String {
    service
        .start(
            "convocazione_assemblea",
            None,
            vars.as_object().cloned().unwrap_or_default(),
            &ufficio(),
            None,
        )
        .await
        .expect("start")
        .instance
        .id
}

fn term(row: &procedo::store::InstanceRow, name: &str) -> (String, Vec<String>) {
    let t = &row.data.terms[name];
    (t.expiry.to_string(), t.trace.clone())
}

/// Seed 001: the Assemblea is convened "almeno una settimana prima", the Tavolo Tecnico with
/// its agenda "almeno dieci giorni" ahead. Backward terms across the Christmas holidays move
/// earlier, and say why.
#[tokio::test]
async fn the_notice_periods_run_backward_across_christmas_with_their_traces() {
    let (store, _scratch) = common::scratch_store().await;
    let clock = ManualClock::new(common::at("2026-12-01T09:00:00+01:00"));
    let service = Service::new(store.clone(), Arc::new(clock.clone()));
    service
        .install(&common::shipped_catalog())
        .await
        .expect("install");
    let start = |procedure: &'static str, when: &'static str| {
        let service = service.clone();
        async move {
            let vars = json!({
                "organo": "Organo",
                "ordine_del_giorno": ["Piano di Zona"],
                "luogo": "Sala consiliare",
                "data_seduta": when,
            });
            service
                .start(
                    procedure,
                    None,
                    vars.as_object().cloned().unwrap_or_default(),
                    &ufficio(),
                    None,
                )
                .await
                .expect("start")
                .instance
        }
    };
    // Assemblea on Thursday 31/12/2026: seven days back is Thursday 24/12. The offices are
    // closed that day, but a closure is not a holiday and this procedure does not let closures
    // move its terms: the trace says so.
    let assemblea = start("convocazione_assemblea", "2026-12-31T17:00:00+01:00").await;
    let (expiry, trace) = term(&assemblea, "termine_convocazione");
    assert_eq!(expiry, "2026-12-24", "{trace:#?}");
    assert!(
        trace
            .iter()
            .any(|l| l.contains("non sposta questo termine")),
        "{trace:#?}"
    );
    // Tavolo Tecnico on Thursday 7/1/2027: ten days back is Monday 28/12/2026, a working day.
    let tavolo = start("convocazione_tavolo_tecnico", "2027-01-07T10:00:00+01:00").await;
    let (expiry, trace) = term(&tavolo, "termine_convocazione");
    assert_eq!(expiry, "2026-12-28", "{trace:#?}");
    // On Tuesday 5/1/2027 it is Saturday 26/12 (Santo Stefano), then Friday 25/12 (Natale):
    // a backward term moves earlier, to Thursday 24/12.
    let tavolo = start("convocazione_tavolo_tecnico", "2027-01-05T10:00:00+01:00").await;
    let (expiry, trace) = term(&tavolo, "termine_convocazione");
    assert_eq!(expiry, "2026-12-24", "{trace:#?}");
    for day in ["26/12/2026", "25/12/2026"] {
        assert!(trace.iter().any(|l| l.contains(day)), "{day}: {trace:#?}");
    }
}

/// Without the quorum of the first call the session does not open; at the second call
/// announced in the notice, with its lower quorum, it does.
#[tokio::test]
async fn a_meeting_without_quorum_opens_at_its_second_call() {
    for (backend, store, _scratch) in common::scratch_stores().await {
        let clock = ManualClock::new(common::at("2026-12-01T09:00:00+01:00"));
        let service = Service::new(store.clone(), Arc::new(clock.clone()));
        service
            .install(&common::shipped_catalog())
            .await
            .expect("install");
        let vars = json!({
            "organo": "Assemblea dei Sindaci",
            "ordine_del_giorno": ["Piano di Zona"],
            "luogo": "Sala consiliare",
            "data_seduta": "2026-12-15T17:00:00+01:00",
            "seconda_convocazione": "2026-12-15T18:00:00+01:00",
        });
        let id = start_assemblea(&service, vars).await;
        service
            .fire(&id, &cmd("convoca", json!({})), None)
            .await
            .expect("convoca");
        // Only San Lorenzo al Lago (16.5 of 100 quotas) is there.
        clock.set(common::at("2026-12-15T16:58:00+01:00"));
        let presence = Presence {
            seat: Some("comune-san-lorenzo".into()),
            name: "Giulia Esposito".into(),
            capacity: Capacity::Sindaco,
            note: None,
            arrived: None,
            left: None,
        };
        service
            .record_step(&id, &ufficio(), &json!({}), None, |p, row, now| {
                meeting::arrive(p, &row.snapshot(), presence.clone(), now)
            })
            .await
            .expect("presenza");
        clock.set(common::at("2026-12-15T17:05:00+01:00"));
        let refused = service
            .fire(&id, &cmd("apri_seduta", json!({})), None)
            .await
            .expect_err("no quorum");
        assert!(
            refused.to_string().contains("Manca il numero legale"),
            "[{backend}] {refused}"
        );
        // Too early for the second call.
        assert!(
            service
                .fire(&id, &cmd("passa_in_seconda_convocazione", json!({})), None)
                .await
                .is_err(),
            "[{backend}]"
        );
        clock.set(common::at("2026-12-15T18:00:00+01:00"));
        let second = service
            .fire(&id, &cmd("passa_in_seconda_convocazione", json!({})), None)
            .await
            .expect("seconda convocazione");
        assert_eq!(
            second.instance.data.variables["numero_legale"],
            json!(true),
            "[{backend}] one comune of three is a third"
        );
        let opened = service
            .fire(&id, &cmd("apri_seduta", json!({})), None)
            .await
            .expect("apri");
        assert_eq!(opened.instance.state, "in_seduta", "[{backend}]");
        let m = opened.instance.data.meeting.as_ref().expect("meeting");
        assert!(m.second_call, "[{backend}]");
        assert_eq!(
            m.opened_at,
            Some(common::at("2026-12-15T18:00:00+01:00")),
            "[{backend}]"
        );

        // Closed, its verbale read and approved in the session: drafted from the register.
        clock.set(common::at("2026-12-15T18:40:00+01:00"));
        let closed = service
            .fire(
                &id,
                &cmd(
                    "chiudi_seduta",
                    json!({ "verbalizzante": "Paolo Galli", "verbale_approvato_in_seduta": true }),
                ),
                None,
            )
            .await
            .expect("chiudi");
        let p = service
            .procedure(
                "convocazione_assemblea",
                Some(closed.instance.definition_version),
            )
            .await
            .expect("procedure");
        let d = p.meeting.as_ref().expect("meeting");
        let record = meeting::record_of(&p, &closed.instance.data).expect("record");
        assert_eq!(record.opened.as_deref(), Some("18.00"), "[{backend}]");
        assert_eq!(record.closed.as_deref(), Some("18.40"), "[{backend}]");
        assert_eq!(record.convened.as_deref(), Some("17.00"), "[{backend}]");
        let context = json!({
            "verbale": verbale_context(meeting::body_of(d, &closed.instance.data), &record),
            "ambito": { "nome": "Ambito di Borgo Fiorito" },
            "protocollo": null,
        });
        let text = Templates::builtin()
            .expect("templates")
            .render("verbale_seduta", &context)
            .expect("verbale")
            .text;
        for line in [
            "Comune di San Lorenzo al Lago: Giulia Esposito, Sindaco",
            "Assenti:",
            "- Comune di Borgo Fiorito",
            "Letto, approvato e sottoscritto.",
            "Il Segretario verbalizzante",
            "Paolo Galli",
            "Esito: non indicato.",
        ] {
            assert!(text.contains(line), "[{backend}] missing «{line}»:\n{text}");
        }
        // Nobody presides: the body's presidente (Borgo Fiorito) was absent.
        assert!(!text.contains("Il Presidente"), "[{backend}] {text}");
    }
}

/// Past the week's notice the Assemblea may still be convened urgently, but at least 24 hours
/// before the meeting — real hours, from the instant of the meeting.
#[tokio::test]
async fn an_urgent_convocation_needs_twenty_four_hours() {
    let (store, _scratch) = common::scratch_store().await;
    let clock = ManualClock::new(common::at("2026-12-14T10:00:00+01:00"));
    let service = Service::new(store.clone(), Arc::new(clock.clone()));
    service
        .install(&common::shipped_catalog())
        .await
        .expect("install");
    let vars = json!({
        "organo": "Assemblea dei Sindaci",
        "ordine_del_giorno": ["Variazione di bilancio urgente"],
        "luogo": "Sala consiliare",
        "data_seduta": "2026-12-15T17:00:00+01:00",
    });
    let id = start_assemblea(&service, vars).await;
    let row = service
        .store()
        .instance(&id)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(
        row.data.variables["termine_urgenza"],
        json!("2026-12-14T17:00:00+01:00")
    );
    let (_, trace) = term(&row, "termine_urgenza");
    assert!(trace.iter().any(|l| l.contains("−24 ore")), "{trace:#?}");
    // The ordinary notice is gone: refused without urgency, taken with it.
    let refused = service
        .fire(&id, &cmd("convoca", json!({})), None)
        .await
        .expect_err("a week is not there");
    assert!(
        refused.to_string().contains("almeno 24 ore prima"),
        "{refused}"
    );
    // 23 hours before is too late even for urgency.
    clock.set(common::at("2026-12-14T18:00:00+01:00"));
    assert!(
        service
            .fire(&id, &cmd("convoca", json!({ "urgente": true })), None)
            .await
            .is_err()
    );
    clock.set(common::at("2026-12-14T16:59:00+01:00"));
    let convened = service
        .fire(&id, &cmd("convoca", json!({ "urgente": true })), None)
        .await
        .expect("urgent convocation");
    assert_eq!(convened.instance.state, "convocata");
}

/// Seats of the shipped Assemblea present at `now`: Borgo Fiorito and Castelverde (83.5 of
/// 100 quotas), enough for the first call.
async fn quorum_present(service: &Service, id: &str) {
    for (seat, name) in [
        ("comune-borgo-fiorito", "Marco Bianchi"),
        ("comune-castelverde", "Laura Neri"),
    ] {
        let presence = Presence {
            seat: Some(seat.into()),
            name: name.into(),
            capacity: Capacity::Sindaco,
            note: None,
            arrived: None,
            left: None,
        };
        service
            .record_step(id, &ufficio(), &json!({}), None, |p, row, now| {
                meeting::arrive(p, &row.snapshot(), presence.clone(), now)
            })
            .await
            .expect("presenza");
    }
}

/// Convenes the meeting, and at `at` registers the quorum and opens the session.
async fn convene_and_open(service: &Service, clock: &ManualClock, id: &str, at: &str) {
    service
        .fire(id, &cmd("convoca", json!({})), None)
        .await
        .expect("convoca");
    clock.set(common::at(at));
    quorum_present(service, id).await;
    service
        .fire(id, &cmd("apri_seduta", json!({})), None)
        .await
        .expect("apri");
}

/// Both present seats vote in favour of item `item`.
async fn approve_item(service: &Service, id: &str, item: usize) {
    let ballots: BTreeMap<String, Ballot> = [
        ("comune-borgo-fiorito".to_string(), Ballot::Favorevole),
        ("comune-castelverde".to_string(), Ballot::Favorevole),
    ]
    .into_iter()
    .collect();
    service
        .record_step(
            id,
            &ufficio(),
            &json!({ "punto": item }),
            None,
            |p, row, now| meeting::vote(p, &row.snapshot(), item, &ballots, None, now),
        )
        .await
        .expect("votazione");
}

/// A verbale not approved in its own session is approved by the first item of the body's next
/// session, which names it: the earlier meeting records by whom and when, once; a session of
/// another body, or a second approval, is refused.
#[tokio::test]
async fn the_next_session_approves_the_previous_verbale() {
    for (backend, store, _scratch) in common::scratch_stores().await {
        let clock = ManualClock::new(common::at("2026-12-01T09:00:00+01:00"));
        let service = Service::new(store.clone(), Arc::new(clock.clone()));
        service
            .install(&common::shipped_catalog())
            .await
            .expect("install");
        let scheduler =
            Scheduler::new(service.clone(), SchedulerOptions::default()).expect("scheduler");

        // December: one item, closed without "letto, approvato e sottoscritto".
        let first = start_assemblea(
            &service,
            json!({
                "organo": "Assemblea dei Sindaci",
                "ordine_del_giorno": ["Piano di Zona 2027"],
                "luogo": "Sala consiliare",
                "data_seduta": "2026-12-15T17:00:00+01:00",
            }),
        )
        .await;
        convene_and_open(&service, &clock, &first, "2026-12-15T17:00:00+01:00").await;
        approve_item(&service, &first, 0).await;
        clock.set(common::at("2026-12-15T18:00:00+01:00"));
        service
            .fire(
                &first,
                &cmd("chiudi_seduta", json!({ "verbalizzante": "Paolo Galli" })),
                None,
            )
            .await
            .expect("chiudi");

        // January: the first item approves December's verbale.
        clock.set(common::at("2027-01-02T09:00:00+01:00"));
        let second = start_assemblea(
            &service,
            json!({
                "organo": "Assemblea dei Sindaci",
                "ordine_del_giorno": ["Approvazione del verbale della seduta del 15/12/2026", "Bilancio sociale"],
                "luogo": "Sala consiliare",
                "data_seduta": "2027-01-12T17:00:00+01:00",
                "verbale_precedente": first,
            }),
        )
        .await;
        convene_and_open(&service, &clock, &second, "2027-01-12T17:00:00+01:00").await;
        // The second item approved first: it approves no verbale.
        approve_item(&service, &second, 1).await;
        scheduler.tick().await.expect("tick");
        let before = store.instance(&first).await.expect("load").expect("first");
        assert_eq!(
            before
                .data
                .meeting
                .as_ref()
                .and_then(|m| m.approval.as_ref()),
            None,
            "[{backend}] only the first item approves the previous verbale"
        );
        approve_item(&service, &second, 0).await;
        scheduler.tick().await.expect("tick");
        scheduler.tick().await.expect("tick again: nothing more");
        let after = store.instance(&first).await.expect("load").expect("first");
        let approval = after
            .data
            .meeting
            .as_ref()
            .and_then(|m| m.approval.clone())
            .unwrap_or_else(|| panic!("[{backend}] not approved: {:#?}", after.data.meeting));
        assert_eq!(approval.by_instance, second, "[{backend}]");
        assert_eq!(approval.date, "12/01/2027", "[{backend}]");
        assert_eq!(approval.item, 1, "[{backend}]");
        assert_eq!(approval.body, "assemblea_sindaci", "[{backend}]");
        let history = store.history(&first).await.expect("history");
        assert_eq!(
            history
                .iter()
                .filter(|h| h.event == meeting::EVENT_APPROVED)
                .count(),
            1,
            "[{backend}] recorded once"
        );

        // Another session may not approve it again, nor a session of another body.
        for (body, by, expected) in [
            (
                "assemblea_sindaci",
                "un'altra-seduta",
                "già stato approvato",
            ),
            ("tavolo_tecnico", "tavolo-1", "già stato approvato"),
        ] {
            let again = meeting::VerbaleApproval {
                body: body.into(),
                by_instance: by.into(),
                date: "20/01/2027".into(),
                item: 1,
                at: clock.now(),
            };
            let refused = service
                .record_step(&first, &ufficio(), &json!({}), None, |p, row, now| {
                    meeting::approve_verbale(p, &row.snapshot(), again.clone(), now)
                })
                .await
                .expect_err("refused");
            assert!(
                refused.to_string().contains(expected),
                "[{backend}] {refused}"
            );
        }
        // A verbale not yet approved, offered by a session of the Tavolo Tecnico: refused.
        let other = meeting::VerbaleApproval {
            body: "tavolo_tecnico".into(),
            by_instance: "tavolo-1".into(),
            date: "20/01/2027".into(),
            item: 1,
            at: clock.now(),
        };
        clock.set(common::at("2027-01-12T18:30:00+01:00"));
        service
            .fire(
                &second,
                &cmd("chiudi_seduta", json!({ "verbalizzante": "Paolo Galli" })),
                None,
            )
            .await
            .expect("chiudi");
        let refused = service
            .record_step(&second, &ufficio(), &json!({}), None, |p, row, now| {
                meeting::approve_verbale(p, &row.snapshot(), other.clone(), now)
            })
            .await
            .expect_err("another body");
        assert!(
            refused.to_string().contains("stesso organo"),
            "[{backend}] {refused}"
        );
    }
}
