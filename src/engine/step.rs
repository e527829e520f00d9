//! The one entry point of the interpreter: same (procedure, instance, command, now) → same
//! result. Returns the new state, data and effects; writes nothing.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::Error;
use super::effect::*;
use super::value::{self, Val};
use crate::definition::{Action, Notify, Offset, Procedure, SYSTEM_ROLE, Transition, VarType};
use crate::terms::{self, ROME};

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
}

/// The event name recorded when an instance starts.
pub const START_EVENT: &str = "avvio";

/// Starts an instance: checks the initial variables, computes terms, enters the initial state.
pub fn start(
    p: &Procedure,
    instance_id: &str,
    variables: &Map<String, Value>,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<Step, Error> {
    let _ = actor;
    let mut data = InstanceData::default();
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
    compute_terms(p, &mut data)?;
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
        &mut data,
        &mut effects,
    )?;
    compute_terms(p, &mut data)?;
    timer_diff(p, None, (initial.id.as_str(), &data), now, &mut effects);
    Ok(Step {
        from: None,
        to: initial.id.to_string(),
        event: START_EVENT.into(),
        data,
        effects,
        is_final: initial.is_final,
    })
}

/// Fires an event on an instance.
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
    let Some(t) = p.transition(instance.state, &cmd.event) else {
        let elsewhere: Vec<String> = p
            .transitions
            .iter()
            .filter(|t| t.event.as_str() == cmd.event)
            .flat_map(|t| t.from.iter().map(|s| s.to_string()))
            .collect();
        return Err(if elsewhere.is_empty() {
            Error::UnknownEvent {
                event: cmd.event.clone(),
            }
        } else {
            Error::WrongState {
                event: cmd.event.clone(),
                state: instance.state.to_string(),
                allowed: elsewhere,
            }
        });
    };
    check_role(p, t, instance.state, &cmd.actor)?;

    let mut data = instance.data.clone();
    apply_inputs(p, t, &cmd.payload, &mut data)?;
    compute_terms(p, &mut data)?;
    {
        let lookup = lookup_in(p, &data);
        for g in &t.guard {
            if !value::truthy(&value::eval(&g.expr, &lookup, now)) {
                return Err(Error::GuardFailed {
                    message: g.message.clone(),
                    condition: g.source.clone(),
                });
            }
        }
    }

    let mut effects = Vec::new();
    let ctx = Context {
        p,
        instance_id: instance.id,
        now,
    };
    ctx.run_actions(&t.actions, t.to.as_str(), &mut data, &mut effects)?;
    compute_terms(p, &mut data)?;
    let target = p.state(t.to.as_str()).ok_or_else(|| Error::UnknownState {
        state: t.to.to_string(),
    })?;
    if t.to.as_str() != instance.state {
        ctx.run_actions(&target.on_enter, t.to.as_str(), &mut data, &mut effects)?;
        compute_terms(p, &mut data)?;
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
    })
}

/// Transitions the actor may fire from the instance's state (role only; guards are not run).
pub fn available<'a>(
    p: &'a Procedure,
    state: &'a str,
    role: &'a str,
) -> impl Iterator<Item = &'a Transition> + 'a {
    p.transitions_from(state)
        .filter(move |t| t.roles.iter().any(|r| r.as_str() == role))
}

fn check_role(p: &Procedure, t: &Transition, state: &str, actor: &Actor) -> Result<(), Error> {
    let allowed = t.roles.iter().any(|r| r.as_str() == actor.role)
        || (actor.role == SYSTEM_ROLE && p.timer_fires(state, t.event.as_str()));
    if allowed {
        Ok(())
    } else {
        Err(Error::Forbidden {
            role: actor.role.clone(),
            event: t.event.to_string(),
            allowed: t.roles.iter().map(|r| r.to_string()).collect(),
        })
    }
}

fn apply_inputs(
    p: &Procedure,
    t: &Transition,
    payload: &Map<String, Value>,
    data: &mut InstanceData,
) -> Result<(), Error> {
    for key in payload.keys() {
        if !t.inputs.iter().any(|i| i.variable.as_str() == key) {
            return Err(Error::UnexpectedInput { field: key.clone() });
        }
    }
    for input in &t.inputs {
        let name = input.variable.as_str();
        match payload.get(name).filter(|v| !v.is_null()) {
            Some(v) => {
                let kind = p.variable(name).map_or(VarType::Text, |v| v.kind);
                let v = value::check(kind, v).map_err(|expected| Error::InvalidInput {
                    field: name.to_string(),
                    expected,
                })?;
                data.variables.insert(name.to_string(), v);
            }
            None if input.required => {
                return Err(Error::MissingInput {
                    field: name.to_string(),
                });
            }
            None => {}
        }
    }
    Ok(())
}

