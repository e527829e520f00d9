//! The durable queues: `timers` (armed instants, claimed with a lease by the scheduler),
//! `outbox` (effects to carry out after the commit, with retries) and `cron_runs` (the last
//! run of each recurring job, so that a job runs once per due instant across replicas).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::m20250601_000001_definitions_instances::Instances;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Timers {
    Table,
    Id,
    InstanceId,
    Key,
    Timer,
    FireAt,
    Action,
    Trace,
    Status,
    ClaimedBy,
    LeaseUntil,
    FiredAt,
    Outcome,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    InstanceId,
    Kind,
    Payload,
    Status,
    Attempts,
    NextAttemptAt,
    LastError,
    ClaimedBy,
    LeaseUntil,
    CreatedAt,
    DoneAt,
}

#[derive(DeriveIden)]
enum CronRuns {
    Table,
    Job,
    LastFireAt,
    ClaimedBy,
    LeaseUntil,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Timers::Table)
                    .col(big_pk_auto(Timers::Id))
                    .col(text(Timers::InstanceId))
                    .col(text(Timers::Key))
                    .col(text(Timers::Timer))
                    .col(timestamp_with_time_zone(Timers::FireAt))
                    .col(text(Timers::Action))
                    .col(text(Timers::Trace))
                    .col(text(Timers::Status))
                    .col(text_null(Timers::ClaimedBy))
                    .col(timestamp_with_time_zone_null(Timers::LeaseUntil))
                    .col(timestamp_with_time_zone_null(Timers::FiredAt))
                    .col(text_null(Timers::Outcome))
                    .col(timestamp_with_time_zone(Timers::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_timers_instance")
                            .from(Timers::Table, Timers::InstanceId)
                            .to(Instances::Table, Instances::Id),
                    )
                    .check((
                        "ck_timers_status",
                        Expr::col(Timers::Status).is_in([
                            "pending",
                            "claimed",
                            "done",
                            "cancelled",
                        ]),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_timers_status_fire_at")
                    .table(Timers::Table)
                    .col(Timers::Status)
                    .col(Timers::FireAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_timers_instance")
                    .table(Timers::Table)
                    .col(Timers::InstanceId)
                    .to_owned(),
            )
            .await?;
        // At most one armed (pending or claimed) timer per instance and key: a partial unique
        // index, which both SQLite and PostgreSQL support.
        manager
            .create_index(
                Index::create()
                    .name("ux_timers_armed_key")
                    .table(Timers::Table)
                    .col(Timers::InstanceId)
                    .col(Timers::Key)
                    .unique()
                    .and_where(Expr::col(Timers::Status).is_in(["pending", "claimed"]))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .col(big_pk_auto(Outbox::Id))
                    .col(text_null(Outbox::InstanceId))
                    .col(text(Outbox::Kind))
                    .col(text(Outbox::Payload))
                    .col(text(Outbox::Status))
                    .col(integer(Outbox::Attempts).default(0))
                    .col(timestamp_with_time_zone(Outbox::NextAttemptAt))
                    .col(text_null(Outbox::LastError))
                    .col(text_null(Outbox::ClaimedBy))
                    .col(timestamp_with_time_zone_null(Outbox::LeaseUntil))
                    .col(timestamp_with_time_zone(Outbox::CreatedAt))
                    .col(timestamp_with_time_zone_null(Outbox::DoneAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_outbox_instance")
                            .from(Outbox::Table, Outbox::InstanceId)
                            .to(Instances::Table, Instances::Id),
                    )
                    .check((
                        "ck_outbox_status",
                        Expr::col(Outbox::Status).is_in(["pending", "claimed", "done", "failed"]),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_outbox_status_next_attempt_at")
                    .table(Outbox::Table)
                    .col(Outbox::Status)
                    .col(Outbox::NextAttemptAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CronRuns::Table)
                    .col(text(CronRuns::Job).primary_key())
                    .col(timestamp_with_time_zone_null(CronRuns::LastFireAt))
                    .col(text_null(CronRuns::ClaimedBy))
                    .col(timestamp_with_time_zone_null(CronRuns::LeaseUntil))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CronRuns::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Outbox::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Timers::Table).to_owned())
            .await
    }
}
