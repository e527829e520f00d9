//! `pec_receipts`: every receipt read from the PEC mailbox — linked to its delivery, or
//! refused with the reason.

use sea_orm::entity::prelude::*;

/// One receipt.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "pec_receipts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// SHA-256 of the raw message (unique: a receipt is read once).
    pub sha256: String,
    pub read_at: DateTimeUtc,
    pub delivery_id: Option<i64>,
    pub tipo: Option<String>,
    pub provider_at: Option<DateTimeUtc>,
    pub identificativo: Option<String>,
    pub gestore: Option<String>,
    pub riferimento: Option<String>,
    pub destinatario: Option<String>,
    pub errore: Option<String>,
    pub accepted: bool,
    pub reason: Option<String>,
    pub signer: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
