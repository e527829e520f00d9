//! The outbox: effects a step committed (notifications, protocollo, sub-procedures) waiting
//! to be carried out. Rows are written in the step's transaction and claimed afterwards with a
//! lease, like timers; delivery is at least once, so handlers are idempotent.
//!
//! The row transitions (`done`, `retry`, `failed`) are functions over any connection, so that
//! one can also complete a row inside another transaction (e.g. a `StartInstance` row done in
//! the transaction that starts the child): add a `Store` method that passes the transaction.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
};

use super::entities::outbox;
use super::{Error, Result, Store, from_json, instant, lease, to_json};
use crate::engine::Effect;

/// Where an outbox row is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboxStatus {
    /// Waiting for `next_attempt_at`.
    Pending,
    /// Taken by a worker until `lease_until`.
    Claimed,
    /// Carried out.
    Done,
    /// Given up (see `last_error`).
    Failed,
}

impl OutboxStatus {
    /// The value in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Claimed => "claimed",
            OutboxStatus::Done => "done",
            OutboxStatus::Failed => "failed",
        }
    }

    /// A status by its column value.
    pub fn named(text: &str) -> Option<OutboxStatus> {
        match text {
            "pending" => Some(OutboxStatus::Pending),
            "claimed" => Some(OutboxStatus::Claimed),
            "done" => Some(OutboxStatus::Done),
            "failed" => Some(OutboxStatus::Failed),
            _ => None,
        }
    }

    fn parse(text: &str, id: i64) -> Result<OutboxStatus> {
        OutboxStatus::named(text)
            .ok_or_else(|| Error::Corrupt(format!("outbox.status '{text}' della riga {id}")))
    }
}

impl fmt::Display for OutboxStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored outbox row.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    /// Row id.
    pub id: i64,
    /// The instance whose step produced it.
    pub instance_id: Option<String>,
    /// `Effect::kind()`.
    pub kind: String,
    /// The effect to carry out.
    pub payload: Effect,
    /// Where it is in its life.
    pub status: OutboxStatus,
    /// Claims so far (a claim counts as an attempt, so a crash mid-delivery counts too).
    pub attempts: u32,
    /// Not to be claimed before.
    pub next_attempt_at: DateTime<Utc>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// The worker holding (or that last held) the claim.
    pub claimed_by: Option<String>,
    /// Until when the claim holds.
    pub lease_until: Option<DateTime<Utc>>,
    /// When the step committed.
    pub created_at: DateTime<Utc>,
    /// When it was carried out.
    pub done_at: Option<DateTime<Utc>>,
    /// The history seq of the step that queued it.
    pub step_seq: Option<i64>,
}

impl OutboxRow {
    pub(super) fn from_model(m: outbox::Model) -> Result<OutboxRow> {
        let payload = from_json(
            &m.payload,
            format_args!("outbox.payload della riga {}", m.id),
        )?;
        Ok(OutboxRow {
            status: OutboxStatus::parse(&m.status, m.id)?,
            attempts: u32::try_from(m.attempts).unwrap_or(0),
            id: m.id,
            instance_id: m.instance_id,
            kind: m.kind,
            payload,
            next_attempt_at: m.next_attempt_at,
            last_error: m.last_error,
            claimed_by: m.claimed_by,
            lease_until: m.lease_until,
            created_at: m.created_at,
            done_at: m.done_at,
            step_seq: m.step_seq,
        })
    }
}

/// Queues an effect of the step `(instance, seq)` under its own kind (`Effect::kind()`), due at
/// `at`.
pub(super) async fn enqueue<C: ConnectionTrait>(
    conn: &C,
    step: Option<(&str, i64)>,
    effect: &Effect,
    at: DateTime<Utc>,
) -> Result<()> {
    let (instance_id, step_seq) = match step {
        Some((instance_id, seq)) => (Some(instance_id), Some(seq)),
        None => (None, None),
    };
    insert(conn, instance_id, step_seq, effect.kind(), effect, at).await
}

/// Queues an effect under an explicit kind (a cron job's `digest`…), due at `at`.
pub(super) async fn enqueue_as<C: ConnectionTrait>(
    conn: &C,
    instance_id: Option<&str>,
    kind: &str,
    effect: &Effect,
    at: DateTime<Utc>,
) -> Result<()> {
    insert(conn, instance_id, None, kind, effect, at).await
}

