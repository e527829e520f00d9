//! The report of a procedure, for the people who run it: "where is this avviso, and why is
//! that the deadline?". One readable page (Italian, server-rendered, no script, no external
//! resource): the state with the procedure's diagram and the current state marked, every
//! deadline with its trace, the timers and reminders ahead, the participants with their
//! states, terms and PEC consegne, the timeline of events, the protocol numbers, and who
//! received which message and when (with the PEC status).
//!
//! `load` reads the store; `html` is pure. Used by `procedo report` and by `procedo serve`
//! at `/report/{instance}` (staff only).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::definition::Procedure;
use crate::export::Sources;
use crate::store::{TimerRow, TimerStatus};
use crate::terms::ROME;

/// What a report is made from.
#[derive(Debug, Clone)]
pub struct Report {
    /// What the history export reads (instance, history, protocol, deliveries).
    pub sources: Sources,
    /// The definition version the instance is pinned to.
    pub procedure: Arc<Procedure>,
    /// Its timers (pending ones are "ahead").
    pub timers: Vec<TimerRow>,
}

/// Reads the report of `instance_id`.
///
/// # Errors
///
/// The service's: an unknown instance, a store failure.
pub async fn load(
    service: &crate::service::Service,
    instance_id: &str,
) -> Result<Report, crate::service::Error> {
    let row = service
        .store()
        .instance(instance_id)
        .await?
        .ok_or_else(|| crate::service::Error::UnknownInstance {
            id: instance_id.to_string(),
        })?;
    let procedure = service
        .procedure(&row.definition_id, Some(row.definition_version))
        .await?;
    let sources = crate::export::load(service.store(), instance_id, procedure.title.clone())
        .await
        .map_err(crate::service::Error::Store)?;
    let timers = service
        .store()
        .timers(instance_id)
        .await
        .map_err(crate::service::Error::Store)?;
    Ok(Report {
        sources,
        procedure,
        timers,
    })
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn local(at: DateTime<Utc>) -> String {
    at.with_timezone(&ROME)
        .format("%d/%m/%Y %H:%M:%S")
        .to_string()
}

const STYLE: &str = "body{font-family:sans-serif;line-height:1.5;color:#1a1a1a;background:#fff;max-width:72em;margin:0 auto;padding:1em}\
table{border-collapse:collapse;margin:0.5em 0 1.5em}th,td{text-align:left;padding:4px 8px;vertical-align:top;border-bottom:1px solid #bbb}\
th{background:#eee}ol.trace{margin:0;padding-left:1.2em;font-size:0.95em}.current{font-weight:bold;color:#0b4f2e}\
a{color:#0645ad}a:focus,summary:focus{outline:3px solid #1a1a1a;outline-offset:2px}";

/// The report as a page.
pub fn html(report: &Report, now: DateTime<Utc>) -> String {
    let instance = &report.sources.instance;
    let p = &report.procedure;
    let state_title = |id: &str| {
        p.states
            .get(id)
            .map_or_else(|| id.to_string(), |s| s.title.clone())
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"it\">\n<head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Rapporto della pratica {id}</title><style>{STYLE}</style></head>\n<body>\n<main>\n<h1>{title} — pratica {id}</h1>\n<p>Procedura <code>{pid}</code> versione {version}. Stato attuale: <strong class=\"current\">{state}</strong>{concluded}. Rapporto generato il {now} (Europe/Rome).</p>\n",
        id = escape(&instance.id),
        title = escape(&p.title),
        pid = escape(&p.id),
        version = p.version,
        state = escape(&state_title(&instance.state)),
        concluded = if instance.is_final { " (conclusa)" } else { "" },
        now = local(now),
    );
    diagram(&mut out, p, &instance.state);
    terms(&mut out, report);
    timers_ahead(&mut out, report, now);
    participants(&mut out, report);
    timeline(&mut out, report, &state_title);
    protocol(&mut out, report);
    messages(&mut out, report);
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

/// The procedure's states as an SVG, laid out by distance from the initial state, the
/// current one filled; then the same as a list (what a screen reader reads).
fn diagram(out: &mut String, p: &Procedure, current: &str) {
    let mut layer: BTreeMap<String, usize> = BTreeMap::new();
    let initial = p.initial_state().id.to_string();
    layer.insert(initial.clone(), 0);
    let mut frontier = vec![initial];
    while let Some(state) = frontier.pop() {
        let depth = layer[&state];
        for t in p
            .transitions
            .iter()
            .filter(|t| t.from.iter().any(|f| f.as_str() == state))
        {
            let to = t.to.to_string();
            if !layer.contains_key(&to) {
                layer.insert(to.clone(), depth + 1);
                frontier.insert(0, to);
            }
        }
    }
    let mut rows: BTreeMap<usize, usize> = BTreeMap::new();
    let mut place: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let last = layer.values().copied().max().unwrap_or(0) + 1;
    for id in p.states.keys() {
        let depth = layer.get(id.as_str()).copied().unwrap_or(last);
        let row = rows.entry(depth).or_insert(0);
        place.insert(id.to_string(), (depth, *row));
        *row += 1;
    }
    let (w, h, gap_x, gap_y) = (180usize, 44usize, 56usize, 26usize);
    let columns = place.values().map(|(c, _)| c + 1).max().unwrap_or(1);
    let height_rows = rows.values().copied().max().unwrap_or(1);
    let width = columns * (w + gap_x);
    let height = height_rows * (h + gap_y) + gap_y;
    let centre = |id: &str| {
        place.get(id).map(|(c, r)| {
            (
                c * (w + gap_x) + 10 + w / 2,
                r * (h + gap_y) + gap_y + h / 2,
            )
        })
    };
    let _ = write!(
        out,
        "<h2>Diagramma della procedura</h2>\n<svg role=\"img\" aria-labelledby=\"diagramma-titolo\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" style=\"max-width:100%;height:auto\"><title id=\"diagramma-titolo\">Stati della procedura; lo stato attuale è {}</title>\n<defs><marker id=\"freccia\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#444\"/></marker></defs>\n",
        escape(
            &p.states
                .get(current)
                .map_or(current.to_string(), |s| s.title.clone())
        )
    );
    for t in &p.transitions {
        for from in &t.from {
            if let (Some((x1, y1)), Some((x2, y2))) = (centre(from.as_str()), centre(t.to.as_str()))
                && (x1, y1) != (x2, y2)
            {
                let (sx, ex) = if x2 >= x1 {
                    (x1 + w / 2, x2 - w / 2)
                } else {
                    (x1 - w / 2, x2 + w / 2)
                };
                let _ = writeln!(
                    out,
                    "<line x1=\"{sx}\" y1=\"{y1}\" x2=\"{ex}\" y2=\"{y2}\" stroke=\"#444\" stroke-width=\"1.2\" marker-end=\"url(#freccia)\"/>"
                );
            }
        }
    }
    for (id, state) in &p.states {
        let Some((cx, cy)) = centre(id.as_str()) else {
            continue;
        };
        let is_current = id.as_str() == current;
        let (fill, stroke, colour) = if is_current {
            ("#0b4f2e", "#0b4f2e", "#ffffff")
        } else if state.is_final {
            ("#f2f2f2", "#1a1a1a", "#1a1a1a")
        } else {
            ("#ffffff", "#1a1a1a", "#1a1a1a")
        };
        let short = state.title.split(':').next().unwrap_or(&state.title).trim();
        let label: String = if short.chars().count() > 22 {
            short.chars().take(21).collect::<String>() + "…"
        } else {
            short.to_owned()
        };
        let _ = writeln!(
            out,
            "<rect x=\"{}\" y=\"{}\" width=\"{w}\" height=\"{h}\" rx=\"8\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"{}\"/><text x=\"{cx}\" y=\"{}\" text-anchor=\"middle\" font-size=\"13\" fill=\"{colour}\">{}</text>",
            cx - w / 2,
            cy - h / 2,
            if state.is_final { 2.5 } else { 1.2 },
            cy + 5,
            escape(&label)
        );
    }
    out.push_str("</svg>\n<ul>\n");
    for (id, state) in &p.states {
        let outgoing: Vec<String> = p
            .transitions
            .iter()
            .filter(|t| t.from.iter().any(|f| f == id))
            .map(|t| {
                format!(
                    "{} → {}",
                    escape(&t.title),
                    escape(
                        &p.states
                            .get(t.to.as_str())
                            .map_or(t.to.to_string(), |s| s.title.clone())
                    )
                )
            })
            .collect();
        let mark = if id.as_str() == current {
            " <strong class=\"current\" aria-current=\"step\">(stato attuale)</strong>"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "<li>{}{mark}{}{}</li>",
            escape(&state.title),
            if state.is_final { " (finale)" } else { "" },
            if outgoing.is_empty() {
                String::new()
            } else {
                format!(": {}", outgoing.join("; "))
            }
        );
    }
    out.push_str("</ul>\n");
}

/// A deadline as stored (RFC 3339 or a date) written for a reader, in Rome's time.
fn deadline_text(text: &str) -> String {
    match DateTime::parse_from_rfc3339(text) {
        Ok(at) => local(at.with_timezone(&Utc)),
        Err(_) => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map_or_else(|_| text.to_owned(), |d| d.format("%d/%m/%Y").to_string()),
    }
}

fn trace_list(trace: &[String]) -> String {
    if trace.is_empty() {
        return "—".into();
    }
    let mut out = String::from("<ol class=\"trace\">");
    for line in trace {
        let _ = write!(out, "<li>{}</li>", escape(line));
    }
    out.push_str("</ol>");
    out
}

fn terms(out: &mut String, report: &Report) {
    let data = &report.sources.instance.data;
    out.push_str("<h2>Scadenze e loro calcolo</h2>\n");
    if data.terms.is_empty() {
        out.push_str("<p>Nessun termine calcolato.</p>\n");
        return;
    }
    out.push_str("<table>\n<thead><tr><th scope=\"col\">Termine</th><th scope=\"col\">Scadenza</th><th scope=\"col\">Regola</th><th scope=\"col\">Calcolo</th></tr></thead>\n<tbody>\n");
    for (name, term) in &data.terms {
        let label = report
            .procedure
            .variables
            .get(name.as_str())
            .and_then(|v| v.label.clone())
            .unwrap_or_else(|| name.clone());
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{} (da <code>{}</code>)</td><td>{}</td></tr>",
            escape(&label),
            escape(&deadline_text(&term.deadline)),
            escape(&term.rule),
            escape(&term.from),
            trace_list(&term.trace)
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

fn timers_ahead(out: &mut String, report: &Report, now: DateTime<Utc>) {
    let mut ahead: Vec<&TimerRow> = report
        .timers
        .iter()
        .filter(|t| t.status == TimerStatus::Pending)
        .collect();
    ahead.sort_by_key(|t| t.fire_at);
    out.push_str("<h2>Timer e promemoria in attesa</h2>\n");
    if ahead.is_empty() {
        out.push_str("<p>Nessun timer in attesa.</p>\n");
        return;
    }
    out.push_str("<table>\n<thead><tr><th scope=\"col\">Quando</th><th scope=\"col\">Timer</th><th scope=\"col\">Che cosa</th><th scope=\"col\">Calcolo</th></tr></thead>\n<tbody>\n");
    for t in ahead {
        let what = match &t.action {
            crate::engine::TimerAction::Fire { event, .. } => format!("evento «{event}»"),
            crate::engine::TimerAction::Remind { template, role, .. } => {
                format!("promemoria «{template}» a {role}")
            }
        };
        let overdue = if t.fire_at < now { " (in ritardo)" } else { "" };
        let _ = writeln!(
            out,
            "<tr><td>{}{overdue}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            local(t.fire_at),
            escape(&t.key),
            escape(&what),
            trace_list(&t.trace)
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

fn participants(out: &mut String, report: &Report) {
    let data = &report.sources.instance.data;
    if data.participants.is_empty() {
        return;
    }
    let def = report.procedure.participant.as_ref();
    out.push_str("<h2>Partecipanti</h2>\n<table>\n<thead><tr><th scope=\"col\">Ente</th><th scope=\"col\">Stato</th><th scope=\"col\">Termini</th><th scope=\"col\">Comunicazioni PEC</th></tr></thead>\n<tbody>\n");
    for part in data.participants.values() {
        let state = def
            .and_then(|d| d.states.get(part.state.as_str()))
            .map_or_else(|| part.state.clone(), |s| s.title.clone());
        let mut terms = String::new();
        for (name, term) in &part.terms {
            let _ = write!(
                terms,
                "<p><strong>{}</strong>: {}</p>{}",
                escape(name),
                escape(&deadline_text(&term.deadline)),
                trace_list(&term.trace)
            );
        }
        let consegne: Vec<String> = part
            .consegne
            .values()
            .map(|c| {
                format!(
                    "{}: {} ({})",
                    escape(&c.message),
                    escape(&c.status.replace('_', " ")),
                    escape(&c.receipt)
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&part.name),
            if part.withdrawn { " (ritirata)" } else { "" },
            escape(&state),
            if terms.is_empty() {
                "—".into()
            } else {
                terms
            },
            if consegne.is_empty() {
                "—".into()
            } else {
                consegne.join("<br>")
            }
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

fn timeline(out: &mut String, report: &Report, state_title: &dyn Fn(&str) -> String) {
    out.push_str("<h2>Cronologia</h2>\n<table>\n<thead><tr><th scope=\"col\">N.</th><th scope=\"col\">Quando</th><th scope=\"col\">Evento</th><th scope=\"col\">Chi</th><th scope=\"col\">Da</th><th scope=\"col\">A</th></tr></thead>\n<tbody>\n");
    for h in &report.sources.history {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            h.seq,
            local(h.at),
            escape(&h.event),
            if h.late { " (in ritardo)" } else { "" },
            escape(&h.actor.role),
            escape(
                &h.from_state
                    .as_deref()
                    .map_or_else(|| "—".to_string(), state_title)
            ),
            escape(&state_title(&h.to_state))
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

fn protocol(out: &mut String, report: &Report) {
    let rows = &report.sources.registrations;
    out.push_str("<h2>Protocollo</h2>\n");
    if rows.is_empty() {
        out.push_str("<p>Nessuna registrazione.</p>\n");
        return;
    }
    out.push_str("<table>\n<thead><tr><th scope=\"col\">Numero</th><th scope=\"col\">Data</th><th scope=\"col\">Direzione</th><th scope=\"col\">Oggetto</th><th scope=\"col\">Documenti (SHA-256)</th></tr></thead>\n<tbody>\n");
    for r in rows {
        let docs: Vec<String> = r
            .documents
            .iter()
            .map(|d| format!("{} <code>{}</code>", escape(&d.name), escape(&d.sha256)))
            .collect();
        let _ = writeln!(
            out,
            "<tr><td>{}/{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&r.padded_number()),
            r.year,
            local(r.registered_at),
            escape(r.direction.as_str()),
            escape(&r.subject),
            docs.join("<br>")
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

fn messages(out: &mut String, report: &Report) {
    let rows = &report.sources.deliveries;
    out.push_str("<h2>Comunicazioni</h2>\n");
    if rows.is_empty() {
        out.push_str("<p>Nessuna comunicazione.</p>\n");
        return;
    }
    out.push_str("<table>\n<thead><tr><th scope=\"col\">Messaggio</th><th scope=\"col\">Destinatario</th><th scope=\"col\">Canale</th><th scope=\"col\">Stato</th><th scope=\"col\">Inviato</th></tr></thead>\n<tbody>\n");
    for d in rows {
        let status = match (d.pec_status, d.pec_at) {
            (Some(s), Some(at)) => format!("{} ({})", s.as_str().replace('_', " "), local(at)),
            (Some(s), None) => s.as_str().replace('_', " "),
            _ => d.status.as_str().to_string(),
        };
        let channel = match d.channel {
            crate::definition::Channel::Pec => "PEC",
            crate::definition::Channel::Email => "email",
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{} &lt;{}&gt;</td><td>{channel}</td><td>{}</td><td>{}</td></tr>",
            escape(&d.kind),
            escape(&d.recipient_name),
            escape(&d.recipient_email),
            escape(&status),
            d.sent_at.map_or_else(|| "—".to_string(), local)
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_written_in_romes_time() {
        assert_eq!(
            deadline_text("2027-01-11T11:00:00+00:00"),
            "11/01/2027 12:00:00"
        );
        assert_eq!(deadline_text("2027-03-30"), "30/03/2027");
        assert_eq!(deadline_text("presto"), "presto");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }
}
