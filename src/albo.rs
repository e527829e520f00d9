//! The albo online as procedo mirrors it: the acts in publication today — what a workflow's
//! `albo:` declares (an avviso from its publication to its deadline, a graduatoria for its
//! challenge window) and the deliberazioni of the bodies, each for its own window — as a
//! public page, JSON and an Atom feed.
//!
//! Only public data: an entry's window is made of variables the validator checked are
//! `visible_to: [public]`, and its subject is the instance's `oggetto` only when that is
//! public too. An act leaves the page the day after its window ends: there is no public
//! archive of expired acts. The legally valid albo is the ente capofila's (art. 32 L.
//! 69/2009): this is its mirror.

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::definition::Visibility;
use crate::engine::terms::civil_date;
use crate::service::Service;
use crate::store::{self, InstanceFilter};
use crate::terms::ROME;

/// One act in publication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Publication {
    /// Stable id (`<instance>:<entry>`).
    pub id: String,
    /// What the act is.
    pub title: String,
    /// The procedure.
    pub procedure: String,
    /// The instance's public `oggetto`, if any.
    pub oggetto: Option<String>,
    /// First day at the albo (counted).
    pub from: NaiveDate,
    /// Last day at the albo.
    pub until: NaiveDate,
    /// How the window was computed, when the engine traced it.
    pub trace: Vec<String>,
    /// Also in Amministrazione trasparente.
    #[serde(skip)]
    pub trasparente: bool,
}

/// The acts in publication on `today` (Europe/Rome), the most recent first.
///
/// # Errors
///
/// The store's.
pub async fn in_publication(
    service: &Service,
    today: NaiveDate,
) -> store::Result<Vec<Publication>> {
    let mut out = Vec::new();
    for row in service
        .store()
        .instances(&InstanceFilter::default())
        .await?
    {
        out.extend(
            acts_of(service, &row)
                .await
                .into_iter()
                .filter(|act| act.from <= today && today <= act.until),
        );
    }
    out.sort_by(|a, b| b.from.cmp(&a.from).then_with(|| a.id.cmp(&b.id)));
    Ok(out)
}

