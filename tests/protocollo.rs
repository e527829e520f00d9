//! The protocol register on SQLite and PostgreSQL: numbering under concurrency and across the
//! new year in Rome, annulment and correction without a change in place, the tamper check,
//! the daily registers after a downtime, the segnatura read back by an independent parser
//! and its XAdES signature verified by `xmlsec1`, and the port to an external protocol
//! system (a timeout after which the other side did register; the emergency register).

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use base64::Engine as _;
use chrono::{Duration, NaiveDate};
use procedo::clock::ManualClock;
use procedo::protocollo::{Protocollo, Request, RequestDocument, Settings, Signer};
use procedo::scheduler::{CronJob, Options, Outcome, Scheduler};
use procedo::service::Service;
use procedo::store::{
    AmendmentKind, ConservationStatus, Correspondent, CorrespondentKind, Direction, DocumentRole,
    EMERGENCY_REGISTER, PROTOCOL_REGISTER, ProtocolRegistration, Refusal, Source, Store,
};
use sea_orm::{ConnectionTrait, Database};
use sha2::{Digest, Sha256};

/// A protocollo over a scratch store, with its files in `dir`.
fn protocollo(store: &Store, clock: &ManualClock, dir: &Path) -> Protocollo {
    let service = Service::new(store.clone(), Arc::new(clock.clone()));
    Protocollo::new(service, &settings(dir)).expect("protocollo")
}

fn settings(dir: &Path) -> Settings {
    let mut settings = Settings::local("Ambito territoriale di Borgo Fiorito");
    settings.aoo.codice_amministrazione = "ats_bf".into();
    settings.aoo.codice_aoo = "udp_bf".into();
    settings.aoo.codice_fiscale = "91012340123".into();
    settings.files_dir = dir.join("files");
    settings.conservation_dir = dir.join("conservazione");
    settings
}

fn comune(name: &str, cf: &str) -> Correspondent {
    Correspondent {
        kind: CorrespondentKind::Pa,
        name: name.into(),
        codice_fiscale: Some(cf.into()),
        email: Some(format!("protocollo@{}.example.it", cf)),
        organisation_id: None,
        person_id: None,
        referente: Some("Anna Rossi".into()),
    }
}

fn request(direction: Direction, subject: &str, documents: Vec<RequestDocument>) -> Request {
    Request {
        register: PROTOCOL_REGISTER.into(),
        direction,
        subject: subject.into(),
        correspondents: vec![comune("Comune di Lago", "00123456789")],
        classification: Some("VII.1".into()),
        fascicolo: None,
        instance_id: None,
        key: None,
        sender_reference: None,
        sender_date: None,
        received_at: None,
        channel: "sportello".into(),
        operator: "maria.rossi".into(),
        documents,
    }
}

