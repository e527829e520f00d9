//! Timer retries apart from the lease: `attempts`, `retry_at` and `last_error` on `timers`.
//!
//! A timer whose firing failed (a database that refused, a definition that no longer loads)
//! used to stay claimed until its lease ran out, so the lease was also the retry delay. With
//! a lease renewed by a heartbeat and therefore short, the retry gets its own column: the
//! timer is pending again, claimable from `retry_at` on, and keeps its legal `fire_at`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Timers {
    Table,
    Status,
    Attempts,
    RetryAt,
    LastError,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one column at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Timers::Table)
                    .add_column(integer(Timers::Attempts).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Timers::Table)
                    .add_column(timestamp_with_time_zone_null(Timers::RetryAt))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Timers::Table)
                    .add_column(text_null(Timers::LastError))
                    .to_owned(),
            )
            .await?;
        // Only timers waiting for a retry are in it: the idle scheduler finds the next retry
        // without scanning the pending ones.
        manager
            .create_index(
                Index::create()
                    .name("ix_timers_retry_at")
                    .table(Timers::Table)
                    .col(Timers::RetryAt)
                    .and_where(Expr::col(Timers::Status).eq("pending"))
                    .and_where(Expr::col(Timers::RetryAt).is_not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_timers_retry_at")
                    .table(Timers::Table)
                    .to_owned(),
            )
            .await?;
        for column in [Timers::LastError, Timers::RetryAt, Timers::Attempts] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Timers::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
