//! Participants in the history: `participant_id`, `participant_from`, `participant_to` on
//! `history`.
//!
//! A participant's event (an ETS's application arriving, a soccorso requested of it, its
//! admission) is a step of the instance like any other, recorded in the same append-only
//! log; these columns say whose it was and how that participant moved, so that staff read
//! every row and an ETS only its own.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum History {
    Table,
    InstanceId,
    ParticipantId,
    ParticipantFrom,
    ParticipantTo,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one column at a time.
        for column in [
            History::ParticipantId,
            History::ParticipantFrom,
            History::ParticipantTo,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(History::Table)
                        .add_column(text_null(column))
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("ix_history_participant")
                    .table(History::Table)
                    .col(History::InstanceId)
                    .col(History::ParticipantId)
                    .and_where(Expr::col(History::ParticipantId).is_not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_history_participant")
                    .table(History::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            History::ParticipantTo,
            History::ParticipantFrom,
            History::ParticipantId,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(History::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
