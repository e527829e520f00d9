//! Each ETS's application in its own lifecycle, end to end on SQLite and PostgreSQL: three ETS
//! (one the capofila of a group) apply to the shipped avviso through the GraphQL API; the
//! real scheduler fires the deadlines on a moved clock; the emails are read at a real SMTP
//! receiver on loopback. A soccorso to one ETS reaches it alone, with its own term, reminder
//! and expiry; each esito carries that ETS's outcome, motivazione and the challenge rule, and
//! the API shows its own computed challenge date; the admission cannot close while an
//! application is undecided; an avviso nobody answers ends deserted.

mod common;

mod smtp_receiver;

use std::sync::Arc;

use mail_parser::MessageParser;
use procedo::api::{self, ApiState, Limits};
use procedo::catalog;
use procedo::clock::{Clock, ManualClock};
use procedo::identity;
use procedo::notify::delivery::{self, DeliveryOptions, DeliveryWorker, MailSettings};
use procedo::notify::{SmtpSettings, Transport};
use procedo::scheduler::{Options, Outcome, Scheduler};
use procedo::service::Service;
use procedo::store::{NewOrganisation, NewPerson, NewToken, OrganisationKind, Store};
use serde_json::{Value, json};
use smtp_receiver::Receiver;
use tokio::sync::oneshot;

const START: &str = "2026-11-26T09:00:00+01:00";
const FROM: &str = "Ufficio di Piano <udp@ambito.example.it>";
const AMBITO: &str = "Ambito territoriale 7";

/// The referenti of the three ETS and the address each receives at.
const AURORA: &str = "luca.bianchi@aurora.example.org";
const BOREA: &str = "sara.neri@borea.example.org";
const CONSORZIO: &str = "elena.marchetti@consorzio.example.org";
const RUP: &str = "maria.rossi@ambito.example.it";

struct Tokens {
    rup: String,
    commissione: String,
    /// Two more members of the commissione.
    giulia: String,
    anna: String,
    aurora: String,
    borea: String,
    consorzio: String,
}

/// The API, the scheduler and the delivery worker over one database, with a manual clock and
/// an SMTP receiver.
struct World {
    backend: String,
    address: String,
    clock: ManualClock,
    scheduler: Scheduler,
    worker: DeliveryWorker,
    receiver: Receiver,
    tokens: Tokens,
    client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    store: Store,
    _scratch: common::Scratch,
    _files: tempfile::TempDir,
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
    }
}

async fn worlds() -> Vec<World> {
    let mut out = Vec::new();
    for (backend, store, scratch) in common::scratch_stores().await {
        out.push(World::build(backend, store, scratch).await);
    }
    out
}