fn document(role: DocumentRole, name: &str, content: &[u8]) -> RequestDocument {
    RequestDocument {
        role,
        name: name.into(),
        media_type: "application/pdf".into(),
        content: content.to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_registrations_from_sixteen_tasks_get_a_thousand_consecutive_numbers() {
    for (backend, store, _scratch) in common::scratch_stores().await {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = ManualClock::new(common::at("2026-12-01T09:00:00+01:00"));
        let protocollo = protocollo(&store, &clock, dir.path());
        let mut tasks = Vec::new();
        for task in 0..16 {
            let protocollo = protocollo.clone();
            tasks.push(tokio::spawn(async move {
                let mut numbers = Vec::new();
                for n in 0..1000 / 16 + usize::from(task < 1000 % 16) {
                    let r = protocollo
                        .register(request(
                            Direction::Entrata,
                            &format!("Documento {task}-{n}"),
                            Vec::new(),
                        ))
                        .await
                        .expect("registered");
                    numbers.push((r.year, r.number));
                }
                numbers
            }));
        }
        let mut numbers = Vec::new();
        for task in tasks {
            numbers.extend(task.await.expect("task"));
        }
        numbers.sort_unstable();
        let expected: Vec<(i32, i64)> = (1..=1000).map(|n| (2026, n)).collect();
        assert_eq!(numbers, expected, "{backend}");
        let report = protocollo.verify().await.expect("verify");
        assert!(report.is_clean(), "{backend}: {:?}", report.problems);
        assert_eq!(report.rows, 1000, "{backend}");
    }
}

#[tokio::test]
async fn a_registration_at_half_past_eleven_utc_on_new_years_eve_is_number_one_of_the_new_year() {
    for (backend, store, _scratch) in common::scratch_stores().await {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = ManualClock::new(common::at("2026-12-31T22:00:00Z"));
        let protocollo = protocollo(&store, &clock, dir.path());
        let last = protocollo
            .register(request(Direction::Uscita, "Ultimo del 2026", Vec::new()))
            .await
            .expect("registered");
        assert_eq!(last.to_string(), "0000001/2026", "{backend}");
        // 23:30 UTC is already 00:30 on 1 January in Rome.
        clock.set(common::at("2026-12-31T23:30:00Z"));
        let first = protocollo
            .register(request(Direction::Uscita, "Primo del 2027", Vec::new()))
            .await
            .expect("registered");
        assert_eq!((first.year, first.number), (2027, 1), "{backend}");
        assert_eq!(first.padded_number(), "0000001", "{backend}");
        assert_eq!(
            first.date(),
            NaiveDate::from_ymd_opt(2027, 1, 1).expect("date"),
            "{backend}"
        );
        // A repertorio is numbered on its own.
        let mut deliberation = request(Direction::Interno, "Deliberazione n. 1", Vec::new());
        deliberation.register = "deliberazioni".into();
        let deliberation = protocollo.register(deliberation).await.expect("registered");
        assert_eq!(
            (deliberation.register.as_str(), deliberation.number),
            ("deliberazioni", 1),
            "{backend}"
        );
        let second = protocollo
            .register(request(Direction::Uscita, "Secondo del 2027", Vec::new()))
            .await
            .expect("registered");
        assert_eq!(
            second.number, 2,
            "{backend}: the protocol's own numbering goes on"
        );
        let mut bad = request(Direction::Interno, "Registro inventato", Vec::new());
        bad.register = "registro con spazi".into();
        assert!(protocollo.register(bad).await.is_err(), "{backend}");
    }
}

#[tokio::test]
async fn an_annulment_and_a_correction_keep_the_original_readable_and_nothing_changes_in_place() {
    for (backend, store, scratch) in common::scratch_stores().await {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = ManualClock::new(common::at("2026-12-01T09:00:00+01:00"));
        let protocollo = protocollo(&store, &clock, dir.path());
        let r = protocollo
            .register(request(
                Direction::Entrata,
                "Domanda di contributo",
                vec![document(
                    DocumentRole::Primario,
                    "domanda.pdf",
                    b"%PDF-1 domanda",
                )],
            ))
            .await
            .expect("registered");

        clock.advance(Duration::hours(1));
        // A correction needs its reason and its authorising act.
        let unauthorised = protocollo
            .correct(
                &r,
                "oggetto",
                "Domanda di contributo economico",
                "",
                "",
                "maria.rossi",
            )
            .await
            .expect_err("no act");
        assert!(
            matches!(
                unauthorised,
                procedo::protocollo::Error::Refused(Refusal::Unauthorised)
            ),
            "{backend}: {unauthorised}"
        );
        let refused = protocollo
            .correct(
                &r,
                "numero",
                "0000099",
                "errore",
                "det. 1/2026",
                "maria.rossi",
            )
            .await
            .expect_err("a generated field");
        assert!(
            refused.to_string().contains("non si corregge"),
            "{backend}: {refused}"
        );
        let correction = protocollo
            .correct(
                &r,
                "oggetto",
                "Domanda di contributo economico",
                "oggetto incompleto",
                "prov. RGD n. 3/2026",
                "maria.rossi",
            )
            .await
            .expect("corrected");
        assert_eq!(
            correction.previous.as_deref(),
            Some("Domanda di contributo"),
            "{backend}"
        );

        clock.advance(Duration::hours(1));
        protocollo
            .annul(
                &r,
                "registrata due volte",
                "prov. RGD n. 4/2026",
                "maria.rossi",
            )
            .await
            .expect("annulled");
        let again = protocollo
            .annul(&r, "ancora", "prov. 5", "maria.rossi")
            .await
            .expect_err("already annulled");
        assert!(
            again.to_string().contains("annullata"),
            "{backend}: {again}"
        );

        let read = protocollo
            .find(PROTOCOL_REGISTER, "1/2026")
            .await
            .expect("read");
        assert_eq!(
            read.subject, "Domanda di contributo",
            "{backend}: registered value"
        );
        assert_eq!(
            read.effective("oggetto").as_deref(),
            Some("Domanda di contributo economico"),
            "{backend}"
        );
        let annulment = read.annulment().expect("annulled");
        assert_eq!(
            (
                annulment.reason.as_str(),
                annulment.act.as_deref(),
                annulment.operator.as_str()
            ),
            (
                "registrata due volte",
                Some("prov. RGD n. 4/2026"),
                "maria.rossi"
            ),
            "{backend}"
        );
        assert_eq!(
            read.amendments.iter().map(|a| a.kind).collect::<Vec<_>>(),
            [AmendmentKind::Correzione, AmendmentKind::Annullamento],
            "{backend}"
        );
        assert_eq!(
            (read.number, read.registered_at),
            (r.number, r.registered_at)
        );

        // The database itself refuses a change in place.
        let db = Database::connect(&scratch.url).await.expect("connect");
        for sql in [
            "UPDATE protocol_registrations SET subject = 'altro'",
            "DELETE FROM protocol_registrations",
            "UPDATE protocol_documents SET sha256 = 'x'",
            "DELETE FROM protocol_amendments",
        ] {
            assert!(
                db.execute_unprepared(sql).await.is_err(),
                "{backend}: {sql} was allowed"
            );
        }
        db.close().await.expect("close");
        assert!(
            protocollo.verify().await.expect("verify").is_clean(),
            "{backend}"
        );
    }
}

/// Statements that lift the guards of a table, as someone with direct access could.
fn drop_guards(backend: &str) -> &'static [&'static str] {
    if backend == "postgres" {
        &[
            "DROP TRIGGER protocol_documents_append_only ON protocol_documents",
            "DROP TRIGGER protocol_registrations_seal_only ON protocol_registrations",
        ]
    } else {
        &[
            "DROP TRIGGER protocol_documents_no_update",
            "DROP TRIGGER protocol_registrations_seal_only",
        ]
    }
}

#[tokio::test]
async fn verify_finds_a_digest_changed_in_the_database_and_a_file_changed_on_disk() {
    for (backend, store, scratch) in common::scratch_stores().await {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = ManualClock::new(common::at("2026-12-01T09:00:00+01:00"));
        let protocollo = protocollo(&store, &clock, dir.path());
        let mut registrations = Vec::new();
        for n in 1..=3 {
            registrations.push(
                protocollo
                    .register(request(
                        Direction::Entrata,
                        &format!("Documento {n}"),
                        vec![document(
                            DocumentRole::Primario,
                            &format!("doc-{n}.pdf"),
                            format!("contenuto {n}").as_bytes(),
                        )],
                    ))
                    .await
                    .expect("registered"),
            );
        }
        let clean = protocollo.verify().await.expect("verify");
        assert!(clean.is_clean(), "{backend}: {:?}", clean.problems);
        assert_eq!((clean.rows, clean.files), (3, 3), "{backend}");

        // A digest changed directly in the database, behind procedo's back.
        let db = Database::connect(&scratch.url).await.expect("connect");
        for sql in drop_guards(&backend) {
            db.execute_unprepared(sql).await.expect("guard dropped");
        }
        let forged = hex::encode(Sha256::digest(b"contenuto falso"));
        db.execute_unprepared(&format!(
            "UPDATE protocol_documents SET sha256 = '{forged}' WHERE registration_id = {}",
            registrations[1].id
        ))
        .await
        .expect("tampered");
        let report = protocollo.verify().await.expect("verify");
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains("0000002/2026") && p.contains("non corrispondono")),
            "{backend}: {:?}",
            report.problems
        );
        assert!(
            !report.problems.iter().any(|p| p.contains("0000003/2026")),
            "{backend}: only the changed row is named: {:?}",
            report.problems
        );
        db.execute_unprepared(&format!(
            "UPDATE protocol_documents SET sha256 = '{}' WHERE registration_id = {}",
            registrations[1].documents[0].sha256, registrations[1].id
        ))
        .await
        .expect("restored");
        // A subject changed in place is found too.
        db.execute_unprepared(&format!(
            "UPDATE protocol_registrations SET subject = 'Documento sostituito' WHERE id = {}",
            registrations[0].id
        ))
        .await
        .expect("tampered");
        let report = protocollo.verify().await.expect("verify");
        assert!(
            report.problems.iter().any(|p| p.contains("0000001/2026")),
            "{backend}: {:?}",
            report.problems
        );
        db.execute_unprepared(&format!(
            "UPDATE protocol_registrations SET subject = 'Documento 1' WHERE id = {}",
            registrations[0].id
        ))
        .await
        .expect("restored");
        db.close().await.expect("close");
        assert!(
            protocollo.verify().await.expect("verify").is_clean(),
            "{backend}"
        );

        // A file changed on disk.
        let path = protocollo
            .files()
            .path(&registrations[2].documents[0].sha256);
        std::fs::write(&path, b"contenuto 3, modificato").expect("file changed");
        let report = protocollo.verify().await.expect("verify");
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains("0000003/2026") && p.contains("modificato sul disco")),
            "{backend}: {:?}",
            report.problems
        );
    }
}

