//! `protocol_daily_registers`: the registro giornaliero of each day and its hand-over.

use sea_orm::entity::prelude::*;

/// One day's register.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "protocol_daily_registers")]
pub struct Model {
    /// `AAAA-MM-GG` (Europe/Rome).
    #[sea_orm(primary_key, auto_increment = false)]
    pub day: String,
    pub produced_at: DateTimeUtc,
    pub registrations: i32,
    pub amendments: i32,
    pub csv_sha256: String,
    pub html_sha256: String,
    pub chain_head: Option<String>,
    /// `da_inviare`, `inviato` or `errore`.
    pub conservation_status: String,
    pub conservation_receipt: Option<String>,
    pub conserved_at: Option<DateTimeUtc>,
    pub last_error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
