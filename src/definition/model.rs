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
    /// The rule (its length and time of day are the defaults when the variables below are
    /// unset).
    pub rule: terms::Rule,
    /// A number variable that, when set, gives the length of the term in its unit.
    pub length_var: Option<VarName>,
    /// A text variable `HH:MM` that, when set, gives the time of day of the expiry.
    pub at_var: Option<VarName>,
}

/// How numbers computed by expressions are rounded (divisions, and every assigned value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NumberSettings {
    /// Decimal places kept.
    pub decimals: u32,
    /// The rounding rule.
    pub rounding: Rounding,
}

impl Default for NumberSettings {
    fn default() -> Self {
        NumberSettings {
            decimals: 2,
            rounding: Rounding::HalfUp,
        }
    }
}

/// A rounding rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    /// Half away from zero (the common "arrotondamento commerciale").
    HalfUp,
    /// Half to even (banker's rounding).
    HalfEven,
    /// Towards zero (truncation).
    Down,
    /// Away from zero.
    Up,
}

impl Rounding {
    /// Parses the `rounding:` of `numbers:`.
    pub fn parse(word: &str) -> Option<Rounding> {
        Some(match word {
            "half_up" => Rounding::HalfUp,
            "half_even" => Rounding::HalfEven,
            "down" => Rounding::Down,
            "up" => Rounding::Up,
            _ => return None,
        })
    }
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
    /// For a participant's transition: the states of the procedure in which it may be taken
    /// (empty: any state that is not final).
    pub while_in: Vec<StateId>,
    /// Roles that may fire it (the scheduler may fire events its timers name).
    pub roles: Vec<RoleName>,
    /// Inputs it reads from the payload.
    pub inputs: Vec<Input>,
    /// Conditions that must all hold.
    pub guard: Vec<Guard>,
    /// Actions taken when it is taken.
    pub actions: Vec<Action>,
}

/// Who a notification (or an outgoing registration) is for.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// The people with `role` the instance concerns (for `ets`: those who applied or are
    /// named as parties; before anyone applied to a public notice, every ETS).
    Role,
    /// Every person with `role`, whoever applied: what is published (a proroga) reaches the
    /// same readers as the avviso.
    Public,
    /// The participant in whose scope the action runs (its capofila): one message with its
    /// own data.
    Participant,
    /// Each participant satisfying the filter: one message each, with its own data.
    Participants {
        /// Which participants (all, when absent).
        filter: Option<Expr>,
        /// The filter as written.
        source: Option<String>,
    },
    /// The organisations listed in a `parties` variable.
    Parties(VarName),
}

/// A notification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notify {
    /// Role whose people receive it (for participants: the role participants act in).
    pub role: RoleName,
    /// Which of them.
    pub to: Audience,
    /// Message kind (template name).
    pub template: String,
    /// Urgent messages ignore the daily-digest preference.
    pub urgent: bool,
    /// A calendar invite to attach (convocations).
    pub invite: Option<InviteMethod>,
    /// Ordinary email or PEC.
    pub channel: Channel,
    /// The participant's variable that receives the consegna date (PEC only).
    pub consegna: Option<VarName>,
}

/// How a notification travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Ordinary email to each person.
    #[default]
    Email,
    /// Certified email (PEC) to each organisation's PEC address, with receipts.
    Pec,
}

impl Channel {
    /// Whether it is the default (serde).
    pub fn is_email(&self) -> bool {
        *self == Channel::Email
    }
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
    /// Which of them (one registration per participant for participant audiences).
    pub audience: Audience,
    /// The message template rendered as the registered document.
    pub document: Option<String>,
    /// Titolario classification.
    pub classification: Option<String>,
}

/// Moving a term's expiry by an act: a proroga before it passes, a riapertura after.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Extension {
    /// Proroga or riapertura.
    pub kind: ExtensionKind,
    /// The term variable it moves.
    pub term: VarName,
    /// The variable (same type) holding the new expiry.
    pub to: VarName,
    /// The variable holding the act's reference (determina n. …).
    pub act: VarName,
    /// The variable holding the reason, if any.
    pub reason: Option<VarName>,
}

/// Which act moves a term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtensionKind {
    /// Before the term expires.
    Proroga,
    /// After it expired: the terms are reopened by a distinct act.
    Riapertura,
}

