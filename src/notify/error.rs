//! Errors of the notification adapter, worded for the person who has to fix the cause.

use std::fmt;
use std::path::PathBuf;

/// Why a message could not be composed or a transport could not be configured.
///
/// Sending failures are [`crate::notify::SendError`]: they carry the retry decision.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No template file for this message kind was loaded.
    #[error("nessun modello per il tipo di messaggio «{kind}»")]
    UnknownKind {
        /// The kind asked for, e.g. `convocazione`.
        kind: String,
    },
    /// Rendering failed, typically because the context lacks a variable (strict mode).
    #[error("impossibile comporre {part} del messaggio «{kind}»: {reason}")]
    Render {
        /// The message kind.
        kind: String,
        /// `oggetto`, `testo` or `html`.
        part: &'static str,
        /// The handlebars reason (names the variable and the template position).
        reason: String,
    },
    /// A date given to a helper or a formatter is not in a supported form.
    #[error("data non valida «{input}»: {reason}")]
    Date {
        /// The text as received.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A sender or recipient address cannot be parsed.
    #[error("indirizzo {role} non valido «{address}»: {reason}")]
    Address {
        /// `mittente` or `destinatario`.
        role: &'static str,
        /// The address as given.
        address: String,
        /// The parser's reason.
        reason: String,
    },
    /// The MIME message could not be assembled.
    #[error("impossibile costruire il messaggio: {reason}")]
    Message {
        /// The builder's reason.
        reason: String,
    },
    /// The SMTP settings are unusable. Never contains the password.
    #[error("configurazione SMTP non valida: {reason}")]
    Settings {
        /// What is wrong, without the URL's credentials.
        reason: String,
    },
}

/// One problem found while loading template files, with its position when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateDiagnostic {
    /// The template file (or `<kind>.yaml` for in-memory sources).
    pub file: PathBuf,
    /// 1-based line in the file, when the parser gave one.
    pub line: Option<usize>,
    /// 1-based column in the file, when the parser gave one.
    pub column: Option<usize>,
    /// What is wrong, in Italian.
    pub message: String,
}

impl fmt::Display for TemplateDiagnostic {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(formatter, ":{line}")?;
            if let Some(column) = self.column {
                write!(formatter, ":{column}")?;
            }
        }
        write!(formatter, ": {}", self.message)
    }
}
