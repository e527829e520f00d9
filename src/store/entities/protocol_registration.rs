//! `protocol_registrations`: one registration in the protocol register or in a repertorio.
//! Append-only (the database refuses updates but the one that seals a carried-over row).

use sea_orm::entity::prelude::*;

/// One registration.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "protocol_registrations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Position in the register's hash chain (shared with amendments).
    pub log_seq: i64,
    pub register: String,
    pub year: i32,
    pub number: i64,
    pub registered_at: DateTimeUtc,
    /// `entrata`, `uscita` or `interno`.
    pub direction: String,
    pub subject: String,
    /// JSON text: the correspondents.
    pub correspondents: String,
    pub classification: Option<String>,
    pub fascicolo: Option<String>,
    pub instance_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub sender_reference: Option<String>,
    /// `AAAA-MM-GG`.
    pub sender_date: Option<String>,
    pub received_at: Option<DateTimeUtc>,
    pub channel: String,
    pub operator: String,
    /// `locale`, `esterno` or `emergenza`.
    pub source: String,
    pub segnatura: Option<String>,
    pub chain: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
