//! The validated procedure: every name resolved, every term and expression parsed.
//! Built only by `validate`; everything downstream trusts it.

use std::fmt;

use indexmap::IndexMap;
use serde::Serialize;

use super::expr::Expr;
use crate::terms;

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub(crate) String);

        impl $name {
            /// The name as written in the workflow file.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// A state of a procedure.
    StateId
);
name_type!(
    /// A role (`rup`, `ets`, `sindaco`…), or the built-in `system`.
    RoleName
);
name_type!(
    /// The name of an event that moves an instance.
    EventName
);
name_type!(
    /// A variable of a procedure.
    VarName
);

/// The role the scheduler acts with when a timer fires.
pub const SYSTEM_ROLE: &str = "system";

/// Types of variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VarType {
    /// A civil date, `YYYY-MM-DD`.
    Date,
    /// An instant, RFC 3339 with offset.
    DateTime,
    /// Free text.
    Text,
    /// A number.
    Number,
    /// Yes or no.
    Bool,
    /// A list of parties (ETS, comuni, persons), each an id or an object with an `id`.
    Parties,
    /// A list of texts (an ordine del giorno, missing documents…).
    List,
}

impl VarType {
    /// Parses the `type:` of a variable.
    pub fn parse(word: &str) -> Option<VarType> {
        Some(match word {
            "date" => VarType::Date,
            "datetime" => VarType::DateTime,
            "text" => VarType::Text,
            "number" => VarType::Number,
            "bool" => VarType::Bool,
            "parties" | "party_list" => VarType::Parties,
            "list" => VarType::List,
            _ => return None,
        })
    }
}

impl fmt::Display for VarType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VarType::Date => "date",
            VarType::DateTime => "datetime",
            VarType::Text => "text",
            VarType::Number => "number",
            VarType::Bool => "bool",
            VarType::Parties => "parties",
            VarType::List => "list",
        })
    }
}

/// Who may read a variable besides the Ufficio di Piano.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Only staff of the Ambito.
    Staff,
    /// Everyone who may see the instance (e.g. a published deadline).
    Public,
    /// These roles too.
    Roles(Vec<RoleName>),
}

/// A variable whose value is computed by a legal term from another variable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TermDef {
    /// The dies a quo (a date or datetime variable).
    pub from: VarName,
    /// The rule.
    pub rule: terms::Rule,
}

/// A declared variable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Variable {
    /// Its name.
    pub name: VarName,
    /// Its type.
    pub kind: VarType,
    /// Label for people (Italian).
    pub label: Option<String>,
    /// Must be given when the instance starts.
    pub required: bool,
    /// Who may read it.
    pub visibility: Visibility,
    /// Computed from a term rule, if any.
    pub term: Option<TermDef>,
}

/// A state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct State {
    /// Its id.
    pub id: StateId,
    /// Label for people.
    pub title: String,
    /// Instances start here.
    pub initial: bool,
    /// Instances end here.
    pub is_final: bool,
    /// Actions taken on entering it.
    pub on_enter: Vec<Action>,
}

/// An input a transition takes from the command's payload into a variable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Input {
    /// The variable it fills.
    pub variable: VarName,
    /// Whether the command must carry it.
    pub required: bool,
}

/// A guard condition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Guard {
    /// The parsed condition.
    pub expr: Expr,
    /// The condition as written.
    pub source: String,
    /// What to tell the person when it does not hold (Italian).
    pub message: String,
}

/// A transition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    /// The event that takes it.
    pub event: EventName,
    /// Label for people.
    pub title: String,
    /// States it leaves from.
    pub from: Vec<StateId>,
    /// State it enters.
    pub to: StateId,
    /// Roles that may fire it (the scheduler may fire events its timers name).
    pub roles: Vec<RoleName>,
    /// Inputs it reads from the payload.
    pub inputs: Vec<Input>,
    /// Conditions that must all hold.
    pub guard: Vec<Guard>,
    /// Actions taken when it is taken.
    pub actions: Vec<Action>,
}

/// A notification to the parties of a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notify {
    /// Role whose parties receive it.
    pub role: RoleName,
    /// Message kind (template name).
    pub template: String,
    /// Urgent messages ignore the daily-digest preference.
    pub urgent: bool,
    /// A calendar invite to attach (convocations).
    pub invite: Option<InviteMethod>,
}

/// The iTIP method of an attached calendar invite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InviteMethod {
    /// A new or changed meeting (`METHOD:REQUEST`, SEQUENCE raised on every change).
    Request,
    /// A cancelled meeting (`METHOD:CANCEL`).
    Cancel,
}

/// Direction of a protocollo registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Received document.
    Entrata,
    /// Sent document.
    Uscita,
    /// Internal document.
    Interno,
}

/// A registration a step asks for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Protocollo {
    /// In, out or internal.
    pub direction: Direction,
    /// Subject (handlebars over variables).
    pub subject: String,
    /// A repertorio's code instead of the protocol register.
    pub register: Option<String>,
    /// The role whose people are the recipients (outgoing).
    pub to: Option<RoleName>,
    /// The message template rendered as the registered document.
    pub document: Option<String>,
    /// Titolario classification.
    pub classification: Option<String>,
}

