//! The history of an instance for accesso agli atti (art. 22 ff. L. 241/1990): every event with
//! its actor and a digest of its payload, every computed term with its trace, the protocol
//! registrations with their documents' SHA-256, and who received which message — as JSON and
//! as a readable HTML page, with a SHA-256 over the whole export (`impronta`).
//!
//! An export for a third party (an ETS exercising its right of access) leaves out what art. 24
//! protects — other parties' personal data and their technical and commercial content — and
//! marks each omission with its reason. `build` is pure; `load` reads what it needs.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::store::{
    self, DeliveryFilter, DeliveryRow, HistoryRow, InstanceRow, ProtocolRegistration,
};

/// Why something is left out of a third party's export.
pub const OMITTED: &str = "omesso: dati di altri interessati o contenuto tecnico e commerciale di altri partecipanti (art. 24 L. 241/1990)";

/// Who the export is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader<'a> {
    /// The office (and a judge): everything.
    Office,
    /// A party exercising access: its own data in full, others' left out.
    ThirdParty {
        /// The organisation asking.
        organisation_id: &'a str,
    },
}

/// What an export is made from.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The instance.
    pub instance: InstanceRow,
    /// The procedure's title.
    pub title: String,
    /// Its history, by seq.
    pub history: Vec<HistoryRow>,
    /// Its protocol registrations.
    pub registrations: Vec<ProtocolRegistration>,
    /// Its deliveries.
    pub deliveries: Vec<DeliveryRow>,
    /// Each person's organisation.
    pub person_org: BTreeMap<String, String>,
}

