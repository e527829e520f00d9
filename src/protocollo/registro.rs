//! The registro giornaliero di protocollo (art. 53 c.2 DPR 445/2000): for one civil day
//! (Europe/Rome), the registrations made that day in every register, and the annulments,
//! corrections and reconciliations made that day (also on earlier registrations), written as
//! CSV (`;`-separated, UTF-8) and as an HTML page. Pure: the caller gathers the day's rows.

use chrono::{NaiveDate, SecondsFormat};

use crate::store::{ProtocolAmendment, ProtocolRegistration};
use crate::terms::ROME;

/// What a day's register lists.
#[derive(Debug, Clone)]
pub struct Day<'a> {
    /// The day.
    pub day: NaiveDate,
    /// The registrations made that day.
    pub registrations: &'a [ProtocolRegistration],
    /// The amendments made that day, each with the registration it amends.
    pub amendments: &'a [(ProtocolAmendment, ProtocolRegistration)],
    /// The chain value at the end of the day.
    pub chain_head: Option<&'a str>,
}

fn csv_field(text: &str) -> String {
    if text.contains([';', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

fn correspondents(r: &ProtocolRegistration) -> String {
    r.correspondents
        .iter()
        .map(|c| match &c.email {
            Some(email) => format!("{} <{email}>", c.name),
            None => c.name.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn impronte(r: &ProtocolRegistration) -> String {
    r.documents
        .iter()
        .map(|d| format!("{} sha256:{}", d.name, d.sha256))
        .collect::<Vec<_>>()
        .join(", ")
}

fn time(r: &ProtocolRegistration) -> String {
    r.registered_at
        .with_timezone(&ROME)
        .to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// The CSV file: one section of registrations, one of amendments.
pub fn csv(day: &Day<'_>) -> String {
    let mut out = String::from(
        "sezione;registro;anno;numero;data_ora;direzione;oggetto;corrispondenti;classificazione;fascicolo;riferimento_mittente;data_mittente;ricevuto_il;canale;fonte;impronte;catena\n",
    );
    for r in day.registrations {
        let row = [
            "registrazione".to_owned(),
            r.register.clone(),
            r.year.to_string(),
            r.padded_number(),
            time(r),
            r.direction.as_str().to_owned(),
            r.subject.clone(),
            correspondents(r),
            r.classification.clone().unwrap_or_default(),
            r.fascicolo.clone().unwrap_or_default(),
            r.sender_reference.clone().unwrap_or_default(),
            r.sender_date
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default(),
            r.received_at
                .map(|t| {
                    t.with_timezone(&ROME)
                        .to_rfc3339_opts(SecondsFormat::Secs, false)
                })
                .unwrap_or_default(),
            r.channel.clone(),
            r.source.as_str().to_owned(),
            impronte(r),
            r.chain.clone().unwrap_or_default(),
        ];
        out.push_str(
            &row.iter()
                .map(|f| csv_field(f))
                .collect::<Vec<_>>()
                .join(";"),
        );
        out.push('\n');
    }
    out.push_str("\nsezione;registro;anno;numero;tipo;campo;valore_precedente;nuovo_valore;motivo;atto;operatore;il;catena\n");
    for (a, r) in day.amendments {
        let row = [
            "annotazione".to_owned(),
            r.register.clone(),
            r.year.to_string(),
            r.padded_number(),
            a.kind.as_str().to_owned(),
            a.field.clone().unwrap_or_default(),
            a.previous.clone().unwrap_or_default(),
            a.value.clone().unwrap_or_default(),
            a.reason.clone(),
            a.act.clone().unwrap_or_default(),
            a.operator.clone(),
            a.at.with_timezone(&ROME)
                .to_rfc3339_opts(SecondsFormat::Secs, false),
            a.chain.clone(),
        ];
        out.push_str(
            &row.iter()
                .map(|f| csv_field(f))
                .collect::<Vec<_>>()
                .join(";"),
        );
        out.push('\n');
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The HTML page, for people: the same content as the CSV.
pub fn html(day: &Day<'_>, aoo: &str) -> String {
    let date = day.day.format("%d/%m/%Y");
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"it\">\n<head><meta charset=\"utf-8\"><title>Registro giornaliero di protocollo del {date}</title></head>\n<body>\n<h1>Registro giornaliero di protocollo del {date}</h1>\n<p>{} – {} registrazioni, {} annotazioni.</p>\n",
        escape(aoo),
        day.registrations.len(),
        day.amendments.len()
    );
    out.push_str("<table>\n<caption>Registrazioni del giorno</caption>\n<thead><tr><th scope=\"col\">Registro</th><th scope=\"col\">Numero</th><th scope=\"col\">Data e ora</th><th scope=\"col\">Direzione</th><th scope=\"col\">Oggetto</th><th scope=\"col\">Mittente o destinatari</th><th scope=\"col\">Classificazione</th><th scope=\"col\">Fascicolo</th><th scope=\"col\">Impronte SHA-256</th></tr></thead>\n<tbody>\n");
    for r in day.registrations {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}/{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            escape(&r.register),
            r.padded_number(),
            r.year,
            escape(&time(r)),
            r.direction.as_str(),
            escape(&r.subject),
            escape(&correspondents(r)),
            escape(r.classification.as_deref().unwrap_or("")),
            escape(r.fascicolo.as_deref().unwrap_or("")),
            escape(&impronte(r)),
        ));
    }
    out.push_str("</tbody>\n</table>\n<table>\n<caption>Annullamenti, correzioni e riconciliazioni del giorno</caption>\n<thead><tr><th scope=\"col\">Registrazione</th><th scope=\"col\">Tipo</th><th scope=\"col\">Campo</th><th scope=\"col\">Valore precedente</th><th scope=\"col\">Nuovo valore</th><th scope=\"col\">Motivo</th><th scope=\"col\">Atto</th><th scope=\"col\">Operatore</th></tr></thead>\n<tbody>\n");
    for (a, r) in day.amendments {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            escape(&r.to_string()),
            a.kind.as_str(),
            escape(a.field.as_deref().unwrap_or("")),
            escape(a.previous.as_deref().unwrap_or("")),
            escape(a.value.as_deref().unwrap_or("")),
            escape(&a.reason),
            escape(a.act.as_deref().unwrap_or("")),
            escape(&a.operator),
        ));
    }
    out.push_str("</tbody>\n</table>\n");
    if let Some(head) = day.chain_head {
        out.push_str(&format!(
            "<p>Impronta della catena del registro a fine giornata: <code>{head}</code></p>\n"
        ));
    }
    out.push_str("</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_field_with_a_separator_or_quote_is_quoted() {
        assert_eq!(csv_field("semplice"), "semplice");
        assert_eq!(csv_field("a;b"), "\"a;b\"");
        assert_eq!(csv_field("detto \"x\""), "\"detto \"\"x\"\"\"");
    }

    #[test]
    fn an_empty_day_still_has_its_register() {
        let day = Day {
            day: NaiveDate::from_ymd_opt(2026, 12, 25).expect("valid"),
            registrations: &[],
            amendments: &[],
            chain_head: None,
        };
        let csv = csv(&day);
        assert_eq!(csv.lines().filter(|l| l.starts_with("sezione")).count(), 2);
        assert!(html(&day, "Ambito").contains("Registro giornaliero di protocollo del 25/12/2026"));
    }
}
