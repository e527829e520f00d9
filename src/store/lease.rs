//! One leased claim for every kind of background work: timers, outbox rows, email deliveries
//! and runs of recurring jobs. Each table keeps `claimed_by` and `lease_until`; what differs
//! is only which rows are claimable and what else a claim writes (a status, an attempt), and
//! that is described once per table by [`Leased`].
//!
//! - **Claim**: one statement picks claimable rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL,
//!   the write lock on SQLite) and writes `claimed_by = worker, lease_until = now + lease`.
//! - **Renew** (the heartbeat): `lease_until` of the rows a worker still holds moves forward;
//!   the answer says which rows are still held, so a worker learns at once that a row was
//!   taken from it.
//! - **Release**: a row is given back (each table says how, e.g. pending again).
//! - **Reclaim after expiry**: a row whose lease ran out is claimable again, so the claims of
//!   a worker that died (SIGKILL, power cut) go to the others after one lease.
//!
//! The lease says only who holds a row; when a failed row may be tried again is the row's own
//! `next_attempt_at` / `retry_at`, so a short lease never turns a persistent failure into a
//! retry every few seconds.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType, Order, Query};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, FromQueryResult, TryGetable};

use super::entities::{cron_run, delivery, outbox, timer};
use super::{Error, Result, Store, instant};

/// `now + lease`, saturating.
pub(super) fn lease_end(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    instant(
        now.checked_add_signed(lease)
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
    )
}

/// One claimed unit of work: its table and its row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Claim {
    /// A row of `timers`.
    Timer(i64),
    /// A row of `outbox`.
    Outbox(i64),
    /// A row of `deliveries`.
    Delivery(i64),
    /// The run of a recurring job (`cron_runs`, keyed by job id).
    CronRun(String),
}

/// A table whose rows are claimed with a lease.
pub(super) trait Leased {
    /// The table.
    type Entity: EntityTrait<Column = Self::Column>;
    /// Its columns.
    type Column: ColumnTrait;
    /// The type of its key.
    type Key: TryGetable + Into<sea_orm::Value> + Clone + Send + Sync;
    /// The key column.
    const ID: Self::Column;
    /// Who holds the row.
    const CLAIMED_BY: Self::Column;
    /// Until when.
    const LEASE_UNTIL: Self::Column;
    /// What else a row must be to count as held by its `claimed_by` (e.g. status claimed).
    fn still_claimed() -> Condition;
    /// The claim of one key.
    fn claim(key: Self::Key) -> Claim;
}

/// The row with `key` is held by `worker`.
pub(super) fn held_by<L: Leased>(key: L::Key, worker: &str) -> Condition {
    Condition::all()
        .add(L::ID.eq(key))
        .add(L::CLAIMED_BY.eq(worker))
        .add(L::still_claimed())
}

/// Claims up to `limit` rows matching `claimable` for `worker` until `now + lease`, in
/// `order`, writing `extra` besides the lease (a status, an attempt), and returns them as
/// claimed. One statement.
pub(super) async fn claim<L, C>(
    conn: &C,
    claimable: Condition,
    order: &[L::Column],
    limit: u64,
    worker: &str,
    lease_until: DateTime<Utc>,
    extra: Vec<(L::Column, Expr)>,
) -> Result<Vec<<L::Entity as EntityTrait>::Model>>
where
    L: Leased,
    C: ConnectionTrait,
{
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut candidates = Query::select();
    candidates
        .column(L::ID)
        .from(L::Entity::default())
        .cond_where(claimable);
    for column in order {
        candidates.order_by(*column, Order::Asc);
    }
    candidates
        .limit(limit)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    let mut update = Query::update();
    update
        .table(L::Entity::default())
        .value(L::CLAIMED_BY, worker)
        .value(L::LEASE_UNTIL, instant(lease_until));
    for (column, value) in extra {
        update.value(column, value);
    }
    update
        .and_where(Expr::col(L::ID).in_subquery(candidates))
        .returning_all();
    conn.query_all(&update)
        .await?
        .iter()
        .map(|row| {
            <L::Entity as EntityTrait>::Model::from_query_result(row, "").map_err(Error::from)
        })
        .collect()
}

/// Moves `lease_until` of the rows among `keys` that `worker` still holds to `until`; returns
/// their keys. One statement per 500 keys.
async fn renew<L, C>(
    conn: &C,
    keys: &[L::Key],
    worker: &str,
    until: DateTime<Utc>,
) -> Result<Vec<Claim>>
where
    L: Leased,
    C: ConnectionTrait,
{
    let mut held = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(500) {
        let mut update = Query::update();
        update
            .table(L::Entity::default())
            .value(L::LEASE_UNTIL, instant(until))
            .cond_where(
                Condition::all()
                    .add(L::ID.is_in(chunk.iter().cloned()))
                    .add(L::CLAIMED_BY.eq(worker))
                    .add(L::still_claimed()),
            )
            .returning_col(L::ID);
        for row in conn.query_all(&update).await? {
            let key: L::Key = row.try_get_by_index(0).map_err(Error::from)?;
            held.push(L::claim(key));
        }
    }
    Ok(held)
}

