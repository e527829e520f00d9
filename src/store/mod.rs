//! The store: the only module that knows SQL (sea-orm, SQLite and PostgreSQL). It commits a
//! step and its effects in one transaction and hands out typed rows.
//!
//! Architecture Invariant: every write that belongs to a step (instance row, history row,
//! timers, outbox rows, idempotency key) happens in one transaction, so a step is either wholly
//! visible or not at all. `history` is append-only: no code path here updates or deletes it,
//! and the database refuses to (triggers, see the migrations).
//!
//! Architecture Invariant: the store reads no clock. Every instant it writes comes from the
//! caller (`at`, `now`), so tests move time by passing it.
//!
//! Concurrency: write transactions start with `BEGIN IMMEDIATE` on SQLite (the write lock is
//! taken first, so two writers never deadlock upgrading a read lock) and run at READ COMMITTED
//! on PostgreSQL, where the optimistic `UPDATE … WHERE version = expected` serializes writers on
//! the instance row and the loser sees zero rows.

mod albo;
mod audit;
mod bulk;
mod calendar;
mod cron;
mod definitions;
mod deliveries;
mod entities;
mod identity;
mod instances;
mod jobs;
mod lease;
mod outbox;
mod pec;
mod protocollo;
mod script;
mod submissions;
mod timers;

use std::fmt;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, SqlErr, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use albo::AlboHandover;
pub use audit::{AdminWrite, AuditRow, NewAudit};
pub use bulk::{InPlace, PlannedFiring};
pub use calendar::{CalendarFeedRow, NewCalendarFeed};
pub use definitions::{DefinitionRow, NewDefinition, Saved};
pub use deliveries::{
    DeliveryFilter, DeliveryRow, DeliveryStatus, FAILURE_ALERT_KIND, FAILURE_ALERT_ROLE,
    NewDelivery,
};
pub use identity::{
    Credential, NewOrganisation, NewPerson, NewToken, OrganisationKind, OrganisationRow, PersonRow,
    TokenRow,
};
pub use instances::{
    CommandRow, Committed, HistoryRow, InstanceFilter, InstanceRow, StartRecord, StepRecord,
};
pub use lease::Claim;
pub use outbox::{OutboxRow, OutboxStatus};
pub use pec::{NewPecIncoming, NewPecReceipt, PecIncomingRow, PecReceiptRow, ReceiptRecorded};
pub use protocollo::{
    AmendmentKind, AssignedNumber, ConservationStatus, Correspondent, CorrespondentKind,
    DailyRegisterRow, Direction, DocumentRole, EMERGENCY_REGISTER, GENESIS, LogEntry, NewAmendment,
    NewDailyRegister, NewProtocolDocument, NewProtocolRegistration, PROTOCOL_REGISTER,
    ProtocolAmendment, ProtocolDocument, ProtocolFilter, ProtocolRegistration, Refusal, Registered,
    Source, next_chain, sha256_hex,
};
pub use submissions::{
    AttachedDocument, DocumentRef, NewQuestion, NewSoccorsoResponse, NewSubmission, QuestionRow,
    SoccorsoRow, StoredDocument, SubmissionFilter, SubmissionRow, SubmissionStatus,
    SubmissionWrite, Submitted,
};
pub use timers::{TimerRow, TimerStatus};

/// How long a SQLite connection waits for the write lock before giving up.
const SQLITE_BUSY_TIMEOUT: StdDuration = StdDuration::from_secs(5);
/// Connections to a SQLite file: readers run in parallel under WAL, writers queue on the lock.
const SQLITE_POOL_SIZE: u32 = 4;
/// Connections to PostgreSQL: the scheduler fires with up to eight at once, the rest serve
/// the API, the outbox and the heartbeat meanwhile.
const POSTGRES_POOL_SIZE: u32 = 16;
/// A pooled connection idle for longer is pinged before it is handed out.
const PING_IF_IDLE_FOR: StdDuration = StdDuration::from_secs(10);