impl World {
    /// Accesso agli atti: staff export the whole history, with a SHA-256 that anyone can
    /// recompute; an ETS gets its own application in full and the others' content omitted
    /// with the reason, whatever organisation it asks for.
    async fn the_history_exports_for_access(&self, avviso: &str) {
        let backend = &self.backend;
        const EXPORT: &str = "query($id: ID!, $org: ID) { historyExport(instanceId: $id, forOrganisation: $org) { json html sha256 } }";
        let full = self
            .ok(&self.tokens.rup, EXPORT, json!({ "id": avviso }))
            .await;
        let full = &full["historyExport"];
        assert!(
            procedo::export::verify(&full["json"]),
            "[{backend}] the digest holds"
        );
        assert_eq!(full["json"]["impronta"], full["sha256"], "[{backend}]");
        assert!(
            !full.to_string().contains(procedo::export::OMITTED),
            "[{backend}] staff read all"
        );
        let events = full["json"]["eventi"].as_array().expect("events").len();
        let history = self.store.history(avviso).await.expect("history");
        assert_eq!(events, history.len(), "[{backend}] every event");
        assert!(
            full["json"]["termini"]
                .to_string()
                .contains("scadenza_domande"),
            "[{backend}] the terms with their traces"
        );
        assert!(
            full["html"]
                .as_str()
                .is_some_and(|h| h.contains("Storico della pratica"))
        );
        // Tampering shows.
        let mut forged = full["json"].clone();
        forged["istanza"]["stato"] = json!("altro");
        assert!(!procedo::export::verify(&forged), "[{backend}]");

        // An ETS: its own application, the others omitted; asking for another changes nothing.
        for asked in [None, Some("ets-borea")] {
            let mine = self
                .ok(
                    &self.tokens.aurora,
                    EXPORT,
                    json!({ "id": avviso, "org": asked }),
                )
                .await;
            let mine = &mine["historyExport"]["json"];
            assert!(procedo::export::verify(mine), "[{backend}]");
            assert_eq!(
                mine["destinatario_dell_esportazione"]["terzo"], "ets-aurora",
                "[{backend}]"
            );
            let parts = mine["partecipanti"].as_array().expect("participants");
            let own = parts
                .iter()
                .find(|p| p["ente"].as_str().is_some_and(|e| e.contains("Aurora")))
                .expect("own application");
            assert!(
                own.get("omesso").is_none() && own.get("variabili").is_some(),
                "[{backend}] {own:#}"
            );
            let others: Vec<&Value> = parts.iter().filter(|p| *p != own).collect();
            assert!(!others.is_empty(), "[{backend}]");
            for other in others {
                assert_eq!(
                    other["omesso"],
                    procedo::export::OMITTED,
                    "[{backend}] {other:#}"
                );
                assert!(other.get("variabili").is_none(), "[{backend}]");
            }
            let text = mine.to_string();
            assert!(
                !text.contains(BOREA) && !text.contains(CONSORZIO),
                "[{backend}] no other party's address"
            );
            assert!(
                mine["eventi"]
                    .as_array()
                    .is_some_and(|e| e.iter().all(|x| x["attore"].is_null())),
                "[{backend}] a third party reads roles, not people"
            );
        }
        // The staff export for a third party is the same as that party's own.
        let for_aurora = self
            .ok(
                &self.tokens.rup,
                EXPORT,
                json!({ "id": avviso, "org": "ets-aurora" }),
            )
            .await;
        assert_eq!(
            for_aurora["historyExport"]["json"]["partecipanti"],
            self.ok(&self.tokens.aurora, EXPORT, json!({ "id": avviso }))
                .await["historyExport"]["json"]["partecipanti"],
            "[{backend}]"
        );
    }
    /// The commissione's verbale is registered with a PDF/A copy to sign: staff download it,
    /// an independent reader (poppler's pdftotext) finds the verbale's text in it, qpdf finds
    /// no structural error, and an ETS cannot download it.
    async fn the_verbale_pdfa_reads_back(&self, avviso: &str) {
        let backend = &self.backend;
        let list = self
            .ok(
                &self.tokens.rup,
                "query($id: ID!) { protocolRegistrations(instanceId: $id) { subject documents { name mediaType sha256 } } }",
                json!({ "id": avviso }),
            )
            .await;
        let verbale = list["protocolRegistrations"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| {
                r["subject"]
                    .as_str()
                    .is_some_and(|s| s.contains("Verbale della seduta n. 1"))
            })
            .unwrap_or_else(|| panic!("[{backend}] {list:#}"));
        let pdf = verbale["documents"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["mediaType"] == "application/pdf")
            .unwrap_or_else(|| panic!("[{backend}] no PDF/A: {verbale:#}"));
        assert_eq!(pdf["name"], "verbale_commissione.pdf", "[{backend}]");
        let url = format!(
            "{}/protocollo/{avviso}/{}",
            self.address,
            pdf["sha256"].as_str().unwrap_or_default()
        );
        let refused = self
            .client
            .get(&url)
            .bearer_auth(&self.tokens.aurora)
            .send()
            .await
            .expect("GET as an ETS");
        assert_eq!(refused.status(), 404, "[{backend}] an ETS reads no verbale");
        let response = self
            .client
            .get(&url)
            .bearer_auth(&self.tokens.rup)
            .send()
            .await
            .expect("GET as the RUP");
        assert_eq!(response.status(), 200, "[{backend}]");
        let bytes = response.bytes().await.expect("body").to_vec();
        assert!(bytes.starts_with(b"%PDF-1.4"), "[{backend}]");
        let raw = String::from_utf8_lossy(&bytes);
        assert!(raw.contains("<pdfaid:part>1</pdfaid:part>"), "[{backend}]");
        assert!(raw.contains("/GTS_PDFA1"), "[{backend}]");
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("verbale.pdf");
        std::fs::write(&file, &bytes).expect("write PDF");
        let text = std::process::Command::new("pdftotext")
            .args(["-enc", "UTF-8"])
            .arg(&file)
            .arg("-")
            .output()
            .expect("pdftotext (poppler-utils, installed by scripts/test)");
        assert!(text.status.success(), "[{backend}] pdftotext failed");
        // Lines wrap where the page ends: compare word by word.
        let text = String::from_utf8_lossy(&text.stdout)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        for expected in [
            "VERBALE DELLA SEDUTA N. 1 DELLA COMMISSIONE DI VALUTAZIONE",
            "Presenti:",
            "Punteggi attribuiti nella seduta:",
            "conflitti di interesse",
        ] {
            assert!(
                text.contains(expected),
                "[{backend}] «{expected}» not in:\n{text}"
            );
        }
        let check = std::process::Command::new("qpdf")
            .arg("--check")
            .arg(&file)
            .output()
            .expect("qpdf (installed by scripts/test)");
        assert!(
            check.status.success(),
            "[{backend}] {}",
            String::from_utf8_lossy(&check.stdout)
        );
    }
    async fn build(backend: String, store: Store, scratch: common::Scratch) -> World {
        let clock = ManualClock::new(common::at(START));
        let service = Service::new(store.clone(), Arc::new(clock.clone()));
        let (catalog, diags) = catalog::load(&[std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/workflows"
        ))]);
        assert!(diags.is_empty(), "{diags:?}");
        let catalog = catalog.expect("catalog");
        service.install(&catalog).await.expect("install");
        let tokens = seed(&store, clock.now()).await;

        let receiver = Receiver::start(&[]);
        let transport = Transport::smtp(&SmtpSettings {
            rate: None,
            url: format!("smtp://127.0.0.1:{}?tls=none", receiver.port),
            from: FROM.to_owned(),
            timeout: Some(std::time::Duration::from_secs(10)),
        })
        .expect("SMTP transport");
        let mut mail = MailSettings::new(catalog.templates, transport);
        mail.from = FROM.to_owned();
        mail.ambito = AMBITO.to_owned();
        mail.delivery = DeliveryOptions {
            worker_id: "postino".to_owned(),
            poll_interval: std::time::Duration::from_millis(10),
            heartbeat: None,
            ..DeliveryOptions::default()
        };
        let files = tempfile::tempdir().expect("files dir");
        let mut settings = procedo::protocollo::Settings::local(AMBITO);
        settings.files_dir = files.path().join("files");
        settings.conservation_dir = files.path().join("conservazione");
        let protocollo =
            procedo::protocollo::Protocollo::new(service.clone(), &settings).expect("protocollo");
        let scheduler = procedo::protocollo::install(
            delivery::install(
                Scheduler::new(
                    service.clone(),
                    Options {
                        worker_id: "pianificatore".to_owned(),
                        ..Options::default()
                    },
                )
                .expect("scheduler"),
                &mail,
            ),
            &protocollo,
            &mail,
        );
        let worker = DeliveryWorker::new(
            store.clone(),
            mail.transport.clone(),
            mail.delivery.clone(),
            Arc::new(clock.clone()),
        );
        let state = ApiState::new(service, Limits::default()).with_protocollo(protocollo);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = format!("http://{}", listener.local_addr().expect("address"));
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(api::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        World {
            backend,
            address,
            clock,
            scheduler,
            worker,
            receiver,
            tokens,
            client: reqwest::Client::new(),
            shutdown: Some(shutdown),
            store,
            _scratch: scratch,
            _files: files,
        }
    }

    /// Ticks the scheduler until idle and the worker until nothing is due, at the clock's
    /// instant.
    async fn settle(&self) {
        for _ in 0..100 {
            for _ in 0..1000 {
                if self.scheduler.tick().await.expect("scheduler tick") == Outcome::Idle {
                    break;
                }
            }
            if self.worker.tick().await.expect("delivery tick") == 0 {
                return;
            }
        }
        panic!("{}: never settled", self.backend);
    }

    async fn gql(&self, token: &str, query: &str, variables: Value) -> Value {
        self.client
            .post(format!("{}/graphql", self.address))
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("JSON response")
    }

    async fn ok(&self, token: &str, query: &str, variables: Value) -> Value {
        let response = self.gql(token, query, variables).await;
        assert!(
            response.get("errors").is_none(),
            "[{}] unexpected errors: {response:#}",
            self.backend
        );
        response["data"].clone()
    }

    /// Starts and publishes an avviso on 27/11/2026 (deadline 28/12/2026 12:00).
    async fn published_avviso(&self) -> String {
        let data = self
            .ok(
                &self.tokens.rup,
                "mutation { startInstance(procedureId: \"avviso_coprogettazione\", variables: {oggetto: \"Servizi per la disabilità\"}) { instance { id } } }",
                json!({}),
            )
            .await;
        let id = data["startInstance"]["instance"]["id"]
            .as_str()
            .expect("id")
            .to_owned();
        self.ok(
            &self.tokens.rup,
            "mutation($id: ID!) { fire(instanceId: $id, event: \"pubblica\", input: {data_pubblicazione: \"2026-11-27\", atto_criteri: \"determina n. 12 del 26/11/2026\"}) { seq } }",
            json!({ "id": id }),
        )
        .await;
        self.settle().await;
        id
    }

    async fn apply(&self, token: &str, avviso: &str, members: &[&str]) -> String {
        let data = self
            .ok(
                token,
                "mutation($id: ID!, $members: [String!]!) { submitApplication(instanceId: $id, note: \"Proposta\", members: $members) { id participant { state { id } } } }",
                json!({ "id": avviso, "members": members }),
            )
            .await;
        assert_eq!(
            data["submitApplication"]["participant"]["state"]["id"], "ricevuta",
            "[{}] {data}",
            self.backend
        );
        data["submitApplication"]["id"]
            .as_str()
            .expect("id")
            .to_owned()
    }

    async fn fire_on(&self, token: &str, submission: &str, event: &str, input: Value) -> Value {
        self.gql(
            token,
            "mutation($id: ID!, $event: String!, $input: JSON) { fireOnSubmission(submissionId: $id, event: $event, input: $input) { seq submission { participant { state { id } } } } }",
            json!({ "id": submission, "event": event, "input": input }),
        )
        .await
    }

    /// Names the commissione (as the RUP): `(person, role)`.
    async fn appoint(&self, avviso: &str, members: &[(&str, &str)]) -> Value {
        let members: Vec<Value> = members
            .iter()
            .map(|(person, role)| json!({ "personId": person, "role": role }))
            .collect();
        self.ok(
            &self.tokens.rup,
            "mutation($id: ID!, $members: [CommissionerInput!]!) { appointCommission(instanceId: $id, members: $members, act: \"determina n. 3 del 29/12/2026\") { seq } }",
            json!({ "id": avviso, "members": members }),
        )
        .await
    }

    /// A member declares no conflict and no conviction.
    async fn declare(&self, token: &str, avviso: &str) -> Value {
        self.ok(
            token,
            "mutation($id: ID!) { fileDeclaration(instanceId: $id, conflict: false, conviction: false) { seq } }",
            json!({ "id": avviso }),
        )
        .await
    }

    /// A member scores a proposal on the shipped avviso's four leaves (obiettivi, metodologia,
    /// esperienza, risorse), each with a motivazione.
    async fn score(&self, token: &str, submission: &str, points: [f64; 4]) -> Value {
        let scores: Vec<Value> = ["obiettivi", "metodologia", "esperienza", "risorse"]
            .iter()
            .zip(points)
            .map(|(criterion, points)| {
                json!({ "criterion": criterion, "points": points, "motivazione": format!("{criterion}: valutato {points}") })
            })
            .collect();
        self.gql(
            token,
            "mutation($id: ID!, $scores: [ScoreEntry!]!) { scoreProposal(submissionId: $id, scores: $scores) { seq } }",
            json!({ "id": submission, "scores": scores }),
        )
        .await
    }

    /// The participant of a submission as `token` reads it: state and variables by name.
    async fn participant(&self, token: &str, submission: &str) -> Value {
        let data = self
            .ok(
                token,
                "query($id: ID!) { submission(id: $id) { participant { state { id } members variables { name value term { expiry trace } } availableEvents { event } history { event participantTo } } } }",
                json!({ "id": submission }),
            )
            .await;
        data["submission"]["participant"].clone()
    }

    /// The messages the receiver got for `address`: (subject, text).
    fn inbox(&self, address: &str) -> Vec<(String, String)> {
        self.receiver
            .messages()
            .iter()
            .filter(|m| m.recipients.iter().any(|r| r == address))
            .map(|m| {
                let parsed = MessageParser::default()
                    .parse(&m.raw)
                    .expect("a parsable message");
                (
                    parsed.subject().unwrap_or_default().to_owned(),
                    parsed.body_text(0).unwrap_or_default().into_owned(),
                )
            })
            .collect()
    }
}

