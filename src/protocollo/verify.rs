//! The tamper check (`procedo protocollo verify`): recomputes the hash chain over the whole
//! register from what the database holds now, and the SHA-256 of every file a registration or
//! a daily register names. A row changed, removed or inserted outside procedo, or a file
//! changed on disk, is reported with what it is.

use crate::store::{GENESIS, LogEntry, Store};

use super::Error;
use super::files::{FileCheck, FileStore};

/// What the check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Rows of the register checked (registrations and amendments).
    pub rows: usize,
    /// Files checked.
    pub files: usize,
    /// One Italian line per problem; empty when everything holds.
    pub problems: Vec<String>,
}

impl Report {
    /// Whether nothing was found.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

fn describe(entry: &LogEntry) -> String {
    match entry {
        LogEntry::Registration(r) => format!("registrazione {}", r),
        LogEntry::Amendment(a, registration) => {
            format!(
                "{} n. {} della registrazione {registration}",
                a.kind.as_str(),
                a.id
            )
        }
    }
}

/// Runs the check.
pub async fn run(store: &Store, files: &FileStore) -> Result<Report, Error> {
    let log = store.protocol_log().await?;
    let mut report = Report {
        rows: log.len(),
        ..Report::default()
    };
    let mut previous = GENESIS.to_owned();
    let mut expected_seq = 1;
    for entry in &log {
        if entry.log_seq() != expected_seq {
            report.problems.push(format!(
                "catena interrotta: dopo la posizione {} viene la {} ({}): righe mancanti o inserite fuori da procedo",
                expected_seq - 1,
                entry.log_seq(),
                describe(entry)
            ));
        }
        expected_seq = entry.log_seq() + 1;
        let recomputed = crate::store::next_chain(&previous, &entry.canonical());
        match entry.stored_chain() {
            Some(stored) if stored == recomputed => previous = stored.to_owned(),
            Some(stored) => {
                report.problems.push(format!(
                    "{}: i dati non corrispondono a quelli registrati (impronta della catena diversa): modificata fuori da procedo",
                    describe(entry)
                ));
                // Go on from what is stored, so that only the changed rows are named.
                previous = stored.to_owned();
            }
            None => {
                report
                    .problems
                    .push(format!("{}: non sigillata nella catena", describe(entry)));
                previous = recomputed;
            }
        }
        if let LogEntry::Registration(r) = entry {
            for d in &r.documents {
                report.files += 1;
                match files.check(&d.sha256).await.map_err(|e| Error::Files {
                    path: files.root().display().to_string(),
                    reason: e.to_string(),
                })? {
                    FileCheck::Intact => {}
                    FileCheck::Missing => report.problems.push(format!(
                        "registrazione {r}: il file «{}» (sha256 {}) manca dall'archivio",
                        d.name, d.sha256
                    )),
                    FileCheck::Changed { actual } => report.problems.push(format!(
                        "registrazione {r}: il file «{}» è stato modificato sul disco (sha256 registrato {}, attuale {actual})",
                        d.name, d.sha256
                    )),
                }
            }
        }
    }
    for day in store.daily_registers().await? {
        for (what, sha256) in [("CSV", &day.csv_sha256), ("HTML", &day.html_sha256)] {
            report.files += 1;
            match files.check(sha256).await.map_err(|e| Error::Files {
                path: files.root().display().to_string(),
                reason: e.to_string(),
            })? {
                FileCheck::Intact => {}
                FileCheck::Missing => report.problems.push(format!(
                    "registro giornaliero del {}: il file {what} manca dall'archivio",
                    day.day.format("%d/%m/%Y")
                )),
                FileCheck::Changed { .. } => report.problems.push(format!(
                    "registro giornaliero del {}: il file {what} è stato modificato sul disco",
                    day.day.format("%d/%m/%Y")
                )),
            }
        }
    }
    Ok(report)
}