/// A new id for a row that is created over time (an instance, a submission): a UUID of
/// version 7 (RFC 9562): 48 bits of the creation instant in milliseconds, a 12-bit counter
/// that keeps the ids this process makes in one millisecond in order, 62 random bits.
///
/// Rows created together sit together in every index keyed by the id (instances, their
/// history, their timers and submissions), so that the timers that fall due together touch a
/// few pages of each index instead of one page per row: with random (version 4) ids, a batch
/// of a thousand firings rewrites thousands of scattered pages once the database outgrows the
/// page cache. The random part keeps the id unguessable as before: access is checked, never
/// inferred from knowing an id.
pub fn new_row_id(at: DateTime<Utc>) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    // The last (milliseconds << 12 | counter) handed out: the next is the later of its
    // successor and the instant's own start, so that ids never go back within the process
    // (a counter that runs out borrows the next millisecond, as the RFC allows).
    static LAST: AtomicU64 = AtomicU64::new(0);
    let floor = u64::try_from(at.timestamp_millis()).unwrap_or_default() << 12;
    let mut last = LAST.load(Ordering::Relaxed);
    let stamp = loop {
        let next = floor.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => break next,
            Err(seen) => last = seen,
        }
    };
    let random = uuid::Uuid::new_v4().as_u128();
    let bits = (u128::from(stamp >> 12) << 80)
        | (0x7 << 76)
        | (u128::from(stamp & 0xfff) << 64)
        | (0b10 << 62)
        | (random & ((1 << 62) - 1));
    uuid::Uuid::from_u128(bits).to_string()
}

/// Why the store refused or failed. Messages are Italian: a person may read them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The instance moved on since the caller read it (optimistic lock); nothing was written.
    #[error("l'istanza è stata modificata da un'altra operazione: riprovare")]
    Conflict {
        /// The instance.
        instance_id: String,
        /// The version the caller expected (0 for a start whose id is taken).
        expected_version: i64,
    },
    /// A row the operation needs does not exist.
    #[error("{what} inesistente: {id}")]
    NotFound {
        /// What kind of row (Italian: "istanza", "definizione"…).
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// The same definition id and version is already loaded with a different content.
    #[error(
        "la definizione '{id}' versione {version} è già caricata con un contenuto diverso: \
         incrementare version"
    )]
    DefinitionChanged {
        /// Definition id.
        id: String,
        /// Its version.
        version: u32,
    },
    /// The timer is no longer claimed by the caller: cancelled, replaced, done or reclaimed by
    /// another worker after the lease expired. Nothing was written.
    #[error("il timer {timer_id} non è più in carico a questo processo")]
    StaleTimer {
        /// The timer row id.
        timer_id: i64,
    },
    /// The outbox row is no longer claimed by the caller (the lease expired and another worker
    /// took it). Nothing was written.
    #[error("il messaggio in uscita {outbox_id} non è più in carico a questo processo")]
    StaleOutbox {
        /// The outbox row id.
        outbox_id: i64,
    },
    /// A row that must be unique already exists (an organisation's active application).
    #[error("{what} già presente: {id}")]
    AlreadyExists {
        /// What kind of row (Italian).
        what: &'static str,
        /// The existing row's id.
        id: String,
    },
    /// SQLite's write lock was not obtained within the busy timeout.
    #[error("il database è occupato: riprovare")]
    Busy,
    /// Any other database error.
    #[error("errore del database: {0}")]
    Database(String),
    /// A stored value does not parse (JSON, status…): the row was written by something else.
    #[error("dati non leggibili nel database: {0}")]
    Corrupt(String),
}

impl From<DbErr> for Error {
    fn from(err: DbErr) -> Self {
        let text = err.to_string();
        if text.contains("database is locked") || text.contains("database table is locked") {
            Error::Busy
        } else {
            Error::Database(text)
        }
    }
}

/// The store's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The database behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (a file, WAL mode).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

/// Handle to the database. Cheap to clone: clones share one connection pool.
#[derive(Debug, Clone)]
pub struct Store {
    db: DatabaseConnection,
    /// Where writes go. On a SQLite file, one connection of its own, kept open: the only one
    /// that writes, so its page cache stays valid from one transaction to the next (a write
    /// by another connection would make SQLite drop it). On PostgreSQL and in-memory SQLite,
    /// the same pool as `db`.
    write_db: DatabaseConnection,
    /// On SQLite, the turn of this process's writers: one write transaction at a time,
    /// queued in order here rather than on the database's lock, whose busy handler polls with
    /// sleeps of up to 100 ms. `None` on PostgreSQL (row locks, writers in parallel).
    writer: Option<Arc<tokio::sync::Mutex<()>>>,
}

