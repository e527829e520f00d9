//! `admin_audit`: every administrative action (people, organisations, tokens, procedure
//! definitions), who did it and when — append-only by the database on both backends, as the
//! Garante's provvedimento of 27/11/2008 on system administrators asks (kept at least six
//! months: procedo never deletes a row).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AdminAudit {
    Table,
    Id,
    At,
    ActorId,
    Role,
    Action,
    Subject,
    Detail,
}

/// The statements that make `admin_audit` append-only, per backend.
fn append_only_guards(backend: DbBackend) -> &'static [&'static str] {
    match backend {
        DbBackend::Postgres => &[
            "CREATE OR REPLACE FUNCTION admin_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN RAISE EXCEPTION 'admin_audit è append-only: le righe non si modificano né si cancellano'; END $$",
            "CREATE TRIGGER admin_audit_no_update_delete BEFORE UPDATE OR DELETE ON admin_audit \
             FOR EACH ROW EXECUTE FUNCTION admin_audit_append_only()",
            "CREATE TRIGGER admin_audit_no_truncate BEFORE TRUNCATE ON admin_audit \
             FOR EACH STATEMENT EXECUTE FUNCTION admin_audit_append_only()",
        ],
        DbBackend::Sqlite => &[
            "CREATE TRIGGER admin_audit_no_update BEFORE UPDATE ON admin_audit BEGIN \
             SELECT RAISE(ABORT, 'admin_audit è append-only: le righe non si modificano né si cancellano'); END",
            "CREATE TRIGGER admin_audit_no_delete BEFORE DELETE ON admin_audit BEGIN \
             SELECT RAISE(ABORT, 'admin_audit è append-only: le righe non si modificano né si cancellano'); END",
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
                    .table(AdminAudit::Table)
                    .col(big_pk_auto(AdminAudit::Id))
                    .col(timestamp_with_time_zone(AdminAudit::At))
                    .col(text(AdminAudit::ActorId))
                    .col(text(AdminAudit::Role))
                    .col(text(AdminAudit::Action))
                    .col(text(AdminAudit::Subject))
                    .col(text(AdminAudit::Detail))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_admin_audit_at")
                    .table(AdminAudit::Table)
                    .col(AdminAudit::At)
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        for statement in append_only_guards(manager.get_database_backend()) {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("DROP FUNCTION IF EXISTS admin_audit_append_only() CASCADE")
                .await?;
        }
        manager
            .drop_table(Table::drop().table(AdminAudit::Table).to_owned())
            .await
    }
}
