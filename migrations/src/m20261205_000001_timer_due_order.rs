//! The index the scheduler claims due timers by carries the timer's id after its instant:
//! `ORDER BY fire_at, id LIMIT n` is then read straight from the index. Without the id,
//! PostgreSQL sorted every pending timer due at the same instant to take the first n (a
//! million timers of one legal deadline: half a second per claim). SQLite keys every index
//! by the rowid already; the index is the same on both backends.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Timers {
    Table,
    Id,
    Status,
    FireAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("ix_timers_due")
                    .table(Timers::Table)
                    .col(Timers::Status)
                    .col(Timers::FireAt)
                    .col(Timers::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("ix_timers_status_fire_at")
                    .table(Timers::Table)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
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
            .drop_index(
                Index::drop()
                    .name("ix_timers_due")
                    .table(Timers::Table)
                    .to_owned(),
            )
            .await
    }
}
