//! The signed verbale of a meeting: signed outside procedo (PAdES in a PDF, or CAdES in a
//! `.p7m`), uploaded back, registered in the protocollo as an internal document, and recorded
//! on the meeting — it is what gets published.

use sha2::{Digest, Sha256};

use super::{Error, Protocollo, Request, RequestDocument};
use crate::engine::Actor;
use crate::engine::meeting::{self, SignedVerbale};
use crate::service::Service;
use crate::store::{Direction, DocumentRole, ProtocolRegistration};

/// Media types accepted for a signed verbale.
pub const SIGNED_TYPES: [(&str, &str); 2] = [
    ("application/pdf", ".pdf"),
    ("application/pkcs7-mime", ".p7m"),
];

/// Registers the signed verbale of `instance_id` and records it on the meeting. The same file
/// twice is one registration (the key is the file's hash).
pub async fn register_signed(
    protocollo: &Protocollo,
    service: &Service,
    instance_id: &str,
    actor: &Actor,
    name: &str,
    media_type: &str,
    content: Vec<u8>,
) -> Result<ProtocolRegistration, Error> {
    let lower = name.to_lowercase();
    if !SIGNED_TYPES
        .iter()
        .any(|(t, ext)| *t == media_type && lower.ends_with(ext))
    {
        return Err(Error::Invalid(format!(
            "il verbale firmato è un PDF firmato (PAdES, .pdf, application/pdf) o un file CAdES (.p7m, application/pkcs7-mime): ricevuto «{name}» ({media_type})"
        )));
    }
    if content.is_empty() {
        return Err(Error::Invalid("il file del verbale firmato è vuoto".into()));
    }
    let row = service
        .store()
        .instance(instance_id)
        .await?
        .ok_or_else(|| Error::NotFound(instance_id.to_string()))?;
    if row
        .data
        .meeting
        .as_ref()
        .is_none_or(|m| m.closed_at.is_none())
    {
        return Err(Error::Invalid(
            "il verbale firmato si carica dopo la chiusura della seduta".into(),
        ));
    }
    let sha256 = hex::encode(Sha256::digest(&content));
    let organo = row
        .data
        .variables
        .get("organo")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("seduta")
        .to_string();
    let registration = protocollo
        .register(Request {
            register: crate::store::PROTOCOL_REGISTER.to_owned(),
            direction: Direction::Interno,
            subject: format!("Verbale firmato della seduta – {organo}"),
            correspondents: Vec::new(),
            classification: None,
            fascicolo: Some(instance_id.to_string()),
            instance_id: Some(instance_id.to_string()),
            key: Some(format!("verbale-firmato:{instance_id}:{sha256}")),
            sender_reference: None,
            sender_date: None,
            received_at: None,
            channel: "procedura".to_owned(),
            operator: actor.id.clone(),
            documents: vec![RequestDocument {
                role: DocumentRole::Primario,
                name: name.to_string(),
                media_type: media_type.to_string(),
                content,
            }],
        })
        .await?;
    let signed = SignedVerbale {
        registration: registration.to_string(),
        name: name.to_string(),
        sha256,
        at: registration.registered_at,
    };
    let payload = serde_json::json!({ "protocollo": signed.registration, "file": signed.name, "sha256": signed.sha256 });
    service
        .record_step(instance_id, actor, &payload, None, |p, row, now| {
            meeting::sign_verbale(p, &row.snapshot(), signed.clone(), now)
        })
        .await
        .map_err(|e| Error::Invalid(e.to_string()))?;
    Ok(registration)
}
