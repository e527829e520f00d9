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
    /// Proroghe and riaperture per term variable, oldest first.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extensions: BTreeMap<String, Vec<ExtensionRecord>>,
    /// The participants, by id (the id of their application).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub participants: BTreeMap<String, ParticipantData>,
    /// The parent that awaits this instance, and the event it receives when it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentLink>,
    /// The commissione's evaluation, once the criteria are fixed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<super::evaluation::EvaluationData>,
    /// The record of a meeting of a body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meeting: Option<super::meeting::MeetingData>,
    /// Terms that passed with the procedure open (`expired:` timers), by timer.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub expired: BTreeMap<String, super::expiry::ExpiredTerm>,
}

/// One participant: an ETS (or a group led by its capofila) with its application, in its own
/// lifecycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParticipantData {
    /// The organisation that acts and receives (for a group, the capofila).
    pub organisation_id: String,
    /// Its name, as messages print it.
    pub name: String,
    /// For a group still to be formed (ATS): the other members, named.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    /// Its state in the participant's lifecycle.
    pub state: String,
    /// Its variables.
    #[serde(default)]
    pub variables: Map<String, Value>,
    /// How each of its term variables got its value.
    #[serde(default)]
    pub terms: BTreeMap<String, TermRecord>,
    /// Its stop-the-clock intervals.
    #[serde(default)]
    pub suspensions: BTreeMap<String, Vec<SuspensionRecord>>,
    /// When it joined (its application arrived).
    pub joined_at: DateTime<Utc>,
    /// It withdrew its application: it no longer counts, and nothing more is sent to it.
    #[serde(default)]
    pub withdrawn: bool,
    /// What the PEC receipts attested about the messages sent to it, by the variable that
    /// received the consegna date (or by message kind).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub consegne: BTreeMap<String, super::consegna::ConsegnaRecord>,
    /// Its organisation's PEC address when it joined; without one, a PEC notification goes
    /// by ordinary email and its term runs from the sending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pec: Option<String>,
}

/// A proroga or riapertura of a term, as the act made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtensionRecord {
    /// Proroga or riapertura.
    pub kind: crate::definition::ExtensionKind,
    /// When the act was recorded.
    pub at: DateTime<Utc>,
    /// The expiry before it (the value of the variable).
    pub previous: Value,
    /// The new expiry.
    pub new: Value,
    /// The act's reference.
    pub act: String,
    /// Why, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Who awaits an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentLink {
    /// The parent instance.
    pub instance_id: String,
    /// The event it receives when this one ends.
    pub event: String,
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
        /// The participant whose event it is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        participant: Option<String>,
    },
    /// Send a reminder.
    Remind {
        /// Role of the recipients.
        role: String,
        /// Message kind.
        template: String,
        /// Ignores digest preferences.
        urgent: bool,
        /// The participant whose term it reminds of.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        participant: Option<String>,
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
    /// Only the people of these organisations (a participant's capofila, a parties variable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organisations: Option<Vec<String>>,
    /// Every person with the role, whoever applied (what is published).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub public: bool,
    /// The participant the message is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant: Option<String>,
    /// Ordinary email or PEC.
    #[serde(default, skip_serializing_if = "crate::definition::Channel::is_email")]
    pub channel: crate::definition::Channel,
    /// The participant's variable that receives the consegna date (PEC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consegna: Option<String>,
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
        /// Only the people of these organisations are the recipients.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        organisations: Option<Vec<String>>,
        /// The participant the act is about.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        participant: Option<String>,
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
        /// The event the parent receives when the child ends.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        await_event: Option<String>,
    },
    /// A later session approved the verbale of an earlier meeting of the body (its first item).
    ApproveVerbale {
        /// The earlier meeting.
        instance_id: String,
        /// Who approved it, when.
        approval: super::meeting::VerbaleApproval,
    },
    /// Tell the parent that awaits this instance that it ended, with its results.
    ResumeParent {
        /// The parent.
        parent_id: String,
        /// The event it receives.
        event: String,
        /// The child's declared results.
        results: Map<String, Value>,
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
            Effect::ResumeParent { .. } => "resume_parent",
            Effect::ApproveVerbale { .. } => "approva_verbale",
        }
    }
}
