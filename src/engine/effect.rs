//! Effects as data: what a step asks the world to do. The engine performs none of them; the
//! store commits them with the step (outbox, timers) and adapters carry them out after.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The durable data of an instance besides its state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceData {
    /// Variable values by name (JSON, canonical per type).
    pub variables: Map<String, Value>,
    /// How each term-computed variable got its value.
    #[serde(default)]
    pub terms: BTreeMap<String, TermRecord>,
    /// Stop-the-clock intervals per term variable.
    #[serde(default)]
    pub suspensions: BTreeMap<String, Vec<SuspensionRecord>>,
}

/// The computation behind a term variable: what a judge reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TermRecord {
    /// The rule, as a person says it.
    pub rule: String,
    /// The variable the term runs from.
    pub from: String,
    /// The dies a quo.
    pub start: NaiveDate,
    /// The civil date of expiry.
    pub expiry: NaiveDate,
    /// The instant of expiry (RFC 3339, Europe/Rome).
    pub deadline: String,
    /// One Italian line per step.
    pub trace: Vec<String>,
}

/// A suspension of a term (soccorso istruttorio, art. 10-bis…).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuspensionRecord {
    /// The day the clock stopped.
    pub from: NaiveDate,
    /// The day it restarted; `None` while suspended.
    pub until: Option<NaiveDate>,
}

/// What a timer does when it fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TimerAction {
    /// Fire an event on the instance.
    Fire {
        /// The event.
        event: String,
    },
    /// Send a reminder.
    Remind {
        /// Role of the recipients.
        role: String,
        /// Message kind.
        template: String,
        /// Ignores digest preferences.
        urgent: bool,
    },
}

/// A timer the instance needs armed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimerPlan {
    /// Stable key within the instance: `timer` or `timer#promemoria-N`.
    pub key: String,
    /// The timer id in the definition.
    pub timer: String,
    /// When it fires.
    pub fire_at: DateTime<Utc>,
    /// What it does.
    pub action: TimerAction,
    /// Why it fires then (term trace and reminder offset), Italian.
    pub trace: Vec<String>,
}

/// A notification to send to the parties of a role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationPlan {
    /// Recipients' role.
    pub role: String,
    /// Message kind.
    pub template: String,
    /// Ignores digest preferences.
    pub urgent: bool,
    /// Template context without the recipient (`destinatario` and `ambito` are added when sent).
    pub context: Value,
    /// Calendar invite to attach, with the instance's history seq as its SEQUENCE.
    #[serde(default)]
    pub invite: Option<crate::definition::InviteMethod>,
    /// Which registration of the same step the message cites ("prot. n. … del …"): the
    /// ordinal of its `RegisterProtocol` effect among the step's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<u32>,
}

/// An effect of a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    /// Arm a timer, replacing any pending one with the same key.
    ScheduleTimer(TimerPlan),
    /// Disarm the pending timer with this key.
    CancelTimer {
        /// The key.
        key: String,
    },
    /// Send a notification.
    Notify(NotificationPlan),
    /// Register a document in the protocollo.
    RegisterProtocol {
        /// entrata, uscita, interno.
        direction: String,
        /// Subject template (handlebars over `context`).
        subject: String,
        /// Variables at the time of the step.
        context: Value,
        /// A repertorio instead of the protocol register.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        register: Option<String>,
        /// The role whose people are the recipients.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        /// The message template rendered as the registered document.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        document: Option<String>,
        /// Titolario classification.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        classification: Option<String>,
    },
    /// Register as incoming what an ETS sent through the platform: an application, or its
    /// answer to a soccorso istruttorio. Queued by the store with what it registers.
    RegisterIncoming {
        /// The submission.
        submission_id: String,
        /// The soccorso answer, when that is what arrived.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        soccorso_id: Option<String>,
    },
    /// Start a sub-procedure.
    StartInstance {
        /// Definition id.
        procedure: String,
        /// Its variables.
        variables: Map<String, Value>,
        /// The instance that starts it (recorded as the child's parent, not as a variable).
        #[serde(default)]
        parent: Option<String>,
    },
}

impl Effect {
    /// Short kind name, for outbox rows and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Effect::ScheduleTimer(_) => "schedule_timer",
            Effect::CancelTimer { .. } => "cancel_timer",
            Effect::Notify(_) => "notify",
            Effect::RegisterProtocol { .. } => "protocollo",
            Effect::RegisterIncoming { .. } => "protocollo_in",
            Effect::StartInstance { .. } => "start_instance",
        }
    }
}
