//! The one entry point of the interpreter: same (procedure, instance, command, now) → same
//! result. Returns the new state, data and effects; writes nothing.
//!
//! A command acts on the procedure, or on one participant (`Command::participant`): a
//! participant's event moves only that participant, in its own lifecycle, and its actions run
//! in its scope (its variables, its terms, messages to it alone).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::Error;
use super::effect::*;
use super::plan;
pub(crate) use super::plan::timer_diff;
use super::scope::{self, active};
use super::terms::{self, compute_all, show};
use super::value;
use crate::definition::{
    Action, Audience, ExtensionKind, Notify, Procedure, Protocollo, SYSTEM_ROLE, StartValue,
    Transition,
};
use crate::terms::ROME;

/// Who acts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Person id (or `scheduler`).
    pub id: String,
    /// The role they act in.
    pub role: String,
}

impl Actor {
    /// The scheduler, firing a timer.
    pub fn system() -> Actor {
        Actor {
            id: "scheduler".into(),
            role: SYSTEM_ROLE.into(),
        }
    }
}

/// A command to an instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// The event.
    pub event: String,
    /// Who fires it.
    pub actor: Actor,
    /// Inputs.
    #[serde(default)]
    pub payload: Map<String, Value>,
    /// The participant whose event it is (`None`: the procedure's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant: Option<String>,
}

/// What the interpreter reads of an instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot<'a> {
    /// Instance id (for contexts).
    pub id: &'a str,
    /// Current state.
    pub state: &'a str,
    /// Current data.
    pub data: &'a InstanceData,
}

/// How a participant moved in a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParticipantMove {
    /// The participant.
    pub id: String,
    /// Its state before (`None` when it joined).
    pub from: Option<String>,
    /// Its state after.
    pub to: String,
}

/// The result of a step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// State before (`None` when the instance starts).
    pub from: Option<String>,
    /// State after.
    pub to: String,
    /// The event (`avvio` for a start).
    pub event: String,
    /// Data after.
    pub data: InstanceData,
    /// Effects to commit with the step.
    pub effects: Vec<Effect>,
    /// The state after is final.
    pub is_final: bool,
    /// The participant the step was about.
    pub participant: Option<ParticipantMove>,
}

/// The event name recorded when an instance starts.
pub const START_EVENT: &str = "avvio";
/// The event recorded when a participant joins (its application arrives).
pub const JOIN_EVENT: &str = "presentazione";
/// The event recorded when a participant withdraws its application.
pub const WITHDRAW_EVENT: &str = "ritiro";

