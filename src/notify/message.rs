//! One email to one recipient, and its MIME form.
//!
//! Layout: `multipart/alternative` (text, HTML); with an invite, the alternative also holds a
//! `text/calendar; method=…` part (what calendar clients act on) and the whole is wrapped in
//! `multipart/mixed` with `invite.ics` attached (what other clients show).
//!
//! The Message-ID is chosen by the caller from its delivery key ([`message_id_for`]): a resend
//! after a crash carries the same id, so the receiving side (and the deliveries table) can
//! recognise it.

use std::fmt;

use lettre::Message;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Error, Method, Rendered};

/// An email ready to hand to a [`crate::notify::Transport`]; serialisable so an outbox row can
/// carry it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingEmail {
    /// `<key@domain>`, from [`message_id_for`]; the same on every attempt.
    pub message_id: String,
    /// `Ufficio di Piano <udp@ambito.it>` or a bare address.
    pub from: String,
    /// Exactly one recipient: a failure then concerns one person only.
    pub to: String,
    /// One line.
    pub subject: String,
    /// The text/plain part.
    pub text: String,
    /// The text/html part.
    pub html: String,
    /// An iCalendar invite and its method, for convocations.
    pub invite: Option<(Method, String)>,
}

impl fmt::Debug for OutgoingEmail {
    /// Never prints the body or the subject: `Debug` output ends up in logs.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("OutgoingEmail")
            .field("message_id", &self.message_id)
            .field("recipient_domain", &self.recipient_domain())
            .field("invite", &self.invite.as_ref().map(|(method, _)| method))
            .finish_non_exhaustive()
    }
}

impl OutgoingEmail {
    /// An email from rendered templates, without invite.
    pub fn new(
        message_id: impl Into<String>,
        from: impl Into<String>,
        to: impl Into<String>,
        rendered: Rendered,
    ) -> OutgoingEmail {
        OutgoingEmail {
            message_id: message_id.into(),
            from: from.into(),
            to: to.into(),
            subject: rendered.subject,
            text: rendered.text,
            html: rendered.html,
            invite: None,
        }
    }

    /// The same email carrying an invite (see [`crate::notify::invite_ics`]).
    pub fn with_invite(mut self, method: Method, ics: String) -> OutgoingEmail {
        self.invite = Some((method, ics));
        self
    }

    /// The part after `@` of the recipient, the only recipient detail worth logging.
    pub fn recipient_domain(&self) -> &str {
        let address = self.to.trim().trim_end_matches('>');
        address
            .rsplit_once('@')
            .map_or("?", |(_, domain)| domain.trim())
    }

    /// The recipient's bare address (`sindaco@comune.it`), for messages and the envelope.
    pub fn recipient_address(&self) -> String {
        self.to
            .parse::<Mailbox>()
            .map(|mailbox| mailbox.email.to_string())
            .unwrap_or_else(|_| self.to.clone())
    }

    /// The message as RFC 5322 bytes (what an `.eml` file holds).
    pub fn to_eml(&self) -> Result<Vec<u8>, Error> {
        Ok(self.to_lettre()?.formatted())
    }

    pub(crate) fn to_lettre(&self) -> Result<Message, Error> {
        let message_id = header_message_id(&self.message_id)?;
        let from = parse_mailbox("mittente", &self.from)?;
        let to = parse_mailbox("destinatario", &self.to)?;
        let alternative = MultiPart::alternative()
            .singlepart(SinglePart::plain(self.text.clone()))
            .singlepart(SinglePart::html(self.html.clone()));
        let body = match &self.invite {
            None => alternative,
            Some((method, ics)) => {
                let calendar = content_type(&format!(
                    "text/calendar; method={}; charset=UTF-8",
                    method.as_str()
                ))?;
                let attachment = content_type("application/ics; name=\"invite.ics\"")?;
                MultiPart::mixed()
                    .multipart(
                        alternative
                            .singlepart(SinglePart::builder().header(calendar).body(ics.clone())),
                    )
                    .singlepart(
                        Attachment::new("invite.ics".to_owned()).body(ics.clone(), attachment),
                    )
            }
        };
        Message::builder()
            .message_id(Some(message_id))
            .from(from)
            .to(to)
            .subject(self.subject.clone())
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Auto-Submitted"),
                "auto-generated".to_owned(),
            ))
            .multipart(body)
            .map_err(|error| Error::Message {
                reason: error.to_string(),
            })
    }
}

/// The Message-ID as written in the header: `<…>`, visible ASCII only (no header injection).
fn header_message_id(message_id: &str) -> Result<String, Error> {
    let bare = message_id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>');
    let acceptable = !bare.is_empty()
        && bare.contains('@')
        && bare
            .chars()
            .all(|character| character.is_ascii_graphic() && !"<>()[]\\,;:\"".contains(character));
    if acceptable {
        Ok(format!("<{bare}>"))
    } else {
        Err(Error::Message {
            reason: format!(
                "Message-ID «{}» non valido: usare message_id_for",
                message_id.escape_debug()
            ),
        })
    }
}

fn parse_mailbox(role: &'static str, address: &str) -> Result<Mailbox, Error> {
    address
        .parse()
        .map_err(|error: lettre::address::AddressError| Error::Address {
            role,
            address: address.to_owned(),
            reason: error.to_string(),
        })
}

fn content_type(value: &str) -> Result<ContentType, Error> {
    ContentType::parse(value).map_err(|error| Error::Message {
        reason: format!("Content-Type «{value}»: {error}"),
    })
}

