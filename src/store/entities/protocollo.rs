//! `protocollo`: the local protocol register, numbered per year.

use sea_orm::entity::prelude::*;

/// One registration.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "protocollo")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub year: i32,
    pub number: i64,
    /// `entrata`, `uscita` or `interno`.
    pub direction: String,
    pub subject: String,
    pub instance_id: Option<String>,
    pub outbox_id: Option<i64>,
    pub registered_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