/// Starts an instance: checks the initial variables, computes terms, enters the initial state.
/// `parent` is the instance that awaits this one, if any.
pub fn start(
    p: &Procedure,
    instance_id: &str,
    variables: &Map<String, Value>,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<Step, Error> {
    start_awaited(p, instance_id, variables, None, actor, now)
}

/// Starts an instance a parent awaits (see [`start`]).
pub fn start_awaited(
    p: &Procedure,
    instance_id: &str,
    variables: &Map<String, Value>,
    parent: Option<ParentLink>,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<Step, Error> {
    let _ = actor;
    let mut data = InstanceData {
        parent,
        ..InstanceData::default()
    };
    for (name, value) in variables {
        let var = p.variable(name).ok_or_else(|| Error::UnexpectedInput {
            field: name.clone(),
        })?;
        if var.term.is_some() {
            return Err(Error::ComputedVariable {
                field: name.clone(),
            });
        }
        let v = value::check(var.kind, value).map_err(|expected| Error::InvalidInput {
            field: name.clone(),
            expected,
        })?;
        data.variables.insert(name.clone(), v);
    }
    for var in p.variables.values() {
        if var.required
            && data
                .variables
                .get(var.name.as_str())
                .is_none_or(Value::is_null)
        {
            return Err(Error::MissingInput {
                field: var.name.to_string(),
            });
        }
    }
    if let Some(d) = &p.meeting {
        super::meeting::init(d, &mut data);
    }
    compute_all(p, &mut data)?;
    let initial = p.initial_state();
    let mut effects = Vec::new();
    let ctx = Context {
        p,
        instance_id,
        now,
    };
    ctx.run_actions(
        &initial.on_enter,
        initial.id.as_str(),
        None,
        &mut data,
        &mut effects,
    )?;
    compute_all(p, &mut data)?;
    timer_diff(p, None, (initial.id.as_str(), &data), now, &mut effects);
    Ok(Step {
        from: None,
        to: initial.id.to_string(),
        event: START_EVENT.into(),
        data,
        effects,
        is_final: initial.is_final,
        participant: None,
    })
}

/// Fires an event on an instance, or on one of its participants.
pub fn fire(
    p: &Procedure,
    instance: &Snapshot<'_>,
    cmd: &Command,
    now: DateTime<Utc>,
) -> Result<Step, Error> {
    let state = p.state(instance.state).ok_or_else(|| Error::UnknownState {
        state: instance.state.to_string(),
    })?;
    if state.is_final {
        return Err(Error::Concluded {
            state: state.title.clone(),
        });
    }
    if let Some(participant) = &cmd.participant {
        return fire_participant(p, instance, participant, cmd, now);
    }
    if let Some(timer) = cmd.event.strip_prefix(super::expiry::EXPIRY_PREFIX)
        && cmd.actor.role == SYSTEM_ROLE
    {
        return super::expiry::expire(p, instance, timer, now);
    }
    let candidates: Vec<&Transition> = p.candidates(instance.state, &cmd.event).collect();
    if candidates.is_empty() {
        return Err(not_here(&p.transitions, &cmd.event, instance.state));
    }
    let may = |t: &Transition| {
        t.roles.iter().any(|r| r.as_str() == cmd.actor.role)
            || (cmd.actor.role == SYSTEM_ROLE
                && (p.timer_fires(instance.state, t.event.as_str()) || p.awaits(&cmd.event)))
    };
    let (t, mut data) = choose(p, &candidates, instance.data, None, cmd, now, may)?;
    if let Some(d) = &p.evaluation {
        // The avviso's criteria are fixed when it is published, with the act approving them.
        if d.fixed_on.as_str() == cmd.event && data.evaluation.is_none() {
            let act = d
                .criteria_act
                .as_ref()
                .and_then(|v| data.variables.get(v.as_str()))
                .and_then(Value::as_str)
                .map(String::from);
            data.evaluation = Some(super::evaluation::fix(d, act, now));
        }
        // The graduatoria is computed and frozen before the actions that communicate it.
        if d.approve.as_str() == cmd.event {
            super::evaluation::approve(p, &mut data, now)?;
        }
    }
    // A meeting records its opening, closing and second call before the actions (the verbale
    // registered on closing reads them).
    super::meeting::on_event(p, &mut data, &cmd.event, now);

    let mut effects = Vec::new();
    let ctx = Context {
        p,
        instance_id: instance.id,
        now,
    };
    ctx.run_actions(&t.actions, t.to.as_str(), None, &mut data, &mut effects)?;
    compute_all(p, &mut data)?;
    let target = p.state(t.to.as_str()).ok_or_else(|| Error::UnknownState {
        state: t.to.to_string(),
    })?;
    if t.to.as_str() != instance.state {
        ctx.run_actions(
            &target.on_enter,
            t.to.as_str(),
            None,
            &mut data,
            &mut effects,
        )?;
        compute_all(p, &mut data)?;
    }
    if target.is_final
        && let Some(parent) = &data.parent
    {
        let results = p
            .results
            .iter()
            .map(|name| {
                (
                    name.to_string(),
                    data.variables
                        .get(name.as_str())
                        .cloned()
                        .unwrap_or(Value::Null),
                )
            })
            .collect();
        effects.push(Effect::ResumeParent {
            parent_id: parent.instance_id.clone(),
            event: parent.event.clone(),
            results,
        });
    }
    timer_diff(
        p,
        Some((instance.state, instance.data)),
        (t.to.as_str(), &data),
        now,
        &mut effects,
    );
    Ok(Step {
        from: Some(instance.state.to_string()),
        to: t.to.to_string(),
        event: cmd.event.clone(),
        data,
        effects,
        is_final: target.is_final,
        participant: None,
    })
}

/// Why an event cannot be taken from a state: it exists elsewhere, or nowhere.
fn not_here(transitions: &[Transition], event: &str, state: &str) -> Error {
    let mut elsewhere: Vec<String> = transitions
        .iter()
        .filter(|t| t.event.as_str() == event)
        .flat_map(|t| t.from.iter().map(|s| s.to_string()))
        .collect();
    elsewhere.dedup();
    if elsewhere.is_empty() {
        Error::UnknownEvent {
            event: event.to_string(),
        }
    } else {
        Error::WrongState {
            event: event.to_string(),
            state: state.to_string(),
            allowed: elsewhere,
        }
    }
}

/// Of the transitions an event may take, the first the actor may fire whose guards hold, with
/// the data after its inputs. A wrongly typed input is refused whichever is taken; a missing
/// required input only for the one whose guards hold.
fn choose<'t>(
    p: &Procedure,
    candidates: &[&'t Transition],
    data: &InstanceData,
    participant: Option<&str>,
    cmd: &Command,
    now: DateTime<Utc>,
    may: impl Fn(&Transition) -> bool,
) -> Result<(&'t Transition, InstanceData), Error> {
    let permitted: Vec<&Transition> = candidates.iter().copied().filter(|t| may(t)).collect();
    if permitted.is_empty() {
        let mut allowed: Vec<String> = candidates
            .iter()
            .flat_map(|t| t.roles.iter().map(ToString::to_string))
            .collect();
        allowed.dedup();
        return Err(Error::Forbidden {
            role: cmd.actor.role.clone(),
            event: cmd.event.clone(),
            allowed,
        });
    }
    for key in cmd.payload.keys() {
        if !permitted
            .iter()
            .any(|t| t.inputs.iter().any(|i| i.variable.as_str() == key))
        {
            return Err(Error::UnexpectedInput { field: key.clone() });
        }
    }
    let missing = |t: &Transition| {
        t.inputs
            .iter()
            .filter(|i| i.required)
            .find(|i| {
                cmd.payload
                    .get(i.variable.as_str())
                    .is_none_or(Value::is_null)
            })
            .map(|i| Error::MissingInput {
                field: i.variable.to_string(),
            })
    };
    // With one way to go, a missing input is said before the guards that read it; with
    // alternatives, the guards choose, then the chosen one's inputs are checked.
    let single = permitted.len() == 1;
    let mut failed = Vec::new();
    for t in permitted {
        if single && let Some(e) = missing(t) {
            return Err(e);
        }
        let mut after = data.clone();
        apply_inputs(p, t, &cmd.payload, &mut after, participant)?;
        compute_all(p, &mut after)?;
        match t
            .guard
            .iter()
            .find(|g| !scope::holds(p, &after, participant, &g.expr, now))
        {
            None => {
                if let Some(e) = missing(t) {
                    return Err(e);
                }
                return Ok((t, after));
            }
            Some(g) => failed.push(g),
        }
    }
    let mut messages: Vec<&str> = Vec::new();
    for g in &failed {
        if !messages.contains(&g.message.as_str()) {
            messages.push(&g.message);
        }
    }
    Err(Error::GuardFailed {
        message: messages.join(" Oppure: "),
        condition: failed
            .iter()
            .map(|g| g.source.as_str())
            .collect::<Vec<_>>()
            .join(" | "),
    })
}

/// Writes the inputs the payload carries into their variables, type-checked.
fn apply_inputs(
    p: &Procedure,
    t: &Transition,
    payload: &Map<String, Value>,
    data: &mut InstanceData,
    participant: Option<&str>,
) -> Result<(), Error> {
    for input in &t.inputs {
        let name = input.variable.as_str();
        let Some(v) = payload.get(name).filter(|v| !v.is_null()) else {
            continue;
        };
        let v = value::check(scope::kind(p, participant, name), v).map_err(|expected| {
            Error::InvalidInput {
                field: name.to_string(),
                expected,
            }
        })?;
        if let Some(vars) = scope::variables_mut(p, data, participant, name) {
            vars.insert(name.to_string(), v);
        }
    }
    Ok(())
}

fn fire_participant(
    p: &Procedure,
    instance: &Snapshot<'_>,
    id: &str,
    cmd: &Command,
    now: DateTime<Utc>,
) -> Result<Step, Error> {
    let def = p.participant.as_ref().ok_or(Error::NoParticipants)?;
    let part = instance
        .data
        .participants
        .get(id)
        .ok_or_else(|| Error::UnknownParticipant { id: id.to_string() })?;
    if part.withdrawn {
        return Err(Error::Withdrawn {
            name: part.name.clone(),
        });
    }
    let from = part.state.clone();
    if let Some(state) = def.states.get(from.as_str())
        && state.is_final
    {
        return Err(Error::ParticipantConcluded {
            name: part.name.clone(),
            state: state.title.clone(),
        });
    }
    let candidates: Vec<&Transition> = def.candidates(&from, &cmd.event).collect();
    if candidates.is_empty() {
        return Err(not_here(&def.transitions, &cmd.event, &from));
    }
    let open: Vec<&Transition> = candidates
        .iter()
        .copied()
        .filter(|t| {
            t.while_in.is_empty() || t.while_in.iter().any(|s| s.as_str() == instance.state)
        })
        .collect();
    if open.is_empty() {
        let mut allowed: Vec<String> = candidates
            .iter()
            .flat_map(|t| t.while_in.iter().map(ToString::to_string))
            .collect();
        allowed.dedup();
        return Err(Error::NotNow {
            event: cmd.event.clone(),
            state: instance.state.to_string(),
            allowed,
        });
    }
    let may = |t: &Transition| {
        t.roles.iter().any(|r| r.as_str() == cmd.actor.role)
            || (cmd.actor.role == SYSTEM_ROLE && def.timer_fires(&from, t.event.as_str()))
    };
    let (t, mut data) = choose(p, &open, instance.data, Some(id), cmd, now, may)?;
    let mut effects = Vec::new();
    let ctx = Context {
        p,
        instance_id: instance.id,
        now,
    };
    ctx.run_actions(
        &t.actions,
        instance.state,
        Some(id),
        &mut data,
        &mut effects,
    )?;
    compute_all(p, &mut data)?;
    if let Some(part) = data.participants.get_mut(id) {
        part.state = t.to.to_string();
    }
    if t.to.as_str() != from {
        let target = def
            .states
            .get(t.to.as_str())
            .ok_or_else(|| Error::UnknownState {
                state: t.to.to_string(),
            })?;
        ctx.run_actions(
            &target.on_enter,
            instance.state,
            Some(id),
            &mut data,
            &mut effects,
        )?;
        compute_all(p, &mut data)?;
    }
    Ok(participant_step(
        p,
        instance,
        data,
        effects,
        cmd.event.clone(),
        ParticipantMove {
            id: id.to_string(),
            from: Some(from.clone()),
            to: t.to.to_string(),
        },
        now,
    ))
}

/// The step of a participant's event: the procedure stays where it is, the timers follow the
/// participant's new data.
fn participant_step(
    p: &Procedure,
    instance: &Snapshot<'_>,
    data: InstanceData,
    effects: Vec<Effect>,
    event: String,
    moved: ParticipantMove,
    now: DateTime<Utc>,
) -> Step {
    stay(p, instance, data, effects, &event, Some(moved), now)
}

/// A step that leaves the procedure in its state (a participant's event, a command of the
/// commissione or of a meeting): the timers follow the new data.
pub(crate) fn stay(
    p: &Procedure,
    instance: &Snapshot<'_>,
    data: InstanceData,
    mut effects: Vec<Effect>,
    event: &str,
    participant: Option<ParticipantMove>,
    now: DateTime<Utc>,
) -> Step {
    timer_diff(
        p,
        Some((instance.state, instance.data)),
        (instance.state, &data),
        now,
        &mut effects,
    );
    Step {
        from: Some(instance.state.to_string()),
        to: instance.state.to_string(),
        event: event.to_string(),
        data,
        effects,
        is_final: false,
        participant,
    }
}

/// Who joins a procedure as a participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joining<'a> {
    /// The participant's id (the id of its application).
    pub id: &'a str,
    /// The organisation that acts and receives (the capofila of a group).
    pub organisation_id: &'a str,
    /// Its name.
    pub name: &'a str,
    /// The other members of a group still to be formed.
    pub members: &'a [String],
    /// When the application was delivered, when earlier than the step (a PEC read from the
    /// mailbox after its consegna): timeliness is judged on it.
    pub received_at: Option<DateTime<Utc>>,
    /// The organisation's PEC address (domicilio digitale), when it has one: PEC
    /// notifications to the participant go there.
    pub pec: Option<&'a str>,
}

/// A participant joins (its application arrived): it enters the participant's initial state,
/// whose actions run in its scope.
pub fn join(
    p: &Procedure,
    instance: &Snapshot<'_>,
    joining: &Joining<'_>,
    now: DateTime<Utc>,
) -> Result<Step, Error> {
    let def = p.participant.as_ref().ok_or(Error::NoParticipants)?;
    let state = p.state(instance.state).ok_or_else(|| Error::UnknownState {
        state: instance.state.to_string(),
    })?;
    if state.is_final {
        return Err(Error::Concluded {
            state: state.title.clone(),
        });
    }
    submissions_open_at(
        p,
        instance,
        joining.received_at.map_or(now, |at| at.min(now)),
        now,
    )?;
    let withdrawn = instance
        .data
        .participants
        .values()
        .filter(|part| part.withdrawn && part.organisation_id == joining.organisation_id)
        .count();
    if withdrawn >= MAX_WITHDRAWN {
        return Err(Error::TooManyWithdrawals {
            name: joining.name.to_string(),
            count: withdrawn,
        });
    }
    if instance.data.participants.contains_key(joining.id)
        || active(instance.data)
            .iter()
            .any(|(_, part)| part.organisation_id == joining.organisation_id)
    {
        return Err(Error::AlreadyParticipant {
            name: joining.name.to_string(),
        });
    }
    let initial = def.initial_state().ok_or_else(|| Error::UnknownState {
        state: "(iniziale del partecipante)".into(),
    })?;
    let mut data = instance.data.clone();
    data.participants.insert(
        joining.id.to_string(),
        ParticipantData {
            organisation_id: joining.organisation_id.to_string(),
            name: joining.name.to_string(),
            members: joining.members.to_vec(),
            state: initial.id.to_string(),
            variables: Map::new(),
            terms: Default::default(),
            suspensions: Default::default(),
            joined_at: now,
            withdrawn: false,
            consegne: Default::default(),
            pec: joining.pec.map(str::to_string),
        },
    );
    compute_all(p, &mut data)?;
    let mut effects = Vec::new();
    let ctx = Context {
        p,
        instance_id: instance.id,
        now,
    };
    ctx.run_actions(
        &initial.on_enter,
        instance.state,
        Some(joining.id),
        &mut data,
        &mut effects,
    )?;
    compute_all(p, &mut data)?;
    Ok(participant_step(
        p,
        instance,
        data,
        effects,
        JOIN_EVENT.into(),
        ParticipantMove {
            id: joining.id.to_string(),
            from: None,
            to: initial.id.to_string(),
        },
        now,
    ))
}

/// How many applications an organisation may withdraw from one notice: each stays in the
/// instance (its history does), so an endless apply-and-withdraw would weigh on every step.
pub const MAX_WITHDRAWN: usize = 5;

/// Applications are taken (and withdrawn) in the states the procedure names, up to the
/// deadline: the API says it with its trace, the engine enforces it whoever calls.
pub(crate) fn submissions_open(
    p: &Procedure,
    instance: &Snapshot<'_>,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let Some(s) = &p.submissions else {
        return Err(Error::NoParticipants);
    };
    if !s.while_in.iter().any(|w| w.as_str() == instance.state) {
        return Err(Error::WrongState {
            event: JOIN_EVENT.into(),
            state: instance.state.to_string(),
            allowed: s.while_in.iter().map(ToString::to_string).collect(),
        });
    }
    if let Some(value) = instance.data.variables.get(s.deadline.as_str())
        && terms::expired(crate::definition::VarType::DateTime, value, now)
    {
        return Err(Error::SubmissionsClosed {
            deadline: show(value),
        });
    }
    Ok(())
}

