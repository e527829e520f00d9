//! Meetings of the Ambito's bodies. PURE: a body's seats with their vote weights and its
//! rules, the register of who is present (with arrivals and departures), the quorum at the
//! instant of each vote, the result of a vote by the body's rule, and what a verbale is drafted
//! from. What a record does not say stays unknown (`None`): never zero, never "unanimità".

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};

use super::InstanceData;
use super::step::{Snapshot, Step};
use crate::definition::{MeetingDef, Procedure};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use crate::definition::body::*;

/// Someone in the register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    /// The seat they hold for this meeting; `None` for who attends without a vote.
    pub seat: Option<String>,
    /// Their name.
    pub name: String,
    /// Their capacity.
    pub capacity: Capacity,
    /// For who attends without a vote: why they are there ("responsabile dell'Ufficio di
    /// Piano", "assessore ai servizi sociali di Tradate").
    #[serde(default)]
    pub note: Option<String>,
    /// When they arrived (`None`: from the opening).
    #[serde(default)]
    pub arrived: Option<DateTime<Utc>>,
    /// When they left (`None`: until the end).
    #[serde(default)]
    pub left: Option<DateTime<Utc>>,
}

impl Presence {
    fn present_at(&self, at: DateTime<Utc>) -> bool {
        self.arrived.is_none_or(|a| a <= at) && self.left.is_none_or(|l| l > at)
    }
}

/// A vote cast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ballot {
    /// In favour.
    Favorevole,
    /// Against.
    Contrario,
    /// Abstained.
    Astenuto,
}

/// The outcome of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Approved.
    Approvato,
    /// Rejected.
    Respinto,
    /// Not voted: the quorum was lacking at the vote.
    MancanzaNumeroLegale,
    /// Postponed.
    Rinviato,
    /// Discussed, no decision.
    NessunaDecisione,
}

impl Outcome {
    /// Italian.
    pub fn title(self) -> &'static str {
        match self {
            Outcome::Approvato => "approvato",
            Outcome::Respinto => "respinto",
            Outcome::MancanzaNumeroLegale => "non votato per mancanza del numero legale",
            Outcome::Rinviato => "rinviato",
            Outcome::NessunaDecisione => "nessuna decisione",
        }
    }
}

/// The quorum at an instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuorumCheck {
    /// Seats present.
    pub heads: usize,
    /// Of the seats.
    pub seats: usize,
    /// Weight present.
    pub weight: Decimal,
    /// Of the total.
    pub total_weight: Decimal,
    /// Met; `None` when the body's rule is unknown.
    pub met: Option<bool>,
    /// Why, one Italian line each.
    pub trace: Vec<String>,
}

/// The seats present at an instant: a seat counts once whoever holds it.
pub fn seats_present<'a>(
    body: &'a Body,
    register: &[Presence],
    at: DateTime<Utc>,
) -> Vec<&'a Seat> {
    body.seats
        .iter()
        .filter(|s| {
            register
                .iter()
                .any(|p| p.seat.as_deref() == Some(s.id.as_str()) && p.present_at(at))
        })
        .collect()
}

/// The quorum at `at`, by the rule of the first or second call.
pub fn quorum(
    body: &Body,
    register: &[Presence],
    at: DateTime<Utc>,
    second_call: bool,
) -> QuorumCheck {
    let present = seats_present(body, register, at);
    let weight: Decimal = present.iter().map(|s| s.weight).sum();
    let total_weight: Decimal = body.seats.iter().map(|s| s.weight).sum();
    let heads = present.len();
    let seats = body.seats.len();
    let mut trace = vec![format!(
        "presenti {heads} seggi su {seats}, quote {} su {}",
        weight.normalize(),
        total_weight.normalize()
    )];
    let rule = if second_call {
        body.rules.second_quorum.or(body.rules.quorum)
    } else {
        body.rules.quorum
    };
    let met = rule.map(|q| {
        let mut ok = true;
        if let Some(t) = q.heads {
            let m = t.met(Decimal::from(heads), Decimal::from(seats));
            trace.push(format!(
                "{}: {}",
                t.describe("dei seggi"),
                if m { "raggiunto" } else { "non raggiunto" }
            ));
            ok &= m;
        }
        if let Some(t) = q.weights {
            let m = t.met(weight, total_weight);
            trace.push(format!(
                "{}: {}",
                t.describe("delle quote"),
                if m { "raggiunto" } else { "non raggiunto" }
            ));
            ok &= m;
        }
        ok
    });
    if met.is_none() {
        trace.push("regola del numero legale non indicata: non verificato".into());
    }
    QuorumCheck {
        heads,
        seats,
        weight,
        total_weight,
        met,
        trace,
    }
}

/// A vote's count and outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// The quorum at the vote.
    pub quorum: QuorumCheck,
    /// In favour: heads, weight.
    pub favorevoli: (usize, Decimal),
    /// Against.
    pub contrari: (usize, Decimal),
    /// Abstained.
    pub astenuti: (usize, Decimal),
    /// The outcome; `None` when the body's majority rule is unknown.
    pub outcome: Option<Outcome>,
    /// Why, one Italian line each.
    pub trace: Vec<String>,
}

