//! `outbox`: effects to carry out after their step committed.

use sea_orm::entity::prelude::*;

/// One outbox row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub instance_id: Option<String>,
    pub kind: String,
    /// JSON text: the serialized `Effect`.
    pub payload: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    pub last_error: Option<String>,
    pub claimed_by: Option<String>,
    pub lease_until: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub done_at: Option<DateTimeUtc>,
    /// The history seq of the step that queued it (none for recurring jobs).
    pub step_seq: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