/// Whether an application delivered at `received` is in time, judged at `now`: as
/// [`submissions_open`] at `received`, except that one delivered before the deadline and read
/// after the procedure moved on (a PEC in the mailbox when the deadline timer fired) still
/// joins.
pub(crate) fn submissions_open_at(
    p: &Procedure,
    instance: &Snapshot<'_>,
    received: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let open = submissions_open(p, instance, received);
    let Err(Error::WrongState { .. }) = &open else {
        return open;
    };
    let Some(s) = &p.submissions else {
        return open;
    };
    match instance.data.variables.get(s.deadline.as_str()) {
        Some(value) if received < now && !value.is_null() => {
            if terms::expired(crate::definition::VarType::DateTime, value, received) {
                Err(Error::SubmissionsClosed {
                    deadline: show(value),
                })
            } else {
                Ok(())
            }
        }
        _ => open,
    }
}

/// A participant withdraws its application before the deadline: it stops counting, its
/// timers are disarmed, its variables are dropped (nothing was decided on it yet).
pub fn withdraw(
    p: &Procedure,
    instance: &Snapshot<'_>,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Step, Error> {
    submissions_open(p, instance, now)?;
    let part = instance
        .data
        .participants
        .get(id)
        .ok_or_else(|| Error::UnknownParticipant { id: id.to_string() })?;
    if part.withdrawn {
        return Err(Error::Withdrawn {
            name: part.name.clone(),
        });
    }
    let state = part.state.clone();
    let mut data = instance.data.clone();
    if let Some(part) = data.participants.get_mut(id) {
        part.withdrawn = true;
        part.variables.clear();
        part.terms.clear();
        part.suspensions.clear();
    }
    Ok(participant_step(
        p,
        instance,
        data,
        Vec::new(),
        WITHDRAW_EVENT.into(),
        ParticipantMove {
            id: id.to_string(),
            from: Some(state.clone()),
            to: state,
        },
        now,
    ))
}

