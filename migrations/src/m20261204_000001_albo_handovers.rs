//! `albo_handovers`: each hand-over of an act to the ente capofila's albo, append-only. An act
//! is handed over again only when what is published changes (its digest), e.g. a proroga.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AlboHandovers {
    Table,
    Id,
    ActId,
    InstanceId,
    Digest,
    Receipt,
    HandedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AlboHandovers::Table)
                    .col(text(AlboHandovers::Id).primary_key())
                    .col(text(AlboHandovers::ActId))
                    .col(text(AlboHandovers::InstanceId))
                    .col(text(AlboHandovers::Digest))
                    .col(text(AlboHandovers::Receipt))
                    .col(timestamp_with_time_zone(AlboHandovers::HandedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_albo_handovers_instance")
                    .table(AlboHandovers::Table)
                    .col(AlboHandovers::InstanceId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AlboHandovers::Table).to_owned())
            .await
    }
}
