//! OpenID Connect, the protocol the SPID and CIE gateways speak: checking the ID token the
//! provider returns — RS256 signature against the provider's published keys (JWKS), issuer,
//! audience, expiry and nonce — and reading who signed in. No I/O here: the adapter fetches
//! the provider's configuration, token and keys.

use base64::Engine;
use serde_json::Value;

/// Why an ID token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    /// Not a JWT, or not one procedo can read.
    #[error("token di identità illeggibile: {0}")]
    Malformed(String),
    /// The signature does not verify with the provider's keys.
    #[error("la firma del token di identità non è valida per le chiavi del fornitore")]
    Signature,
    /// A claim does not match (issuer, audience, expiry, nonce).
    #[error("token di identità non accettato: {0}")]
    Claim(String),
}

/// Who signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The stable identifier: the codice fiscale when the provider gives one (SPID
    /// `fiscalNumber`, CIE `fiscal_number`), else `sub`.
    pub subject: String,
    /// The name, as the provider gives it.
    pub name: String,
    /// The email, when given.
    pub email: Option<String>,
}

fn b64(part: &str) -> Result<Vec<u8>, OidcError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| OidcError::Malformed("base64url non valido".into()))
}

fn json_part(part: &str) -> Result<Value, OidcError> {
    serde_json::from_slice(&b64(part)?).map_err(|_| OidcError::Malformed("JSON non valido".into()))
}

/// Checks an ID token from `issuer` for `client_id` with `nonce` at `now` (unix seconds),
/// against the keys of `jwks` (`{"keys": [{"kty": "RSA", "kid", "n", "e"}, …]}`).
///
/// # Errors
///
/// [`OidcError`] naming what failed.
pub fn verify_id_token(
    token: &str,
    jwks: &Value,
    issuer: &str,
    client_id: &str,
    nonce: &str,
    now: i64,
) -> Result<Identity, OidcError> {
    if token.len() > 16 * 1024 {
        return Err(OidcError::Malformed("troppo lungo".into()));
    }
    let mut parts = token.split('.');
    let (Some(head), Some(body), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(OidcError::Malformed(
            "non è un JWT firmato (tre parti)".into(),
        ));
    };
    let header = json_part(head)?;
    if header["alg"] != "RS256" {
        return Err(OidcError::Malformed(format!(
            "algoritmo {} non accettato (solo RS256)",
            header["alg"]
        )));
    }
    let kid = header["kid"].as_str();
    let keys = jwks["keys"].as_array().cloned().unwrap_or_default();
    let candidates: Vec<&Value> = keys
        .iter()
        .filter(|k| k["kty"] == "RSA")
        .filter(|k| kid.is_none_or(|kid| k["kid"].as_str() == Some(kid)))
        .collect();
    if candidates.is_empty() {
        return Err(OidcError::Signature);
    }
    let message = format!("{head}.{body}");
    let signature = b64(signature)?;
    let verified = candidates.iter().any(|k| {
        let (Some(n), Some(e)) = (k["n"].as_str(), k["e"].as_str()) else {
            return false;
        };
        let (Ok(n), Ok(e)) = (b64(n), b64(e)) else {
            return false;
        };
        ring::signature::RsaPublicKeyComponents { n: &n, e: &e }
            .verify(
                &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                message.as_bytes(),
                &signature,
            )
            .is_ok()
    });
    if !verified {
        return Err(OidcError::Signature);
    }
    let claims = json_part(body)?;
    if claims["iss"].as_str() != Some(issuer) {
        return Err(OidcError::Claim(format!(
            "emesso da {} invece che da {issuer}",
            claims["iss"]
        )));
    }
    let audience_ok = match &claims["aud"] {
        Value::String(a) => a == client_id,
        Value::Array(list) => list.iter().any(|a| a.as_str() == Some(client_id)),
        _ => false,
    };
    if !audience_ok {
        return Err(OidcError::Claim("destinato a un altro client".into()));
    }
    match claims["exp"].as_i64() {
        Some(exp) if exp > now => {}
        _ => return Err(OidcError::Claim("scaduto".into())),
    }
    if claims["nonce"].as_str() != Some(nonce) {
        return Err(OidcError::Claim(
            "nonce diverso da quello della richiesta".into(),
        ));
    }
    let subject = ["fiscal_number", "fiscalNumber", "sub"]
        .iter()
        .find_map(|c| claims[*c].as_str())
        .map(|s| s.trim().trim_start_matches("TINIT-").to_uppercase())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| OidcError::Claim("nessun identificativo del soggetto".into()))?;
    let name = claims["name"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| {
            [
                claims["given_name"].as_str(),
                claims["family_name"].as_str(),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ")
        });
    Ok(Identity {
        subject,
        name: if name.trim().is_empty() {
            "Rappresentante".into()
        } else {
            name
        },
        email: claims["email"].as_str().map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_unsigned_or_foreign_token_is_refused_before_its_claims_are_read() {
        let jwks = json!({ "keys": [] });
        assert!(matches!(
            verify_id_token("a.b", &jwks, "i", "c", "n", 0),
            Err(OidcError::Malformed(_))
        ));
        let head = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"sub":"x"}"#);
        assert!(matches!(
            verify_id_token(&format!("{head}.{body}."), &jwks, "i", "c", "n", 0),
            Err(OidcError::Malformed(m)) if m.contains("RS256")
        ));
        let head = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#);
        assert_eq!(
            verify_id_token(&format!("{head}.{body}.AAAA"), &jwks, "i", "c", "n", 0),
            Err(OidcError::Signature)
        );
    }
}
