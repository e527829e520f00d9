//! `soccorso_responses`: an ETS's answer to a soccorso istruttorio on its submission.

use sea_orm::entity::prelude::*;

/// One response.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "soccorso_responses")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub submission_id: String,
    pub person_id: String,
    pub note: Option<String>,
    pub responded_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
