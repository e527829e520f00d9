//! Who may call procedo: the roles people act in, and API tokens. No I/O here: the store keeps
//! organisations, people and token hashes; this module names the roles and makes and hashes
//! token secrets.
//!
//! A token secret is `pdo_` followed by 64 hex digits (256 random bits). Only its SHA-256 is
//! stored, so a database dump gives no usable token; a secret is shown once, when created.

use std::fmt;
use std::str::FromStr;

pub mod links;
pub mod oidc;

use rand::RngCore;
use sha2::{Digest, Sha256};

/// The prefix of every token secret (it makes leaked tokens easy to recognise in logs and
/// repositories).
pub const TOKEN_PREFIX: &str = "pdo_";

/// A role a person acts in, named as in the workflow definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Staff of the Ufficio di Piano: reads and drives the Ambito's procedures.
    UfficioDiPiano,
    /// Responsabile unico del procedimento: staff, drives procedures.
    Rup,
    /// Member of an evaluation commission: staff, reads submissions, records outcomes.
    Commissione,
    /// A mayor: reads the meetings of the bodies they sit on.
    Sindaco,
    /// A comune's technical referent (dirigente, funzionario): reads the meetings of the
    /// Tavolo Tecnico they sit on.
    Tecnico,
    /// An ente del Terzo Settore: acts for its organisation only.
    Ets,
    /// Auditor: staff, read-only.
    Auditor,
    /// Titolare del potere sostitutivo (art. 2 c.9-bis L. 241/1990): staff; alerted when a
    /// conclusion term passes, may conclude in the RUP's place.
    PotereSostitutivo,
    /// System administrator (Garante, provvedimento 27/11/2008): deploys and migrates
    /// procedures, manages people, organisations and tokens, re-queues deliveries; reads no
    /// procedure's content. Every action of theirs goes to the audit log.
    Amministratore,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 9] = [
        Role::UfficioDiPiano,
        Role::Rup,
        Role::Commissione,
        Role::Sindaco,
        Role::Tecnico,
        Role::Ets,
        Role::Auditor,
        Role::PotereSostitutivo,
        Role::Amministratore,
    ];

    /// The name used in definitions, tokens and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::UfficioDiPiano => "ufficio_di_piano",
            Role::Rup => "rup",
            Role::Commissione => "commissione",
            Role::Sindaco => "sindaco",
            Role::Tecnico => "tecnico",
            Role::Ets => "ets",
            Role::Auditor => "auditor",
            Role::PotereSostitutivo => "potere_sostitutivo",
            Role::Amministratore => "amministratore",
        }
    }

    /// Staff of the Ambito (they read every procedure of the Ambito).
    pub fn is_staff(self) -> bool {
        matches!(
            self,
            Role::UfficioDiPiano
                | Role::Rup
                | Role::Commissione
                | Role::Auditor
                | Role::PotereSostitutivo
        )
    }

    /// May change anything (every role but the auditor).
    pub fn may_write(self) -> bool {
        self != Role::Auditor
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of procedo's roles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "ruolo sconosciuto '{0}' (ammessi: ufficio_di_piano, rup, commissione, sindaco, tecnico, ets, auditor, potere_sostitutivo, amministratore)"
)]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_string()))
    }
}

/// A freshly made token: the secret (to show once) and its hash (to store).
#[derive(Clone, PartialEq, Eq)]
pub struct NewSecret {
    /// The secret the client sends as `Authorization: Bearer …`.
    pub secret: String,
    /// Its hex SHA-256.
    pub hash: String,
}

impl fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSecret")
            .field("secret", &"<nascosto>")
            .field("hash", &self.hash)
            .finish()
    }
}

/// Makes a new random token secret and its hash.
pub fn new_secret() -> NewSecret {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
    let hash = hash_secret(&secret);
    NewSecret { secret, hash }
}

/// The hex SHA-256 of a token secret: what the store keeps and looks up.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A short public id for a token (to list and revoke it), e.g. `tok_3f9a1c2b7d4e`.
pub fn new_token_id() -> String {
    let mut bytes = [0u8; 6];
    rand::rng().fill_bytes(&mut bytes);
    format!("tok_{}", hex::encode(bytes))
}

/// Whether a bearer value looks like a token at all (cheap check before any database work).
pub fn looks_like_secret(value: &str) -> bool {
    value.len() == TOKEN_PREFIX.len() + 64
        && value.starts_with(TOKEN_PREFIX)
        && value[TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_by_name() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("sindaca".parse::<Role>().is_err());
    }

    #[test]
    fn a_secret_hashes_to_what_is_stored_and_looks_like_a_token() {
        let made = new_secret();
        assert_eq!(hash_secret(&made.secret), made.hash);
        assert!(looks_like_secret(&made.secret));
        assert!(!looks_like_secret("pdo_xyz"));
        assert!(!format!("{made:?}").contains(&made.secret));
    }

    #[test]
    fn only_the_auditor_is_read_only_and_only_staff_read_everything() {
        assert!(!Role::Auditor.may_write());
        assert!(Role::Auditor.is_staff());
        assert!(!Role::Ets.is_staff());
        assert!(!Role::Sindaco.is_staff());
    }
}