/// Every act of an instance with its window, whatever the day: the `albo:` entries whose
/// variables are set, and the deliberazioni with a window.
async fn acts_of(service: &Service, row: &store::InstanceRow) -> Vec<Publication> {
    let mut out = Vec::new();
    let Ok(p) = service
        .procedure(&row.definition_id, Some(row.definition_version))
        .await
    else {
        return out;
    };
    let vars = &row.data.variables;
    let oggetto = p
        .variables
        .get("oggetto")
        .filter(|v| v.visibility == Visibility::Public)
        .and_then(|_| vars.get("oggetto"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    for entry in &p.albo {
        let (Some(from), Some(until)) = (
            vars.get(entry.from.as_str()).and_then(civil_date),
            vars.get(entry.until.as_str()).and_then(civil_date),
        ) else {
            continue;
        };
        let trace = row
            .data
            .terms
            .get(entry.until.as_str())
            .map(|t| t.trace.clone())
            .unwrap_or_default();
        out.push(Publication {
            id: format!("{}:{}", row.id, entry.id),
            title: entry.title.clone(),
            procedure: p.title.clone(),
            oggetto: oggetto.clone(),
            from,
            until,
            trace,
            trasparente: entry.trasparente,
        });
    }
    if let Some(meeting) = &row.data.meeting {
        let organo = vars
            .get("organo")
            .and_then(Value::as_str)
            .unwrap_or("Seduta");
        let agenda: Vec<String> = vars
            .get("ordine_del_giorno")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        for (index, decision) in &meeting.items {
            let Some(window) = &decision.publication else {
                continue;
            };
            // Items are counted from 0; the agenda from 1.
            let number = index + 1;
            let item = agenda.get(*index).cloned().unwrap_or_default();
            out.push(Publication {
                id: format!("{}:deliberazione-{number}", row.id),
                title: format!(
                    "Deliberazione – {organo} del {}",
                    decision.at.with_timezone(&ROME).format("%d/%m/%Y")
                ),
                procedure: p.title.clone(),
                oggetto: Some(format!("punto {number}. {item}")),
                from: window.from,
                until: window.to,
                trace: window.trace.clone(),
                // Deliberazioni of the bodies are provvedimenti (art. 23 D.Lgs. 33/2013).
                trasparente: true,
            });
        }
    }
    out
}

/// The last day an act stays in Amministrazione trasparente: five years from 1 January of
/// the year after its publication began (art. 8 c.3 D.Lgs. 33/2013).
pub fn trasparente_until(from: NaiveDate) -> NaiveDate {
    NaiveDate::from_ymd_opt(chrono::Datelike::year(&from) + 6, 1, 1)
        .and_then(|d| d.pred_opt())
        .unwrap_or(from)
}

/// The acts in Amministrazione trasparente on `today`: those declared `trasparente` (and the
/// deliberazioni) whose publication has begun, for five years.
///
/// # Errors
///
/// The store's.
pub async fn trasparente(service: &Service, today: NaiveDate) -> store::Result<Vec<Publication>> {
    let mut out = Vec::new();
    for row in service
        .store()
        .instances(&InstanceFilter::default())
        .await?
    {
        out.extend(acts_of(service, &row).await.into_iter().filter(|act| {
            act.trasparente && act.from <= today && today <= trasparente_until(act.from)
        }));
    }
    out.sort_by(|a, b| b.from.cmp(&a.from).then_with(|| a.id.cmp(&b.id)));
    Ok(out)
}

/// The Amministrazione trasparente page.
pub fn trasparente_html(ambito: &str, today: NaiveDate, acts: &[Publication]) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"it\">\n<head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Amministrazione trasparente – {a}</title><style>{STYLE}</style></head>\n<body>\n<header><h1>Amministrazione trasparente – {a}</h1>\n<p>Provvedimenti e atti delle procedure al {d}, pubblicati per cinque anni dal 1° gennaio dell'anno successivo all'inizio della pubblicazione (art. 8 c.3 D.Lgs. 33/2013). Anche in <a href=\"/trasparente.json\">JSON</a>. Gli atti in pubblicazione sono all'<a href=\"/albo\">albo online</a>.</p></header>\n<main>\n",
        a = escape(ambito),
        d = today.format("%d/%m/%Y"),
    );
    if acts.is_empty() {
        out.push_str("<p>Nessun atto.</p>\n");
    }
    for act in acts {
        let _ = write!(
            out,
            "<article>\n<h2>{}</h2>\n<p>{}{}</p>\n<p>Pubblicato all'albo dal {} al {}; in questa sezione fino al {}.</p>\n</article>\n",
            escape(&act.title),
            escape(&act.procedure),
            act.oggetto
                .as_ref()
                .map(|o| format!(": {}", escape(o)))
                .unwrap_or_default(),
            act.from.format("%d/%m/%Y"),
            act.until.format("%d/%m/%Y"),
            trasparente_until(act.from).format("%d/%m/%Y"),
        );
    }
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

/// The style of the public pages: dark on light, visible focus, no external resource.
const STYLE: &str = "body{font-family:sans-serif;line-height:1.5;color:#1a1a1a;background:#fff;max-width:60em;margin:0 auto;padding:1em}article{border-bottom:1px solid #bbb;padding:0.5em 0}a{color:#0645ad}a:focus{outline:3px solid #1a1a1a;outline-offset:2px}ol{font-size:0.95em}";

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The public page.
pub fn html(ambito: &str, today: NaiveDate, acts: &[Publication]) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"it\">\n<head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Albo online – {a}</title><link rel=\"alternate\" type=\"application/atom+xml\" title=\"Albo online\" href=\"/albo.atom\"><style>{STYLE}</style></head>\n<body>\n<header><h1>Albo online – {a}</h1>\n<p>Atti in pubblicazione il {d}. Copia dell'albo dell'ente capofila, che è quello legalmente valido (art. 32 L. 69/2009). Gli atti escono dall'albo alla fine del periodo di pubblicazione. Anche in <a href=\"/albo.json\">JSON</a> e come <a href=\"/albo.atom\">feed Atom</a>.</p></header>\n<main>\n",
        a = escape(ambito),
        d = today.format("%d/%m/%Y"),
    );
    if acts.is_empty() {
        out.push_str("<p>Nessun atto in pubblicazione.</p>\n");
    }
    for act in acts {
        let _ = write!(
            out,
            "<article id=\"{id}\">\n<h2>{title}</h2>\n<p>{procedure}{oggetto}</p>\n<p>In pubblicazione dal <strong>{from}</strong> al <strong>{until}</strong> (primo giorno compreso).</p>\n",
            id = escape(&act.id.replace(':', "-")),
            title = escape(&act.title),
            procedure = escape(&act.procedure),
            oggetto = act
                .oggetto
                .as_ref()
                .map(|o| format!(": {}", escape(o)))
                .unwrap_or_default(),
            from = act.from.format("%d/%m/%Y"),
            until = act.until.format("%d/%m/%Y"),
        );
        if !act.trace.is_empty() {
            out.push_str("<details><summary>Come è calcolato il periodo</summary><ol>");
            for line in &act.trace {
                let _ = write!(out, "<li>{}</li>", escape(line));
            }
            out.push_str("</ol></details>\n");
        }
        out.push_str("</article>\n");
    }
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

