//! PEC end to end: procedo sends a soccorso istruttorio by PEC through a PEC provider (the
//! project's own, signing its receipts with a test CA) and reads the receipts from a real IMAP
//! server (Debian's dovecot, serving the provider's Maildir mailboxes), with the clock moved.
//!
//! Three ETS: one whose mailbox is full (mancata consegna at once), one whose provider never
//! answers (preavviso at 12 h, mancata consegna at 24 h) — their terms never start and the RUP
//! is alerted — and one whose term starts from its own consegna, the day after the sending.
//! A receipt with a broken signature, with an unknown Message-ID or from an untrusted
//! provider is refused and changes nothing. Applications sent by PEC a minute before and a
//! minute after the deadline: the first joins (though read after the deadline), the second is
//! registered and refused as late.

mod common;
#[path = "smtp_receiver/mod.rs"]
mod smtp_receiver;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use procedo::catalog;
use procedo::clock::{Clock, ManualClock};
use procedo::engine::{Actor, Command};
use procedo::notify::delivery::{self, DeliveryOptions, DeliveryWorker, MailSettings, PecSending};
use procedo::notify::{SmtpSettings, Transport};
use procedo::pec::ingest::{Ingest, Outcome as Read};
use procedo::pec::mailbox::{ImapSettings, Mailbox};
use procedo::pec::provider::{Behaviour, Provider};
use procedo::pec::smime::test_authority;
use procedo::pec::{DatiCert, PecStatus, Signer, Tipo, TrustList};
use procedo::scheduler::{Options, Outcome, Scheduler};
use procedo::service::Service;
use procedo::store::{DeliveryFilter, NewOrganisation, NewPerson, OrganisationKind, Store};
use serde_json::{Map, Value, json};
use smtp_receiver::Receiver;

const OFFICE: &str = "udp@pec.ambito.test";
const AMBITO: &str = "Ambito territoriale 7";
const RUP: &str = "maria.rossi@ambito.example.it";
const GESTORE: &str = "Gestore PEC di prova S.p.A.";

/// (organisation id, name, PEC address)
const AURORA: (&str, &str, &str) = (
    "ets-aurora",
    "Cooperativa sociale Aurora",
    "aurora@pec.aurora.test",
);
const PIENA: (&str, &str, &str) = (
    "ets-piena",
    "Associazione Casella Piena",
    "piena@pec.piena.test",
);
const MUTA: (&str, &str, &str) = ("ets-muta", "Fondazione Gestore Muto", "muta@pec.muta.test");
const GAMMA: (&str, &str, &str) = ("ets-gamma", "Cooperativa Gamma", "gamma@pec.gamma.test");
const DELTA: (&str, &str, &str) = ("ets-delta", "Associazione Delta", "delta@pec.delta.test");

/// A dovecot serving the provider's mailboxes over IMAP on loopback, stopped on drop.
struct Dovecot {
    port: u16,
    dir: tempfile::TempDir,
}

impl Dovecot {
    /// Starts dovecot on a free port serving `root/<address>` Maildirs (password `segreta`).
    /// `None` when dovecot is not installed (an error where the tools are required).
    fn start(root: &Path, uid: u32) -> Option<Dovecot> {
        let binary = ["/usr/sbin/dovecot", "/usr/local/sbin/dovecot"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists());
        let Some(binary) = binary else {
            assert!(
                std::env::var("PROCEDO_REQUIRE_TOOLS").as_deref() != Ok("1"),
                "dovecot is required (scripts/test installs it)"
            );
            eprintln!("dovecot not installed: the PEC mailbox is read as a Maildir instead");
            return None;
        };
        let dir = tempfile::tempdir().expect("dovecot dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let d = dir.path().display();
        let config = format!(
            "protocols = imap\nlisten = 127.0.0.1\nbase_dir = {d}/run\nstate_dir = {d}/state\nlog_path = {d}/dovecot.log\n\
             ssl = no\ndisable_plaintext_auth = no\nauth_mechanisms = plain login\nfirst_valid_uid = 0\n\
             mail_location = maildir:{root}/%Lu:INDEX={d}/index/%Lu:CONTROL={d}/control/%Lu\n\
             service imap-login {{\n  chroot =\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n}}\n\
             service anvil {{\n  chroot =\n}}\n\
             passdb {{\n  driver = static\n  args = password=segreta\n}}\n\
             userdb {{\n  driver = static\n  args = uid={uid} gid={uid} home={d}/home/%Lu\n}}\n",
            root = root.display(),
        );
        for sub in ["run", "state", "index", "control", "home"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("dovecot dirs");
        }
        use std::os::unix::fs::PermissionsExt as _;
        for sub in ["index", "control", "home"] {
            std::fs::set_permissions(dir.path().join(sub), std::fs::Permissions::from_mode(0o777))
                .expect("permissions");
        }
        let conf = dir.path().join("dovecot.conf");
        std::fs::write(&conf, config).expect("dovecot.conf");
        let status = std::process::Command::new(binary)
            .arg("-c")
            .arg(&conf)
            .status()
            .expect("dovecot runs");
        assert!(
            status.success(),
            "dovecot did not start: {}",
            std::fs::read_to_string(dir.path().join("dovecot.log")).unwrap_or_default()
        );
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Dovecot { port, dir });
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("dovecot did not listen on {port}");
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("run/master.pid")) {
            let _ = std::process::Command::new("kill").arg(pid.trim()).status();
        }
    }
}

