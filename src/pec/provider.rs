//! A small PEC provider, procedo's own, for the tests and the demo: it accepts SMTP
//! submissions on loopback, stores messages in Maildir mailboxes (one folder per address,
//! which an IMAP server such as dovecot can serve as they are), and writes the receipts of
//! the technical rules, signed with its certificate: accettazione at once, then per recipient
//! the busta di trasporto and the ricevuta di avvenuta consegna, or an avviso di mancata
//! consegna — at once for a full mailbox, after 12 h (preavviso) and 24 h for a recipient
//! whose provider never answers.
//!
//! Time is the injected clock's: messages are delivered on [`Provider::tick`], so a test
//! decides when a consegna happens and moves the clock to see the 12 h / 24 h rules.
//! It is not a production provider (no authentication, no TLS, no virus scan): procedo sends
//! to a real one in production.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tracing::{info, warn};

use super::Error;
use super::daticert::{DatiCert, Destinatario, Tipo};
use super::message::{Composition, compose, normalize_id};
use super::smime::Signer;
use crate::clock::SharedClock;
use crate::terms::ROME;

/// How a recipient's side behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Delivered at the next tick.
    Delivers,
    /// Delivered at the first tick this long after the sending (a slow recipient provider).
    DeliversAfter(Duration),
    /// The mailbox is full: mancata consegna at once.
    MailboxFull,
    /// The recipient's provider never answers: preavviso at 12 h, mancata consegna at 24 h.
    Silent,
}

#[derive(Debug, Clone)]
struct InFlight {
    message_id: String,
    from: String,
    recipient: String,
    subject: String,
    raw: Vec<u8>,
    sent_at: DateTime<Utc>,
    warned: bool,
}

#[derive(Debug, Default)]
struct State {
    in_flight: Vec<InFlight>,
    behaviours: BTreeMap<String, Behaviour>,
    counter: u64,
}

/// The provider. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Provider {
    name: String,
    domain: String,
    root: PathBuf,
    signer: Arc<Signer>,
    clock: SharedClock,
    state: Arc<Mutex<State>>,
    shared: bool,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// What a tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ticked {
    /// Messages delivered (busta + consegna).
    pub delivered: usize,
    /// Preavvisi di mancata consegna written.
    pub warned: usize,
    /// Avvisi di mancata consegna written.
    pub failed: usize,
}

impl Provider {
    /// A provider named `name` (the `gestore-emittente`), writing mailboxes under `root`,
    /// signing with `signer`, on `clock`.
    pub fn new(
        name: &str,
        root: impl Into<PathBuf>,
        signer: Signer,
        clock: SharedClock,
    ) -> Provider {
        Provider {
            name: name.to_owned(),
            domain: "pec.procedo.test".to_owned(),
            root: root.into(),
            signer: Arc::new(signer),
            clock,
            state: Arc::new(Mutex::new(State::default())),
            shared: false,
        }
    }

    /// Mailboxes readable and writable by another user (an IMAP server running as another
    /// uid serves them): folders 0777, messages 0666.
    #[must_use]
    pub fn with_shared_mailboxes(mut self) -> Provider {
        self.shared = true;
        self
    }

    /// Sets how `address` (or every address of a domain, written `@domain`) behaves.
    pub fn set_behaviour(&self, address: &str, behaviour: Behaviour) {
        if let Ok(mut state) = self.state.lock() {
            state
                .behaviours
                .insert(address.trim().to_lowercase(), behaviour);
        }
    }

    /// The Maildir folder of `address`.
    pub fn mailbox(&self, address: &str) -> PathBuf {
        self.root.join(address.trim().to_lowercase())
    }

