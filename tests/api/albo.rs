//! The albo's acts with their registration and documents, the FAQ, the hand-over to the ente
//! capofila's albo, and every public page walked against the API's authorization policy.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use procedo::api::policy::{self, Caller, InstanceFacts, Subject};
use procedo::identity::Role;
use procedo::scheduler::{Options, Outcome, Scheduler};
use procedo::store::SubmissionFilter;
use serde_json::{Value, json};

use crate::common;
use crate::helpers::{TestApp, Upload, sha256, spawn_apps};

/// Carries out the protocollo's outbox rows (the registrations the steps asked for).
pub(crate) async fn run_protocollo(app: &TestApp) {
    let protocollo = app.state.protocollo().expect("protocollo").clone();
    let dir = tempfile::tempdir().expect("mail dir");
    let mail = procedo::notify::MailSettings::new(
        procedo::notify::Templates::builtin().expect("templates"),
        procedo::notify::Transport::files(dir.path().join("mail")),
    );
    let scheduler = procedo::protocollo::install(
        Scheduler::new(
            protocollo.service().clone(),
            Options {
                worker_id: "albo".into(),
                cron: Vec::new(),
                ..Options::default()
            },
        )
        .expect("scheduler"),
        &protocollo,
        &mail,
    );
    while scheduler.tick().await.expect("tick") != Outcome::Idle {}
}

async fn json_at(app: &TestApp, path: &str) -> Value {
    let response = app.get(path, None).await;
    assert_eq!(response.status(), 200, "[{}] {path}", app.backend);
    response.json().await.expect("JSON")
}

/// An avviso published (its registration carried out), an application of the first ETS with
/// a private document, a question of the second ETS answered privately and one answered for
/// everyone (FAQ). Returns the avviso's id.
async fn avviso_with_private_and_public_facts(app: &TestApp) -> String {
    let avviso = app.published_avviso().await;
    run_protocollo(app).await;
    app.clock.set(common::at("2026-12-01T10:00:00+01:00"));
    let response = app
        .submit(
            &app.tokens.ets_a,
            &avviso,
            &[Upload {
                name: "proposta-riservata-aurora.pdf",
                media_type: "application/pdf",
                content: b"%PDF-1.7 proposta RISERVATA di Aurora",
            }],
        )
        .await;
    assert!(response.get("errors").is_none(), "{response:#}");
    let ask =
        "mutation($id: ID!, $text: String!) { askQuestion(instanceId: $id, text: $text) { id } }";
    let answer = "mutation($id: ID!, $answer: String!, $public: Boolean!) { answerQuestion(id: $id, answer: $answer, public: $public) { id } }";
    let private_q = app
        .ok(
            &app.tokens.ets_b,
            ask,
            json!({ "id": avviso, "text": "Domanda privata di Borea sul nostro bilancio 2025" }),
        )
        .await["askQuestion"]["id"]
        .clone();
    let public_q = app
        .ok(
            &app.tokens.ets_b,
            ask,
            json!({ "id": avviso, "text": "Il cronoprogramma va in un file separato?" }),
        )
        .await["askQuestion"]["id"]
        .clone();
    app.clock.set(common::at("2026-12-02T10:00:00+01:00"));
    app.ok(
        &app.tokens.rup,
        answer,
        json!({ "id": private_q, "answer": "Risposta riservata sul bilancio di Borea", "public": false }),
    )
    .await;
    app.ok(
        &app.tokens.rup,
        answer,
        json!({ "id": public_q, "answer": "Sì, un PDF separato.", "public": true }),
    )
    .await;
    run_protocollo(app).await;
    avviso
}

