//! `timers`: armed instants of instances, claimed with a lease by the scheduler.

use sea_orm::entity::prelude::*;

/// One timer row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "timers")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub instance_id: String,
    pub key: String,
    pub timer: String,
    pub fire_at: DateTimeUtc,
    /// JSON text: the `TimerAction`.
    pub action: String,
    /// JSON text: the trace lines.
    pub trace: String,
    pub status: String,
    pub claimed_by: Option<String>,
    pub lease_until: Option<DateTimeUtc>,
    pub fired_at: Option<DateTimeUtc>,
    pub outcome: Option<String>,
    pub created_at: DateTimeUtc,
    /// Failed firings so far (not claims: a claim that ends well is no attempt).
    pub attempts: i32,
    /// After a failed firing: not to be claimed before.
    pub retry_at: Option<DateTimeUtc>,
    /// Why the last firing failed.
    pub last_error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