/// Counts a vote taken at `at`: only seats present then vote (a ballot from a seat that left
/// is refused by the caller); without quorum the item is not voted.
pub fn tally(
    body: &Body,
    register: &[Presence],
    at: DateTime<Utc>,
    second_call: bool,
    ballots: &BTreeMap<String, Ballot>,
) -> Tally {
    let q = quorum(body, register, at, second_call);
    let present = seats_present(body, register, at);
    let count = |which: Ballot| {
        let seats: Vec<&&Seat> = present
            .iter()
            .filter(|s| ballots.get(&s.id) == Some(&which))
            .collect();
        (seats.len(), seats.iter().map(|s| s.weight).sum::<Decimal>())
    };
    let favorevoli = count(Ballot::Favorevole);
    let contrari = count(Ballot::Contrario);
    let astenuti = count(Ballot::Astenuto);
    let mut trace = q.trace.clone();
    let outcome = if q.met == Some(false) {
        trace.push("numero legale mancante: l'argomento non è votato".into());
        Some(Outcome::MancanzaNumeroLegale)
    } else {
        body.rules.majority.map(|m| {
            let pick = |(h, w): (usize, Decimal)| match m.basis {
                Basis::Heads => Decimal::from(h),
                Basis::Weights => w,
            };
            let present_total = match m.basis {
                Basis::Heads => Decimal::from(q.heads),
                Basis::Weights => q.weight,
            };
            let base = match m.base {
                Base::Present => present_total,
                Base::Voting => pick(favorevoli) + pick(contrari),
            };
            let pro = pick(favorevoli);
            let passed = pro > base / Decimal::TWO;
            trace.push(format!(
                "favorevoli {} su {} {} ({}): {}",
                pro.normalize(),
                base.normalize(),
                match m.base {
                    Base::Present => "presenti",
                    Base::Voting => "presenti e votanti",
                },
                match m.basis {
                    Basis::Heads => "per teste",
                    Basis::Weights => "secondo le quote",
                },
                if passed {
                    "maggioranza raggiunta"
                } else {
                    "maggioranza non raggiunta"
                }
            ));
            if passed {
                Outcome::Approvato
            } else {
                Outcome::Respinto
            }
        })
    };
    if outcome.is_none() {
        trace.push("regola di maggioranza non indicata: esito non calcolato".into());
    }
    Tally {
        quorum: q,
        favorevoli,
        contrari,
        astenuti,
        outcome,
        trace,
    }
}

/// One item of the agenda as the record has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRecord {
    /// Its title.
    pub title: String,
    /// What was said, as the verbale reports it.
    #[serde(default)]
    pub discussion: Option<String>,
    /// The outcome; `None` when the record does not say.
    #[serde(default)]
    pub outcome: Option<Outcome>,
    /// What was decided, in words ("il piano territoriale … allegato al verbale").
    #[serde(default)]
    pub decision: Option<String>,
    /// The count, when there was a roll-call vote; `None` when the record has no count.
    #[serde(default)]
    pub tally: Option<CountRecord>,
}

/// A count as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountRecord {
    /// In favour.
    pub favorevoli: usize,
    /// Against.
    pub contrari: usize,
    /// Abstained.
    pub astenuti: usize,
}

/// What a verbale is drafted from. Every field the minutes may leave unsaid is an `Option`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingRecord {
    /// The day (dd/mm/yyyy as printed).
    pub date: String,
    /// The place.
    pub place: Option<String>,
    /// Convened at (hh.mm).
    pub convened: Option<String>,
    /// Opened at.
    pub opened: Option<String>,
    /// Closed at.
    pub closed: Option<String>,
    /// The convocation's reference (prot. n. … del …).
    pub convocation: Option<String>,
    /// Who presided (name).
    pub presidente: Option<String>,
    /// Who took the minutes.
    pub verbalizzante: Option<String>,
    /// The register.
    pub register: Vec<Presence>,
    /// The agenda with what happened.
    pub items: Vec<ItemRecord>,
    /// Approved in the same session ("letto, approvato e sottoscritto").
    pub approved_in_session: bool,
}

/// What the verbale template reads: the seats present and absent (in the body's order) with
/// who held them and in what capacity; who attended without a vote; each item with its
/// outcome and count only where known; the signatures that exist.
pub fn verbale_context(body: &Body, record: &MeetingRecord) -> Value {
    let holder = |seat: &str| {
        record
            .register
            .iter()
            .find(|p| p.seat.as_deref() == Some(seat))
    };
    let presenti: Vec<Value> = body
        .seats
        .iter()
        .filter_map(|s| {
            holder(&s.id).map(|p| {
                json!({
                    "seggio": s.name,
                    "nome": p.name,
                    "carica": p.capacity.title(),
                })
            })
        })
        .collect();
    let assenti: Vec<Value> = body
        .seats
        .iter()
        .filter(|s| holder(&s.id).is_none())
        .map(|s| json!({ "seggio": s.name }))
        .collect();
    let senza_voto: Vec<Value> = record
        .register
        .iter()
        .filter(|p| p.seat.is_none())
        .map(|p| json!({ "nome": p.name, "carica": p.capacity.title(), "nota": p.note }))
        .collect();
    let punti: Vec<Value> = record
        .items
        .iter()
        .map(|item| {
            json!({
                "titolo": item.title,
                "discussione": item.discussion,
                "esito": item.outcome.map(Outcome::title),
                "decisione": item.decision,
                "votazione": item.tally.as_ref().map(|t| json!({
                    "favorevoli": t.favorevoli, "contrari": t.contrari, "astenuti": t.astenuti,
                })),
            })
        })
        .collect();
    let mut firme = Vec::new();
    if let Some(p) = &record.presidente {
        firme.push(json!({ "ruolo": "Il Presidente", "nome": p }));
    }
    if let Some(v) = &record.verbalizzante {
        firme.push(json!({ "ruolo": "Il Segretario verbalizzante", "nome": v }));
    }
    json!({
        "organo": body.title,
        "giorno": record.date,
        "luogo": record.place,
        "ora_convocazione": record.convened,
        "ora_apertura": record.opened,
        "ora_chiusura": record.closed,
        "convocazione": record.convocation,
        "presidente": record.presidente,
        "verbalizzante": record.verbalizzante,
        "presenti": presenti,
        "assenti": assenti,
        "senza_voto": senza_voto,
        "punti": punti,
        "approvato_in_seduta": record.approved_in_session,
        "firme": firme,
    })
}