/// The turn of a writer on SQLite (nothing on PostgreSQL): held until the transaction it was
/// taken for is committed or rolled back.
#[must_use = "the turn must be held until the transaction ends"]
pub(crate) struct WriteTurn(#[allow(dead_code)] Option<tokio::sync::OwnedMutexGuard<()>>);

/// A PostgreSQL URL whose host is a loopback address (`localhost`, `127.0.0.1`, `::1`) and
/// that does not say `sslmode` gets `sslmode=disable`: the driver's default (`prefer`) would
/// encrypt traffic that never leaves the machine, at a cost in CPU on every statement. Any
/// `sslmode` in the URL is kept as it is (`sslmode=require` for a server that wants TLS on
/// loopback too); other URLs are not touched.
pub fn loopback_without_tls(url: &str) -> std::borrow::Cow<'_, str> {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.into();
    };
    let loopback = match parsed.host() {
        // A `postgres:` URL's host is opaque to the parser: an address comes as text.
        Some(url::Host::Domain(name)) => {
            name.eq_ignore_ascii_case("localhost")
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if !matches!(parsed.scheme(), "postgres" | "postgresql")
        || !loopback
        || parsed.query_pairs().any(|(key, _)| key == "sslmode")
    {
        return url.into();
    }
    parsed.query_pairs_mut().append_pair("sslmode", "disable");
    String::from(parsed).into()
}

/// Connections to a SQLite file: `PROCEDO_SQLITE_CONNECTIONS`, else [`SQLITE_POOL_SIZE`].
fn sqlite_connections() -> u32 {
    std::env::var("PROCEDO_SQLITE_CONNECTIONS")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(SQLITE_POOL_SIZE)
}

impl Store {
    /// Connects and runs pending migrations. SQLite URLs (`sqlite://path/file.db`) get WAL,
    /// a busy timeout, foreign keys, `synchronous = NORMAL`, a page cache of 32 MB for the
    /// writer and 8 MB for each reader, statement
    /// journals in memory and a checkpoint every 10,000 pages; the file is created if missing.
    /// A PostgreSQL URL on a loopback address without `sslmode` connects without TLS (see
    /// [`loopback_without_tls`]).
    #[tracing::instrument(skip_all, fields(backend))]
    pub async fn connect(url: &str) -> Result<Store> {
        let url = loopback_without_tls(url);
        let url = url.as_ref();
        let mut options = ConnectOptions::new(url);
        options
            .sqlx_logging(false)
            .acquire_timeout(StdDuration::from_secs(30))
            // A connection used a moment ago is not pinged again before each statement (a
            // round trip, or a hop to SQLite's worker thread, per query otherwise); one idle
            // for longer is, so that a dropped one is replaced before it is used.
            .test_before_acquire_if_idle_for(PING_IF_IDLE_FOR);
        if url.starts_with("sqlite:") {
            tracing::Span::current().record("backend", "sqlite");
            // Every connection to an in-memory database is a different database.
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            if in_memory {
                // One connection, never recycled: closing it would lose the database.
                options
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None);
            } else {
                options.max_connections(sqlite_connections());
            }
            options.map_sqlx_sqlite_opts(|o| {
                o.create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .foreign_keys(true)
                    .synchronous(SqliteSynchronous::Normal)
                    // Statement journals stay in memory, and the WAL is checkpointed every
                    // ~40 MB rather than every 4 MB. A reader's page cache is small (8 MB):
                    // SQLite drops it whenever another connection wrote; the writer's, below,
                    // is larger.
                    .pragma("cache_size", "-8192")
                    .pragma("temp_store", "memory")
                    .pragma("wal_autocheckpoint", "10000")
            });
        } else {
            tracing::Span::current().record("backend", "postgres");
            options.max_connections(POSTGRES_POOL_SIZE);
        }
        let sqlite = url.starts_with("sqlite:");
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let writer_options = {
            let mut writer = options.clone();
            writer
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
            if sqlite {
                // The only connection that writes keeps its cache from one transaction to the
                // next: the pages the scheduler reads and writes again and again (32 MB).
                writer.map_sqlx_sqlite_opts(|o| o.pragma("cache_size", "-32768"));
            }
            writer
        };
        let db = Database::connect(options).await?;
        let write_db = if sqlite && !in_memory {
            Database::connect(writer_options).await?
        } else {
            db.clone()
        };
        let store = Store {
            db,
            write_db,
            writer: sqlite.then(|| Arc::new(tokio::sync::Mutex::new(()))),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending migrations (idempotent).
    #[tracing::instrument(skip_all)]
    pub async fn migrate(&self) -> Result<()> {
        use migration::MigratorTrait;
        migration::Migrator::up(&self.db, None).await?;
        self.seal_protocol().await?;
        Ok(())
    }

    /// The database behind this store.
    pub fn backend(&self) -> Backend {
        match self.db.get_database_backend() {
            DbBackend::Postgres => Backend::Postgres,
            _ => Backend::Sqlite,
        }
    }

    /// Copies what the SQLite write-ahead log holds into the database file, as far as no
    /// reader still needs it (`PRAGMA wal_checkpoint(PASSIVE)`: writers and readers go on
    /// meanwhile). The scheduler calls it every second from its own task, so that the writer
    /// that commits seldom has to checkpoint itself (each connection still does at 10,000
    /// pages, for processes without a scheduler). A no-op on PostgreSQL.
    pub async fn checkpoint(&self) -> Result<()> {
        if self.backend() == Backend::Sqlite {
            self.db
                .execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
                .await?;
        }
        Ok(())
    }

    /// Brings the planner's statistics of the tables a firing touches up to date: on
    /// PostgreSQL `ANALYZE` of instances, timers and history, what autovacuum does once a
    /// tenth of a table changed. After a bulk start (an import, a benchmark's setup) the
    /// statistics still describe the tables before it, and the plans of the first firings
    /// follow them. A no-op on SQLite, whose plans do not depend on statistics here.
    pub async fn analyze(&self) -> Result<()> {
        if self.backend() == Backend::Postgres {
            self.write_db
                .execute_unprepared("ANALYZE instances, timers, history")
                .await?;
        }
        Ok(())
    }

    /// Closes the pool (every clone of this store stops working).
    pub async fn close(self) -> Result<()> {
        // The same pool twice on PostgreSQL: closing a closed pool does nothing.
        self.write_db.close().await?;
        self.db.close().await?;
        Ok(())
    }

    /// Starts a write transaction: `BEGIN IMMEDIATE` on SQLite, so the write lock is taken
    /// before anything is read and two writers queue instead of deadlocking. On SQLite the
    /// writers of this process first take their turn (`write_turn`); the turn must be held
    /// until the transaction ends.
    async fn begin_write(&self) -> Result<(DatabaseTransaction, WriteTurn)> {
        let turn = self.write_turn().await?;
        let options = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        };
        Ok((self.write_db.begin_with_options(options).await?, turn))
    }

    /// The turn of a writer of this process on SQLite, in the order asked (a no-op on
    /// PostgreSQL): for a write transaction, or a single writing statement outside one.
    /// `Busy` if it does not come within the busy timeout, as SQLite's own lock would.
    pub(crate) async fn write_turn(&self) -> Result<WriteTurn> {
        match &self.writer {
            None => Ok(WriteTurn(None)),
            Some(writer) => tokio::time::timeout(SQLITE_BUSY_TIMEOUT, writer.clone().lock_owned())
                .await
                .map(|guard| WriteTurn(Some(guard)))
                .map_err(|_| Error::Busy),
        }
    }
}

/// Commits `txn` if `outcome` is Ok, rolls it back otherwise.
async fn settle<T>(txn: DatabaseTransaction, outcome: Result<T>) -> Result<T> {
    match outcome {
        Ok(value) => {
            txn.commit().await?;
            Ok(value)
        }
        Err(err) => {
            rollback(txn).await;
            Err(err)
        }
    }
}

/// Rolls back, logging a failure (the caller already has the error that matters; a
/// transaction that cannot roll back is discarded with its connection).
async fn rollback(txn: DatabaseTransaction) {
    if let Err(err) = txn.rollback().await {
        tracing::warn!(error = %err, "rollback non riuscito");
    }
}

/// True if the error is a unique-constraint violation (a concurrent insert won).
fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// An instant as both backends store it: UTC, microsecond precision (PostgreSQL's), so a
/// value reads back equal on SQLite and PostgreSQL; clamped to the years 1–9999, which both
/// backends hold and compare correctly (PostgreSQL refuses `DateTime::MIN_UTC`, and SQLite's
/// text ordering breaks past year 9999), so callers may pass open bounds such as `MIN_UTC`.
fn instant(at: DateTime<Utc>) -> DateTime<Utc> {
    let earliest = DateTime::from_timestamp(-62_135_596_800, 0).unwrap_or(DateTime::<Utc>::MIN_UTC);
    let latest =
        DateTime::from_timestamp(253_402_300_799, 999_999_000).unwrap_or(DateTime::<Utc>::MAX_UTC);
    at.clamp(earliest, latest).trunc_subsecs(6)
}

/// Every column of `E` as `alias.column AS alias_column`, for a join read back with
/// `FromQueryResult::from_query_result(row, "alias_")`.
pub(super) fn prefixed<E: sea_orm::EntityTrait>(alias: &str) -> String {
    use sea_orm::{IdenStatic as _, Iterable as _};
    E::Column::iter()
        .map(|c| {
            let name = c.as_str();
            format!("{alias}.\"{name}\" AS \"{alias}_{name}\"")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// JSON text of a value.
fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Corrupt(format!("serializzazione JSON: {e}")))
}

/// Parses JSON text read from the database; `what` names the column for the message.
fn from_json<T: DeserializeOwned>(text: &str, what: fmt::Arguments<'_>) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Corrupt(format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn postgres_on_loopback_connects_without_tls_unless_the_url_says_otherwise() {
        use super::loopback_without_tls as url;
        assert_eq!(
            url("postgres://postgres@127.0.0.1:5432/test"),
            "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
        );
        assert_eq!(
            url("postgresql://u:p@localhost/db?application_name=x"),
            "postgresql://u:p@localhost/db?application_name=x&sslmode=disable"
        );
        assert_eq!(
            url("postgres://[::1]/db"),
            "postgres://[::1]/db?sslmode=disable"
        );
        for kept in [
            "postgres://postgres@127.0.0.1:5432/test?sslmode=require",
            "postgres://db.example.org/procedo",
            "postgres://10.0.0.5/procedo",
            "sqlite://procedo.db?mode=rwc",
            "sqlite::memory:",
            "non è un url",
        ] {
            assert_eq!(url(kept), kept);
        }
    }

    use sea_orm::Statement;

    use super::*;

    #[test]
    fn row_ids_follow_their_creation_instant_and_stay_distinct() {
        let at = DateTime::parse_from_rfc3339("2026-11-29T10:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        let first = new_row_id(at);
        let same_instant = new_row_id(at);
        let later = new_row_id(at + chrono::Duration::milliseconds(1));
        assert!(
            first < same_instant && same_instant < later,
            "{first} {same_instant} {later}"
        );
        // A clock moved back does not move the ids back.
        let earlier = new_row_id(at - chrono::Duration::hours(1));
        assert!(later < earlier, "{later} {earlier}");
        let parsed = uuid::Uuid::parse_str(&first).unwrap_or_default();
        assert_eq!(parsed.get_version_num(), 7);
        assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
        // The instant, unless another id of this process was made later meanwhile.
        let millis = u64::from_str_radix(&first.replace('-', "")[..12], 16).unwrap_or_default();
        assert!(millis >= 1_795_946_400_000, "{first}");
    }

    /// The bundled SQLite is built with the query planner stability guarantee
    /// (`.cargo/config.toml`): without it every statement with a `LIMIT ?` is planned again
    /// each time it runs.
    #[tokio::test]
    async fn sqlite_plans_a_statement_once_whatever_is_bound_to_it() {
        let store = Store::connect("sqlite::memory:").await.expect("store");
        let rows = store
            .db
            .query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                "PRAGMA compile_options",
            ))
            .await
            .expect("compile_options");
        let options: Vec<String> = rows
            .iter()
            .filter_map(|row| row.try_get::<String>("", "compile_options").ok())
            .collect();
        assert!(options.iter().any(|o| o == "ENABLE_STAT4"), "{options:?}");
        assert!(options.iter().any(|o| o == "ENABLE_QPSG"), "{options:?}");
    }
}