/// The registrations and annotations a day's CSV lists: (register/number, section).
fn csv_rows(csv: &str) -> (Vec<String>, Vec<String>) {
    let mut registrations = Vec::new();
    let mut amendments = Vec::new();
    for line in csv.lines() {
        let fields: Vec<&str> = line.split(';').collect();
        match fields.first() {
            Some(&"registrazione") => registrations.push(format!("{}/{}", fields[3], fields[2])),
            Some(&"annotazione") => {
                amendments.push(format!("{} {}/{}", fields[4], fields[3], fields[2]));
            }
            _ => {}
        }
    }
    (registrations, amendments)
}

#[tokio::test]
async fn after_five_days_down_five_daily_registers_each_list_exactly_their_day() {
    for (backend, store, _scratch) in common::scratch_stores().await {
        let dir = tempfile::tempdir().expect("temp dir");
        // Monday 7 December 2026; the service is down from the 8th to the 12th, the
        // registrations are made by hand (the CLI) meanwhile.
        let clock = ManualClock::new(common::at("2026-12-07T10:00:00+01:00"));
        let protocollo = protocollo(&store, &clock, dir.path());
        let mut by_day: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        let mut day3 = Vec::new();
        for (day, count) in [(7u32, 1usize), (8, 2), (9, 3), (10, 0), (11, 1)] {
            clock.set(common::at(&format!("2026-12-{day:02}T09:00:00+01:00")));
            for n in 0..count {
                clock.advance(Duration::minutes(30));
                let r = protocollo
                    .register(request(
                        Direction::Entrata,
                        &format!("Lettera {day}-{n}"),
                        Vec::new(),
                    ))
                    .await
                    .expect("registered");
                by_day.entry(day).or_default().push(r.to_string());
                if day == 9 {
                    day3.push(r);
                }
            }
            if day == 9 {
                // One annulment of the day's own, one correction of an earlier day's.
                clock.advance(Duration::minutes(30));
                protocollo
                    .annul(&day3[0], "doppione", "prov. 7/2026", "maria.rossi")
                    .await
                    .expect("annulled");
                let earlier = protocollo
                    .find(PROTOCOL_REGISTER, "1/2026")
                    .await
                    .expect("read");
                protocollo
                    .correct(
                        &earlier,
                        "oggetto",
                        "Lettera 7 corretta",
                        "refuso",
                        "prov. 8/2026",
                        "maria.rossi",
                    )
                    .await
                    .expect("corrected");
            }
        }
        // Saturday 12, 00:05: the scheduler comes back and the daily register job runs once.
        clock.set(common::at("2026-12-12T00:05:00+01:00"));
        let mail = procedo::notify::MailSettings::new(
            procedo::notify::Templates::builtin().expect("templates"),
            procedo::notify::Transport::files(dir.path().join("mail")),
        );
        let scheduler = procedo::protocollo::install(
            Scheduler::new(
                protocollo.service().clone(),
                Options {
                    worker_id: "registro".into(),
                    cron: vec![
                        CronJob::new("registro", "0 5 0 * * *", "protocol_register").expect("job"),
                    ],
                    ..Options::default()
                },
            )
            .expect("scheduler"),
            &protocollo,
            &mail,
        );
        while scheduler.tick().await.expect("tick") != Outcome::Idle {}
        let registers = store.daily_registers().await.expect("registers");
        assert_eq!(
            registers
                .iter()
                .map(|r| r.day.format("%d").to_string())
                .collect::<Vec<_>>(),
            ["07", "08", "09", "10", "11"],
            "{backend}: one register per day, the empty one included"
        );
        for register in &registers {
            let day: u32 = register.day.format("%d").to_string().parse().expect("day");
            let csv = protocollo
                .files()
                .get(&register.csv_sha256)
                .await
                .expect("read")
                .expect("stored");
            let (registrations, amendments) = csv_rows(&String::from_utf8(csv).expect("utf-8"));
            assert_eq!(
                registrations,
                by_day.get(&day).cloned().unwrap_or_default(),
                "{backend}: day {day}"
            );
            if day == 9 {
                assert_eq!(
                    amendments,
                    [
                        format!("annullamento {}", day3[0]),
                        "correzione 0000001/2026".to_owned()
                    ],
                    "{backend}"
                );
            } else {
                assert!(
                    amendments.is_empty(),
                    "{backend}: day {day}: {amendments:?}"
                );
            }
            assert_eq!(
                register.conservation_status,
                ConservationStatus::Inviato,
                "{backend}"
            );
            assert!(
                dir.path()
                    .join("conservazione")
                    .join(register.day.format("%Y-%m-%d").to_string())
                    .join("manifest.json")
                    .exists(),
                "{backend}: handed over"
            );
        }
        // Running again produces nothing new.
        assert!(
            protocollo
                .daily_registers()
                .await
                .expect("again")
                .is_empty()
        );
        assert!(
            protocollo.verify().await.expect("verify").is_clean(),
            "{backend}"
        );
    }
}