fn current_uid() -> u32 {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

struct World {
    backend: String,
    clock: ManualClock,
    service: Service,
    scheduler: Scheduler,
    worker: DeliveryWorker,
    receiver: Receiver,
    provider: Provider,
    mailbox: Mailbox,
    ingest: Ingest,
    signer: Signer,
    store: Store,
    api: String,
    rup_token: String,
    aurora_token: String,
    _dovecot: Option<Dovecot>,
    _mail: tempfile::TempDir,
    _files: tempfile::TempDir,
    _scratch: common::Scratch,
}

impl World {
    async fn build(backend: String, store: Store, scratch: common::Scratch) -> World {
        let clock = ManualClock::new(common::at("2026-11-27T09:00:00+01:00"));
        let service = Service::new(store.clone(), Arc::new(clock.clone()));
        let (catalog, diags) = catalog::load(&[PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/workflows"
        ))]);
        assert!(diags.is_empty(), "{diags:?}");
        let catalog = catalog.expect("catalog");
        service.install(&catalog).await.expect("install");
        seed(&store, clock.now()).await;

        // The PEC provider with its test CA, and dovecot over its mailboxes.
        let (ca, cert, key) = test_authority(GESTORE).expect("test CA");
        let mail = tempfile::tempdir().expect("mail dir");
        let root = mail.path().join("caselle");
        let uid = current_uid();
        let mut provider = Provider::new(
            GESTORE,
            &root,
            Signer::new(&cert, &key).expect("signer"),
            Arc::new(clock.clone()),
        );
        if uid == 0 {
            provider = provider.with_shared_mailboxes();
        }
        provider.set_behaviour(PIENA.2, Behaviour::MailboxFull);
        provider.set_behaviour("@pec.muta.test", Behaviour::Silent);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let pec_port = listener.local_addr().expect("address").port();
        tokio::spawn(provider.clone().serve(listener));
        let dovecot = Dovecot::start(&root, if uid == 0 { 65534 } else { uid });
        let mailbox = match &dovecot {
            Some(d) => Mailbox::Imap(Arc::new(
                ImapSettings::parse(&format!(
                    "imap://{}:segreta@127.0.0.1:{}/INBOX",
                    OFFICE.replace('@', "%40"),
                    d.port
                ))
                .expect("IMAP URL"),
            )),
            None => Mailbox::Maildir(provider.mailbox(OFFICE)),
        };

        let receiver = Receiver::start(&[]);
        let transport = Transport::smtp(&SmtpSettings {
            rate: None,
            url: format!("smtp://127.0.0.1:{}?tls=none", receiver.port),
            from: "Ufficio di Piano <udp@ambito.example.it>".to_owned(),
            timeout: Some(std::time::Duration::from_secs(10)),
        })
        .expect("SMTP transport");
        let pec_transport = Transport::smtp(&SmtpSettings {
            rate: None,
            url: format!("smtp://127.0.0.1:{pec_port}?tls=none"),
            from: OFFICE.to_owned(),
            timeout: Some(std::time::Duration::from_secs(10)),
        })
        .expect("PEC transport");
        let mut mail_settings = MailSettings::new(catalog.templates, transport);
        mail_settings.from = "Ufficio di Piano <udp@ambito.example.it>".to_owned();
        mail_settings.ambito = AMBITO.to_owned();
        mail_settings.pec = Some(PecSending {
            transport: pec_transport.clone(),
            from: format!("Ufficio di Piano <{OFFICE}>"),
        });
        mail_settings.delivery = DeliveryOptions {
            worker_id: "postino".to_owned(),
            poll_interval: std::time::Duration::from_millis(10),
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
                &mail_settings,
            ),
            &protocollo,
            &mail_settings,
        );
        let worker = DeliveryWorker::new(
            store.clone(),
            mail_settings.transport.clone(),
            mail_settings.delivery.clone(),
            Arc::new(clock.clone()),
        )
        .with_pec(pec_transport);
        let ingest = Ingest::new(
            service.clone(),
            TrustList::from_der(std::slice::from_ref(&ca)).expect("trust"),
            Some(protocollo.clone()),
        );
        let token = |person: &str, role: &str| {
            let store = store.clone();
            let (person, role) = (person.to_owned(), role.to_owned());
            let now = clock.now();
            async move {
                let secret = procedo::identity::new_secret();
                store
                    .add_token(&procedo::store::NewToken {
                        id: procedo::identity::new_token_id(),
                        person_id: person,
                        role,
                        hash: secret.hash,
                        at: now,
                        expires_at: None,
                    })
                    .await
                    .expect("token");
                secret.secret
            }
        };
        let rup_token = token("maria.rossi", "rup").await;
        let aurora_token = token("referente-ets-aurora", "ets").await;
        let state = procedo::api::ApiState::new(service.clone(), procedo::api::Limits::default())
            .with_protocollo(protocollo);
        let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let api = format!(
            "http://{}/graphql",
            api_listener.local_addr().expect("address")
        );
        tokio::spawn(procedo::api::serve(
            api_listener,
            state,
            std::future::pending(),
        ));
        World {
            api,
            rup_token,
            aurora_token,
            backend,
            clock,
            service,
            scheduler,
            worker,
            receiver,
            provider,
            mailbox,
            ingest,
            signer: Signer::new(&cert, &key).expect("signer"),
            store,
            _dovecot: dovecot,
            _mail: mail,
            _files: files,
            _scratch: scratch,
        }
    }

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
        reqwest::Client::new()
            .post(&self.api)
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("JSON")
    }

    fn set(&self, at: &str) {
        self.clock.set(common::at(at));
    }

    /// The provider delivers what is due, then procedo reads its mailbox.
    async fn read_mailbox(&self) -> Vec<Read> {
        self.provider.tick().await.expect("provider tick");
        let read = self.ingest.poll(&self.mailbox).await.expect("poll");
        self.settle().await;
        read
    }

    async fn fire(&self, instance: &str, participant: Option<&str>, event: &str, payload: Value) {
        let Value::Object(payload) = payload else {
            panic!("payload")
        };
        self.service
            .fire(
                instance,
                &Command {
                    event: event.into(),
                    actor: Actor {
                        id: "maria.rossi".into(),
                        role: "rup".into(),
                    },
                    payload,
                    participant: participant.map(str::to_owned),
                },
                None,
            )
            .await
            .unwrap_or_else(|e| panic!("[{}] {event}: {e}", self.backend));
    }

    async fn participant(&self, avviso: &str, organisation: &str) -> (String, Value) {
        let row = self
            .store
            .instance(avviso)
            .await
            .expect("read")
            .expect("instance");
        let (id, part) = row
            .data
            .participants
            .iter()
            .find(|(_, p)| p.organisation_id == organisation)
            .unwrap_or_else(|| panic!("[{}] no participant for {organisation}", self.backend));
        (id.clone(), serde_json::to_value(part).expect("json"))
    }

    async fn pec_delivery(&self, avviso: &str, address: &str) -> procedo::store::DeliveryRow {
        self.store
            .deliveries(&DeliveryFilter {
                instance_id: Some(avviso.to_owned()),
                ..DeliveryFilter::default()
            })
            .await
            .expect("deliveries")
            .into_iter()
            .find(|d| d.recipient_email == address && d.kind == "soccorso_istruttorio")
            .unwrap_or_else(|| panic!("[{}] no PEC to {address}", self.backend))
    }

    /// An ETS sends its application by PEC to the office now.
    async fn send_application(&self, from: &str, avviso: &str) {
        self.send_pec(from, &format!("Domanda di partecipazione - rif. {avviso}"))
            .await;
    }

    /// An ETS sends a letter with a PDF by PEC to the office now.
    async fn send_pec(&self, from: &str, subject: &str) {
        let raw = format!(
            "From: {from}\r\nTo: {OFFICE}\r\nSubject: {subject}\r\nMessage-ID: <domanda-{}@pec.test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nSi trasmette la domanda di partecipazione.\r\n--b1\r\nContent-Type: application/pdf; name=\"domanda.pdf\"\r\nContent-Disposition: attachment; filename=\"domanda.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcfsj6IK\r\n--b1--\r\n",
            uuid::Uuid::new_v4()
        );
        self.provider
            .submit(from, &[OFFICE.to_owned()], raw.as_bytes())
            .await
            .expect("submitted to the provider");
    }
}

