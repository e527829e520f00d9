//! Where emails go: an SMTP relay, or `.eml` files in a folder (the development transport).
//!
//! The SMTP URL follows lettre's syntax with one safer default:
//! - `smtp://host[:port]` — STARTTLS required (port 587 by default);
//! - `smtps://host[:port]` — implicit TLS (port 465 by default);
//! - `smtp://host:port?tls=none` — no TLS at all, for a relay on loopback or in tests;
//! - `?tls=opportunistic` — STARTTLS when offered (lettre's own values pass through);
//! - `smtp://user:password@host` — credentials (percent-encoded), never logged nor echoed.
//!
//! A send either succeeds with the server's answer or fails with a [`SendError`] saying whether
//! retrying can help: `Transient` (no connection, timeout, 4xx) or `Permanent` (5xx, a bad
//! address). Messages name the server and the SMTP code, never the body.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Arc;

use super::relay::{Relay, RelayError, RelaySettings, Security};
use super::{Error, OutgoingEmail};

/// Environment variable holding the SMTP URL (may contain credentials).
pub const SMTP_URL_VARIABLE: &str = "PROCEDO_SMTP_URL";
/// Environment variable holding the sender mailbox.
pub const SMTP_FROM_VARIABLE: &str = "PROCEDO_SMTP_FROM";
/// Environment variable holding the SMTP timeout in seconds.
pub const SMTP_TIMEOUT_VARIABLE: &str = "PROCEDO_SMTP_TIMEOUT";
/// Environment variable holding the relay's rate limit, in messages per second.
pub const SMTP_RATE_VARIABLE: &str = "PROCEDO_SMTP_RATE";
/// The sender used when `PROCEDO_SMTP_FROM` is not set.
pub const DEFAULT_FROM: &str = "Ufficio di Piano <noreply@procedo.local>";

/// How to reach the SMTP relay. `Debug` hides the URL's credentials.
#[derive(Clone)]
pub struct SmtpSettings {
    /// `smtp://`, `smtps://` or `smtp://…?tls=none`; may contain `user:password@`.
    pub url: String,
    /// The sender mailbox callers put in [`OutgoingEmail::from`].
    pub from: String,
    /// Connection and command timeout; lettre's default (60 s) when `None`.
    pub timeout: Option<Duration>,
    /// At most this many messages per second to the relay (all workers of the process
    /// together); `None`: as fast as the relay answers. Real relays and certified-mail
    /// providers cap senders.
    pub rate: Option<f64>,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SmtpSettings")
            .field("server", &self.server())
            .field("from", &self.from)
            .field("timeout", &self.timeout)
            .field("rate", &self.rate)
            .finish()
    }
}

impl SmtpSettings {
    /// Reads `PROCEDO_SMTP_URL`, `PROCEDO_SMTP_FROM` and `PROCEDO_SMTP_TIMEOUT` (seconds);
    /// `Ok(None)` when no URL is set.
    pub fn from_env() -> Result<Option<SmtpSettings>, Error> {
        let Ok(url) = std::env::var(SMTP_URL_VARIABLE) else {
            return Ok(None);
        };
        let from = std::env::var(SMTP_FROM_VARIABLE).unwrap_or_else(|_| DEFAULT_FROM.to_owned());
        let timeout = match std::env::var(SMTP_TIMEOUT_VARIABLE) {
            Ok(seconds) => Some(Duration::from_secs(seconds.trim().parse().map_err(
                |_| Error::Settings {
                    reason: format!(
                        "{SMTP_TIMEOUT_VARIABLE} deve essere un numero di secondi, non «{seconds}»"
                    ),
                },
            )?)),
            Err(_) => None,
        };
        let rate = rate_from_env(SMTP_RATE_VARIABLE)?;
        Ok(Some(SmtpSettings {
            url,
            from,
            timeout,
            rate,
        }))
    }

    /// `host:port` of the relay, without credentials: what messages and logs may show.
    pub fn server(&self) -> String {
        parse_url(&self.url).map_or_else(|_| "(URL non valido)".to_owned(), |url| url.server)
    }
}

/// A rate limit in messages per second from the environment variable `name` (unset: none).
///
/// # Errors
///
/// A value that is not a positive number.
pub fn rate_from_env(name: &str) -> Result<Option<f64>, Error> {
    match std::env::var(name) {
        Ok(text) => match text.trim().replace(',', ".").parse::<f64>() {
            Ok(rate) if rate > 0.0 && rate.is_finite() => Ok(Some(rate)),
            _ => Err(Error::Settings {
                reason: format!(
                    "{name} deve essere un numero di messaggi al secondo maggiore di zero, non «{text}»"
                ),
            }),
        },
        Err(_) => Ok(None),
    }
}

