//! PEC: receipts linked to deliveries (each read once, by the SHA-256 of its raw message),
//! the per-recipient status they move, the organisations' PEC addresses, and the messages
//! received by PEC.
//!
//! Invariant: a receipt's row and the status it moves are written in one transaction; a
//! receipt read again (the same bytes) changes nothing.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::deliveries::DeliveryRow;
use super::entities::{delivery, organisation, pec_incoming, pec_receipt};
use super::{Result, Store, instant, settle};
use crate::pec::PecStatus;

/// A receipt to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPecReceipt {
    /// SHA-256 of the raw message.
    pub sha256: String,
    /// When procedo read it.
    pub read_at: DateTime<Utc>,
    /// The delivery it is about (`None` when refused before linking).
    pub delivery_id: Option<i64>,
    /// `daticert` type.
    pub tipo: Option<String>,
    /// The provider's instant.
    pub provider_at: Option<DateTime<Utc>>,
    /// The provider's identifier.
    pub identificativo: Option<String>,
    /// The provider.
    pub gestore: Option<String>,
    /// `X-Riferimento-Message-ID`.
    pub riferimento: Option<String>,
    /// The recipient it is about.
    pub destinatario: Option<String>,
    /// The provider's explanation of an error.
    pub errore: Option<String>,
    /// Verified and linked; false when refused.
    pub accepted: bool,
    /// Why it was refused.
    pub reason: Option<String>,
    /// The verified signer.
    pub signer: Option<String>,
}

/// A stored receipt.
pub type PecReceiptRow = NewPecReceipt;

/// What recording a receipt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptRecorded {
    /// The same receipt was read before: nothing written.
    AlreadyRead,
    /// Recorded; the delivery's status moved to the given one (or stayed).
    Recorded(Option<PecStatus>),
}

/// A message received by PEC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPecIncoming {
    /// SHA-256 of the raw envelope.
    pub sha256: String,
    /// When procedo read it.
    pub read_at: DateTime<Utc>,
    /// When it was delivered to the mailbox.
    pub delivered_at: DateTime<Utc>,
    /// The sender's PEC address.
    pub mittente: String,
    /// The subject.
    pub oggetto: String,
    /// The provider's identifier.
    pub identificativo: Option<String>,
    /// The sender's provider.
    pub gestore: Option<String>,
    /// The organisation it was matched to.
    pub organisation_id: Option<String>,
    /// The procedure it was matched to.
    pub instance_id: Option<String>,
    /// `domanda`, `domanda_tardiva`, `da_abbinare`, `rifiutata`.
    pub outcome: String,
    /// Why (a refusal, a late application).
    pub reason: Option<String>,
    /// The protocollo registration's key.
    pub protocol_key: Option<String>,
}

/// A stored incoming message.
pub type PecIncomingRow = NewPecIncoming;

fn receipt_row(m: pec_receipt::Model) -> PecReceiptRow {
    NewPecReceipt {
        sha256: m.sha256,
        read_at: m.read_at,
        delivery_id: m.delivery_id,
        tipo: m.tipo,
        provider_at: m.provider_at,
        identificativo: m.identificativo,
        gestore: m.gestore,
        riferimento: m.riferimento,
        destinatario: m.destinatario,
        errore: m.errore,
        accepted: m.accepted,
        reason: m.reason,
        signer: m.signer,
    }
}

fn incoming_row(m: pec_incoming::Model) -> PecIncomingRow {
    NewPecIncoming {
        sha256: m.sha256,
        read_at: m.read_at,
        delivered_at: m.delivered_at,
        mittente: m.mittente,
        oggetto: m.oggetto,
        identificativo: m.identificativo,
        gestore: m.gestore,
        organisation_id: m.organisation_id,
        instance_id: m.instance_id,
        outcome: m.outcome,
        reason: m.reason,
        protocol_key: m.protocol_key,
    }
}

impl Store {
    /// The delivery sent with this Message-ID.
    pub async fn delivery_by_message_id(&self, message_id: &str) -> Result<Option<DeliveryRow>> {
        delivery::Entity::find()
            .filter(delivery::Column::MessageId.eq(message_id))
            .one(&self.db)
            .await?
            .map(DeliveryRow::from_model)
            .transpose()
    }

    /// Whether a receipt with these bytes was read already.
    pub async fn pec_receipt_seen(&self, sha256: &str) -> Result<bool> {
        Ok(pec_receipt::Entity::find()
            .filter(pec_receipt::Column::Sha256.eq(sha256))
            .one(&self.db)
            .await?
            .is_some())
    }