fn lookup_in<'a>(p: &'a Procedure, data: &'a InstanceData) -> impl Fn(&str) -> Val + 'a {
    move |name: &str| value::to_val(p.variable(name).map(|v| v.kind), data.variables.get(name))
}

struct Context<'a> {
    p: &'a Procedure,
    instance_id: &'a str,
    now: DateTime<Utc>,
}

impl Context<'_> {
    fn template_context(&self, state: &str, data: &InstanceData) -> Value {
        // Every declared variable is present (null when unset), so strict templates can test it.
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
        Value::Object(ctx)
    }

    fn notify(&self, n: &Notify, state: &str, data: &InstanceData, effects: &[Effect]) -> Effect {
        // A message cites the last registration its step asked for before it.
        let registrations = effects
            .iter()
            .filter(|e| matches!(e, Effect::RegisterProtocol { .. }))
            .count();
        Effect::Notify(NotificationPlan {
            role: n.role.to_string(),
            template: n.template.clone(),
            urgent: n.urgent,
            context: self.template_context(state, data),
            invite: n.invite,
            protocol: registrations
                .checked_sub(1)
                .and_then(|ordinal| u32::try_from(ordinal).ok()),
        })
    }

    fn run_actions(
        &self,
        actions: &[Action],
        state: &str,
        data: &mut InstanceData,
        effects: &mut Vec<Effect>,
    ) -> Result<(), Error> {
        let today = self.now.with_timezone(&ROME).date_naive();
        for action in actions {
            match action {
                Action::Notify(n) => {
                    let effect = self.notify(n, state, data, effects);
                    effects.push(effect);
                }
                Action::Protocollo(p) => effects.push(Effect::RegisterProtocol {
                    direction: serde_json::to_value(p.direction)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    subject: p.subject.clone(),
                    context: self.template_context(state, data),
                    register: p.register.clone(),
                    to: p.to.as_ref().map(ToString::to_string),
                    document: p.document.clone(),
                    classification: p.classification.clone(),
                }),
                Action::Set(assignments) => {
                    let mut new_values = Vec::new();
                    {
                        let lookup = lookup_in(self.p, data);
                        for (name, expr) in assignments {
                            new_values.push((
                                name.to_string(),
                                value::to_json(&value::eval(expr, &lookup, self.now)),
                            ));
                        }
                    }
                    for (name, v) in new_values {
                        data.variables.insert(name, v);
                    }
                    compute_terms(self.p, data)?;
                }
                Action::Start {
                    procedure,
                    variables,
                } => {
                    let lookup = lookup_in(self.p, data);
                    let mut vars = Map::new();
                    for (name, expr) in variables {
                        let v = match expr {
                            crate::definition::expr::Expr::Var(src) => {
                                data.variables.get(src).cloned().unwrap_or(Value::Null)
                            }
                            other => value::to_json(&value::eval(other, &lookup, self.now)),
                        };
                        vars.insert(name.clone(), v);
                    }
                    effects.push(Effect::StartInstance {
                        procedure: procedure.clone(),
                        variables: vars,
                        parent: Some(self.instance_id.to_string()),
                    });
                }
                Action::Suspend(var) => {
                    let list = data.suspensions.entry(var.to_string()).or_default();
                    if list.last().is_none_or(|s| s.until.is_some()) {
                        list.push(SuspensionRecord {
                            from: today,
                            until: None,
                        });
                    }
                }
                Action::Resume(var) => {
                    if let Some(open) = data
                        .suspensions
                        .get_mut(var.as_str())
                        .and_then(|l| l.last_mut())
                        .filter(|s| s.until.is_none())
                    {
                        open.until = Some(today);
                    }
                    compute_terms(self.p, data)?;
                }
            }
        }
        Ok(())
    }
}

/// The civil date a date or datetime value falls on in Europe/Rome.
fn civil_date(v: &Value) -> Option<NaiveDate> {
    let s = v.as_str()?;
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().or_else(|| {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| d.with_timezone(&ROME).date_naive())
    })
}

/// Closed suspensions as the term calculator reads them: the clock stops from the day it was
/// suspended up to the day before it restarted (a resume on the same day suspends nothing).
fn closed_suspensions(list: Option<&Vec<SuspensionRecord>>) -> Vec<terms::Suspension> {
    list.into_iter()
        .flatten()
        .filter_map(|s| {
            let until = s.until?.pred_opt()?;
            (until >= s.from).then_some(terms::Suspension {
                from: s.from,
                to: until,
            })
        })
        .collect()
}

