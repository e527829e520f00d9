//! `InstanceEvent`: a committed step, pushed to subscribers who may see its instance.

use async_graphql::{ID, SimpleObject};
use chrono::{DateTime, Utc};

/// A step that committed.
#[derive(Debug, Clone, PartialEq, Eq, SimpleObject)]
pub struct InstanceEvent {
    /// The instance.
    pub instance_id: ID,
    /// Its procedure.
    pub definition_id: String,
    /// The history seq of the step, for staff; 0 for others (the gaps would count the steps
    /// of applications that are not theirs).
    pub seq: i64,
    /// The event (`avvio` for a start).
    pub event: String,
    /// State before (none for a start).
    pub from_state: Option<String>,
    /// State after.
    pub to_state: String,
    /// When it committed (service clock).
    pub at: DateTime<Utc>,
    /// The role that acted.
    pub actor_role: String,
    /// The participant (application) whose event it was: sent to staff and to that
    /// participant's organisation only.
    pub participant_id: Option<ID>,
    /// Its state before (none when it joined).
    pub participant_from: Option<String>,
    /// Its state after.
    pub participant_to: Option<String>,
}
