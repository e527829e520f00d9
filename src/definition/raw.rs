//! The serde mirror of a workflow file. Only `validate` reads these types; nothing past
//! validation sees them.

use indexmap::IndexMap;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::terms::RuleSpec;

/// A position-carrying string.
pub(crate) type SStr = Spanned<String>;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProcedure {
    pub id: SStr,
    pub version: Spanned<i64>,
    pub title: SStr,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub calendar: Option<Spanned<RawCalendar>>,
    #[serde(default)]
    pub roles: IndexMap<String, Spanned<String>>,
    #[serde(default)]
    pub variables: IndexMap<String, Spanned<RawVariable>>,
    #[serde(default)]
    pub states: IndexMap<String, Spanned<RawState>>,
    #[serde(default)]
    pub transitions: Vec<Spanned<RawTransition>>,
    #[serde(default)]
    pub timers: Vec<Spanned<RawTimer>>,
    #[serde(default)]
    pub cron: Vec<Spanned<RawCron>>,
    #[serde(default)]
    pub submissions: Option<Spanned<RawSubmissions>>,
    /// How numbers are rounded.
    #[serde(default)]
    pub numbers: Option<Spanned<RawNumbers>>,
    /// The lifecycle of each participant.
    #[serde(default)]
    pub participant: Option<Spanned<RawParticipant>>,
    /// Variables handed to a parent that awaits this procedure.
    #[serde(default)]
    pub results: Vec<SStr>,
    /// The commissione's evaluation.
    #[serde(default)]
    pub evaluation: Option<Spanned<RawEvaluation>>,
    /// A meeting of a body.
    #[serde(default)]
    pub meeting: Option<Spanned<RawMeeting>>,
    /// Acts published at the albo online, each with its window.
    #[serde(default)]
    pub albo: Vec<Spanned<RawAlbo>>,
}

/// An act at the albo: its title and the public variables its window runs between.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAlbo {
    pub id: SStr,
    pub title: SStr,
    pub from: SStr,
    pub until: SStr,
    /// Also in Amministrazione trasparente (five years, art. 8 c.3 D.Lgs. 33/2013).
    #[serde(default)]
    pub trasparente: bool,
    /// The registered document published with it: a template a `protocollo` action of the
    /// procedure registers as its document, or `verbale_firmato` (the signed verbale).
    #[serde(default)]
    pub document: Option<SStr>,
    /// The published FAQ answers of the instance are at the albo with this act, each from
    /// the day it was answered to this act's last day.
    #[serde(default)]
    pub faq: bool,
}

/// A meeting of a body of the Ambito.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMeeting {
    pub body: SStr,
    pub when: SStr,
    #[serde(default)]
    pub place: Option<SStr>,
    pub members: SStr,
    pub agenda: SStr,
    pub rsvp_while: OneOrMany,
    pub session_while: OneOrMany,
    pub opened_on: SStr,
    pub closed_on: SStr,
    #[serde(default)]
    pub second_call_on: Option<SStr>,
    #[serde(default)]
    pub quorum: Option<SStr>,
    #[serde(default)]
    pub verbalizzante: Option<SStr>,
    #[serde(default)]
    pub approved_in_session: Option<SStr>,
    #[serde(default)]
    pub signed: Option<SStr>,
    #[serde(default)]
    pub repertorio: Option<SStr>,
    #[serde(default)]
    pub publication_days: Option<Spanned<i64>>,
    #[serde(default)]
    pub previous_verbale: Option<SStr>,
    /// The template of each deliberazione's registered document.
    #[serde(default)]
    pub document: Option<SStr>,
}

/// The commissione's evaluation of the proposals.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEvaluation {
    pub criteria: Vec<Spanned<RawCriterion>>,
    pub total: Spanned<f64>,
    pub threshold: Spanned<f64>,
    #[serde(default)]
    pub tie: Vec<SStr>,
    #[serde(default)]
    pub scoring: Option<SStr>,
    #[serde(default)]
    pub criteria_act: Option<SStr>,
    pub fixed_on: SStr,
    #[serde(default)]
    pub rectify_while: Option<OneOrMany>,
    pub commission_while: OneOrMany,
    pub score_while: OneOrMany,
    pub score_states: OneOrMany,
    pub approve: SStr,
    pub determina: Spanned<RawDetermina>,
    pub results: Spanned<RawEvaluationResults>,
}

/// One criterion as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCriterion {
    pub id: SStr,
    pub title: SStr,
    pub max: Spanned<f64>,
    #[serde(default)]
    pub sub: Vec<Spanned<RawCriterion>>,
}

/// The variables of the determina that approves the graduatoria.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDetermina {
    pub number: SStr,
    pub date: SStr,
}

/// Where computed values go.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEvaluationResults {
    pub total: SStr,
    #[serde(default)]
    pub complete: Option<SStr>,
    #[serde(default)]
    pub eligible: Option<SStr>,
    #[serde(default)]
    pub rank: Option<SStr>,
}

