//! The local protocol register: every registration gets the next number of its year (the
//! civil year in Europe/Rome: numbering restarts on 1 January), written with at least seven
//! digits (`0000042`).
//!
//! Invariant: numbers of a year run 1..n without gaps or repeats. The number is taken and the
//! row written in one write transaction: on SQLite the write lock serializes registrations,
//! on PostgreSQL a transaction-scoped advisory lock per year does, and `UNIQUE(year, number)`
//! backs both. A registration asked by an outbox row is made once: `UNIQUE(outbox_id)`, and
//! the same row asking again gets the first registration back.

use std::fmt;

use chrono::{DateTime, Datelike, Utc};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement,
};

use super::entities::protocollo;
use super::{Backend, Error, Result, Store, instant, is_unique_violation, rollback, settle};
use crate::terms::ROME;

/// Registrations retried when a concurrent one took the same number (should not happen under
/// the lock; kept as a guard).
const NUMBER_ATTEMPTS: usize = 3;

/// A registration to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRegistration {
    /// `entrata`, `uscita` or `interno`.
    pub direction: String,
    /// The subject (oggetto), already rendered.
    pub subject: String,
    /// The instance it belongs to.
    pub instance_id: Option<String>,
    /// The outbox row asking for it (the idempotency key).
    pub outbox_id: Option<i64>,
    /// When it is registered; its Europe/Rome year picks the numbering.
    pub at: DateTime<Utc>,
}

/// A registration in the register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolEntry {
    /// Row id.
    pub id: i64,
    /// The year of the numbering.
    pub year: i32,
    /// The number within the year, from 1.
    pub number: i64,
    /// `entrata`, `uscita` or `interno`.
    pub direction: String,
    /// The subject.
    pub subject: String,
    /// The instance it belongs to.
    pub instance_id: Option<String>,
    /// The outbox row that asked for it.
    pub outbox_id: Option<i64>,
    /// When it was registered.
    pub registered_at: DateTime<Utc>,
}

impl ProtocolEntry {
    fn from_model(m: protocollo::Model) -> ProtocolEntry {
        ProtocolEntry {
            id: m.id,
            year: m.year,
            number: m.number,
            direction: m.direction,
            subject: m.subject,
            instance_id: m.instance_id,
            outbox_id: m.outbox_id,
            registered_at: m.registered_at,
        }
    }

    /// The number as written on documents: at least seven digits, e.g. `0000042`.
    pub fn padded_number(&self) -> String {
        format!("{:07}", self.number)
    }
}

impl fmt::Display for ProtocolEntry {
    /// `0000042/2026`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.padded_number(), self.year)
    }
}

/// What `register_protocol` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    /// A new number was taken.
    New(ProtocolEntry),
    /// The outbox row was already registered: its first registration.
    Existing(ProtocolEntry),
}

impl Registered {
    /// The registration, new or not.
    pub fn entry(&self) -> &ProtocolEntry {
        match self {
            Registered::New(entry) | Registered::Existing(entry) => entry,
        }
    }
}

/// The registration of an outbox row, if any.
async fn by_outbox<C: ConnectionTrait>(conn: &C, outbox_id: i64) -> Result<Option<ProtocolEntry>> {
    Ok(protocollo::Entity::find()
        .filter(protocollo::Column::OutboxId.eq(outbox_id))
        .one(conn)
        .await?
        .map(ProtocolEntry::from_model))
}

/// One attempt at registering inside `txn`; `None` if a concurrent registration took the
/// number first (the transaction must then be rolled back).
async fn register_in(
    txn: &DatabaseTransaction,
    backend: Backend,
    new: &NewRegistration,
    year: i32,
) -> Result<Option<Registered>> {
    if backend == Backend::Postgres {
        // Serializes the registrations of a year until the transaction ends.
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtext('procedo.protocollo'), $1)",
            [year.into()],
        ))
        .await?;
    }
    if let Some(outbox_id) = new.outbox_id
        && let Some(existing) = by_outbox(txn, outbox_id).await?
    {
        return Ok(Some(Registered::Existing(existing)));
    }
    let last: Option<i64> = protocollo::Entity::find()
        .select_only()
        .column_as(protocollo::Column::Number.max(), "last")
        .filter(protocollo::Column::Year.eq(year))
        .into_tuple()
        .one(txn)
        .await?
        .flatten();
    let row = protocollo::ActiveModel {
        id: NotSet,
        year: Set(year),
        number: Set(last.unwrap_or(0) + 1),
        direction: Set(new.direction.clone()),
        subject: Set(new.subject.clone()),
        instance_id: Set(new.instance_id.clone()),
        outbox_id: Set(new.outbox_id),
        registered_at: Set(instant(new.at)),
    };
    let inserted = match protocollo::Entity::insert(row).exec(txn).await {
        Ok(inserted) => inserted,
        Err(err) if is_unique_violation(&err) => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    let entry = protocollo::Entity::find_by_id(inserted.last_insert_id)
        .one(txn)
        .await?
        .map(ProtocolEntry::from_model)
        .ok_or_else(|| Error::NotFound {
            what: "registrazione di protocollo",
            id: inserted.last_insert_id.to_string(),
        })?;
    Ok(Some(Registered::New(entry)))
}

impl Store {
    /// Registers in the protocol register with the next number of the year of `new.at`
    /// (Europe/Rome). Idempotent by `outbox_id`: a row already registered gets its first
    /// registration back (`Registered::Existing`).
    #[tracing::instrument(skip_all, fields(outbox_id = new.outbox_id))]
    pub async fn register_protocol(&self, new: &NewRegistration) -> Result<Registered> {
        let year = new.at.with_timezone(&ROME).year();
        for attempt in 1..=NUMBER_ATTEMPTS {
            let txn = self.begin_write().await?;
            match register_in(&txn, self.backend(), new, year).await {
                Ok(None) => {
                    // A concurrent registration took the number or the outbox row: look again.
                    rollback(txn).await;
                    tracing::debug!(attempt, "numero di protocollo conteso: nuovo tentativo");
                }
                Ok(Some(registered)) => return settle(txn, Ok(registered)).await,
                Err(err) => return settle(txn, Err(err)).await,
            }
        }
        Err(Error::Database(format!(
            "numero di protocollo del {year} conteso per {NUMBER_ATTEMPTS} volte: riprovare"
        )))
    }

    /// The registrations made in `[from, until)`, by number.
    pub async fn protocol_entries_between(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<ProtocolEntry>> {
        Ok(protocollo::Entity::find()
            .filter(protocollo::Column::RegisteredAt.gte(instant(from)))
            .filter(protocollo::Column::RegisteredAt.lt(instant(until)))
            .order_by_asc(protocollo::Column::Year)
            .order_by_asc(protocollo::Column::Number)
            .all(&self.db)
            .await?
            .into_iter()
            .map(ProtocolEntry::from_model)
            .collect())
    }

    /// The registration an outbox row asked for, if made.
    pub async fn protocol_entry_of_outbox(&self, outbox_id: i64) -> Result<Option<ProtocolEntry>> {
        by_outbox(&self.db, outbox_id).await
    }
}