/// The history event of a member's answer to the convocation.
pub const EVENT_RSVP: &str = "risposta_convocazione";
/// The history event of an arrival in the register.
pub const EVENT_PRESENCE: &str = "presenza";
/// The history event of a departure.
pub const EVENT_DEPARTURE: &str = "uscita";
/// The history event of a vote on an item.
pub const EVENT_VOTE: &str = "votazione";
/// The history event of an item postponed.
pub const EVENT_POSTPONE: &str = "rinvio";
/// The history event of the signed verbale uploaded and registered.
pub const EVENT_SIGNED: &str = "verbale_firmato";

/// The signed verbale: registered in the protocollo, it is what gets published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedVerbale {
    /// Its registration ("0000012/2027").
    pub registration: String,
    /// The file's name.
    pub name: String,
    /// Its SHA-256.
    pub sha256: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A member's answer to the convocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// Will attend.
    Partecipa,
    /// Will not attend.
    NonPartecipa,
    /// Sends a delegate.
    Delega,
}

/// The answer of a seat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rsvp {
    /// The answer.
    pub answer: Answer,
    /// The delegate's name.
    #[serde(default)]
    pub delegate: Option<String>,
    /// The delegate's capacity.
    #[serde(default)]
    pub capacity: Option<Capacity>,
    /// Who answered (person id).
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A vote's count as kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    /// In favour: heads, weight.
    pub favorevoli: (usize, Decimal),
    /// Against.
    pub contrari: (usize, Decimal),
    /// Abstained.
    pub astenuti: (usize, Decimal),
}

/// What happened to an agenda item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemDecision {
    /// The outcome.
    pub outcome: Outcome,
    /// When.
    pub at: DateTime<Utc>,
    /// The count, when there was a roll-call vote.
    #[serde(default)]
    pub count: Option<Count>,
    /// The ballots, by seat.
    #[serde(default)]
    pub ballots: BTreeMap<String, Ballot>,
    /// How the outcome was reached, one Italian line each.
    #[serde(default)]
    pub trace: Vec<String>,
    /// An approved item is a deliberazione: its own window at the albo.
    #[serde(default)]
    pub publication: Option<Publication>,
}

/// A deliberazione's window at the albo: published on its own from the day it is adopted,
/// for the procedure's days (15 by default), without waiting for the verbale's approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publication {
    /// First day at the albo (counted).
    pub from: NaiveDate,
    /// Last day at the albo.
    pub to: NaiveDate,
    /// How the window was computed.
    pub trace: Vec<String>,
}

/// The albo window of a deliberazione adopted at `at`: a publication window of `days`
/// consecutive days from the civil day of adoption in Europe/Rome, first day counted, never
/// shifted.
///
/// # Errors
///
/// [`super::Error::Term`] when the window cannot be computed.
pub fn publication_window(
    p: &Procedure,
    days: u32,
    at: DateTime<Utc>,
) -> Result<Publication, super::Error> {
    let failed = |message: String| super::Error::Term {
        variable: "pubblicazione deliberazione".into(),
        message,
    };
    let rule = crate::terms::Rule::new(crate::terms::RuleSpec {
        window: Some(i64::from(days)),
        ..crate::terms::RuleSpec::default()
    })
    .map_err(|e| failed(e.to_string()))?;
    let from = at.with_timezone(&crate::terms::ROME).date_naive();
    let term = crate::terms::compute(&rule, from, &p.calendar.calendar, &[])
        .map_err(|e| failed(e.to_string()))?;
    let mut trace = vec![format!(
        "deliberazione adottata il {}: all'albo per {days} giorni consecutivi dal giorno stesso",
        from.format("%d/%m/%Y")
    )];
    trace.extend(term.trace);
    Ok(Publication {
        from,
        to: term.expiry,
        trace,
    })
}

/// A meeting's record in the instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingData {
    /// The body as convened: the seats are the members the instance started with (weights
    /// and rules from the body's file).
    #[serde(default)]
    pub body: Option<Body>,
    /// At its second call (the body's second quorum applies).
    #[serde(default)]
    pub second_call: bool,
    /// Answers to the convocation, by seat.
    #[serde(default)]
    pub rsvps: BTreeMap<String, Rsvp>,
    /// The register.
    #[serde(default)]
    pub register: Vec<Presence>,
    /// Decisions, by agenda index (0 for the first item).
    #[serde(default)]
    pub items: BTreeMap<usize, ItemDecision>,
    /// When the session opened.
    #[serde(default)]
    pub opened_at: Option<DateTime<Utc>>,
    /// When it closed.
    #[serde(default)]
    pub closed_at: Option<DateTime<Utc>>,
    /// The signed verbale, once uploaded (a corrected one replaces it; the history keeps both).
    #[serde(default)]
    pub signed: Option<SignedVerbale>,
    /// The verbale approved at a later session of the body (not "letto, approvato e
    /// sottoscritto" in this one).
    #[serde(default)]
    pub approval: Option<VerbaleApproval>,
}

/// A verbale approved by the first item of a later session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerbaleApproval {
    /// The body's id: only a session of the same body approves a verbale.
    #[serde(default)]
    pub body: String,
    /// The later meeting's instance.
    pub by_instance: String,
    /// The session's day (dd/mm/yyyy, Europe/Rome).
    pub date: String,
    /// The agenda item that approved it (1 for the first).
    pub item: usize,
    /// When the vote was recorded.
    pub at: DateTime<Utc>,
}