/// A self-signed certificate and its key, made by `openssl` (RSA or EC P-256).
fn certificate(dir: &Path, kind: &str) -> (Vec<u8>, Vec<u8>) {
    let key = dir.join(format!("{kind}.key"));
    let cert = dir.join(format!("{kind}.crt"));
    let mut command = std::process::Command::new("openssl");
    command.args([
        "req",
        "-x509",
        "-nodes",
        "-days",
        "30",
        "-subj",
        "/CN=Ufficio di Piano/O=Ambito/C=IT",
    ]);
    match kind {
        "rsa" => command.args(["-newkey", "rsa:2048"]),
        _ => command.args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]),
    };
    let status = command
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl req");
    (
        std::fs::read(&cert).expect("cert"),
        std::fs::read(&key).expect("key"),
    )
}

fn child<'a, 'b>(node: roxmltree::Node<'a, 'b>, name: &str) -> roxmltree::Node<'a, 'b> {
    node.children()
        .find(|n| n.tag_name().name() == name)
        .unwrap_or_else(|| panic!("<{name}> missing under <{}>", node.tag_name().name()))
}

#[tokio::test]
async fn the_segnatura_has_the_agid_elements_and_its_xades_signature_verifies_with_xmlsec1() {
    let which = std::process::Command::new("xmlsec1")
        .arg("--version")
        .output();
    assert!(
        which.is_ok_and(|o| o.status.success()),
        "xmlsec1 is required (scripts/test installs Debian's xmlsec1)"
    );
    let (store, _scratch) = common::scratch_store().await;
    let dir = tempfile::tempdir().expect("temp dir");
    for kind in ["rsa", "ec"] {
        let (cert, key) = certificate(dir.path(), kind);
        std::fs::write(dir.path().join(format!("{kind}.crt")), &cert).expect("cert");
        let mut settings = settings(dir.path());
        settings.signing = Some((
            dir.path().join(format!("{kind}.crt")),
            dir.path().join(format!("{kind}.key")),
        ));
        assert!(Signer::from_pem(&cert, &key).is_ok(), "{kind}");
        let clock = ManualClock::new(common::at("2026-12-10T11:05:00+01:00"));
        let service = Service::new(store.clone(), Arc::new(clock.clone()));
        let protocollo = Protocollo::new(service, &settings).expect("protocollo");
        let primary = b"<html>Convocazione dell'Assemblea dei Sindaci</html>".to_vec();
        let attachment = b"%PDF-1.7 ordine del giorno".to_vec();
        let mut outgoing = request(
            Direction::Uscita,
            "Convocazione Assemblea dei Sindaci & Tavolo <tecnico>",
            vec![
                RequestDocument {
                    role: DocumentRole::Primario,
                    name: "convocazione.html".into(),
                    media_type: "text/html".into(),
                    content: primary.clone(),
                },
                document(DocumentRole::Allegato, "odg.pdf", &attachment),
            ],
        );
        outgoing.correspondents.push(Correspondent {
            kind: CorrespondentKind::PersonaGiuridica,
            name: "Cooperativa Aurora".into(),
            codice_fiscale: Some("01234567890".into()),
            email: Some("aurora@pec.example.org".into()),
            organisation_id: None,
            person_id: None,
            referente: Some("Luca Bianchi".into()),
        });
        let r = protocollo.register(outgoing).await.expect("registered");
        let xml = r.segnatura.clone().expect("a segnatura");

        // Read back by an independent parser.
        let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "SegnaturaInformatica");
        assert_eq!(
            root.tag_name().namespace(),
            Some("http://www.agid.gov.it/protocollo/")
        );
        let intestazione = child(root, "Intestazione");
        let identificatore = child(intestazione, "Identificatore");
        let numero = child(identificatore, "NumeroRegistrazione")
            .text()
            .expect("number");
        assert!(
            numero.len() >= 7 && numero.bytes().all(|b| b.is_ascii_digit()),
            "{numero}"
        );
        assert_eq!(
            child(identificatore, "DataRegistrazione").text(),
            Some("2026-12-10")
        );
        assert_eq!(child(identificatore, "CodiceAOO").text(), Some("udp_bf"));
        assert_eq!(
            child(intestazione, "Oggetto").text(),
            Some("Convocazione Assemblea dei Sindaci & Tavolo <tecnico>")
        );
        child(child(intestazione, "Classifica"), "CodiceFlat");
        let descrizione = child(root, "Descrizione");
        child(child(descrizione, "Mittente"), "PA");
        let recipients: Vec<_> = descrizione
            .children()
            .filter(|n| n.tag_name().name() == "Destinatario")
            .collect();
        assert_eq!(recipients.len(), 2, "{kind}");
        let impronta = |element: &str| {
            let node = child(descrizione, element);
            base64::engine::general_purpose::STANDARD
                .decode(child(node, "Impronta").text().expect("impronta"))
                .expect("base64")
        };
        assert_eq!(
            impronta("DocumentoPrimario"),
            Sha256::digest(&primary).to_vec()
        );
        assert_eq!(impronta("Allegato"), Sha256::digest(&attachment).to_vec());
        let signature = child(root, "Signature");
        assert_eq!(
            signature.tag_name().namespace(),
            Some("http://www.w3.org/2000/09/xmldsig#")
        );

        // Verified by an independent tool against the certificate.
        let file = dir.path().join(format!("segnatura-{kind}.xml"));
        std::fs::write(&file, &xml).expect("written");
        let verified = std::process::Command::new("xmlsec1")
            .args([
                "--verify",
                "--id-attr:Id",
                "SignedProperties",
                "--trusted-pem",
            ])
            .arg(dir.path().join(format!("{kind}.crt")))
            .arg(&file)
            .output()
            .expect("xmlsec1 runs");
        assert!(
            verified.status.success(),
            "{kind}: xmlsec1 refused the signature: {}\n{xml}",
            String::from_utf8_lossy(&verified.stderr)
        );
        // A changed byte breaks it.
        let tampered = xml.replacen("Convocazione Assemblea", "Convocazione Assemblee", 1);
        std::fs::write(&file, &tampered).expect("written");
        let refused = std::process::Command::new("xmlsec1")
            .args([
                "--verify",
                "--id-attr:Id",
                "SignedProperties",
                "--trusted-pem",
            ])
            .arg(dir.path().join(format!("{kind}.crt")))
            .arg(&file)
            .output()
            .expect("xmlsec1 runs");
        assert!(
            !refused.status.success(),
            "{kind}: a tampered segnatura verified"
        );
    }
}