/// The value a sub-procedure's variable takes from its parent.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StartValue {
    /// An expression over the parent (a variable is copied as it is).
    Expr(Expr),
    /// The organisations of the parent's participants that satisfy the filter (a parties
    /// list: the ETS admitted to a tavolo).
    Participants(Option<Expr>),
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
        /// Child variables from the parent.
        variables: Vec<(String, StartValue)>,
        /// The event the parent receives when the child ends, with the child's results as
        /// inputs (an awaited sub-procedure).
        await_event: Option<EventName>,
    },
    /// Stop the clock of a term variable (e.g. soccorso istruttorio).
    Suspend(VarName),
    /// Restart the clock of a term variable; the term is extended by the suspension. With a
    /// date variable, the clock restarts on that day (art. 10-bis: ten days after the
    /// observations), else today.
    Resume(VarName, Option<VarName>),
    /// Move a term by a proroga or a riapertura.
    Extend(Extension),
    /// An action taken only when a condition holds.
    When {
        /// The condition.
        condition: Expr,
        /// As written.
        source: String,
        /// The action.
        action: Box<Action>,
    },
    /// Actions run once for each participant that satisfies the filter, in its scope.
    ForEachParticipant {
        /// Which participants (all, when absent).
        filter: Option<Expr>,
        /// The actions.
        actions: Vec<Action>,
    },
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
    /// What its expiry means when the procedure is still open then (the L. 241 conclusion
    /// term): the silenzio recorded and who is alerted.
    pub expired: Option<Expiry>,
}

/// The legal meaning of a silence when a term passes (art. 2, art. 20 L. 241/1990).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Silenzio {
    /// Silenzio-inadempimento (the default): challengeable, art. 2 c.8 and art. 117 c.p.a.
    Inadempimento,
    /// Silenzio-assenso, only where art. 20 applies.
    Assenso,
    /// Silenzio-rigetto, where the law qualifies silence as refusal.
    Rigetto,
}

impl Silenzio {
    /// The name in definitions.
    pub fn as_str(self) -> &'static str {
        match self {
            Silenzio::Inadempimento => "inadempimento",
            Silenzio::Assenso => "assenso",
            Silenzio::Rigetto => "rigetto",
        }
    }

    /// For people.
    pub fn title(self) -> &'static str {
        match self {
            Silenzio::Inadempimento => {
                "silenzio-inadempimento (art. 2 L. 241/1990): impugnabile finché dura l'inadempimento e comunque entro un anno dalla scadenza"
            }
            Silenzio::Assenso => {
                "silenzio-assenso (art. 20 L. 241/1990): l'istanza si intende accolta"
            }
            Silenzio::Rigetto => "silenzio-rigetto: l'istanza si intende respinta",
        }
    }

    /// Parses a name.
    pub fn parse(text: &str) -> Option<Silenzio> {
        [
            Silenzio::Inadempimento,
            Silenzio::Assenso,
            Silenzio::Rigetto,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// A term that expires with the procedure still open.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Expiry {
    /// The silenzio it amounts to.
    pub silenzio: Silenzio,
    /// Roles alerted (by email, once).
    pub notify: Vec<RoleName>,
    /// The message kind.
    pub template: String,
}

/// The message an expiry sends when the definition does not name one.
pub const EXPIRY_TEMPLATE: &str = "termine_scaduto";

/// The jobs a recurring entry may run (the scheduler's `JobKind`s).
pub const JOB_KINDS: &[&str] = &[
    "digest",
    "protocol_register",
    "protocol_reconcile",
    "albo_referto",
    "albo_capofila",
];

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
    /// The participant's number variable the ranking orders by (with participants).
    pub score: Option<VarName>,
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

/// The lifecycle of each participant (an ETS with its application, or an admitted party):
/// its own states, transitions, variables, terms and timers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParticipantDef {
    /// What a participant is called (Italian: "Domanda", "Adesione").
    pub title: String,
    /// The role participants act in and receive messages with.
    pub role: RoleName,
    /// Its variables (names distinct from the procedure's).
    pub variables: IndexMap<VarName, Variable>,
    /// Its states.
    pub states: IndexMap<StateId, State>,
    /// Its transitions.
    pub transitions: Vec<Transition>,
    /// Its timers.
    pub timers: Vec<Timer>,
    /// The event an answer to a soccorso istruttorio fires on the participant.
    pub answer: Option<EventName>,
}