/// Timers: held while `claimed`.
pub(super) struct Timers;

impl Leased for Timers {
    type Entity = timer::Entity;
    type Column = timer::Column;
    type Key = i64;
    const ID: timer::Column = timer::Column::Id;
    const CLAIMED_BY: timer::Column = timer::Column::ClaimedBy;
    const LEASE_UNTIL: timer::Column = timer::Column::LeaseUntil;
    fn still_claimed() -> Condition {
        Condition::all().add(timer::Column::Status.eq(super::TimerStatus::Claimed.as_str()))
    }
    fn claim(key: i64) -> Claim {
        Claim::Timer(key)
    }
}

/// Outbox rows: held while `claimed`.
pub(super) struct OutboxRows;

impl Leased for OutboxRows {
    type Entity = outbox::Entity;
    type Column = outbox::Column;
    type Key = i64;
    const ID: outbox::Column = outbox::Column::Id;
    const CLAIMED_BY: outbox::Column = outbox::Column::ClaimedBy;
    const LEASE_UNTIL: outbox::Column = outbox::Column::LeaseUntil;
    fn still_claimed() -> Condition {
        Condition::all().add(outbox::Column::Status.eq(super::OutboxStatus::Claimed.as_str()))
    }
    fn claim(key: i64) -> Claim {
        Claim::Outbox(key)
    }
}

/// Deliveries: held while `pending` with a lease (the status stays `pending` while claimed).
pub(super) struct Deliveries;

impl Leased for Deliveries {
    type Entity = delivery::Entity;
    type Column = delivery::Column;
    type Key = i64;
    const ID: delivery::Column = delivery::Column::Id;
    const CLAIMED_BY: delivery::Column = delivery::Column::ClaimedBy;
    const LEASE_UNTIL: delivery::Column = delivery::Column::LeaseUntil;
    fn still_claimed() -> Condition {
        Condition::all()
            .add(delivery::Column::Status.eq(super::DeliveryStatus::Pending.as_str()))
            .add(delivery::Column::LeaseUntil.is_not_null())
    }
    fn claim(key: i64) -> Claim {
        Claim::Delivery(key)
    }
}

/// Runs of recurring jobs: held while a lease is set.
pub(super) struct CronRuns;

impl Leased for CronRuns {
    type Entity = cron_run::Entity;
    type Column = cron_run::Column;
    type Key = String;
    const ID: cron_run::Column = cron_run::Column::Job;
    const CLAIMED_BY: cron_run::Column = cron_run::Column::ClaimedBy;
    const LEASE_UNTIL: cron_run::Column = cron_run::Column::LeaseUntil;
    fn still_claimed() -> Condition {
        Condition::all().add(cron_run::Column::LeaseUntil.is_not_null())
    }
    fn claim(key: String) -> Claim {
        Claim::CronRun(key)
    }
}

/// A lease that is free: never set, or run out at `now`.
pub(super) fn lease_free<C: ColumnTrait>(lease_until: C, now: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(lease_until.is_null())
        .add(lease_until.lt(instant(now)))
}

/// A column's current value plus one (a claim that counts as an attempt).
pub(super) fn plus_one<C: ColumnTrait>(column: C) -> Expr {
    Expr::col(column).add(1)
}

impl Store {
    /// The heartbeat: moves the lease of every claim in `claims` that `worker` still holds to
    /// `until`, and returns those claims; the others were finished, given back, or taken by
    /// another worker after the lease ran out, and must not be worked on any more.
    #[tracing::instrument(skip_all, fields(worker, count = claims.len()))]
    pub async fn renew_claims(
        &self,
        claims: &[Claim],
        worker: &str,
        until: DateTime<Utc>,
    ) -> Result<Vec<Claim>> {
        let (mut timers, mut rows, mut deliveries, mut jobs) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for claim in claims {
            match claim {
                Claim::Timer(id) => timers.push(*id),
                Claim::Outbox(id) => rows.push(*id),
                Claim::Delivery(id) => deliveries.push(*id),
                Claim::CronRun(job) => jobs.push(job.clone()),
            }
        }
        let mut held = Vec::with_capacity(claims.len());
        if !timers.is_empty() {
            held.extend(renew::<Timers, _>(&self.db, &timers, worker, until).await?);
        }
        if !rows.is_empty() {
            held.extend(renew::<OutboxRows, _>(&self.db, &rows, worker, until).await?);
        }
        if !deliveries.is_empty() {
            held.extend(renew::<Deliveries, _>(&self.db, &deliveries, worker, until).await?);
        }
        if !jobs.is_empty() {
            held.extend(renew::<CronRuns, _>(&self.db, &jobs, worker, until).await?);
        }
        Ok(held)
    }
}
