//! Email delivery and the local protocol register: `deliveries` (one row per recipient of a
//! notification, with its rendered email, status, attempts and Message-ID) and `protocollo`
//! (registrations numbered per year).
//!
//! A notification outbox row becomes one delivery per recipient; `UNIQUE(outbox_id,
//! recipient_email)` makes that fan-out idempotent, so an outbox row dispatched again after a
//! crash cannot create a second delivery. The email is rendered once, when the delivery is
//! created, so every retry sends the same bytes under the same Message-ID.
//!
//! A protocol number is unique per year (`UNIQUE(year, number)`), and a registration is made
//! once per outbox row (`UNIQUE(outbox_id)`; NULL for registrations made by hand, which both
//! backends allow more than once).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::m20250601_000001_definitions_instances::Instances;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The outbox table of `m20250601_000003`, named here for the foreign keys.
#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    Id,
    OutboxId,
    InstanceId,
    PersonId,
    RecipientEmail,
    RecipientName,
    Kind,
    Urgent,
    Email,
    MessageId,
    Status,
    Attempts,
    NextAttemptAt,
    LastError,
    LastCode,
    ServerAnswer,
    ClaimedBy,
    LeaseUntil,
    CreatedAt,
    SentAt,
}

#[derive(DeriveIden)]
enum Protocollo {
    Table,
    Id,
    Year,
    Number,
    Direction,
    Subject,
    InstanceId,
    OutboxId,
    RegisteredAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Deliveries::Table)
                    .col(big_pk_auto(Deliveries::Id))
                    .col(big_integer(Deliveries::OutboxId))
                    .col(text_null(Deliveries::InstanceId))
                    .col(text_null(Deliveries::PersonId))
                    .col(text(Deliveries::RecipientEmail))
                    .col(text(Deliveries::RecipientName))
                    .col(text(Deliveries::Kind))
                    .col(boolean(Deliveries::Urgent))
                    .col(text(Deliveries::Email))
                    .col(text(Deliveries::MessageId))
                    .col(text(Deliveries::Status))
                    .col(integer(Deliveries::Attempts).default(0))
                    .col(timestamp_with_time_zone(Deliveries::NextAttemptAt))
                    .col(text_null(Deliveries::LastError))
                    .col(integer_null(Deliveries::LastCode))
                    .col(text_null(Deliveries::ServerAnswer))
                    .col(text_null(Deliveries::ClaimedBy))
                    .col(timestamp_with_time_zone_null(Deliveries::LeaseUntil))
                    .col(timestamp_with_time_zone(Deliveries::CreatedAt))
                    .col(timestamp_with_time_zone_null(Deliveries::SentAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_deliveries_outbox")
                            .from(Deliveries::Table, Deliveries::OutboxId)
                            .to(Outbox::Table, Outbox::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_deliveries_instance")
                            .from(Deliveries::Table, Deliveries::InstanceId)
                            .to(Instances::Table, Instances::Id),
                    )
                    .check((
                        "ck_deliveries_status",
                        Expr::col(Deliveries::Status)
                            .is_in(["pending", "held", "digested", "sent", "failed"]),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_deliveries_outbox_recipient")
                    .table(Deliveries::Table)
                    .col(Deliveries::OutboxId)
                    .col(Deliveries::RecipientEmail)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_deliveries_status_next_attempt_at")
                    .table(Deliveries::Table)
                    .col(Deliveries::Status)
                    .col(Deliveries::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_deliveries_person_status")
                    .table(Deliveries::Table)
                    .col(Deliveries::PersonId)
                    .col(Deliveries::Status)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Protocollo::Table)
                    .col(big_pk_auto(Protocollo::Id))
                    .col(integer(Protocollo::Year))
                    .col(big_integer(Protocollo::Number))
                    .col(text(Protocollo::Direction))
                    .col(text(Protocollo::Subject))
                    .col(text_null(Protocollo::InstanceId))
                    .col(big_integer_null(Protocollo::OutboxId))
                    .col(timestamp_with_time_zone(Protocollo::RegisteredAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_protocollo_instance")
                            .from(Protocollo::Table, Protocollo::InstanceId)
                            .to(Instances::Table, Instances::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_protocollo_outbox")
                            .from(Protocollo::Table, Protocollo::OutboxId)
                            .to(Outbox::Table, Outbox::Id),
                    )
                    .check((
                        "ck_protocollo_direction",
                        Expr::col(Protocollo::Direction).is_in(["entrata", "uscita", "interno"]),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_protocollo_year_number")
                    .table(Protocollo::Table)
                    .col(Protocollo::Year)
                    .col(Protocollo::Number)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_protocollo_outbox")
                    .table(Protocollo::Table)
                    .col(Protocollo::OutboxId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_protocollo_registered_at")
                    .table(Protocollo::Table)
                    .col(Protocollo::RegisteredAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Protocollo::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Deliveries::Table).to_owned())
            .await
    }
}
