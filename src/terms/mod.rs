//! Italian legal terms: holiday calendars, office closures, term rules and their traces. PURE.
//!
//! A *term* (termine) starts from a civil date (the dies a quo) and ends on a civil date (the
//! expiry) at an instant in Europe/Rome (the deadline). The rules are those of art. 2963 c.c. and
//! art. 155 c.p.c. as used for administrative procedures (domain notes, procedures.md §2):
//!
//! - **days forward**: dies a quo excluded; an expiry on a non-working day moves to the next
//!   working day;
//! - **months / years**: by the calendar; a missing day (31 Feb) becomes the last day of the month;
//!   then the same shift;
//! - **days backward** ("almeno N giorni prima"): an expiry on a non-working day moves *earlier*;
//! - **giorni liberi**: both ends excluded (forward: start + N + 1, backward: start − N − 1);
//! - **publication window** ("per N giorni consecutivi"): first day counted, never shifted.
//!
//! Non-working days are the national legal holidays (Sundays included, see [`Calendar`]), plus
//! Saturdays when the rule adopts the Saturday rule, plus the ente's office closures when the rule
//! says closures shift the term. Every computation returns an Italian trace, one line per step.
//!
//! CONTRACT (used by `definition`, `engine`, the CLI and later the API) — keep these names:
//! - `Rule` (validated term rule), built by `Rule::new(RuleSpec)`; `RuleSpec` is the serde
//!   mirror of the YAML/CLI fields.
//! - `Calendar` (national holidays + optional comune + office closures), `Closure`.
//! - `compute(&Rule, start, &Calendar, &[Suspension]) -> Result<Term, Error>`.
//! - `Term { expiry, deadline, trace }`.
//!
//! Invariants: no I/O (files arrive as text, see [`parse_closures`]), no clock, never the
//! machine's local time zone; day arithmetic is done on civil dates only, never by adding
//! multiples of 24 hours to an instant.

mod calendar;
mod closures;
mod compute;
mod format;
mod rule;

#[cfg(test)]
mod tests;

use chrono_tz::Tz;

pub use calendar::{Calendar, Closure, LegalHoliday, easter_sunday};
pub use closures::parse_closures;
pub use compute::{Suspension, Term, compute, compute_hours};
pub use rule::{Kind, Rule, RuleSpec};

/// The time zone of every legal time in procedo.
pub const ROME: Tz = chrono_tz::Europe::Rome;

/// Errors of the term calculator.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The rule's fields do not describe one term.
    #[error("regola di termine non valida: {0}")]
    InvalidRule(String),
    /// A closures file could not be read as data.
    #[error("calendario chiusure non valido: {0}")]
    InvalidClosures(String),
    /// The arithmetic left the supported date range.
    #[error("data fuori intervallo: {0}")]
    OutOfRange(String),
    /// A suspension ends before it starts.
    #[error("sospensione non valida: {0}")]
    InvalidSuspension(String),
}
