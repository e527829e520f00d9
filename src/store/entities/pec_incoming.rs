//! `pec_incoming`: the messages received by PEC (transport envelopes), with what became of
//! them.

use sea_orm::entity::prelude::*;

/// One incoming message.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "pec_incoming")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub sha256: String,
    pub read_at: DateTimeUtc,
    /// When it was delivered to the mailbox: what timeliness is judged on.
    pub delivered_at: DateTimeUtc,
    pub mittente: String,
    pub oggetto: String,
    pub identificativo: Option<String>,
    pub gestore: Option<String>,
    pub organisation_id: Option<String>,
    pub instance_id: Option<String>,
    /// `domanda`, `domanda_tardiva`, `da_abbinare`, `rifiutata`.
    pub outcome: String,
    pub reason: Option<String>,
    pub protocol_key: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
