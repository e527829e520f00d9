//! The protocol register as DPR 445/2000 wants it: `protocol_registrations` (one row per
//! registration, in the protocol register or in a repertorio, with its correspondents,
//! classification, fascicolo, sender's reference, receipt instant, segnatura and the hash
//! chain), `protocol_documents` (the files of a registration with their SHA-256 impronta),
//! `protocol_amendments` (annulments, corrections of typed fields and reconciliations of the
//! emergency register: nothing is changed in place) and `protocol_daily_registers` (the
//! registro giornaliero of each day and its hand-over to conservation).
//!
//! The registrations of the former counter (`protocollo`) are carried over into the
//! protocol register with their numbers; the store seals them into the hash chain the first
//! time it opens the database (the only update the guards allow: a missing chain set once).
//! `outbox.step_seq` says which step queued a row, so a notification finds the registration
//! of its own step to cite.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

use crate::m20250601_000001_definitions_instances::Instances;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ProtocolRegistrations {
    Table,
    Id,
    LogSeq,
    Register,
    Year,
    Number,
    RegisteredAt,
    Direction,
    Subject,
    Correspondents,
    Classification,
    Fascicolo,
    InstanceId,
    IdempotencyKey,
    SenderReference,
    SenderDate,
    ReceivedAt,
    Channel,
    Operator,
    Source,
    Segnatura,
    Chain,
}

#[derive(DeriveIden)]
enum ProtocolDocuments {
    Table,
    Id,
    RegistrationId,
    Position,
    Role,
    Name,
    MediaType,
    Size,
    Sha256,
}

#[derive(DeriveIden)]
enum ProtocolAmendments {
    Table,
    Id,
    LogSeq,
    RegistrationId,
    Kind,
    Field,
    Previous,
    Value,
    Reason,
    Act,
    Operator,
    At,
    Chain,
}

#[derive(DeriveIden)]
enum ProtocolDailyRegisters {
    Table,
    Day,
    ProducedAt,
    Registrations,
    Amendments,
    CsvSha256,
    HtmlSha256,
    ChainHead,
    ConservationStatus,
    ConservationReceipt,
    ConservedAt,
    LastError,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    StepSeq,
}