/// Reads what the export of `instance_id` needs.
///
/// # Errors
///
/// The store's; `NotFound` for an unknown instance.
pub async fn load(
    store: &store::Store,
    instance_id: &str,
    title: String,
) -> store::Result<Sources> {
    let instance = store
        .instance(instance_id)
        .await?
        .ok_or_else(|| store::Error::NotFound {
            what: "istanza",
            id: instance_id.to_string(),
        })?;
    let history = store.history(instance_id).await?;
    let registrations = store
        .protocol_registrations(&store::ProtocolFilter {
            instance_id: Some(instance_id.to_string()),
            ..store::ProtocolFilter::default()
        })
        .await?;
    let deliveries = store
        .deliveries(&DeliveryFilter {
            instance_id: Some(instance_id.to_string()),
            ..DeliveryFilter::default()
        })
        .await?;
    let person_org = store
        .people()
        .await?
        .into_iter()
        .map(|p| (p.id, p.organisation_id))
        .collect();
    Ok(Sources {
        instance,
        title,
        history,
        registrations,
        deliveries,
        person_org,
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The SHA-256 of a value's canonical JSON (keys sorted, no spaces).
fn digest(value: &Value) -> String {
    sha256_hex(value.to_string().as_bytes())
}

/// The export as JSON, with `impronta`: the SHA-256 of the canonical JSON of everything else
/// in it (keys sorted, no spaces), so anyone can check it.
pub fn build(sources: &Sources, reader: Reader<'_>, generated_at: DateTime<Utc>) -> Value {
    let data = &sources.instance.data;
    let own = |participant: &str| match reader {
        Reader::Office => true,
        Reader::ThirdParty { organisation_id } => data
            .participants
            .get(participant)
            .is_some_and(|p| p.organisation_id == organisation_id),
    };
    let third = matches!(reader, Reader::ThirdParty { .. });

    let events: Vec<Value> = sources
        .history
        .iter()
        .map(|h| {
            let theirs = h.participant.as_ref().is_some_and(|m| !own(&m.id));
            if theirs {
                return json!({
                    "seq": h.seq,
                    "istante": h.at,
                    "evento": h.event,
                    "omesso": OMITTED,
                });
            }
            json!({
                "seq": h.seq,
                "istante": h.at,
                "evento": h.event,
                // A third party reads the role that acted, not the person.
                "attore": if third { Value::Null } else { json!(h.actor.id) },
                "ruolo": h.actor.role,
                "da": h.from_state,
                "a": h.to_state,
                "partecipante": h.participant.as_ref().map(|m| json!({ "id": m.id, "da": m.from, "a": m.to })),
                "impronta_dati": digest(&h.payload),
                "in_ritardo": h.late,
            })
        })
        .collect();

    let term = |name: &str, t: &crate::engine::TermRecord| {
        json!({
            "termine": name,
            "regola": t.rule,
            "dal": t.from,
            "dies_a_quo": t.start,
            "scadenza": t.expiry,
            "istante": t.deadline,
            "traccia": t.trace,
        })
    };
    let mut terms: Vec<Value> = data.terms.iter().map(|(n, t)| term(n, t)).collect();
    let mut participants = Vec::new();
    for (id, part) in &data.participants {
        if own(id) {
            terms.extend(part.terms.iter().map(|(n, t)| {
                let mut v = term(n, t);
                if let Value::Object(map) = &mut v {
                    map.insert("partecipante".into(), json!(id));
                }
                v
            }));
            participants.push(json!({
                "id": id,
                "ente": part.name,
                "stato": part.state,
                "variabili": Value::Object(part.variables.clone()),
            }));
        } else {
            // The name and the state of another applicant are in the public acts (the
            // graduatoria); what it submitted is not.
            participants.push(json!({
                "id": id,
                "ente": part.name,
                "stato": part.state,
                "omesso": OMITTED,
            }));
        }
    }

    let concerns = |r: &ProtocolRegistration| match reader {
        Reader::Office => true,
        Reader::ThirdParty { organisation_id } => r
            .correspondents
            .iter()
            .any(|c| c.organisation_id.as_deref() == Some(organisation_id)),
    };
    let registrations: Vec<Value> = sources
        .registrations
        .iter()
        .map(|r| {
            if concerns(r) || r.direction == store::Direction::Interno {
                json!({
                    "riferimento": r.reference(),
                    "registro": r.register,
                    "direzione": r.direction.as_str(),
                    "data": r.registered_at,
                    "oggetto": r.subject,
                    "documenti": r.documents.iter().map(|d| json!({
                        "nome": d.name, "tipo": d.media_type, "sha256": d.sha256,
                    })).collect::<Vec<_>>(),
                })
            } else {
                json!({ "riferimento": r.reference(), "omesso": OMITTED })
            }
        })
        .collect();

    let mine = |d: &DeliveryRow| match reader {
        Reader::Office => true,
        Reader::ThirdParty { organisation_id } => d
            .person_id
            .as_ref()
            .and_then(|p| sources.person_org.get(p))
            .is_some_and(|org| org == organisation_id),
    };
    let shown: Vec<Value> = sources
        .deliveries
        .iter()
        .filter(|d| mine(d))
        .map(|d| {
            json!({
                "messaggio": d.kind,
                "destinatario": d.recipient_name,
                "indirizzo": d.recipient_email,
                "stato": d.status.as_str(),
                "tentativi": d.attempts,
                "message_id": d.message_id,
                "creato": d.created_at,
                "inviato": d.sent_at,
            })
        })
        .collect();
    let hidden = sources.deliveries.len() - shown.len();

    let mut export = Map::new();
    export.insert(
        "istanza".into(),
        json!({
            "id": sources.instance.id,
            "procedura": sources.instance.definition_id,
            "versione": sources.instance.definition_version,
            "titolo": sources.title,
            "stato": sources.instance.state,
            "avviata": sources.instance.created_at,
        }),
    );
    export.insert(
        "destinatario_dell_esportazione".into(),
        match reader {
            Reader::Office => json!("ufficio"),
            Reader::ThirdParty { organisation_id } => json!({ "terzo": organisation_id }),
        },
    );
    export.insert("generata".into(), json!(generated_at));
    export.insert("eventi".into(), Value::Array(events));
    export.insert("termini".into(), Value::Array(terms));
    export.insert("partecipanti".into(), Value::Array(participants));
    export.insert("protocollo".into(), Value::Array(registrations));
    export.insert(
        "consegne".into(),
        json!({ "elenco": shown, "omesse": hidden, "motivo_omissione": (hidden > 0).then_some(OMITTED) }),
    );
    let mut export = Value::Object(export);
    let impronta = digest(&export);
    if let Value::Object(map) = &mut export {
        map.insert("impronta".into(), json!(impronta));
    }
    export
}

/// Checks an export's `impronta` against its content.
pub fn verify(export: &Value) -> bool {
    let mut body = export.clone();
    let Some(claimed) = body
        .as_object_mut()
        .and_then(|m| m.remove("impronta"))
        .and_then(|v| v.as_str().map(str::to_string))
    else {
        return false;
    };
    digest(&body) == claimed
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => escape(s),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join("<br>"),
        other => escape(&other.to_string()),
    }
}

/// The export as a readable page (Italian, no script, no external resource).
pub fn html(export: &Value) -> String {
    let mut out = String::from(
        "<!DOCTYPE html>\n<html lang=\"it\">\n<head><meta charset=\"utf-8\"><title>Storico della pratica</title></head>\n<body style=\"font-family: sans-serif; line-height: 1.5; color: #1a1a1a; max-width: 60em;\">\n",
    );
    let i = &export["istanza"];
    out.push_str(&format!(
        "<h1>Storico della pratica {}</h1>\n<p>{} (procedura {} versione {}), stato: {}. Esportazione generata il {}.</p>\n",
        cell(&i["id"]),
        cell(&i["titolo"]),
        cell(&i["procedura"]),
        cell(&i["versione"]),
        cell(&i["stato"]),
        cell(&export["generata"]),
    ));
    let table = |out: &mut String, title: &str, rows: &Value, columns: &[(&str, &str)]| {
        out.push_str(&format!(
            "<h2>{}</h2>\n<table style=\"border-collapse: collapse;\">\n<thead><tr>",
            escape(title)
        ));
        for (_, label) in columns {
            out.push_str(&format!(
                "<th style=\"text-align: left; padding: 4px 8px;\">{}</th>",
                escape(label)
            ));
        }
        out.push_str(
            "<th style=\"text-align: left; padding: 4px 8px;\">Note</th></tr></thead>\n<tbody>\n",
        );
        for row in rows.as_array().into_iter().flatten() {
            out.push_str("<tr>");
            for (key, _) in columns {
                out.push_str(&format!(
                    "<td style=\"padding: 4px 8px; vertical-align: top;\">{}</td>",
                    cell(&row[*key])
                ));
            }
            out.push_str(&format!(
                "<td style=\"padding: 4px 8px; vertical-align: top;\">{}</td></tr>\n",
                row.get("omesso").map(cell).unwrap_or_default()
            ));
        }
        out.push_str("</tbody>\n</table>\n");
    };
    table(
        &mut out,
        "Eventi",
        &export["eventi"],
        &[
            ("seq", "N."),
            ("istante", "Istante (UTC)"),
            ("evento", "Evento"),
            ("ruolo", "Ruolo"),
            ("attore", "Chi"),
            ("da", "Da"),
            ("a", "A"),
            ("impronta_dati", "Impronta dei dati (SHA-256)"),
        ],
    );
    table(
        &mut out,
        "Termini e loro calcolo",
        &export["termini"],
        &[
            ("termine", "Termine"),
            ("regola", "Regola"),
            ("scadenza", "Scadenza"),
            ("traccia", "Calcolo"),
        ],
    );
    table(
        &mut out,
        "Partecipanti",
        &export["partecipanti"],
        &[("ente", "Ente"), ("stato", "Stato")],
    );
    table(
        &mut out,
        "Protocollo",
        &export["protocollo"],
        &[
            ("riferimento", "Riferimento"),
            ("direzione", "Direzione"),
            ("data", "Data"),
            ("oggetto", "Oggetto"),
        ],
    );
    table(
        &mut out,
        "Comunicazioni",
        &export["consegne"]["elenco"],
        &[
            ("messaggio", "Messaggio"),
            ("destinatario", "Destinatario"),
            ("stato", "Stato"),
            ("inviato", "Inviato"),
            ("message_id", "Message-ID"),
        ],
    );
    if export["consegne"]["omesse"].as_u64().is_some_and(|n| n > 0) {
        out.push_str(&format!(
            "<p>Comunicazioni ad altri destinatari: {} ({}).</p>\n",
            cell(&export["consegne"]["omesse"]),
            escape(OMITTED)
        ));
    }
    out.push_str(&format!(
        "<p>Impronta SHA-256 dell'esportazione JSON (senza il campo impronta, chiavi ordinate): <code>{}</code></p>\n</body>\n</html>\n",
        cell(&export["impronta"])
    ));
    out
}