/// A small protocol system of another ente: registers by key, can answer late.
#[derive(Clone, Default)]
struct External {
    registrations: Arc<Mutex<BTreeMap<String, (i64, String)>>>,
    /// How long a POST waits before answering (after registering).
    delay: Arc<Mutex<StdDuration>>,
}

impl External {
    fn router(&self) -> axum::Router {
        use axum::extract::{Query, State};
        use axum::http::{HeaderMap, StatusCode};
        use axum::routing::post;
        async fn register(
            State(external): State<External>,
            headers: HeaderMap,
            axum::Json(body): axum::Json<serde_json::Value>,
        ) -> axum::response::Response {
            use axum::response::IntoResponse;
            let key = headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            assert_eq!(body["chiave"], key.as_str());
            let answer = {
                let mut all = external.registrations.lock().expect("lock");
                let next = all.len() as i64 + 1;
                let (number, at) = all
                    .entry(key)
                    .or_insert((next, "2026-12-01T08:00:00Z".to_owned()))
                    .clone();
                serde_json::json!({ "numero": format!("{number:07}"), "anno": 2026, "registrato_il": at })
            };
            let delay = *external.delay.lock().expect("lock");
            tokio::time::sleep(delay).await;
            (StatusCode::CREATED, axum::Json(answer)).into_response()
        }
        async fn lookup(
            State(external): State<External>,
            Query(query): Query<BTreeMap<String, String>>,
        ) -> axum::response::Response {
            use axum::response::IntoResponse;
            let all = external.registrations.lock().expect("lock");
            match query.get("chiave").and_then(|k| all.get(k)) {
                Some((number, at)) => axum::Json(
                    serde_json::json!({ "numero": number, "anno": 2026, "registrato_il": at }),
                )
                .into_response(),
                None => StatusCode::NOT_FOUND.into_response(),
            }
        }
        axum::Router::new()
            .route("/registrazioni", post(register).get(lookup))
            .with_state(self.clone())
    }