/// The Atom feed (RFC 4287) of the acts in publication.
pub fn atom(ambito: &str, base: &str, acts: &[Publication], now: DateTime<Utc>) -> String {
    let base = base.trim_end_matches('/');
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\" xml:lang=\"it\">\n<title>Albo online – {}</title>\n<id>{base}/albo</id>\n<link rel=\"self\" href=\"{base}/albo.atom\"/>\n<link rel=\"alternate\" href=\"{base}/albo\"/>\n<updated>{}</updated>\n<author><name>{}</name></author>\n",
        escape(ambito),
        now.to_rfc3339(),
        escape(ambito)
    );
    for act in acts {
        let updated = act
            .from
            .and_hms_opt(0, 0, 0)
            .and_then(|t| t.and_local_timezone(ROME).single())
            .map_or_else(|| now.to_rfc3339(), |t| t.to_rfc3339());
        let _ = write!(
            out,
            "<entry>\n<id>urn:procedo:albo:{}</id>\n<title>{}</title>\n<link href=\"{base}/albo#{}\"/>\n<updated>{updated}</updated>\n<summary>{}{} – in pubblicazione dal {} al {}</summary>\n</entry>\n",
            escape(&act.id),
            escape(&act.title),
            escape(&act.id.replace(':', "-")),
            escape(&act.procedure),
            act.oggetto
                .as_ref()
                .map(|o| format!(": {}", escape(o)))
                .unwrap_or_default(),
            act.from.format("%d/%m/%Y"),
            act.until.format("%d/%m/%Y"),
        );
    }
    out.push_str("</feed>\n");
    out
}

/// An act whose window has ended, for its referto.
struct Ended {
    key: String,
    instance_id: String,
    act: Publication,
}

/// Every act whose albo window ended before `today`.
async fn ended(service: &Service, today: NaiveDate) -> store::Result<Vec<Ended>> {
    let mut out = Vec::new();
    for row in service
        .store()
        .instances(&InstanceFilter::default())
        .await?
    {
        // The acts of a day past all windows: the window closes the day after `until`.
        let Some(last) = today.pred_opt() else {
            continue;
        };
        for act in acts_of(service, &row).await {
            if act.until <= last {
                out.push(Ended {
                    key: format!("referto:{}", act.id),
                    instance_id: row.id.clone(),
                    act,
                });
            }
        }
    }
    Ok(out)
}

/// Registers in the protocollo the referto di pubblicazione of every act whose window has
/// ended (once each: the registration's key is the act). Returns how many were written now.
///
/// # Errors
///
/// The protocollo's.
pub async fn referti(
    protocollo: &crate::protocollo::Protocollo,
    today: NaiveDate,
) -> Result<usize, crate::protocollo::Error> {
    let store = protocollo.service().store();
    let mut written = 0;
    for e in ended(protocollo.service(), today).await? {
        if store.protocol_by_key(&e.key).await?.is_some() {
            continue;
        }
        let days = (e.act.until - e.act.from).num_days() + 1;
        let mut text = format!(
            "REFERTO DI PUBBLICAZIONE\n\nSi attesta che l'atto «{}» ({}{}, pratica n. {}) è stato pubblicato all'albo online dal {} al {}, per {days} giorni consecutivi, primo giorno compreso.\n",
            e.act.title,
            e.act.procedure,
            e.act
                .oggetto
                .as_ref()
                .map(|o| format!(": {o}"))
                .unwrap_or_default(),
            e.instance_id,
            e.act.from.format("%d/%m/%Y"),
            e.act.until.format("%d/%m/%Y"),
        );
        if !e.act.trace.is_empty() {
            text.push_str("\nCalcolo del periodo:\n");
            for line in &e.act.trace {
                text.push_str(&format!("- {line}\n"));
            }
        }
        text.push_str(
            "\nL'albo legalmente valido è quello dell'ente capofila (art. 32 L. 69/2009).\n",
        );
        protocollo
            .register(crate::protocollo::Request {
                register: store::PROTOCOL_REGISTER.to_owned(),
                direction: store::Direction::Interno,
                subject: format!("Referto di pubblicazione – {}", e.act.title),
                correspondents: Vec::new(),
                classification: None,
                fascicolo: Some(e.instance_id.clone()),
                instance_id: Some(e.instance_id.clone()),
                key: Some(e.key.clone()),
                sender_reference: None,
                sender_date: None,
                received_at: None,
                channel: "albo".to_owned(),
                operator: "procedo".to_owned(),
                documents: vec![crate::protocollo::RequestDocument {
                    role: store::DocumentRole::Primario,
                    name: "referto-pubblicazione.txt".to_owned(),
                    media_type: "text/plain; charset=utf-8".to_owned(),
                    content: text.into_bytes(),
                }],
            })
            .await?;
        written += 1;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_act_stays_in_trasparente_five_years_from_the_first_of_january_after() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).expect("date");
        assert_eq!(trasparente_until(day(2026, 11, 27)), day(2031, 12, 31));
        assert_eq!(trasparente_until(day(2027, 1, 1)), day(2032, 12, 31));
    }
}
