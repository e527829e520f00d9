//! The PEC mailbox procedo reads: over IMAP (`PROCEDO_PEC_IMAP_URL`, `imaps://` in
//! production, `imap://` on loopback) or as a Maildir folder (`PROCEDO_PEC_MAILDIR`, where a
//! local delivery agent or fetchmail writes).
//!
//! Reading is polling: the unread messages with their delivery instant (IMAP INTERNALDATE,
//! the file's modification time in a Maildir), then each marked read once it was handled
//! (`\Seen`; moved to `cur/` with the `S` flag). A message handled and not yet marked is
//! read again after a crash: what handles it is idempotent.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;

use super::Error;

/// Environment variable with the IMAP URL of the PEC mailbox (may contain credentials).
pub const IMAP_URL_VARIABLE: &str = "PROCEDO_PEC_IMAP_URL";
/// Environment variable with the Maildir folder of the PEC mailbox.
pub const MAILDIR_VARIABLE: &str = "PROCEDO_PEC_MAILDIR";

/// One unread message.
#[derive(Debug, Clone)]
pub struct Unread {
    /// The raw message.
    pub raw: Vec<u8>,
    /// When it was delivered to the mailbox.
    pub delivered_at: DateTime<Utc>,
    handle: Handle,
}

#[derive(Debug, Clone)]
enum Handle {
    File(PathBuf),
    Uid(u32),
}

/// Where the PEC mailbox is.
#[derive(Clone)]
pub enum Mailbox {
    /// A Maildir folder.
    Maildir(PathBuf),
    /// An IMAP mailbox.
    Imap(Arc<ImapSettings>),
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// How to reach an IMAP mailbox. `Debug` hides the password.
#[derive(Clone)]
pub struct ImapSettings {
    /// Host name.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Implicit TLS (`imaps://`).
    pub tls: bool,
    /// User.
    pub user: String,
    /// Password.
    pub password: String,
    /// The folder (INBOX by default).
    pub folder: String,
}

impl std::fmt::Debug for ImapSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("folder", &self.folder)
            .finish_non_exhaustive()
    }
}

impl ImapSettings {
    /// Parses `imap[s]://user:password@host[:port][/folder]` (user and password
    /// percent-encoded).
    pub fn parse(text: &str) -> Result<ImapSettings, Error> {
        let bad = |why: &str| {
            Error::Mailbox(format!(
                "URL IMAP non valido ({why}): imap[s]://utente:password@host[:porta][/cartella]"
            ))
        };
        let url = url::Url::parse(text).map_err(|_| bad("non è un URL"))?;
        let tls = match url.scheme() {
            "imaps" => true,
            "imap" => false,
            _ => return Err(bad("lo schema deve essere imap o imaps")),
        };
        let host = url
            .host_str()
            .ok_or_else(|| bad("manca l'host"))?
            .to_owned();
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let user = decode(url.username());
        if user.is_empty() {
            return Err(bad("manca l'utente"));
        }
        let folder = url.path().trim_start_matches('/');
        Ok(ImapSettings {
            port: url.port().unwrap_or(if tls { 993 } else { 143 }),
            tls,
            user,
            password: decode(url.password().unwrap_or_default()),
            folder: if folder.is_empty() {
                "INBOX".into()
            } else {
                folder.to_owned()
            },
            host,
        })
    }
}

impl Mailbox {
    /// From `PROCEDO_PEC_IMAP_URL` or `PROCEDO_PEC_MAILDIR`; `Ok(None)` when neither is set.
    pub fn from_env() -> Result<Option<Mailbox>, Error> {
        if let Ok(url) = std::env::var(IMAP_URL_VARIABLE) {
            return Ok(Some(Mailbox::Imap(Arc::new(ImapSettings::parse(&url)?))));
        }
        Ok(std::env::var_os(MAILDIR_VARIABLE).map(|dir| Mailbox::Maildir(PathBuf::from(dir))))
    }

    /// Where it is, without credentials.
    pub fn describe(&self) -> String {
        match self {
            Mailbox::Maildir(dir) => format!("Maildir {}", dir.display()),
            Mailbox::Imap(s) => format!(
                "{}://{}:{}/{}",
                if s.tls { "imaps" } else { "imap" },
                s.host,
                s.port,
                s.folder
            ),
        }
    }

    /// The unread messages, oldest delivery first.
    pub async fn unread(&self) -> Result<Vec<Unread>, Error> {
        let mut out = match self {
            Mailbox::Maildir(dir) => maildir_unread(dir).await?,
            Mailbox::Imap(settings) => imap_unread(settings).await?,
        };
        out.sort_by_key(|u| u.delivered_at);
        Ok(out)
    }

    /// Marks messages as read (handled).
    pub async fn mark_read(&self, handled: &[Unread]) -> Result<(), Error> {
        if handled.is_empty() {
            return Ok(());
        }
        match self {
            Mailbox::Maildir(_) => {
                for item in handled {
                    if let Handle::File(path) = &item.handle {
                        maildir_seen(path).await?;
                    }
                }
                Ok(())
            }
            Mailbox::Imap(settings) => {
                let uids: Vec<String> = handled
                    .iter()
                    .filter_map(|u| match u.handle {
                        Handle::Uid(uid) => Some(uid.to_string()),
                        Handle::File(_) => None,
                    })
                    .collect();
                imap_seen(settings, &uids.join(",")).await
            }
        }
    }
}

