//! `submissions`: an ETS's application to an instance (an avviso), with its outcome.

use sea_orm::entity::prelude::*;

/// One submission.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "submissions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub instance_id: String,
    pub organisation_id: String,
    pub person_id: String,
    /// `submitted` or `withdrawn`.
    pub status: String,
    pub note: Option<String>,
    pub submitted_at: DateTimeUtc,
    pub withdrawn_at: Option<DateTimeUtc>,
    pub outcome: Option<String>,
    pub score: Option<f64>,
    pub outcome_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