/// Decimal places and rounding of computed numbers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNumbers {
    #[serde(default)]
    pub decimals: Option<Spanned<i64>>,
    #[serde(default)]
    pub rounding: Option<SStr>,
}

/// The per-participant lifecycle.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawParticipant {
    #[serde(default)]
    pub title: Option<String>,
    pub role: SStr,
    #[serde(default)]
    pub variables: IndexMap<String, Spanned<RawVariable>>,
    #[serde(default)]
    pub states: IndexMap<String, Spanned<RawState>>,
    #[serde(default)]
    pub transitions: Vec<Spanned<RawTransition>>,
    #[serde(default)]
    pub timers: Vec<Spanned<RawTimer>>,
    /// The event a soccorso istruttorio answer fires on the participant.
    #[serde(default)]
    pub soccorso_answer: Option<SStr>,
}

/// Where ETS submissions (domande, proposte) are accepted through the API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSubmissions {
    /// The datetime variable holding the submission deadline.
    pub deadline: SStr,
    /// States in which submissions are open.
    #[serde(rename = "while")]
    pub while_in: OneOrMany,
    /// States in which questions may be asked (default: the same as `while`).
    #[serde(default)]
    pub questions_while: Option<OneOrMany>,
    /// States in which a soccorso istruttorio answer is accepted.
    #[serde(default)]
    pub soccorso_while: Option<OneOrMany>,
    /// States in which the ranking is public (default: the final states).
    #[serde(default)]
    pub ranking_while: Option<OneOrMany>,
    /// The participant's number variable the ranking orders by.
    #[serde(default)]
    pub score: Option<SStr>,
}

/// Calendar settings of a procedure.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCalendar {
    /// Comune whose local legal holiday applies (only Roma has one).
    #[serde(default)]
    pub comune: Option<String>,
    /// Office closures file, relative to the workflow file.
    #[serde(default)]
    pub closures: Option<SStr>,
    /// Saturday counts as a holiday for every term of the procedure.
    #[serde(default)]
    pub saturday_shift: bool,
    /// Office closures shift terms like holidays.
    #[serde(default)]
    pub closures_shift: bool,
}

/// A variable declaration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVariable {
    #[serde(rename = "type")]
    pub kind: SStr,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub required: bool,
    /// Who besides the Ufficio di Piano may read it ("public" or a role list).
    #[serde(default)]
    pub visible_to: Vec<SStr>,
    #[serde(default)]
    pub term: Option<Spanned<RawTerm>>,
}

/// A term rule anchored on another variable.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTerm {
    pub from: SStr,
    /// A number variable giving the length when set.
    #[serde(default)]
    pub length_var: Option<SStr>,
    /// A text variable `HH:MM` giving the time of day when set.
    #[serde(default)]
    pub at_var: Option<SStr>,
    #[serde(flatten)]
    pub rule: RuleSpec,
}

/// A state.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawState {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub initial: bool,
    #[serde(rename = "final", default)]
    pub is_final: bool,
    #[serde(default)]
    pub on_enter: Vec<Spanned<RawAction>>,
}

/// One or several names, each with its position. A single name takes the position of the
/// value; in a list each item keeps its own. (Not an untagged enum: serde buffers those and
/// the positions are lost.)
#[derive(Debug)]
pub(crate) struct OneOrMany(Spanned<Names>);

/// The names as written.
#[derive(Debug)]
pub(crate) enum Names {
    One(String),
    Many(Vec<SStr>),
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Spanned::<Names>::deserialize(deserializer).map(OneOrMany)
    }
}

impl<'de> Deserialize<'de> for Names {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Names;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("un nome o un elenco di nomi")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Names, E> {
                Ok(Names::One(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Names, E> {
                Ok(Names::One(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Names, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element::<SStr>()? {
                    out.push(item);
                }
                Ok(Names::Many(out))
            }
        }
        deserializer.deserialize_any(Visit)
    }
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<SStr> {
        let Spanned {
            value,
            referenced,
            defined,
        } = self.0;
        match value {
            Names::One(one) => vec![Spanned {
                value: one,
                referenced,
                defined,
            }],
            Names::Many(many) => many,
        }
    }
}

/// A transition.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTransition {
    pub event: SStr,
    #[serde(default)]
    pub title: Option<String>,
    pub from: OneOrMany,
    pub to: SStr,
    /// For a participant's transition: the procedure's states in which it may be taken.
    #[serde(rename = "while", default)]
    pub while_in: Option<OneOrMany>,
    #[serde(default)]
    pub roles: Vec<SStr>,
    #[serde(default)]
    pub inputs: IndexMap<String, Spanned<String>>,
    #[serde(default)]
    pub guard: Vec<Spanned<RawGuard>>,
    #[serde(default)]
    pub actions: Vec<Spanned<RawAction>>,
}

/// A guard condition with the message shown when it does not hold.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGuard {
    pub when: SStr,
    #[serde(default)]
    pub message: Option<String>,
}

/// An action: exactly one key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAction {
    #[serde(default)]
    pub notify: Option<RawNotify>,
    #[serde(default)]
    pub protocollo: Option<RawProtocollo>,
    #[serde(default)]
    pub set: Option<IndexMap<String, SStr>>,
    #[serde(default)]
    pub start: Option<RawStart>,
    #[serde(default)]
    pub suspend: Option<SStr>,
    #[serde(default)]
    pub resume: Option<Spanned<RawResume>>,
    #[serde(default)]
    pub proroga: Option<RawExtension>,
    #[serde(default)]
    pub riapertura: Option<RawExtension>,
    #[serde(default)]
    pub for_each_participant: Option<RawForEach>,
    /// The action is taken only when this condition holds.
    #[serde(default)]
    pub when: Option<SStr>,
}