    async fn serve(&self, listener: tokio::net::TcpListener) {
        let router = self.router();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
    }
}

fn external_settings(dir: &Path, address: SocketAddr, timeout: StdDuration) -> Settings {
    let mut settings = settings(dir);
    settings.external_url = Some(format!("http://{address}"));
    settings.external_timeout = timeout;
    settings
}

#[tokio::test]
async fn an_external_system_that_times_out_after_registering_leaves_one_number() {
    for (backend, store, _scratch) in common::scratch_stores().await {
        let dir = tempfile::tempdir().expect("temp dir");
        let external = External::default();
        *external.delay.lock().expect("lock") = StdDuration::from_secs(2);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        external.serve(listener).await;
        let clock = ManualClock::new(common::at("2026-12-01T09:00:00+01:00"));
        let service = Service::new(store.clone(), Arc::new(clock.clone()));
        let protocollo = Protocollo::new(
            service,
            &external_settings(dir.path(), address, StdDuration::from_millis(500)),
        )
        .expect("protocollo");
        let mut letter = request(Direction::Uscita, "Lettera all'ente", Vec::new());
        letter.key = Some("outbox:42".into());
        let r = protocollo
            .register(letter.clone())
            .await
            .expect("registered");
        assert_eq!((r.source, r.number), (Source::Esterno, 1), "{backend}");
        assert_eq!(external.registrations.lock().expect("lock").len(), 1);
        // Asked again (a retry after a crash): the same number, no second one anywhere.
        let again = protocollo.register(letter).await.expect("registered");
        assert_eq!(again.id, r.id, "{backend}");
        assert_eq!(external.registrations.lock().expect("lock").len(), 1);
        let local = store
            .protocol_registrations(&procedo::store::ProtocolFilter::default())
            .await
            .expect("list");
        assert_eq!(local.len(), 1, "{backend}");
    }
}