async fn maildir_unread(dir: &std::path::Path) -> Result<Vec<Unread>, Error> {
    let fail = |e: std::io::Error| Error::Mailbox(format!("{}: {e}", dir.display()));
    let new = dir.join("new");
    let mut entries = match tokio::fs::read_dir(&new).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(fail(e)),
    };
    let mut out = Vec::new();
    while let Some(entry) = entries.next_entry().await.map_err(fail)? {
        let path = entry.path();
        let meta = entry.metadata().await.map_err(fail)?;
        if !meta.is_file() {
            continue;
        }
        let delivered_at = meta.modified().map(DateTime::<Utc>::from).map_err(fail)?;
        let raw = tokio::fs::read(&path).await.map_err(fail)?;
        out.push(Unread {
            raw,
            delivered_at,
            handle: Handle::File(path),
        });
    }
    Ok(out)
}

async fn maildir_seen(path: &std::path::Path) -> Result<(), Error> {
    let fail = |e: std::io::Error| Error::Mailbox(format!("{}: {e}", path.display()));
    let (Some(name), Some(new)) = (path.file_name(), path.parent()) else {
        return Ok(());
    };
    let Some(dir) = new.parent() else {
        return Ok(());
    };
    let target = dir
        .join("cur")
        .join(format!("{}:2,S", name.to_string_lossy()));
    tokio::fs::create_dir_all(dir.join("cur"))
        .await
        .map_err(fail)?;
    match tokio::fs::rename(path, target).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(fail(e)),
    }
}

/// A connected, logged-in IMAP session over plain TCP or TLS.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + std::fmt::Debug> Stream
    for T
{
}

async fn imap_session(s: &ImapSettings) -> Result<async_imap::Session<Box<dyn Stream>>, Error> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        Error::Mailbox(format!("{}:{} {what}: {e}", s.host, s.port))
    };
    let tcp = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tokio::net::TcpStream::connect((s.host.as_str(), s.port)),
    )
    .await
    .map_err(|e| fail("connessione", &e))?
    .map_err(|e| fail("connessione", &e))?;
    let stream: Box<dyn Stream> = if s.tls {
        use rustls_platform_verifier::ConfigVerifierExt as _;
        let config = rustls::ClientConfig::with_platform_verifier().map_err(|e| fail("TLS", &e))?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = rustls_pki_types::ServerName::try_from(s.host.clone())
            .map_err(|e| fail("nome del server", &e))?;
        Box::new(
            connector
                .connect(name, tcp)
                .await
                .map_err(|e| fail("TLS", &e))?,
        )
    } else {
        Box::new(tcp)
    };
    let mut client = async_imap::Client::new(stream);
    client
        .read_response()
        .await
        .map_err(|e| fail("saluto", &e))?
        .ok_or_else(|| Error::Mailbox(format!("{}:{} ha chiuso la connessione", s.host, s.port)))?;
    let mut session = client
        .login(&s.user, &s.password)
        .await
        .map_err(|(e, _)| fail("accesso rifiutato", &e))?;
    session
        .select(&s.folder)
        .await
        .map_err(|e| fail(&format!("cartella {}", s.folder), &e))?;
    Ok(session)
}

async fn imap_unread(s: &ImapSettings) -> Result<Vec<Unread>, Error> {
    let mut session = imap_session(s).await?;
    let fail = |e: async_imap::error::Error| Error::Mailbox(format!("{}:{}: {e}", s.host, s.port));
    let uids = session.uid_search("UNSEEN").await.map_err(fail)?;
    let mut out = Vec::new();
    if !uids.is_empty() {
        let mut list: Vec<u32> = uids.into_iter().collect();
        list.sort_unstable();
        let set = list
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut fetches = session
            .uid_fetch(&set, "(UID INTERNALDATE BODY.PEEK[])")
            .await
            .map_err(fail)?;
        while let Some(fetch) = fetches.next().await {
            let fetch = fetch.map_err(fail)?;
            let (Some(uid), Some(body)) = (fetch.uid, fetch.body()) else {
                continue;
            };
            let delivered_at = fetch
                .internal_date()
                .map(|d| d.with_timezone(&Utc))
                .ok_or_else(|| Error::Mailbox(format!("messaggio {uid} senza INTERNALDATE")))?;
            out.push(Unread {
                raw: body.to_vec(),
                delivered_at,
                handle: Handle::Uid(uid),
            });
        }
    }
    let _ = session.logout().await;
    Ok(out)
}

async fn imap_seen(s: &ImapSettings, set: &str) -> Result<(), Error> {
    if set.is_empty() {
        return Ok(());
    }
    let mut session = imap_session(s).await?;
    let fail = |e: async_imap::error::Error| Error::Mailbox(format!("{}:{}: {e}", s.host, s.port));
    {
        let mut updates = session
            .uid_store(set, "+FLAGS (\\Seen)")
            .await
            .map_err(fail)?;
        while let Some(update) = updates.next().await {
            update.map_err(fail)?;
        }
    }
    let _ = session.logout().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_imap_url_is_read_and_its_password_never_shown() {
        let s = ImapSettings::parse(
            "imaps://udp%40pec.example.it:s%C3%A8greta@imap.pec.example.it/INBOX",
        )
        .expect("parsed");
        assert_eq!(s.user, "udp@pec.example.it");
        assert_eq!(s.password, "sègreta");
        assert_eq!(s.port, 993);
        assert!(s.tls);
        assert!(!format!("{s:?}").contains("greta"));
        let plain = ImapSettings::parse("imap://u:p@127.0.0.1:1143").expect("parsed");
        assert_eq!(
            (plain.port, plain.tls, plain.folder.as_str()),
            (1143, false, "INBOX")
        );
        assert!(ImapSettings::parse("http://u:p@x").is_err());
        assert!(ImapSettings::parse("imap://x").is_err());
    }
}
