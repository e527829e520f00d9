//! The connections to an SMTP relay, kept by procedo: TCP_NODELAY on every socket, a pool of
//! idle connections reused for the next message, and an optional rate limit per relay.
//!
//! Why not lettre's own pool: lettre writes the message and the final `.` as separate small
//! writes and never disables Nagle's algorithm, so each message waits for the relay's delayed
//! ACK (~40 ms on Linux) before its end-of-data reaches it: about 25 messages per second per
//! connection, whatever the relay. Here the socket is opened by procedo with `TCP_NODELAY`
//! and handed to lettre's connection (`AsyncSmtpConnection::connect_with_transport`), which
//! still speaks SMTP, STARTTLS and AUTH; implicit TLS (`smtps://`) is set up by procedo with
//! rustls and the platform's verifier before lettre speaks.
//!
//! Real relays and certified-mail providers cap senders: `rate` (messages per second) spaces
//! the messages of all the workers that share the relay.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Connections kept idle per relay.
const MAX_IDLE: usize = 16;
/// An idle connection older than this is checked with `NOOP` before it is reused.
const CHECK_AFTER: Duration = Duration::from_secs(10);
/// An idle connection older than this is closed rather than reused.
const DROP_AFTER: Duration = Duration::from_secs(60);

/// Why a message did not reach the relay.
#[derive(Debug)]
pub(crate) enum RelayError {
    /// No connection (refused, timed out, TLS set-up, STARTTLS missing): worth retrying.
    Connect(io::Error),
    /// What lettre's connection reported (SMTP replies, I/O during the dialogue).
    Smtp(lettre::transport::smtp::Error),
}

impl From<lettre::transport::smtp::Error> for RelayError {
    fn from(error: lettre::transport::smtp::Error) -> Self {
        RelayError::Smtp(error)
    }
}

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Security {
    /// No TLS (a relay on loopback, tests).
    None,
    /// STARTTLS, required or when offered.
    StartTls {
        /// Refuse a server that does not offer it.
        required: bool,
    },
    /// TLS from the first byte (`smtps://`).
    Implicit,
}

/// What a relay is and how to reach it.
#[derive(Clone)]
pub(crate) struct RelaySettings {
    /// Host name (for TLS and messages).
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS.
    pub security: Security,
    /// User and password, if the relay wants them.
    pub credentials: Option<(String, String)>,
    /// Connection and command timeout.
    pub timeout: Option<Duration>,
    /// Messages per second at most, all workers together.
    pub rate: Option<f64>,
}

impl std::fmt::Debug for RelaySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelaySettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("credentials", &self.credentials.as_ref().map(|_| "…"))
            .field("rate", &self.rate)
            .finish()
    }
}

/// An idle connection and since when.
struct Idle {
    connection: AsyncSmtpConnection,
    since: Instant,
}

/// One relay: its settings, its idle connections, its rate.
pub(crate) struct Relay {
    settings: RelaySettings,
    hello: ClientId,
    idle: Mutex<Vec<Idle>>,
    /// The instant the next message may start (with a rate).
    next_slot: Mutex<Instant>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// A relay; connects lazily.
    pub(crate) fn new(settings: RelaySettings) -> Arc<Relay> {
        Arc::new(Relay {
            settings,
            hello: ClientId::default(),
            idle: Mutex::new(Vec::new()),
            next_slot: Mutex::new(Instant::now()),
        })
    }

    /// Submits one message: waits for its slot under the rate, takes an idle connection (or
    /// opens one), and gives the connection back if it is still sound.
    pub(crate) async fn send(
        &self,
        envelope: &Envelope,
        message: &[u8],
    ) -> Result<Response, RelayError> {
        self.wait_for_slot().await;
        let mut connection = match self.take_idle().await {
            Some(connection) => connection,
            None => self.connect().await?,
        };
        let result = connection.send(envelope, message).await;
        if result.is_ok() && !connection.has_broken() {
            self.put_back(connection);
        } else {
            connection.abort().await;
        }
        Ok(result?)
    }

    /// Under a rate, each message takes the next free slot, `1/rate` seconds apart.
    async fn wait_for_slot(&self) {
        let Some(rate) = self.settings.rate.filter(|r| *r > 0.0) else {
            return;
        };
        let gap = Duration::from_secs_f64(1.0 / rate);
        let slot = {
            let mut next = self.next_slot.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + gap;
            slot
        };
        tokio::time::sleep_until(tokio::time::Instant::from_std(slot)).await;
    }

    async fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        loop {
            let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()?;
            let age = idle.since.elapsed();
            let mut connection = idle.connection;
            if age > DROP_AFTER {
                connection.abort().await;
                continue;
            }
            if age > CHECK_AFTER && !connection.test_connected().await {
                connection.abort().await;
                continue;
            }
            return Some(connection);
        }
    }

    fn put_back(&self, connection: AsyncSmtpConnection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                connection,
                since: Instant::now(),
            });
        }
    }

    /// Opens a connection: TCP with `TCP_NODELAY`, TLS as configured, EHLO, AUTH.
    async fn connect(&self) -> Result<AsyncSmtpConnection, RelayError> {
        let s = &self.settings;
        let address = (s.host.as_str(), s.port);
        let tcp = match s.timeout {
            Some(limit) => tokio::time::timeout(limit, TcpStream::connect(address))
                .await
                .map_err(|_| {
                    RelayError::Connect(io_error(
                        io::ErrorKind::TimedOut,
                        format!("connessione a {}:{} scaduta", s.host, s.port),
                    ))
                })?,
            None => TcpStream::connect(address).await,
        }
        .map_err(RelayError::Connect)?;
        tcp.set_nodelay(true).map_err(RelayError::Connect)?;
        let stream: Box<dyn AsyncTokioStream> = match s.security {
            Security::Implicit => Box::new(
                implicit_tls(tcp, &s.host)
                    .await
                    .map_err(RelayError::Connect)?,
            ),
            Security::None | Security::StartTls { .. } => Box::new(tcp),
        };
        let mut connection =
            AsyncSmtpConnection::connect_with_transport(stream, &self.hello).await?;
        if let Security::StartTls { required } = s.security {
            if connection.can_starttls() {
                connection
                    .starttls(TlsParameters::new(s.host.clone())?, &self.hello)
                    .await?;
            } else if required {
                connection.abort().await;
                return Err(RelayError::Connect(io_error(
                    io::ErrorKind::Unsupported,
                    format!(
                        "{}:{} non offre STARTTLS, richiesto (tls=opportunistic per farne a meno)",
                        s.host, s.port
                    ),
                )));
            }
        }
        if let Some((user, password)) = &s.credentials {
            let credentials = Credentials::new(user.clone(), password.clone());
            connection
                .auth(&[Mechanism::Plain, Mechanism::Login], &credentials)
                .await?;
        }
        Ok(connection)
    }
}

fn io_error(kind: io::ErrorKind, message: String) -> io::Error {
    io::Error::new(kind, message)
}

/// A TLS stream lettre can speak over.
#[derive(Debug)]
struct Tls(tokio_rustls::client::TlsStream<TcpStream>);

async fn implicit_tls(tcp: TcpStream, host: &str) -> io::Result<Tls> {
    use rustls_platform_verifier::ConfigVerifierExt as _;
    let config = rustls::ClientConfig::with_platform_verifier()
        .map_err(|e| io::Error::other(format!("TLS: {e}")))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls_pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{host}: {e}")))?;
    Ok(Tls(connector.connect(name, tcp).await?))
}

impl AsyncRead for Tls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for Tls {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}
