//! Where a name is read and written: the instance's variables, or a participant's (its own
//! variables and `state` first, then the instance's). Expressions see every participant that
//! has not withdrawn, for aggregates.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::effect::{InstanceData, ParticipantData};
use super::value::{self, Env, Val};
use crate::definition::expr::Expr;
use crate::definition::{Procedure, VarType, Variable};

/// The participant's state, as expressions name it.
pub const STATE_NAME: &str = "state";

/// Reads a name of the instance.
fn instance_value(p: &Procedure, data: &InstanceData, name: &str) -> Val {
    value::to_val(p.variable(name).map(|v| v.kind), data.variables.get(name))
}

/// Reads a name in a participant's scope.
fn participant_value(
    p: &Procedure,
    data: &InstanceData,
    participant: &ParticipantData,
    name: &str,
) -> Val {
    if name == STATE_NAME {
        return Val::Text(participant.state.clone());
    }
    match p.participant_variable(name) {
        Some(var) => value::to_val(Some(var.kind), participant.variables.get(name)),
        None => instance_value(p, data, name),
    }
}

/// Participants that still count (not withdrawn), in the order they joined.
pub fn active(data: &InstanceData) -> Vec<(&String, &ParticipantData)> {
    let mut list: Vec<_> = data
        .participants
        .iter()
        .filter(|(_, part)| !part.withdrawn)
        .collect();
    list.sort_by(|a, b| a.1.joined_at.cmp(&b.1.joined_at).then(a.0.cmp(b.0)));
    list
}

/// Evaluates an expression in the instance's scope, or in a participant's.
pub fn eval(
    p: &Procedure,
    data: &InstanceData,
    participant: Option<&str>,
    expr: &Expr,
    now: DateTime<Utc>,
) -> Val {
    let others: Vec<value::Lookup<'_>> = active(data)
        .into_iter()
        .map(|(_, part)| {
            Box::new(move |name: &str| participant_value(p, data, part, name)) as value::Lookup<'_>
        })
        .collect();
    let refs: Vec<&dyn Fn(&str) -> Val> = others.iter().map(|f| f.as_ref()).collect();
    let own = participant.and_then(|id| data.participants.get(id));
    let lookup = |name: &str| match own {
        Some(part) => participant_value(p, data, part, name),
        None => instance_value(p, data, name),
    };
    value::eval(
        expr,
        &Env {
            lookup: &lookup,
            participants: &refs,
            numbers: &p.numbers,
        },
        now,
    )
}

/// Whether a condition holds in a scope.
pub fn holds(
    p: &Procedure,
    data: &InstanceData,
    participant: Option<&str>,
    expr: &Expr,
    now: DateTime<Utc>,
) -> bool {
    value::truthy(&eval(p, data, participant, expr, now))
}

/// The declared variable a name stands for in a scope, and whether it is the participant's.
pub fn variable<'a>(
    p: &'a Procedure,
    participant: Option<&str>,
    name: &str,
) -> Option<(&'a Variable, bool)> {
    if participant.is_some()
        && let Some(var) = p.participant_variable(name)
    {
        return Some((var, true));
    }
    p.variable(name).map(|var| (var, false))
}

/// The type of a name in a scope (text when undeclared).
pub fn kind(p: &Procedure, participant: Option<&str>, name: &str) -> VarType {
    variable(p, participant, name).map_or(VarType::Text, |(var, _)| var.kind)
}

/// The variables a name is written to in a scope.
pub fn variables_mut<'a>(
    p: &Procedure,
    data: &'a mut InstanceData,
    participant: Option<&str>,
    name: &str,
) -> Option<&'a mut Map<String, Value>> {
    match variable(p, participant, name) {
        Some((_, true)) => participant
            .and_then(|id| data.participants.get_mut(id))
            .map(|part| &mut part.variables),
        _ => Some(&mut data.variables),
    }
}

/// The stored value of a name in a scope.
pub fn stored<'a>(
    p: &Procedure,
    data: &'a InstanceData,
    participant: Option<&str>,
    name: &str,
) -> Option<&'a Value> {
    match variable(p, participant, name) {
        Some((_, true)) => participant
            .and_then(|id| data.participants.get(id))
            .and_then(|part| part.variables.get(name)),
        _ => data.variables.get(name),
    }
}
