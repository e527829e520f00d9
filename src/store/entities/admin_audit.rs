//! `admin_audit`: the append-only log of administrative actions.

use sea_orm::entity::prelude::*;

/// One administrative action.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "admin_audit")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub at: DateTimeUtc,
    /// The person who acted (or `riga di comando` for the CLI).
    pub actor_id: String,
    /// The role they acted in.
    pub role: String,
    /// What they did (`crea_persona`, `revoca_token`, `pubblica_definizione`…).
    pub action: String,
    /// On what (an id).
    pub subject: String,
    /// The details, as JSON text (never a secret).
    pub detail: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