impl ParticipantDef {
    /// The initial state.
    pub fn initial_state(&self) -> Option<&State> {
        self.states.values().find(|s| s.initial)
    }

    /// Transitions that `event` may take from `state`, in the order written (the first whose
    /// guards hold is taken).
    pub fn candidates<'a>(
        &'a self,
        state: &'a str,
        event: &'a str,
    ) -> impl Iterator<Item = &'a Transition> + 'a {
        candidates(&self.transitions, state, event)
    }

    /// Whether a participant timer fires `event` while in `state`.
    pub fn timer_fires(&self, state: &str, event: &str) -> bool {
        timer_fires(&self.timers, state, event)
    }
}

fn candidates<'a>(
    transitions: &'a [Transition],
    state: &'a str,
    event: &'a str,
) -> impl Iterator<Item = &'a Transition> + 'a {
    transitions
        .iter()
        .filter(move |t| t.event.as_str() == event && t.from.iter().any(|f| f.as_str() == state))
}

fn timer_fires(timers: &[Timer], state: &str, event: &str) -> bool {
    timers.iter().any(|t| {
        t.fires.as_ref().is_some_and(|e| e.as_str() == event)
            && t.while_in.iter().any(|s| s.as_str() == state)
    })
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
    /// The per-participant lifecycle, if the procedure declares one.
    pub participant: Option<ParticipantDef>,
    /// How numbers are rounded.
    pub numbers: NumberSettings,
    /// The variables a parent that awaits this procedure receives when it ends.
    pub results: Vec<VarName>,
    /// The commissione's evaluation of the proposals, if the procedure has one.
    pub evaluation: Option<EvaluationDef>,
    /// The meeting of a body, if the procedure convenes one.
    pub meeting: Option<MeetingDef>,
    /// Acts published at the albo online.
    pub albo: Vec<AlboEntry>,
}

/// An act at the albo online: in publication from the day `from` holds (counted) to the day
/// `until` holds; both public variables.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlboEntry {
    /// Id, stable in feeds.
    pub id: String,
    /// What the act is ("Avviso pubblico", "Graduatoria").
    pub title: String,
    /// First day (a date or datetime variable).
    pub from: VarName,
    /// Last day (a date or datetime variable).
    pub until: VarName,
    /// Also published in Amministrazione trasparente, for five years.
    pub trasparente: bool,
    /// The registered document published with the act: a template a `protocollo` action
    /// registers, or [`SIGNED_VERBALE`] (the signed verbale of the meeting).
    pub document: Option<String>,
    /// The instance's published FAQ answers are at the albo with this act.
    pub faq: bool,
}

/// The `document` of an albo entry naming the signed verbale of a meeting.
pub const SIGNED_VERBALE: &str = "verbale_firmato";

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

    /// The first transition `event` takes from `state`.
    pub fn transition(&self, state: &str, event: &str) -> Option<&Transition> {
        self.transitions
            .iter()
            .find(|t| t.event.as_str() == event && t.from.iter().any(|f| f.as_str() == state))
    }

    /// Transitions that `event` may take from `state`, in the order written (the first whose
    /// guards hold is taken).
    pub fn candidates<'a>(
        &'a self,
        state: &'a str,
        event: &'a str,
    ) -> impl Iterator<Item = &'a Transition> + 'a {
        candidates(&self.transitions, state, event)
    }

    /// A variable of a participant by name.
    pub fn participant_variable(&self, name: &str) -> Option<&Variable> {
        self.participant.as_ref()?.variables.get(name)
    }

    /// Whether a `protocollo` action of the procedure registers the template `document`.
    pub fn registers_document(&self, document: &str) -> bool {
        fn in_actions(actions: &[Action], document: &str) -> bool {
            actions.iter().any(|a| match a {
                Action::Protocollo(p) => p.document.as_deref() == Some(document),
                Action::When { action, .. } => in_actions(std::slice::from_ref(action), document),
                Action::ForEachParticipant { actions, .. } => in_actions(actions, document),
                _ => false,
            })
        }
        self.states
            .values()
            .any(|s| in_actions(&s.on_enter, document))
            || self
                .transitions
                .iter()
                .any(|t| in_actions(&t.actions, document))
    }

    /// Whether an event is one the parent receives when an awaited child ends.
    pub fn awaits(&self, event: &str) -> bool {
        fn in_actions(actions: &[Action], event: &str) -> bool {
            actions.iter().any(|a| match a {
                Action::Start { await_event, .. } => {
                    await_event.as_ref().is_some_and(|e| e.as_str() == event)
                }
                Action::When { action, .. } => in_actions(std::slice::from_ref(action), event),
                Action::ForEachParticipant { actions, .. } => in_actions(actions, event),
                _ => false,
            })
        }
        self.states.values().any(|s| in_actions(&s.on_enter, event))
            || self
                .transitions
                .iter()
                .any(|t| in_actions(&t.actions, event))
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
        timer_fires(&self.timers, state, event)
    }
}

