//! `calendar_feeds`: personal ICS subscription URLs. Only the SHA-256 of the URL's secret is
//! stored; a revoked feed keeps its row with the instant it was revoked.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum CalendarFeeds {
    Table,
    Id,
    PersonId,
    Hash,
    CreatedAt,
    RevokedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CalendarFeeds::Table)
                    .col(text(CalendarFeeds::Id).primary_key())
                    .col(text(CalendarFeeds::PersonId))
                    .col(text_uniq(CalendarFeeds::Hash))
                    .col(timestamp_with_time_zone(CalendarFeeds::CreatedAt))
                    .col(timestamp_with_time_zone_null(CalendarFeeds::RevokedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CalendarFeeds::Table).to_owned())
            .await
    }
}
