//! A real SMTP receiver for the tests (mailin-embedded on 127.0.0.1): it keeps every message
//! it accepts and can refuse chosen recipients with a chosen code. No mock transports.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, PoisonError};

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
    recipients: Vec<String>,
    data: Vec<u8>,
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
        let handler = Receiving {
            inbox: inbox.clone(),
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
        Receiver { port, inbox }
    }

    /// Every message received so far.
    pub fn messages(&self) -> Vec<Received> {
        self.inbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
