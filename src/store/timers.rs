//! Timers: the instants instances wait for. Steps arm and disarm them (in the step's
//! transaction); the scheduler claims due ones with a lease, so that replicas never fire the
//! same row twice and a dead replica's claims become claimable again when the lease runs out.
//!
//! Invariant: at most one armed (pending or claimed) row per (instance, key). Arming a key
//! disarms the previous row first, and a partial unique index enforces it in the database.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QueryTrait, Statement,
};

use super::entities::timer;
use super::{Error, Result, Store, from_json, instant, lease, outbox, settle, to_json};
use crate::engine::{Effect, NotificationPlan, TimerAction, TimerPlan};

/// Outcome of a timer that fired a transition.
pub(super) const FIRED: &str = "fired";
/// Outcome of a timer disarmed because its key was armed again.
pub(super) const REPLACED: &str = "replaced";
/// Outcome of a timer disarmed by a `CancelTimer` effect.
pub(super) const CANCELLED: &str = "cancelled";
/// Outcome of a reminder whose notification was queued.
const REMINDED: &str = "reminded";

/// Where a timer row is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerStatus {
    /// Armed, waiting for its instant.
    Pending,
    /// Taken by a scheduler worker until `lease_until`.
    Claimed,
    /// Fired or handled.
    Done,
    /// Disarmed by a step (cancelled or replaced).
    Cancelled,
}

impl TimerStatus {
    /// The value in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            TimerStatus::Pending => "pending",
            TimerStatus::Claimed => "claimed",
            TimerStatus::Done => "done",
            TimerStatus::Cancelled => "cancelled",
        }
    }

    fn parse(text: &str, id: i64) -> Result<TimerStatus> {
        match text {
            "pending" => Ok(TimerStatus::Pending),
            "claimed" => Ok(TimerStatus::Claimed),
            "done" => Ok(TimerStatus::Done),
            "cancelled" => Ok(TimerStatus::Cancelled),
            other => Err(Error::Corrupt(format!(
                "timers.status '{other}' del timer {id}"
            ))),
        }
    }
}

impl fmt::Display for TimerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored timer.
#[derive(Debug, Clone, PartialEq)]
pub struct TimerRow {
    /// Row id: what `finish_timer`, `release_timer` and `fired_timer` name.
    pub id: i64,
    /// The instance.
    pub instance_id: String,
    /// Stable key within the instance (`TimerPlan::key`).
    pub key: String,
    /// The timer id in the definition.
    pub timer: String,
    /// When it fires.
    pub fire_at: DateTime<Utc>,
    /// What it does.
    pub action: TimerAction,
    /// Why it fires then, Italian.
    pub trace: Vec<String>,
    /// Where it is in its life.
    pub status: TimerStatus,
    /// The worker holding the claim (kept after done, for audit).
    pub claimed_by: Option<String>,
    /// Until when the claim holds.
    pub lease_until: Option<DateTime<Utc>>,
    /// When it fired or was handled.
    pub fired_at: Option<DateTime<Utc>>,
    /// How it ended: `fired`, `replaced`, `cancelled` or what `finish_timer` said.
    pub outcome: Option<String>,
    /// When the step that armed it committed.
    pub created_at: DateTime<Utc>,
    /// Failed firings so far.
    pub attempts: u32,
    /// After a failed firing, not claimed again before this instant (the retry backoff,
    /// apart from the lease).
    pub retry_at: Option<DateTime<Utc>>,
    /// Why the last firing failed.
    pub last_error: Option<String>,
}

impl TimerRow {
    pub(super) fn from_model(m: timer::Model) -> Result<TimerRow> {
        let action = from_json(&m.action, format_args!("timers.action del timer {}", m.id))?;
        let trace = from_json(&m.trace, format_args!("timers.trace del timer {}", m.id))?;
        Ok(TimerRow {
            status: TimerStatus::parse(&m.status, m.id)?,
            id: m.id,
            instance_id: m.instance_id,
            key: m.key,
            timer: m.timer,
            fire_at: m.fire_at,
            action,
            trace,
            claimed_by: m.claimed_by,
            lease_until: m.lease_until,
            fired_at: m.fired_at,
            outcome: m.outcome,
            created_at: m.created_at,
            attempts: u32::try_from(m.attempts).unwrap_or(0),
            retry_at: m.retry_at,
            last_error: m.last_error,
        })
    }
}

/// Claimed timers whose lease ran out at `now` (a dead replica's).
fn lapsed(now: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(timer::Column::Status.eq(TimerStatus::Claimed.as_str()))
        .add(timer::Column::LeaseUntil.lt(instant(now)))
}

