//! `history`: the append-only log of steps. The store only ever inserts here.

use sea_orm::entity::prelude::*;

/// One step of one instance.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "history")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub instance_id: String,
    pub seq: i64,
    pub at: DateTimeUtc,
    pub actor_id: String,
    pub role: String,
    pub event: String,
    pub from_state: Option<String>,
    pub to_state: String,
    /// JSON text: the command's payload.
    pub payload: String,
    pub late: bool,
    pub idempotency_key: Option<String>,
    /// JSON text: the effects the step produced.
    pub effects: String,
    /// The participant whose event it was.
    pub participant_id: Option<String>,
    /// The participant's state before (`None` when it joined).
    pub participant_from: Option<String>,
    /// The participant's state after.
    pub participant_to: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
