//! `definitions` (every loaded version of every workflow file, pinned by content hash) and
//! `instances` (one row per running or concluded procedure, with an optimistic-lock version).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub(crate) enum Definitions {
    Table,
    Id,
    Version,
    Title,
    ContentHash,
    Source,
    Assets,
    LoadedAt,
}

#[derive(DeriveIden)]
pub(crate) enum Instances {
    Table,
    Id,
    DefinitionId,
    DefinitionVersion,
    ParentId,
    State,
    IsFinal,
    Data,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Definitions::Table)
                    .col(text(Definitions::Id))
                    .col(integer(Definitions::Version))
                    .col(text(Definitions::Title))
                    .col(text(Definitions::ContentHash))
                    .col(text(Definitions::Source))
                    .col(text(Definitions::Assets))
                    .col(timestamp_with_time_zone(Definitions::LoadedAt))
                    .primary_key(
                        Index::create()
                            .col(Definitions::Id)
                            .col(Definitions::Version),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Instances::Table)
                    .col(text(Instances::Id).primary_key())
                    .col(text(Instances::DefinitionId))
                    .col(integer(Instances::DefinitionVersion))
                    .col(text_null(Instances::ParentId))
                    .col(text(Instances::State))
                    .col(boolean(Instances::IsFinal))
                    .col(text(Instances::Data))
                    .col(big_integer(Instances::Version))
                    .col(timestamp_with_time_zone(Instances::CreatedAt))
                    .col(timestamp_with_time_zone(Instances::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_instances_definition")
                            .from(
                                Instances::Table,
                                (Instances::DefinitionId, Instances::DefinitionVersion),
                            )
                            .to(Definitions::Table, (Definitions::Id, Definitions::Version)),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_instances_parent")
                            .from(Instances::Table, Instances::ParentId)
                            .to(Instances::Table, Instances::Id),
                    )
                    .check(("ck_instances_version", Expr::col(Instances::Version).gte(1)))
                    .to_owned(),
            )
            .await?;

        manager
            .create_index(
                Index::create()
                    .name("ix_instances_definition_state")
                    .table(Instances::Table)
                    .col(Instances::DefinitionId)
                    .col(Instances::State)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_instances_parent")
                    .table(Instances::Table)
                    .col(Instances::ParentId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Instances::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Definitions::Table).to_owned())
            .await
    }
}