    /// Records a receipt and, when accepted, moves its delivery's PEC status forward (never
    /// back), in one transaction.
    pub async fn record_pec_receipt(
        &self,
        receipt: &NewPecReceipt,
        status: Option<PecStatus>,
    ) -> Result<ReceiptRecorded> {
        let (txn, _turn) = self.begin_write().await?;
        let outcome = async {
            let row = pec_receipt::ActiveModel {
                id: NotSet,
                sha256: Set(receipt.sha256.clone()),
                read_at: Set(instant(receipt.read_at)),
                delivery_id: Set(receipt.delivery_id),
                tipo: Set(receipt.tipo.clone()),
                provider_at: Set(receipt.provider_at.map(instant)),
                identificativo: Set(receipt.identificativo.clone()),
                gestore: Set(receipt.gestore.clone()),
                riferimento: Set(receipt.riferimento.clone()),
                destinatario: Set(receipt.destinatario.clone()),
                errore: Set(receipt.errore.clone()),
                accepted: Set(receipt.accepted),
                reason: Set(receipt.reason.clone()),
                signer: Set(receipt.signer.clone()),
            };
            let inserted = pec_receipt::Entity::insert(row)
                .on_conflict(
                    OnConflict::column(pec_receipt::Column::Sha256)
                        .do_nothing()
                        .to_owned(),
                )
                .exec_without_returning(&txn)
                .await?;
            if inserted == 0 {
                return Ok(ReceiptRecorded::AlreadyRead);
            }
            let (Some(id), Some(next), true) = (receipt.delivery_id, status, receipt.accepted)
            else {
                return Ok(ReceiptRecorded::Recorded(None));
            };
            delivery::Entity::update_many()
                .col_expr(delivery::Column::PecStatus, Expr::value(next.as_str()))
                .col_expr(
                    delivery::Column::PecAt,
                    Expr::value(receipt.provider_at.map(instant)),
                )
                .filter(delivery::Column::Id.eq(id))
                .exec(&txn)
                .await?;
            Ok(ReceiptRecorded::Recorded(Some(next)))
        }
        .await;
        settle(txn, outcome).await
    }

    /// The receipts of a delivery, oldest first.
    pub async fn pec_receipts(&self, delivery_id: i64) -> Result<Vec<PecReceiptRow>> {
        Ok(pec_receipt::Entity::find()
            .filter(pec_receipt::Column::DeliveryId.eq(delivery_id))
            .order_by_asc(pec_receipt::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(receipt_row)
            .collect())
    }

    /// The receipts refused (bad signature, unknown message), latest first.
    pub async fn pec_refused_receipts(&self, limit: u64) -> Result<Vec<PecReceiptRow>> {
        Ok(pec_receipt::Entity::find()
            .filter(pec_receipt::Column::Accepted.eq(false))
            .order_by_desc(pec_receipt::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(receipt_row)
            .collect())
    }

    /// Records a message received by PEC; false when it was recorded before.
    pub async fn record_pec_incoming(&self, new: &NewPecIncoming) -> Result<bool> {
        let row = pec_incoming::ActiveModel {
            id: NotSet,
            sha256: Set(new.sha256.clone()),
            read_at: Set(instant(new.read_at)),
            delivered_at: Set(instant(new.delivered_at)),
            mittente: Set(new.mittente.clone()),
            oggetto: Set(new.oggetto.clone()),
            identificativo: Set(new.identificativo.clone()),
            gestore: Set(new.gestore.clone()),
            organisation_id: Set(new.organisation_id.clone()),
            instance_id: Set(new.instance_id.clone()),
            outcome: Set(new.outcome.clone()),
            reason: Set(new.reason.clone()),
            protocol_key: Set(new.protocol_key.clone()),
        };
        let inserted = pec_incoming::Entity::insert(row)
            .on_conflict(
                OnConflict::column(pec_incoming::Column::Sha256)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        Ok(inserted > 0)
    }

    /// Whether an incoming message with these bytes was recorded.
    pub async fn pec_incoming_seen(&self, sha256: &str) -> Result<bool> {
        Ok(pec_incoming::Entity::find()
            .filter(pec_incoming::Column::Sha256.eq(sha256))
            .one(&self.db)
            .await?
            .is_some())
    }

    /// The messages received by PEC, latest first.
    pub async fn pec_incoming(&self, limit: u64) -> Result<Vec<PecIncomingRow>> {
        Ok(pec_incoming::Entity::find()
            .order_by_desc(pec_incoming::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(incoming_row)
            .collect())
    }

    /// The organisation whose PEC address this is (case ignored).
    pub async fn organisation_by_pec(
        &self,
        address: &str,
    ) -> Result<Option<super::OrganisationRow>> {
        let wanted = address.trim().to_lowercase();
        let all = organisation::Entity::find()
            .filter(organisation::Column::Pec.is_not_null())
            .all(&self.db)
            .await?;
        for m in all {
            if m.pec.as_deref().map(|p| p.trim().to_lowercase()) == Some(wanted.clone()) {
                return super::identity::organisation_row(m).map(Some);
            }
        }
        Ok(None)
    }
}

/// Sets (or clears) an organisation's PEC address; false for an unknown organisation.
pub(super) async fn set_organisation_pec<C: sea_orm::ConnectionTrait>(
    conn: &C,
    id: &str,
    pec: Option<&str>,
) -> Result<bool> {
    let res = organisation::Entity::update_many()
        .col_expr(
            organisation::Column::Pec,
            Expr::value(pec.map(str::to_owned)),
        )
        .filter(organisation::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(res.rows_affected > 0)
}