/// The guards that keep the register append-only, per backend. A registration may be updated
/// only to seal it (its chain set once, from NULL); documents and amendments never.
fn guards(backend: DbBackend) -> &'static [&'static str] {
    match backend {
        DbBackend::Postgres => &[
            "CREATE OR REPLACE FUNCTION protocol_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN RAISE EXCEPTION 'il registro di protocollo non si modifica: si annulla o si corregge con una nuova annotazione'; END $$",
            "CREATE OR REPLACE FUNCTION protocol_seal_only() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN \
               IF OLD.chain IS NOT NULL OR NEW.chain IS NULL \
                  OR (to_jsonb(NEW) - 'chain') IS DISTINCT FROM (to_jsonb(OLD) - 'chain') THEN \
                 RAISE EXCEPTION 'il registro di protocollo non si modifica: si annulla o si corregge con una nuova annotazione'; \
               END IF; \
               RETURN NEW; \
             END $$",
            "CREATE TRIGGER protocol_registrations_seal_only BEFORE UPDATE ON protocol_registrations \
             FOR EACH ROW EXECUTE FUNCTION protocol_seal_only()",
            "CREATE TRIGGER protocol_registrations_no_delete BEFORE DELETE ON protocol_registrations \
             FOR EACH ROW EXECUTE FUNCTION protocol_append_only()",
            "CREATE TRIGGER protocol_documents_append_only BEFORE UPDATE OR DELETE ON protocol_documents \
             FOR EACH ROW EXECUTE FUNCTION protocol_append_only()",
            "CREATE TRIGGER protocol_amendments_append_only BEFORE UPDATE OR DELETE ON protocol_amendments \
             FOR EACH ROW EXECUTE FUNCTION protocol_append_only()",
            "CREATE TRIGGER protocol_no_truncate BEFORE TRUNCATE ON protocol_registrations \
             FOR EACH STATEMENT EXECUTE FUNCTION protocol_append_only()",
        ],
        DbBackend::Sqlite => &[
            "CREATE TRIGGER protocol_registrations_seal_only BEFORE UPDATE ON protocol_registrations \
             WHEN OLD.chain IS NOT NULL OR NEW.chain IS NULL \
               OR NEW.id IS NOT OLD.id OR NEW.log_seq IS NOT OLD.log_seq OR NEW.register IS NOT OLD.register \
               OR NEW.year IS NOT OLD.year OR NEW.number IS NOT OLD.number \
               OR NEW.registered_at IS NOT OLD.registered_at OR NEW.direction IS NOT OLD.direction \
               OR NEW.subject IS NOT OLD.subject OR NEW.correspondents IS NOT OLD.correspondents \
               OR NEW.classification IS NOT OLD.classification OR NEW.fascicolo IS NOT OLD.fascicolo \
               OR NEW.instance_id IS NOT OLD.instance_id OR NEW.idempotency_key IS NOT OLD.idempotency_key \
               OR NEW.sender_reference IS NOT OLD.sender_reference OR NEW.sender_date IS NOT OLD.sender_date \
               OR NEW.received_at IS NOT OLD.received_at OR NEW.channel IS NOT OLD.channel \
               OR NEW.operator IS NOT OLD.operator OR NEW.source IS NOT OLD.source \
               OR NEW.segnatura IS NOT OLD.segnatura \
             BEGIN SELECT RAISE(ABORT, 'il registro di protocollo non si modifica: si annulla o si corregge con una nuova annotazione'); END",
            "CREATE TRIGGER protocol_registrations_no_delete BEFORE DELETE ON protocol_registrations BEGIN \
             SELECT RAISE(ABORT, 'il registro di protocollo non si modifica: si annulla o si corregge con una nuova annotazione'); END",
            "CREATE TRIGGER protocol_documents_no_update BEFORE UPDATE ON protocol_documents BEGIN \
             SELECT RAISE(ABORT, 'il registro di protocollo non si modifica: si annulla o si corregge con una nuova annotazione'); END",
            "CREATE TRIGGER protocol_documents_no_delete BEFORE DELETE ON protocol_documents BEGIN \
             SELECT RAISE(ABORT, 'il registro di protocollo non si modifica: si annulla o si corregge con una nuova annotazione'); END",
            "CREATE TRIGGER protocol_amendments_no_update BEFORE UPDATE ON protocol_amendments BEGIN \
             SELECT RAISE(ABORT, 'il registro di protocollo non si modifica: si annulla o si corregge con una nuova annotazione'); END",
            "CREATE TRIGGER protocol_amendments_no_delete BEFORE DELETE ON protocol_amendments BEGIN \
             SELECT RAISE(ABORT, 'il registro di protocollo non si modifica: si annulla o si corregge con una nuova annotazione'); END",
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
                    .table(ProtocolRegistrations::Table)
                    .col(big_pk_auto(ProtocolRegistrations::Id))
                    .col(big_integer(ProtocolRegistrations::LogSeq))
                    .col(text(ProtocolRegistrations::Register))
                    .col(integer(ProtocolRegistrations::Year))
                    .col(big_integer(ProtocolRegistrations::Number))
                    .col(timestamp_with_time_zone(
                        ProtocolRegistrations::RegisteredAt,
                    ))
                    .col(text(ProtocolRegistrations::Direction))
                    .col(text(ProtocolRegistrations::Subject))
                    .col(text(ProtocolRegistrations::Correspondents))
                    .col(text_null(ProtocolRegistrations::Classification))
                    .col(text_null(ProtocolRegistrations::Fascicolo))
                    .col(text_null(ProtocolRegistrations::InstanceId))
                    .col(text_null(ProtocolRegistrations::IdempotencyKey))
                    .col(text_null(ProtocolRegistrations::SenderReference))
                    .col(text_null(ProtocolRegistrations::SenderDate))
                    .col(timestamp_with_time_zone_null(
                        ProtocolRegistrations::ReceivedAt,
                    ))
                    .col(text(ProtocolRegistrations::Channel))
                    .col(text(ProtocolRegistrations::Operator))
                    .col(text(ProtocolRegistrations::Source))
                    .col(text_null(ProtocolRegistrations::Segnatura))
                    .col(text_null(ProtocolRegistrations::Chain))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_protocol_registrations_instance")
                            .from(
                                ProtocolRegistrations::Table,
                                ProtocolRegistrations::InstanceId,
                            )
                            .to(Instances::Table, Instances::Id),
                    )
                    .check((
                        "ck_protocol_registrations_direction",
                        Expr::col(ProtocolRegistrations::Direction)
                            .is_in(["entrata", "uscita", "interno"]),
                    ))
                    .to_owned(),
            )
            .await?;
        for (name, columns, unique) in [
            (
                "ux_protocol_registrations_number",
                vec![
                    ProtocolRegistrations::Register,
                    ProtocolRegistrations::Year,
                    ProtocolRegistrations::Number,
                ],
                true,
            ),
            (
                "ux_protocol_registrations_log_seq",
                vec![ProtocolRegistrations::LogSeq],
                true,
            ),
            (
                "ux_protocol_registrations_key",
                vec![ProtocolRegistrations::IdempotencyKey],
                true,
            ),
            (
                "ix_protocol_registrations_registered_at",
                vec![ProtocolRegistrations::RegisteredAt],
                false,
            ),
            (
                "ix_protocol_registrations_instance",
                vec![ProtocolRegistrations::InstanceId],
                false,
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table(ProtocolRegistrations::Table);
            for column in columns {
                index.col(column);
            }
            if unique {
                index.unique();
            }
            manager.create_index(index.to_owned()).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(ProtocolDocuments::Table)
                    .col(big_pk_auto(ProtocolDocuments::Id))
                    .col(big_integer(ProtocolDocuments::RegistrationId))
                    .col(integer(ProtocolDocuments::Position))
                    .col(text(ProtocolDocuments::Role))
                    .col(text(ProtocolDocuments::Name))
                    .col(text(ProtocolDocuments::MediaType))
                    .col(big_integer(ProtocolDocuments::Size))
                    .col(text(ProtocolDocuments::Sha256))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_protocol_documents_registration")
                            .from(ProtocolDocuments::Table, ProtocolDocuments::RegistrationId)
                            .to(ProtocolRegistrations::Table, ProtocolRegistrations::Id),
                    )
                    .check((
                        "ck_protocol_documents_role",
                        Expr::col(ProtocolDocuments::Role).is_in(["primario", "allegato"]),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_protocol_documents_position")
                    .table(ProtocolDocuments::Table)
                    .col(ProtocolDocuments::RegistrationId)
                    .col(ProtocolDocuments::Position)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ProtocolAmendments::Table)
                    .col(big_pk_auto(ProtocolAmendments::Id))
                    .col(big_integer(ProtocolAmendments::LogSeq))
                    .col(big_integer(ProtocolAmendments::RegistrationId))
                    .col(text(ProtocolAmendments::Kind))
                    .col(text_null(ProtocolAmendments::Field))
                    .col(text_null(ProtocolAmendments::Previous))
                    .col(text_null(ProtocolAmendments::Value))
                    .col(text(ProtocolAmendments::Reason))
                    .col(text_null(ProtocolAmendments::Act))
                    .col(text(ProtocolAmendments::Operator))
                    .col(timestamp_with_time_zone(ProtocolAmendments::At))
                    .col(text(ProtocolAmendments::Chain))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_protocol_amendments_registration")
                            .from(
                                ProtocolAmendments::Table,
                                ProtocolAmendments::RegistrationId,
                            )
                            .to(ProtocolRegistrations::Table, ProtocolRegistrations::Id),
                    )
                    .check((
                        "ck_protocol_amendments_kind",
                        Expr::col(ProtocolAmendments::Kind).is_in([
                            "annullamento",
                            "correzione",
                            "riconciliazione",
                        ]),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_protocol_amendments_log_seq")
                    .table(ProtocolAmendments::Table)
                    .col(ProtocolAmendments::LogSeq)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_protocol_amendments_registration")
                    .table(ProtocolAmendments::Table)
                    .col(ProtocolAmendments::RegistrationId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ProtocolDailyRegisters::Table)
                    .col(text(ProtocolDailyRegisters::Day).primary_key())
                    .col(timestamp_with_time_zone(ProtocolDailyRegisters::ProducedAt))
                    .col(integer(ProtocolDailyRegisters::Registrations))
                    .col(integer(ProtocolDailyRegisters::Amendments))
                    .col(text(ProtocolDailyRegisters::CsvSha256))
                    .col(text(ProtocolDailyRegisters::HtmlSha256))
                    .col(text_null(ProtocolDailyRegisters::ChainHead))
                    .col(text(ProtocolDailyRegisters::ConservationStatus))
                    .col(text_null(ProtocolDailyRegisters::ConservationReceipt))
                    .col(timestamp_with_time_zone_null(
                        ProtocolDailyRegisters::ConservedAt,
                    ))
                    .col(text_null(ProtocolDailyRegisters::LastError))
                    .to_owned(),
            )
            .await?;

        // The former counter's registrations, in the order they were made.
        let db = manager.get_connection();
        db.execute_unprepared(
            "INSERT INTO protocol_registrations (log_seq, register, year, number, registered_at, \
             direction, subject, correspondents, instance_id, idempotency_key, channel, operator, source) \
             SELECT ROW_NUMBER() OVER (ORDER BY id), 'protocollo', year, number, registered_at, \
             direction, subject, '[]', instance_id, \
             CASE WHEN outbox_id IS NULL THEN NULL ELSE 'outbox:' || CAST(outbox_id AS TEXT) END, \
             'procedura', 'sistema', 'locale' FROM protocollo",
        )
        .await?;
        manager
            .drop_table(Table::drop().table(Alias::new("protocollo")).to_owned())
            .await?;
        for statement in guards(manager.get_database_backend()) {
            db.execute_unprepared(statement).await?;
        }

        manager
            .alter_table(
                Table::alter()
                    .table(Outbox::Table)
                    .add_column(big_integer_null(Outbox::StepSeq))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration(
            "il registro di protocollo non si smonta: le registrazioni sono atti".to_owned(),
        ))
    }
}
