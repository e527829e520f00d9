//! PEC: the organisations' PEC addresses, the channel and PEC status of each delivery, the
//! receipts read from the PEC mailbox (linked to their delivery, or refused with the reason),
//! and the messages received by PEC.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Organisations {
    Table,
    Pec,
}

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    Channel,
    PecStatus,
    PecAt,
}

#[derive(DeriveIden)]
enum PecReceipts {
    Table,
    Id,
    Sha256,
    ReadAt,
    DeliveryId,
    Tipo,
    ProviderAt,
    Identificativo,
    Gestore,
    Riferimento,
    Destinatario,
    Errore,
    Accepted,
    Reason,
    Signer,
}

#[derive(DeriveIden)]
enum PecIncoming {
    Table,
    Id,
    Sha256,
    ReadAt,
    DeliveredAt,
    Mittente,
    Oggetto,
    Identificativo,
    Gestore,
    OrganisationId,
    InstanceId,
    Outcome,
    Reason,
    ProtocolKey,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Organisations::Table)
                    .add_column(text_null(Organisations::Pec))
                    .to_owned(),
            )
            .await?;
        for column in [
            ColumnDef::new(Deliveries::Channel)
                .text()
                .not_null()
                .default("email")
                .to_owned(),
            text_null(Deliveries::PecStatus),
            timestamp_with_time_zone_null(Deliveries::PecAt),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Deliveries::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(PecReceipts::Table)
                    .col(big_pk_auto(PecReceipts::Id))
                    .col(text_uniq(PecReceipts::Sha256))
                    .col(timestamp_with_time_zone(PecReceipts::ReadAt))
                    .col(big_integer_null(PecReceipts::DeliveryId))
                    .col(text_null(PecReceipts::Tipo))
                    .col(timestamp_with_time_zone_null(PecReceipts::ProviderAt))
                    .col(text_null(PecReceipts::Identificativo))
                    .col(text_null(PecReceipts::Gestore))
                    .col(text_null(PecReceipts::Riferimento))
                    .col(text_null(PecReceipts::Destinatario))
                    .col(text_null(PecReceipts::Errore))
                    .col(boolean(PecReceipts::Accepted))
                    .col(text_null(PecReceipts::Reason))
                    .col(text_null(PecReceipts::Signer))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_pec_receipts_delivery")
                    .table(PecReceipts::Table)
                    .col(PecReceipts::DeliveryId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PecIncoming::Table)
                    .col(big_pk_auto(PecIncoming::Id))
                    .col(text_uniq(PecIncoming::Sha256))
                    .col(timestamp_with_time_zone(PecIncoming::ReadAt))
                    .col(timestamp_with_time_zone(PecIncoming::DeliveredAt))
                    .col(text(PecIncoming::Mittente))
                    .col(text(PecIncoming::Oggetto))
                    .col(text_null(PecIncoming::Identificativo))
                    .col(text_null(PecIncoming::Gestore))
                    .col(text_null(PecIncoming::OrganisationId))
                    .col(text_null(PecIncoming::InstanceId))
                    .col(text(PecIncoming::Outcome))
                    .col(text_null(PecIncoming::Reason))
                    .col(text_null(PecIncoming::ProtocolKey))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PecIncoming::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(PecReceipts::Table).to_owned())
            .await?;
        for column in [
            Deliveries::PecAt,
            Deliveries::PecStatus,
            Deliveries::Channel,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Deliveries::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Organisations::Table)
                    .drop_column(Organisations::Pec)
                    .to_owned(),
            )
            .await
    }
}