/// Pending timers due at `now` whose retry delay, after a failed firing, has passed.
pub(super) fn due_pending(now: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(timer::Column::Status.eq(TimerStatus::Pending.as_str()))
        .add(timer::Column::FireAt.lte(instant(now)))
        .add(
            Condition::any()
                .add(timer::Column::RetryAt.is_null())
                .add(timer::Column::RetryAt.lte(instant(now))),
        )
}

/// Condition of an armed row.
fn armed() -> Condition {
    Condition::all().add(
        timer::Column::Status.is_in([TimerStatus::Pending.as_str(), TimerStatus::Claimed.as_str()]),
    )
}

/// The pending row of a planned timer.
pub(super) fn armed_row(
    instance_id: &str,
    plan: &TimerPlan,
    at: DateTime<Utc>,
) -> Result<timer::ActiveModel> {
    Ok(timer::ActiveModel {
        id: NotSet,
        instance_id: Set(instance_id.to_string()),
        key: Set(plan.key.clone()),
        timer: Set(plan.timer.clone()),
        fire_at: Set(instant(plan.fire_at)),
        action: Set(to_json(&plan.action)?),
        trace: Set(to_json(&plan.trace)?),
        status: Set(TimerStatus::Pending.as_str().to_string()),
        claimed_by: Set(None),
        lease_until: Set(None),
        fired_at: Set(None),
        outcome: Set(None),
        created_at: Set(instant(at)),
        attempts: Set(0),
        retry_at: Set(None),
        last_error: Set(None),
    })
}

/// A row not yet written, disarmed as `disarm` would once written.
pub(super) fn disarm_row(row: &mut timer::ActiveModel, outcome: &str) {
    row.status = Set(TimerStatus::Cancelled.as_str().to_string());
    row.outcome = Set(Some(outcome.to_string()));
    row.lease_until = Set(None);
}

/// The update that cancels the armed (pending or claimed) rows of `keys` of an instance. A
/// claimed row is cancelled too: the worker holding it then gets `StaleTimer` instead of
/// firing a stale plan.
pub(super) fn disarm_statement(
    backend: DbBackend,
    instance_id: &str,
    keys: &[&str],
    outcome: &str,
) -> Statement {
    cancel_armed(backend, keys_of(instance_id, keys.iter().copied()), outcome)
}

/// The update that cancels the armed rows of the `(instance, key)` pairs, as
/// `disarm_statement` does for each instance, in one statement: the keys grouped by instance,
/// each group found through the index on armed keys. `None` for no pair.
pub(super) fn disarm_pairs_statement(
    backend: DbBackend,
    pairs: &[(&str, &str)],
    outcome: &str,
) -> Option<Statement> {
    let mut by_instance: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for &(instance_id, key) in pairs {
        by_instance.entry(instance_id).or_default().push(key);
    }
    if by_instance.is_empty() {
        return None;
    }
    let which = by_instance
        .into_iter()
        .fold(Condition::any(), |which, (instance_id, keys)| {
            which.add(keys_of(instance_id, keys))
        });
    Some(cancel_armed(backend, which, outcome))
}

/// The rows of `keys` of an instance.
fn keys_of<'k>(instance_id: &str, keys: impl IntoIterator<Item = &'k str>) -> Condition {
    Condition::all()
        .add(timer::Column::InstanceId.eq(instance_id))
        .add(timer::Column::Key.is_in(keys))
}

