//! Personal links: a signed, expiring token naming one seat of one meeting, so that a member
//! answers a convocation from the email without logging in. HMAC-SHA256 (RFC 2104) over the
//! instance, the seat and the expiry, with the installation's key; no state is kept.

use sha2::{Digest, Sha256};

/// Why a link is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not a link procedo made, or altered.
    #[error("il collegamento non è valido o è stato alterato")]
    Invalid,
    /// Past its expiry.
    #[error("il collegamento è scaduto")]
    Expired,
}

/// What a valid link names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The instance (the meeting).
    pub instance_id: String,
    /// The seat (the comune's id).
    pub seat: String,
    /// Unix seconds after which it is refused.
    pub expires: i64,
}

const BLOCK: usize = 64;

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

fn payload(instance_id: &str, seat: &str, expires: i64) -> String {
    format!("{instance_id}\u{1f}{seat}\u{1f}{expires}")
}

/// The token for a seat of a meeting, valid until `expires` (unix seconds).
pub fn sign(key: &[u8], instance_id: &str, seat: &str, expires: i64) -> String {
    use base64::Engine;
    let body = payload(instance_id, seat, expires);
    let mac = hmac(key, body.as_bytes());
    format!(
        "{}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(body.as_bytes()),
        hex::encode(mac)
    )
}

/// The seat a token names, if it was made with `key`, is unaltered and not expired at `now`.
pub fn verify(key: &[u8], token: &str, now: i64) -> Result<Link, LinkError> {
    use base64::Engine;
    let (body, mac) = token.split_once('.').ok_or(LinkError::Invalid)?;
    if token.len() > 1024 {
        return Err(LinkError::Invalid);
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| LinkError::Invalid)?;
    let given = hex::decode(mac).map_err(|_| LinkError::Invalid)?;
    let expected = hmac(key, &bytes);
    // Constant time: every byte is compared.
    if given.len() != expected.len()
        || given
            .iter()
            .zip(expected.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            != 0
    {
        return Err(LinkError::Invalid);
    }
    let text = String::from_utf8(bytes).map_err(|_| LinkError::Invalid)?;
    let mut parts = text.split('\u{1f}');
    let (Some(instance_id), Some(seat), Some(expires), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(LinkError::Invalid);
    };
    let expires: i64 = expires.parse().map_err(|_| LinkError::Invalid)?;
    if now > expires {
        return Err(LinkError::Expired);
    }
    Ok(Link {
        instance_id: instance_id.to_string(),
        seat: seat.to_string(),
        expires,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        let mac = hmac(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_link_verifies_until_it_expires_and_not_once_altered() {
        let key = b"chiave dell'installazione";
        let token = sign(key, "seduta-1", "comune-castelverde", 1_000);
        let link = verify(key, &token, 999).expect("valid");
        assert_eq!(link.seat, "comune-castelverde");
        assert_eq!(verify(key, &token, 1_001), Err(LinkError::Expired));
        assert_eq!(
            verify(b"altra chiave", &token, 999),
            Err(LinkError::Invalid)
        );
        // Another seat with the same signature.
        let (_, mac) = token.split_once('.').expect("dot");
        let forged = sign(key, "seduta-1", "comune-san-lorenzo", 1_000);
        let (body, _) = forged.split_once('.').expect("dot");
        assert_eq!(
            verify(key, &format!("{body}.{mac}"), 999),
            Err(LinkError::Invalid)
        );
        assert_eq!(verify(key, "garbage", 0), Err(LinkError::Invalid));
        assert_eq!(verify(key, "a.b", 0), Err(LinkError::Invalid));
    }
}