/// Recomputes every term variable from its anchor. Terms may chain; the validator rejects
/// cycles, so as many passes as variables reach a fixpoint.
fn compute_terms(p: &Procedure, data: &mut InstanceData) -> Result<(), Error> {
    for _ in 0..p.variables.len().max(1) {
        let mut changed = false;
        for var in p.variables.values() {
            let Some(term) = &var.term else { continue };
            let name = var.name.as_str();
            let start = data.variables.get(term.from.as_str()).and_then(civil_date);
            let Some(start) = start else {
                if data.variables.get(name).is_some_and(|v| !v.is_null()) {
                    data.variables.insert(name.to_string(), Value::Null);
                    data.terms.remove(name);
                    changed = true;
                }
                continue;
            };
            let suspensions = closed_suspensions(data.suspensions.get(name));
            let result = terms::compute(&term.rule, start, &p.calendar.calendar, &suspensions)
                .map_err(|e| Error::Term {
                    variable: name.to_string(),
                    message: e.to_string(),
                })?;
            let value = match var.kind {
                VarType::Date => Value::String(result.expiry.format("%Y-%m-%d").to_string()),
                _ => Value::String(result.deadline.to_rfc3339()),
            };
            if data.variables.get(name) != Some(&value) {
                data.variables.insert(name.to_string(), value);
                changed = true;
            }
            data.terms.insert(
                name.to_string(),
                TermRecord {
                    rule: term.rule.to_string(),
                    from: term.from.to_string(),
                    start,
                    expiry: result.expiry,
                    deadline: result.deadline.to_rfc3339(),
                    trace: result.trace,
                },
            );
        }
        if !changed {
            break;
        }
    }
    Ok(())
}

/// The instant a timer variable stands for: a datetime as is; a date at the end of that day
/// (the first instant of the next day in Europe/Rome).
fn timer_instant(kind: VarType, v: &Value) -> Option<DateTime<Utc>> {
    let s = v.as_str()?;
    match kind {
        VarType::DateTime => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| d.with_timezone(&Utc)),
        _ => {
            let next = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?.succ_opt()?;
            local_instant(next, NaiveTime::MIN)
        }
    }
}

/// A civil date and time in Europe/Rome as an instant; a time skipped by DST moves forward by
/// the gap, an ambiguous one takes the earlier instant.
pub fn local_instant(date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    let naive = date.and_time(time);
    match ROME.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        chrono::LocalResult::Ambiguous(a, _) => Some(a.with_timezone(&Utc)),
        chrono::LocalResult::None => ROME
            .from_local_datetime(&(naive + Duration::hours(1)))
            .earliest()
            .map(|t| t.with_timezone(&Utc)),
    }
}

/// Default local time of reminders for date-only timers.
const REMINDER_TIME_FOR_DATES: NaiveTime = match NaiveTime::from_hms_opt(9, 0, 0) {
    Some(t) => t,
    None => NaiveTime::MIN,
};

