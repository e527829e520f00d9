//! Calendar feeds: a personal, revocable ICS subscription URL per person, with the meetings
//! of the bodies it sits in (each with the same UID as its email invites, so a client that got
//! both shows one event) and the deadlines that concern it — for an ETS, its avvisi's public
//! terms and its own applications' terms; for staff, the terms of the open procedures.
//!
//! The URL carries a secret; only its SHA-256 is stored. A revoked or unknown secret answers
//! 404. `events` reads the store; the text is written by `notify::invite::feed_ics`.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use crate::notify::invite::{FeedEvent, FeedTime, feed_ics};
use crate::service::Service;
use crate::store::{self, InstanceFilter, InstanceRow, PersonRow};
use crate::terms::ROME;

/// Roles that see the terms of every open procedure.
const STAFF: [&str; 3] = ["rup", "ufficio_di_piano", "potere_sostitutivo"];
/// Deadlines older than this are left out of a feed.
const PAST_DAYS: i64 = 60;

/// The feed of `person` at `now`, as iCalendar text; `domain` names UIDs as the invites do.
///
/// # Errors
///
/// The store's.
pub async fn feed(
    service: &Service,
    person: &PersonRow,
    domain: &str,
    now: DateTime<Utc>,
) -> store::Result<String> {
    let events = events(service, person, domain, now).await?;
    Ok(feed_ics(
        &format!("procedo – {}", person.name),
        &events,
        now,
    ))
}

/// The same events as a page the person opens from the subscription link: the agenda in time
/// order, each with its UID, and the links to subscribe. No script, nothing from elsewhere.
/// `ics` is the feed's address; `public` the server's public base URL, for the `webcal:` link.
pub fn html(
    person: &str,
    events: &[FeedEvent],
    ics: &str,
    public: &str,
    now: DateTime<Utc>,
) -> String {
    use std::fmt::Write as _;
    let escape = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut sorted: Vec<&FeedEvent> = events.iter().collect();
    let start = |e: &FeedEvent| match &e.time {
        FeedTime::Timed { start, .. } => start.naive_local(),
        FeedTime::AllDay(day) => day.and_hms_opt(23, 59, 0).unwrap_or_default(),
    };
    sorted.sort_by_key(|e| (start(e), e.uid.clone()));
    let webcal = public
        .strip_prefix("https://")
        .or_else(|| public.strip_prefix("http://"))
        .map(|host| format!("webcal://{}{ics}", host.trim_end_matches('/')));
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"it\">\n<head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Calendario di {p}</title><style>{STYLE}</style></head>\n<body>\n<header><h1>Calendario di {p}</h1>\n<p>Sedute e scadenze che la riguardano, aggiornate al {now}. Per averle nel proprio calendario: <a href=\"{ics}\">abbonati al calendario (ICS)</a>{webcal}. Il collegamento è personale: non va inoltrato; l'Ufficio di Piano può revocarlo.</p></header>\n<main>\n",
        p = escape(person),
        now = now.with_timezone(&ROME).format("%d/%m/%Y %H:%M"),
        ics = escape(ics),
        webcal = webcal
            .map(|w| format!(
                " o <a href=\"{}\">aprilo nell'app calendario</a>",
                escape(&w)
            ))
            .unwrap_or_default(),
    );
    if sorted.is_empty() {
        out.push_str("<p>Nessun evento.</p>\n");
    }
    for e in sorted {
        let when = match &e.time {
            FeedTime::Timed { start, end } => format!(
                "{} dalle {} alle {}",
                start.format("%d/%m/%Y"),
                start.format("%H:%M"),
                end.format("%H:%M")
            ),
            FeedTime::AllDay(day) => format!("{} (tutto il giorno)", day.format("%d/%m/%Y")),
        };
        let _ = write!(
            out,
            "<article>\n<h2>{}{}</h2>\n<p><strong>{}</strong>{}</p>\n",
            if e.cancelled { "Annullata: " } else { "" },
            escape(&e.summary),
            escape(&when),
            if e.location.is_empty() {
                String::new()
            } else {
                format!(" – {}", escape(&e.location))
            },
        );
        if !e.description.is_empty() {
            out.push_str("<ul>");
            for line in e.description.lines().filter(|l| !l.trim().is_empty()) {
                let _ = write!(out, "<li>{}</li>", escape(line));
            }
            out.push_str("</ul>\n");
        }
        let _ = writeln!(
            out,
            "<p class=\"uid\">UID {}</p>\n</article>",
            escape(&e.uid)
        );
    }
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

/// The style of the page: dark on light, visible focus, no external resource.
const STYLE: &str = "body{font-family:sans-serif;line-height:1.5;color:#1a1a1a;background:#fff;max-width:60em;margin:0 auto;padding:1em}article{border-bottom:1px solid #bbb;padding:0.5em 0}a{color:#0645ad}a:focus{outline:3px solid #1a1a1a;outline-offset:2px}.uid{font-size:0.85em;color:#444}";

