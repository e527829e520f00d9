//! `submission_documents`: which documents a submission carries, under which name.

use sea_orm::entity::prelude::*;

/// One attached document.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "submission_documents")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub submission_id: String,
    pub sha256: String,
    pub name: String,
    /// The soccorso response that added it, if any.
    pub soccorso_id: Option<String>,
    pub added_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
