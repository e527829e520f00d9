//! Writes of the scheduler that span tables or filter by kind: a cron run recorded together
//! with the outbox row it queues (so a crash cannot queue it twice or record it without its
//! row), and outbox claims restricted to the kinds a worker can carry out (rows of other kinds
//! stay pending, untouched, for the worker that can).

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder,
    Statement,
};

use super::entities::{cron_run, timer};
use super::outbox::{self, OutboxRow};
use super::timers::TimerStatus;
use super::{Result, Store, instant, settle};
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
        let (txn, _turn) = self.begin_write().await?;
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
            outbox::enqueue_as(&txn, None, kind, effect, at).await?;
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
        let _turn = self.write_turn().await?;
        outbox::claim(&self.write_db, Some(kinds), now, limit, worker, lease).await
    }
}

impl Store {
    /// When `job` last ran (the due instant recorded by `complete_cron` or `finish_cron`).
    pub async fn cron_last_run(&self, job: &str) -> Result<Option<DateTime<Utc>>> {
        Ok(cron_run::Entity::find_by_id(job.to_string())
            .one(&self.db)
            .await?
            .and_then(|row| row.last_fire_at))
    }

    /// The instant of the earliest pending timer, or of the earliest retry of a timer whose
    /// firing failed: how long an idle scheduler may sleep.
    pub async fn next_timer_at(&self) -> Result<Option<DateTime<Utc>>> {
        let first = timer::Entity::find()
            .filter(timer::Column::Status.eq(TimerStatus::Pending.as_str()))
            .filter(timer::Column::RetryAt.is_null())
            .order_by_asc(timer::Column::FireAt)
            .one(&self.db)
            .await?
            .map(|row| row.fire_at);
        // The partial index of the timers waiting for a retry answers this at once, but only
        // with the status written out (a bound value cannot prove the index's condition), and
        // SQLite's planner, without statistics, prefers the index on (status, fire_at) — a
        // walk over every pending timer — unless told.
        let sql = match self.db.get_database_backend() {
            DbBackend::Postgres => {
                "SELECT retry_at FROM timers WHERE status = 'pending' AND retry_at IS NOT NULL \
                 ORDER BY retry_at LIMIT 1"
            }
            _ => {
                "SELECT retry_at FROM timers INDEXED BY ix_timers_retry_at \
                 WHERE status = 'pending' AND retry_at IS NOT NULL ORDER BY retry_at LIMIT 1"
            }
        };
        debug_assert_eq!(TimerStatus::Pending.as_str(), "pending");
        let retry = self
            .db
            .query_one_raw(Statement::from_string(
                self.db.get_database_backend(),
                sql.to_owned(),
            ))
            .await?
            .map(|row| row.try_get::<DateTime<Utc>>("", "retry_at"))
            .transpose()?;
        Ok(match (first, retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }
}
