//! End to end: the real SMTP transport talking to a real SMTP receiver (mailin-embedded) on
//! loopback, and every received message read back with independent parsers (`mail-parser` for
//! MIME, `ical` for iCalendar). No mock transports.

mod smtp_receiver;

use std::io::BufReader;
use std::net::TcpListener;

use chrono::{Duration, TimeZone, Utc};
use mail_parser::{MessageParser, MimeHeaders};
use procedo::notify::{
    Meeting, Method, OutgoingEmail, SendError, SmtpSettings, Templates, Transport, invite_ics,
    message_id_for, sample,
};
use smtp_receiver::{Received, Receiver};

impl Receiver {
    fn transport(&self) -> Transport {
        Transport::smtp(&SmtpSettings {
            rate: None,
            url: format!("smtp://127.0.0.1:{}?tls=none", self.port),
            from: FROM.to_owned(),
            timeout: Some(std::time::Duration::from_secs(10)),
        })
        .expect("transport")
    }
}

const FROM: &str = "Ufficio di Piano – Borgo Fiorito <ufficiodipiano@borgofiorito.example.it>";

fn templates() -> Templates {
    Templates::builtin().expect("shipped templates load")
}

fn sample_meeting() -> Meeting {
    let dtstamp = Utc
        .with_ymd_and_hms(2026, 12, 1, 9, 0, 0)
        .single()
        .expect("valid instant");
    sample::meeting(sample::mayors(), dtstamp)
}

/// The convocation for one mayor, carrying `meeting` as an invite with `method`.
fn convocation(
    templates: &Templates,
    mayor: &(String, String),
    meeting: &Meeting,
    method: Method,
) -> OutgoingEmail {
    let (name, email) = mayor;
    let context = sample::context_for("convocazione", name, email).expect("sample");
    let rendered = templates.render("convocazione", &context).expect("renders");
    let key = format!(
        "seduta-42.seq{}.{}",
        meeting.sequence,
        email.replace('@', "_at_")
    );
    OutgoingEmail::new(
        message_id_for(&key, "procedo.local"),
        FROM,
        format!("{name} <{email}>"),
        rendered,
    )
    .with_invite(method, invite_ics(meeting, method))
}

/// What a test checks in a received invite, read by the `ical` crate.
#[derive(Debug)]
struct ParsedInvite {
    method: String,
    uid: String,
    sequence: String,
    dtstart: String,
    dtstart_tzid: String,
    status: String,
    attendees: Vec<Vec<(String, Vec<String>)>>,
    timezone_ids: Vec<String>,
    transitions: usize,
}

fn parse_invite(ics: &str) -> ParsedInvite {
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
    let dtstart_tzid = dtstart
        .params
        .iter()
        .flatten()
        .find(|(name, _)| name == "TZID")
        .and_then(|(_, values)| values.first().cloned())
        .unwrap_or_default();
    ParsedInvite {
        method: value(&calendar.properties, "METHOD"),
        uid: value(event, "UID"),
        sequence: value(event, "SEQUENCE"),
        dtstart: dtstart.value.clone().unwrap_or_default(),
        dtstart_tzid,
        status: value(event, "STATUS"),
        attendees: event
            .iter()
            .filter(|property| property.name == "ATTENDEE")
            .map(|property| property.params.clone().unwrap_or_default())
            .collect(),
        timezone_ids: calendar
            .timezones
            .iter()
            .map(|timezone| value(&timezone.properties, "TZID"))
            .collect(),
        transitions: calendar
            .timezones
            .iter()
            .map(|timezone| timezone.transitions.len())
            .sum(),
    }
}

/// A received message taken apart by `mail-parser`.
struct Opened {
    message_id: String,
    subject: String,
    text: String,
    html: String,
    calendar_method: String,
    calendar: String,
    attachment_names: Vec<String>,
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
        html: message.body_html(0).unwrap_or_default().into_owned(),
        calendar_method: calendar_part
            .and_then(|part| part.content_type())
            .and_then(|content_type| content_type.attribute("method"))
            .unwrap_or_default()
            .to_owned(),
        calendar: calendar_part
            .and_then(|part| part.text_contents())
            .unwrap_or_default()
            .to_owned(),
        attachment_names: message
            .attachments()
            .filter_map(|part| part.attachment_name().map(str::to_owned))
            .collect(),
    }
}

