//! Calendar invites for meetings (iCalendar RFC 5545, iTIP RFC 5546, carried by iMIP RFC 6047).
//!
//! A convocation is also offered as a calendar event so mayors find the seduta in their
//! agenda. The rules that make clients behave (see `shared/domain/procedures.md` §4.2):
//! - one `UID` per meeting for its whole life; every significant change raises `SEQUENCE`
//!   (clients discard a lower one), a move is a new REQUEST with the same UID;
//! - a cancellation is `METHOD:CANCEL` + `STATUS:CANCELLED`, same UID, raised SEQUENCE;
//! - times are written as Europe/Rome civil time with a `VTIMEZONE` block, never as floating
//!   times (Google Calendar reads those as UTC).
//!
//! The text is written here rather than through a builder so the property order, escaping and
//! folding are under our control; tests read it back with an independent parser.

use chrono::{DateTime, Utc};
use chrono_tz::{Europe::Rome, Tz};
use serde::{Deserialize, Serialize};

/// The iTIP method of an invite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Method {
    /// A new invitation or an update of an existing one (same UID, higher SEQUENCE).
    Request,
    /// The meeting will not take place.
    Cancel,
}

impl Method {
    /// `REQUEST` or `CANCEL`, as written in `METHOD:` and in the MIME `method=` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Request => "REQUEST",
            Method::Cancel => "CANCEL",
        }
    }
}

/// A meeting of an Ambito body as it goes into an invite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meeting {
    /// Stable for the meeting's whole life, e.g. `seduta-42@procedo.local`.
    pub uid: String,
    /// 0 for the first invite; the caller raises it on every move and on cancellation.
    pub sequence: u32,
    /// When this revision was issued (`DTSTAMP`); passed in because notify reads no clock.
    pub dtstamp: DateTime<Utc>,
    /// The event title, e.g. "Assemblea dei Sindaci – Ambito di Desio".
    pub summary: String,
    /// The agenda (ordine del giorno), one item per line.
    pub description: String,
    /// Room and address, or "videoconferenza".
    pub location: String,
    /// Start; written in Europe/Rome whatever the zone given.
    pub start: DateTime<Tz>,
    /// End; written in Europe/Rome whatever the zone given.
    pub end: DateTime<Tz>,
    /// (name, email) of the convener, usually the Ufficio di Piano's address.
    pub organizer: (String, String),
    /// (name, email) of everyone convened.
    pub attendees: Vec<(String, String)>,
}

/// The DESCRIPTION of a seduta from its ordine del giorno: a heading and numbered items.
pub fn agenda_description<S: AsRef<str>>(items: &[S]) -> String {
    let mut description = String::from("Ordine del giorno:");
    for (index, item) in items.iter().enumerate() {
        description.push_str(&format!("\n{}. {}", index + 1, item.as_ref()));
    }
    description
}

/// The Europe/Rome rules since 1996 (EU summer time), as RFC 5545 recurrence rules.
const VTIMEZONE_EUROPE_ROME: [&str; 18] = [
    "BEGIN:VTIMEZONE",
    "TZID:Europe/Rome",
    "X-LIC-LOCATION:Europe/Rome",
    "BEGIN:DAYLIGHT",
    "TZOFFSETFROM:+0100",
    "TZOFFSETTO:+0200",
    "TZNAME:CEST",
    "DTSTART:19700329T020000",
    "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
    "END:DAYLIGHT",
    "BEGIN:STANDARD",
    "TZOFFSETFROM:+0200",
    "TZOFFSETTO:+0100",
    "TZNAME:CET",
    "DTSTART:19701025T030000",
    "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU",
    "END:STANDARD",
    "END:VTIMEZONE",
];