fn variable<'a>(participant: &'a Value, name: &str) -> &'a Value {
    participant["variables"]
        .as_array()
        .expect("variables")
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no variable {name} in {participant}"))
}

fn code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("")
}

async fn seed(store: &Store, now: chrono::DateTime<chrono::Utc>) -> Tokens {
    for (id, name, kind) in [
        ("ambito-7", AMBITO, OrganisationKind::Ambito),
        (
            "ets-aurora",
            "Cooperativa sociale Aurora",
            OrganisationKind::Ets,
        ),
        ("ets-borea", "Associazione Borea", OrganisationKind::Ets),
        (
            "ets-consorzio",
            "Consorzio Solidale Valle Verde",
            OrganisationKind::Ets,
        ),
    ] {
        store
            .add_organisation(&NewOrganisation {
                id: id.into(),
                name: name.into(),
                kind,
                codice_fiscale: None,
                runts: None,
                pec: None,
                at: now,
            })
            .await
            .expect("organisation");
    }
    for (id, email, org, roles) in [
        ("maria.rossi", RUP, "ambito-7", vec!["rup", "commissione"]),
        (
            "giulia.conti",
            "giulia.conti@ambito.example.it",
            "ambito-7",
            vec!["commissione"],
        ),
        (
            "anna.galli",
            "anna.galli@ambito.example.it",
            "ambito-7",
            vec!["commissione"],
        ),
        ("luca.bianchi", AURORA, "ets-aurora", vec!["ets"]),
        ("sara.neri", BOREA, "ets-borea", vec!["ets"]),
        ("elena.marchetti", CONSORZIO, "ets-consorzio", vec!["ets"]),
    ] {
        store
            .add_person(&NewPerson {
                id: id.into(),
                name: id.replace('.', " "),
                email: email.into(),
                organisation_id: org.into(),
                roles: roles.into_iter().map(String::from).collect(),
                digest: "immediato".into(),
                at: now,
            })
            .await
            .expect("person");
    }
    let token = |person: &'static str, role: &'static str| async move {
        let secret = identity::new_secret();
        store
            .add_token(&NewToken {
                id: identity::new_token_id(),
                person_id: person.into(),
                role: role.into(),
                hash: secret.hash,
                at: now,
                expires_at: None,
            })
            .await
            .expect("token");
        secret.secret
    };
    Tokens {
        rup: token("maria.rossi", "rup").await,
        commissione: token("maria.rossi", "commissione").await,
        giulia: token("giulia.conti", "commissione").await,
        anna: token("anna.galli", "commissione").await,
        aurora: token("luca.bianchi", "ets").await,
        borea: token("sara.neri", "ets").await,
        consorzio: token("elena.marchetti", "ets").await,
    }
}

