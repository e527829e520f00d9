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

pub mod capofila;

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
    /// Its registration: protocol number (or repertorio number) and date.
    pub protocollo: Option<Registration>,
    /// The registered documents, each with its SHA-256.
    pub documents: Vec<Document>,
    /// The text of the act itself, when short (a FAQ: question and answer).
    pub text: Option<String>,
    /// Also in Amministrazione trasparente.
    #[serde(skip)]
    pub trasparente: bool,
}

/// The registration of an act at the albo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Registration {
    /// The register (the protocollo, or a repertorio such as `deliberazioni`).
    pub registro: String,
    /// The number as written on documents (`0000042`).
    pub numero: String,
    /// The year of the numbering.
    pub anno: i32,
    /// The civil date of the registration (Europe/Rome).
    pub data: NaiveDate,
}

impl Registration {
    fn of(row: &store::ProtocolRegistration) -> Registration {
        Registration {
            registro: row.register.clone(),
            numero: row.padded_number(),
            anno: row.year,
            data: row.date(),
        }
    }

    /// `n. 0000042 del 12/03/2027` (with the register when it is a repertorio).
    pub fn label(&self) -> String {
        let register = if self.registro == store::PROTOCOL_REGISTER {
            "Protocollo".to_owned()
        } else {
            format!("Repertorio {}", self.registro)
        };
        format!(
            "{register} n. {} del {}",
            self.numero,
            self.data.format("%d/%m/%Y")
        )
    }
}

/// A registered document published with an act.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Document {
    /// File name.
    pub name: String,
    /// Media type.
    pub media_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Hex SHA-256 of the content: anyone can check the copy they downloaded.
    pub sha256: String,
}

impl Document {
    fn of(doc: &store::ProtocolDocument) -> Document {
        Document {
            name: doc.name.clone(),
            media_type: doc.media_type.clone(),
            size: doc.size,
            sha256: doc.sha256.clone(),
        }
    }

    /// Where the public downloads it.
    pub fn href(&self) -> String {
        format!("/albo/documenti/{}", self.sha256)
    }
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
    let acts = acts_where(service, |act| act.from <= today && today <= act.until).await?;
    Ok(newest_first(acts))
}

/// The acts of every instance that `keep` keeps, by instance (instances without any left out).
async fn acts_where(
    service: &Service,
    keep: impl Fn(&Publication) -> bool,
) -> store::Result<Vec<(String, Vec<Publication>)>> {
    let mut out = Vec::new();
    for row in service
        .store()
        .instances(&InstanceFilter::default())
        .await?
    {
        let acts: Vec<Publication> = acts_of(service, &row)
            .await?
            .into_iter()
            .filter(|act| keep(act))
            .collect();
        if !acts.is_empty() {
            out.push((row.id.clone(), acts));
        }
    }
    Ok(out)
}

/// The acts of every instance together, the most recent first.
fn newest_first(acts: Vec<(String, Vec<Publication>)>) -> Vec<Publication> {
    let mut out: Vec<Publication> = acts.into_iter().flat_map(|(_, acts)| acts).collect();
    out.sort_by(|a, b| b.from.cmp(&a.from).then_with(|| a.id.cmp(&b.id)));
    out
}

