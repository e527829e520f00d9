//! End to end, on SQLite and PostgreSQL: the shipped convocation procedure driven through the
//! real service, scheduler and delivery worker with a moved clock, and the emails received by a
//! real SMTP server (mailin-embedded) on loopback, read back with independent parsers
//! (`mail-parser` for MIME, `ical` for iCalendar). No mock transport.

mod common;

mod smtp_receiver;

use std::io::BufReader;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::Duration;
use mail_parser::{MessageParser, MimeHeaders};
use procedo::catalog::{self, Catalog};
use procedo::clock::{Clock, ManualClock};
use procedo::engine::{Actor, Command};
use procedo::notify::delivery::{
    self, DeliveryOptions, DeliveryWorker, MailSettings, NotifyDispatch,
};
use procedo::notify::{SmtpSettings, Transport, sample};
use procedo::scheduler::{CronJob, Dispatch, DispatchError, Options, Outcome, Scheduler};
use procedo::service::Service;
use procedo::store::{
    DeliveryFilter, DeliveryRow, DeliveryStatus, NewOrganisation, NewPerson, NewSubmission,
    OrganisationKind, OutboxStatus, Store, Submitted,
};
use serde_json::{Value, json};
use smtp_receiver::{Received, Receiver};

const FROM: &str = "Ufficio di Piano – Borgo Fiorito <ufficiodipiano@borgofiorito.example.it>";
const MAIL_DOMAIN: &str = "borgofiorito.example.it";
const AMBITO: &str = "Ambito territoriale di Borgo Fiorito";
/// Thursday 14 January 2027, 17:00 in Rome.
const SEDUTA: &str = "2027-01-14T17:00:00+01:00";
/// The key personal links are signed with in these tests.
const LINK_KEY: &[u8] = b"chiave di prova dei collegamenti personali, 32+";
const SEDUTA_SPOSTATA: &str = "2027-01-21T17:00:00+01:00";

// ---------------------------------------------------------------------------------------------
// The SMTP receiver.

impl Receiver {
    /// The messages received for one address.
    fn for_address(&self, address: &str) -> Vec<Opened> {
        self.messages()
            .iter()
            .filter(|message| message.recipients == [address])
            .map(open)
            .collect()
    }
}

/// A port on loopback where nothing listens (until a receiver is started on it).
fn silent_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.local_addr().expect("local address").port()
}

fn smtp_to(port: u16) -> Transport {
    Transport::smtp(&SmtpSettings {
        rate: None,
        url: format!("smtp://127.0.0.1:{port}?tls=none"),
        from: FROM.to_owned(),
        timeout: Some(std::time::Duration::from_secs(10)),
    })
    .expect("SMTP transport")
}

/// A received message taken apart by `mail-parser`.
#[derive(Debug)]
struct Opened {
    message_id: String,
    subject: String,
    text: String,
    calendar_method: String,
    calendar: String,
}

fn open(received: &Received) -> Opened {
    let message = MessageParser::default()
        .parse(&received.raw)
        .expect("a parsable RFC 5322 message");
    let calendar_part = message.parts.iter().find(|part| {
        part.content_type().is_some_and(|content_type| {
            content_type.ctype() == "text" && content_type.subtype() == Some("calendar")
        })
    });
    Opened {
        message_id: message.message_id().unwrap_or_default().to_owned(),
        subject: message.subject().unwrap_or_default().to_owned(),
        text: message.body_text(0).unwrap_or_default().into_owned(),
        calendar_method: calendar_part
            .and_then(|part| part.content_type())
            .and_then(|content_type| content_type.attribute("method"))
            .unwrap_or_default()
            .to_owned(),
        calendar: calendar_part
            .and_then(|part| part.text_contents())
            .unwrap_or_default()
            .to_owned(),
    }
}

/// What a test checks in a received invite, read by the `ical` crate.
#[derive(Debug)]
struct Invite {
    method: String,
    uid: String,
    sequence: String,
    dtstart: String,
    dtstart_tzid: String,
    status: String,
    attendees: usize,
    timezone_ids: Vec<String>,
}

fn parse_invite(ics: &str) -> Invite {
    let calendar = ical::IcalParser::new(BufReader::new(ics.as_bytes()))
        .next()
        .expect("one calendar")
        .expect("valid iCalendar");
    let value = |properties: &[ical::property::Property], name: &str| {
        properties
            .iter()
            .find(|property| property.name == name)
            .and_then(|property| property.value.clone())
            .unwrap_or_default()
    };
    assert_eq!(calendar.events.len(), 1, "one VEVENT");
    let event = &calendar.events[0].properties;
    let dtstart = event
        .iter()
        .find(|property| property.name == "DTSTART")
        .expect("DTSTART");
    Invite {
        method: value(&calendar.properties, "METHOD"),
        uid: value(event, "UID"),
        sequence: value(event, "SEQUENCE"),
        dtstart: dtstart.value.clone().unwrap_or_default(),
        dtstart_tzid: dtstart
            .params
            .iter()
            .flatten()
            .find(|(name, _)| name == "TZID")
            .and_then(|(_, values)| values.first().cloned())
            .unwrap_or_default(),
        status: value(event, "STATUS"),
        attendees: event
            .iter()
            .filter(|property| property.name == "ATTENDEE")
            .count(),
        timezone_ids: calendar
            .timezones
            .iter()
            .map(|timezone| value(&timezone.properties, "TZID"))
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// The world: store, clock, service, scheduler with the notification dispatchers, worker.

/// The three invented mayors of `sample`: (person id, name, address).
fn mayors() -> Vec<(String, String, String)> {
    sample::mayors()
        .into_iter()
        .enumerate()
        .map(|(index, (name, email))| (format!("sindaco-{}", index + 1), name, email))
        .collect()
}

fn shipped_catalog() -> Catalog {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("workflows");
    let (catalog, diagnostics) = catalog::load(&[dir]);
    assert!(
        diagnostics.is_empty(),
        "shipped workflows must validate: {diagnostics:?}"
    );
    catalog.expect("catalog")
}

struct World {
    backend: String,
    store: Store,
    clock: ManualClock,
    service: Service,
    scheduler: Scheduler,
    worker: DeliveryWorker,
    mail: MailSettings,
    _scratch: common::Scratch,
    _files: tempfile::TempDir,
}

/// What differs between the tests' worlds.
struct Setup {
    /// Mayors (by index into `mayors()`) who prefer the daily digest.
    digest_mayors: Vec<usize>,
    /// The daily digest at 08:00 as a recurring job.
    digest_job: bool,
    max_attempts: u32,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            digest_mayors: Vec::new(),
            digest_job: false,
            max_attempts: 5,
        }
    }
}