/// The events of `person`'s feed.
///
/// # Errors
///
/// The store's.
pub async fn events(
    service: &Service,
    person: &PersonRow,
    domain: &str,
    now: DateTime<Utc>,
) -> store::Result<Vec<FeedEvent>> {
    let store = service.store();
    let staff = person.roles.iter().any(|r| STAFF.contains(&r.as_str()));
    let ets = person.roles.iter().any(|r| r == "ets");
    // The instances the person's messages were about (invites included).
    let mut messaged = std::collections::BTreeSet::new();
    for d in store
        .deliveries(&store::DeliveryFilter {
            person_id: Some(person.id.clone()),
            ..store::DeliveryFilter::default()
        })
        .await?
    {
        if let Some(id) = d.instance_id {
            messaged.insert(id);
        }
    }
    let applied: std::collections::BTreeSet<String> = if ets {
        store
            .submissions(&store::SubmissionFilter {
                instance_id: None,
                organisation_id: Some(person.organisation_id.clone()),
            })
            .await?
            .into_iter()
            .map(|s| s.instance_id)
            .collect()
    } else {
        Default::default()
    };
    let mut out = Vec::new();
    for row in store.instances(&InstanceFilter::default()).await? {
        let seat = row
            .data
            .meeting
            .as_ref()
            .and_then(|m| m.body.as_ref())
            .is_some_and(|b| b.seats.iter().any(|s| s.id == person.organisation_id));
        let is_meeting = row
            .data
            .variables
            .get("data_seduta")
            .is_some_and(|v| !v.is_null());
        if is_meeting
            && (seat || messaged.contains(&row.id) || staff)
            && let Some(event) = meeting_event(&row, domain)
        {
            out.push(event);
        }
        let procedure = service
            .procedure(&row.definition_id, Some(row.definition_version))
            .await
            .ok();
        let title = procedure
            .as_ref()
            .map_or_else(|| row.definition_id.clone(), |p| p.title.clone());
        let label = |participant: bool, name: &str| {
            procedure
                .as_ref()
                .and_then(|p| {
                    if participant {
                        p.participant.as_ref()?.variables.get(name)?.label.clone()
                    } else {
                        p.variables.get(name)?.label.clone()
                    }
                })
                .unwrap_or_else(|| name.to_owned())
        };
        // A concluded procedure's own terms no longer matter to staff; an ETS's challenge
        // term runs on after the conclusion.
        let concerned = (staff && !row.is_final) || applied.contains(&row.id);
        if concerned && !is_meeting {
            for (name, term) in &row.data.terms {
                let key = name.clone();
                let text = label(false, name);
                push_term(
                    &mut out,
                    &row,
                    None,
                    (&key, &text),
                    term,
                    &title,
                    domain,
                    now,
                );
            }
        }
        if ets || staff {
            for (pid, part) in &row.data.participants {
                let own = part.organisation_id == person.organisation_id;
                if !((staff && !row.is_final) || own) || part.withdrawn {
                    continue;
                }
                for (name, term) in &part.terms {
                    let text = format!("{} – {}", label(true, name), part.name);
                    push_term(
                        &mut out,
                        &row,
                        Some(pid),
                        (name, &text),
                        term,
                        &title,
                        domain,
                        now,
                    );
                }
            }
        }
    }
    Ok(out)
}

/// A meeting as its invites describe it: same UID, the seduta's time, place and agenda.
fn meeting_event(row: &InstanceRow, domain: &str) -> Option<FeedEvent> {
    let vars = &row.data.variables;
    let text = |name: &str| vars.get(name).and_then(Value::as_str).map(str::trim);
    let start = DateTime::parse_from_rfc3339(text("data_seduta")?).ok()?;
    let minutes = vars
        .get("durata_minuti")
        .and_then(Value::as_i64)
        .filter(|m| *m > 0)
        .unwrap_or(120);
    let organo = text("organo").filter(|o| !o.is_empty()).unwrap_or("Seduta");
    let agenda = match vars.get("ordine_del_giorno") {
        Some(Value::Array(items)) => crate::notify::agenda_description(
            &items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                .collect::<Vec<_>>(),
        ),
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    let start = start.with_timezone(&ROME);
    Some(FeedEvent {
        uid: format!("{}@{domain}", row.id),
        sequence: u32::try_from(row.version).unwrap_or(0),
        summary: organo.to_owned(),
        description: agenda,
        location: text("luogo").unwrap_or_default().to_owned(),
        time: FeedTime::Timed {
            start,
            end: start + Duration::minutes(minutes),
        },
        cancelled: row.is_final && row.state.contains("annull"),
    })
}

#[allow(clippy::too_many_arguments)]
fn push_term(
    out: &mut Vec<FeedEvent>,
    row: &InstanceRow,
    participant: Option<&str>,
    (name, label): (&str, &str),
    term: &crate::engine::TermRecord,
    title: &str,
    domain: &str,
    now: DateTime<Utc>,
) {
    if term.expiry
        < (now - Duration::days(PAST_DAYS))
            .with_timezone(&ROME)
            .date_naive()
    {
        return;
    }
    let uid = match participant {
        Some(p) => format!("{}-{p}-{}@{domain}", row.id, slug(name)),
        None => format!("{}-{}@{domain}", row.id, slug(name)),
    };
    let time = match DateTime::parse_from_rfc3339(&term.deadline) {
        Ok(at) if !is_end_of_day(&at.with_timezone(&ROME)) => {
            let end = at.with_timezone(&ROME);
            FeedTime::Timed {
                start: end - Duration::minutes(30),
                end,
            }
        }
        _ => FeedTime::AllDay(term.expiry),
    };
    out.push(FeedEvent {
        uid,
        sequence: u32::try_from(row.version).unwrap_or(0),
        summary: format!("Scadenza: {label} – {title}"),
        description: term.trace.join("\n"),
        location: String::new(),
        time,
        cancelled: false,
    });
}

fn is_end_of_day(at: &DateTime<chrono_tz::Tz>) -> bool {
    use chrono::Timelike;
    at.hour() == 23 && at.minute() == 59
}

fn slug(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}
