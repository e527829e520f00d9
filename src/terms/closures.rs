//! Office closures read from YAML text (`closures: [{date: 2026-12-07, reason: "…"}]`); the
//! caller reads the file, this module only parses.

use super::Error;
use super::calendar::Closure;
use super::format::Short;
use chrono::NaiveDate;
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClosuresDocument {
    closures: Vec<ClosureEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClosureEntry {
    date: Spanned<String>,
    reason: Spanned<String>,
}

/// Parses a closures document:
///
/// ```yaml
/// closures:
///   - date: 2026-12-07
///     reason: "Sant'Ambrogio, patrono di Milano (delibera G.C. 12/2026)"
/// ```
///
/// Every entry needs a real date written AAAA-MM-GG and a non-empty reason (the act that closes
/// the office).
///
/// # Errors
///
/// [`Error::InvalidClosures`] for broken YAML, an unknown field, an impossible date or an empty
/// reason; the message starts with "riga L, colonna C" when the parser knows the position.
pub fn parse_closures(yaml_text: &str) -> Result<Vec<Closure>, Error> {
    let document: ClosuresDocument =
        serde_saphyr::from_str(yaml_text).map_err(|error| syntax_error(&error))?;
    let mut closures = Vec::with_capacity(document.closures.len());
    for entry in document.closures {
        let text = entry.date.value.trim();
        let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") else {
            return Err(Error::InvalidClosures(format!(
                "{}: data inesistente o non nella forma AAAA-MM-GG: {text:?}",
                position(entry.date.referenced)
            )));
        };
        let reason = entry.reason.value.trim();
        if reason.is_empty() {
            return Err(Error::InvalidClosures(format!(
                "{}: la chiusura del {} non ha un motivo (reason)",
                position(entry.reason.referenced),
                Short(date)
            )));
        }
        closures.push(Closure {
            date,
            reason: reason.to_owned(),
        });
    }
    Ok(closures)
}

fn position(location: Location) -> String {
    format!("riga {}, colonna {}", location.line(), location.column())
}

/// The parser's message with its position in front, in Italian.
fn syntax_error(error: &serde_saphyr::Error) -> Error {
    let message = error.without_snippet().to_string();
    let message = message.trim();
    Error::InvalidClosures(match error.location() {
        Some(location) if location.line() > 0 => {
            let bare = message
                .rfind(" at line ")
                .map_or(message, |suffix| &message[..suffix]);
            format!("{}: {bare}", position(location))
        }
        _ => message.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closures_document_is_read() {
        let text = "closures:\n  - date: 2026-12-07\n    reason: \"Sant'Ambrogio\"\n  - {date: 2026-12-24, reason: Vigilia}\n";
        let closures = parse_closures(text).expect("valid document");
        assert_eq!(
            closures,
            vec![
                Closure {
                    date: NaiveDate::from_ymd_opt(2026, 12, 7).expect("valid"),
                    reason: "Sant'Ambrogio".into(),
                },
                Closure {
                    date: NaiveDate::from_ymd_opt(2026, 12, 24).expect("valid"),
                    reason: "Vigilia".into(),
                },
            ]
        );
        assert_eq!(
            parse_closures("closures: []\n").expect("empty list"),
            vec![]
        );
    }

    #[test]
    fn an_impossible_date_is_refused_with_its_line() {
        let text = "closures:\n  - date: 2026-02-30\n    reason: x\n";
        let message = parse_closures(text).expect_err("30 Feb").to_string();
        assert_eq!(
            message,
            "calendario chiusure non valido: riga 2, colonna 11: data inesistente o non nella forma AAAA-MM-GG: \"2026-02-30\""
        );
        let text = "closures:\n  - date: 7 dicembre\n    reason: x\n";
        let message = parse_closures(text).expect_err("words").to_string();
        assert!(message.contains("riga 2, colonna 11"), "{message}");
    }

    #[test]
    fn an_unknown_field_or_broken_yaml_is_refused() {
        let unknown = "closures:\n  - date: 2026-12-07\n    reason: x\n    why: y\n";
        let message = parse_closures(unknown)
            .expect_err("unknown field")
            .to_string();
        assert!(
            message.contains("riga 4, colonna 5: unknown field `why`"),
            "{message}"
        );
        let broken = "closures: [\n";
        let message = parse_closures(broken).expect_err("broken").to_string();
        assert!(message.contains("riga 1, colonna 11"), "{message}");
        assert!(parse_closures("").is_err());
    }

    #[test]
    fn a_closure_without_a_reason_is_refused_with_its_position() {
        let text = "closures:\n  - date: 2026-12-07\n    reason: \"  \"\n";
        let message = parse_closures(text).expect_err("empty reason").to_string();
        assert!(message.contains("riga 3"), "{message}");
        assert!(message.contains("07/12/2026"), "{message}");
    }
}