/// A stable Message-ID for a delivery: `<delivery-key@domain>`.
///
/// A key made of letters, digits, `-`, `_` and single inner dots is used as is, so it can be
/// read back from the header; any other key is reduced to its safe characters plus 16 hex
/// digits of its SHA-256, so different keys stay different. A domain that is not a plain host
/// name becomes `procedo.local`.
pub fn message_id_for(delivery_key: &str, domain: &str) -> String {
    let domain = if is_dot_atom(domain) {
        domain
    } else {
        "procedo.local"
    };
    if is_dot_atom(delivery_key) && delivery_key.len() <= 128 {
        return format!("<{delivery_key}@{domain}>");
    }
    let safe: String = delivery_key
        .chars()
        .map(|character| if is_safe(character) { character } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|piece| !piece.is_empty())
        .collect::<Vec<_>>()
        .join("-")
        .chars()
        .take(64)
        .collect();
    let digest = Sha256::digest(delivery_key.as_bytes());
    let hash = hex::encode(&digest[..8]);
    if safe.is_empty() {
        format!("<{hash}@{domain}>")
    } else {
        format!("<{safe}.{hash}@{domain}>")
    }
}

fn is_safe(character: char) -> bool {
    character.is_ascii_alphanumeric() || character == '-' || character == '_'
}

/// Letters, digits, `-`, `_`, separated by single dots, not starting or ending with a dot.
fn is_dot_atom(text: &str) -> bool {
    !text.is_empty()
        && text
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(is_safe))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> OutgoingEmail {
        OutgoingEmail::new(
            message_id_for("consegna-42", "procedo.local"),
            "Ufficio di Piano <udp@ambito.example.it>",
            "Anna Rossi <sindaco@comune.nova.example.it>",
            Rendered {
                subject: "Convocazione Assemblea dei Sindaci – lunedì 28 dicembre 2026".to_owned(),
                text: "Gentile Anna Rossi,\nè convocata la seduta.".to_owned(),
                html: "<p>Gentile Anna Rossi,</p>".to_owned(),
            },
        )
    }

    #[test]
    fn a_safe_key_is_readable_in_the_message_id() {
        assert_eq!(
            message_id_for("consegna-42.sindaco_3", "ambito.example.it"),
            "<consegna-42.sindaco_3@ambito.example.it>"
        );
    }

    #[test]
    fn an_unsafe_key_is_hashed_stably_and_distinctly() {
        let first = message_id_for("istanza 7/convocazione/anna@comune.it", "procedo.local");
        let again = message_id_for("istanza 7/convocazione/anna@comune.it", "procedo.local");
        let other = message_id_for("istanza 7/convocazione/anna@comune.it ", "procedo.local");
        assert_eq!(first, again);
        assert_ne!(first, other);
        assert!(
            first.starts_with("<istanza-7-convocazione-anna-comune-it."),
            "{first}"
        );
        assert!(first.ends_with("@procedo.local>"));
        assert_eq!(first.matches('@').count(), 1);
        assert_eq!(message_id_for("x", "not a domain>"), "<x@procedo.local>");
    }

    #[test]
    fn the_eml_has_the_callers_message_id_and_both_parts() {
        let eml = String::from_utf8(email().to_eml().expect("builds")).expect("utf-8");
        assert!(
            eml.contains("Message-ID: <consegna-42@procedo.local>"),
            "{eml}"
        );
        assert!(eml.contains("multipart/alternative"));
        assert!(eml.contains("text/plain; charset=utf-8"));
        assert!(eml.contains("text/html; charset=utf-8"));
        assert!(eml.contains("Auto-Submitted: auto-generated"));
        assert!(!eml.contains("text/calendar"));
    }

    #[test]
    fn an_invite_adds_a_calendar_alternative_and_an_attachment() {
        let with_invite = email().with_invite(
            Method::Request,
            "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n".to_owned(),
        );
        let eml = String::from_utf8(with_invite.to_eml().expect("builds")).expect("utf-8");
        assert!(eml.contains("multipart/mixed"));
        assert!(
            eml.contains("text/calendar; method=REQUEST; charset=utf-8"),
            "{eml}"
        );
        assert!(eml.contains("filename=\"invite.ics\""), "{eml}");
    }

    #[test]
    fn a_bad_address_is_an_error_naming_the_role() {
        let mut broken = email();
        broken.to = "non è un indirizzo".to_owned();
        let error = broken.to_eml().expect_err("bad address");
        assert!(error.to_string().contains("destinatario"), "{error}");
    }

    #[test]
    fn a_message_id_gets_its_brackets_and_cannot_inject_headers() {
        let mut bare = email();
        bare.message_id = "consegna-7@procedo.local".to_owned();
        let eml = String::from_utf8(bare.to_eml().expect("builds")).expect("utf-8");
        assert!(eml.contains("Message-ID: <consegna-7@procedo.local>\r\n"));
        let mut injected = email();
        injected.message_id = "<a@b>\r\nBcc: spia@example.it".to_owned();
        assert!(injected.to_eml().is_err());
    }

    #[test]
    fn debug_output_shows_no_body_nor_subject() {
        let shown = format!("{:?}", email());
        assert!(shown.contains("comune.nova.example.it"));
        assert!(!shown.contains("Gentile"));
        assert!(!shown.contains("Convocazione"));
    }
}