#[tokio::test]
async fn a_convocation_reaches_three_mayors_with_the_italian_date_and_a_valid_invite() {
    let receiver = Receiver::start(&[]);
    let transport = receiver.transport();
    let templates = templates();
    let meeting = sample_meeting();
    let mayors = sample::mayors();
    let mut sent = Vec::new();
    for mayor in &mayors {
        let email = convocation(&templates, mayor, &meeting, Method::Request);
        let report = transport.send(&email).await.expect("accepted");
        assert_eq!(report.message_id, email.message_id);
        assert!(
            report.server_answer.starts_with("250"),
            "{}",
            report.server_answer
        );
        sent.push(email);
    }

    let received = receiver.messages();
    assert_eq!(received.len(), 3);
    for ((email, mayor), message) in sent.iter().zip(&mayors).zip(&received) {
        assert_eq!(message.recipients, std::slice::from_ref(&mayor.1));
        let opened = open(message);
        assert_eq!(format!("<{}>", opened.message_id), email.message_id);
        assert_eq!(
            opened.subject,
            "Convocazione Assemblea dei Sindaci – lunedì 28 dicembre 2026"
        );
        assert!(opened.text.contains(&format!("Gentile {},", mayor.0)));
        assert!(
            opened
                .text
                .contains("Prima convocazione: lunedì 28 dicembre 2026, ore 12:00"),
            "{}",
            opened.text
        );
        assert!(opened.text.contains("1. Approvazione del verbale"));
        assert!(opened.html.contains("lunedì 28 dicembre 2026, ore 12:00"));
        assert_eq!(opened.calendar_method, "REQUEST");
        assert_eq!(opened.attachment_names, ["invite.ics"]);

        let invite = parse_invite(&opened.calendar);
        assert_eq!(invite.method, "REQUEST");
        assert_eq!(invite.uid, "seduta-42@procedo.local");
        assert_eq!(invite.sequence, "0");
        assert_eq!(invite.dtstart, "20261228T120000");
        assert_eq!(invite.dtstart_tzid, "Europe/Rome");
        assert_eq!(invite.status, "CONFIRMED");
        assert_eq!(invite.timezone_ids, ["Europe/Rome"]);
        assert_eq!(invite.transitions, 2, "DAYLIGHT and STANDARD");
        assert_eq!(invite.attendees.len(), 3);
        for parameters in &invite.attendees {
            let get = |name: &str| {
                parameters
                    .iter()
                    .find(|(key, _)| key == name)
                    .map(|(_, values)| values.join(","))
            };
            assert_eq!(get("ROLE").as_deref(), Some("REQ-PARTICIPANT"));
            assert_eq!(get("PARTSTAT").as_deref(), Some("NEEDS-ACTION"));
            assert_eq!(get("RSVP").as_deref(), Some("TRUE"));
        }
    }
}

#[tokio::test]
async fn a_moved_meeting_is_a_new_request_with_the_same_uid_and_the_next_sequence() {
    let receiver = Receiver::start(&[]);
    let transport = receiver.transport();
    let templates = templates();
    let mut moved = sample_meeting();
    moved.sequence += 1;
    moved.start += Duration::days(1);
    moved.end += Duration::days(1);
    let mayor = &sample::mayors()[0];
    transport
        .send(&convocation(&templates, mayor, &moved, Method::Request))
        .await
        .expect("accepted");

    let received = receiver.messages();
    assert_eq!(received.len(), 1);
    let invite = parse_invite(&open(&received[0]).calendar);
    assert_eq!(invite.method, "REQUEST");
    assert_eq!(invite.uid, "seduta-42@procedo.local");
    assert_eq!(invite.sequence, "1");
    assert_eq!(invite.dtstart, "20261229T120000");
    assert_eq!(invite.dtstart_tzid, "Europe/Rome");
}

#[tokio::test]
async fn a_cancelled_meeting_is_sent_with_method_cancel() {
    let receiver = Receiver::start(&[]);
    let transport = receiver.transport();
    let mut cancelled = sample_meeting();
    cancelled.sequence = 2;
    let mayor = &sample::mayors()[1];
    transport
        .send(&convocation(
            &templates(),
            mayor,
            &cancelled,
            Method::Cancel,
        ))
        .await
        .expect("accepted");

    let opened = open(&receiver.messages()[0]);
    assert_eq!(opened.calendar_method, "CANCEL");
    let invite = parse_invite(&opened.calendar);
    assert_eq!(invite.method, "CANCEL");
    assert_eq!(invite.status, "CANCELLED");
    assert_eq!(invite.uid, "seduta-42@procedo.local");
    assert_eq!(invite.sequence, "2");
}