/// The SMTP URL taken apart: how to reach the relay and what may be shown.
struct SmtpUrl {
    /// Host name or address (without brackets).
    host: String,
    /// Port.
    port: u16,
    /// TLS.
    security: Security,
    /// User and password, percent-decoded.
    credentials: Option<(String, String)>,
    /// `host:port`.
    server: String,
}

fn parse_url(url: &str) -> Result<SmtpUrl, Error> {
    let invalid = |reason: &str| Error::Settings {
        reason: format!("{SMTP_URL_VARIABLE}: {reason}"),
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| invalid("manca lo schema (smtp:// o smtps://)"))?;
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = before_query.split('/').next().unwrap_or_default();
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => (Some(userinfo), host_port),
        None => (None, authority),
    };
    if host_port.is_empty() || host_port.starts_with(':') {
        return Err(invalid("manca il nome del server"));
    }
    let mut tls = None;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        match pair.split_once('=') {
            Some(("tls", value)) => tls = Some(value),
            _ => {
                let key = pair.split('=').next().unwrap_or_default();
                return Err(invalid(&format!(
                    "parametro «{key}» sconosciuto (solo tls=none|required|opportunistic)"
                )));
            }
        }
    }
    let (security, default_port) = match (scheme, tls) {
        ("smtps", None) => (Security::Implicit, 465),
        ("smtps", Some(_)) => return Err(invalid("smtps usa già TLS implicito: togliere tls=")),
        ("smtp", None | Some("required")) => (Security::StartTls { required: true }, 587),
        ("smtp", Some("none")) => (Security::None, 25),
        ("smtp", Some("opportunistic")) => (Security::StartTls { required: false }, 587),
        ("smtp", Some(other)) => {
            return Err(invalid(&format!(
                "tls={other} sconosciuto (usare none, required o opportunistic)"
            )));
        }
        (other, _) => {
            return Err(invalid(&format!(
                "schema «{other}» non supportato (usare smtp o smtps)"
            )));
        }
    };
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) if !host_port.ends_with(']') => (
            host,
            port.parse::<u16>()
                .map_err(|_| invalid(&format!("porta «{port}» non valida")))?,
        ),
        _ => (host_port, default_port),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(invalid("manca il nome del server"));
    }
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(text)
            .decode_utf8()
            .map(|t| t.into_owned())
            .map_err(|_| invalid("credenziali non valide (UTF-8 percent-encoded)"))
    };
    let credentials = match userinfo {
        Some(userinfo) => {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            Some((decode(user)?, decode(password)?))
        }
        None => None,
    };
    Ok(SmtpUrl {
        server: if host_port.rsplit_once(':').is_some() && !host_port.ends_with(']') {
            host_port.to_owned()
        } else {
            format!("{host_port}:{port}")
        },
        host: host.to_owned(),
        port,
        security,
        credentials,
    })
}

/// What the receiving side said about an accepted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReport {
    /// The Message-ID sent, as in [`OutgoingEmail::message_id`].
    pub message_id: String,
    /// The server's reply (`250 OK: queued as …`) or, for files, where the file was written.
    pub server_answer: String,
}

/// Why a send failed, and whether trying again later can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying with [`crate::notify::backoff`]: no connection, timeout, SMTP 4xx.
    #[error("invio non riuscito, si può riprovare: {reason}")]
    Transient {
        /// Plain words naming the server and the cause.
        reason: String,
        /// The SMTP reply code, when the server answered.
        code: Option<u16>,
    },
    /// Retrying will not help: SMTP 5xx (e.g. recipient refused), a malformed address.
    #[error("invio rifiutato, non va ripetuto: {reason}")]
    Permanent {
        /// Plain words naming the server, the recipient and the cause.
        reason: String,
        /// The SMTP reply code, when the server answered.
        code: Option<u16>,
    },
}

impl SendError {
    /// `true` when a later attempt may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, SendError::Transient { .. })
    }

    /// The SMTP reply code, when the server answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            SendError::Transient { code, .. } | SendError::Permanent { code, .. } => *code,
        }
    }

    /// The cause without the transient/permanent preamble.
    pub fn reason(&self) -> &str {
        match self {
            SendError::Transient { reason, .. } | SendError::Permanent { reason, .. } => reason,
        }
    }
}

