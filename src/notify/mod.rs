//! Notifications: the only module that knows handlebars, iCalendar and SMTP (lettre).
//!
//! The pieces, in the order a delivery uses them:
//! - [`Templates`] (`templates.rs`): one YAML file per message kind (`subject`, `text`, `html`,
//!   `description`), rendered in strict mode so a missing variable is an error, never a blank;
//!   [`Templates::referenced_names`] tells `procedo validate` which context names a kind reads.
//! - `dates.rs`: Italian dates in Europe/Rome ("lunedì 28 dicembre 2026, ore 12:00"), pure,
//!   also registered as the handlebars helpers `data`, `data_lunga`, `data_ora`.
//! - [`invite_ics`] (`invite.rs`): an iTIP REQUEST/CANCEL for a [`Meeting`], with a VTIMEZONE
//!   for Europe/Rome, a stable UID and a SEQUENCE the caller raises on every change.
//! - [`OutgoingEmail`] (`message.rs`): one recipient, text + HTML, optional invite, and a
//!   Message-ID chosen by the caller ([`message_id_for`]) so a resend after a crash is the
//!   same message.
//! - [`Transport`] (`transport.rs`): SMTP (from `PROCEDO_SMTP_URL`) or `.eml` files;
//!   [`SendError`] says whether retrying can help, `scheduler::backoff` says when.
//! - `sample.rs`: made-up Italian data for `procedo mail test`, the benchmark and tests.
//! - [`recipients`]: who a notification (or an outgoing act) is for.
//! - [`delivery`]: from outbox rows to emails — one delivery record per recipient, the daily
//!   digest, the delivery worker; [`delivery::install`] puts its dispatchers on a scheduler.
//!
//! Invariants: nothing here reads the system clock (callers pass `dtstamp` and `now`; the
//! dispatchers ask the service's injected clock), nothing logs a body or a
//! credential (tracing gets the Message-ID, the recipient's domain and the status), and
//! person-facing text is Italian.

mod dates;
pub mod delivery;
mod error;
pub mod invite;
mod message;
pub mod pdfa;
pub mod recipients;
mod references;
mod relay;
pub mod sample;
mod templates;
mod transport;

pub use dates::{
    Moment, data, data_lunga, data_ora, long_date, long_date_time, parse_moment, short_date,
};
pub use delivery::{
    DeliveryOptions, DeliveryWorker, MailSettings, PEC_FROM_VARIABLE, PEC_SMTP_URL_VARIABLE,
    PecSending, install, spawn_delivery_worker,
};
pub use error::{Error, TemplateDiagnostic};
pub use invite::{Meeting, Method, agenda_description, invite_ics};
pub use message::{OutgoingEmail, message_id_for};
pub use templates::{Rendered, SHIPPED_KINDS, Templates};
pub use transport::{
    DEFAULT_FROM, SMTP_FROM_VARIABLE, SMTP_TIMEOUT_VARIABLE, SMTP_URL_VARIABLE, SendError,
    SendReport, SmtpRelay, SmtpSettings, Transport,
};