impl World {
    async fn build(
        backend: String,
        store: Store,
        scratch: common::Scratch,
        transport: Transport,
        setup: &Setup,
    ) -> World {
        let clock = ManualClock::new(common::at("2026-12-01T09:00:00+01:00"));
        let service = Service::new(store.clone(), Arc::new(clock.clone()));
        let catalog = shipped_catalog();
        service.install(&catalog).await.expect("install");
        let now = clock.now();
        for (index, (id, name, email)) in mayors().into_iter().enumerate() {
            let organisation = format!("comune-{}", index + 1);
            store
                .add_organisation(&NewOrganisation {
                    id: organisation.clone(),
                    name: format!("Comune n. {}", index + 1),
                    kind: OrganisationKind::Comune,
                    codice_fiscale: None,
                    runts: None,
                    pec: None,
                    at: now,
                })
                .await
                .expect("comune");
            let digest = if setup.digest_mayors.contains(&index) {
                "giornaliero"
            } else {
                "immediato"
            };
            store
                .add_person(&NewPerson {
                    id,
                    name,
                    email,
                    organisation_id: organisation,
                    roles: vec!["sindaco".to_owned()],
                    digest: digest.to_owned(),
                    at: now,
                })
                .await
                .expect("sindaco");
        }
        let mut mail = MailSettings::new(catalog.templates, transport);
        mail.from = FROM.to_owned();
        mail.ambito = AMBITO.to_owned();
        mail.links = Some(procedo::notify::delivery::LinkSettings {
            key: LINK_KEY.to_vec(),
            base_url: "https://procedo.ambito.example.it".to_owned(),
        });
        mail.delivery = DeliveryOptions {
            worker_id: "postino".to_owned(),
            batch: 50,
            concurrency: 4,
            max_attempts: setup.max_attempts,
            backoff: std::time::Duration::from_secs(60),
            max_backoff: std::time::Duration::from_secs(3600),
            lease: Duration::minutes(5),
            heartbeat: None,
            poll_interval: std::time::Duration::from_millis(10),
        };
        let cron = if setup.digest_job {
            vec![CronJob::new("riepilogo", "0 0 8 * * *", "digest").expect("digest job")]
        } else {
            Vec::new()
        };
        let options = Options {
            worker_id: "pianificatore".to_owned(),
            lease: Duration::seconds(30),
            cron,
            ..Options::default()
        };
        let files = tempfile::tempdir().expect("files dir");
        let mut settings = procedo::protocollo::Settings::local(AMBITO);
        settings.files_dir = files.path().join("files");
        settings.conservation_dir = files.path().join("conservazione");
        let protocollo =
            procedo::protocollo::Protocollo::new(service.clone(), &settings).expect("protocollo");
        let scheduler = procedo::protocollo::install(
            delivery::install(
                Scheduler::new(service.clone(), options).expect("scheduler"),
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
        World {
            backend,
            store,
            clock,
            service,
            scheduler,
            worker,
            mail,
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

    async fn convened_meeting(&self) -> String {
        let presidente = Actor {
            id: "presidente".into(),
            role: "ufficio_di_piano".into(),
        };
        let variables = json!({
            "organo": "Assemblea dei Sindaci",
            "ordine_del_giorno": ["Approvazione del verbale della seduta precedente", "Piano di Zona 2027-2029"],
            "luogo": "Sala consiliare del Comune di Borgo Fiorito",
            "data_seduta": SEDUTA,
            // Every comune of the test is a member of this Assemblea.
            "membri": (1..=mayors().len()).map(|i| format!("comune-{i}")).collect::<Vec<_>>(),
        });
        let started = self
            .service
            .start(
                "convocazione_assemblea",
                None,
                variables.as_object().cloned().unwrap_or_default(),
                &presidente,
                None,
            )
            .await
            .expect("start");
        let id = started.instance.id;
        self.fire(&id, "convoca", json!({})).await;
        id
    }

    async fn fire(&self, id: &str, event: &str, payload: Value) {
        let command = Command {
            event: event.into(),
            actor: Actor {
                id: "presidente".into(),
                role: "ufficio_di_piano".into(),
            },
            payload: payload.as_object().cloned().unwrap_or_default(),
            participant: None,
        };
        self.service
            .fire(id, &command, None)
            .await
            .unwrap_or_else(|error| panic!("{}: {event}: {error}", self.backend));
    }

    async fn deliveries(&self, kind: &str) -> Vec<DeliveryRow> {
        self.store
            .deliveries(&DeliveryFilter::default())
            .await
            .expect("deliveries")
            .into_iter()
            .filter(|delivery| delivery.kind == kind)
            .collect()
    }
}

/// A world per backend, each with the transport `transport` gives it.
async fn worlds(setup: &Setup, mut transport: impl FnMut() -> Transport) -> Vec<World> {
    let mut out = Vec::new();
    for (backend, store, scratch) in common::scratch_stores().await {
        out.push(World::build(backend, store, scratch, transport(), setup).await);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Convocations, moves and cancellations.

#[tokio::test]
async fn a_convocation_reaches_every_mayor_with_the_subject_the_italian_date_and_a_valid_invite() {
    let mut receivers = Vec::new();
    let worlds = worlds(&Setup::default(), || {
        let (receiver, port) = started(&[]);
        receivers.push(receiver);
        smtp_to(port)
    })
    .await;
    for (world, receiver) in worlds.iter().zip(&receivers) {
        let backend = &world.backend;
        let id = world.convened_meeting().await;
        world.settle().await;

        let deliveries = world.deliveries("convocazione").await;
        assert_eq!(deliveries.len(), 3, "{backend}: {deliveries:#?}");
        assert_eq!(receiver.messages().len(), 3, "{backend}");
        for (person, name, address) in mayors() {
            let delivery = deliveries
                .iter()
                .find(|delivery| delivery.recipient_email == address)
                .unwrap_or_else(|| panic!("{backend}: no delivery for {person}"));
            assert_eq!(
                delivery.status,
                DeliveryStatus::Sent,
                "{backend}: {delivery:#?}"
            );
            assert_eq!(delivery.attempts, 1, "{backend}");
            assert!(
                delivery
                    .server_answer
                    .as_deref()
                    .is_some_and(|answer| answer.starts_with("250")),
                "{backend}: {delivery:#?}"
            );
            assert!(delivery.sent_at.is_some(), "{backend}");
            assert!(delivery.urgent, "{backend}");

            let inbox = receiver.for_address(&address);
            assert_eq!(inbox.len(), 1, "{backend}: {address} got {}", inbox.len());
            let message = &inbox[0];
            assert_eq!(
                format!("<{}>", message.message_id),
                delivery.message_id,
                "{backend}"
            );
            assert_eq!(
                message.message_id,
                format!("delivery-{}-{person}@{MAIL_DOMAIN}", delivery.outbox_id),
                "{backend}"
            );
            assert_eq!(
                message.subject, "Convocazione Assemblea dei Sindaci – giovedì 14 gennaio 2027",
                "{backend}"
            );
            assert!(
                message.text.contains(&format!("Gentile {name},")),
                "{backend}"
            );
            assert!(
                message
                    .text
                    .contains("Data e ora: giovedì 14 gennaio 2027, ore 17:00"),
                "{backend}: {}",
                message.text
            );
            assert!(message.text.contains(AMBITO), "{backend}");
            // Each mayor's personal link answers for their own comune, until the meeting.
            let link = message
                .text
                .split_whitespace()
                .find(|w| w.starts_with("https://procedo.ambito.example.it/risposta/"))
                .unwrap_or_else(|| panic!("{backend}: no personal link in {}", message.text));
            let token = link.trim_start_matches("https://procedo.ambito.example.it/risposta/");
            let seat = person.replace("sindaco-", "comune-");
            let verified = procedo::identity::links::verify(
                LINK_KEY,
                token,
                common::at("2027-01-14T16:59:00+01:00").timestamp(),
            )
            .unwrap_or_else(|e| panic!("{backend}: {e}"));
            assert_eq!(
                (verified.instance_id.as_str(), verified.seat.as_str()),
                (id.as_str(), seat.as_str()),
                "{backend}"
            );
            assert!(
                procedo::identity::links::verify(
                    LINK_KEY,
                    token,
                    common::at("2027-01-14T17:00:01+01:00").timestamp()
                )
                .is_err(),
                "{backend}: it expires with the meeting"
            );
            assert!(
                message.text.contains("1. Approvazione del verbale"),
                "{backend}"
            );
            // The convocation is registered before it leaves, and cites its number.
            assert!(
                message
                    .text
                    .contains(&format!("{AMBITO} – prot. n. 0000001 del 01/12/2026")),
                "{backend}: {}",
                message.text
            );
            assert_eq!(message.calendar_method, "REQUEST", "{backend}");

            let invite = parse_invite(&message.calendar);
            assert_eq!(invite.method, "REQUEST", "{backend}");
            assert_eq!(invite.uid, format!("{id}@{MAIL_DOMAIN}"), "{backend}");
            assert_eq!(invite.sequence, "0", "{backend}");
            assert_eq!(invite.dtstart, "20270114T170000", "{backend}");
            assert_eq!(invite.dtstart_tzid, "Europe/Rome", "{backend}");
            assert_eq!(invite.status, "CONFIRMED", "{backend}");
            assert_eq!(invite.timezone_ids, ["Europe/Rome"], "{backend}");
            assert_eq!(invite.attendees, 3, "{backend}");
        }
        // The agenda is the invite's description.
        let first = &receiver.messages()[0];
        let unfolded = open(first).calendar.replace("\r\n ", "");
        assert!(
            unfolded.contains("DESCRIPTION:Ordine del giorno:\\n1. Approvazione del verbale"),
            "{backend}: {unfolded}"
        );
        assert!(
            unfolded.contains("ORGANIZER;CN=Ufficio di Piano – Borgo Fiorito:mailto:ufficiodipiano@borgofiorito.example.it"),
            "{backend}: {unfolded}"
        );
    }
}

#[tokio::test]
async fn a_moved_meeting_sends_an_update_with_the_same_uid_and_sequence_plus_one() {
    let mut receivers = Vec::new();
    let worlds = worlds(&Setup::default(), || {
        let (receiver, port) = started(&[]);
        receivers.push(receiver);
        smtp_to(port)
    })
    .await;
    for (world, receiver) in worlds.iter().zip(&receivers) {
        let backend = &world.backend;
        let id = world.convened_meeting().await;
        world.settle().await;
        world.clock.advance(Duration::days(3));
        world
            .fire(&id, "sposta", json!({ "data_seduta": SEDUTA_SPOSTATA }))
            .await;
        world.settle().await;

        for (_, _, address) in mayors() {
            let inbox = receiver.for_address(&address);
            assert_eq!(inbox.len(), 2, "{backend}: {address}");
            let first = parse_invite(&inbox[0].calendar);
            let update = parse_invite(&inbox[1].calendar);
            assert_eq!(update.method, "REQUEST", "{backend}");
            assert_eq!(
                update.uid, first.uid,
                "{backend}: one UID for the meeting's life"
            );
            assert_eq!(update.uid, format!("{id}@{MAIL_DOMAIN}"), "{backend}");
            assert_eq!(
                (first.sequence.as_str(), update.sequence.as_str()),
                ("0", "1"),
                "{backend}"
            );
            assert_eq!(update.dtstart, "20270121T170000", "{backend}");
            assert_eq!(update.dtstart_tzid, "Europe/Rome", "{backend}");
            assert_eq!(
                inbox[1].subject, "Convocazione Assemblea dei Sindaci – giovedì 21 gennaio 2027",
                "{backend}"
            );
            assert_ne!(inbox[0].message_id, inbox[1].message_id, "{backend}");
        }
    }
}

#[tokio::test]
async fn a_cancelled_meeting_sends_method_cancel_with_the_same_uid_and_a_higher_sequence() {
    let mut receivers = Vec::new();
    let worlds = worlds(&Setup::default(), || {
        let (receiver, port) = started(&[]);
        receivers.push(receiver);
        smtp_to(port)
    })
    .await;
    for (world, receiver) in worlds.iter().zip(&receivers) {
        let backend = &world.backend;
        let id = world.convened_meeting().await;
        world.settle().await;
        world.clock.advance(Duration::days(1));
        world
            .fire(&id, "sposta", json!({ "data_seduta": SEDUTA_SPOSTATA }))
            .await;
        world.settle().await;
        world.clock.advance(Duration::days(1));
        world.fire(&id, "annulla", json!({})).await;
        world.settle().await;

        for (_, _, address) in mayors() {
            let inbox = receiver.for_address(&address);
            assert_eq!(inbox.len(), 3, "{backend}: {address}");
            let cancel = &inbox[2];
            assert_eq!(
                cancel.subject, "Annullata: Assemblea dei Sindaci – giovedì 21 gennaio 2027",
                "{backend}"
            );
            assert_eq!(cancel.calendar_method, "CANCEL", "{backend}");
            let invite = parse_invite(&cancel.calendar);
            assert_eq!(invite.method, "CANCEL", "{backend}");
            assert_eq!(invite.status, "CANCELLED", "{backend}");
            assert_eq!(invite.uid, format!("{id}@{MAIL_DOMAIN}"), "{backend}");
            assert_eq!(invite.sequence, "2", "{backend}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Nothing lost, nothing twice.

#[tokio::test]
async fn while_smtp_is_down_the_messages_wait_and_go_out_exactly_once_when_it_returns() {
    let mut ports = Vec::new();
    let worlds = worlds(&Setup::default(), || {
        let port = silent_port();
        ports.push(port);
        smtp_to(port)
    })
    .await;
    for (world, port) in worlds.iter().zip(ports) {
        let backend = &world.backend;
        world.convened_meeting().await;
        world.settle().await;
        let now = world.clock.now();

        // Down: every delivery waits, with its attempt, the reason and a later due instant.
        let waiting = world.deliveries("convocazione").await;
        assert_eq!(waiting.len(), 3, "{backend}");
        for delivery in &waiting {
            assert_eq!(
                delivery.status,
                DeliveryStatus::Pending,
                "{backend}: {delivery:#?}"
            );
            assert_eq!(delivery.attempts, 1, "{backend}");
            assert!(delivery.next_attempt_at > now, "{backend}: {delivery:#?}");
            assert!(
                delivery.next_attempt_at <= now + Duration::seconds(60),
                "{backend}: the first retry waits at most the base backoff"
            );
            let error = delivery.last_error.as_deref().unwrap_or_default();
            assert!(error.contains("non è raggiungibile"), "{backend}: {error}");
            assert!(
                error.contains(&format!("127.0.0.1:{port}")),
                "{backend}: {error}"
            );
            assert_eq!(delivery.last_code, None, "{backend}");
            assert!(
                delivery.lease_until.is_none(),
                "{backend}: the claim is given back"
            );
        }
        // Jitter: the three retries are not all due at the same instant.
        let instants: std::collections::BTreeSet<_> = waiting
            .iter()
            .map(|delivery| delivery.next_attempt_at)
            .collect();
        assert!(instants.len() > 1, "{backend}: {instants:?}");
        // Not due yet: nothing is tried.
        world.clock.advance(Duration::seconds(20));
        assert_eq!(world.worker.tick().await.expect("tick"), 0, "{backend}");
        // Still down at the second attempt.
        world.clock.advance(Duration::minutes(2));
        world.settle().await;
        for delivery in world.deliveries("convocazione").await {
            assert_eq!(
                (delivery.status, delivery.attempts),
                (DeliveryStatus::Pending, 2),
                "{backend}"
            );
        }

        // Back up on the same port: each message goes out once.
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("the port is free again");
        let receiver = Receiver::on(listener, &[]);
        world.clock.advance(Duration::hours(2));
        world.settle().await;
        world.clock.advance(Duration::days(1));
        world.settle().await;
        for (_, _, address) in mayors() {
            assert_eq!(
                receiver.for_address(&address).len(),
                1,
                "{backend}: {address}"
            );
        }
        assert_eq!(receiver.messages().len(), 3, "{backend}");
        for delivery in world.deliveries("convocazione").await {
            assert_eq!(
                delivery.status,
                DeliveryStatus::Sent,
                "{backend}: {delivery:#?}"
            );
            assert_eq!(delivery.attempts, 3, "{backend}");
            assert!(delivery.lease_until.is_none(), "{backend}");
        }
    }
}

#[tokio::test]
async fn a_recipient_refused_permanently_fails_visibly_and_the_others_go_out() {
    let refused = mayors()[1].2.clone();
    let mut receivers = Vec::new();
    let worlds = worlds(&Setup::default(), || {
        let (receiver, port) = started(&[(refused.as_str(), 550)]);
        receivers.push(receiver);
        smtp_to(port)
    })
    .await;
    for (world, receiver) in worlds.iter().zip(&receivers) {
        let backend = &world.backend;
        world.convened_meeting().await;
        world.settle().await;
        world.clock.advance(Duration::days(1));
        world.settle().await;

        let failed = world
            .store
            .deliveries(&DeliveryFilter {
                status: Some(DeliveryStatus::Failed),
                ..DeliveryFilter::default()
            })
            .await
            .expect("failed deliveries");
        assert_eq!(failed.len(), 1, "{backend}: {failed:#?}");
        assert_eq!(failed[0].recipient_email, refused, "{backend}");
        assert_eq!(failed[0].last_code, Some(550), "{backend}");
        assert_eq!(failed[0].attempts, 1, "{backend}: a refusal is not retried");
        let error = failed[0].last_error.as_deref().unwrap_or_default();
        assert!(
            error.contains("550") && error.contains("Mailbox unavailable"),
            "{backend}: {error}"
        );

        let sent = world
            .store
            .deliveries(&DeliveryFilter {
                status: Some(DeliveryStatus::Sent),
                ..DeliveryFilter::default()
            })
            .await
            .expect("sent deliveries");
        assert_eq!(sent.len(), 2, "{backend}");
        assert!(receiver.for_address(&refused).is_empty(), "{backend}");
        assert_eq!(receiver.messages().len(), 2, "{backend}");
        // The outbox row itself is done: the failure is the delivery's, for one person.
        let rows = world.store.outbox_rows(None).await.expect("outbox");
        assert!(
            rows.iter()
                .filter(|row| row.kind == "notify")
                .all(|row| row.status == OutboxStatus::Done),
            "{backend}: {rows:#?}"
        );
    }
}

#[tokio::test]
async fn after_the_last_attempt_a_delivery_is_failed_and_kept_never_dropped() {
    let setup = Setup {
        max_attempts: 2,
        ..Setup::default()
    };
    let worlds = worlds(&setup, || smtp_to(silent_port())).await;
    for world in &worlds {
        let backend = &world.backend;
        world.convened_meeting().await;
        world.settle().await;
        world.clock.advance(Duration::hours(1));
        world.settle().await;
        world.clock.advance(Duration::days(1));
        world.settle().await;
        let deliveries = world.deliveries("convocazione").await;
        assert_eq!(deliveries.len(), 3, "{backend}");
        for delivery in deliveries {
            assert_eq!(
                delivery.status,
                DeliveryStatus::Failed,
                "{backend}: {delivery:#?}"
            );
            assert_eq!(delivery.attempts, 2, "{backend}");
            let error = delivery.last_error.unwrap_or_default();
            assert!(
                error.contains("abbandonata dopo 2 tentativi"),
                "{backend}: {error}"
            );
        }
    }
}

#[tokio::test]
async fn a_notification_dispatched_again_after_a_crash_creates_no_second_delivery() {
    let mut receivers = Vec::new();
    let worlds = worlds(&Setup::default(), || {
        let (receiver, port) = started(&[]);
        receivers.push(receiver);
        smtp_to(port)
    })
    .await;
    for (world, receiver) in worlds.iter().zip(&receivers) {
        let backend = &world.backend;
        world.convened_meeting().await;
        world.settle().await;
        let row = world
            .store
            .outbox_rows(None)
            .await
            .expect("outbox")
            .into_iter()
            .find(|row| row.kind == "notify")
            .expect("the convocation row");
        // The scheduler died after the fan-out and before marking the row done: it runs again.
        let dispatch = NotifyDispatch::new(world.service.clone(), &world.mail);
        dispatch.dispatch(&row).await.expect("dispatched again");
        dispatch.dispatch(&row).await.expect("and again");
        world.clock.advance(Duration::days(1));
        world.settle().await;
        assert_eq!(world.deliveries("convocazione").await.len(), 3, "{backend}");
        assert_eq!(receiver.messages().len(), 3, "{backend}");
    }
}

#[tokio::test]
async fn a_delivery_held_by_a_worker_that_died_is_sent_after_the_lease_with_the_same_message_id() {
    let mut receivers = Vec::new();
    let worlds = worlds(&Setup::default(), || {
        let (receiver, port) = started(&[]);
        receivers.push(receiver);
        smtp_to(port)
    })
    .await;
    for (world, receiver) in worlds.iter().zip(&receivers) {
        let backend = &world.backend;
        world.convened_meeting().await;
        // Let the scheduler fan out, but do not send yet.
        while world.scheduler.tick().await.expect("tick") != Outcome::Idle {}
        // Another worker claims everything and dies before sending.
        let claimed = world
            .store
            .claim_deliveries(world.clock.now(), 10, "morto", Duration::minutes(5))
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 3, "{backend}");
        assert_eq!(
            world.worker.tick().await.expect("tick"),
            0,
            "{backend}: held by the dead worker"
        );
        // Its lease runs out: this worker sends them, once, under the ids chosen at creation.
        world.clock.advance(Duration::minutes(6));
        world.settle().await;
        let deliveries = world.deliveries("convocazione").await;
        for delivery in &deliveries {
            assert_eq!(delivery.status, DeliveryStatus::Sent, "{backend}");
            assert_eq!(delivery.attempts, 2, "{backend}: the dead claim counts");
            assert_eq!(delivery.claimed_by.as_deref(), Some("postino"), "{backend}");
        }
        let mut received: Vec<String> = receiver
            .messages()
            .iter()
            .map(|message| format!("<{}>", open(message).message_id))
            .collect();
        let mut expected: Vec<String> = deliveries
            .iter()
            .map(|delivery| delivery.message_id.clone())
            .collect();
        received.sort();
        expected.sort();
        assert_eq!(received, expected, "{backend}");
        // The dead worker's late record changes nothing.
        assert!(
            !world
                .store
                .delivery_sent(claimed[0].id, "morto", "250 tardi", world.clock.now())
                .await
                .expect("late record"),
            "{backend}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Preferences and recipients.

#[tokio::test]
async fn a_person_who_prefers_the_digest_gets_one_riepilogo_instead_of_a_non_urgent_message() {
    let setup = Setup {
        digest_mayors: vec![1],
        digest_job: true,
        ..Setup::default()
    };
    let mut receivers = Vec::new();
    let worlds = worlds(&setup, || {
        let (receiver, port) = started(&[]);
        receivers.push(receiver);
        smtp_to(port)
    })
    .await;
    let digest_mayor = mayors()[1].clone();
    for (world, receiver) in worlds.iter().zip(&receivers) {
        let backend = &world.backend;
        world.convened_meeting().await;
        world.settle().await;
        // The convocation is urgent: the digest reader gets it at once like everyone.
        assert_eq!(receiver.for_address(&digest_mayor.2).len(), 1, "{backend}");

        // That morning's digest has nothing to send; seven days before the meeting, at 17:00,
        // the (non-urgent) reminder fires.
        world.clock.set(common::at("2027-01-07T08:00:00+01:00"));
        world.settle().await;
        world.clock.set(common::at("2027-01-07T17:00:00+01:00"));
        world.settle().await;
        let reminders = world.deliveries("promemoria_scadenza").await;
        assert_eq!(reminders.len(), 3, "{backend}: {reminders:#?}");
        let held: Vec<&DeliveryRow> = reminders
            .iter()
            .filter(|delivery| delivery.status == DeliveryStatus::Held)
            .collect();
        assert_eq!(held.len(), 1, "{backend}");
        assert_eq!(
            held[0].person_id.as_deref(),
            Some(digest_mayor.0.as_str()),
            "{backend}"
        );
        for (_, _, address) in [&mayors()[0], &mayors()[2]] {
            let inbox = receiver.for_address(address);
            assert_eq!(inbox.len(), 2, "{backend}: {address}");
            assert!(
                inbox[1]
                    .subject
                    .starts_with("Promemoria: scadenza giovedì 14 gennaio 2027, ore 17:00"),
                "{backend}: {}",
                inbox[1].subject
            );
        }
        assert_eq!(
            receiver.for_address(&digest_mayor.2).len(),
            1,
            "{backend}: held"
        );

        // The next morning at 8:00 the digest job runs: one riepilogo listing the reminder.
        world.clock.set(common::at("2027-01-08T08:00:00+01:00"));
        world.settle().await;
        world.clock.advance(Duration::hours(1));
        world.settle().await;
        let inbox = receiver.for_address(&digest_mayor.2);
        assert_eq!(inbox.len(), 2, "{backend}: {inbox:#?}");
        let riepilogo = &inbox[1];
        assert_eq!(
            riepilogo.subject, "Riepilogo del 08/01/2027 – 1 novità",
            "{backend}"
        );
        assert!(
            riepilogo
                .text
                .contains(&format!("Gentile {},", digest_mayor.1)),
            "{backend}"
        );
        assert!(
            riepilogo
                .text
                .contains("1. Convocazione dell'Assemblea dei Sindaci: Promemoria: scadenza giovedì 14 gennaio 2027"),
            "{backend}: {}",
            riepilogo.text
        );
        assert!(
            riepilogo.text.contains("scadenza: giovedì 14 gennaio 2027"),
            "{backend}: {}",
            riepilogo.text
        );
        assert!(
            inbox
                .iter()
                .all(|message| !message.subject.starts_with("Promemoria")),
            "{backend}"
        );
        let digested = world
            .store
            .deliveries(&DeliveryFilter {
                status: Some(DeliveryStatus::Digested),
                ..DeliveryFilter::default()
            })
            .await
            .expect("digested");
        assert_eq!(digested.len(), 1, "{backend}");
        assert_eq!(
            world.deliveries("riepilogo_giornaliero").await.len(),
            1,
            "{backend}"
        );
        // The next day's digest has nothing to say to anyone: no email.
        world.clock.set(common::at("2027-01-09T08:30:00+01:00"));
        world.settle().await;
        assert_eq!(receiver.for_address(&digest_mayor.2).len(), 2, "{backend}");
    }
}

#[tokio::test]
async fn an_ets_notification_goes_only_to_the_organisations_that_submitted() {
    let mail_dir = tempfile::tempdir().expect("mail dir");
    let worlds = worlds(&Setup::default(), || Transport::files(mail_dir.path())).await;
    let rup = Actor {
        id: "rup".into(),
        role: "rup".into(),
    };
    let command = |event: &str, payload: Value| Command {
        event: event.into(),
        actor: rup.clone(),
        payload: payload.as_object().cloned().unwrap_or_default(),
        participant: None,
    };
    for world in &worlds {
        let backend = &world.backend;
        let now = world.clock.now();
        for (organisation, person, email) in [
            ("ets-ponte", "ets-ponte-1", "progetti@ilponte.example.org"),
            (
                "ets-orizzonti",
                "ets-orizzonti-1",
                "segreteria@orizzonti.example.org",
            ),
        ] {
            world
                .store
                .add_organisation(&NewOrganisation {
                    id: organisation.into(),
                    name: organisation.into(),
                    kind: OrganisationKind::Ets,
                    codice_fiscale: None,
                    runts: None,
                    pec: None,
                    at: now,
                })
                .await
                .expect("ets");
            world
                .store
                .add_person(&NewPerson {
                    id: person.into(),
                    name: format!("Referente {organisation}"),
                    email: email.into(),
                    organisation_id: organisation.into(),
                    roles: vec!["ets".into()],
                    digest: "immediato".into(),
                    at: now,
                })
                .await
                .expect("referente");
        }
        let started = world
            .service
            .start(
                "avviso_coprogettazione",
                None,
                json!({"oggetto": "Servizi per l'inclusione"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                &rup,
                None,
            )
            .await
            .expect("avviso");
        let id = started.instance.id;
        world
            .service
            .fire(
                &id,
                &command("pubblica", json!({"data_pubblicazione": "2026-12-01", "atto_criteri": "determina n. 12 del 26/11/2026"})),
                None,
            )
            .await
            .expect("pubblica");
        world.settle().await;
        // Before anyone submitted, every ETS hears of the avviso.
        assert_eq!(
            world.deliveries("avviso_pubblicato").await.len(),
            2,
            "{backend}"
        );

        let submitted = world
            .service
            .submit(
                &NewSubmission {
                    id: "domanda-1".into(),
                    instance_id: id.clone(),
                    organisation_id: "ets-ponte".into(),
                    person_id: "ets-ponte-1".into(),
                    note: None,
                    documents: Vec::new(),
                    at: now,
                },
                &procedo::service::Group::default(),
                &procedo::engine::Actor {
                    id: "ets-ponte-1".into(),
                    role: "ets".into(),
                },
            )
            .await
            .expect("submit");
        assert!(matches!(submitted, Submitted::Created(_)), "{backend}");
        world.clock.set(common::at("2027-01-12T09:00:00+01:00"));
        world.settle().await;
        world
            .service
            .fire(
                &id,
                &Command {
                    participant: Some("domanda-1".into()),
                    ..command("richiedi_soccorso", json!({"documenti_mancanti": ["DURC"]}))
                },
                None,
            )
            .await
            .expect("soccorso");
        world.settle().await;
        let soccorso = world.deliveries("soccorso_istruttorio").await;
        let recipients: Vec<&str> = soccorso
            .iter()
            .map(|delivery| delivery.recipient_email.as_str())
            .collect();
        assert_eq!(recipients, ["progetti@ilponte.example.org"], "{backend}");

        // A procedure that is not a public notice reaches only the ETS it names as a party.
        let accreditamento = world
            .service
            .start(
                "accreditamento",
                None,
                json!({"ente": ["ets-orizzonti"], "data_domanda": "2027-01-11"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                &rup,
                None,
            )
            .await
            .expect("accreditamento");
        world
            .service
            .fire(
                &accreditamento.instance.id,
                &command(
                    "richiedi_soccorso",
                    json!({"documenti_mancanti": ["Polizza RC"]}),
                ),
                None,
            )
            .await
            .expect("soccorso");
        world.settle().await;
        let recipients: Vec<String> = world
            .deliveries("soccorso_istruttorio")
            .await
            .into_iter()
            .filter(|d| d.instance_id.as_deref() == Some(accreditamento.instance.id.as_str()))
            .map(|d| d.recipient_email)
            .collect();
        assert_eq!(
            recipients,
            ["segreteria@orizzonti.example.org"],
            "{backend}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Failures that are the message's.

#[tokio::test]
async fn a_template_missing_a_variable_fails_the_notification_naming_template_and_variable() {
    let mail_dir = tempfile::tempdir().expect("mail dir");
    let worlds = worlds(&Setup::default(), || Transport::files(mail_dir.path())).await;
    for world in &worlds {
        let backend = &world.backend;
        world.convened_meeting().await;
        let mut row = world
            .store
            .outbox_rows(None)
            .await
            .expect("outbox")
            .into_iter()
            .find(|row| row.kind == "notify")
            .expect("the convocation row");
        if let procedo::engine::Effect::Notify(plan) = &mut row.payload
            && let Some(context) = plan.context.as_object_mut()
        {
            context.remove("organo");
            // Not waiting for the protocol number: the rendering is what is tested.
            plan.protocol = None;
        }
        let error = NotifyDispatch::new(world.service.clone(), &world.mail)
            .dispatch(&row)
            .await
            .expect_err("cannot render");
        let DispatchError::Permanent(message) = &error else {
            panic!("{backend}: a render error is permanent: {error:?}");
        };
        assert!(
            message.contains("convocazione") && message.contains("organo"),
            "{backend}: {message}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The worker as a process runs it.

#[tokio::test]
async fn the_running_worker_sends_what_is_due_and_stops_on_shutdown() {
    let mut dirs = Vec::new();
    let worlds = worlds(&Setup::default(), || {
        let dir = tempfile::tempdir().expect("mail dir");
        let transport = Transport::files(dir.path());
        dirs.push(dir);
        transport
    })
    .await;
    for (world, dir) in worlds.iter().zip(&dirs) {
        let backend = &world.backend;
        world.convened_meeting().await;
        while world.scheduler.tick().await.expect("tick") != Outcome::Idle {}
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(world.worker.clone().run(async move {
            let _ = stopped.await;
        }));
        // Wait for the condition (bounded), not for a fixed time.
        let sent = |world: &World| {
            let store = world.store.clone();
            async move {
                store
                    .deliveries(&DeliveryFilter {
                        status: Some(DeliveryStatus::Sent),
                        ..DeliveryFilter::default()
                    })
                    .await
                    .expect("deliveries")
                    .len()
            }
        };
        for _ in 0..500 {
            if sent(world).await == 3 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(sent(world).await, 3, "{backend}");
        stop.send(()).expect("the worker listens");
        tokio::time::timeout(std::time::Duration::from_secs(5), running)
            .await
            .expect("stops promptly")
            .expect("joined");
        let files = std::fs::read_dir(dir.path())
            .expect("mail dir")
            .filter_map(Result::ok)
            .filter(|entry| {
                entry
                    .path()
                    .extension()
                    .is_some_and(|extension| extension == "eml")
            })
            .count();
        assert_eq!(files, 3, "{backend}");
    }
}

/// A receiver and its port.
fn started(refusals: &[(&str, u16)]) -> (Receiver, u16) {
    let receiver = Receiver::start(refusals);
    let port = receiver.port;
    (receiver, port)
}

// ---------------------------------------------------------------------------------------------
// Leases kept alive while a send is slow.

/// A clock that flows with real time from a chosen instant: the workers' leases run out in
/// real seconds, while the procedure's dates stay those of the world.
#[derive(Debug)]
struct Flowing {
    from: chrono::DateTime<chrono::Utc>,
    started: std::time::Instant,
}

impl Clock for Flowing {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.from + Duration::from_std(self.started.elapsed()).unwrap_or(Duration::zero())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_that_outlasts_the_lease_stays_with_its_worker_and_arrives_once() {
    let mut receivers = Vec::new();
    let worlds = worlds(&Setup::default(), || {
        let (receiver, port) = started(&[]);
        receivers.push(receiver);
        smtp_to(port)
    })
    .await;
    for (world, receiver) in worlds.iter().zip(&receivers) {
        let backend = &world.backend;
        world.convened_meeting().await;
        while world.scheduler.tick().await.expect("tick") != Outcome::Idle {}
        assert_eq!(world.deliveries("convocazione").await.len(), 3, "{backend}");
        // The relay hangs 3 s on the first message: three times the lease.
        receiver.stall(std::time::Duration::from_secs(3), 1);
        let clock: Arc<dyn Clock> = Arc::new(Flowing {
            from: world.clock.now(),
            started: std::time::Instant::now(),
        });
        let worker = |name: &str| {
            DeliveryWorker::new(
                world.store.clone(),
                world.mail.transport.clone(),
                DeliveryOptions {
                    worker_id: name.to_owned(),
                    lease: Duration::seconds(1),
                    heartbeat: Some(std::time::Duration::from_millis(200)),
                    poll_interval: std::time::Duration::from_millis(50),
                    ..world.mail.delivery.clone()
                },
                clock.clone(),
            )
        };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let until = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            while !*stopped.borrow_and_update() {
                if stopped.changed().await.is_err() {
                    return;
                }
            }
        };
        let first = tokio::spawn(worker("primo").run(until(stopped.clone())));
        let second = tokio::spawn(worker("secondo").run(until(stopped.clone())));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let deliveries = world.deliveries("convocazione").await;
            if deliveries
                .iter()
                .all(|delivery| delivery.status == DeliveryStatus::Sent)
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{backend}: not all sent: {deliveries:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // Past the stall, with both workers still polling.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let _ = stop.send(true);
        first.await.expect("primo");
        second.await.expect("secondo");
        let mut ids: Vec<String> = receiver
            .messages()
            .iter()
            .map(|message| open(message).message_id)
            .collect();
        ids.sort();
        let total = ids.len();
        ids.dedup();
        assert_eq!((total, ids.len()), (3, 3), "{backend}: one copy each");
        for delivery in world.deliveries("convocazione").await {
            assert_eq!(delivery.attempts, 1, "{backend}: claimed once");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A failed delivery re-queued through the API.

/// Seeds a staff person and an ETS with a token each; returns (staff, ets) secrets.
async fn api_tokens(store: &Store, now: chrono::DateTime<chrono::Utc>) -> (String, String) {
    for (org, kind) in [
        ("ambito", OrganisationKind::Ambito),
        ("ets-aurora", OrganisationKind::Ets),
    ] {
        store
            .add_organisation(&NewOrganisation {
                id: org.into(),
                name: org.into(),
                kind,
                codice_fiscale: None,
                runts: None,
                pec: None,
                at: now,
            })
            .await
            .expect("organisation");
    }
    let mut secrets = Vec::new();
    for (person, org, role) in [
        ("ufficio", "ambito", "ufficio_di_piano"),
        ("aurora", "ets-aurora", "ets"),
    ] {
        store
            .add_person(&NewPerson {
                id: person.into(),
                name: person.into(),
                email: format!("{person}@example.org"),
                organisation_id: org.into(),
                roles: vec![role.into()],
                digest: "immediato".into(),
                at: now,
            })
            .await
            .expect("person");
        let secret = procedo::identity::new_secret();
        store
            .add_token(&procedo::store::NewToken {
                id: procedo::identity::new_token_id(),
                person_id: person.into(),
                role: role.into(),
                hash: secret.hash,
                at: now,
                expires_at: None,
            })
            .await
            .expect("token");
        secrets.push(secret.secret);
    }
    (secrets[0].clone(), secrets[1].clone())
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket subscribed to `deliveryFailed` with `token`.
async fn failure_socket(host: std::net::SocketAddr, token: &str) -> Socket {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{host}/graphql/ws")
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().expect("header"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connect");
    let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } });
    socket
        .send(Message::Text(init.to_string().into()))
        .await
        .expect("init");
    let ack = next_message(&mut socket).await.expect("ack");
    assert_eq!(ack["type"], "connection_ack", "{ack:#}");
    let subscribe = json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { deliveryFailed { id kind lastError } }" } });
    socket
        .send(Message::Text(subscribe.to_string().into()))
        .await
        .expect("subscribe");
    socket
}

/// The next message that is not a ping, or None after ten seconds.
async fn next_message(socket: &mut Socket) -> Option<Value> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let message = tokio::time::timeout(std::time::Duration::from_secs(10), socket.next())
            .await
            .ok()??
            .ok()?;
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).ok()?;
            if value["type"] != "ping" {
                return Some(value);
            }
        }
    }
}

/// The mail server was down and the only attempt allowed ran out: the deliveries failed, and
/// staff subscribed to failures heard of each once (an ETS may not listen). With
/// the server back, the Ufficio di Piano re-queues one through the API (an ETS may not): the
/// same email, with the same Message-ID, reaches the real SMTP receiver once; a delivery that
/// did not fail is not re-queued; the re-queue is in the audit log.
#[tokio::test]
async fn a_failed_delivery_requeued_through_the_api_arrives_with_its_message_id() {
    let mut ports = Vec::new();
    let setup = Setup {
        max_attempts: 1,
        ..Setup::default()
    };
    let worlds = worlds(&setup, || {
        let port = silent_port();
        ports.push(port);
        smtp_to(port)
    })
    .await;
    for (world, port) in worlds.iter().zip(ports) {
        let backend = &world.backend;
        let (staff, ets) = api_tokens(&world.store, world.clock.now()).await;
        let state =
            procedo::api::ApiState::new(world.service.clone(), procedo::api::Limits::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let host = listener.local_addr().expect("address");
        let address = format!("http://{host}/graphql");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(procedo::api::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        // Staff listen for failures; an ETS may not.
        let mut watcher = failure_socket(host, &staff).await;
        let mut intruder = failure_socket(host, &ets).await;
        let refused = next_message(&mut intruder).await.expect("an answer");
        assert_eq!(
            refused["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN",
            "{backend}: {refused:#}"
        );
        // Let the subscription take its starting point.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;

        world.convened_meeting().await;
        world.settle().await;
        let failed = world.deliveries("convocazione").await;
        assert_eq!(failed.len(), 3, "{backend}");
        let mut heard = std::collections::BTreeSet::new();
        while heard.len() < 3 {
            let event = next_message(&mut watcher)
                .await
                .unwrap_or_else(|| panic!("{backend}: a failure event ({heard:?} so far)"));
            let id = event["payload"]["data"]["deliveryFailed"]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("{backend}: {event:#}"))
                .to_string();
            assert!(heard.insert(id), "{backend}: each failure once");
        }
        assert!(
            failed.iter().all(|d| d.status == DeliveryStatus::Failed),
            "{backend}: {failed:#?}"
        );
        let target = failed[0].clone();
        let client = reqwest::Client::new();
        let gql = |token: String, query: &'static str, variables: Value| {
            let client = client.clone();
            let address = address.clone();
            async move {
                client
                    .post(&address)
                    .bearer_auth(token)
                    .json(&json!({ "query": query, "variables": variables }))
                    .send()
                    .await
                    .expect("POST")
                    .json::<Value>()
                    .await
                    .expect("JSON")
            }
        };
        const LIST: &str = "{ deliveries(status: FAILED) { id kind recipientEmail attempts lastError messageId } }";
        const REQUEUE: &str =
            "mutation($id: ID!) { requeueDelivery(id: $id) { id status attempts messageId } }";
        let listed = gql(staff.clone(), LIST, json!({})).await;
        let kinds: Vec<&str> = listed["data"]["deliveries"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["kind"].as_str())
            .collect();
        assert_eq!(
            kinds.iter().filter(|k| **k == "convocazione").count(),
            3,
            "{backend}: {listed:#}"
        );
        // Each failure told the Ufficio di Piano by an urgent message of its own — which, the
        // server being down, failed too, and alerted no one further.
        let alerts = world.deliveries("consegna_fallita").await;
        assert_eq!(alerts.len(), 3, "{backend}: {alerts:#?}");
        assert!(
            alerts
                .iter()
                .all(|a| a.recipient_email == "ufficio@example.org"),
            "{backend}"
        );
        assert!(
            alerts[0]
                .email
                .to_string()
                .contains("Consegna non riuscita: convocazione"),
            "{backend}: {}",
            alerts[0].email
        );
        assert_eq!(kinds.len(), 6, "{backend}: no alert about an alert");
        assert!(
            listed.to_string().contains("non è raggiungibile"),
            "{backend}: the last error is shown: {listed:#}"
        );
        for query in [LIST, REQUEUE] {
            let refused = gql(ets.clone(), query, json!({ "id": target.id.to_string() })).await;
            assert_eq!(
                refused["errors"][0]["extensions"]["code"], "FORBIDDEN",
                "{backend}: {refused:#}"
            );
        }

        // The server is back on the same port.
        let receiver = Receiver::on(
            TcpListener::bind(("127.0.0.1", port)).expect("the port is free again"),
            &[],
        );
        let requeued = gql(
            staff.clone(),
            REQUEUE,
            json!({ "id": target.id.to_string() }),
        )
        .await;
        assert_eq!(
            requeued["data"]["requeueDelivery"]["status"], "PENDING",
            "{backend}: {requeued:#}"
        );
        assert_eq!(requeued["data"]["requeueDelivery"]["attempts"], 0);
        world.settle().await;
        let inbox = receiver.for_address(&target.recipient_email);
        assert_eq!(inbox.len(), 1, "{backend}");
        assert_eq!(
            format!("<{}>", inbox[0].message_id),
            target.message_id,
            "{backend}: the same Message-ID"
        );
        assert_eq!(
            receiver.messages().len(),
            1,
            "{backend}: only the one re-queued"
        );
        let sent = world
            .store
            .delivery(target.id)
            .await
            .expect("delivery")
            .expect("there");
        assert_eq!(
            (sent.status, sent.attempts),
            (DeliveryStatus::Sent, 1),
            "{backend}"
        );
        let again = gql(
            staff.clone(),
            REQUEUE,
            json!({ "id": target.id.to_string() }),
        )
        .await;
        assert_eq!(
            again["errors"][0]["extensions"]["code"], "CONFLICT",
            "{backend}: {again:#}"
        );
        let audit = world.store.audit_log(10).await.expect("audit");
        assert_eq!(audit.len(), 1, "{backend}: {audit:#?}");
        assert_eq!(audit[0].action, "rimetti_in_coda");
        assert_eq!(audit[0].actor_id, "ufficio");
        // An alert re-queued reaches the office through the same receiver.
        let alert = gql(
            staff.clone(),
            REQUEUE,
            json!({ "id": alerts[0].id.to_string() }),
        )
        .await;
        assert_eq!(
            alert["data"]["requeueDelivery"]["status"], "PENDING",
            "{backend}: {alert:#}"
        );
        world.settle().await;
        let office = receiver.for_address("ufficio@example.org");
        assert_eq!(office.len(), 1, "{backend}");
        assert!(
            office[0].subject.starts_with("Consegna non riuscita"),
            "{backend}"
        );
        assert!(
            office[0].text.contains("non è raggiungibile"),
            "{backend}: {}",
            office[0].text
        );
        let _ = stop.send(());
    }
}

// ---------------------------------------------------------------------------------------------
// The L. 241 conclusion term passes with the procedure open.

/// An accreditamento whose RUP does nothing: at the end of the thirtieth day the conclusione
/// timer records the silenzio-inadempimento and alerts — once — the RUP and the titolare del
/// potere sostitutivo (art. 2 c.9-bis) by email, never the ETS; the late decision then tells
/// the ETS the legal term and the days taken (c.9-quinquies).
#[tokio::test]
async fn an_expired_conclusion_term_alerts_the_rup_and_the_substitute_once() {
    let (worlds, receivers) = worlds_with_receivers().await;
    for (world, receiver) in worlds.iter().zip(&receivers) {
        let backend = &world.backend;
        accreditamento_people(world).await;
        // Received on Tuesday 1/12/2026: 30 days, to Thursday 31/12/2026.
        let id = accreditamento(world, "2026-12-01").await;
        let started = world.store.instance(&id).await.expect("load").expect("row");
        assert_eq!(
            started.data.terms["termine_conclusione"].expiry.to_string(),
            "2026-12-31",
            "{backend}"
        );
        world.settle().await;
        world.clock.set(common::at("2026-12-31T23:00:00+01:00"));
        world.settle().await;
        let alerts = |address: &str| {
            receiver
                .for_address(address)
                .into_iter()
                .filter(|m| m.subject.starts_with("Termine scaduto"))
                .collect::<Vec<_>>()
        };
        assert!(
            alerts("rup@ambito.example.it").is_empty(),
            "{backend}: not yet"
        );

        // The day has passed: the alert, once, to the RUP and the substitute only.
        world.clock.set(common::at("2027-01-01T00:00:05+01:00"));
        world.settle().await;
        world.clock.set(common::at("2027-01-02T09:00:00+01:00"));
        world.settle().await;
        for address in ["rup@ambito.example.it", "segretario@ambito.example.it"] {
            let got = alerts(address);
            assert_eq!(got.len(), 1, "{backend}: {address}");
            assert!(
                got[0].text.contains("silenzio-inadempimento"),
                "{backend}: {}",
                got[0].text
            );
            assert!(
                got[0].text.contains("31/12/2026"),
                "{backend}: {}",
                got[0].text
            );
            assert!(got[0].text.contains("potere sostitutivo"), "{backend}");
        }
        assert!(
            alerts("aurora@ets.example.org").is_empty(),
            "{backend}: never the ETS"
        );
        let history = world.store.history(&id).await.expect("history");
        assert_eq!(
            history
                .iter()
                .filter(|h| h.event == "termine_scaduto")
                .count(),
            1,
            "{backend}"
        );
        let row = world.store.instance(&id).await.expect("load").expect("row");
        assert_eq!(
            row.state, "istruttoria",
            "{backend}: the procedure stays open"
        );
        assert_eq!(
            row.data.expired["conclusione"].silenzio,
            procedo::definition::Silenzio::Inadempimento,
            "{backend}"
        );

        // The late decision states the legal term and the days taken.
        world.clock.set(common::at("2027-01-05T10:00:00+01:00"));
        rup_fires(
            world,
            &id,
            "accredita",
            json!({ "data_accreditamento": "2027-01-05" }),
        )
        .await;
        world.settle().await;
        let esito: Vec<Opened> = receiver
            .for_address("aurora@ets.example.org")
            .into_iter()
            .filter(|m| m.subject.starts_with("Esito"))
            .collect();
        assert_eq!(esito.len(), 1, "{backend}");
        let text = esito[0]
            .text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        for expected in [
            "doveva concludersi entro il 31/12/2026 (30 giorni)",
            "dopo 35 giorni",
            "art. 2 c.9-quinquies",
        ] {
            assert!(
                text.contains(expected),
                "{backend}: «{expected}» not in {text}"
            );
        }
        assert_eq!(
            alerts("rup@ambito.example.it").len(),
            1,
            "{backend}: still one alert"
        );
    }
}

/// One world per backend, each sending to its own SMTP receiver.
async fn worlds_with_receivers() -> (Vec<World>, Vec<Receiver>) {
    let mut receivers = Vec::new();
    let worlds = worlds(&Setup::default(), || {
        let (receiver, port) = started(&[]);
        receivers.push(receiver);
        smtp_to(port)
    })
    .await;
    (worlds, receivers)
}

/// The RUP, the titolare del potere sostitutivo and an ETS, for an accreditamento.
async fn accreditamento_people(world: &World) {
    let now = world.clock.now();
    for (org, kind) in [
        ("ambito", OrganisationKind::Ambito),
        ("ets-aurora", OrganisationKind::Ets),
    ] {
        world
            .store
            .add_organisation(&NewOrganisation {
                id: org.into(),
                name: format!("Organizzazione {org}"),
                kind,
                codice_fiscale: None,
                runts: None,
                pec: None,
                at: now,
            })
            .await
            .expect("organisation");
    }
    for (person, org, role, email) in [
        ("rup", "ambito", "rup", "rup@ambito.example.it"),
        (
            "segretario",
            "ambito",
            "potere_sostitutivo",
            "segretario@ambito.example.it",
        ),
        ("aurora", "ets-aurora", "ets", "aurora@ets.example.org"),
    ] {
        world
            .store
            .add_person(&NewPerson {
                id: person.into(),
                name: format!("Persona {person}"),
                email: email.into(),
                organisation_id: org.into(),
                roles: vec![role.into()],
                digest: "immediato".into(),
                at: now,
            })
            .await
            .expect("person");
    }
}

fn rup() -> Actor {
    Actor {
        id: "rup".into(),
        role: "rup".into(),
    }
}

fn object(value: Value) -> serde_json::Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

/// Starts an accreditamento for ets-aurora received on `day`, as the RUP.
async fn accreditamento(world: &World, day: &str) -> String {
    let vars = object(json!({ "ente": ["ets-aurora"], "data_domanda": day }));
    world
        .service
        .start("accreditamento", None, vars, &rup(), None)
        .await
        .expect("start")
        .instance
        .id
}

/// The RUP fires `event` on an instance.
async fn rup_fires(world: &World, id: &str, event: &str, payload: Value) {
    let command = Command {
        event: event.into(),
        actor: rup(),
        payload: object(payload),
        participant: None,
    };
    world
        .service
        .fire(id, &command, None)
        .await
        .unwrap_or_else(|e| panic!("{event}: {e}"));
}

/// A soccorso istruttorio the ETS leaves unanswered: when its ten days end the application
/// goes back to the istruttoria and the RUP is told, once; the ETS is not.
#[tokio::test]
async fn an_unanswered_soccorso_tells_the_rup_once() {
    let (worlds, receivers) = worlds_with_receivers().await;
    for (world, receiver) in worlds.iter().zip(&receivers) {
        let backend = &world.backend;
        accreditamento_people(world).await;
        let id = accreditamento(world, "2026-12-01").await;
        world.clock.set(common::at("2026-12-02T10:00:00+01:00"));
        rup_fires(
            world,
            &id,
            "richiedi_soccorso",
            json!({ "documenti_mancanti": ["DURC"] }),
        )
        .await;
        world.settle().await;
        let told = |address: &str| {
            receiver
                .for_address(address)
                .into_iter()
                .filter(|m| m.subject.starts_with("Soccorso istruttorio senza risposta"))
                .count()
        };
        // Ten days at 12:00: Saturday 12/12/2026.
        world.clock.set(common::at("2026-12-12T11:59:00+01:00"));
        world.settle().await;
        assert_eq!(told("rup@ambito.example.it"), 0, "{backend}: not yet");
        world.clock.set(common::at("2026-12-14T09:00:00+01:00"));
        world.settle().await;
        world.clock.set(common::at("2026-12-15T09:00:00+01:00"));
        world.settle().await;
        assert_eq!(told("rup@ambito.example.it"), 1, "{backend}");
        assert_eq!(told("aurora@ets.example.org"), 0, "{backend}");
        let row = world.store.instance(&id).await.expect("load").expect("row");
        assert_eq!(row.state, "istruttoria", "{backend}");
        assert_eq!(
            row.data.variables["soccorso_scaduto"],
            json!(true),
            "{backend}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Calendar feeds.

/// The events of an iCalendar text, as Python's `icalendar` (an independent parser) reads
/// them: (UID, SUMMARY, DTSTART as ISO text, STATUS).
fn python_events(ics: &str) -> Vec<(String, String, String, String)> {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("feed.ics");
    std::fs::write(&file, ics).expect("write");
    let script = "import icalendar,sys,json\n\
cal = icalendar.Calendar.from_ical(open(sys.argv[1],'rb').read())\n\
print(json.dumps([[str(e['UID']), str(e['SUMMARY']), e.decoded('DTSTART').isoformat(), str(e.get('STATUS'))] for e in cal.walk('VEVENT')]))\n";
    // Debian's Python, where apt installs python3-icalendar, before whatever else is first
    // on the PATH.
    let python = ["/usr/bin/python3", "python3"]
        .into_iter()
        .find(|p| {
            std::process::Command::new(p)
                .args(["-c", "import icalendar"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .unwrap_or("python3");
    let output = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(&file)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "Python icalendar is required (scripts/test installs python3-icalendar): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON from python")
}

#[tokio::test]
async fn a_mayors_calendar_feed_carries_the_meeting_with_the_invites_uid_and_a_revoked_feed_is_gone()
 {
    let mut receivers = Vec::new();
    let worlds = worlds(&Setup::default(), || {
        let (receiver, port) = started(&[]);
        receivers.push(receiver);
        smtp_to(port)
    })
    .await;
    for (world, receiver) in worlds.iter().zip(&receivers) {
        let backend = &world.backend;
        let id = world.convened_meeting().await;
        world.settle().await;
        let (person, _, address) = mayors().remove(0);
        let invite = parse_invite(&receiver.for_address(&address)[0].calendar);

        let issued = procedo::admin::create_calendar_feed(
            &world.store,
            &procedo::admin::Admin::command_line(),
            &person,
            world.clock.now(),
        )
        .await
        .expect("feed");
        let state =
            procedo::api::ApiState::new(world.service.clone(), procedo::api::Limits::default())
                .with_mail_domain(MAIL_DOMAIN);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(procedo::api::serve(listener, state, std::future::pending()));
        let url = procedo::api::calendar::feed_url(&base, &issued.secret);
        let response = reqwest::get(&url).await.expect("feed");
        assert_eq!(response.status(), 200, "{backend}");
        assert!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| t.starts_with("text/calendar")),
            "{backend}"
        );
        let ics = response.text().await.expect("text");
        let events = python_events(&ics);
        let meeting = events
            .iter()
            .find(|(uid, ..)| *uid == invite.uid)
            .unwrap_or_else(|| panic!("{backend}: the invite's UID {} in {events:?}", invite.uid));
        assert_eq!(invite.uid, format!("{id}@{MAIL_DOMAIN}"), "{backend}");
        assert_eq!(meeting.1, "Assemblea dei Sindaci", "{backend}");
        assert_eq!(meeting.2, "2027-01-14T17:00:00+01:00", "{backend}");
        assert_eq!(meeting.3, "CONFIRMED", "{backend}");
        // Another mayor's secret is not this one's; a made-up one is nothing.
        let made_up = procedo::api::calendar::feed_url(&base, "pt_0000");
        assert_eq!(
            reqwest::get(&made_up).await.expect("get").status(),
            404,
            "{backend}"
        );
        // Revoked: 404 from now on.
        procedo::admin::revoke_calendar_feed(
            &world.store,
            &procedo::admin::Admin::command_line(),
            &issued.feed.id,
            world.clock.now(),
        )
        .await
        .expect("revoked");
        assert_eq!(
            reqwest::get(&url).await.expect("get").status(),
            404,
            "{backend}"
        );
    }
}
