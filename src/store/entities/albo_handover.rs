//! `albo_handovers`: acts handed to the ente capofila's albo (append-only).

use sea_orm::entity::prelude::*;

/// One hand-over.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "albo_handovers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub act_id: String,
    pub instance_id: String,
    pub digest: String,
    pub receipt: String,
    pub handed_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