/// One evaluation criterion of an avviso (its *lex specialis*): the maximum points are its
/// weight, nothing multiplies them. A criterion with sub-criteria is scored on those; its
/// points are their sum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Criterion {
    /// Stable id (an identifier), used by scores and by the tie rule.
    pub id: String,
    /// Title (Italian).
    pub title: String,
    /// Maximum points.
    pub max: rust_decimal::Decimal,
    /// Sub-criteria, whose maxima add up to `max`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sub: Vec<Criterion>,
}

impl Criterion {
    /// The criteria that are scored (leaves), in order.
    pub fn leaves(criteria: &[Criterion]) -> Vec<&Criterion> {
        let mut out = Vec::new();
        for c in criteria {
            if c.sub.is_empty() {
                out.push(c);
            } else {
                out.extend(Criterion::leaves(&c.sub));
            }
        }
        out
    }

    /// What is wrong with a set of criteria against a total, in Italian, if anything: ids
    /// unique identifiers, maxima positive, sub-criteria adding up to their parent, the top
    /// level adding up to the total.
    pub fn check(criteria: &[Criterion], total: rust_decimal::Decimal) -> Vec<String> {
        fn walk(
            list: &[Criterion],
            expected: rust_decimal::Decimal,
            parent: Option<&str>,
            seen: &mut Vec<String>,
            out: &mut Vec<String>,
        ) {
            if list.is_empty() {
                out.push("nessun criterio".into());
                return;
            }
            let mut sum = rust_decimal::Decimal::ZERO;
            for c in list {
                let id_ok = !c.id.is_empty()
                    && c.id
                        .chars()
                        .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
                    && c.id
                        .chars()
                        .next()
                        .is_some_and(|ch| ch.is_ascii_lowercase());
                if !id_ok {
                    out.push(format!(
                        "id di criterio '{}' non valido (lettere minuscole, cifre, _)",
                        c.id
                    ));
                }
                if seen.contains(&c.id) {
                    out.push(format!("criterio '{}' duplicato", c.id));
                }
                seen.push(c.id.clone());
                if c.id == TIE_SUBMITTED {
                    out.push(format!(
                        "'{TIE_SUBMITTED}' è riservato alla regola di parità"
                    ));
                }
                if c.title.trim().is_empty() {
                    out.push(format!("il criterio '{}' non ha un titolo", c.id));
                }
                if c.max <= rust_decimal::Decimal::ZERO {
                    out.push(format!("il criterio '{}' ha un massimo non positivo", c.id));
                }
                sum += c.max;
                if !c.sub.is_empty() {
                    walk(&c.sub, c.max, Some(&c.id), seen, out);
                }
            }
            if sum != expected {
                match parent {
                    Some(p) => out.push(format!(
                        "i sottocriteri di '{p}' sommano {sum} punti, il criterio ne vale {expected}"
                    )),
                    None => out.push(format!(
                        "i massimi dei criteri sommano {sum} punti, il totale dichiarato è {expected}"
                    )),
                }
            }
        }
        let mut out = Vec::new();
        walk(criteria, total, None, &mut Vec::new(), &mut out);
        out
    }
}

/// The tie rule's item for "the application that arrived first".
pub const TIE_SUBMITTED: &str = "presentazione";