/// The history event of a verbale approved at a later session.
pub const EVENT_APPROVED: &str = "verbale_approvato";

/// The verbale of this (closed) meeting is approved by `approval`, the first item of a later
/// session of the same body. Refused when the session is not closed, when the verbale was
/// approved in its own session, or already by another session.
pub fn approve_verbale(
    p: &Procedure,
    instance: &Snapshot<'_>,
    approval: VerbaleApproval,
    now: DateTime<Utc>,
) -> Result<Step, super::Error> {
    let d = def(p)?;
    let m = instance.data.meeting.as_ref();
    if m.is_none_or(|m| m.closed_at.is_none()) {
        return Err(refused(
            "il verbale si approva dopo la chiusura della sua seduta",
        ));
    }
    let in_session = d
        .approved_in_session
        .as_ref()
        .is_some_and(|v| instance.data.variables.get(v.as_str()) == Some(&Value::Bool(true)));
    if in_session {
        return Err(refused(
            "il verbale è già stato letto, approvato e sottoscritto nella sua seduta",
        ));
    }
    if let Some(done) = m.and_then(|m| m.approval.as_ref()) {
        if done.by_instance == approval.by_instance && done.item == approval.item {
            // The same approval again (a retry): nothing changes.
            return Ok(stay(
                p,
                instance,
                instance.data.clone(),
                Vec::new(),
                EVENT_APPROVED,
                now,
            ));
        }
        return Err(refused(format!(
            "il verbale è già stato approvato nella seduta del {}",
            done.date
        )));
    }
    let body = body_of(d, instance.data);
    if approval.body != body.id {
        return Err(refused(format!(
            "il verbale di {} si approva in una seduta dello stesso organo, non di «{}»",
            body.title, approval.body
        )));
    }
    let mut data = instance.data.clone();
    data.meeting
        .get_or_insert_with(MeetingData::default)
        .approval = Some(approval);
    Ok(stay(p, instance, data, Vec::new(), EVENT_APPROVED, now))
}

fn refused(reason: impl Into<String>) -> super::Error {
    super::Error::MeetingRefused {
        reason: reason.into(),
    }
}

fn def(p: &Procedure) -> Result<&MeetingDef, super::Error> {
    p.meeting
        .as_ref()
        .ok_or_else(|| refused("questa procedura non convoca un organo"))
}

fn in_states(list: &[crate::definition::StateId], state: &str) -> bool {
    list.iter().any(|s| s.as_str() == state)
}