/// Transitions the actor may fire from the instance's state (role only; guards are not run).
pub fn available<'a>(
    p: &'a Procedure,
    state: &'a str,
    role: &'a str,
) -> impl Iterator<Item = &'a Transition> + 'a {
    let mut seen = Vec::new();
    p.transitions_from(state)
        .filter(move |t| t.roles.iter().any(|r| r.as_str() == role))
        .filter(move |t| {
            // Alternatives of one event are one choice for the person.
            if seen.contains(&t.event.as_str()) {
                false
            } else {
                seen.push(t.event.as_str());
                true
            }
        })
}

/// Events the actor may fire on a participant now: from its state, in the procedure's state,
/// with its role (guards are not run). One per event.
pub fn available_to_participant<'a>(
    p: &'a Procedure,
    instance_state: &str,
    participant: &ParticipantData,
    role: &str,
) -> Vec<&'a Transition> {
    let Some(def) = &p.participant else {
        return Vec::new();
    };
    if participant.withdrawn || p.state(instance_state).is_none_or(|s| s.is_final) {
        return Vec::new();
    }
    let mut out: Vec<&Transition> = Vec::new();
    for t in &def.transitions {
        let here = t.from.iter().any(|s| s.as_str() == participant.state)
            && (t.while_in.is_empty() || t.while_in.iter().any(|s| s.as_str() == instance_state))
            && t.roles.iter().any(|r| r.as_str() == role);
        if here && !out.iter().any(|o| o.event == t.event) {
            out.push(t);
        }
    }
    out
}