async fn seed(store: &Store, now: DateTime<Utc>) {
    store
        .add_organisation(&NewOrganisation {
            id: "ambito-7".into(),
            name: AMBITO.into(),
            kind: OrganisationKind::Ambito,
            codice_fiscale: None,
            runts: None,
            pec: Some(OFFICE.into()),
            at: now,
        })
        .await
        .expect("ambito");
    store
        .add_person(&NewPerson {
            id: "maria.rossi".into(),
            name: "Maria Rossi".into(),
            email: RUP.into(),
            organisation_id: "ambito-7".into(),
            roles: vec!["rup".into(), "ufficio_di_piano".into()],
            digest: "immediato".into(),
            at: now,
        })
        .await
        .expect("rup");
    for (id, name, pec) in [AURORA, PIENA, MUTA, GAMMA, DELTA] {
        store
            .add_organisation(&NewOrganisation {
                id: id.into(),
                name: name.into(),
                kind: OrganisationKind::Ets,
                codice_fiscale: None,
                runts: None,
                pec: Some(pec.into()),
                at: now,
            })
            .await
            .expect("ets");
        store
            .add_person(&NewPerson {
                id: format!("referente-{id}"),
                name: format!("Referente di {name}"),
                email: format!("referente@{id}.example.org"),
                organisation_id: id.into(),
                roles: vec!["ets".into()],
                digest: "immediato".into(),
                at: now,
            })
            .await
            .expect("referente");
    }
}