    /// The root of the mailboxes.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn behaviour(&self, address: &str) -> Behaviour {
        let address = address.trim().to_lowercase();
        let domain = address.rsplit_once('@').map(|(_, d)| format!("@{d}"));
        self.state.lock().map_or(Behaviour::Delivers, |state| {
            state
                .behaviours
                .get(&address)
                .or_else(|| domain.and_then(|d| state.behaviours.get(&d)))
                .copied()
                .unwrap_or(Behaviour::Delivers)
        })
    }

    fn next_id(&self, at: DateTime<Utc>) -> String {
        let n = self.state.lock().map_or(0, |mut state| {
            state.counter += 1;
            state.counter
        });
        format!("opec.{}.{n}@{}", at.format("%Y%m%d%H%M%S"), self.domain)
    }

    /// Accepts a submission from `from` to `recipients`: the accettazione goes to the sender
    /// at once; each recipient is delivered at the next tick, or answered as its behaviour
    /// says. Returns the accettazione's identifier.
    pub async fn submit(
        &self,
        from: &str,
        recipients: &[String],
        raw: &[u8],
    ) -> Result<String, Error> {
        let now = self.clock.now();
        let parsed = mail_parser::MessageParser::default()
            .parse(raw)
            .ok_or_else(|| Error::Message("messaggio inviato non leggibile".into()))?;
        let message_id = parsed
            .message_id()
            .map(normalize_id)
            .ok_or_else(|| Error::Message("il messaggio non ha Message-ID".into()))?;
        let subject = parsed.subject().unwrap_or_default().to_owned();
        let id = self.next_id(now);
        let destinatari: Vec<Destinatario> = recipients
            .iter()
            .map(|r| Destinatario {
                address: r.clone(),
                certificato: true,
            })
            .collect();
        let accettazione = DatiCert {
            tipo: Tipo::Accettazione,
            errore: "nessuno".into(),
            mittente: from.to_owned(),
            destinatari: destinatari.clone(),
            risposte: from.to_owned(),
            oggetto: subject.clone(),
            gestore: self.name.clone(),
            data: now.with_timezone(&ROME).fixed_offset(),
            identificativo: id.clone(),
            msgid: Some(message_id.clone()),
            ricevuta: Some("completa".into()),
            consegna: None,
            errore_esteso: None,
        };
        let text = format!(
            "Ricevuta di accettazione\r\n\r\nIl giorno {} il messaggio \"{subject}\" proveniente da \"{from}\" ed indirizzato a: {} è stato accettato dal sistema ed inoltrato.\r\nIdentificativo messaggio: {id}\r\n",
            now.with_timezone(&ROME)
                .format("%d/%m/%Y alle ore %H:%M:%S"),
            recipients.join(", ")
        );
        self.write_receipt(
            from,
            &format!("ACCETTAZIONE: {subject}"),
            &message_id,
            &text,
            &accettazione,
            None,
            now,
        )
        .await?;
        let behaviours: Vec<Behaviour> = recipients.iter().map(|r| self.behaviour(r)).collect();
        let mut immediate = Vec::new();
        if let Ok(mut state) = self.state.lock() {
            for (recipient, behaviour) in recipients.iter().zip(behaviours) {
                let flight = InFlight {
                    message_id: message_id.clone(),
                    from: from.to_owned(),
                    recipient: recipient.clone(),
                    subject: subject.clone(),
                    raw: raw.to_vec(),
                    sent_at: now,
                    warned: false,
                };
                match behaviour {
                    Behaviour::MailboxFull => immediate.push(flight),
                    _ => state.in_flight.push(flight),
                }
            }
        }
        for flight in immediate {
            self.fail(&flight, "5.2.2 - casella del destinatario piena", now)
                .await?;
        }
        Ok(id)
    }

    /// Delivers what is due and applies the 12 h / 24 h rules at the clock's instant.
    pub async fn tick(&self) -> Result<Ticked, Error> {
        let now = self.clock.now();
        let flights: Vec<InFlight> = self
            .state
            .lock()
            .map(|mut state| std::mem::take(&mut state.in_flight))
            .unwrap_or_default();
        let mut ticked = Ticked::default();
        let mut keep = Vec::new();
        for mut flight in flights {
            match self.behaviour(&flight.recipient) {
                Behaviour::Delivers | Behaviour::MailboxFull => {
                    self.deliver(&flight, now).await?;
                    ticked.delivered += 1;
                }
                Behaviour::DeliversAfter(delay) if now >= flight.sent_at + delay => {
                    self.deliver(&flight, now).await?;
                    ticked.delivered += 1;
                }
                Behaviour::DeliversAfter(_) => keep.push(flight),
                Behaviour::Silent => {
                    if now >= flight.sent_at + Duration::hours(24) {
                        self.fail(
                            &flight,
                            "5.4.1 - nessuna risposta dal gestore del destinatario entro 24 ore",
                            now,
                        )
                        .await?;
                        ticked.failed += 1;
                    } else {
                        if !flight.warned && now >= flight.sent_at + Duration::hours(12) {
                            self.warn_late(&flight, now).await?;
                            flight.warned = true;
                            ticked.warned += 1;
                        }
                        keep.push(flight);
                    }
                }
            }
        }
        if let Ok(mut state) = self.state.lock() {
            keep.append(&mut state.in_flight);
            state.in_flight = keep;
        }
        Ok(ticked)
    }

    fn daticert(&self, tipo: Tipo, f: &InFlight, at: DateTime<Utc>, id: &str) -> DatiCert {
        DatiCert {
            tipo,
            errore: match tipo {
                Tipo::ErroreConsegna | Tipo::PreavvisoErroreConsegna => "altro".into(),
                _ => "nessuno".into(),
            },
            mittente: f.from.clone(),
            destinatari: vec![Destinatario {
                address: f.recipient.clone(),
                certificato: true,
            }],
            risposte: f.from.clone(),
            oggetto: f.subject.clone(),
            gestore: self.name.clone(),
            data: at.with_timezone(&ROME).fixed_offset(),
            identificativo: id.to_owned(),
            msgid: Some(f.message_id.clone()),
            ricevuta: Some("completa".into()),
            consegna: Some(f.recipient.clone()),
            errore_esteso: None,
        }
    }

    async fn deliver(&self, f: &InFlight, at: DateTime<Utc>) -> Result<(), Error> {
        let id = self.next_id(at);
        let when = at.with_timezone(&ROME).format("%d/%m/%Y alle ore %H:%M:%S");
        // The busta di trasporto in the recipient's mailbox, delivered at `at`.
        let busta = self.daticert(Tipo::PostaCertificata, f, at, &id);
        let busta_text = format!(
            "Messaggio di posta certificata\r\n\r\nIl giorno {when} il messaggio \"{}\" è stato inviato da \"{}\" indirizzato a: {}\r\nIl messaggio originale è incluso in allegato.\r\nIdentificativo messaggio: {id}\r\n",
            f.subject, f.from, f.recipient
        );
        let raw = compose(
            &Composition {
                from: &format!(
                    "\"Per conto di: {}\" <posta-certificata@{}>",
                    f.from, self.domain
                ),
                to: &f.recipient,
                subject: &format!("POSTA CERTIFICATA: {}", f.subject),
                message_id: &format!("<{id}>"),
                riferimento: None,
                text: &busta_text,
                daticert: &busta,
                original: Some(&f.raw),
            },
            &self.signer,
            at,
        )?;
        write_maildir(&self.mailbox(&f.recipient), &raw, at, self.shared).await?;
        let consegna = self.daticert(Tipo::AvvenutaConsegna, f, at, &id);
        let text = format!(
            "Ricevuta di avvenuta consegna\r\n\r\nIl giorno {when} il messaggio \"{}\" proveniente da \"{}\" ed indirizzato a \"{}\" è stato consegnato nella casella di destinazione.\r\nIdentificativo messaggio: {id}\r\n",
            f.subject, f.from, f.recipient
        );
        self.write_receipt(
            &f.from,
            &format!("CONSEGNA: {}", f.subject),
            &f.message_id,
            &text,
            &consegna,
            Some(&f.raw),
            at,
        )
        .await?;
        info!(recipient_domain = %domain_of(&f.recipient), "PEC consegnata (gestore di prova)");
        Ok(())
    }

    async fn fail(&self, f: &InFlight, reason: &str, at: DateTime<Utc>) -> Result<(), Error> {
        let id = self.next_id(at);
        let mut d = self.daticert(Tipo::ErroreConsegna, f, at, &id);
        d.errore_esteso = Some(reason.to_owned());
        let text = format!(
            "Avviso di mancata consegna\r\n\r\nIl giorno {} è stato rilevato un problema che impedisce la consegna del messaggio \"{}\" indirizzato a \"{}\".\r\nErrore: {reason}\r\nIdentificativo messaggio: {id}\r\n",
            at.with_timezone(&ROME).format("%d/%m/%Y alle ore %H:%M:%S"),
            f.subject,
            f.recipient
        );
        self.write_receipt(
            &f.from,
            &format!("AVVISO DI MANCATA CONSEGNA: {}", f.subject),
            &f.message_id,
            &text,
            &d,
            None,
            at,
        )
        .await?;
        warn!(recipient_domain = %domain_of(&f.recipient), "PEC non consegnata (gestore di prova)");
        Ok(())
    }

    async fn warn_late(&self, f: &InFlight, at: DateTime<Utc>) -> Result<(), Error> {
        let id = self.next_id(at);
        let mut d = self.daticert(Tipo::PreavvisoErroreConsegna, f, at, &id);
        d.errore_esteso = Some("nessuna ricevuta di consegna entro 12 ore".into());
        let text = format!(
            "Avviso di mancata consegna per superamento dei tempi massimi\r\n\r\nIl messaggio \"{}\" indirizzato a \"{}\" non risulta consegnato entro 12 ore dall'invio.\r\nIdentificativo messaggio: {id}\r\n",
            f.subject, f.recipient
        );
        self.write_receipt(
            &f.from,
            &format!(
                "AVVISO DI MANCATA CONSEGNA PER SUP. TEMPO MASSIMO: {}",
                f.subject
            ),
            &f.message_id,
            &text,
            &d,
            None,
            at,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_receipt(
        &self,
        to: &str,
        subject: &str,
        riferimento: &str,
        text: &str,
        d: &DatiCert,
        original: Option<&[u8]>,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let raw = compose(
            &Composition {
                from: &format!("posta-certificata@{}", self.domain),
                to,
                subject,
                message_id: &format!("<{}>", d.identificativo),
                riferimento: Some(riferimento),
                text,
                daticert: d,
                original,
            },
            &self.signer,
            at,
        )?;
        write_maildir(&self.mailbox(to), &raw, at, self.shared).await
    }

    /// Serves SMTP submissions on `listener` until the task is dropped. Each accepted
    /// message is answered `250` with the accettazione's identifier.
    pub async fn serve(self, listener: TcpListener) {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let provider = self.clone();
            tokio::spawn(async move {
                if let Err(error) = provider.session(socket).await {
                    warn!(error = %error, "sessione SMTP del gestore di prova interrotta");
                }
            });
        }
    }

    async fn session(&self, socket: tokio::net::TcpStream) -> std::io::Result<()> {
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read);
        write
            .write_all(format!("220 {} ESMTP gestore PEC di prova\r\n", self.domain).as_bytes())
            .await?;
        let (mut from, mut to) = (None::<String>, Vec::<String>::new());
        let mut line = String::new();
        loop {
            line.clear();
            if lines.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let command = line.trim_end().to_owned();
            let upper = command.to_ascii_uppercase();
            let reply: String = if upper.starts_with("EHLO") {
                format!("250-{}\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n", self.domain)
            } else if upper.starts_with("HELO") {
                format!("250 {}\r\n", self.domain)
            } else if upper.starts_with("MAIL FROM:") {
                from = Some(angle(&command[10..]));
                to.clear();
                "250 2.1.0 ok\r\n".into()
            } else if upper.starts_with("RCPT TO:") {
                to.push(angle(&command[8..]));
                "250 2.1.5 ok\r\n".into()
            } else if upper == "DATA" {
                write.write_all(b"354 fine con <CRLF>.<CRLF>\r\n").await?;
                let mut data = Vec::new();
                loop {
                    let mut raw_line = Vec::new();
                    if lines.read_until(b'\n', &mut raw_line).await? == 0 {
                        return Ok(());
                    }
                    if raw_line == b".\r\n" || raw_line == b".\n" {
                        break;
                    }
                    let unstuffed = if raw_line.starts_with(b"..") {
                        &raw_line[1..]
                    } else {
                        &raw_line[..]
                    };
                    data.extend_from_slice(unstuffed);
                }
                match (&from, to.is_empty()) {
                    (Some(sender), false) => match self.submit(sender, &to, &data).await {
                        Ok(id) => format!("250 2.0.0 accettato {id}\r\n"),
                        Err(error) => format!("554 5.6.0 {error}\r\n"),
                    },
                    _ => "503 5.5.1 mancano mittente o destinatari\r\n".into(),
                }
            } else if upper == "RSET" {
                from = None;
                to.clear();
                "250 2.0.0 ok\r\n".into()
            } else if upper == "NOOP" {
                "250 2.0.0 ok\r\n".into()
            } else if upper == "QUIT" {
                write.write_all(b"221 2.0.0 arrivederci\r\n").await?;
                return Ok(());
            } else {
                "502 5.5.2 comando non gestito\r\n".into()
            };
            write.write_all(reply.as_bytes()).await?;
        }
    }
}