pub(crate) struct Context<'a> {
    pub(crate) p: &'a Procedure,
    pub(crate) instance_id: &'a str,
    pub(crate) now: DateTime<Utc>,
}

impl Context<'_> {
    /// What a message or a registered document reads: every declared variable (null when
    /// unset, so strict templates can test it), the procedure and the instance; in a
    /// participant's scope, its variables too and `partecipante`.
    pub(crate) fn template_context(
        &self,
        state: &str,
        data: &InstanceData,
        participant: Option<&str>,
    ) -> Value {
        let mut ctx: Map<String, Value> = self
            .p
            .variables
            .keys()
            .map(|name| {
                (
                    name.to_string(),
                    data.variables
                        .get(name.as_str())
                        .cloned()
                        .unwrap_or(Value::Null),
                )
            })
            .collect();
        ctx.insert(
            "procedura".into(),
            json!({ "id": self.p.id, "titolo": self.p.title, "versione": self.p.version }),
        );
        let title = self
            .p
            .state(state)
            .map_or(state.to_string(), |s| s.title.clone());
        ctx.insert(
            "istanza".into(),
            json!({ "id": self.instance_id, "stato": title }),
        );
        ctx.insert(
            crate::definition::validate::PARTICIPANT_CONTEXT.into(),
            Value::Null,
        );
        // While members may answer a convocation, its messages carry what their personal
        // links need: until when they hold.
        ctx.insert(
            "risposta".into(),
            self.p
                .meeting
                .as_ref()
                .filter(|d| d.rsvp_while.iter().any(|s| s.as_str() == state))
                .and_then(|d| data.variables.get(d.when.as_str()).cloned())
                .map_or(Value::Null, |until| json!({ "fino_a": until })),
        );
        ctx.insert(
            crate::definition::validate::MEETING_CONTEXT.into(),
            super::meeting::record_of(self.p, data).map_or(Value::Null, |record| {
                self.p.meeting.as_ref().map_or(Value::Null, |d| {
                    super::meeting::verbale_context(super::meeting::body_of(d, data), &record)
                })
            }),
        );
        ctx.insert(
            "termine_superato".into(),
            super::expiry::context_value(data, self.now),
        );
        ctx.insert(
            crate::definition::validate::EVALUATION_CONTEXT.into(),
            data.evaluation.as_ref().map_or(Value::Null, |ev| {
                super::evaluation::template_value(ev, data, participant, &self.p.numbers)
            }),
        );
        if let (Some(id), Some(def)) = (participant, &self.p.participant)
            && let Some(part) = data.participants.get(id)
        {
            for name in def.variables.keys() {
                ctx.insert(
                    name.to_string(),
                    part.variables
                        .get(name.as_str())
                        .cloned()
                        .unwrap_or(Value::Null),
                );
            }
            let stato = def
                .states
                .get(part.state.as_str())
                .map_or(part.state.clone(), |s| s.title.clone());
            let termini: Map<String, Value> = part
                .terms
                .iter()
                .map(|(name, t)| {
                    (
                        name.clone(),
                        json!({ "regola": t.rule, "scadenza": t.deadline, "traccia": t.trace }),
                    )
                })
                .collect();
            ctx.insert(
                crate::definition::validate::PARTICIPANT_CONTEXT.into(),
                json!({
                    "id": id,
                    "ente": part.name,
                    "organizzazione": part.organisation_id,
                    "componenti": part.members,
                    "raggruppamento": !part.members.is_empty(),
                    "stato": stato,
                    "codice_stato": part.state,
                    "termini": termini,
                }),
            );
        }
        Value::Object(ctx)
    }

    /// The participants an audience names in a scope: `Some(list)` for participant
    /// audiences, `None` for the others (one message for all).
    fn participants_of(
        &self,
        audience: &Audience,
        data: &InstanceData,
        scope: Option<&str>,
    ) -> Option<Vec<String>> {
        match audience {
            Audience::Participant => Some(
                scope
                    .filter(|id| data.participants.get(*id).is_some_and(|p| !p.withdrawn))
                    .map(str::to_string)
                    .into_iter()
                    .collect(),
            ),
            Audience::Participants { filter, .. } => Some(
                active(data)
                    .into_iter()
                    .map(|(id, _)| id.clone())
                    .filter(|id| {
                        filter
                            .as_ref()
                            .is_none_or(|f| scope::holds(self.p, data, Some(id), f, self.now))
                    })
                    .collect(),
            ),
            _ => None,
        }
    }

    /// The organisations of a parties variable.
    fn parties(&self, data: &InstanceData, scope: Option<&str>, var: &str) -> Vec<String> {
        scope::stored(self.p, data, scope, var)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|party| {
                party
                    .as_str()
                    .or_else(|| party.get("id").and_then(Value::as_str))
                    .map(str::to_string)
            })
            .collect()
    }

    pub(crate) fn notification_plans(
        &self,
        n: &Notify,
        state: &str,
        data: &InstanceData,
        scope: Option<&str>,
        effects: &[Effect],
    ) -> Vec<NotificationPlan> {
        let plan =
            |participant: Option<&str>, organisations: Option<Vec<String>>| NotificationPlan {
                role: n.role.to_string(),
                template: n.template.clone(),
                urgent: n.urgent,
                context: self.template_context(state, data, participant),
                invite: n.invite,
                protocol: citation(effects, participant),
                organisations,
                public: matches!(n.to, Audience::Public),
                participant: participant.map(str::to_string),
                channel: n.channel,
                consegna: n.consegna.as_ref().map(ToString::to_string),
            };
        match self.participants_of(&n.to, data, scope) {
            Some(ids) => ids
                .iter()
                .filter_map(|id| {
                    let org = data.participants.get(id)?.organisation_id.clone();
                    Some(plan(Some(id), Some(vec![org])))
                })
                .collect(),
            None => {
                let organisations = match &n.to {
                    Audience::Parties(var) => Some(self.parties(data, scope, var.as_str())),
                    _ => None,
                };
                vec![plan(scope, organisations)]
            }
        }
    }

    fn protocollo(
        &self,
        r: &Protocollo,
        state: &str,
        data: &InstanceData,
        scope: Option<&str>,
        effects: &mut Vec<Effect>,
    ) {
        let effect = |participant: Option<&str>, organisations: Option<Vec<String>>| {
            Effect::RegisterProtocol {
                direction: serde_json::to_value(r.direction)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                subject: r.subject.clone(),
                context: self.template_context(state, data, participant),
                register: r.register.clone(),
                to: r.to.as_ref().map(ToString::to_string),
                document: r.document.clone(),
                classification: r.classification.clone(),
                organisations,
                participant: participant.map(str::to_string),
            }
        };
        match self.participants_of(&r.audience, data, scope) {
            Some(ids) => {
                for id in ids {
                    if let Some(part) = data.participants.get(&id) {
                        let org = part.organisation_id.clone();
                        effects.push(effect(Some(&id), Some(vec![org])));
                    }
                }
            }
            None => {
                let organisations = match &r.audience {
                    Audience::Parties(var) => Some(self.parties(data, scope, var.as_str())),
                    _ => None,
                };
                effects.push(effect(scope, organisations));
            }
        }
    }

    fn run_actions(
        &self,
        actions: &[Action],
        state: &str,
        scope: Option<&str>,
        data: &mut InstanceData,
        effects: &mut Vec<Effect>,
    ) -> Result<(), Error> {
        for action in actions {
            self.run_action(action, state, scope, data, effects)?;
        }
        Ok(())
    }

    fn run_action(
        &self,
        action: &Action,
        state: &str,
        scope: Option<&str>,
        data: &mut InstanceData,
        effects: &mut Vec<Effect>,
    ) -> Result<(), Error> {
        let p = self.p;
        let today = self.now.with_timezone(&ROME).date_naive();
        match action {
            Action::Notify(n) => {
                // A PEC notice to a participant: without a domicilio digitale it goes by
                // ordinary email and its term runs from today; with one, its term waits for
                // the consegna.
                let fallback = super::consegna::by_ordinary_email(p, n, data, scope, self.now);
                if n.consegna.is_some() {
                    compute_all(p, data)?;
                }
                let mut plans = self.notification_plans(n, state, data, scope, effects);
                if let Some(channel) = fallback {
                    for plan in &mut plans {
                        plan.channel = channel;
                    }
                }
                effects.extend(plans.into_iter().map(Effect::Notify));
            }
            Action::Protocollo(r) => self.protocollo(r, state, data, scope, effects),
            Action::Set(assignments) => {
                let mut new_values = Vec::new();
                for (name, expr) in assignments {
                    let v = scope::eval(p, data, scope, expr, self.now);
                    new_values.push((name.to_string(), value::to_json(&v, &p.numbers)));
                }
                for (name, v) in new_values {
                    if let Some(vars) = scope::variables_mut(p, data, scope, &name) {
                        vars.insert(name, v);
                    }
                }
                compute_all(p, data)?;
            }
            Action::Start {
                procedure,
                variables,
                await_event,
            } => {
                let mut vars = Map::new();
                for (name, source) in variables {
                    let v = match source {
                        StartValue::Expr(crate::definition::expr::Expr::Var(src)) => {
                            scope::stored(p, data, scope, src)
                                .cloned()
                                .unwrap_or(Value::Null)
                        }
                        StartValue::Expr(other) => value::to_json(
                            &scope::eval(p, data, scope, other, self.now),
                            &p.numbers,
                        ),
                        StartValue::Participants(filter) => Value::Array(
                            active(data)
                                .into_iter()
                                .filter(|(id, _)| {
                                    filter.as_ref().is_none_or(|f| {
                                        scope::holds(p, data, Some(id), f, self.now)
                                    })
                                })
                                .map(|(_, part)| Value::String(part.organisation_id.clone()))
                                .collect(),
                        ),
                    };
                    vars.insert(name.clone(), v);
                }
                effects.push(Effect::StartInstance {
                    procedure: procedure.clone(),
                    variables: vars,
                    parent: Some(self.instance_id.to_string()),
                    await_event: await_event.as_ref().map(ToString::to_string),
                });
            }
            Action::Suspend(var) => {
                let list = suspensions_mut(p, data, scope, var.as_str())
                    .entry(var.to_string())
                    .or_default();
                if list.last().is_none_or(|s| s.until.is_some()) {
                    list.push(SuspensionRecord {
                        from: today,
                        until: None,
                    });
                }
            }
            Action::Resume(var, on) => {
                let restart = on
                    .as_ref()
                    .and_then(|on| scope::stored(p, data, scope, on.as_str()))
                    .and_then(terms::civil_date)
                    .unwrap_or(today);
                if let Some(open) = suspensions_mut(p, data, scope, var.as_str())
                    .get_mut(var.as_str())
                    .and_then(|l| l.last_mut())
                    .filter(|s| s.until.is_none())
                {
                    open.until = Some(restart.max(open.from));
                }
                compute_all(p, data)?;
            }
            Action::Extend(ext) => self.extend(ext, data, scope)?,
            Action::When {
                condition, action, ..
            } => {
                if scope::holds(p, data, scope, condition, self.now) {
                    self.run_action(action, state, scope, data, effects)?;
                }
            }
            Action::ForEachParticipant { filter, actions } => {
                let ids: Vec<String> = active(data)
                    .into_iter()
                    .map(|(id, _)| id.clone())
                    .filter(|id| {
                        filter
                            .as_ref()
                            .is_none_or(|f| scope::holds(p, data, Some(id), f, self.now))
                    })
                    .collect();
                for id in ids {
                    self.run_actions(actions, state, Some(&id), data, effects)?;
                }
            }
        }
        Ok(())
    }

    /// A proroga (before the term expires) or a riapertura (after): the new expiry, later
    /// than the old one and than now, with the act that makes it.
    fn extend(
        &self,
        ext: &crate::definition::Extension,
        data: &mut InstanceData,
        scope: Option<&str>,
    ) -> Result<(), Error> {
        let p = self.p;
        let term = ext.term.as_str();
        let kind = scope::kind(p, scope, term);
        let current = scope::stored(p, data, scope, term)
            .cloned()
            .unwrap_or(Value::Null);
        let expired = terms::expired(kind, &current, self.now);
        match ext.kind {
            ExtensionKind::Proroga if expired => {
                return Err(Error::ExtensionTooLate {
                    term: term.to_string(),
                    deadline: show(&current),
                });
            }
            ExtensionKind::Riapertura if !expired && !current.is_null() => {
                return Err(Error::ExtensionTooEarly {
                    term: term.to_string(),
                    deadline: show(&current),
                });
            }
            _ => {}
        }
        let new = scope::stored(p, data, scope, ext.to.as_str())
            .cloned()
            .filter(|v| !v.is_null())
            .ok_or_else(|| Error::MissingInput {
                field: ext.to.to_string(),
            })?;
        let new_at = value::instant_of(kind, &new);
        let old_at = value::instant_of(kind, &current);
        let later = new_at.is_some_and(|n| n > self.now && old_at.is_none_or(|o| n > o));
        if !later {
            return Err(Error::ExtensionNotLater {
                term: term.to_string(),
                previous: show(&current),
                new: show(&new),
            });
        }
        let text = |name: &str| {
            scope::stored(p, data, scope, name)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let act = text(ext.act.as_str()).ok_or_else(|| Error::MissingInput {
            field: ext.act.to_string(),
        })?;
        let reason = ext.reason.as_ref().and_then(|r| text(r.as_str()));
        data.extensions
            .entry(term.to_string())
            .or_default()
            .push(ExtensionRecord {
                kind: ext.kind,
                at: self.now,
                previous: current,
                new,
                act,
                reason,
            });
        compute_all(p, data)
    }
}