/// The avviso at the albo carries its protocol number and its documents; each document is
/// downloadable by anyone and its bytes have the SHA-256 shown; the FAQ is at the albo with
/// the avviso until its deadline, without the asker; nothing else is downloadable.
#[tokio::test]
async fn an_act_at_the_albo_carries_its_protocol_number_documents_and_faq() {
    for app in spawn_apps().await {
        let backend = app.backend.clone();
        let avviso = avviso_with_private_and_public_facts(&app).await;
        app.clock.set(common::at("2026-12-10T10:00:00+01:00"));
        let acts = json_at(&app, "/albo.json").await;
        let act = acts
            .as_array()
            .and_then(|a| a.iter().find(|a| a["id"] == format!("{avviso}:avviso")))
            .unwrap_or_else(|| panic!("[{backend}] {acts:#}"))
            .clone();
        assert_eq!(act["protocollo"]["registro"], "protocollo", "[{backend}]");
        assert_eq!(act["protocollo"]["data"], "2026-11-26", "[{backend}]");
        let numero = act["protocollo"]["numero"].as_str().expect("numero");
        assert!(
            numero.len() == 7 && numero.bytes().all(|b| b.is_ascii_digit()),
            "[{backend}] {numero}"
        );
        let documents = act["documents"].as_array().expect("documents");
        let names: Vec<&str> = documents
            .iter()
            .filter_map(|d| d["name"].as_str())
            .collect();
        assert_eq!(
            names,
            ["avviso_pubblico.html", "avviso_pubblico.pdf"],
            "[{backend}]"
        );
        for doc in documents {
            let sha = doc["sha256"].as_str().expect("sha256");
            let response = app.get(&format!("/albo/documenti/{sha}"), None).await;
            assert_eq!(response.status(), 200, "[{backend}] {doc}");
            let bytes = response.bytes().await.expect("bytes");
            assert_eq!(sha256(&bytes), sha, "[{backend}] the bytes are the act's");
            assert_eq!(doc["size"], bytes.len(), "[{backend}]");
        }
        // The page shows the number and each document's impronta.
        let page = app.get("/albo", None).await.text().await.expect("page");
        assert!(
            page.contains(&format!("Protocollo n. {numero} del 26/11/2026")),
            "[{backend}] {page}"
        );
        for doc in documents {
            assert!(
                page.contains(doc["sha256"].as_str().expect("sha")),
                "[{backend}]"
            );
        }
        // The FAQ: question and answer, from the day of the answer to the avviso's last day.
        let faq = acts
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|a| a["id"] == format!("{avviso}:avviso-faq-1"))
            })
            .unwrap_or_else(|| panic!("[{backend}] {acts:#}"));
        assert_eq!(faq["from"], "2026-12-02", "[{backend}]");
        assert_eq!(faq["until"], "2026-12-28", "[{backend}]");
        let text = faq["text"].as_str().expect("text");
        assert!(
            text.contains("cronoprogramma") && text.contains("un PDF separato"),
            "[{backend}] {text}"
        );
        assert!(
            !acts.to_string().contains("Borea") && !acts.to_string().contains("bilancio"),
            "[{backend}] neither the asker nor the private answer: {acts}"
        );
        // The application's document is not the albo's, whatever its hash.
        let private = app
            .state
            .service()
            .store()
            .submissions(&SubmissionFilter {
                instance_id: Some(avviso.clone()),
                ..SubmissionFilter::default()
            })
            .await
            .expect("submissions");
        let docs = app
            .state
            .service()
            .store()
            .submission_documents(&private[0].id)
            .await
            .expect("documents");
        let response = app
            .get(&format!("/albo/documenti/{}", docs[0].sha256), None)
            .await;
        assert_eq!(response.status(), 404, "[{backend}]");
        for bad in ["zzz", "../../etc/passwd", &"0".repeat(64)] {
            let response = app.get(&format!("/albo/documenti/{bad}"), None).await;
            assert_eq!(response.status(), 404, "[{backend}] {bad}");
        }
        // After the deadline the act and its documents leave the albo; Amministrazione
        // trasparente keeps the avviso (not the FAQ) and its documents.
        app.clock.set(common::at("2026-12-29T09:00:00+01:00"));
        let after = json_at(&app, "/albo.json").await;
        assert!(!after.to_string().contains(&avviso), "[{backend}] {after}");
        let kept = json_at(&app, "/trasparente.json").await;
        assert!(
            kept.to_string().contains(&format!("{avviso}:avviso\"")),
            "[{backend}] {kept}"
        );
        assert!(!kept.to_string().contains("faq"), "[{backend}] {kept}");
        let sha = documents[0]["sha256"].as_str().expect("sha");
        let response = app.get(&format!("/albo/documenti/{sha}"), None).await;
        assert_eq!(response.status(), 200, "[{backend}] still in trasparente");
    }
}

/// What a test capofila albo received, and whether it accepts.
#[derive(Default)]
struct Capofila {
    received: Mutex<Vec<(String, usize)>>,
    refuse: std::sync::atomic::AtomicBool,
}