/// Cancels the armed rows among `which`, with `outcome`.
fn cancel_armed(backend: DbBackend, which: Condition, outcome: &str) -> Statement {
    timer::Entity::update_many()
        .col_expr(
            timer::Column::Status,
            Expr::value(TimerStatus::Cancelled.as_str()),
        )
        .col_expr(timer::Column::Outcome, Expr::value(outcome))
        .col_expr(
            timer::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(which)
        .filter(armed())
        .build(backend)
}

/// Marks a claimed timer of the instance done because its step committed; `StaleTimer` if it
/// is no longer claimed.
pub(super) async fn mark_fired<C: ConnectionTrait>(
    conn: &C,
    timer_id: i64,
    instance_id: &str,
    at: DateTime<Utc>,
) -> Result<()> {
    let res = timer::Entity::update_many()
        .col_expr(
            timer::Column::Status,
            Expr::value(TimerStatus::Done.as_str()),
        )
        .col_expr(timer::Column::FiredAt, Expr::value(instant(at)))
        .col_expr(timer::Column::Outcome, Expr::value(FIRED))
        .col_expr(
            timer::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(timer::Column::Id.eq(timer_id))
        .filter(timer::Column::InstanceId.eq(instance_id))
        .filter(timer::Column::Status.eq(TimerStatus::Claimed.as_str()))
        .exec(conn)
        .await?;
    if res.rows_affected == 0 {
        return Err(Error::StaleTimer { timer_id });
    }
    Ok(())
}

impl Store {
    /// Armed (pending or claimed) timers firing in `[from, to)`, optionally of one instance,
    /// by instant.
    pub async fn timers_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        instance_id: Option<&str>,
    ) -> Result<Vec<TimerRow>> {
        let mut query = timer::Entity::find()
            .filter(armed())
            .filter(timer::Column::FireAt.gte(instant(from)))
            .filter(timer::Column::FireAt.lt(instant(to)))
            .order_by_asc(timer::Column::FireAt)
            .order_by_asc(timer::Column::Id);
        if let Some(instance_id) = instance_id {
            query = query.filter(timer::Column::InstanceId.eq(instance_id));
        }
        query
            .all(&self.db)
            .await?
            .into_iter()
            .map(TimerRow::from_model)
            .collect()
    }

    /// Every timer row of an instance, armed or not, in the order they were armed.
    pub async fn timers(&self, instance_id: &str) -> Result<Vec<TimerRow>> {
        timer::Entity::find()
            .filter(timer::Column::InstanceId.eq(instance_id))
            .order_by_asc(timer::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(TimerRow::from_model)
            .collect()
    }

    /// Claims up to `limit` due timers for `worker` until `now + lease`: pending ones whose
    /// instant has come (and whose retry delay, after a failed firing, has passed), and
    /// claimed ones whose lease ran out (a dead replica's). Two atomic statements, each a
    /// range of the `(status, fire_at)` index; on PostgreSQL concurrent claimers skip each
    /// other's rows (`SKIP LOCKED`), on SQLite each statement holds the write lock. Ordered
    /// by instant.
    #[tracing::instrument(skip_all, fields(worker, limit))]
    pub async fn claim_due_timers(
        &self,
        now: DateTime<Utc>,
        limit: u64,
        worker: &str,
        lease: Duration,
    ) -> Result<Vec<TimerRow>> {
        let _turn = self.write_turn().await?;
        // Two claims, each a range of the (status, fire_at) index: the leases that ran out
        // (rare: a dead replica's), then the pending timers in the order they fall due. One
        // condition with both would make the database scan and sort every armed row.
        let mut rows = self
            .claim_timers_where(lapsed(now), now, limit, worker, lease)
            .await?;
        let left = limit.saturating_sub(rows.len() as u64);
        if left > 0 {
            rows.extend(
                self.claim_timers_where(due_pending(now), now, left, worker, lease)
                    .await?,
            );
        }
        rows.sort_by_key(|t| (t.fire_at, t.id));
        tracing::debug!(claimed = rows.len(), "timer presi in carico");
        Ok(rows)
    }

    /// One claim of up to `limit` timers matching `claimable`, ordered by instant; the
    /// caller holds the write turn.
    async fn claim_timers_where(
        &self,
        claimable: Condition,
        now: DateTime<Utc>,
        limit: u64,
        worker: &str,
        lease: Duration,
    ) -> Result<Vec<TimerRow>> {
        let mut rows = lease::claim::<lease::Timers, _>(
            &self.write_db,
            claimable,
            &[timer::Column::FireAt, timer::Column::Id],
            limit,
            worker,
            lease::lease_end(now, lease),
            vec![(
                timer::Column::Status,
                Expr::value(TimerStatus::Claimed.as_str()),
            )],
        )
        .await?
        .into_iter()
        .map(TimerRow::from_model)
        .collect::<Result<Vec<_>>>()?;
        rows.sort_by_key(|t| (t.fire_at, t.id));
        Ok(rows)
    }

    /// Claims up to `limit` timers whose lease ran out (a dead replica's claims) for `worker`
    /// until `now + lease`, ordered by instant. The due pending timers are not taken here:
    /// the scheduler fires them in place (`fire_due_in_place`).
    pub async fn claim_lapsed_timers(
        &self,
        now: DateTime<Utc>,
        limit: u64,
        worker: &str,
        lease: Duration,
    ) -> Result<Vec<TimerRow>> {
        let _turn = self.write_turn().await?;
        self.claim_timers_where(lapsed(now), now, limit, worker, lease)
            .await
    }

    /// The firing of a timer claimed by `worker` failed (nothing of it was written): it is
    /// pending again, claimable from `retry_at` on, with the attempt and the error recorded.
    /// Its `fire_at` does not move. `StaleTimer` if `worker` no longer holds it.
    pub async fn retry_timer(
        &self,
        id: i64,
        worker: &str,
        retry_at: DateTime<Utc>,
        error: &str,
    ) -> Result<()> {
        let _turn = self.write_turn().await?;
        let res = pending_again()
            .col_expr(timer::Column::RetryAt, Expr::value(instant(retry_at)))
            .col_expr(timer::Column::LastError, Expr::value(error))
            .col_expr(
                timer::Column::Attempts,
                lease::plus_one(timer::Column::Attempts),
            )
            .filter(held_by(id, worker))
            .exec(&self.write_db)
            .await?;
        if res.rows_affected == 0 {
            return Err(Error::StaleTimer { timer_id: id });
        }
        Ok(())
    }

    /// Gives a claimed timer back (pending again), e.g. at shutdown. `StaleTimer` if `worker`
    /// no longer holds it.
    pub async fn release_timer(&self, id: i64, worker: &str) -> Result<()> {
        let _turn = self.write_turn().await?;
        let res = pending_again()
            .filter(held_by(id, worker))
            .exec(&self.write_db)
            .await?;
        if res.rows_affected == 0 {
            return Err(Error::StaleTimer { timer_id: id });
        }
        Ok(())
    }

    /// Marks a claimed timer done without a transition (an event that no longer applies, an
    /// instance that is gone), with `outcome` saying why. `StaleTimer` if `worker` no longer
    /// holds it.
    pub async fn finish_timer(&self, id: i64, worker: &str, outcome: &str) -> Result<()> {
        let _turn = self.write_turn().await?;
        let res = timer::Entity::update_many()
            .col_expr(
                timer::Column::Status,
                Expr::value(TimerStatus::Done.as_str()),
            )
            .col_expr(timer::Column::Outcome, Expr::value(outcome))
            .col_expr(
                timer::Column::LeaseUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(held_by(id, worker))
            .exec(&self.write_db)
            .await?;
        if res.rows_affected == 0 {
            return Err(Error::StaleTimer { timer_id: id });
        }
        Ok(())
    }

    /// Carries out a claimed reminder timer: in one transaction the timer becomes done
    /// (outcome `reminded`, `fired_at = at`) and the notification is queued in the outbox.
    /// `StaleTimer` (and nothing written) if `worker` no longer holds it.
    #[tracing::instrument(skip_all, fields(timer_id = id, worker))]
    pub async fn complete_reminder(
        &self,
        id: i64,
        worker: &str,
        notifications: &[NotificationPlan],
        at: DateTime<Utc>,
    ) -> Result<()> {
        let (txn, _turn) = self.begin_write().await?;
        let outcome = async {
            let res = timer::Entity::update_many()
                .col_expr(
                    timer::Column::Status,
                    Expr::value(TimerStatus::Done.as_str()),
                )
                .col_expr(timer::Column::Outcome, Expr::value(REMINDED))
                .col_expr(timer::Column::FiredAt, Expr::value(instant(at)))
                .col_expr(
                    timer::Column::LeaseUntil,
                    Expr::value(Option::<DateTime<Utc>>::None),
                )
                .filter(held_by(id, worker))
                .exec(&txn)
                .await?;
            if res.rows_affected == 0 {
                return Err(Error::StaleTimer { timer_id: id });
            }
            let row = timer::Entity::find_by_id(id)
                .one(&txn)
                .await?
                .ok_or(Error::StaleTimer { timer_id: id })?;
            for notification in notifications {
                let effect = Effect::Notify(notification.clone());
                outbox::enqueue_as(&txn, Some(&row.instance_id), effect.kind(), &effect, at)
                    .await?;
            }
            Ok(())
        }
        .await;
        settle(txn, outcome).await
    }

    /// How many timer rows have this status.
    /// Armed timers whose instant is at or before `now` (what `/metrics` calls due), counted
    /// by the database.
    pub async fn count_due_timers(&self, now: DateTime<Utc>) -> Result<u64> {
        Ok(timer::Entity::find()
            .filter(armed())
            .filter(timer::Column::FireAt.lte(instant(now)))
            .count(&self.db)
            .await?)
    }

    /// How many timers have `status`, counted by the database.
    pub async fn count_timers(&self, status: TimerStatus) -> Result<u64> {
        Ok(timer::Entity::find()
            .filter(timer::Column::Status.eq(status.as_str()))
            .count(&self.db)
            .await?)
    }
}

/// An update that makes claimed timers pending again, unclaimed (more columns may follow).
pub(super) fn pending_again() -> sea_orm::UpdateMany<timer::Entity> {
    timer::Entity::update_many()
        .col_expr(
            timer::Column::Status,
            Expr::value(TimerStatus::Pending.as_str()),
        )
        .col_expr(
            timer::Column::ClaimedBy,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            timer::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
}

/// The row is claimed by `worker`.
fn held_by(id: i64, worker: &str) -> Condition {
    lease::held_by::<lease::Timers>(id, worker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_their_column_text() {
        for status in [
            TimerStatus::Pending,
            TimerStatus::Claimed,
            TimerStatus::Done,
            TimerStatus::Cancelled,
        ] {
            assert_eq!(TimerStatus::parse(status.as_str(), 1).ok(), Some(status));
        }
        assert!(matches!(
            TimerStatus::parse("armed", 7),
            Err(Error::Corrupt(_))
        ));
    }
}