#[tokio::test]
async fn an_unreachable_external_system_sends_registrations_to_the_emergency_register_reconciled_later()
 {
    for (backend, store, _scratch) in common::scratch_stores().await {
        let dir = tempfile::tempdir().expect("temp dir");
        // A port where nothing listens yet.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        drop(listener);
        let clock = ManualClock::new(common::at("2026-12-01T09:00:00+01:00"));
        let service = Service::new(store.clone(), Arc::new(clock.clone()));
        let protocollo = Protocollo::new(
            service,
            &external_settings(dir.path(), address, StdDuration::from_secs(2)),
        )
        .expect("protocollo");
        let mut application = request(Direction::Entrata, "Domanda", Vec::new());
        application.key = Some("domanda:abc".into());
        let emergency = protocollo
            .register(application)
            .await
            .expect("registered in emergency");
        assert_eq!(
            (
                emergency.register.as_str(),
                emergency.number,
                emergency.source
            ),
            (EMERGENCY_REGISTER, 1, Source::Emergenza),
            "{backend}"
        );
        // Still down: nothing to reconcile yet, and no error.
        assert_eq!(protocollo.reconcile().await.expect("reconcile"), 0);

        // The system is back.
        let external = External::default();
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .expect("rebind");
        external.serve(listener).await;
        assert_eq!(
            protocollo.reconcile().await.expect("reconcile"),
            1,
            "{backend}"
        );
        assert_eq!(protocollo.reconcile().await.expect("again"), 0, "{backend}");
        assert_eq!(external.registrations.lock().expect("lock").len(), 1);
        let cited: ProtocolRegistration = protocollo
            .cited("domanda:abc")
            .await
            .expect("read")
            .expect("cited");
        assert_eq!(
            (cited.register.as_str(), cited.source),
            (PROTOCOL_REGISTER, Source::Esterno),
            "{backend}"
        );
        let emergency = protocollo
            .find(EMERGENCY_REGISTER, "1/2026")
            .await
            .expect("read");
        let link = emergency.reconciliation().expect("reconciled");
        assert!(
            link.value
                .as_deref()
                .is_some_and(|v| v.contains("0000001/2026")),
            "{backend}: {link:?}"
        );
        assert!(
            protocollo.verify().await.expect("verify").is_clean(),
            "{backend}"
        );
    }
}