/// The timers an instance needs armed in `state` with `data`: a pure function, so that
/// rescheduling is a diff between before and after.
pub fn desired_timers(
    p: &Procedure,
    state: &str,
    data: &InstanceData,
) -> BTreeMap<String, TimerPlan> {
    let mut out = BTreeMap::new();
    for timer in &p.timers {
        if !timer.while_in.iter().any(|s| s.as_str() == state) {
            continue;
        }
        let Some(var) = p.variable(timer.at.as_str()) else {
            continue;
        };
        let suspended = data
            .suspensions
            .get(var.name.as_str())
            .and_then(|l| l.last())
            .is_some_and(|s| s.until.is_none());
        if suspended {
            continue;
        }
        let Some(at) = data
            .variables
            .get(var.name.as_str())
            .and_then(|v| timer_instant(var.kind, v))
        else {
            continue;
        };
        let mut trace = match data.terms.get(var.name.as_str()) {
            Some(t) => {
                let mut lines = vec![format!(
                    "{} = {} da {} ({})",
                    var.name,
                    t.rule,
                    t.from,
                    t.start.format("%d/%m/%Y")
                )];
                lines.extend(t.trace.iter().cloned());
                lines
            }
            None => vec![format!(
                "{} = {} (valore dell'istanza)",
                var.name,
                data.variables
                    .get(var.name.as_str())
                    .and_then(Value::as_str)
                    .unwrap_or("")
            )],
        };
        if var.kind == VarType::Date {
            trace.push("data senza ora: il timer scatta alla fine del giorno (00:00 del giorno dopo, Europe/Rome)".into());
        }
        if let Some(event) = &timer.fires {
            out.insert(
                timer.id.clone(),
                TimerPlan {
                    key: timer.id.clone(),
                    timer: timer.id.clone(),
                    fire_at: at,
                    action: TimerAction::Fire {
                        event: event.to_string(),
                    },
                    trace: trace.clone(),
                },
            );
        }
        for (i, r) in timer.reminders.iter().enumerate() {
            let (fire_at, why) = match r.before {
                Offset::Hours(h) => (
                    at - Duration::hours(i64::from(h)),
                    format!("promemoria {h} ore prima"),
                ),
                Offset::Days(d) => {
                    let local = at.with_timezone(&ROME);
                    let (date, time) = if var.kind == VarType::Date {
                        (
                            civil_date(
                                data.variables
                                    .get(var.name.as_str())
                                    .unwrap_or(&Value::Null),
                            )
                            .unwrap_or(local.date_naive()),
                            REMINDER_TIME_FOR_DATES,
                        )
                    } else {
                        (local.date_naive(), local.time())
                    };
                    let Some(day) = date.checked_sub_days(chrono::Days::new(u64::from(d))) else {
                        continue;
                    };
                    let Some(instant) = local_instant(day, time) else {
                        continue;
                    };
                    (
                        instant,
                        format!(
                            "promemoria {d} giorni prima: {} ore {}",
                            day.format("%d/%m/%Y"),
                            time.format("%H:%M")
                        ),
                    )
                }
            };
            let key = format!("{}#promemoria-{}", timer.id, i + 1);
            let mut t = trace.clone();
            t.push(why);
            out.insert(
                key.clone(),
                TimerPlan {
                    key,
                    timer: timer.id.clone(),
                    fire_at,
                    action: TimerAction::Remind {
                        role: r.notify.role.to_string(),
                        template: r.notify.template.clone(),
                        urgent: r.notify.urgent,
                    },
                    trace: t,
                },
            );
        }
    }
    out
}

/// Effects that take the armed timers from what `before` needed to what `after` needs. A
/// reminder that is new or moved and whose moment has already passed is not armed: a late
/// reminder is noise. One that was armed before and is unchanged stays, even if due.
fn timer_diff(
    p: &Procedure,
    before: Option<(&str, &InstanceData)>,
    after: (&str, &InstanceData),
    now: DateTime<Utc>,
    effects: &mut Vec<Effect>,
) {
    let old = before
        .map(|(s, d)| desired_timers(p, s, d))
        .unwrap_or_default();
    let mut new = desired_timers(p, after.0, after.1);
    new.retain(|key, plan| {
        let unchanged = old
            .get(key)
            .is_some_and(|o| o.fire_at == plan.fire_at && o.action == plan.action);
        unchanged || matches!(plan.action, TimerAction::Fire { .. }) || plan.fire_at > now
    });
    for key in old.keys() {
        if !new.contains_key(key) {
            effects.push(Effect::CancelTimer { key: key.clone() });
        }
    }
    for (key, plan) in new {
        let unchanged = old
            .get(&key)
            .is_some_and(|o| o.fire_at == plan.fire_at && o.action == plan.action);
        if !unchanged {
            effects.push(Effect::ScheduleTimer(plan));
        }
    }
}

/// The notification a reminder timer sends: the instance's context plus `scadenza` (the
/// deadline it reminds of, and the trace of why it is then).
pub fn reminder_notification(
    p: &Procedure,
    instance_id: &str,
    state: &str,
    data: &InstanceData,
    timer_id: &str,
    action: &TimerAction,
    trace: &[String],
) -> Option<NotificationPlan> {
    let TimerAction::Remind {
        role,
        template,
        urgent,
    } = action
    else {
        return None;
    };
    let ctx = Context {
        p,
        instance_id,
        now: DateTime::<Utc>::MIN_UTC,
    };
    let mut context = ctx.template_context(state, data);
    let deadline = p
        .timers
        .iter()
        .find(|t| t.id == timer_id)
        .and_then(|t| data.variables.get(t.at.as_str()))
        .cloned()
        .unwrap_or(Value::Null);
    if let Value::Object(map) = &mut context {
        map.insert(
            "scadenza".into(),
            json!({ "data": deadline, "traccia": trace }),
        );
    }
    Some(NotificationPlan {
        role: role.clone(),
        template: template.clone(),
        urgent: *urgent,
        context,
        invite: None,
        protocol: None,
    })
}