/// How the commissione scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scoring {
    /// One score per criterion, agreed by the commissione.
    Collegial,
    /// Each member scores; the criterion's score is the mean, rounded as the procedure says.
    PerMember,
}

/// Where the evaluation writes what it computes, in each participant's variables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvaluationResults {
    /// The total (number).
    pub total: VarName,
    /// Every criterion scored by all who must (bool).
    pub complete: Option<VarName>,
    /// Complete and at or above the threshold (bool).
    pub eligible: Option<VarName>,
    /// The position in the approved graduatoria (number; set at approval).
    pub rank: Option<VarName>,
}

/// The evaluation of proposals by a commissione: the avviso's criteria, who may score when,
/// and the event that approves the graduatoria and freezes the scores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvaluationDef {
    /// The default criteria, fixed into the instance when `fixed_on` fires.
    pub criteria: Vec<Criterion>,
    /// Their total.
    pub total: rust_decimal::Decimal,
    /// The threshold to enter the graduatoria.
    pub threshold: rust_decimal::Decimal,
    /// The tie rule: criterion ids (higher first), then `presentazione` (earlier first).
    pub tie: Vec<String>,
    /// Collegial or per member.
    pub scoring: Scoring,
    /// The text variable holding the act that approved the criteria (required when fixed).
    pub criteria_act: Option<VarName>,
    /// The event that publishes the avviso and fixes the criteria.
    pub fixed_on: EventName,
    /// States in which a rettifica of the criteria may be published (also: before the
    /// submission deadline).
    pub rectify_while: Vec<StateId>,
    /// States in which the commissione is appointed (also: after the submission deadline).
    pub commission_while: Vec<StateId>,
    /// States in which proposals are scored.
    pub score_while: Vec<StateId>,
    /// The participant states whose proposal is scored.
    pub score_states: Vec<StateId>,
    /// The event that approves the graduatoria and freezes the scores.
    pub approve: EventName,
    /// The text variable with the determina's number, set by `approve`.
    pub determina_number: VarName,
    /// The date variable with the determina's date, set by `approve`.
    pub determina_date: VarName,
    /// Where the computed values go.
    pub results: EvaluationResults,
}

/// A procedure that convenes a body: which body, where its members and agenda are, when
/// members answer the convocation and when the session is recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeetingDef {
    /// The body, read from its file.
    pub body: super::body::Body,
    /// The file, as written.
    pub body_file: String,
    /// The datetime variable with the day and hour it is convened for.
    pub when: VarName,
    /// The text variable with the place.
    pub place: Option<VarName>,
    /// The `parties` variable filled at start with the seats' organisations: the recipients.
    pub members: VarName,
    /// The `list` variable with the ordine del giorno.
    pub agenda: VarName,
    /// States in which members answer the convocation.
    pub rsvp_while: Vec<StateId>,
    /// States in which attendance and votes are recorded.
    pub session_while: Vec<StateId>,
    /// The event that opens the session (its instant is recorded).
    pub opened_on: EventName,
    /// The event that closes it.
    pub closed_on: EventName,
    /// The event that moves the meeting to its second call (the body's second quorum).
    pub second_call_on: Option<EventName>,
    /// The bool variable holding whether the quorum is met now (null: rule unknown).
    pub quorum: Option<VarName>,
    /// The text variable naming the verbalizzante.
    pub verbalizzante: Option<VarName>,
    /// The bool variable saying the verbale was read and approved in the same session ("letto,
    /// approvato e sottoscritto"); otherwise the next session approves it.
    pub approved_in_session: Option<VarName>,
    /// The bool variable set when the signed verbale (signed outside procedo) is uploaded and
    /// registered: what gets published.
    pub signed: Option<VarName>,
    /// The repertorio deliberazioni are numbered in.
    pub repertorio: String,
    /// The text variable with the instance of the body's previous meeting whose verbale the
    /// first item of this session approves.
    pub previous_verbale: Option<VarName>,
    /// How many consecutive days each deliberazione stays at the albo, on its own, from the
    /// day it is adopted (art. 124 TUEL: 15), without waiting for the verbale.
    pub publication_days: u32,
    /// The template rendered as each deliberazione's document, registered with its number in
    /// the repertorio (and published with it at the albo); without it, the number alone.
    pub document: Option<String>,
}
