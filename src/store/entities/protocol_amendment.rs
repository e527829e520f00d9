//! `protocol_amendments`: annulments, corrections and reconciliations of registrations.

use sea_orm::entity::prelude::*;

/// One amendment.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "protocol_amendments")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub log_seq: i64,
    pub registration_id: i64,
    /// `annullamento`, `correzione` or `riconciliazione`.
    pub kind: String,
    pub field: Option<String>,
    pub previous: Option<String>,
    pub value: Option<String>,
    pub reason: String,
    pub act: Option<String>,
    pub operator: String,
    pub at: DateTimeUtc,
    pub chain: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
