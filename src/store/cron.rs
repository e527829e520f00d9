//! Cron runs: a recurring job fires once per due instant across replicas. A worker claims the
//! run for `due` (the job's last run is before `due` and nobody holds a live lease), runs the
//! job, then records `due` as the last run.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter};

use super::entities::cron_run;
use super::lease::lease_end;
use super::{Result, Store, instant, settle};

impl Store {
    /// Claims the run of `job` for the instant `due` until `now + lease`. True if this worker
    /// got it: the job last ran before `due` and no other worker holds a live claim.
    #[tracing::instrument(skip_all, fields(job, worker))]
    pub async fn claim_cron(
        &self,
        job: &str,
        due: DateTime<Utc>,
        now: DateTime<Utc>,
        worker: &str,
        lease: Duration,
    ) -> Result<bool> {
        let _turn = self.write_turn().await?;
        let (due, now) = (instant(due), instant(now));
        let first_time = cron_run::ActiveModel {
            job: Set(job.to_string()),
            last_fire_at: Set(None),
            claimed_by: Set(None),
            lease_until: Set(None),
        };
        cron_run::Entity::insert(first_time)
            .on_conflict_do_nothing()
            .exec_without_returning(&self.write_db)
            .await?;
        let res = cron_run::Entity::update_many()
            .col_expr(cron_run::Column::ClaimedBy, Expr::value(worker))
            .col_expr(
                cron_run::Column::LeaseUntil,
                Expr::value(lease_end(now, lease)),
            )
            .filter(cron_run::Column::Job.eq(job))
            .filter(
                Condition::any()
                    .add(cron_run::Column::LastFireAt.is_null())
                    .add(cron_run::Column::LastFireAt.lt(due)),
            )
            .filter(
                Condition::any()
                    .add(cron_run::Column::ClaimedBy.is_null())
                    .add(cron_run::Column::LeaseUntil.is_null())
                    .add(cron_run::Column::LeaseUntil.lt(now)),
            )
            .exec(&self.write_db)
            .await?;
        Ok(res.rows_affected == 1)
    }

    /// Records that `job` ran for `fired_at` (the `due` it was claimed for) and releases
    /// `worker`'s claim. The last run never moves backwards.
    #[tracing::instrument(skip_all, fields(job, worker))]
    pub async fn finish_cron(
        &self,
        job: &str,
        worker: &str,
        fired_at: DateTime<Utc>,
    ) -> Result<()> {
        let fired_at = instant(fired_at);
        let (txn, _turn) = self.begin_write().await?;
        let outcome = async {
            cron_run::Entity::update_many()
                .col_expr(cron_run::Column::LastFireAt, Expr::value(fired_at))
                .filter(cron_run::Column::Job.eq(job))
                .filter(
                    Condition::any()
                        .add(cron_run::Column::LastFireAt.is_null())
                        .add(cron_run::Column::LastFireAt.lt(fired_at)),
                )
                .exec(&txn)
                .await?;
            cron_run::Entity::update_many()
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
                .exec(&txn)
                .await?;
            Ok(())
        }
        .await;
        settle(txn, outcome).await
    }
}