/// The iCalendar text of `meeting` for `method`, with CRLF line ends and folded lines.
pub fn invite_ics(meeting: &Meeting, method: Method) -> String {
    let mut ics = IcsWriter::default();
    ics.line("BEGIN:VCALENDAR");
    ics.line("PRODID:-//procedo//Ufficio di Piano//IT");
    ics.line("VERSION:2.0");
    ics.line("CALSCALE:GREGORIAN");
    ics.line(&format!("METHOD:{}", method.as_str()));
    for line in VTIMEZONE_EUROPE_ROME {
        ics.line(line);
    }
    ics.line("BEGIN:VEVENT");
    ics.line(&format!("UID:{}", escape_text(&meeting.uid)));
    ics.line(&format!("SEQUENCE:{}", meeting.sequence));
    ics.line(&format!(
        "DTSTAMP:{}",
        meeting.dtstamp.format("%Y%m%dT%H%M%SZ")
    ));
    ics.line(&format!(
        "DTSTART;TZID=Europe/Rome:{}",
        rome_local(&meeting.start)
    ));
    ics.line(&format!(
        "DTEND;TZID=Europe/Rome:{}",
        rome_local(&meeting.end)
    ));
    ics.line(&format!("SUMMARY:{}", escape_text(&meeting.summary)));
    if !meeting.description.is_empty() {
        ics.line(&format!(
            "DESCRIPTION:{}",
            escape_text(&meeting.description)
        ));
    }
    if !meeting.location.is_empty() {
        ics.line(&format!("LOCATION:{}", escape_text(&meeting.location)));
    }
    let (organizer_name, organizer_email) = &meeting.organizer;
    ics.line(&format!(
        "ORGANIZER;CN={}:mailto:{}",
        parameter_value(organizer_name),
        address(organizer_email)
    ));
    for (name, email) in &meeting.attendees {
        ics.line(&format!(
            "ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE;CN={}:mailto:{}",
            parameter_value(name),
            address(email)
        ));
    }
    match method {
        Method::Request => ics.line("STATUS:CONFIRMED"),
        Method::Cancel => ics.line("STATUS:CANCELLED"),
    }
    ics.line("TRANSP:OPAQUE");
    ics.line("END:VEVENT");
    ics.line("END:VCALENDAR");
    ics.text
}

/// When a feed event happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedTime {
    /// From `start` to `end`, written in Europe/Rome.
    Timed {
        /// Start.
        start: DateTime<Tz>,
        /// End.
        end: DateTime<Tz>,
    },
    /// The whole civil day (a deadline at the end of a day).
    AllDay(chrono::NaiveDate),
}

/// One event of a calendar feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEvent {
    /// The UID (a meeting's is the one of its invites).
    pub uid: String,
    /// Raised at every change.
    pub sequence: u32,
    /// Title.
    pub summary: String,
    /// Text (agenda, the trace of a deadline).
    pub description: String,
    /// Place.
    pub location: String,
    /// When.
    pub time: FeedTime,
    /// The meeting will not take place.
    pub cancelled: bool,
}

/// A subscription calendar (`METHOD:PUBLISH`) named `name` with `events`.
pub fn feed_ics(name: &str, events: &[FeedEvent], dtstamp: DateTime<Utc>) -> String {
    let mut ics = IcsWriter::default();
    ics.line("BEGIN:VCALENDAR");
    ics.line("PRODID:-//procedo//Ufficio di Piano//IT");
    ics.line("VERSION:2.0");
    ics.line("CALSCALE:GREGORIAN");
    ics.line("METHOD:PUBLISH");
    ics.line(&format!("X-WR-CALNAME:{}", escape_text(name)));
    ics.line("X-WR-TIMEZONE:Europe/Rome");
    ics.line("REFRESH-INTERVAL;VALUE=DURATION:PT1H");
    for line in VTIMEZONE_EUROPE_ROME {
        ics.line(line);
    }
    for event in events {
        ics.line("BEGIN:VEVENT");
        ics.line(&format!("UID:{}", escape_text(&event.uid)));
        ics.line(&format!("SEQUENCE:{}", event.sequence));
        ics.line(&format!("DTSTAMP:{}", dtstamp.format("%Y%m%dT%H%M%SZ")));
        match &event.time {
            FeedTime::Timed { start, end } => {
                ics.line(&format!("DTSTART;TZID=Europe/Rome:{}", rome_local(start)));
                ics.line(&format!("DTEND;TZID=Europe/Rome:{}", rome_local(end)));
            }
            FeedTime::AllDay(day) => {
                ics.line(&format!("DTSTART;VALUE=DATE:{}", day.format("%Y%m%d")));
                let next = day.succ_opt().unwrap_or(*day);
                ics.line(&format!("DTEND;VALUE=DATE:{}", next.format("%Y%m%d")));
            }
        }
        ics.line(&format!("SUMMARY:{}", escape_text(&event.summary)));
        if !event.description.is_empty() {
            ics.line(&format!("DESCRIPTION:{}", escape_text(&event.description)));
        }
        if !event.location.is_empty() {
            ics.line(&format!("LOCATION:{}", escape_text(&event.location)));
        }
        ics.line(if event.cancelled {
            "STATUS:CANCELLED"
        } else {
            "STATUS:CONFIRMED"
        });
        ics.line("TRANSP:TRANSPARENT");
        ics.line("END:VEVENT");
    }
    ics.line("END:VCALENDAR");
    ics.text
}

