//! `deliveries`: one email to one recipient of a notification, with its delivery record.

use sea_orm::entity::prelude::*;

/// One delivery.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "deliveries")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub outbox_id: i64,
    pub instance_id: Option<String>,
    pub person_id: Option<String>,
    pub recipient_email: String,
    pub recipient_name: String,
    /// The message kind (template).
    pub kind: String,
    pub urgent: bool,
    /// JSON text: the rendered email, sent as is on every attempt.
    pub email: String,
    pub message_id: String,
    /// `pending`, `held`, `digested`, `sent` or `failed`.
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    pub last_error: Option<String>,
    pub last_code: Option<i32>,
    pub server_answer: Option<String>,
    pub claimed_by: Option<String>,
    pub lease_until: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub sent_at: Option<DateTimeUtc>,
    /// `email` or `pec`.
    pub channel: String,
    /// For PEC: `inviata`, `accettata`, …, `consegnata`, `mancata_consegna` (see `pec::status`).
    pub pec_status: Option<String>,
    /// For PEC: the provider's instant of the receipt that set the status.
    pub pec_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