/// The agenda's items, from the instance's list variable.
pub fn agenda(d: &MeetingDef, data: &InstanceData) -> Vec<String> {
    data.variables
        .get(d.agenda.as_str())
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// At start: the members are those the instance is started with (a `parties` list of the
/// comuni or persons convened), each with its weight from the body's file (1 when the file does
/// not list it); without them, the file's seats. The record starts empty.
pub fn init(d: &MeetingDef, data: &mut InstanceData) {
    let given: Vec<Seat> = data
        .variables
        .get(d.members.as_str())
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|v| {
                    let id = v
                        .as_str()
                        .or_else(|| v.get("id").and_then(Value::as_str))?
                        .to_string();
                    let listed = d.body.seats.iter().find(|s| s.id == id);
                    let name = v
                        .get("nome")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .or_else(|| listed.map(|s| s.name.clone()))
                        .unwrap_or_else(|| id.clone());
                    Some(Seat {
                        weight: listed.map_or(Decimal::ONE, |s| s.weight),
                        id,
                        name,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let body = if given.is_empty() {
        d.body.clone()
    } else {
        Body {
            seats: given,
            ..d.body.clone()
        }
    };
    data.variables.insert(
        d.members.to_string(),
        Value::Array(
            body.seats
                .iter()
                .map(|s| json!({ "id": s.id, "nome": s.name }))
                .collect(),
        ),
    );
    data.meeting.get_or_insert_with(MeetingData::default).body = Some(body);
}

/// The body as convened for this instance.
pub fn body_of<'a>(d: &'a MeetingDef, data: &'a InstanceData) -> &'a Body {
    data.meeting
        .as_ref()
        .and_then(|m| m.body.as_ref())
        .unwrap_or(&d.body)
}

/// Writes whether the quorum is met now into the variable the definition names.
pub fn refresh_quorum(p: &Procedure, data: &mut InstanceData, now: DateTime<Utc>) {
    let (Some(d), Some(m)) = (p.meeting.as_ref(), data.meeting.as_ref()) else {
        return;
    };
    let Some(var) = &d.quorum else {
        return;
    };
    let q = quorum(body_of(d, data), &m.register, now, m.second_call);
    data.variables
        .insert(var.to_string(), q.met.map_or(Value::Null, Value::Bool));
}

/// Inside the step of the events the definition names: the session's opening and closing
/// instants, the second call.
pub fn on_event(p: &Procedure, data: &mut InstanceData, event: &str, now: DateTime<Utc>) {
    let Some(d) = p.meeting.as_ref() else {
        return;
    };
    let m = data.meeting.get_or_insert_with(MeetingData::default);
    if d.opened_on.as_str() == event && m.opened_at.is_none() {
        m.opened_at = Some(now);
    }
    if d.closed_on.as_str() == event {
        m.closed_at = Some(now);
    }
    if d.second_call_on
        .as_ref()
        .is_some_and(|e| e.as_str() == event)
    {
        m.second_call = true;
    }
    refresh_quorum(p, data, now);
}

fn stay(
    p: &Procedure,
    instance: &Snapshot<'_>,
    mut data: InstanceData,
    effects: Vec<super::Effect>,
    event: &str,
    now: DateTime<Utc>,
) -> Step {
    refresh_quorum(p, &mut data, now);
    super::step::stay(p, instance, data, effects, event, None, now)
}

fn seat<'a>(body: &'a Body, id: &str) -> Result<&'a Seat, super::Error> {
    body.seats.iter().find(|s| s.id == id).ok_or_else(|| {
        refused(format!(
            "'{id}' non è un seggio di {} (seggi: {})",
            body.title,
            body.seats
                .iter()
                .map(|s| s.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

fn may_sit(d: &MeetingDef, capacity: Capacity) -> Result<(), super::Error> {
    if capacity == Capacity::Sindaco
        || d.body.delegates.is_empty()
        || d.body.delegates.contains(&capacity)
    {
        Ok(())
    } else {
        Err(refused(format!(
            "per {} non può sedere un {} (ammessi: sindaco, {})",
            d.body.title,
            capacity
                .title()
                .unwrap_or("rappresentante senza carica indicata"),
            d.body
                .delegates
                .iter()
                .filter_map(|c| c.title())
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}

/// A seat answers the convocation: it attends, does not, or sends a delegate.
#[allow(clippy::too_many_arguments)]
pub fn rsvp(
    p: &Procedure,
    instance: &Snapshot<'_>,
    seat_id: &str,
    person: &str,
    answer: Answer,
    delegate: Option<&str>,
    capacity: Option<Capacity>,
    now: DateTime<Utc>,
) -> Result<Step, super::Error> {
    let d = def(p)?;
    if !in_states(&d.rsvp_while, instance.state) {
        return Err(super::Error::WrongState {
            event: EVENT_RSVP.into(),
            state: instance.state.to_string(),
            allowed: d.rsvp_while.iter().map(ToString::to_string).collect(),
        });
    }
    seat(body_of(d, instance.data), seat_id)?;
    let delegate = delegate.map(str::trim).filter(|n| !n.is_empty());
    if answer == Answer::Delega {
        let Some(name) = delegate else {
            return Err(refused("la delega indica il nome del delegato"));
        };
        if name.chars().count() > 200 {
            return Err(refused("nome del delegato troppo lungo"));
        }
        may_sit(d, capacity.unwrap_or(Capacity::Delegato))?;
    }
    let mut data = instance.data.clone();
    data.meeting
        .get_or_insert_with(MeetingData::default)
        .rsvps
        .insert(
            seat_id.to_string(),
            Rsvp {
                answer,
                delegate: (answer == Answer::Delega)
                    .then(|| delegate.unwrap_or_default().to_string()),
                capacity: (answer == Answer::Delega)
                    .then(|| capacity.unwrap_or(Capacity::Delegato)),
                by: person.to_string(),
                at: now,
            },
        );
    Ok(stay(p, instance, data, Vec::new(), EVENT_RSVP, now))
}

/// Someone arrives: for a seat (counted once), or without a vote.
pub fn arrive(
    p: &Procedure,
    instance: &Snapshot<'_>,
    presence: Presence,
    now: DateTime<Utc>,
) -> Result<Step, super::Error> {
    let d = def(p)?;
    if !in_states(&d.session_while, instance.state) {
        return Err(super::Error::WrongState {
            event: EVENT_PRESENCE.into(),
            state: instance.state.to_string(),
            allowed: d.session_while.iter().map(ToString::to_string).collect(),
        });
    }
    let name = presence.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(refused(
            "il nome di chi è presente è obbligatorio (al massimo 200 caratteri)",
        ));
    }
    let m = instance.data.meeting.clone().unwrap_or_default();
    if let Some(id) = &presence.seat {
        let s = seat(body_of(d, instance.data), id)?;
        may_sit(d, presence.capacity)?;
        if let Some(other) = m
            .register
            .iter()
            .find(|x| x.seat.as_deref() == Some(id.as_str()) && x.present_at(now))
        {
            return Err(refused(format!(
                "{} è già presente per {}: un seggio conta una volta",
                other.name, s.name
            )));
        }
    }
    if m.register
        .iter()
        .any(|x| x.name == name && x.present_at(now))
    {
        return Err(refused(format!("{name} risulta già presente")));
    }
    let mut data = instance.data.clone();
    data.meeting
        .get_or_insert_with(MeetingData::default)
        .register
        .push(Presence {
            name: name.to_string(),
            arrived: Some(now),
            left: None,
            ..presence
        });
    Ok(stay(p, instance, data, Vec::new(), EVENT_PRESENCE, now))
}

/// Someone leaves: later votes are taken without them.
pub fn leave(
    p: &Procedure,
    instance: &Snapshot<'_>,
    name: &str,
    now: DateTime<Utc>,
) -> Result<Step, super::Error> {
    let d = def(p)?;
    if !in_states(&d.session_while, instance.state) {
        return Err(super::Error::WrongState {
            event: EVENT_DEPARTURE.into(),
            state: instance.state.to_string(),
            allowed: d.session_while.iter().map(ToString::to_string).collect(),
        });
    }
    let mut data = instance.data.clone();
    let m = data.meeting.get_or_insert_with(MeetingData::default);
    let who = m
        .register
        .iter_mut()
        .find(|x| x.name == name.trim() && x.present_at(now))
        .ok_or_else(|| refused(format!("{} non risulta presente", name.trim())))?;
    who.left = Some(now);
    Ok(stay(p, instance, data, Vec::new(), EVENT_DEPARTURE, now))
}

/// A vote on an agenda item (0 for the first): the ballots of the seats present now, counted
/// by the body's rule with the quorum at this instant; or, where the minutes give no count, the
/// outcome as declared (still refused without quorum when the rule is known). An approved item
/// is a deliberazione, numbered in its repertorio.
pub fn vote(
    p: &Procedure,
    instance: &Snapshot<'_>,
    item: usize,
    ballots: &BTreeMap<String, Ballot>,
    declared: Option<Outcome>,
    now: DateTime<Utc>,
) -> Result<Step, super::Error> {
    let d = def(p)?;
    if !in_states(&d.session_while, instance.state) {
        return Err(super::Error::WrongState {
            event: EVENT_VOTE.into(),
            state: instance.state.to_string(),
            allowed: d.session_while.iter().map(ToString::to_string).collect(),
        });
    }
    let items = agenda(d, instance.data);
    let title = items
        .get(item)
        .ok_or_else(|| refused(format!("l'ordine del giorno ha {} punti", items.len())))?;
    let m = instance.data.meeting.clone().unwrap_or_default();
    if m.opened_at.is_none() || m.closed_at.is_some() {
        return Err(refused("si vota a seduta aperta"));
    }
    if let Some(done) = m.items.get(&item) {
        return Err(refused(format!(
            "il punto {} è già stato trattato: {}",
            item + 1,
            done.outcome.title()
        )));
    }
    let body = body_of(d, instance.data);
    let present: Vec<&Seat> = seats_present(body, &m.register, now);
    for s in ballots.keys() {
        seat(body, s)?;
        if !present.iter().any(|x| &x.id == s) {
            return Err(refused(format!("il seggio '{s}' non è presente: non vota")));
        }
    }
    let t = tally(body, &m.register, now, m.second_call, ballots);
    let outcome = match (t.outcome, declared) {
        (Some(Outcome::MancanzaNumeroLegale), _) => Outcome::MancanzaNumeroLegale,
        (Some(computed), Some(said)) if !ballots.is_empty() && computed != said => {
            return Err(refused(format!(
                "i voti danno «{}», non «{}»: {}",
                computed.title(),
                said.title(),
                t.trace.join("; ")
            )));
        }
        (Some(computed), _) if !ballots.is_empty() => computed,
        (_, Some(said)) => said,
        (_, None) => {
            return Err(refused(
                "senza votazione registrata, o senza regola di maggioranza dell'organo, va indicato l'esito",
            ));
        }
    };
    let publication = if outcome == Outcome::Approvato {
        Some(publication_window(p, d.publication_days, now)?)
    } else {
        None
    };
    let mut data = instance.data.clone();
    data.meeting
        .get_or_insert_with(MeetingData::default)
        .items
        .insert(
            item,
            ItemDecision {
                outcome,
                at: now,
                count: (!ballots.is_empty()).then_some(Count {
                    favorevoli: t.favorevoli,
                    contrari: t.contrari,
                    astenuti: t.astenuti,
                }),
                ballots: ballots.clone(),
                trace: t.trace,
                publication: publication.clone(),
            },
        );
    let mut effects = Vec::new();
    if outcome == Outcome::Approvato {
        let ctx = super::step::Context {
            p,
            instance_id: instance.id,
            now,
        };
        let mut context = ctx.template_context(instance.state, &data, None);
        if let Value::Object(map) = &mut context {
            map.insert(
                "deliberazione".into(),
                json!({
                    "punto": item + 1,
                    "oggetto": title,
                    "esito": outcome.title(),
                    "data": now.with_timezone(&crate::terms::ROME).format("%d/%m/%Y").to_string(),
                    // Heads and, where the body votes by quote, the weights.
                    "voti": (!ballots.is_empty()).then(|| json!({
                        "favorevoli": t.favorevoli.0,
                        "contrari": t.contrari.0,
                        "astenuti": t.astenuti.0,
                        "favorevoli_quote": t.favorevoli.1.to_string(),
                        "contrari_quote": t.contrari.1.to_string(),
                        "astenuti_quote": t.astenuti.1.to_string(),
                    })),
                    "pubblicazione": publication.as_ref().map(|w| json!({
                        "dal": w.from.format("%d/%m/%Y").to_string(),
                        "al": w.to.format("%d/%m/%Y").to_string(),
                    })),
                }),
            );
        }
        // The first item of a session that follows another approves that session's verbale.
        let previous = d.previous_verbale.as_ref().and_then(|v| {
            instance
                .data
                .variables
                .get(v.as_str())
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|id| !id.is_empty() && *id != instance.id)
        });
        if let (0, Some(previous)) = (item, previous) {
            effects.push(super::Effect::ApproveVerbale {
                instance_id: previous.to_string(),
                approval: VerbaleApproval {
                    body: body.id.clone(),
                    by_instance: instance.id.to_string(),
                    date: now
                        .with_timezone(&crate::terms::ROME)
                        .format("%d/%m/%Y")
                        .to_string(),
                    item: 1,
                    at: now,
                },
            });
        }
        effects.push(super::Effect::RegisterProtocol {
            direction: "interno".into(),
            subject: format!(
                "Deliberazione – {} – punto {}: {}",
                body.title,
                item + 1,
                title
            ),
            context,
            register: Some(d.repertorio.clone()),
            to: None,
            document: d.document.clone(),
            classification: None,
            organisations: None,
            participant: None,
        });
    }
    Ok(stay(p, instance, data, effects, EVENT_VOTE, now))
}

/// An item postponed to another session.
pub fn postpone(
    p: &Procedure,
    instance: &Snapshot<'_>,
    item: usize,
    now: DateTime<Utc>,
) -> Result<Step, super::Error> {
    let d = def(p)?;
    if !in_states(&d.session_while, instance.state) {
        return Err(super::Error::WrongState {
            event: EVENT_POSTPONE.into(),
            state: instance.state.to_string(),
            allowed: d.session_while.iter().map(ToString::to_string).collect(),
        });
    }
    let items = agenda(d, instance.data);
    if item >= items.len() {
        return Err(refused(format!(
            "l'ordine del giorno ha {} punti",
            items.len()
        )));
    }
    let mut data = instance.data.clone();
    let m = data.meeting.get_or_insert_with(MeetingData::default);
    if m.items.contains_key(&item) {
        return Err(refused(format!(
            "il punto {} è già stato trattato",
            item + 1
        )));
    }
    m.items.insert(
        item,
        ItemDecision {
            outcome: Outcome::Rinviato,
            at: now,
            count: None,
            ballots: BTreeMap::new(),
            trace: Vec::new(),
            publication: None,
        },
    );
    Ok(stay(p, instance, data, Vec::new(), EVENT_POSTPONE, now))
}

/// The signed verbale is uploaded and registered: after the session closed.
pub fn sign_verbale(
    p: &Procedure,
    instance: &Snapshot<'_>,
    signed: SignedVerbale,
    now: DateTime<Utc>,
) -> Result<Step, super::Error> {
    let d = def(p)?;
    let closed = instance
        .data
        .meeting
        .as_ref()
        .is_some_and(|m| m.closed_at.is_some());
    if !closed {
        return Err(refused(
            "il verbale firmato si carica dopo la chiusura della seduta",
        ));
    }
    let mut data = instance.data.clone();
    data.meeting.get_or_insert_with(MeetingData::default).signed = Some(signed);
    if let Some(var) = &d.signed {
        data.variables.insert(var.to_string(), Value::Bool(true));
    }
    Ok(stay(p, instance, data, Vec::new(), EVENT_SIGNED, now))
}

/// The record of a live meeting, for its verbale: times in Europe/Rome, the place and the
/// verbalizzante from the procedure's variables, the presidente from the body's seat.
pub fn record_of(p: &Procedure, data: &InstanceData) -> Option<MeetingRecord> {
    let d = p.meeting.as_ref()?;
    let m = data.meeting.as_ref()?;
    let rome = |t: DateTime<Utc>| t.with_timezone(&crate::terms::ROME);
    let text = |name: &str| {
        data.variables
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let scheduled = data
        .variables
        .get(d.when.as_str())
        .and_then(|v| super::value::instant_of(crate::definition::VarType::DateTime, v))
        .or(m.opened_at);
    let date = scheduled
        .map(|t| rome(t).format("%d/%m/%Y").to_string())
        .unwrap_or_else(|| "—".into());
    let presidente = body_of(d, data).presidente.as_ref().and_then(|seat| {
        m.register
            .iter()
            .find(|x| x.seat.as_deref() == Some(seat.as_str()))
            .map(|x| x.name.clone())
    });
    let items = agenda(d, data)
        .into_iter()
        .enumerate()
        .map(|(i, title)| {
            let decision = m.items.get(&i);
            ItemRecord {
                title,
                discussion: None,
                outcome: decision.map(|x| x.outcome),
                decision: None,
                tally: decision
                    .and_then(|x| x.count.as_ref())
                    .map(|c| CountRecord {
                        favorevoli: c.favorevoli.0,
                        contrari: c.contrari.0,
                        astenuti: c.astenuti.0,
                    }),
            }
        })
        .collect();
    Some(MeetingRecord {
        date,
        place: d.place.as_ref().and_then(|v| text(v.as_str())),
        convened: data
            .variables
            .get(d.when.as_str())
            .and_then(|v| super::value::instant_of(crate::definition::VarType::DateTime, v))
            .map(|t| rome(t).format("%H.%M").to_string()),
        opened: m.opened_at.map(|t| rome(t).format("%H.%M").to_string()),
        closed: m.closed_at.map(|t| rome(t).format("%H.%M").to_string()),
        convocation: None,
        presidente,
        verbalizzante: d.verbalizzante.as_ref().and_then(|v| text(v.as_str())),
        register: m.register.clone(),
        items,
        approved_in_session: d
            .approved_in_session
            .as_ref()
            .and_then(|v| data.variables.get(v.as_str()))
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn at(hhmm: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2027-01-20T{hhmm}:00+01:00"))
            .expect("instant")
            .with_timezone(&Utc)
    }

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).expect("decimal")
    }

    fn body(weights: &[(&str, &str)], rules: Rules) -> Body {
        Body {
            id: "assemblea".into(),
            title: "Assemblea dei Sindaci".into(),
            seats: weights
                .iter()
                .map(|(id, w)| Seat {
                    id: (*id).into(),
                    name: format!("Comune di {id}"),
                    weight: d(w),
                })
                .collect(),
            attendees: Vec::new(),
            rules,
            presidente: None,
            delegates: Vec::new(),
        }
    }

    fn present(seats: &[&str]) -> Vec<Presence> {
        seats
            .iter()
            .map(|s| Presence {
                seat: Some((*s).into()),
                name: format!("sindaco di {s}"),
                capacity: Capacity::Sindaco,
                note: None,
                arrived: None,
                left: None,
            })
            .collect()
    }

    fn ballots(list: &[(&str, Ballot)]) -> BTreeMap<String, Ballot> {
        list.iter().map(|(s, b)| ((*s).to_string(), *b)).collect()
    }

    /// Seed 001 (Cinisello Balsamo): "a maggioranza dei voti dei Sindaci presenti e votanti,
    /// in ragione dei voti espressi e secondo le quote di ciascuno rappresentante".
    fn by_quota() -> Rules {
        Rules {
            quorum: Some(Quorum {
                heads: None,
                weights: Some(Threshold {
                    fraction: d("0.5"),
                    strict: true,
                }),
            }),
            second_quorum: None,
            majority: Some(Majority {
                basis: Basis::Weights,
                base: Base::Voting,
            }),
        }
    }

    #[test]
    fn a_vote_by_quota_passes_where_a_head_count_fails_and_the_reverse() {
        use Ballot::*;
        let quota = body(
            &[
                ("cinisello", "40"),
                ("bresso", "10"),
                ("cormano", "10"),
                ("cusano", "10"),
            ],
            by_quota(),
        );
        let heads = Body {
            rules: Rules {
                majority: Some(Majority {
                    basis: Basis::Heads,
                    base: Base::Voting,
                }),
                ..by_quota()
            },
            ..quota.clone()
        };
        let register = present(&["cinisello", "bresso", "cormano", "cusano"]);
        // The big comune for, two small against, one abstains: 40 against 20 by quota, 1
        // against 2 by heads.
        let votes = ballots(&[
            ("cinisello", Favorevole),
            ("bresso", Contrario),
            ("cormano", Contrario),
            ("cusano", Astenuto),
        ]);
        let t = tally(&quota, &register, at("18:00"), false, &votes);
        assert_eq!(t.outcome, Some(Outcome::Approvato), "{:#?}", t.trace);
        assert_eq!(t.favorevoli, (1, d("40")));
        assert_eq!(
            tally(&heads, &register, at("18:00"), false, &votes).outcome,
            Some(Outcome::Respinto)
        );
        // The reverse: the three small ones for (30), the big one against (40).
        let votes = ballots(&[
            ("cinisello", Contrario),
            ("bresso", Favorevole),
            ("cormano", Favorevole),
            ("cusano", Favorevole),
        ]);
        assert_eq!(
            tally(&quota, &register, at("18:00"), false, &votes).outcome,
            Some(Outcome::Respinto)
        );
        assert_eq!(
            tally(&heads, &register, at("18:00"), false, &votes).outcome,
            Some(Outcome::Approvato)
        );
    }

    #[test]
    fn an_abstention_changes_the_outcome_with_the_bodys_base_rule() {
        use Ballot::*;
        let rules = |base| Rules {
            quorum: None,
            second_quorum: None,
            majority: Some(Majority {
                basis: Basis::Heads,
                base,
            }),
        };
        let seats = [("a", "1"), ("b", "1"), ("c", "1"), ("d", "1")];
        let register = present(&["a", "b", "c", "d"]);
        let votes = ballots(&[
            ("a", Favorevole),
            ("b", Favorevole),
            ("c", Contrario),
            ("d", Astenuto),
        ]);
        // 2 of 4 present is not more than half; 2 of 3 voting is.
        let t = tally(
            &body(&seats, rules(Base::Present)),
            &register,
            at("18:00"),
            false,
            &votes,
        );
        assert_eq!(t.outcome, Some(Outcome::Respinto), "{:#?}", t.trace);
        let t = tally(
            &body(&seats, rules(Base::Voting)),
            &register,
            at("18:00"),
            false,
            &votes,
        );
        assert_eq!(t.outcome, Some(Outcome::Approvato), "{:#?}", t.trace);
        // Without quorum rule the quorum is not assumed: it is unknown, and said so.
        assert_eq!(t.quorum.met, None);
        assert!(t.trace.iter().any(|l| l.contains("non indicata")));
    }

    #[test]
    fn a_member_leaving_mid_session_makes_a_later_vote_lack_quorum() {
        use Ballot::*;
        let rules = Rules {
            quorum: Some(Quorum {
                heads: Some(Threshold {
                    fraction: d("0.5"),
                    strict: true,
                }),
                weights: None,
            }),
            second_quorum: Some(Quorum {
                heads: Some(Threshold {
                    fraction: d("0.3333"),
                    strict: false,
                }),
                weights: None,
            }),
            majority: Some(Majority {
                basis: Basis::Heads,
                base: Base::Voting,
            }),
        };
        let seats: Vec<(&str, &str)> = ["a", "b", "c", "d", "e", "f", "g", "h"]
            .iter()
            .map(|s| (*s, "1"))
            .collect();
        let body = body(&seats, rules);
        let mut register = present(&["a", "b", "c", "d", "e"]);
        // A delegate holds e's seat: it counts for its comune.
        register[4].capacity = Capacity::Delegato;
        register[4].left = Some(at("19:00"));
        let votes = ballots(&[("a", Favorevole), ("b", Favorevole), ("c", Favorevole)]);
        let before = tally(&body, &register, at("18:50"), false, &votes);
        assert_eq!(before.quorum.heads, 5);
        assert_eq!(
            before.outcome,
            Some(Outcome::Approvato),
            "{:#?}",
            before.trace
        );
        let after = tally(&body, &register, at("19:05"), false, &votes);
        assert_eq!(after.quorum.heads, 4);
        assert_eq!(after.quorum.met, Some(false));
        assert_eq!(
            after.outcome,
            Some(Outcome::MancanzaNumeroLegale),
            "{:#?}",
            after.trace
        );
        // At a second call, with its lower quorum (a third), the same four suffice.
        let second = tally(&body, &register, at("19:05"), true, &votes);
        assert_eq!(
            second.outcome,
            Some(Outcome::Approvato),
            "{:#?}",
            second.trace
        );
    }

    #[test]
    fn a_seat_counts_once_whoever_sits_for_it() {
        let body = body(&[("tradate", "1"), ("gornate", "1")], by_quota());
        let mut register = present(&["tradate"]);
        register.push(Presence {
            seat: None,
            name: "Franco Accordino".into(),
            capacity: Capacity::Assessore,
            note: Some("assessore ai servizi sociali di Tradate".into()),
            arrived: None,
            left: None,
        });
        let q = quorum(&body, &register, at("18:00"), false);
        assert_eq!((q.heads, q.seats), (1, 2));
    }
}
