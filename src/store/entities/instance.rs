//! `instances`: one row per procedure instance, `version` being the optimistic lock.

use sea_orm::entity::prelude::*;

/// One instance.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "instances")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub definition_id: String,
    pub definition_version: i32,
    pub parent_id: Option<String>,
    pub state: String,
    pub is_final: bool,
    /// JSON text: the serialized `InstanceData`.
    pub data: String,
    pub version: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