fn rup_alerts(receiver: &Receiver) -> Vec<String> {
    receiver
        .messages()
        .into_iter()
        .filter(|m| m.recipients.iter().any(|r| r == RUP))
        .map(|m| String::from_utf8_lossy(&m.raw).into_owned())
        .filter(|text| text.contains("PEC non consegnata"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pec_terms_start_from_each_consegna_and_failures_alert_the_rup() {
    common::init_tracing();
    for (backend, store, scratch) in common::scratch_stores().await {
        let w = World::build(backend, store, scratch).await;
        let b = w.backend.clone();

        // The avviso, published 27/11/2026: proposals until 28/12/2026 12:00.
        let mut vars = Map::new();
        vars.insert("oggetto".into(), json!("Servizi per la disabilità"));
        let avviso = w
            .service
            .start(
                "avviso_coprogettazione",
                None,
                vars,
                &Actor {
                    id: "maria.rossi".into(),
                    role: "rup".into(),
                },
                None,
            )
            .await
            .expect("start")
            .instance
            .id;
        w.fire(&avviso, None, "pubblica", json!({"data_pubblicazione": "2026-11-27", "atto_criteri": "determina n. 12 del 26/11/2026"})).await;
        w.settle().await;
        for (org, _, _) in [AURORA, PIENA, MUTA] {
            common::apply(&w.service, &avviso, org).await;
        }

        // Two applications by PEC: one delivered at 11:59, one at 12:01.
        w.set("2026-12-28T11:58:30+01:00");
        w.send_application(GAMMA.2, &avviso).await;
        w.set("2026-12-28T11:59:00+01:00");
        w.provider.tick().await.expect("tick");
        w.set("2026-12-28T12:00:30+01:00");
        w.send_application(DELTA.2, &avviso).await;
        w.set("2026-12-28T12:01:00+01:00");
        w.provider.tick().await.expect("tick");
        // The deadline timer fires before procedo reads the mailbox.
        w.set("2026-12-28T12:05:00+01:00");
        w.settle().await;
        let row = w
            .store
            .instance(&avviso)
            .await
            .expect("read")
            .expect("avviso");
        assert_eq!(row.state, "istruttoria", "[{b}] the deadline passed");
        let read = w.ingest.poll(&w.mailbox).await.expect("poll");
        w.settle().await;
        let incoming: Vec<&Read> = read
            .iter()
            .filter(|r| matches!(r, Read::Incoming { .. }))
            .collect();
        assert_eq!(incoming.len(), 2, "[{b}] two envelopes: {read:?}");
        assert!(
            read.contains(&Read::Incoming {
                outcome: "domanda".into(),
                reason: None
            }),
            "[{b}] delivered at 11:59, read at 12:05: in time {read:?}"
        );
        assert!(
            read.iter().any(|r| matches!(r, Read::Incoming { outcome, reason: Some(reason) } if outcome == "domanda_tardiva" && reason.contains("28/12/2026"))),
            "[{b}] delivered at 12:01: late {read:?}"
        );
        let (_, gamma) = w.participant(&avviso, GAMMA.0).await;
        assert_eq!(gamma["state"], "ricevuta", "[{b}] Gamma joined");
        let row = w
            .store
            .instance(&avviso)
            .await
            .expect("read")
            .expect("avviso");
        assert!(
            !row.data
                .participants
                .values()
                .any(|p| p.organisation_id == DELTA.0),
            "[{b}] Delta did not join"
        );
        let incoming = w.store.pec_incoming(10).await.expect("incoming");
        let late = incoming
            .iter()
            .find(|i| i.outcome == "domanda_tardiva")
            .expect("late row");
        assert!(
            late.protocol_key.is_some(),
            "[{b}] the late application is registered"
        );
        assert_eq!(
            late.delivered_at,
            common::at("2026-12-28T12:01:00+01:00"),
            "[{b}] judged on the delivery instant"
        );
        let registered = w
            .store
            .protocol_registrations(&procedo::store::ProtocolFilter::default())
            .await
            .expect("register");
        assert!(
            registered
                .iter()
                .any(|r| r.subject.contains("rif.") && r.channel == "PEC"),
            "[{b}] the late application is in the protocollo"
        );

        // The soccorso istruttorio to three ETS, sent by PEC late on Monday 28/12.
        w.set("2026-12-28T23:50:00+01:00");
        for (org, _, _) in [AURORA, PIENA, MUTA] {
            let (id, _) = w.participant(&avviso, org).await;
            w.fire(
                &avviso,
                Some(&id),
                "richiedi_soccorso",
                json!({"documenti_mancanti": ["Statuto aggiornato"]}),
            )
            .await;
        }
        w.settle().await;
        for (org, _, pec) in [AURORA, PIENA, MUTA] {
            let d = w.pec_delivery(&avviso, pec).await;
            assert_eq!(
                d.pec_status,
                Some(PecStatus::Inviata),
                "[{b}] {org} handed to the provider"
            );
            let (_, part) = w.participant(&avviso, org).await;
            assert_eq!(part["state"], "in_soccorso", "[{b}]");
            assert!(
                part["variables"]["termine_integrazione"].is_null(),
                "[{b}] {org}: the term waits for the consegna"
            );
        }
        let read = w.ingest.poll(&w.mailbox).await.expect("poll");
        w.settle().await;
        assert!(
            read.iter().all(|r| matches!(r, Read::Receipt { .. })),
            "[{b}] {read:?}"
        );
        assert_eq!(
            w.pec_delivery(&avviso, AURORA.2).await.pec_status,
            Some(PecStatus::Accettata),
            "[{b}]"
        );
        assert_eq!(
            w.pec_delivery(&avviso, PIENA.2).await.pec_status,
            Some(PecStatus::MancataConsegna),
            "[{b}] full mailbox: at once"
        );
        assert_eq!(
            rup_alerts(&w.receiver).len(),
            1,
            "[{b}] the RUP hears of the full mailbox"
        );

        // Aurora's provider delivers after midnight: the term runs from Tuesday 29/12.
        w.set("2026-12-29T00:10:00+01:00");
        w.read_mailbox().await;
        let d = w.pec_delivery(&avviso, AURORA.2).await;
        assert_eq!(d.pec_status, Some(PecStatus::Consegnata), "[{b}]");
        assert_eq!(
            d.pec_at,
            Some(common::at("2026-12-29T00:10:00+01:00")),
            "[{b}] the provider's date"
        );
        assert_eq!(
            d.sent_at,
            Some(common::at("2026-12-28T23:50:00+01:00")),
            "[{b}] sent the day before"
        );
        let (_, aurora) = w.participant(&avviso, AURORA.0).await;
        assert_eq!(
            aurora["variables"]["data_consegna_soccorso"], "2026-12-29",
            "[{b}]"
        );
        assert_eq!(
            aurora["variables"]["termine_integrazione"], "2027-01-08T12:00:00+01:00",
            "[{b}] ten days from the consegna, not from the sending"
        );
        let trace = aurora["terms"]["termine_integrazione"]["trace"][0]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            trace.starts_with("dies a quo: consegna del 29/12/2026 attestata dalla ricevuta di avvenuta consegna n. opec."),
            "[{b}] {trace}"
        );
        let receipts = w.store.pec_receipts(d.id).await.expect("receipts");
        assert_eq!(
            receipts
                .iter()
                .map(|r| r.tipo.clone().unwrap_or_default())
                .collect::<Vec<_>>(),
            ["accettazione", "avvenuta-consegna"],
            "[{b}]"
        );
        assert!(
            receipts
                .iter()
                .all(|r| r.accepted && r.signer.as_deref().is_some_and(|s| s.contains(GESTORE))),
            "[{b}]"
        );
        let kept = procedo::protocollo::FileStore::new(w._files.path().join("files"));
        for r in &receipts {
            assert!(
                kept.get(&r.sha256).await.expect("read").is_some(),
                "[{b}] the raw receipt is kept by its SHA-256"
            );
        }

        // Aurora's calendar feed has its own term, from the consegna; Piena's does not.
        let aurora_person = w
            .store
            .person("referente-ets-aurora")
            .await
            .expect("read")
            .expect("person");
        let events =
            procedo::calendar::events(&w.service, &aurora_person, "ambito.test", w.clock.now())
                .await
                .expect("events");
        let term = events
            .iter()
            .find(|e| {
                e.summary
                    .contains("Termine per le integrazioni (soccorso istruttorio) – Cooperativa sociale Aurora")
            })
            .unwrap_or_else(|| panic!("[{b}] {events:?}"));
        match &term.time {
            procedo::notify::invite::FeedTime::Timed { end, .. } => assert_eq!(
                end.with_timezone(&Utc),
                common::at("2027-01-08T12:00:00+01:00"),
                "[{b}]"
            ),
            other => panic!("[{b}] {other:?}"),
        }
        assert!(
            term.description
                .contains("dies a quo: consegna del 29/12/2026"),
            "[{b}]"
        );
        let piena_person = w
            .store
            .person("referente-ets-piena")
            .await
            .expect("read")
            .expect("person");
        let theirs =
            procedo::calendar::events(&w.service, &piena_person, "ambito.test", w.clock.now())
                .await
                .expect("events");
        assert!(
            !theirs.iter().any(|e| e.summary.contains("Aurora")),
            "[{b}] nobody else's term: {theirs:?}"
        );

        // Muta's provider never answers: preavviso at 12 h, mancata consegna at 24 h.
        w.set("2026-12-29T11:49:00+01:00");
        w.read_mailbox().await;
        assert_eq!(
            w.pec_delivery(&avviso, MUTA.2).await.pec_status,
            Some(PecStatus::Accettata),
            "[{b}] before 12 h"
        );
        w.set("2026-12-29T11:51:00+01:00");
        w.read_mailbox().await;
        assert_eq!(
            w.pec_delivery(&avviso, MUTA.2).await.pec_status,
            Some(PecStatus::PreavvisoMancataConsegna),
            "[{b}] 12 h"
        );
        assert_eq!(
            rup_alerts(&w.receiver).len(),
            1,
            "[{b}] a preavviso is not yet a failure"
        );
        w.set("2026-12-29T23:51:00+01:00");
        w.read_mailbox().await;
        assert_eq!(
            w.pec_delivery(&avviso, MUTA.2).await.pec_status,
            Some(PecStatus::MancataConsegna),
            "[{b}] 24 h"
        );
        let alerts = rup_alerts(&w.receiver);
        assert_eq!(alerts.len(), 2, "[{b}] the RUP hears of both failures");
        for (org, _, _) in [PIENA, MUTA] {
            let (_, part) = w.participant(&avviso, org).await;
            assert!(
                part["variables"]["termine_integrazione"].is_null(),
                "[{b}] {org}: the term never started"
            );
            assert_eq!(
                part["consegne"]["data_consegna_soccorso"]["status"], "mancata_consegna",
                "[{b}] {org}"
            );
        }

        // The API shows the status and the receipts to the office, and to an ETS its own
        // consegne only.
        let seen = w
            .gql(
                &w.rup_token,
                "query($id: ID!) { deliveries(instanceId: $id) { id recipientEmail channel pecStatus pecAt } }",
                json!({ "id": avviso }),
            )
            .await;
        let rows = seen["data"]["deliveries"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let muta = rows
            .iter()
            .find(|d| d["recipientEmail"] == MUTA.2)
            .unwrap_or_else(|| panic!("[{b}] {seen}"));
        assert_eq!(muta["channel"], "pec", "[{b}]");
        assert_eq!(muta["pecStatus"], "mancata_consegna", "[{b}]");
        let aurora_delivery = rows
            .iter()
            .find(|d| d["recipientEmail"] == AURORA.2)
            .expect("Aurora's PEC");
        let receipts = w
            .gql(
                &w.rup_token,
                "query($id: ID!) { pecReceipts(deliveryId: $id) { tipo identificativo gestore providerAt accepted } }",
                json!({ "id": aurora_delivery["id"] }),
            )
            .await;
        assert_eq!(
            receipts["data"]["pecReceipts"][1]["tipo"], "avvenuta-consegna",
            "[{b}] {receipts}"
        );
        let incoming = w
            .gql(
                &w.rup_token,
                "{ pecIncoming { outcome mittente deliveredAt } }",
                json!({}),
            )
            .await;
        assert_eq!(
            incoming["data"]["pecIncoming"].as_array().map(Vec::len),
            Some(2),
            "[{b}] {incoming}"
        );
        let (aurora_submission, _) = w.participant(&avviso, AURORA.0).await;
        let own = w
            .gql(
                &w.aurora_token,
                "query($id: ID!) { submission(id: $id) { participant { consegne { variable status day receipt } variables { name value term { trace } } } } }",
                json!({ "id": aurora_submission }),
            )
            .await;
        let consegne = &own["data"]["submission"]["participant"]["consegne"];
        assert_eq!(consegne[0]["status"], "consegnata", "[{b}] {own}");
        assert_eq!(consegne[0]["day"], "2026-12-29", "[{b}] {own}");
        let (piena_submission, _) = w.participant(&avviso, PIENA.0).await;
        let other = w
            .gql(
                &w.aurora_token,
                "query($id: ID!) { submission(id: $id) { participant { consegne { status } } } }",
                json!({ "id": piena_submission }),
            )
            .await;
        assert!(
            other["data"]["submission"].is_null() && other["errors"].is_array(),
            "[{b}] an ETS never reads another's consegne: {other}"
        );
        let forbidden = w
            .gql(&w.aurora_token, "{ pecIncoming { mittente } }", json!({}))
            .await;
        assert_eq!(
            forbidden["errors"][0]["extensions"]["code"], "FORBIDDEN",
            "[{b}] {forbidden}"
        );

        // Receipts that must change nothing: a broken signature, an unknown Message-ID, an
        // untrusted provider.
        let history_before = w.store.history(&avviso).await.expect("history").len();
        let aurora_before = w.participant(&avviso, AURORA.0).await.1;
        let office_box = w.provider.mailbox(OFFICE);
        let consegna = read_from(&office_box, |m| {
            m.tipo == Tipo::AvvenutaConsegna && m.daticert.consegna.as_deref() == Some(AURORA.2)
        });
        let text = String::from_utf8(consegna).expect("utf8");
        // Another text in the signed part: base64 of the provider's text changes.
        let at = text
            .find("Content-Transfer-Encoding: base64\r\n\r\n")
            .expect("text part")
            + 36;
        let mut tampered = text.clone().into_bytes();
        tampered[at] = if tampered[at] == b'Q' { b'R' } else { b'Q' };
        procedo::pec::provider::write_maildir(&office_box, &tampered, w.clock.now(), true)
            .await
            .expect("write");
        let stranger = {
            let d =
                DatiCert::parse(&String::from_utf8_lossy(&daticert_of(&text))).expect("daticert");
            let raw = procedo::pec::message::compose(
                &procedo::pec::message::Composition {
                    from: "posta-certificata@pec.procedo.test",
                    to: OFFICE,
                    subject: "CONSEGNA: ?",
                    message_id: "<nuova@pec.procedo.test>",
                    riferimento: Some("<mai-inviato@ambito.example.it>"),
                    text: "Ricevuta di avvenuta consegna",
                    daticert: &DatiCert {
                        msgid: Some("<mai-inviato@ambito.example.it>".into()),
                        ..d.clone()
                    },
                    original: None,
                },
                &w.signer,
                w.clock.now(),
            )
            .expect("composed");
            let (_, other_cert, other_key) =
                test_authority("Gestore sconosciuto").expect("other CA");
            let msgid = d.msgid.clone();
            let forged = procedo::pec::message::compose(
                &procedo::pec::message::Composition {
                    from: "posta-certificata@pec.procedo.test",
                    to: OFFICE,
                    subject: "CONSEGNA: falsa",
                    message_id: "<falsa@pec.procedo.test>",
                    riferimento: msgid.as_deref(),
                    text: "Ricevuta di avvenuta consegna",
                    daticert: &DatiCert {
                        tipo: Tipo::AvvenutaConsegna,
                        identificativo: "falsa".into(),
                        ..d
                    },
                    original: None,
                },
                &Signer::new(&other_cert, &other_key).expect("signer"),
                w.clock.now(),
            )
            .expect("composed");
            vec![raw, forged]
        };
        for raw in &stranger {
            procedo::pec::provider::write_maildir(&office_box, raw, w.clock.now(), true)
                .await
                .expect("write");
        }
        let read = w.ingest.poll(&w.mailbox).await.expect("poll");
        assert_eq!(read.len(), 3, "[{b}] {read:?}");
        let reasons: Vec<String> = read
            .iter()
            .map(|r| match r {
                Read::Refused(reason) => reason.clone(),
                other => panic!("[{b}] accepted: {other:?}"),
            })
            .collect();
        assert!(
            reasons.iter().any(|r| r.contains("alterato")),
            "[{b}] {reasons:?}"
        );
        assert!(
            reasons.iter().any(|r| r.contains("sconosciuto")),
            "[{b}] {reasons:?}"
        );
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("elenco dei gestori fidati")),
            "[{b}] {reasons:?}"
        );
        assert_eq!(
            w.store.history(&avviso).await.expect("history").len(),
            history_before,
            "[{b}] nothing happened"
        );
        assert_eq!(
            w.participant(&avviso, AURORA.0).await.1,
            aurora_before,
            "[{b}]"
        );
        assert_eq!(
            w.store
                .pec_refused_receipts(10)
                .await
                .expect("refused")
                .len(),
            3,
            "[{b}] kept with the reason"
        );
        // A receipt read a second time (a crash before it was marked read) changes nothing.
        let again = w
            .ingest
            .message(text.as_bytes(), w.clock.now())
            .await
            .expect("read again");
        assert!(
            matches!(again, Read::Receipt { status: None, .. }),
            "[{b}] {again:?}"
        );
        assert_eq!(
            w.store.history(&avviso).await.expect("history").len(),
            history_before,
            "[{b}] the consegna is not recorded twice"
        );
        // Read again: nothing new.
        assert!(
            w.ingest.poll(&w.mailbox).await.expect("poll").is_empty(),
            "[{b}] marked read"
        );

        // Aurora's term passes: its timer fires; the others never had one.
        w.set("2027-01-08T12:00:01+01:00");
        w.settle().await;
        let (_, aurora) = w.participant(&avviso, AURORA.0).await;
        assert_eq!(
            aurora["state"], "ricevuta",
            "[{b}] soccorso without an answer"
        );
        assert_eq!(aurora["variables"]["soccorso_scaduto"], true, "[{b}]");
        for (org, _, _) in [PIENA, MUTA] {
            let (_, part) = w.participant(&avviso, org).await;
            assert_eq!(part["state"], "in_soccorso", "[{b}] {org}: no term ran");
        }

        // A second soccorso to Aurora, answered by PEC within its term: the answer joins
        // its participant, judged on the delivery instant.
        w.set("2027-01-08T13:00:00+01:00");
        let (aurora_id, _) = w.participant(&avviso, AURORA.0).await;
        w.fire(
            &avviso,
            Some(&aurora_id),
            "richiedi_soccorso",
            json!({"documenti_mancanti": ["Bilancio"]}),
        )
        .await;
        w.settle().await;
        w.read_mailbox().await;
        let (_, aurora) = w.participant(&avviso, AURORA.0).await;
        assert_eq!(
            aurora["variables"]["data_consegna_soccorso"], "2027-01-08",
            "[{b}] the new consegna"
        );
        assert_eq!(
            aurora["variables"]["termine_integrazione"], "2027-01-18T12:00:00+01:00",
            "[{b}]"
        );
        w.set("2027-01-18T11:59:00+01:00");
        w.send_pec(
            AURORA.2,
            &format!("Integrazioni documentali - rif. {avviso}"),
        )
        .await;
        w.provider.tick().await.expect("tick");
        w.set("2027-01-18T12:30:00+01:00");
        let read = w.ingest.poll(&w.mailbox).await.expect("poll");
        assert!(
            read.contains(&Read::Incoming {
                outcome: "integrazioni".into(),
                reason: None
            }),
            "[{b}] delivered at 11:59, read at 12:30: in time {read:?}"
        );
        w.settle().await;
        let (_, aurora) = w.participant(&avviso, AURORA.0).await;
        assert_eq!(
            aurora["state"], "ricevuta",
            "[{b}] the soccorso is answered"
        );
        assert_eq!(
            aurora["variables"]["soccorso_scaduto"], false,
            "[{b}] not expired: {aurora}"
        );
        // The envelope read again changes nothing: the same answer, the same application.
        let envelope = read_from(&office_box, |m| {
            m.tipo == Tipo::PostaCertificata && m.daticert.mittente == GAMMA.2
        });
        let history = w.store.history(&avviso).await.expect("history").len();
        let again = w
            .ingest
            .message(&envelope, w.clock.now())
            .await
            .expect("again");
        assert_eq!(
            again,
            Read::Incoming {
                outcome: "domanda".into(),
                reason: None
            },
            "[{b}]"
        );
        assert_eq!(
            w.store.history(&avviso).await.expect("history").len(),
            history,
            "[{b}] nothing twice"
        );
    }
}

/// The raw message of a mailbox (already read) that `wanted` picks.
fn read_from(mailbox: &Path, wanted: impl Fn(&procedo::pec::PecMessage) -> bool) -> Vec<u8> {
    std::fs::read_dir(mailbox.join("cur"))
        .expect("cur")
        .filter_map(|e| e.ok())
        .map(|e| std::fs::read(e.path()).expect("read"))
        .find(|raw| procedo::pec::parse(raw).is_ok_and(|m| wanted(&m)))
        .unwrap_or_else(|| panic!("no such message in {}", mailbox.display()))
}

/// The daticert.xml of a raw receipt (decoded).
fn daticert_of(text: &str) -> Vec<u8> {
    procedo::pec::parse(text.as_bytes())
        .expect("receipt")
        .daticert
        .to_xml()
        .into_bytes()
}