/// An SMTP relay: procedo's connections to it (`relay`) plus its printable address.
#[derive(Clone)]
pub struct SmtpRelay {
    relay: Arc<Relay>,
    server: String,
}

impl std::fmt::Debug for SmtpRelay {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SmtpRelay")
            .field("server", &self.server)
            .finish()
    }
}

/// Where [`Transport::send`] puts an email. Cheap to clone: SMTP connections are pooled and
/// shared between clones, so one value can serve a whole delivery worker.
#[derive(Debug, Clone)]
pub enum Transport {
    /// Submission to an SMTP relay.
    Smtp(SmtpRelay),
    /// `<message-id>.eml` files in a folder, for development and the demo.
    Files(PathBuf),
}

impl Transport {
    /// An SMTP transport from settings; fails on a URL lettre cannot use. Must be called
    /// inside a Tokio runtime: the connection pool starts a background task.
    pub fn smtp(settings: &SmtpSettings) -> Result<Transport, Error> {
        let url = parse_url(&settings.url)?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::Settings {
                reason: "il trasporto SMTP va creato dentro un runtime Tokio".to_owned(),
            });
        }
        let relay = Relay::new(RelaySettings {
            host: url.host,
            port: url.port,
            security: url.security,
            credentials: url.credentials,
            timeout: settings.timeout,
            rate: settings.rate,
        });
        Ok(Transport::Smtp(SmtpRelay {
            relay,
            server: url.server,
        }))
    }

    /// A transport writing `.eml` files into `dir` (created when missing).
    pub fn files(dir: impl Into<PathBuf>) -> Transport {
        Transport::Files(dir.into())
    }

    /// "server SMTP host:port" or "file .eml in dir", for messages to people.
    pub fn describe(&self) -> String {
        match self {
            Transport::Smtp(relay) => format!("server SMTP {}", relay.server),
            Transport::Files(dir) => format!("file .eml in {}", dir.display()),
        }
    }

    /// Sends one email. Idempotent in intent: the same [`OutgoingEmail`] always carries the same
    /// Message-ID, so a worker may resend after a crash and the duplicate is recognisable.
    pub async fn send(&self, email: &OutgoingEmail) -> Result<SendReport, SendError> {
        let result = match self {
            Transport::Smtp(relay) => send_smtp(relay, email).await,
            Transport::Files(dir) => write_eml(dir, email).await,
        };
        match &result {
            Ok(_) => tracing::info!(
                message_id = %email.message_id,
                recipient_domain = %email.recipient_domain(),
                status = "sent",
                "email consegnata al trasporto"
            ),
            Err(error) => tracing::warn!(
                message_id = %email.message_id,
                recipient_domain = %email.recipient_domain(),
                status = if error.is_transient() { "transient" } else { "permanent" },
                code = error.code(),
                "invio email non riuscito"
            ),
        }
        result
    }
}

fn malformed(error: &Error) -> SendError {
    SendError::Permanent {
        reason: error.to_string(),
        code: None,
    }
}

async fn send_smtp(relay: &SmtpRelay, email: &OutgoingEmail) -> Result<SendReport, SendError> {
    let message = email.to_lettre().map_err(|error| malformed(&error))?;
    let envelope = message.envelope().clone();
    let raw = message.formatted();
    match relay.relay.send(&envelope, &raw).await {
        Ok(response) => Ok(SendReport {
            message_id: email.message_id.clone(),
            server_answer: format!(
                "{} {}",
                response.code(),
                response.message().collect::<Vec<_>>().join(" ")
            )
            .trim_end()
            .to_owned(),
        }),
        Err(RelayError::Smtp(error)) => {
            Err(classify(&error, &relay.server, &email.recipient_address()))
        }
        Err(RelayError::Connect(error)) => Err(SendError::Transient {
            reason: format!(
                "il server SMTP {} non è raggiungibile: {}",
                relay.server,
                match error.kind() {
                    ErrorKind::ConnectionRefused =>
                        "connessione rifiutata: nessun server in ascolto".to_owned(),
                    ErrorKind::TimedOut => "tempo di connessione scaduto".to_owned(),
                    _ => error.to_string(),
                }
            ),
            code: None,
        }),
    }
}