#[tokio::test]
async fn registrations_of_the_former_counter_are_carried_over_and_sealed_into_the_chain() {
    use migration::MigratorTrait;
    for (backend, scratch) in common::empty_databases().await {
        // A database as the previous release left it: migrations up to the timer retries,
        // and two registrations in the former counter.
        let db = Database::connect(&scratch.url).await.expect("connect");
        migration::Migrator::up(&db, Some(6))
            .await
            .expect("old schema");
        db.execute_unprepared(
            "INSERT INTO protocollo (year, number, direction, subject, instance_id, outbox_id, registered_at) VALUES \
             (2026, 1, 'uscita', 'Avviso pubblico', NULL, NULL, '2026-11-27T09:00:00Z'), \
             (2026, 2, 'uscita', 'Convocazione', NULL, NULL, '2026-12-10T10:00:00Z')",
        )
        .await
        .expect("legacy rows");
        db.close().await.expect("close");

        let store = Store::connect(&scratch.url)
            .await
            .expect("migrated and sealed");
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = ManualClock::new(common::at("2026-12-15T09:00:00+01:00"));
        let protocollo = protocollo(&store, &clock, dir.path());
        let report = protocollo.verify().await.expect("verify");
        assert!(report.is_clean(), "{backend}: {:?}", report.problems);
        assert_eq!(report.rows, 2, "{backend}");
        let carried = protocollo
            .find(PROTOCOL_REGISTER, "2/2026")
            .await
            .expect("carried over");
        assert_eq!(carried.subject, "Convocazione", "{backend}");
        // The numbering goes on from them.
        let next = protocollo
            .register(request(
                Direction::Uscita,
                "Dopo l'aggiornamento",
                Vec::new(),
            ))
            .await
            .expect("registered");
        assert_eq!(next.to_string(), "0000003/2026", "{backend}");
        // Sealing is once: a second start changes nothing, and the seal cannot be redone.
        drop(store);
        let reopened = Store::connect(&scratch.url).await.expect("reopened");
        let service = Service::new(reopened, Arc::new(clock.clone()));
        let again = Protocollo::new(service, &settings(dir.path())).expect("protocollo");
        assert!(
            again.verify().await.expect("verify").is_clean(),
            "{backend}"
        );
    }
}

#[tokio::test]
async fn a_daily_register_handed_to_an_http_conservation_service_keeps_its_receipt_and_retries() {
    use axum::http::StatusCode;
    for (backend, store, _scratch) in common::scratch_stores().await {
        let dir = tempfile::tempdir().expect("temp dir");
        let received: Arc<Mutex<Vec<String>>> = Arc::default();
        let failing = Arc::new(Mutex::new(true));
        let router = {
            let received = received.clone();
            let failing = failing.clone();
            axum::Router::new().route(
                "/deposito",
                axum::routing::post(move |body: axum::body::Bytes| {
                    let received = received.clone();
                    let failing = failing.clone();
                    async move {
                        if *failing.lock().expect("lock") {
                            return (
                                StatusCode::SERVICE_UNAVAILABLE,
                                "in manutenzione".to_owned(),
                            );
                        }
                        received
                            .lock()
                            .expect("lock")
                            .push(String::from_utf8_lossy(&body).into_owned());
                        (
                            StatusCode::CREATED,
                            "{\"ricevuta\":\"RdV-2026-000123\"}".to_owned(),
                        )
                    }
                }),
            )
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let mut settings = settings(dir.path());
        settings.conservation_url = Some(format!("http://{address}/deposito"));
        let clock = ManualClock::new(common::at("2026-12-01T10:00:00+01:00"));
        let service = Service::new(store.clone(), Arc::new(clock.clone()));
        let protocollo = Protocollo::new(service, &settings).expect("protocollo");
        protocollo
            .register(request(Direction::Entrata, "Lettera", Vec::new()))
            .await
            .expect("registered");
        clock.set(common::at("2026-12-02T00:05:00+01:00"));
        let refused = protocollo
            .daily_registers()
            .await
            .expect_err("service down");
        assert!(refused.to_string().contains("503"), "{backend}: {refused}");
        let register = &store.daily_registers().await.expect("registers")[0];
        assert_eq!(
            register.conservation_status,
            ConservationStatus::Errore,
            "{backend}: produced, not handed over"
        );
        assert!(register.last_error.is_some(), "{backend}");

        *failing.lock().expect("lock") = false;
        clock.set(common::at("2026-12-03T00:05:00+01:00"));
        protocollo.daily_registers().await.expect("handed over");
        let registers = store.daily_registers().await.expect("registers");
        assert_eq!(registers.len(), 2, "{backend}: 1 and 2 December");
        for register in &registers {
            assert_eq!(
                register.conservation_status,
                ConservationStatus::Inviato,
                "{backend}"
            );
            assert_eq!(
                register.conservation_receipt.as_deref(),
                Some("{\"ricevuta\":\"RdV-2026-000123\"}"),
                "{backend}"
            );
        }
        let bodies = received.lock().expect("lock").clone();
        assert_eq!(bodies.len(), 2, "{backend}");
        assert!(
            bodies[0].contains("manifest.json")
                && bodies[0].contains("registro-giornaliero-2026-12-01.csv")
                && bodies[0].contains(&registers[0].csv_sha256),
            "{backend}"
        );
    }
}