fn angle(text: &str) -> String {
    let text = text.trim();
    let inner = text
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>').map(|(a, _)| a))
        .unwrap_or(text);
    inner.trim().to_owned()
}

fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("?", |(_, d)| d)
}

/// Writes `raw` into the Maildir `dir` (tmp, then renamed into new), its modification time
/// the delivery instant — what IMAP servers report as INTERNALDATE. `shared`: folders 0777
/// and the message 0666, for an IMAP server running as another user.
pub async fn write_maildir(
    dir: &Path,
    raw: &[u8],
    at: DateTime<Utc>,
    shared: bool,
) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt as _;
    let fail = |e: std::io::Error| Error::Mailbox(format!("{}: {e}", dir.display()));
    for sub in ["tmp", "new", "cur"] {
        tokio::fs::create_dir_all(dir.join(sub))
            .await
            .map_err(fail)?;
        if shared {
            for path in [dir.to_path_buf(), dir.join(sub)] {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))
                    .map_err(fail)?;
            }
        }
    }
    let digest = hex::encode(&ring::digest::digest(&ring::digest::SHA256, raw).as_ref()[..8]);
    let name = format!(
        "{}.{}_{digest}.procedo",
        at.timestamp(),
        at.timestamp_subsec_micros()
    );
    let tmp = dir.join("tmp").join(&name);
    tokio::fs::write(&tmp, raw).await.map_err(fail)?;
    if shared {
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o666)).map_err(fail)?;
    }
    let file = std::fs::File::options()
        .write(true)
        .open(&tmp)
        .map_err(fail)?;
    file.set_modified(std::time::SystemTime::from(at))
        .map_err(fail)?;
    drop(file);
    tokio::fs::rename(&tmp, dir.join("new").join(&name))
        .await
        .map_err(fail)
}