/// The suspensions a term variable keeps in a scope.
fn suspensions_mut<'a>(
    p: &Procedure,
    data: &'a mut InstanceData,
    scope: Option<&str>,
    var: &str,
) -> &'a mut std::collections::BTreeMap<String, Vec<SuspensionRecord>> {
    let own = matches!(scope::variable(p, scope, var), Some((_, true)));
    match scope.filter(|_| own) {
        Some(id) if data.participants.contains_key(id) => {
            &mut data
                .participants
                .get_mut(id)
                .expect("checked just above")
                .suspensions
        }
        _ => &mut data.suspensions,
    }
}

/// Which registration of the step a message cites: the last one made for the same
/// participant, else the last one made for nobody in particular.
fn citation(effects: &[Effect], participant: Option<&str>) -> Option<u32> {
    let registrations: Vec<Option<&str>> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::RegisterProtocol { participant, .. } => Some(participant.as_deref()),
            _ => None,
        })
        .collect();
    let last_for = |who: Option<&str>| registrations.iter().rposition(|p| *p == who);
    let ordinal = participant
        .and_then(|id| last_for(Some(id)))
        .or_else(|| last_for(None))?;
    u32::try_from(ordinal).ok()
}

/// A reminder timer as stored: what `reminder_notifications` reads of it.
#[derive(Debug, Clone, Copy)]
pub struct ReminderTimer<'a> {
    /// The timer's id in the definition.
    pub timer: &'a str,
    /// Its key (`timer#promemoria-N`, `participant/timer#promemoria-N`).
    pub key: &'a str,
    /// What it does.
    pub action: &'a TimerAction,
    /// Why it fires then.
    pub trace: &'a [String],
}

