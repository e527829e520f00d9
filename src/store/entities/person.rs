//! `people`: persons who act through the API, each in one organisation, with their roles.

use sea_orm::entity::prelude::*;

/// One person.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "people")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    pub email: String,
    pub organisation_id: String,
    /// JSON text: the list of role names.
    pub roles: String,
    /// `immediato` or `giornaliero`.
    pub digest: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