/// Turns a lettre error into plain Italian words and a retry decision.
fn classify(error: &lettre::transport::smtp::Error, server: &str, recipient: &str) -> SendError {
    let detail = source_text(error);
    let detail_suffix = if detail.is_empty() {
        String::new()
    } else {
        format!(": «{detail}»")
    };
    if let Some(status) = error.status() {
        let code = u16::from(status);
        return if error.is_permanent() {
            SendError::Permanent {
                reason: format!(
                    "il server SMTP {server} ha rifiutato il messaggio per {recipient} con codice {code}{detail_suffix}"
                ),
                code: Some(code),
            }
        } else {
            SendError::Transient {
                reason: format!(
                    "il server SMTP {server} ha risposto con l'errore temporaneo {code} per {recipient}{detail_suffix}"
                ),
                code: Some(code),
            }
        };
    }
    if error.is_timeout() {
        return SendError::Transient {
            reason: format!("il server SMTP {server} non ha risposto entro il tempo massimo"),
            code: None,
        };
    }
    if error.is_tls() {
        return SendError::Transient {
            reason: format!(
                "la connessione TLS con il server SMTP {server} non è riuscita{detail_suffix}"
            ),
            code: None,
        };
    }
    if error.is_client() || error.is_response() {
        return SendError::Permanent {
            reason: format!(
                "il dialogo con il server SMTP {server} non è andato a buon fine{detail_suffix}"
            ),
            code: None,
        };
    }
    let cause = io_kind(error).map_or_else(
        || detail.clone(),
        |kind| match kind {
            ErrorKind::ConnectionRefused => {
                "connessione rifiutata: nessun server in ascolto".to_owned()
            }
            ErrorKind::TimedOut => "tempo di connessione scaduto".to_owned(),
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
                "connessione interrotta dal server".to_owned()
            }
            _ => detail.clone(),
        },
    );
    SendError::Transient {
        reason: format!("il server SMTP {server} non è raggiungibile ({cause})"),
        code: None,
    }
}

/// The innermost readable cause (server text or I/O error).
fn source_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut source = error.source();
    let mut text = String::new();
    while let Some(cause) = source {
        text = cause.to_string();
        source = cause.source();
    }
    text
}

fn io_kind(error: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = cause.source();
    }
    None
}

/// `<id@domain>` → `id@domain.eml`, with anything unsafe for a file name replaced.
fn eml_file_name(message_id: &str) -> String {
    let bare = message_id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>');
    let safe: String = bare
        .chars()
        .map(|character| {
            if character.is_ascii_alphanumeric() || "-_.@".contains(character) {
                character
            } else {
                '_'
            }
        })
        .collect();
    let safe = safe.trim_start_matches('.');
    if safe.is_empty() {
        "senza-id.eml".to_owned()
    } else {
        format!("{safe}.eml")
    }
}

