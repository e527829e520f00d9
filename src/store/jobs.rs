//! Writes of the scheduler that span tables or filter by kind: a cron run recorded together
//! with the outbox row it queues (so a crash cannot queue it twice or record it without its
//! row), and outbox claims restricted to the kinds a worker can carry out (rows of other kinds
//! stay pending, untouched, for the worker that can).

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType, Order, Query};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder,
};

use super::entities::{cron_run, outbox, timer};
use super::outbox::{OutboxRow, OutboxStatus};
use super::timers::{TimerStatus, lease_end};
use super::{Error, Result, Store, instant, settle, to_json};
use crate::engine::Effect;

impl Store {
    /// Records the run of `job` due at `due`, claimed by `worker` with `claim_cron`, and queues
    /// its outbox row (of kind `kind`, carrying `effect`, due at `at`) in one transaction.
    /// False, and nothing written, if `worker` no longer holds the claim (its lease ran out
    /// and another worker took the run) or the run is already recorded.
    #[tracing::instrument(skip_all, fields(job, worker, kind))]
    pub async fn complete_cron(
        &self,
        job: &str,
        worker: &str,
        due: DateTime<Utc>,
        kind: &str,
        effect: &Effect,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let due = instant(due);
        let txn = self.begin_write().await?;
        let outcome = async {
            let recorded = cron_run::Entity::update_many()
                .col_expr(cron_run::Column::LastFireAt, Expr::value(due))
                .col_expr(
                    cron_run::Column::ClaimedBy,
                    Expr::value(Option::<String>::None),
                )
                .col_expr(
                    cron_run::Column::LeaseUntil,
                    Expr::value(Option::<DateTime<Utc>>::None),
                )
                .filter(cron_run::Column::Job.eq(job))
                .filter(cron_run::Column::ClaimedBy.eq(worker))
                .filter(
                    Condition::any()
                        .add(cron_run::Column::LastFireAt.is_null())
                        .add(cron_run::Column::LastFireAt.lt(due)),
                )
                .exec(&txn)
                .await?;
            if recorded.rows_affected == 0 {
                return Ok(false);
            }
            enqueue_kind(&txn, None, kind, effect, at).await?;
            Ok(true)
        }
        .await;
        settle(txn, outcome).await
    }

    /// Like `claim_outbox`, for rows of the given kinds only.
    #[tracing::instrument(skip_all, fields(worker, limit))]
    pub async fn claim_outbox_of(
        &self,
        kinds: &[&str],
        now: DateTime<Utc>,
        limit: u64,
        worker: &str,
        lease: Duration,
    ) -> Result<Vec<OutboxRow>> {
        if kinds.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let now = instant(now);
        let due = Condition::any()
            .add(
                Condition::all()
                    .add(outbox::Column::Status.eq(OutboxStatus::Pending.as_str()))
                    .add(outbox::Column::NextAttemptAt.lte(now)),
            )
            .add(
                Condition::all()
                    .add(outbox::Column::Status.eq(OutboxStatus::Claimed.as_str()))
                    .add(outbox::Column::LeaseUntil.lt(now)),
            );
        let candidates = Query::select()
            .column(outbox::Column::Id)
            .from(outbox::Entity)
            .cond_where(
                Condition::all()
                    .add(due)
                    .add(outbox::Column::Kind.is_in(kinds.iter().copied())),
            )
            .order_by(outbox::Column::NextAttemptAt, Order::Asc)
            .order_by(outbox::Column::Id, Order::Asc)
            .limit(limit)
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .to_owned();
        let claim = Query::update()
            .table(outbox::Entity)
            .value(outbox::Column::Status, OutboxStatus::Claimed.as_str())
            .value(outbox::Column::ClaimedBy, worker)
            .value(outbox::Column::LeaseUntil, lease_end(now, lease))
            .value(
                outbox::Column::Attempts,
                Expr::col(outbox::Column::Attempts).add(1),
            )
            .and_where(Expr::col(outbox::Column::Id).in_subquery(candidates))
            .returning_all()
            .to_owned();
        let mut rows = self
            .db
            .query_all(&claim)
            .await?
            .iter()
            .map(|row| outbox::Model::from_query_result(row, "").map_err(Error::from))
            .map(|model| model.and_then(OutboxRow::from_model))
            .collect::<Result<Vec<_>>>()?;
        rows.sort_by_key(|r| (r.next_attempt_at, r.id));
        Ok(rows)
    }
}

/// Queues an effect under an explicit kind (a cron job's `digest`, `protocol_register`),
/// due at `at`.
async fn enqueue_kind<C: ConnectionTrait>(
    conn: &C,
    instance_id: Option<&str>,
    kind: &str,
    effect: &Effect,
    at: DateTime<Utc>,
) -> Result<()> {
    let at = instant(at);
    let row = outbox::ActiveModel {
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
    };
    outbox::Entity::insert(row)
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

impl Store {
    /// When `job` last ran (the due instant recorded by `complete_cron` or `finish_cron`).
    pub async fn cron_last_run(&self, job: &str) -> Result<Option<DateTime<Utc>>> {
        Ok(cron_run::Entity::find_by_id(job.to_string()).one(&self.db).await?.and_then(|row| row.last_fire_at))
    }

    /// The instant of the earliest pending timer: how long an idle scheduler may sleep.
    pub async fn next_timer_at(&self) -> Result<Option<DateTime<Utc>>> {
        Ok(timer::Entity::find()
            .filter(timer::Column::Status.eq(TimerStatus::Pending.as_str()))
            .order_by_asc(timer::Column::FireAt)
            .one(&self.db)
            .await?
            .map(|row| row.fire_at))
    }
}