#[tokio::test]
async fn three_ets_each_live_their_own_application() {
    for world in worlds().await {
        let backend = world.backend.clone();
        let avviso = world.published_avviso().await;
        // Everyone heard of the avviso; nothing else yet.
        for address in [AURORA, BOREA, CONSORZIO] {
            assert_eq!(world.inbox(address).len(), 1, "[{backend}] {address}");
        }

        world.clock.set(common::at("2026-12-10T10:00:00+01:00"));
        let a = world.apply(&world.tokens.aurora, &avviso, &[]).await;
        let b = world.apply(&world.tokens.borea, &avviso, &[]).await;
        let c = world
            .apply(
                &world.tokens.consorzio,
                &avviso,
                &[
                    "Cooperativa Sociale Arcobaleno",
                    "Associazione Auser Borgo Fiorito",
                ],
            )
            .await;
        let own = world.participant(&world.tokens.consorzio, &c).await;
        assert_eq!(
            own["members"],
            json!([
                "Cooperativa Sociale Arcobaleno",
                "Associazione Auser Borgo Fiorito"
            ]),
            "[{backend}]"
        );

        // The deadline passes: the scheduler closes the submissions; three applications.
        world.clock.set(common::at("2026-12-28T12:00:01+01:00"));
        world.settle().await;
        let state = world
            .ok(
                &world.tokens.rup,
                "query($id: ID!) { instance(id: $id) { state { id } } }",
                json!({ "id": avviso }),
            )
            .await;
        assert_eq!(
            state["instance"]["state"]["id"], "istruttoria",
            "[{backend}]"
        );

        // A soccorso to Borea alone.
        let before: Vec<usize> = [AURORA, BOREA, CONSORZIO]
            .iter()
            .map(|a| world.inbox(a).len())
            .collect();
        let refused = world
            .fire_on(
                &world.tokens.aurora,
                &b,
                "richiedi_soccorso",
                json!({ "documenti_mancanti": ["DURC"] }),
            )
            .await;
        assert_eq!(code(&refused), "NOT_FOUND", "[{backend}] {refused:#}");
        let done = world
            .fire_on(
                &world.tokens.rup,
                &b,
                "richiedi_soccorso",
                json!({ "documenti_mancanti": ["DURC in corso di validità", "Statuto"] }),
            )
            .await;
        assert!(done.get("errors").is_none(), "[{backend}] {done:#}");
        world.settle().await;
        let borea_mail = world.inbox(BOREA);
        assert_eq!(borea_mail.len(), before[1] + 1, "[{backend}]");
        let (subject, text) = borea_mail.last().expect("soccorso");
        assert!(
            subject.contains("Richiesta di integrazioni"),
            "[{backend}] {subject}"
        );
        assert!(
            text.contains("DURC in corso di validità"),
            "[{backend}] {text}"
        );
        assert!(text.contains("Associazione Borea"), "[{backend}] {text}");
        assert!(
            text.contains("prot. n."),
            "[{backend}] cites its registration: {text}"
        );
        assert_eq!(
            world.inbox(AURORA).len(),
            before[0],
            "[{backend}] Aurora got nothing"
        );
        assert_eq!(
            world.inbox(CONSORZIO).len(),
            before[2],
            "[{backend}] nor the consorzio"
        );

        // The others cannot read it: not the application, not its history, not the letter.
        for (token, who) in [
            (&world.tokens.aurora, "aurora"),
            (&world.tokens.consorzio, "consorzio"),
        ] {
            let theirs = world
                .gql(
                    token,
                    "query($id: ID!) { submission(id: $id) { participant { state { id } } } }",
                    json!({ "id": b }),
                )
                .await;
            assert_eq!(code(&theirs), "NOT_FOUND", "[{backend}] {who}: {theirs:#}");
            let history = world
                .ok(
                    token,
                    "query($id: ID!) { instance(id: $id) { history { event participantId } } }",
                    json!({ "id": avviso }),
                )
                .await;
            let events: Vec<&str> = history["instance"]["history"]
                .as_array()
                .expect("history")
                .iter()
                .filter_map(|h| h["event"].as_str())
                .collect();
            assert!(
                !events.contains(&"richiedi_soccorso"),
                "[{backend}] {who}: {events:?}"
            );
            let letters = world
                .ok(
                    token,
                    "query($id: ID!) { protocolRegistrations(instanceId: $id) { subject } }",
                    json!({ "id": avviso }),
                )
                .await;
            assert!(
                !letters.to_string().contains("soccorso"),
                "[{backend}] {who}: {letters}"
            );
            // Nor answer it.
            let answer = world
                .gql(
                    token,
                    "mutation($id: ID!) { respondToSoccorso(submissionId: $id, note: \"DURC\") { id } }",
                    json!({ "id": b }),
                )
                .await;
            assert_eq!(code(&answer), "NOT_FOUND", "[{backend}] {who}: {answer:#}");
        }
        // Aurora has no soccorso to answer.
        let none = world
            .gql(
                &world.tokens.aurora,
                "mutation($id: ID!) { respondToSoccorso(submissionId: $id, note: \"?\") { id } }",
                json!({ "id": a }),
            )
            .await;
        assert_eq!(code(&none), "CONFLICT", "[{backend}] {none:#}");

        // Borea's term, with its trace, is Borea's alone; so are its timers.
        let borea = world.participant(&world.tokens.borea, &b).await;
        assert_eq!(borea["state"]["id"], "in_soccorso", "[{backend}]");
        let term = variable(&borea, "termine_integrazione");
        assert_eq!(term["value"], "2027-01-07T12:00:00+01:00", "[{backend}]");
        assert!(
            !term["term"]["trace"].as_array().expect("trace").is_empty(),
            "[{backend}]"
        );
        assert!(
            borea["availableEvents"]
                .as_array()
                .expect("events")
                .iter()
                .any(|e| e["event"] == "integra"),
            "[{backend}] {borea}"
        );
        let aurora = world.participant(&world.tokens.aurora, &a).await;
        assert_eq!(
            variable(&aurora, "termine_integrazione")["value"],
            Value::Null,
            "[{backend}]"
        );
        let timers = world
            .store
            .timers_between(
                common::at("2026-12-28T00:00:00Z"),
                common::at("2027-12-31T00:00:00Z"),
                Some(&avviso),
            )
            .await
            .expect("timers");
        let keys: Vec<&str> = timers.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(
            keys.iter().filter(|k| k.contains("soccorso")).count(),
            2,
            "[{backend}] {keys:?}"
        );
        assert!(
            keys.iter()
                .filter(|k| k.contains("soccorso"))
                .all(|k| k.starts_with(&format!("{b}/"))),
            "[{backend}] {keys:?}"
        );

        // Its reminder two days before reaches Borea alone.
        world.clock.set(common::at("2027-01-05T12:00:00+01:00"));
        world.settle().await;
        let reminder = world.inbox(BOREA);
        assert_eq!(reminder.len(), before[1] + 2, "[{backend}]");
        assert!(
            reminder.last().expect("reminder").0.contains("Promemoria"),
            "[{backend}] {reminder:?}"
        );
        assert_eq!(world.inbox(AURORA).len(), before[0], "[{backend}]");
        assert_eq!(world.inbox(CONSORZIO).len(), before[2], "[{backend}]");

        // Its expiry: Borea's application is back in istruttoria, flagged; a late answer is
        // refused.
        world.clock.set(common::at("2027-01-07T12:00:01+01:00"));
        world.settle().await;
        let borea = world.participant(&world.tokens.borea, &b).await;
        assert_eq!(borea["state"]["id"], "ricevuta", "[{backend}]");
        assert_eq!(variable(&borea, "soccorso_scaduto")["value"], true);
        let late = world
            .gql(
                &world.tokens.borea,
                "mutation($id: ID!) { respondToSoccorso(submissionId: $id, note: \"DURC\") { id } }",
                json!({ "id": b }),
            )
            .await;
        assert_eq!(code(&late), "CONFLICT", "[{backend}] {late:#}");
        let history: Vec<String> = borea["history"]
            .as_array()
            .expect("history")
            .iter()
            .map(|h| h["event"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(
            history,
            [
                "presentazione",
                "richiedi_soccorso",
                "soccorso_non_riscontrato"
            ],
            "[{backend}]"
        );

        // The admission cannot close while an application is undecided.
        let ammetti = "mutation($id: ID!) { fire(instanceId: $id, event: \"ammetti\") { seq } }";
        let early = world
            .gql(&world.tokens.rup, ammetti, json!({ "id": avviso }))
            .await;
        assert_eq!(code(&early), "BAD_USER_INPUT", "[{backend}] {early:#}");
        assert!(
            early.to_string().contains("ancora da decidere"),
            "[{backend}] {early:#}"
        );
        world.clock.set(common::at("2027-01-11T10:00:00+01:00"));
        // No admission before the self-declarations are checked.
        let unchecked = world
            .fire_on(
                &world.tokens.rup,
                &a,
                "decidi_ammissione",
                json!({ "esito": "ammessa", "requisiti_verificati": false }),
            )
            .await;
        assert_eq!(
            code(&unchecked),
            "BAD_USER_INPUT",
            "[{backend}] {unchecked:#}"
        );
        assert!(
            unchecked.to_string().contains("art. 71"),
            "[{backend}] {unchecked:#}"
        );
        for (id, input) in [
            (
                &a,
                json!({ "esito": "ammessa", "requisiti_verificati": true }),
            ),
            (
                &b,
                json!({ "esito": "ammessa", "requisiti_verificati": true }),
            ),
        ] {
            let decided = world
                .fire_on(&world.tokens.rup, id, "decidi_ammissione", input)
                .await;
            assert!(decided.get("errors").is_none(), "[{backend}] {decided:#}");
        }
        let early = world
            .gql(&world.tokens.rup, ammetti, json!({ "id": avviso }))
            .await;
        assert_eq!(
            code(&early),
            "BAD_USER_INPUT",
            "[{backend}] one still undecided"
        );
        // An exclusion without its motivazione is refused, naming the field.
        let bare = world
            .fire_on(
                &world.tokens.rup,
                &c,
                "decidi_ammissione",
                json!({ "esito": "esclusa" }),
            )
            .await;
        assert_eq!(code(&bare), "BAD_USER_INPUT", "[{backend}] {bare:#}");
        assert!(
            bare.to_string().contains("motivazione"),
            "[{backend}] {bare:#}"
        );
        let motivazione = "un componente del raggruppamento non è iscritto al RUNTS";
        let excluded = world
            .fire_on(
                &world.tokens.rup,
                &c,
                "decidi_ammissione",
                json!({ "esito": "esclusa", "motivazione": motivazione }),
            )
            .await;
        assert!(excluded.get("errors").is_none(), "[{backend}] {excluded:#}");
        world.settle().await;

        // Each esito carries that ETS's own outcome, motivazione and the challenge rule.
        let esito = |address: &str| {
            let mail: Vec<(String, String)> = world
                .inbox(address)
                .into_iter()
                .filter(|(subject, _)| subject.contains("Esito dell'istruttoria"))
                .collect();
            assert_eq!(mail.len(), 1, "[{backend}] {address}: {mail:?}");
            mail[0].1.clone()
        };
        for (address, own, other) in [
            (AURORA, "esito: ammessa", "esclusa"),
            (BOREA, "esito: ammessa", "esclusa"),
            (CONSORZIO, "esito: esclusa", "esito: ammessa"),
        ] {
            let text = esito(address);
            assert!(text.contains(own), "[{backend}] {address}: {text}");
            assert!(!text.contains(other), "[{backend}] {address}: {text}");
            assert!(
                text.contains("60 giorni dalla comunicazione"),
                "[{backend}] {address}: {text}"
            );
            assert!(text.contains("art. 3, comma 4, L. 241/1990"), "[{backend}]");
            assert!(text.contains("prot. n."), "[{backend}] {address}: {text}");
            assert_eq!(
                text.contains(motivazione),
                address == CONSORZIO,
                "[{backend}] {address}: the motivazione is the consorzio's alone"
            );
        }
        // The group's esito reaches its capofila and names the members.
        let group = esito(CONSORZIO);
        assert!(
            group.contains("Associazione Auser Borgo Fiorito"),
            "[{backend}] {group}"
        );

        // The API shows each ETS its own challenge date, with its trace.
        for (token, id) in [(&world.tokens.consorzio, &c), (&world.tokens.aurora, &a)] {
            let mine = world.participant(token, id).await;
            let challenge = variable(&mine, "termine_ricorso");
            // 11/01/2027 + 60 days = 12/03/2027, a Friday.
            assert_eq!(challenge["value"], "2027-03-12", "[{backend}] {mine}");
            assert!(
                !challenge["term"]["trace"]
                    .as_array()
                    .expect("trace")
                    .is_empty(),
                "[{backend}]"
            );
        }

        // Now the admission closes; the commission scores; the consorzio is out.
        world
            .ok(&world.tokens.rup, ammetti, json!({ "id": avviso }))
            .await;
        world
            .appoint(&avviso, &[("maria.rossi", "PRESIDENTE")])
            .await;
        world.declare(&world.tokens.commissione, &avviso).await;
        world
            .score(&world.tokens.commissione, &a, [17.0, 18.5, 25.0, 26.0])
            .await;
        let scored = world
            .fire_on(&world.tokens.commissione, &a, "valuta", json!({}))
            .await;
        assert!(scored.get("errors").is_none(), "[{backend}] {scored:#}");
        let out = world
            .fire_on(&world.tokens.commissione, &c, "valuta", json!({}))
            .await;
        assert_eq!(
            code(&out),
            "BAD_USER_INPUT",
            "[{backend}] an excluded application: {out:#}"
        );
        // The outcome is a step of the application, not a free field.
        let free = world
            .gql(
                &world.tokens.rup,
                "mutation($id: ID!) { recordOutcome(submissionId: $id, outcome: \"ammesso\", score: 99) { id } }",
                json!({ "id": a }),
            )
            .await;
        assert_eq!(code(&free), "BAD_USER_INPUT", "[{backend}] {free:#}");
        // The RUP was told nothing about the ETS's mail; only staff notices reach it: the
        // soccorso Borea left unanswered, once, naming Borea and nobody else's data.
        let rup = world.inbox(RUP);
        assert_eq!(rup.len(), 1, "[{backend}] {rup:#?}");
        assert!(
            rup[0].0.starts_with("Soccorso istruttorio senza risposta"),
            "[{backend}] {rup:#?}"
        );
        assert!(rup[0].1.contains("Borea"), "[{backend}] {}", rup[0].1);
    }
}

#[tokio::test]
async fn an_avviso_nobody_answers_ends_deserted() {
    for world in worlds().await {
        let backend = world.backend.clone();
        let avviso = world.published_avviso().await;
        world.clock.set(common::at("2026-12-28T12:00:01+01:00"));
        world.settle().await;
        let data = world
            .ok(
                &world.tokens.rup,
                "query($id: ID!) { instance(id: $id) { state { id isFinal } history { event toState actorRole } } }",
                json!({ "id": avviso }),
            )
            .await;
        assert_eq!(
            data["instance"]["state"]["id"], "deserto",
            "[{backend}] {data}"
        );
        assert_eq!(data["instance"]["state"]["isFinal"], true);
        let last = data["instance"]["history"]
            .as_array()
            .and_then(|h| h.last().cloned())
            .expect("history");
        assert_eq!(last["event"], "chiudi_domande");
        assert_eq!(last["actorRole"], "system");
        // A late application is refused.
        let late = world
            .gql(
                &world.tokens.aurora,
                "mutation($id: ID!) { submitApplication(instanceId: $id) { id } }",
                json!({ "id": avviso }),
            )
            .await;
        assert!(late.get("errors").is_some(), "[{backend}] {late:#}");
    }
}

/// An avviso started on the version before participants keeps working when the new one is
/// installed: its steps, its submissions and its messages, rendered by today's templates.
#[tokio::test]
async fn an_avviso_of_the_previous_version_runs_on_with_todays_templates() {
    let source = include_str!("fixtures/avviso_coprogettazione_v2.yaml");
    for world in worlds().await {
        let backend = world.backend.clone();
        let assets = json!({});
        world
            .store
            .save_definition(&procedo::store::NewDefinition {
                id: "avviso_coprogettazione".into(),
                version: 2,
                title: "Avviso pubblico di co-progettazione (versione 2)".into(),
                content_hash: procedo::definition::content_hash(source, &assets.to_string()),
                source: source.into(),
                assets,
                loaded_at: world.clock.now(),
            })
            .await
            .expect("the previous version is stored");
        let data = world
            .ok(
                &world.tokens.rup,
                "mutation { startInstance(procedureId: \"avviso_coprogettazione\", version: 2, variables: {oggetto: \"Servizi\"}) { instance { id definitionVersion } } }",
                json!({}),
            )
            .await;
        assert_eq!(data["startInstance"]["instance"]["definitionVersion"], 2);
        let avviso = data["startInstance"]["instance"]["id"]
            .as_str()
            .expect("id")
            .to_owned();
        let fire = "mutation($id: ID!, $event: String!, $input: JSON) { fire(instanceId: $id, event: $event, input: $input) { instance { state { id } } } }";
        world
            .ok(
                &world.tokens.rup,
                fire,
                json!({ "id": avviso, "event": "pubblica", "input": { "data_pubblicazione": "2026-11-27" } }),
            )
            .await;
        world.settle().await;
        world.clock.set(common::at("2026-12-10T10:00:00+01:00"));
        for token in [&world.tokens.aurora, &world.tokens.borea] {
            let submitted = world
                .ok(
                    token,
                    "mutation($id: ID!) { submitApplication(instanceId: $id) { id participant { state { id } } } }",
                    json!({ "id": avviso }),
                )
                .await;
            // No per-application lifecycle in that version.
            assert_eq!(
                submitted["submitApplication"]["participant"],
                Value::Null,
                "[{backend}]"
            );
        }
        world.clock.set(common::at("2026-12-28T12:00:01+01:00"));
        world.settle().await;
        for (event, input) in [
            (
                "richiedi_soccorso",
                json!({ "documenti_mancanti": ["DURC"] }),
            ),
            ("integrazioni_ricevute", json!({})),
            ("ammetti", json!({ "ammessi": ["ets-aurora", "ets-borea"] })),
            (
                "approva_graduatoria",
                json!({ "data_graduatoria": "2027-01-15", "esito": "ammesso" }),
            ),
        ] {
            world
                .ok(
                    &world.tokens.rup,
                    fire,
                    json!({ "id": avviso, "event": event, "input": input }),
                )
                .await;
            world.settle().await;
        }
        // As that version did: the soccorso and the esito to both applicants; every message
        // rendered and delivered.
        for address in [AURORA, BOREA] {
            let subjects: Vec<String> = world.inbox(address).into_iter().map(|m| m.0).collect();
            assert!(
                subjects
                    .iter()
                    .any(|s| s.contains("Richiesta di integrazioni")),
                "[{backend}] {address}: {subjects:?}"
            );
            assert!(
                subjects
                    .iter()
                    .any(|s| s.contains("Esito dell'istruttoria")),
                "[{backend}] {address}: {subjects:?}"
            );
        }
        let failed = world
            .store
            .deliveries(&procedo::store::DeliveryFilter {
                status: Some(procedo::store::DeliveryStatus::Failed),
                ..procedo::store::DeliveryFilter::default()
            })
            .await
            .expect("deliveries");
        assert!(failed.is_empty(), "[{backend}] {failed:#?}");
    }
}

#[tokio::test]
async fn an_ets_learns_nothing_of_the_others_from_counters_deadlines_or_events() {
    for world in worlds().await {
        let backend = world.backend.clone();
        let avviso = world.published_avviso().await;
        world.clock.set(common::at("2026-12-10T10:00:00+01:00"));

        // Submitting and withdrawing over and over is capped per organisation and notice.
        for round in 0..procedo::engine::step::MAX_WITHDRAWN {
            let id = world.apply(&world.tokens.aurora, &avviso, &[]).await;
            let withdrawn = world
                .gql(
                    &world.tokens.aurora,
                    "mutation($id: ID!) { withdrawSubmission(id: $id) { id } }",
                    json!({ "id": id }),
                )
                .await;
            assert!(
                withdrawn.get("errors").is_none(),
                "[{backend}] round {round}: {withdrawn:#}"
            );
        }
        let again = world
            .gql(
                &world.tokens.aurora,
                "mutation($id: ID!) { submitApplication(instanceId: $id, note: \"Ancora\") { id } }",
                json!({ "id": avviso }),
            )
            .await;
        assert_eq!(code(&again), "CONFLICT", "[{backend}] {again:#}");
        assert!(
            again.to_string().contains("ha già ritirato"),
            "[{backend}] {again:#}"
        );

        let b = world.apply(&world.tokens.borea, &avviso, &[]).await;
        let c = world.apply(&world.tokens.consorzio, &avviso, &[]).await;
        world.clock.set(common::at("2026-12-28T12:00:01+01:00"));
        world.settle().await;
        let done = world
            .fire_on(
                &world.tokens.rup,
                &b,
                "richiedi_soccorso",
                json!({ "documenti_mancanti": ["Statuto"] }),
            )
            .await;
        assert!(done.get("errors").is_none(), "[{backend}] {done:#}");
        world.settle().await;

        // Borea may not answer by firing the answer event bare: the answer carries its note.
        let bare = world
            .fire_on(&world.tokens.borea, &b, "integra", json!({}))
            .await;
        assert_eq!(code(&bare), "BAD_USER_INPUT", "[{backend}] {bare:#}");
        assert!(
            bare.to_string().contains("respondToSoccorso"),
            "[{backend}] {bare:#}"
        );

        let query = "query($id: ID!) { instance(id: $id) { version history { seq participantId } deadlines { variable participantId } } }";
        let staff = world
            .ok(&world.tokens.rup, query, json!({ "id": avviso }))
            .await;
        assert!(
            staff["instance"]["version"].as_i64().is_some(),
            "[{backend}]"
        );
        assert!(
            staff["instance"]["deadlines"]
                .as_array()
                .expect("deadlines")
                .iter()
                .any(|d| d["participantId"] == b.as_str()),
            "[{backend}] staff see Borea's term: {staff:#}"
        );
        for (token, own, who) in [
            (&world.tokens.consorzio, &c, "consorzio"),
            (&world.tokens.borea, &b, "borea"),
        ] {
            let seen = world.ok(token, query, json!({ "id": avviso })).await;
            let instance = &seen["instance"];
            // The version would count every application's steps.
            assert_eq!(instance["version"], Value::Null, "[{backend}] {who}");
            // History seq numbers are dense over what it may read: no gaps to count.
            let seqs: Vec<i64> = instance["history"]
                .as_array()
                .expect("history")
                .iter()
                .filter_map(|h| h["seq"].as_i64())
                .collect();
            let dense: Vec<i64> = (1..=seqs.len() as i64).collect();
            assert_eq!(seqs, dense, "[{backend}] {who}");
            for row in instance["history"].as_array().expect("history") {
                assert!(
                    row["participantId"].is_null() || row["participantId"] == own.as_str(),
                    "[{backend}] {who} reads another application's step: {row}"
                );
            }
            // Deadlines: the procedure's, and its own application's only.
            let deadlines = instance["deadlines"].as_array().expect("deadlines");
            for deadline in deadlines {
                assert!(
                    deadline["participantId"].is_null()
                        || deadline["participantId"] == own.as_str(),
                    "[{backend}] {who}: {deadline}"
                );
            }
            let owns_term = deadlines.iter().any(|d| {
                d["participantId"] == own.as_str() && d["variable"] == "termine_integrazione"
            });
            assert_eq!(
                owns_term,
                who == "borea",
                "[{backend}] {who}: {deadlines:?}"
            );
            // The calendar of what is coming, across instances, the same.
            let upcoming = world
                .ok(
                    token,
                    "query($from: DateTime!, $to: DateTime!) { upcomingDeadlines(from: $from, to: $to) { variable participantId } }",
                    json!({ "from": "2026-12-28T00:00:00Z", "to": "2027-06-30T00:00:00Z" }),
                )
                .await;
            let upcoming = upcoming["upcomingDeadlines"].as_array().expect("upcoming");
            assert!(
                upcoming
                    .iter()
                    .all(|d| d["participantId"].is_null() || d["participantId"] == own.as_str()),
                "[{backend}] {who}: {upcoming:?}"
            );
            assert_eq!(
                upcoming
                    .iter()
                    .any(|d| d["variable"] == "termine_integrazione"),
                who == "borea",
                "[{backend}] {who}: {upcoming:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_commissione_scores_against_the_avvisos_criteria_and_the_graduatoria_freezes() {
    let fire = "mutation($id: ID!, $event: String!, $input: JSON) { fire(instanceId: $id, event: $event, input: $input) { seq } }";
    let evaluation_query = "query($id: ID!) { instance(id: $id) { evaluation { criteria { id max sub { id max } } total threshold tieRule act applicants { name } commission { members { personId status replacedBy replaces } } proposals { submissionId total complete eligible rank criteria { criterion points scores { by points motivazione } } } approval { number } } } }";
    let rectify = "mutation($id: ID!, $criteria: [CriterionInput!]!) { rectifyCriteria(instanceId: $id, criteria: $criteria, threshold: 60, act: \"determina n. 20 del 10/12/2026\", reason: \"chiarimento sui sottocriteri\") { seq } }";
    let criteria = json!([
        { "id": "qualita", "title": "Qualità della proposta progettuale", "max": 40, "sub": [
            { "id": "obiettivi", "title": "Coerenza con gli obiettivi del Piano di Zona", "max": 20 },
            { "id": "metodologia", "title": "Metodologia e organizzazione delle attività", "max": 20 } ] },
        { "id": "esperienza", "title": "Esperienza nei servizi del territorio", "max": 30 },
        { "id": "risorse", "title": "Risorse aggiuntive e co-finanziamento", "max": 30 }
    ]);
    for world in worlds().await {
        let backend = world.backend.clone();
        let avviso = world.published_avviso().await;

        // The criteria are the avviso's, fixed at publication with their act: public.
        let seen = world
            .ok(
                &world.tokens.aurora,
                evaluation_query,
                json!({ "id": avviso }),
            )
            .await;
        let ev = &seen["instance"]["evaluation"];
        assert_eq!(ev["total"], 100.0, "[{backend}] {ev}");
        assert_eq!(ev["threshold"], 60.0, "[{backend}]");
        assert_eq!(ev["act"], "determina n. 12 del 26/11/2026", "[{backend}]");
        let maxima: Vec<f64> = ev["criteria"]
            .as_array()
            .expect("criteria")
            .iter()
            .filter_map(|c| c["max"].as_f64())
            .collect();
        assert_eq!(maxima, vec![40.0, 30.0, 30.0], "[{backend}]");
        assert_eq!(
            ev["tieRule"],
            json!(["qualita", "esperienza", "presentazione"])
        );

        // A rettifica before the deadline is published to every ETS; sums are checked.
        let wrong = json!([{ "id": "qualita", "title": "Qualità", "max": 40, "sub": [
            { "id": "obiettivi", "title": "Obiettivi", "max": 25 },
            { "id": "metodologia", "title": "Metodo", "max": 20 } ] },
            { "id": "esperienza", "title": "Esperienza", "max": 30 },
            { "id": "risorse", "title": "Risorse", "max": 30 }]);
        let refused = world
            .gql(
                &world.tokens.rup,
                rectify,
                json!({ "id": avviso, "criteria": wrong }),
            )
            .await;
        assert_eq!(code(&refused), "BAD_USER_INPUT", "[{backend}] {refused:#}");
        assert!(
            refused
                .to_string()
                .contains("sottocriteri di 'qualita' sommano 45"),
            "[{backend}] {refused:#}"
        );
        world
            .ok(
                &world.tokens.rup,
                rectify,
                json!({ "id": avviso, "criteria": criteria }),
            )
            .await;
        world.settle().await;
        assert!(
            world
                .inbox(CONSORZIO)
                .iter()
                .any(|(subject, _)| subject.contains("Rettifica dei criteri")),
            "[{backend}] the rettifica is published"
        );

        // The commissione is never named before the deadline.
        let early = world
            .gql(
                &world.tokens.rup,
                "mutation($id: ID!) { appointCommission(instanceId: $id, members: [{personId: \"maria.rossi\", role: PRESIDENTE}], act: \"determina n. 1\") { seq } }",
                json!({ "id": avviso }),
            )
            .await;
        assert_eq!(code(&early), "BAD_USER_INPUT", "[{backend}] {early:#}");
        assert!(
            early.to_string().contains("dopo la scadenza"),
            "[{backend}] {early:#}"
        );

        world.clock.set(common::at("2026-12-10T10:00:00+01:00"));
        let a = world.apply(&world.tokens.aurora, &avviso, &[]).await;
        world.clock.set(common::at("2026-12-11T10:00:00+01:00"));
        let b = world.apply(&world.tokens.borea, &avviso, &[]).await;
        let c = world.apply(&world.tokens.consorzio, &avviso, &[]).await;
        world.clock.set(common::at("2026-12-28T12:00:01+01:00"));
        world.settle().await;

        // After the deadline the criteria no longer change.
        let late = world
            .gql(
                &world.tokens.rup,
                rectify,
                json!({ "id": avviso, "criteria": criteria }),
            )
            .await;
        assert_eq!(code(&late), "BAD_USER_INPUT", "[{backend}] {late:#}");
        assert!(
            late.to_string().contains("prima della scadenza"),
            "[{backend}] {late:#}"
        );

        for id in [&a, &b, &c] {
            let decided = world
                .fire_on(
                    &world.tokens.rup,
                    id,
                    "decidi_ammissione",
                    json!({ "esito": "ammessa", "requisiti_verificati": true }),
                )
                .await;
            assert!(decided.get("errors").is_none(), "[{backend}] {decided:#}");
        }
        world
            .ok(
                &world.tokens.rup,
                fire,
                json!({ "id": avviso, "event": "ammetti" }),
            )
            .await;
        world
            .appoint(
                &avviso,
                &[
                    ("maria.rossi", "PRESIDENTE"),
                    ("giulia.conti", "COMPONENTE"),
                ],
            )
            .await;

        // Giulia has not declared: she reads the applicants' names, no proposal.
        let hers = world
            .ok(
                &world.tokens.giulia,
                evaluation_query,
                json!({ "id": avviso }),
            )
            .await;
        let names: Vec<&str> = hers["instance"]["evaluation"]["applicants"]
            .as_array()
            .expect("applicants")
            .iter()
            .filter_map(|o| o["name"].as_str())
            .collect();
        assert_eq!(names.len(), 3, "[{backend}] {names:?}");
        assert!(
            names.contains(&"Associazione Borea"),
            "[{backend}] {names:?}"
        );
        assert_eq!(hers["instance"]["evaluation"]["proposals"], json!([]));
        let proposal = world
            .gql(
                &world.tokens.giulia,
                "query($id: ID!) { submission(id: $id) { note participant { state { id } } } }",
                json!({ "id": a }),
            )
            .await;
        assert_eq!(code(&proposal), "NOT_FOUND", "[{backend}] {proposal:#}");
        let undeclared = world
            .score(&world.tokens.giulia, &a, [10.0, 10.0, 10.0, 10.0])
            .await;
        assert_eq!(code(&undeclared), "NOT_FOUND", "[{backend}] {undeclared:#}");

        // She declares a conflict: she abstains and is replaced; the record shows it.
        world
            .ok(
                &world.tokens.giulia,
                "mutation($id: ID!) { fileDeclaration(instanceId: $id, conflict: true, conviction: false, note: \"Socia di Associazione Borea\") { seq } }",
                json!({ "id": avviso }),
            )
            .await;
        world
            .ok(
                &world.tokens.rup,
                "mutation($id: ID!) { replaceCommissioner(instanceId: $id, personId: \"giulia.conti\", replacement: \"anna.galli\", act: \"determina n. 4 del 30/12/2026\") { seq } }",
                json!({ "id": avviso }),
            )
            .await;
        world.declare(&world.tokens.commissione, &avviso).await;
        world.declare(&world.tokens.anna, &avviso).await;
        let record = world
            .ok(&world.tokens.rup, evaluation_query, json!({ "id": avviso }))
            .await;
        let members = &record["instance"]["evaluation"]["commission"]["members"];
        assert_eq!(
            members,
            &json!([
                { "personId": "maria.rossi", "status": "ACTIVE", "replacedBy": null, "replaces": null },
                { "personId": "giulia.conti", "status": "REPLACED", "replacedBy": "anna.galli", "replaces": null },
                { "personId": "anna.galli", "status": "ACTIVE", "replacedBy": null, "replaces": "giulia.conti" },
            ]),
            "[{backend}]"
        );
        let abstained = world
            .score(&world.tokens.giulia, &a, [10.0, 10.0, 10.0, 10.0])
            .await;
        assert_eq!(code(&abstained), "NOT_FOUND", "[{backend}] {abstained:#}");

        // Two members score. Aurora: means 17.5 + 16.5 + 24.5 + 20.5 = 79. Borea: 79 too,
        // with 38 on qualità against Aurora's 34: Borea first by the tie rule. The consorzio:
        // 45, under the threshold.
        for (token, id, points) in [
            (&world.tokens.commissione, &a, [18.0, 16.0, 25.0, 20.0]),
            (&world.tokens.anna, &a, [17.0, 17.0, 24.0, 21.0]),
            (&world.tokens.commissione, &b, [20.0, 18.0, 21.0, 20.0]),
            (&world.tokens.anna, &b, [20.0, 18.0, 21.0, 20.0]),
            (&world.tokens.commissione, &c, [10.0, 10.0, 15.0, 10.0]),
            (&world.tokens.anna, &c, [10.0, 10.0, 15.0, 10.0]),
        ] {
            let given = world.score(token, id, points).await;
            assert!(given.get("errors").is_none(), "[{backend}] {given:#}");
        }
        // Out of range and unmotivated scores are refused, naming why.
        let over = world
            .score(&world.tokens.anna, &a, [21.0, 17.0, 24.0, 21.0])
            .await;
        assert!(
            over.to_string().contains("va da 0 a 20"),
            "[{backend}] {over:#}"
        );

        // No ETS reads any score before the approval.
        let before = world
            .ok(
                &world.tokens.aurora,
                evaluation_query,
                json!({ "id": avviso }),
            )
            .await;
        assert_eq!(before["instance"]["evaluation"]["proposals"], json!([]));
        let own = world.participant(&world.tokens.aurora, &a).await;
        assert!(
            !own.to_string().contains("\"punteggio\""),
            "[{backend}] {own}"
        );

        // A session's verbale is registered.
        world
            .ok(
                &world.tokens.commissione,
                "mutation($id: ID!) { closeCommissionSession(instanceId: $id, date: \"2026-12-30\", note: \"La seduta si chiude alle 13:00.\") { seq } }",
                json!({ "id": avviso }),
            )
            .await;
        for id in [&a, &b, &c] {
            let closed = world
                .fire_on(&world.tokens.commissione, id, "valuta", json!({}))
                .await;
            assert!(closed.get("errors").is_none(), "[{backend}] {closed:#}");
        }
        assert_eq!(
            world.participant(&world.tokens.rup, &c).await["state"]["id"],
            "non_idonea",
            "[{backend}]"
        );
        world
            .ok(
                &world.tokens.rup,
                fire,
                json!({ "id": avviso, "event": "approva_graduatoria", "input": { "numero_determina_graduatoria": "88", "data_graduatoria": "2027-01-11" } }),
            )
            .await;
        world.settle().await;
        let registrations = world
            .ok(
                &world.tokens.rup,
                "query($id: ID!) { protocolRegistrations(instanceId: $id) { subject } }",
                json!({ "id": avviso }),
            )
            .await
            .to_string();
        assert!(
            registrations.contains("Verbale della seduta n. 1"),
            "[{backend}] {registrations}"
        );
        world.the_verbale_pdfa_reads_back(&avviso).await;
        world.the_history_exports_for_access(&avviso).await;

        // Frozen.
        let frozen = world
            .score(&world.tokens.anna, &a, [20.0, 20.0, 30.0, 30.0])
            .await;
        assert_eq!(code(&frozen), "CONFLICT", "[{backend}] {frozen:#}");
        assert!(
            frozen.to_string().contains("determina n. 88"),
            "[{backend}] {frozen:#}"
        );
        let record = world
            .ok(&world.tokens.rup, evaluation_query, json!({ "id": avviso }))
            .await;
        let proposals = record["instance"]["evaluation"]["proposals"]
            .as_array()
            .expect("proposals")
            .clone();
        let of = |id: &str| {
            proposals
                .iter()
                .find(|p| p["submissionId"] == id)
                .cloned()
                .expect("proposal")
        };
        assert_eq!(of(&a)["total"], 79.0, "[{backend}]");
        assert_eq!(of(&b)["total"], 79.0, "[{backend}]");
        assert_eq!(of(&b)["rank"], 1, "[{backend}] the tie rule");
        assert_eq!(of(&a)["rank"], 2, "[{backend}]");
        assert_eq!(
            of(&c)["rank"],
            Value::Null,
            "[{backend}] under the threshold"
        );
        assert_eq!(of(&c)["eligible"], false, "[{backend}]");

        // Then an ETS reads its own scores (without who gave them) and the public ranking.
        let after = world
            .ok(
                &world.tokens.aurora,
                evaluation_query,
                json!({ "id": avviso }),
            )
            .await;
        let mine = after["instance"]["evaluation"]["proposals"]
            .as_array()
            .expect("proposals");
        assert_eq!(mine.len(), 1, "[{backend}] {mine:?}");
        assert_eq!(mine[0]["submissionId"], a.as_str());
        assert_eq!(mine[0]["rank"], 2);
        assert!(
            mine[0].to_string().contains("\"by\":null"),
            "[{backend}] {mine:?}"
        );
        let ranking = world
            .ok(
                &world.tokens.aurora,
                "query($id: ID!) { ranking(instanceId: $id) { published entries { position organisation { id } score mine } } }",
                json!({ "id": avviso }),
            )
            .await;
        let entries = &ranking["ranking"]["entries"];
        assert_eq!(ranking["ranking"]["published"], true, "[{backend}]");
        assert_eq!(
            entries.as_array().map(Vec::len),
            Some(2),
            "[{backend}] {entries}"
        );
        assert_eq!(entries[0]["organisation"]["id"], "ets-borea");
        assert_eq!(
            entries[0]["score"],
            Value::Null,
            "[{backend}] not Borea's score"
        );
        assert_eq!(entries[1]["organisation"]["id"], "ets-aurora");
        assert_eq!(entries[1]["score"], 79.0);

        // Each ETS's own communication: its points per criterion, its position, the TAR term.
        let (_, text) = world
            .inbox(AURORA)
            .into_iter()
            .rev()
            .find(|(subject, _)| subject.contains("Graduatoria approvata"))
            .expect("esito to Aurora");
        assert!(text.contains("determina n. 88"), "[{backend}] {text}");
        assert!(text.contains("Totale: 79 su 100"), "[{backend}] {text}");
        assert!(
            text.contains("Posizione in graduatoria: 2"),
            "[{backend}] {text}"
        );
        assert!(text.contains("17.5 su 20"), "[{backend}] {text}");
        assert!(
            text.contains("Tribunale Amministrativo Regionale"),
            "[{backend}] {text}"
        );
        let (_, text) = world
            .inbox(CONSORZIO)
            .into_iter()
            .rev()
            .find(|(subject, _)| subject.contains("Graduatoria approvata"))
            .expect("esito to the consorzio");
        assert!(text.contains("inferiore alla soglia"), "[{backend}] {text}");
        assert!(!text.contains("Associazione Borea"), "[{backend}] {text}");
    }
}