/// Every act of an instance with its window, whatever the day: the `albo:` entries whose
/// variables are set (with their FAQ when the entry says so), and the deliberazioni with a
/// window; each with its registration and documents.
async fn acts_of(service: &Service, row: &store::InstanceRow) -> store::Result<Vec<Publication>> {
    let mut out = Vec::new();
    let Ok(p) = service
        .procedure(&row.definition_id, Some(row.definition_version))
        .await
    else {
        return Ok(out);
    };
    if p.albo.is_empty() && row.data.meeting.is_none() {
        return Ok(out);
    }
    let registrations: Vec<store::ProtocolRegistration> = service
        .store()
        .protocol_registrations(&store::ProtocolFilter {
            instance_id: Some(row.id.clone()),
            ..store::ProtocolFilter::default()
        })
        .await?
        .into_iter()
        .filter(|r| r.annulment().is_none())
        .collect();
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
        let registration = entry
            .document
            .as_deref()
            .and_then(|d| registration_of(row, &registrations, d));
        out.push(Publication {
            id: format!("{}:{}", row.id, entry.id),
            title: entry.title.clone(),
            procedure: p.title.clone(),
            oggetto: oggetto.clone(),
            from,
            until,
            trace,
            protocollo: registration.map(Registration::of),
            documents: registration
                .map(|r| r.documents.iter().map(Document::of).collect())
                .unwrap_or_default(),
            text: None,
            trasparente: entry.trasparente,
        });
        if entry.faq {
            out.extend(faq(service, row, &p.title, oggetto.as_deref(), &entry.id, until).await?);
        }
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
        let repertorio = p.meeting.as_ref().map(|m| m.repertorio.as_str());
        for (index, decision) in &meeting.items {
            let Some(window) = &decision.publication else {
                continue;
            };
            // Items are counted from 0; the agenda from 1.
            let number = index + 1;
            let item = agenda.get(*index).cloned().unwrap_or_default();
            // The deliberazione's number in its repertorio (the engine's subject names the
            // item: "Deliberazione – <organo> – punto N: …").
            let marker = format!(" – punto {number}: ");
            let registration = registrations
                .iter()
                .filter(|r| Some(r.register.as_str()) == repertorio && r.subject.contains(&marker))
                .max_by_key(|r| r.registered_at);
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
                protocollo: registration.map(Registration::of),
                documents: registration
                    .map(|r| r.documents.iter().map(Document::of).collect())
                    .unwrap_or_default(),
                text: None,
                // Deliberazioni of the bodies are provvedimenti (art. 23 D.Lgs. 33/2013).
                trasparente: true,
            });
        }
    }
    Ok(out)
}

/// The registration an albo entry publishes: the latest (not annulled) of the instance whose
/// primary document is the template `document`, or the signed verbale of its meeting.
fn registration_of<'a>(
    row: &store::InstanceRow,
    registrations: &'a [store::ProtocolRegistration],
    document: &str,
) -> Option<&'a store::ProtocolRegistration> {
    if document == crate::definition::SIGNED_VERBALE {
        let signed = row.data.meeting.as_ref()?.signed.as_ref()?;
        let key = format!("verbale-firmato:{}:{}", row.id, signed.sha256);
        return registrations
            .iter()
            .find(|r| r.key.as_deref() == Some(key.as_str()));
    }
    let name = format!("{document}.html");
    registrations
        .iter()
        .filter(|r| {
            r.documents
                .iter()
                .any(|d| d.role == store::DocumentRole::Primario && d.name == name)
        })
        .max_by_key(|r| r.registered_at)
}

/// The FAQ of an instance at the albo with the act `entry`: each question answered and
/// published, from the day of its answer to the act's last day. The asking ETS is never named.
async fn faq(
    service: &Service,
    row: &store::InstanceRow,
    procedure: &str,
    oggetto: Option<&str>,
    entry: &str,
    until: NaiveDate,
) -> store::Result<Vec<Publication>> {
    let mut published: Vec<store::QuestionRow> = service
        .store()
        .questions(&row.id)
        .await?
        .into_iter()
        .filter(|q| q.public && q.answer.is_some() && q.answered_at.is_some())
        .collect();
    // Numbered in the order they were asked: a corrected answer keeps its number.
    published.sort_by(|a, b| a.asked_at.cmp(&b.asked_at).then_with(|| a.id.cmp(&b.id)));
    Ok(published
        .into_iter()
        .enumerate()
        .filter_map(|(index, q)| {
            let answered = q.answered_at?.with_timezone(&ROME).date_naive();
            if answered > until {
                // Answered after the act left the albo: published elsewhere, if at all.
                return None;
            }
            let answer = q.answer?;
            let number = index + 1;
            Some(Publication {
                id: format!("{}:{entry}-faq-{number}", row.id),
                title: format!("Risposta al quesito n. {number} (FAQ)"),
                procedure: procedure.to_owned(),
                oggetto: oggetto.map(str::to_owned),
                from: answered,
                until,
                trace: vec![format!(
                    "pubblicata il {} con l'atto «{entry}», fino al suo ultimo giorno",
                    answered.format("%d/%m/%Y")
                )],
                protocollo: None,
                documents: Vec::new(),
                text: Some(format!("Domanda: {}\nRisposta: {answer}", q.text)),
                trasparente: false,
            })
        })
        .collect())
}