#[tokio::test]
async fn nobody_listening_is_a_transient_error_naming_the_server_and_not_the_body() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.local_addr().expect("local address").port()
    };
    let transport = Transport::smtp(&SmtpSettings {
        rate: None,
        url: format!("smtp://127.0.0.1:{port}?tls=none"),
        from: FROM.to_owned(),
        timeout: Some(std::time::Duration::from_secs(5)),
    })
    .expect("transport");
    let email = convocation(
        &templates(),
        &sample::mayors()[0],
        &sample_meeting(),
        Method::Request,
    );
    let error = transport.send(&email).await.expect_err("nothing listens");
    assert!(error.is_transient(), "{error}");
    assert_eq!(error.code(), None);
    let message = error.to_string();
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(message.contains("non è raggiungibile"), "{message}");
    assert!(!message.contains("Gentile"), "{message}");
    assert!(!message.contains("Approvazione"), "{message}");
}

#[tokio::test]
async fn a_refused_recipient_is_permanent_for_that_one_only() {
    let mayors = sample::mayors();
    let refused = mayors[1].1.clone();
    let receiver = Receiver::start(&[(refused.as_str(), 550)]);
    let transport = receiver.transport();
    let templates = templates();
    let meeting = sample_meeting();
    let mut outcomes = Vec::new();
    for mayor in &mayors {
        let email = convocation(&templates, mayor, &meeting, Method::Request);
        outcomes.push(transport.send(&email).await);
    }

    assert!(outcomes[0].is_ok(), "{:?}", outcomes[0]);
    assert!(outcomes[2].is_ok(), "{:?}", outcomes[2]);
    let Err(error) = &outcomes[1] else {
        panic!("the refused mayor must fail: {:?}", outcomes[1]);
    };
    assert!(
        matches!(
            error,
            SendError::Permanent {
                code: Some(550),
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(&refused), "{message}");
    assert!(message.contains("550"), "{message}");
    assert!(
        message.contains(&format!("127.0.0.1:{}", receiver.port)),
        "{message}"
    );
    assert!(!message.contains("Gentile"), "{message}");
    let delivered: Vec<Vec<String>> = receiver
        .messages()
        .into_iter()
        .map(|message| message.recipients)
        .collect();
    assert_eq!(
        delivered,
        [vec![mayors[0].1.clone()], vec![mayors[2].1.clone()]]
    );
}

#[tokio::test]
async fn a_busy_mailbox_is_transient_with_its_code() {
    let mayors = sample::mayors();
    let receiver = Receiver::start(&[(mayors[0].1.as_str(), 450)]);
    let email = convocation(&templates(), &mayors[0], &sample_meeting(), Method::Request);
    let error = receiver
        .transport()
        .send(&email)
        .await
        .expect_err("busy mailbox");
    assert!(error.is_transient(), "{error}");
    assert_eq!(error.code(), Some(450));
}

#[tokio::test]
async fn a_resend_carries_the_same_message_id() {
    let receiver = Receiver::start(&[]);
    let transport = receiver.transport();
    let email = convocation(
        &templates(),
        &sample::mayors()[2],
        &sample_meeting(),
        Method::Request,
    );
    transport.send(&email).await.expect("first attempt");
    transport.send(&email).await.expect("resend after a crash");
    let ids: Vec<String> = receiver
        .messages()
        .iter()
        .map(|message| open(message).message_id)
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ids[1]);
}

/// A relay with a rate: ten messages sent by four tasks at once reach the receiver no faster
/// than the rate allows (a lower bound: the spacing never depends on the machine being fast),
/// all of them, over connections the transport reuses.
#[tokio::test]
async fn a_rate_limited_relay_spaces_the_messages_of_every_worker() {
    let receiver = Receiver::start(&[]);
    let transport = Transport::smtp(&SmtpSettings {
        rate: Some(20.0),
        url: format!("smtp://127.0.0.1:{}?tls=none", receiver.port),
        from: FROM.to_owned(),
        timeout: Some(std::time::Duration::from_secs(10)),
    })
    .expect("transport");
    let templates = templates();
    let meeting = sample_meeting();
    let mayors = sample::mayors();
    let started = std::time::Instant::now();
    let mut sends = tokio::task::JoinSet::new();
    for n in 0..10 {
        let transport = transport.clone();
        let mut email = convocation(
            &templates,
            &mayors[n % mayors.len()],
            &meeting,
            Method::Request,
        );
        email.message_id = message_id_for(&format!("rate-{n}"), "procedo.local");
        sends.spawn(async move { transport.send(&email).await });
    }
    while let Some(sent) = sends.join_next().await {
        sent.expect("task").expect("sent");
    }
    // Ten messages at 20 per second: the tenth cannot start before 9/20 s.
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(440),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(receiver.messages().len(), 10);
}