async fn write_eml(dir: &Path, email: &OutgoingEmail) -> Result<SendReport, SendError> {
    let bytes = email.to_eml().map_err(|error| malformed(&error))?;
    let io_failure = |what: &str, error: std::io::Error| SendError::Transient {
        reason: format!("impossibile {what} in {}: {error}", dir.display()),
        code: None,
    };
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|error| io_failure("creare la cartella", error))?;
    let name = eml_file_name(&email.message_id);
    let path = dir.join(&name);
    // Write then rename, so a crash never leaves half a message under the final name.
    let partial = dir.join(format!(".{name}.part"));
    tokio::fs::write(&partial, &bytes)
        .await
        .map_err(|error| io_failure("scrivere il messaggio", error))?;
    tokio::fs::rename(&partial, &path)
        .await
        .map_err(|error| io_failure("scrivere il messaggio", error))?;
    Ok(SendReport {
        message_id: email.message_id.clone(),
        server_answer: format!("scritto in {}", path.display()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::{Rendered, message_id_for};

    fn settings(url: &str) -> SmtpSettings {
        SmtpSettings {
            url: url.to_owned(),
            from: DEFAULT_FROM.to_owned(),
            timeout: None,
            rate: None,
        }
    }

    #[test]
    fn plain_smtp_defaults_to_starttls_and_tls_none_is_plain() {
        let starttls = parse_url("smtp://mail.example.it").expect("valid");
        assert_eq!(starttls.security, Security::StartTls { required: true });
        assert_eq!(starttls.server, "mail.example.it:587");
        assert_eq!(
            (starttls.host.as_str(), starttls.port),
            ("mail.example.it", 587)
        );
        let plain = parse_url("smtp://127.0.0.1:2525?tls=none").expect("valid");
        assert_eq!(plain.security, Security::None);
        assert_eq!(plain.server, "127.0.0.1:2525");
        let maybe = parse_url("smtp://mail.example.it:25?tls=opportunistic").expect("valid");
        assert_eq!(maybe.security, Security::StartTls { required: false });
        let implicit = parse_url("smtps://u:p%40ss@mail.example.it").expect("valid");
        assert_eq!(implicit.server, "mail.example.it:465");
        assert_eq!(implicit.security, Security::Implicit);
        assert_eq!(
            implicit.credentials,
            Some(("u".to_owned(), "p@ss".to_owned()))
        );
        let v6 = parse_url("smtp://[::1]:2525?tls=none").expect("valid");
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 2525));
        assert!(parse_url("smtp://x:porta").is_err());
        assert!(parse_url("smtp://x?helo=y").is_err());
        assert!(parse_url("http://x").is_err());
        assert!(parse_url("smtp://x?tls=maybe").is_err());
        assert!(parse_url("smtps://x?tls=none").is_err());
    }

    #[tokio::test]
    async fn credentials_never_show_in_debug_nor_in_errors() {
        let secret = settings("smtps://utente:segretissima@mail.example.it:465");
        assert!(!format!("{secret:?}").contains("segretissima"));
        assert_eq!(secret.server(), "mail.example.it:465");
        let broken = settings("gopher://utente:segretissima@mail.example.it");
        let error = Transport::smtp(&broken).expect_err("bad scheme");
        assert!(!error.to_string().contains("segretissima"), "{error}");
    }

    #[tokio::test]
    async fn every_supported_url_builds_a_transport() {
        for url in [
            "smtp://127.0.0.1:2525?tls=none",
            "smtp://mail.example.it",
            "smtp://mail.example.it:25?tls=opportunistic",
            "smtps://utente:p%40ss@mail.example.it",
        ] {
            let transport = Transport::smtp(&settings(url));
            assert!(transport.is_ok(), "{url}: {:?}", transport.err());
        }
    }

    #[test]
    fn outside_a_runtime_the_smtp_transport_is_an_error_not_a_panic() {
        let error =
            Transport::smtp(&settings("smtp://127.0.0.1:2525?tls=none")).expect_err("no runtime");
        assert!(error.to_string().contains("Tokio"), "{error}");
    }

    #[test]
    fn eml_file_names_are_safe() {
        assert_eq!(
            eml_file_name("<consegna-1@procedo.local>"),
            "consegna-1@procedo.local.eml"
        );
        assert_eq!(eml_file_name("<../../etc/passwd>"), "_.._etc_passwd.eml");
        assert_eq!(eml_file_name("<>"), "senza-id.eml");
    }

    #[tokio::test]
    async fn the_files_transport_writes_one_eml_named_by_message_id() {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("posta");
        let email = OutgoingEmail::new(
            message_id_for("prova-1", "procedo.local"),
            DEFAULT_FROM,
            "sindaco@comune.example.it",
            Rendered {
                subject: "Prova".to_owned(),
                text: "testo".to_owned(),
                html: "<p>testo</p>".to_owned(),
            },
        );
        let transport = Transport::files(&out);
        let report = transport.send(&email).await.expect("written");
        let path = out.join("prova-1@procedo.local.eml");
        assert!(report.server_answer.contains("prova-1@procedo.local.eml"));
        let written = std::fs::read_to_string(&path).expect("file exists");
        assert!(written.contains("Message-ID: <prova-1@procedo.local>"));
        // A resend overwrites the same file: one message per delivery key.
        transport.send(&email).await.expect("rewritten");
        assert_eq!(std::fs::read_dir(&out).expect("dir").count(), 1);
    }

    #[tokio::test]
    async fn a_malformed_recipient_is_permanent() {
        let email = OutgoingEmail::new(
            "<x@procedo.local>",
            DEFAULT_FROM,
            "nessuna chiocciola",
            Rendered {
                subject: "s".to_owned(),
                text: "t".to_owned(),
                html: "h".to_owned(),
            },
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let error = Transport::files(dir.path())
            .send(&email)
            .await
            .expect_err("bad");
        assert!(!error.is_transient());
        assert!(error.to_string().contains("destinatario"), "{error}");
    }
}
