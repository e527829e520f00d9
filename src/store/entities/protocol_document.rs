//! `protocol_documents`: the files of a registration, by SHA-256.

use sea_orm::entity::prelude::*;

/// One document of a registration.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "protocol_documents")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub registration_id: i64,
    pub position: i32,
    /// `primario` or `allegato`.
    pub role: String,
    pub name: String,
    pub media_type: String,
    pub size: i64,
    /// Hex SHA-256 of the content.
    pub sha256: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