async fn capofila(capofila: Arc<Capofila>) -> String {
    let app = axum::Router::new().route(
        "/atti",
        axum::routing::post(
            move |headers: HeaderMap, body: axum::body::Bytes| async move {
                if capofila.refuse.load(std::sync::atomic::Ordering::SeqCst) {
                    return (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "albo in manutenzione".to_owned(),
                    );
                }
                let key = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let mut received = capofila.received.lock().expect("lock");
                received.push((key, body.len()));
                (
                    StatusCode::OK,
                    format!("registro albo capofila n. {}/2026", received.len()),
                )
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = format!("http://{}/atti", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

/// Every act goes to the capofila's albo over HTTP with its documents, once per version: a
/// second run sends nothing, a refused hand-over is retried at the next run, a proroga sends
/// the act again; the referto names the capofila's receipt.
#[tokio::test]
async fn acts_are_handed_to_the_capofila_albo_once_per_version() {
    for app in spawn_apps().await {
        let backend = app.backend.clone();
        let avviso = avviso_with_private_and_public_facts(&app).await;
        let receiver = Arc::new(Capofila::default());
        let url = capofila(receiver.clone()).await;
        let protocollo = app
            .state
            .protocollo()
            .expect("protocollo")
            .clone()
            .with_albo(Arc::new(
                procedo::albo::capofila::HttpAlbo::new(
                    &url,
                    None,
                    std::time::Duration::from_secs(5),
                )
                .expect("client"),
            ));
        let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 3).expect("day");
        receiver
            .refuse
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let handed = procedo::albo::capofila::hand_over_pending(&protocollo, today)
            .await
            .expect("run");
        assert_eq!(handed, 0, "[{backend}] refused: nothing recorded");
        receiver
            .refuse
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let handed = procedo::albo::capofila::hand_over_pending(&protocollo, today)
            .await
            .expect("run");
        assert_eq!(handed, 2, "[{backend}] the avviso and its FAQ");
        {
            let received = receiver.received.lock().expect("lock");
            let keys: Vec<&str> = received.iter().map(|(k, _)| k.as_str()).collect();
            assert!(
                keys.iter()
                    .any(|k| k.starts_with(&format!("{avviso}:avviso:"))),
                "[{backend}] {keys:?}"
            );
            // The avviso's PDF/A travels with it.
            assert!(received.iter().any(|(_, len)| *len > 10_000), "[{backend}]");
        }
        let again = procedo::albo::capofila::hand_over_pending(&protocollo, today)
            .await
            .expect("run");
        assert_eq!(again, 0, "[{backend}] once per version");
        // A proroga moves the window: the capofila receives the act again.
        app.clock.set(common::at("2026-12-18T12:30:00+01:00"));
        app.ok(
            &app.tokens.rup,
            "mutation($id: ID!) { fire(instanceId: $id, event: \"proroga\", input: {nuova_scadenza: \"2027-01-11T12:00:00+01:00\", atto_proroga: \"determina n. 112 del 18/12/2026\"}) { instance { state { id } } } }",
            json!({ "id": avviso }),
        )
        .await;
        let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 18).expect("day");
        let moved = procedo::albo::capofila::hand_over_pending(&protocollo, today)
            .await
            .expect("run");
        assert_eq!(moved, 2, "[{backend}] the avviso and its FAQ, new window");
        let handovers = app
            .state
            .service()
            .store()
            .albo_handovers(&avviso)
            .await
            .expect("handovers");
        assert_eq!(handovers.len(), 4, "[{backend}] append-only");
        assert!(
            handovers
                .iter()
                .all(|h| h.receipt.starts_with("registro albo capofila n.")),
            "[{backend}]"
        );
        // The referto, after the window, names the capofila's last receipt.
        app.clock.set(common::at("2027-01-12T00:10:00+01:00"));
        let day = chrono::NaiveDate::from_ymd_opt(2027, 1, 12).expect("day");
        let written = procedo::albo::referti(&protocollo, day)
            .await
            .expect("referti");
        assert_eq!(written, 2, "[{backend}] the avviso's and the FAQ's");
        let referto = app
            .state
            .service()
            .store()
            .protocol_by_key(&format!("referto:{avviso}:avviso"))
            .await
            .expect("store")
            .expect("referto");
        let text = protocollo
            .files()
            .get(&referto.documents[0].sha256)
            .await
            .expect("file")
            .expect("content");
        let text = String::from_utf8(text).expect("utf-8");
        assert!(
            text.contains("Consegnato all'albo dell'ente capofila")
                && text.contains("registro albo capofila n. 3/2026")
                && text.contains("Atto pubblicato: Protocollo n."),
            "[{backend}] {text}"
        );
    }
}

/// Every public page (albo, trasparente, their JSON and Atom, every document they link) is
/// walked and checked against the policy the API applies to a caller with no standing — an
/// ETS of no procedure: no value of a variable it may not read, no question it may not
/// read, no submission, no person.
#[tokio::test]
async fn no_public_page_shows_what_the_policy_refuses_to_an_outsider() {
    for app in spawn_apps().await {
        let backend = app.backend.clone();
        let avviso = avviso_with_private_and_public_facts(&app).await;
        // A private variable with a value one can look for.
        app.ok(
            &app.tokens.rup,
            "mutation($id: ID!) { fire(instanceId: $id, event: \"proroga\", input: {nuova_scadenza: \"2027-01-11T12:00:00+01:00\", atto_proroga: \"determina n. 112 del 18/12/2026\"}) { instance { state { id } } } }",
            json!({ "id": avviso }),
        )
        .await;
        app.clock.set(common::at("2026-12-20T10:00:00+01:00"));
        let mut pages = Vec::new();
        for path in [
            "/albo",
            "/albo.json",
            "/albo.atom",
            "/trasparente",
            "/trasparente.json",
        ] {
            let response = app.get(path, None).await;
            assert_eq!(response.status(), 200, "[{backend}] {path}");
            pages.push((path.to_owned(), response.text().await.expect("text")));
        }
        // Every document the pages link, fetched as anyone would.
        let links: Vec<String> = pages
            .iter()
            .flat_map(|(_, body)| {
                body.match_indices("/albo/documenti/")
                    .map(|(at, _)| body[at..at + 16 + 64].to_owned())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(!links.is_empty(), "[{backend}] documents are linked");
        for link in links {
            let response = app.get(&link, None).await;
            assert_eq!(response.status(), 200, "[{backend}] {link}");
            let body = String::from_utf8_lossy(&response.bytes().await.expect("bytes")).to_string();
            pages.push((link, body));
        }

        let outsider = Caller {
            person_id: "nessuno".into(),
            person_name: "Nessuno".into(),
            organisation_id: "ets-nessuno".into(),
            organisation_name: "Ente di nessuna procedura".into(),
            role: Role::Ets,
            token_id: "t".into(),
        };
        let service = app.state.service();
        let row = service
            .store()
            .instance(&avviso)
            .await
            .expect("store")
            .expect("avviso");
        let procedure = service
            .procedure(&row.definition_id, Some(row.definition_version))
            .await
            .expect("procedure");
        let facts = InstanceFacts {
            procedure: &procedure,
            row: &row,
            submitted: false,
        };
        let mut refused = Vec::new();
        for (name, variable) in &procedure.variables {
            let Some(value) = row.data.variables.get(name.as_str()) else {
                continue;
            };
            if !policy::allows(&outsider, &Subject::Variable(facts, variable))
                && let Some(text) = value.as_str().filter(|t| t.len() >= 6)
            {
                refused.push((format!("variabile {name}"), text.to_owned()));
            }
        }
        for q in service.store().questions(&avviso).await.expect("questions") {
            if !policy::allows(&outsider, &Subject::Question(&q)) {
                refused.push(("quesito".into(), q.text.clone()));
                if let Some(answer) = &q.answer {
                    refused.push(("risposta".into(), answer.clone()));
                }
            }
        }
        for s in service
            .store()
            .submissions(&SubmissionFilter {
                instance_id: Some(avviso.clone()),
                ..SubmissionFilter::default()
            })
            .await
            .expect("submissions")
        {
            assert!(
                !policy::allows(&outsider, &Subject::Submission(&s)),
                "[{backend}]"
            );
            refused.push(("domanda".into(), s.id.clone()));
            for doc in service
                .store()
                .submission_documents(&s.id)
                .await
                .expect("documents")
            {
                refused.push(("documento della domanda".into(), doc.name.clone()));
                refused.push(("impronta della domanda".into(), doc.sha256.clone()));
            }
        }
        // People and the ETS that took part: never on a public page.
        for person in [
            "luca.bianchi",
            "sara.neri",
            "Cooperativa sociale Aurora",
            "Associazione Borea",
            "@example.org",
        ] {
            refused.push(("persona o ente".into(), person.to_owned()));
        }
        assert!(
            refused.iter().any(|(what, _)| what.starts_with("quesito")),
            "[{backend}] the walk has something private to look for"
        );
        for (path, body) in &pages {
            for (what, value) in &refused {
                assert!(
                    !body.contains(value.as_str()),
                    "[{backend}] {path} shows {what}: «{value}»"
                );
            }
        }
        // The staff pages stay closed to anyone without a staff token.
        for (path, token) in [
            (format!("/report/{avviso}"), None),
            (format!("/report/{avviso}"), Some(app.tokens.ets_a.as_str())),
        ] {
            let response = app.get(&path, token).await;
            assert!(
                response.status() == 401 || response.status() == 404,
                "[{backend}] {path}: {}",
                response.status()
            );
        }
    }
}
