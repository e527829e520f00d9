//! The hash chain over the register: every registration and every amendment, in the order
//! they were written (`log_seq`), carries `chain = SHA-256(previous chain ‖ "\n" ‖ canonical
//! form)`. The canonical form is JSON with sorted keys of what the row says — for a
//! registration also its documents and the SHA-256 of its segnatura — so a field changed
//! outside procedo, a row removed or a row inserted breaks the chain from that row on.
//!
//! Pure: the store computes it while writing and `procedo protocollo verify` recomputes it.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{ProtocolAmendment, ProtocolRegistration};

/// The chain value before the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An instant as the canonical form writes it (microseconds, UTC).
fn when(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The canonical form of a registration (sorted keys; `serde_json` writes maps in order).
pub fn canonical_registration(r: &ProtocolRegistration) -> String {
    let documents: Vec<Value> = r
        .documents
        .iter()
        .map(|d| {
            json!({
                "posizione": d.position,
                "ruolo": d.role.as_str(),
                "nome": d.name,
                "mime": d.media_type,
                "dimensione": d.size,
                "sha256": d.sha256,
            })
        })
        .collect();
    let mut map: BTreeMap<&str, Value> = BTreeMap::new();
    map.insert("tipo", json!("registrazione"));
    map.insert("sequenza", json!(r.log_seq));
    map.insert("registro", json!(r.register));
    map.insert("anno", json!(r.year));
    map.insert("numero", json!(r.number));
    map.insert("registrata_il", json!(when(r.registered_at)));
    map.insert("direzione", json!(r.direction.as_str()));
    map.insert("oggetto", json!(r.subject));
    map.insert(
        "corrispondenti",
        serde_json::to_value(&r.correspondents).unwrap_or(Value::Null),
    );
    map.insert("classifica", json!(r.classification));
    map.insert("fascicolo", json!(r.fascicolo));
    map.insert("istanza", json!(r.instance_id));
    map.insert("chiave", json!(r.key));
    map.insert("riferimento_mittente", json!(r.sender_reference));
    map.insert("data_mittente", json!(r.sender_date));
    map.insert("ricevuta_il", json!(r.received_at.map(when)));
    map.insert("canale", json!(r.channel));
    map.insert("operatore", json!(r.operator));
    map.insert("fonte", json!(r.source.as_str()));
    map.insert(
        "segnatura_sha256",
        json!(r.segnatura.as_deref().map(|s| sha256_hex(s.as_bytes()))),
    );
    map.insert("documenti", Value::Array(documents));
    serde_json::to_string(&map).unwrap_or_default()
}

/// The canonical form of an amendment; `registration` names the registration it amends
/// (`registro/anno/numero`).
pub fn canonical_amendment(a: &ProtocolAmendment, registration: &str) -> String {
    let mut map: BTreeMap<&str, Value> = BTreeMap::new();
    map.insert("tipo", json!(a.kind.as_str()));
    map.insert("sequenza", json!(a.log_seq));
    map.insert("registrazione", json!(registration));
    map.insert("campo", json!(a.field));
    map.insert("precedente", json!(a.previous));
    map.insert("valore", json!(a.value));
    map.insert("motivo", json!(a.reason));
    map.insert("atto", json!(a.act));
    map.insert("operatore", json!(a.operator));
    map.insert("il", json!(when(a.at)));
    serde_json::to_string(&map).unwrap_or_default()
}

/// The chain after a row whose canonical form is `canonical`.
pub fn next(previous: &str, canonical: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(previous.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical.as_bytes());
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_depends_on_the_previous_value_and_on_every_byte() {
        let a = next(GENESIS, r#"{"a":1}"#);
        assert_eq!(a.len(), 64);
        assert_ne!(a, next(GENESIS, r#"{"a":2}"#));
        assert_ne!(next(&a, r#"{"b":1}"#), next(GENESIS, r#"{"b":1}"#));
        assert_eq!(a, next(GENESIS, r#"{"a":1}"#));
    }
}
