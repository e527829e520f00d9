//! PEC (posta elettronica certificata, DPR 68/2005): messages with legal effect from their
//! *consegna*.
//!
//! - [`daticert`], [`message`] and [`smime`] read what a provider writes — receipts and
//!   transport envelopes, their `daticert.xml` and their S/MIME signature checked against the
//!   trusted providers — and, for the provider of the tests and the demo, write it. They do
//!   no I/O.
//! - [`status`] is the per-recipient status a receipt moves (pure).
//! - [`mailbox`] reads the PEC mailbox (IMAP, or a Maildir folder); [`ingest`] applies what
//!   it finds: receipts to the deliveries they are about (and the participant terms that run
//!   from a consegna), incoming messages to the protocollo and their procedure.
//! - [`provider`] is a small PEC provider (SMTP submission, Maildir mailboxes, signed
//!   receipts with the 12 h / 24 h rules) that the tests and the demo send through.

pub mod daticert;
pub mod ingest;
pub mod mailbox;
pub mod message;
pub mod provider;
pub mod smime;
pub mod status;

pub use daticert::{DatiCert, Tipo};
pub use message::{PecMessage, parse};
pub use smime::{Signer, TrustList, Verified};
pub use status::PecStatus;

/// What can go wrong reading or checking a PEC message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not a PEC message at all (no `X-Ricevuta` nor `X-Trasporto`).
    #[error("non è un messaggio PEC (mancano X-Ricevuta e X-Trasporto)")]
    NotPec,
    /// The message's structure.
    #[error("messaggio PEC non valido: {0}")]
    Message(String),
    /// `daticert.xml`.
    #[error("daticert.xml non valido: {0}")]
    Daticert(String),
    /// The provider's signature.
    #[error("firma del gestore non valida: {0}")]
    Signature(String),
    /// The trusted list or a certificate.
    #[error("elenco dei gestori fidati: {0}")]
    Trust(String),
    /// The mailbox (IMAP or Maildir).
    #[error("casella PEC: {0}")]
    Mailbox(String),
}