fn rome_local(at: &DateTime<Tz>) -> String {
    at.with_timezone(&Rome).format("%Y%m%dT%H%M%S").to_string()
}

/// Accumulates content lines, folding each at 75 octets (RFC 5545 §3.1).
#[derive(Default)]
struct IcsWriter {
    text: String,
}

impl IcsWriter {
    const LIMIT: usize = 75;

    fn line(&mut self, content: &str) {
        let mut rest = content;
        // The first physical line holds 75 octets; continuations 74 after their leading space.
        let mut limit = Self::LIMIT;
        while rest.len() > limit {
            let mut cut = limit;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            // Some parsers trim trailing blanks of a physical line: never end one on a blank.
            let mut tidy = cut;
            while tidy > limit / 2 && rest.as_bytes().get(tidy - 1) == Some(&b' ') {
                tidy -= 1;
            }
            if tidy > limit / 2 {
                cut = tidy;
            }
            let (head, tail) = rest.split_at(cut);
            self.text.push_str(head);
            self.text.push_str("\r\n ");
            rest = tail;
            limit = Self::LIMIT - 1;
        }
        self.text.push_str(rest);
        self.text.push_str("\r\n");
    }
}

/// TEXT value escaping (RFC 5545 §3.3.11); control characters other than newline are dropped.
fn escape_text(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len() + 8);
    for character in value.chars() {
        match character {
            '\\' => escaped.push_str("\\\\"),
            ';' => escaped.push_str("\\;"),
            ',' => escaped.push_str("\\,"),
            '\n' => escaped.push_str("\\n"),
            '\t' => escaped.push(' '),
            control if control.is_control() => {}
            other => escaped.push(other),
        }
    }
    escaped
}

/// A parameter value (e.g. `CN`): quoted when it holds `:;,`; `"` and controls cannot appear.
fn parameter_value(value: &str) -> String {
    let cleaned: String = value
        .chars()
        .filter(|character| !character.is_control())
        .map(|character| if character == '"' { '\'' } else { character })
        .collect();
    if cleaned.contains([':', ';', ',']) {
        format!("\"{cleaned}\"")
    } else {
        cleaned
    }
}