/// `resume: termine` or `resume: { term: termine, from: data_ripresa }`. (Read by hand, not as
/// an untagged enum, so that the names keep their positions.)
#[derive(Debug)]
pub(crate) enum RawResume {
    Name(String),
    On(RawResumeOn),
}

/// Resume a term on the day a date variable holds.
#[derive(Debug)]
pub(crate) struct RawResumeOn {
    pub term: SStr,
    /// The date variable holding the day the clock restarts.
    pub from: Option<SStr>,
}

impl<'de> Deserialize<'de> for RawResume {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = RawResume;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("il nome di un termine, oppure { term: …, from: … }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawResume, E> {
                Ok(RawResume::Name(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<RawResume, E> {
                Ok(RawResume::Name(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawResume, A::Error> {
                let (mut term, mut from) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "term" => term = Some(map.next_value::<SStr>()?),
                        "from" => from = Some(map.next_value::<SStr>()?),
                        other => {
                            return Err(serde::de::Error::unknown_field(other, &["term", "from"]));
                        }
                    }
                }
                let term = term.ok_or_else(|| serde::de::Error::missing_field("term"))?;
                Ok(RawResume::On(RawResumeOn { term, from }))
            }
        }
        deserializer.deserialize_any(Visit)
    }
}

/// A proroga or a riapertura of a term.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExtension {
    pub term: SStr,
    pub to: SStr,
    pub act: SStr,
    #[serde(default)]
    pub reason: Option<SStr>,
}

/// Actions for each participant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawForEach {
    #[serde(rename = "where", default)]
    pub filter: Option<SStr>,
    pub actions: Vec<Spanned<RawAction>>,
}

/// Notify the parties of a role with a template.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNotify {
    #[serde(default)]
    pub role: Option<SStr>,
    /// `participant`, `participants [where …]`, `public` or a parties variable.
    #[serde(default)]
    pub to: Option<SStr>,
    pub template: SStr,
    #[serde(default)]
    pub urgent: bool,
    /// Attach a calendar invite: `request` (new or changed meeting) or `cancel`.
    #[serde(default)]
    pub invite: Option<SStr>,
    /// `email` (the default) or `pec`: certified email to the organisation's PEC address.
    #[serde(default)]
    pub channel: Option<SStr>,
    /// With `channel: pec` to a participant: the participant's date variable that receives
    /// the consegna date attested by the provider's receipt.
    #[serde(default)]
    pub consegna: Option<SStr>,
}

/// Register a document in the protocollo.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProtocollo {
    pub direction: SStr,
    pub subject: SStr,
    /// A repertorio instead of the protocol register.
    #[serde(default)]
    pub register: Option<SStr>,
    /// The recipients: a role, `participant`, `participants [where …]` or a parties variable.
    #[serde(default)]
    pub to: Option<SStr>,
    /// A message template rendered as the registered document.
    #[serde(default)]
    pub document: Option<SStr>,
    /// Titolario classification.
    #[serde(default)]
    pub classificazione: Option<SStr>,
}

/// Start a sub-procedure.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStart {
    pub procedure: SStr,
    #[serde(default)]
    pub variables: IndexMap<String, SStr>,
    /// The event the parent receives when the child ends.
    #[serde(rename = "await", default)]
    pub await_event: Option<SStr>,
}

/// A timer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTimer {
    pub id: SStr,
    #[serde(rename = "while")]
    pub while_in: OneOrMany,
    pub at: SStr,
    #[serde(default)]
    pub fires: Option<SStr>,
    #[serde(default)]
    pub reminders: Vec<Spanned<RawReminder>>,
    #[serde(default)]
    pub expired: Option<Spanned<RawExpiry>>,
}

/// What happens when a timer's term passes with the procedure still in one of its states.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExpiry {
    #[serde(default)]
    pub silenzio: Option<SStr>,
    #[serde(default)]
    pub notify: Vec<SStr>,
    #[serde(default)]
    pub template: Option<SStr>,
}

/// A reminder before a timer's instant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReminder {
    #[serde(default)]
    pub days_before: Option<i64>,
    #[serde(default)]
    pub hours_before: Option<i64>,
    pub notify: RawNotify,
}

/// A recurring job.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCron {
    pub id: SStr,
    pub schedule: SStr,
    pub job: SStr,
}
