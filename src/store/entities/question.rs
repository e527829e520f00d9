//! `questions`: quesiti asked by ETS on an instance and the Ufficio di Piano's answers.

use sea_orm::entity::prelude::*;

/// One question.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "questions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub instance_id: String,
    pub organisation_id: String,
    pub person_id: String,
    pub text: String,
    pub answer: Option<String>,
    pub public: bool,
    pub asked_at: DateTimeUtc,
    pub answered_at: Option<DateTimeUtc>,
    pub answered_by: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