async fn insert<C: ConnectionTrait>(
    conn: &C,
    instance_id: Option<&str>,
    step_seq: Option<i64>,
    kind: &str,
    effect: &Effect,
    at: DateTime<Utc>,
) -> Result<()> {
    outbox::Entity::insert(row(instance_id, step_seq, kind, effect, at)?)
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// The pending row of an effect of step `step_seq` (under its own kind), due at `at`.
pub(super) fn step_row(
    instance_id: &str,
    step_seq: i64,
    effect: &Effect,
    at: DateTime<Utc>,
) -> Result<outbox::ActiveModel> {
    row(Some(instance_id), Some(step_seq), effect.kind(), effect, at)
}

fn row(
    instance_id: Option<&str>,
    step_seq: Option<i64>,
    kind: &str,
    effect: &Effect,
    at: DateTime<Utc>,
) -> Result<outbox::ActiveModel> {
    let at = instant(at);
    Ok(outbox::ActiveModel {
        id: NotSet,
        instance_id: Set(instance_id.map(str::to_string)),
        kind: Set(kind.to_string()),
        payload: Set(to_json(effect)?),
        status: Set(OutboxStatus::Pending.as_str().to_string()),
        attempts: Set(0),
        next_attempt_at: Set(at),
        last_error: Set(None),
        claimed_by: Set(None),
        lease_until: Set(None),
        created_at: Set(at),
        done_at: Set(None),
        step_seq: Set(step_seq),
    })
}

/// Claims up to `limit` due rows (of the given kinds, or of any kind) for `worker` until
/// `now + lease`: pending ones whose `next_attempt_at` has come and claimed ones whose lease
/// ran out. One statement: on PostgreSQL concurrent claimers skip each other's rows (`SKIP
/// LOCKED`), on SQLite it holds the write lock. Each claim counts as an attempt. Ordered by
/// due instant, then id.
pub(super) async fn claim<C: ConnectionTrait>(
    conn: &C,
    kinds: Option<&[&str]>,
    now: DateTime<Utc>,
    limit: u64,
    worker: &str,
    lease: Duration,
) -> Result<Vec<OutboxRow>> {
    if kinds.is_some_and(<[&str]>::is_empty) {
        return Ok(Vec::new());
    }
    let mut due = Condition::all().add(
        Condition::any()
            .add(
                Condition::all()
                    .add(outbox::Column::Status.eq(OutboxStatus::Pending.as_str()))
                    .add(outbox::Column::NextAttemptAt.lte(instant(now))),
            )
            .add(
                Condition::all()
                    .add(outbox::Column::Status.eq(OutboxStatus::Claimed.as_str()))
                    .add(outbox::Column::LeaseUntil.lt(instant(now))),
            ),
    );
    if let Some(kinds) = kinds {
        due = due.add(outbox::Column::Kind.is_in(kinds.iter().copied()));
    }
    let models = lease::claim::<lease::OutboxRows, _>(
        conn,
        due,
        &[outbox::Column::NextAttemptAt, outbox::Column::Id],
        limit,
        worker,
        lease::lease_end(now, lease),
        vec![
            (
                outbox::Column::Status,
                Expr::value(OutboxStatus::Claimed.as_str()),
            ),
            (
                outbox::Column::Attempts,
                lease::plus_one(outbox::Column::Attempts),
            ),
        ],
    )
    .await?;
    let mut rows = models
        .into_iter()
        .map(OutboxRow::from_model)
        .collect::<Result<Vec<_>>>()?;
    rows.sort_by_key(|r| (r.next_attempt_at, r.id));
    tracing::debug!(
        claimed = rows.len(),
        worker,
        "messaggi in uscita presi in carico"
    );
    Ok(rows)
}

/// The row is claimed by `worker`.
fn held_by(id: i64, worker: &str) -> Condition {
    lease::held_by::<lease::OutboxRows>(id, worker)
}

/// Marks a row claimed by `worker` done at `at`.
pub(super) async fn done<C: ConnectionTrait>(
    conn: &C,
    id: i64,
    worker: &str,
    at: DateTime<Utc>,
) -> Result<()> {
    let res = outbox::Entity::update_many()
        .col_expr(
            outbox::Column::Status,
            Expr::value(OutboxStatus::Done.as_str()),
        )
        .col_expr(outbox::Column::DoneAt, Expr::value(instant(at)))
        .col_expr(
            outbox::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(held_by(id, worker))
        .exec(conn)
        .await?;
    stale_unless_one(res.rows_affected, id)
}

/// Puts a row claimed by `worker` back to pending, not before `next_attempt_at`.
pub(super) async fn retry<C: ConnectionTrait>(
    conn: &C,
    id: i64,
    worker: &str,
    next_attempt_at: DateTime<Utc>,
    error: &str,
) -> Result<()> {
    let res = outbox::Entity::update_many()
        .col_expr(
            outbox::Column::Status,
            Expr::value(OutboxStatus::Pending.as_str()),
        )
        .col_expr(
            outbox::Column::NextAttemptAt,
            Expr::value(instant(next_attempt_at)),
        )
        .col_expr(outbox::Column::LastError, Expr::value(error))
        .col_expr(
            outbox::Column::ClaimedBy,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            outbox::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(held_by(id, worker))
        .exec(conn)
        .await?;
    stale_unless_one(res.rows_affected, id)
}

/// Gives up on a row claimed by `worker`.
pub(super) async fn failed<C: ConnectionTrait>(
    conn: &C,
    id: i64,
    worker: &str,
    error: &str,
) -> Result<()> {
    let res = outbox::Entity::update_many()
        .col_expr(
            outbox::Column::Status,
            Expr::value(OutboxStatus::Failed.as_str()),
        )
        .col_expr(outbox::Column::LastError, Expr::value(error))
        .col_expr(
            outbox::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(held_by(id, worker))
        .exec(conn)
        .await?;
    stale_unless_one(res.rows_affected, id)
}

fn stale_unless_one(rows_affected: u64, id: i64) -> Result<()> {
    if rows_affected == 0 {
        Err(Error::StaleOutbox { outbox_id: id })
    } else {
        Ok(())
    }
}

impl Store {
    /// Claims up to `limit` due rows of any kind for `worker` until `now + lease` (pending
    /// ones whose time has come, claimed ones whose lease ran out); each claim counts as an
    /// attempt. Same atomicity as `claim_due_timers`. Ordered by due instant, then id.
    #[tracing::instrument(skip_all, fields(worker, limit))]
    pub async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        limit: u64,
        worker: &str,
        lease: Duration,
    ) -> Result<Vec<OutboxRow>> {
        let _turn = self.write_turn().await?;
        claim(&self.write_db, None, now, limit, worker, lease).await
    }

    /// The row was carried out. `StaleOutbox` if `worker` no longer holds it.
    pub async fn outbox_done(&self, id: i64, worker: &str, at: DateTime<Utc>) -> Result<()> {
        done(&self.write_db, id, worker, at).await
    }

    /// The attempt failed; try again not before `next_attempt_at`. `StaleOutbox` if `worker`
    /// no longer holds it.
    pub async fn outbox_retry(
        &self,
        id: i64,
        worker: &str,
        next_attempt_at: DateTime<Utc>,
        error: &str,
    ) -> Result<()> {
        retry(&self.write_db, id, worker, next_attempt_at, error).await
    }

    /// Gives an untouched claimed row back (a shutdown before its dispatch): pending again at
    /// once, and the attempt its claim counted is taken back. `StaleOutbox` if `worker` no
    /// longer holds it.
    pub async fn outbox_release(&self, id: i64, worker: &str) -> Result<()> {
        let res = outbox::Entity::update_many()
            .col_expr(
                outbox::Column::Status,
                Expr::value(OutboxStatus::Pending.as_str()),
            )
            .col_expr(
                outbox::Column::Attempts,
                Expr::col(outbox::Column::Attempts).sub(1),
            )
            .col_expr(
                outbox::Column::ClaimedBy,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                outbox::Column::LeaseUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(held_by(id, worker))
            .filter(outbox::Column::Attempts.gt(0))
            .exec(&self.write_db)
            .await?;
        stale_unless_one(res.rows_affected, id)
    }

    /// How many rows have `status`, counted by the database.
    pub async fn count_outbox(&self, status: OutboxStatus) -> Result<u64> {
        Ok(outbox::Entity::find()
            .filter(outbox::Column::Status.eq(status.as_str()))
            .count(&self.db)
            .await?)
    }

    /// Give up on the row. `StaleOutbox` if `worker` no longer holds it.
    pub async fn outbox_failed(&self, id: i64, worker: &str, error: &str) -> Result<()> {
        failed(&self.write_db, id, worker, error).await
    }

    /// The rows of `kind` a step queued (instance and history seq), by id.
    pub async fn step_outbox_rows(
        &self,
        instance_id: &str,
        step_seq: i64,
        kind: &str,
    ) -> Result<Vec<OutboxRow>> {
        outbox::Entity::find()
            .filter(outbox::Column::InstanceId.eq(instance_id))
            .filter(outbox::Column::StepSeq.eq(step_seq))
            .filter(outbox::Column::Kind.eq(kind))
            .order_by_asc(outbox::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(OutboxRow::from_model)
            .collect()
    }

    /// Outbox rows, optionally with one status, by id.
    pub async fn outbox_rows(&self, status: Option<OutboxStatus>) -> Result<Vec<OutboxRow>> {
        let mut query = outbox::Entity::find().order_by_asc(outbox::Column::Id);
        if let Some(status) = status {
            query = query.filter(outbox::Column::Status.eq(status.as_str()));
        }
        query
            .all(&self.db)
            .await?
            .into_iter()
            .map(OutboxRow::from_model)
            .collect()
    }
}