/// The acts not ended on `today` (in publication or still to come), by instance: what the
/// capofila's albo must have.
///
/// # Errors
///
/// The store's.
pub async fn not_ended(
    service: &Service,
    today: NaiveDate,
) -> store::Result<Vec<(String, Vec<Publication>)>> {
    acts_where(service, |act| today <= act.until).await
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
    let acts = acts_where(service, |act| {
        act.trasparente && act.from <= today && today <= trasparente_until(act.from)
    })
    .await?;
    Ok(newest_first(acts))
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
            "<article>\n<h2>{}</h2>\n<p>{}{}</p>\n<p>Pubblicato all'albo dal {} al {}; in questa sezione fino al {}.</p>\n",
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
        details(&mut out, act);
        out.push_str("</article>\n");
    }
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

/// An act's text, registration and documents (each with its SHA-256 and a download link).
fn details(out: &mut String, act: &Publication) {
    if let Some(text) = &act.text {
        for line in text.lines() {
            let _ = writeln!(out, "<p>{}</p>", escape(line));
        }
    }
    if let Some(registration) = &act.protocollo {
        let _ = writeln!(out, "<p>{}</p>", escape(&registration.label()));
    }
    if !act.documents.is_empty() {
        out.push_str("<ul class=\"documenti\">\n");
        for doc in &act.documents {
            let _ = writeln!(
                out,
                "<li><a href=\"{href}\" download>{name}</a> ({kind}, {size} byte)<br><span class=\"impronta\">SHA-256 <code>{sha}</code></span></li>",
                href = escape(&doc.href()),
                name = escape(&doc.name),
                kind = escape(&doc.media_type),
                size = doc.size,
                sha = escape(&doc.sha256),
            );
        }
        out.push_str("</ul>\n");
    }
}

/// The style of the public pages: dark on light, visible focus, no external resource.
const STYLE: &str = "body{font-family:sans-serif;line-height:1.5;color:#1a1a1a;background:#fff;max-width:60em;margin:0 auto;padding:1em}article{border-bottom:1px solid #bbb;padding:0.5em 0}a{color:#0645ad}a:focus{outline:3px solid #1a1a1a;outline-offset:2px}ol{font-size:0.95em}code{overflow-wrap:anywhere;font-size:0.85em}";

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
        details(&mut out, act);
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

/// The document `sha256` if an act public on `today` (at the albo or in Amministrazione
/// trasparente) publishes it.
///
/// # Errors
///
/// The store's.
pub async fn public_document(
    service: &Service,
    today: NaiveDate,
    sha256: &str,
) -> store::Result<Option<Document>> {
    let albo = in_publication(service, today).await?;
    let trasparente = trasparente(service, today).await?;
    Ok(albo
        .iter()
        .chain(trasparente.iter())
        .flat_map(|act| act.documents.iter())
        .find(|d| d.sha256 == sha256)
        .cloned())
}

/// An act whose window has ended, for its referto.
struct Ended {
    key: String,
    instance_id: String,
    act: Publication,
}

/// Every act whose albo window ended before `today`.
async fn ended(service: &Service, today: NaiveDate) -> store::Result<Vec<Ended>> {
    // The acts of a day past all windows: the window closes the day after `until`.
    let Some(last) = today.pred_opt() else {
        return Ok(Vec::new());
    };
    Ok(acts_where(service, |act| act.until <= last)
        .await?
        .into_iter()
        .flat_map(|(instance_id, acts)| {
            acts.into_iter().map(move |act| Ended {
                key: format!("referto:{}", act.id),
                instance_id: instance_id.clone(),
                act,
            })
        })
        .collect())
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
        if let Some(registration) = &e.act.protocollo {
            text.push_str(&format!("\nAtto pubblicato: {}.\n", registration.label()));
        }
        for doc in &e.act.documents {
            text.push_str(&format!(
                "Documento «{}» ({} byte), impronta SHA-256 {}\n",
                doc.name, doc.size, doc.sha256
            ));
        }
        let handovers = store.albo_handovers(&e.instance_id).await?;
        match handovers.iter().rev().find(|h| h.act_id == e.act.id) {
            Some(h) => text.push_str(&format!(
                "Consegnato all'albo dell'ente capofila il {}: {}\n",
                h.handed_at
                    .with_timezone(&ROME)
                    .format("%d/%m/%Y alle %H:%M"),
                h.receipt
            )),
            None => text.push_str("Non risulta consegnato all'albo dell'ente capofila.\n"),
        }
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
