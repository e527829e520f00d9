//! A real SMTP receiver for the tests (mailin-embedded on 127.0.0.1): it keeps every message
//! it accepts, can refuse chosen recipients with a chosen code, and can be slow — answer the
//! end of DATA only after a pause, like a relay under load. No mock transports.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mailin_embedded::{Handler, Response, Server, response};

/// One message as the receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The envelope recipients.
    pub recipients: Vec<String>,
    /// The message as sent.
    pub raw: Vec<u8>,
}

type Inbox = Arc<Mutex<Vec<Received>>>;

/// The receiver's per-connection state; refuses the recipients listed with their code.
#[derive(Clone)]
struct Receiving {
    inbox: Inbox,
    refusals: Arc<HashMap<String, u16>>,
    pace: Arc<Mutex<Pace>>,
    recipients: Vec<String>,
    data: Vec<u8>,
}

/// How long the receiver waits before accepting a message.
#[derive(Debug, Clone, Copy, Default)]
struct Pace {
    /// The first `stalls` messages wait `stall` each.
    stall: Duration,
    stalls: usize,
    /// Every other message waits this.
    every: Duration,
}

impl Pace {
    /// The pause for the next message.
    fn next(&mut self) -> Duration {
        if self.stalls > 0 {
            self.stalls -= 1;
            self.stall
        } else {
            self.every
        }
    }
}

impl Handler for Receiving {
    fn rcpt(&mut self, to: &str) -> Response {
        match self.refusals.get(to) {
            Some(550) => Response::custom(550, "5.1.1 Mailbox unavailable".to_owned()),
            Some(code) => Response::custom(*code, "4.2.1 Mailbox busy, try later".to_owned()),
            None => response::OK,
        }
    }

    fn data_start(&mut self, _: &str, _: &str, _: bool, to: &[String]) -> Response {
        self.recipients = to.to_vec();
        self.data.clear();
        response::OK
    }

    fn data(&mut self, buffer: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buffer);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let pause = self
            .pace
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next();
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
        let message = Received {
            recipients: std::mem::take(&mut self.recipients),
            raw: std::mem::take(&mut self.data),
        };
        self.inbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(message);
        response::OK
    }
}

/// A receiver on 127.0.0.1, serving until the test process ends.
pub struct Receiver {
    /// Its port.
    pub port: u16,
    inbox: Inbox,
    pace: Arc<Mutex<Pace>>,
}

impl Receiver {
    /// A receiver on a free port; `refusals` lists recipients refused with their code.
    pub fn start(refusals: &[(&str, u16)]) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        Receiver::on(listener, refusals)
    }

    /// A receiver on a listener the test already holds (e.g. a port that was silent).
    pub fn on(listener: TcpListener, refusals: &[(&str, u16)]) -> Receiver {
        let port = listener.local_addr().expect("local address").port();
        let inbox = Inbox::default();
        let pace = Arc::new(Mutex::new(Pace::default()));
        let handler = Receiving {
            inbox: inbox.clone(),
            pace: pace.clone(),
            refusals: Arc::new(
                refusals
                    .iter()
                    .map(|(address, code)| ((*address).to_owned(), *code))
                    .collect(),
            ),
            recipients: Vec::new(),
            data: Vec::new(),
        };
        let mut server = Server::new(handler);
        server
            .with_name("ricevente.test")
            .with_num_threads(16)
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            if let Err(error) = server.serve() {
                eprintln!("ricevente SMTP di prova fermo: {error}");
            }
        });
        Receiver { port, inbox, pace }
    }

    /// The next `times` messages are accepted only after `stall` each (a relay that hangs).
    pub fn stall(&self, stall: Duration, times: usize) {
        let mut pace = self.pace.lock().unwrap_or_else(PoisonError::into_inner);
        pace.stall = stall;
        pace.stalls = times;
    }

    /// Every message is accepted only after `pause` (a slow relay).
    pub fn slow(&self, pause: Duration) {
        self.pace
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .every = pause;
    }

    /// Every message received so far.
    pub fn messages(&self) -> Vec<Received> {
        self.inbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
