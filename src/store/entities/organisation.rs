//! `organisations`: the Ambito, its comuni and the ETS that call the API.

use sea_orm::entity::prelude::*;

/// One organisation.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "organisations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    /// `ambito`, `comune` or `ets`.
    pub kind: String,
    pub codice_fiscale: Option<String>,
    pub runts: Option<String>,
    /// The PEC address (domicilio digitale).
    pub pec: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