/// An email address for a `mailto:` URI: blanks and controls removed.
fn address(email: &str) -> String {
    email
        .chars()
        .filter(|character| !character.is_control() && !character.is_whitespace())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn meeting() -> Meeting {
        let start = Rome
            .with_ymd_and_hms(2026, 12, 28, 12, 0, 0)
            .single()
            .expect("valid Rome time");
        Meeting {
            uid: "seduta-7@procedo.local".to_owned(),
            sequence: 0,
            dtstamp: Utc
                .with_ymd_and_hms(2026, 12, 1, 9, 0, 0)
                .single()
                .expect("valid"),
            summary: "Assemblea dei Sindaci – Ambito di Desio".to_owned(),
            description: "1. Approvazione del verbale; seduta precedente\n2. Piano di Zona, 2027"
                .to_owned(),
            location: "Sala consiliare, via Roma 1, Desio".to_owned(),
            start,
            end: start + chrono::Duration::hours(2),
            organizer: (
                "Ufficio di Piano".to_owned(),
                "udp@ambito.example.it".to_owned(),
            ),
            attendees: vec![(
                "Sindaca di Nova Milanese, Anna Rossi".to_owned(),
                "sindaco@comune.nova.example.it".to_owned(),
            )],
        }
    }

    #[test]
    fn every_physical_line_fits_75_octets_and_ends_with_crlf() {
        let mut long = meeting();
        long.description = "Ordine del giorno molto lungo con accenti àèìòù e virgole, "
            .repeat(20)
            .trim_end()
            .to_owned();
        let ics = invite_ics(&long, Method::Request);
        assert!(ics.ends_with("END:VCALENDAR\r\n"));
        for line in ics.split("\r\n") {
            assert!(line.len() <= 75, "{} octets: {line}", line.len());
            assert!(!line.ends_with(' '), "trailing blank: {line:?}");
            assert!(!line.contains('\n') && !line.contains('\r'));
        }
        let unfolded = ics.replace("\r\n ", "");
        assert!(unfolded.contains(&escape_text(&long.description)));
    }

    #[test]
    fn text_is_escaped_and_times_are_rome_civil_time() {
        let ics = invite_ics(&meeting(), Method::Request).replace("\r\n ", "");
        assert!(ics.contains("METHOD:REQUEST\r\n"));
        assert!(ics.contains("DTSTART;TZID=Europe/Rome:20261228T120000\r\n"));
        assert!(ics.contains("DTEND;TZID=Europe/Rome:20261228T140000\r\n"));
        assert!(ics.contains("DTSTAMP:20261201T090000Z\r\n"));
        assert!(ics.contains("precedente\\n2. Piano di Zona\\, 2027"));
        assert!(ics.contains("verbale\\; seduta"));
        assert!(ics.contains("CN=\"Sindaca di Nova Milanese, Anna Rossi\":mailto:"));
        assert!(ics.contains("STATUS:CONFIRMED"));
    }

    #[test]
    fn a_cancel_keeps_the_uid_and_says_cancelled() {
        let mut cancelled = meeting();
        cancelled.sequence = 2;
        let ics = invite_ics(&cancelled, Method::Cancel);
        assert!(ics.contains("METHOD:CANCEL\r\n"));
        assert!(ics.contains("STATUS:CANCELLED\r\n"));
        assert!(ics.contains("UID:seduta-7@procedo.local\r\n"));
        assert!(ics.contains("SEQUENCE:2\r\n"));
    }

    #[test]
    fn a_start_given_in_utc_is_written_in_rome_time() {
        let mut summer = meeting();
        summer.start = Utc
            .with_ymd_and_hms(2027, 7, 1, 7, 30, 0)
            .single()
            .expect("valid")
            .with_timezone(&chrono_tz::UTC);
        summer.end = summer.start + chrono::Duration::hours(1);
        let ics = invite_ics(&summer, Method::Request);
        assert!(
            ics.contains("DTSTART;TZID=Europe/Rome:20270701T093000\r\n"),
            "{ics}"
        );
    }

    #[test]
    fn quotes_and_line_breaks_cannot_escape_a_parameter() {
        let mut tricky = meeting();
        tricky.attendees = vec![(
            "Mario \"Bepi\"\r\nATTENDEE:mailto:intruso@example.it".to_owned(),
            "mario@example.it\r\n".to_owned(),
        )];
        let unfolded = invite_ics(&tricky, Method::Request).replace("\r\n ", "");
        let attendee_lines = unfolded
            .split("\r\n")
            .filter(|line| line.starts_with("ATTENDEE"))
            .count();
        assert_eq!(attendee_lines, 1, "{unfolded}");
        assert!(unfolded.contains(
            "CN=\"Mario 'Bepi'ATTENDEE:mailto:intruso@example.it\":mailto:mario@example.it"
        ));
    }
}