/// An action.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Send a notification.
    Notify(Notify),
    /// Register a document in the protocollo (or in a repertorio).
    Protocollo(Protocollo),
    /// Assign variables.
    Set(Vec<(VarName, Expr)>),
    /// Start a sub-procedure.
    Start {
        /// Definition id of the child.
        procedure: String,
        /// Child variables from expressions over the parent.
        variables: Vec<(String, Expr)>,
    },
    /// Stop the clock of a term variable (e.g. soccorso istruttorio).
    Suspend(VarName),
    /// Restart the clock of a term variable; the term is extended by the suspension.
    Resume(VarName),
}

/// When a reminder fires before its timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Offset {
    /// Civil days before (same local time of day).
    Days(u32),
    /// Hours before.
    Hours(u32),
}

/// A reminder.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reminder {
    /// How long before the timer.
    pub before: Offset,
    /// What to send.
    pub notify: Notify,
}

/// A timer: armed while the instance is in one of `while_in`, at the instant held by `at`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timer {
    /// Its id, unique in the procedure.
    pub id: String,
    /// States in which it is armed.
    pub while_in: Vec<StateId>,
    /// Date or datetime variable that holds its instant.
    pub at: VarName,
    /// Event it fires, if any (a timer may only carry reminders).
    pub fires: Option<EventName>,
    /// Reminders before it.
    pub reminders: Vec<Reminder>,
}

/// The jobs a recurring entry may run (the scheduler's `JobKind`s).
pub const JOB_KINDS: &[&str] = &["digest", "protocol_register", "protocol_reconcile"];

/// A recurring job declared by the procedure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CronJob {
    /// Its id.
    pub id: String,
    /// Cron expression (seconds first, as the `cron` crate reads it), Europe/Rome.
    pub schedule: String,
    /// The job to run (`digest`, `protocol_register`…).
    pub job: String,
}

/// Where the API accepts ETS submissions, questions and soccorso answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Submissions {
    /// The datetime variable holding the deadline: a submission after it is refused.
    pub deadline: VarName,
    /// States in which submissions (and withdrawals) are open.
    pub while_in: Vec<StateId>,
    /// States in which questions may be asked.
    pub questions_while: Vec<StateId>,
    /// States in which soccorso istruttorio answers are accepted.
    pub soccorso_while: Vec<StateId>,
    /// States in which the ranking (graduatoria) is public; empty means the final states.
    pub ranking_while: Vec<StateId>,
}

/// Calendar settings of a procedure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct CalendarSettings {
    /// Holidays and closures (closures already read from the referenced file).
    #[serde(skip)]
    pub calendar: terms::Calendar,
    /// The closures file as written, for people.
    pub closures_file: Option<String>,
    /// Saturday shifts terms like a holiday.
    pub saturday_shift: bool,
    /// Office closures shift terms like holidays.
    pub closures_shift: bool,
}

/// A validated procedure definition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Procedure {
    /// Stable id.
    pub id: String,
    /// Version; instances pin it.
    pub version: u32,
    /// Title (Italian).
    pub title: String,
    /// Description (Italian).
    pub description: Option<String>,
    /// Calendar.
    pub calendar: CalendarSettings,
    /// Roles with their labels.
    pub roles: IndexMap<RoleName, String>,
    /// Variables.
    pub variables: IndexMap<VarName, Variable>,
    /// States.
    pub states: IndexMap<StateId, State>,
    /// Transitions.
    pub transitions: Vec<Transition>,
    /// Timers.
    pub timers: Vec<Timer>,
    /// Recurring jobs.
    pub cron: Vec<CronJob>,
    /// ETS submissions through the API, if the procedure takes any.
    pub submissions: Option<Submissions>,
}

impl Procedure {
    /// The initial state.
    pub fn initial_state(&self) -> &State {
        // validate guarantees exactly one initial state
        self.states.values().find(|s| s.initial).unwrap_or_else(|| {
            self.states
                .values()
                .next()
                .expect("validated procedure has states")
        })
    }

    /// A state by id.
    pub fn state(&self, id: &str) -> Option<&State> {
        self.states.get(id)
    }

    /// A variable by name.
    pub fn variable(&self, name: &str) -> Option<&Variable> {
        self.variables.get(name)
    }

    /// Transitions that `event` takes from `state`.
    pub fn transition(&self, state: &str, event: &str) -> Option<&Transition> {
        self.transitions
            .iter()
            .find(|t| t.event.as_str() == event && t.from.iter().any(|f| f.as_str() == state))
    }

    /// Transitions leaving `state`.
    pub fn transitions_from<'a>(
        &'a self,
        state: &'a str,
    ) -> impl Iterator<Item = &'a Transition> + 'a {
        self.transitions
            .iter()
            .filter(move |t| t.from.iter().any(|f| f.as_str() == state))
    }

    /// Whether a timer of this procedure fires `event` while in `state`.
    pub fn timer_fires(&self, state: &str, event: &str) -> bool {
        self.timers.iter().any(|t| {
            t.fires.as_ref().is_some_and(|e| e.as_str() == event)
                && t.while_in.iter().any(|s| s.as_str() == state)
        })
    }
}
