//! `history` (the append-only log of every step, one row per instance version) and `commands`
//! (idempotency keys: the same key twice has one effect).
//!
//! History is append-only by construction (no code path updates or deletes it) and by the
//! database: triggers refuse UPDATE and DELETE on both backends.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::m20250601_000001_definitions_instances::Instances;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum History {
    Table,
    Id,
    InstanceId,
    Seq,
    At,
    ActorId,
    Role,
    Event,
    FromState,
    ToState,
    Payload,
    Late,
    IdempotencyKey,
    Effects,
}

#[derive(DeriveIden)]
enum Commands {
    Table,
    IdempotencyKey,
    InstanceId,
    Seq,
    CreatedAt,
}

/// The statements that make `history` append-only, per backend.
fn append_only_guards(backend: DbBackend) -> &'static [&'static str] {
    match backend {
        DbBackend::Postgres => &[
            "CREATE OR REPLACE FUNCTION history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN RAISE EXCEPTION 'history è append-only: le righe non si modificano né si cancellano'; END $$",
            "CREATE TRIGGER history_no_update_delete BEFORE UPDATE OR DELETE ON history \
             FOR EACH ROW EXECUTE FUNCTION history_append_only()",
            "CREATE TRIGGER history_no_truncate BEFORE TRUNCATE ON history \
             FOR EACH STATEMENT EXECUTE FUNCTION history_append_only()",
        ],
        DbBackend::Sqlite => &[
            "CREATE TRIGGER history_no_update BEFORE UPDATE ON history BEGIN \
             SELECT RAISE(ABORT, 'history è append-only: le righe non si modificano né si cancellano'); END",
            "CREATE TRIGGER history_no_delete BEFORE DELETE ON history BEGIN \
             SELECT RAISE(ABORT, 'history è append-only: le righe non si modificano né si cancellano'); END",
        ],
        _ => &[],
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(History::Table)
                    .col(big_pk_auto(History::Id))
                    .col(text(History::InstanceId))
                    .col(big_integer(History::Seq))
                    .col(timestamp_with_time_zone(History::At))
                    .col(text(History::ActorId))
                    .col(text(History::Role))
                    .col(text(History::Event))
                    .col(text_null(History::FromState))
                    .col(text(History::ToState))
                    .col(text(History::Payload))
                    .col(boolean(History::Late))
                    .col(text_null(History::IdempotencyKey))
                    .col(text(History::Effects))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_history_instance")
                            .from(History::Table, History::InstanceId)
                            .to(Instances::Table, Instances::Id),
                    )
                    .check(("ck_history_seq", Expr::col(History::Seq).gte(1)))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_history_instance_seq")
                    .table(History::Table)
                    .col(History::InstanceId)
                    .col(History::Seq)
                    .unique()
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        for statement in append_only_guards(manager.get_database_backend()) {
            db.execute_unprepared(statement).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(Commands::Table)
                    .col(text(Commands::IdempotencyKey).primary_key())
                    .col(text(Commands::InstanceId))
                    .col(big_integer(Commands::Seq))
                    .col(timestamp_with_time_zone(Commands::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_commands_instance")
                            .from(Commands::Table, Commands::InstanceId)
                            .to(Instances::Table, Instances::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_commands_instance")
                    .table(Commands::Table)
                    .col(Commands::InstanceId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Commands::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(History::Table).to_owned())
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("DROP FUNCTION IF EXISTS history_append_only()")
                .await?;
        }
        Ok(())
    }
}