/// The notifications a reminder timer sends: its notification in its scope (the
/// participant's, for a participant's timer), plus `scadenza` (the deadline it reminds of,
/// and the trace of why it is then).
pub fn reminder_notifications(
    p: &Procedure,
    instance_id: &str,
    state: &str,
    data: &InstanceData,
    timer: &ReminderTimer<'_>,
) -> Vec<NotificationPlan> {
    let TimerAction::Remind {
        role,
        template,
        urgent,
        participant,
    } = timer.action
    else {
        return Vec::new();
    };
    let scope = participant.as_deref();
    let ctx = Context {
        p,
        instance_id,
        now: DateTime::<Utc>::MIN_UTC,
    };
    let timers = match scope {
        Some(_) => p.participant.as_ref().map_or(&[][..], |d| &d.timers[..]),
        None => &p.timers[..],
    };
    let def = timers.iter().find(|t| t.id == timer.timer);
    let deadline = def
        .and_then(|t| scope::stored(p, data, scope, t.at.as_str()))
        .cloned()
        .unwrap_or(Value::Null);
    let reminder =
        def.and_then(|t| plan::reminder_index(timer.key).and_then(|i| t.reminders.get(i)));
    if scope.is_some_and(|id| data.participants.get(id).is_none_or(|p| p.withdrawn)) {
        return Vec::new();
    }
    let mut plans = match reminder {
        Some(r) => ctx.notification_plans(&r.notify, state, data, scope, &[]),
        // A participant's reminder the definition no longer names: its recipients cannot be
        // known, and a message with its data must not go to others.
        None if scope.is_some() => return Vec::new(),
        // A timer armed by a definition that no longer names it: its own copy of the message.
        None => vec![NotificationPlan {
            role: role.clone(),
            template: template.clone(),
            urgent: *urgent,
            context: ctx.template_context(state, data, scope),
            invite: None,
            protocol: None,
            organisations: None,
            public: false,
            participant: None,
            channel: Default::default(),
            consegna: None,
        }],
    };
    for plan in &mut plans {
        if let Value::Object(map) = &mut plan.context {
            map.insert(
                "scadenza".into(),
                json!({ "data": deadline, "traccia": timer.trace }),
            );
        }
    }
    plans
}
