//! Moving a running instance to a new version of its procedure. `plan` is pure: it maps the
//! state (same id, or as the office says), adds and drops variables, recomputes the terms with
//! the new rules, works out the timers to arm and cancel, and says why an instance cannot move.
//! A published avviso whose terms or criteria would change is its *lex specialis*: the move
//! needs the reference of the rettifica act that changes them. The step it returns stays in
//! the history as `migrazione`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::plan::desired_timers;
use super::step::{Snapshot, Step};
use super::{Effect, InstanceData};
use crate::definition::Procedure;

/// The history event of a migration.
pub const EVENT_MIGRATED: &str = "migrazione";

/// What a move would do (or did) to one instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MigrationPlan {
    /// The instance.
    pub instance_id: String,
    /// Its version now.
    pub from_version: u32,
    /// The version it would move to.
    pub to_version: u32,
    /// Its state now.
    pub from_state: String,
    /// The state it would be in (none when it cannot move there).
    pub to_state: Option<String>,
    /// Variables the new version adds (unset).
    pub variables_added: Vec<String>,
    /// Variables with a value the new version drops.
    pub variables_dropped: Vec<String>,
    /// Terms whose date changes, with the old and new value.
    pub terms_changed: Vec<(String, Value, Value)>,
    /// Timers armed (key, instant).
    pub timers_armed: Vec<(String, DateTime<Utc>)>,
    /// Timers cancelled (key).
    pub timers_cancelled: Vec<String>,
    /// A published avviso whose terms or criteria would change.
    pub lex_specialis: bool,
    /// Why it cannot move (empty when it can).
    pub blockers: Vec<String>,
}

/// Plans the move of `instance` from `old` to `new`. `state_map` says where states the new
/// version does not have go; `rettifica` is the act that changes a published avviso's terms or
/// criteria. The step is `None` when the instance cannot move.
pub fn plan(
    old: &Procedure,
    new: &Procedure,
    instance: &Snapshot<'_>,
    state_map: &BTreeMap<String, String>,
    rettifica: Option<&str>,
) -> (MigrationPlan, Option<Step>) {
    let mut blockers = Vec::new();
    if old.id != new.id {
        blockers.push(format!(
            "la versione di destinazione è della procedura '{}', non di '{}'",
            new.id, old.id
        ));
    }
    if new.version <= old.version {
        blockers.push(format!(
            "la versione {} non è successiva alla {} in uso",
            new.version, old.version
        ));
    }
    if old.state(instance.state).is_some_and(|s| s.is_final) {
        blockers.push(format!(
            "l'istanza è conclusa (stato «{}»): resta sulla versione {}",
            instance.state, old.version
        ));
    }
    let to_state = state_map.get(instance.state).cloned().or_else(|| {
        new.state(instance.state)
            .map(|_| instance.state.to_string())
    });
    let to_state = match to_state {
        Some(s) if new.state(&s).is_some() => Some(s),
        Some(s) => {
            blockers.push(format!(
                "lo stato «{s}» indicato per «{}» non esiste nella versione {}",
                instance.state, new.version
            ));
            None
        }
        None => {
            blockers.push(format!(
                "lo stato «{}» non esiste nella versione {}: indicare a quale stato corrisponde",
                instance.state, new.version
            ));
            None
        }
    };
    for (id, part) in &instance.data.participants {
        let known = new
            .participant
            .as_ref()
            .is_some_and(|d| d.states.contains_key(part.state.as_str()));
        if !known {
            blockers.push(format!(
                "la domanda {id} ({}) è nello stato «{}», che la versione {} non ha",
                part.name, part.state, new.version
            ));
        }
    }

    let mut data: InstanceData = instance.data.clone();
    let mut variables_added = Vec::new();
    let mut variables_dropped = Vec::new();
    data.variables.retain(|name, value| {
        let kept = new.variables.contains_key(name.as_str());
        if !kept && !value.is_null() {
            variables_dropped.push(name.clone());
        }
        kept
    });
    data.terms
        .retain(|name, _| new.variables.contains_key(name.as_str()));
    for name in new.variables.keys() {
        if !instance.data.variables.contains_key(name.as_str()) {
            variables_added.push(name.to_string());
            data.variables.insert(name.to_string(), Value::Null);
        }
    }
    if let Err(e) = super::terms::compute_all(new, &mut data) {
        blockers.push(format!(
            "i termini non si calcolano con la nuova versione: {e}"
        ));
    }
    let terms_changed: Vec<(String, Value, Value)> = new
        .variables
        .iter()
        .filter(|(_, v)| v.term.is_some())
        .filter_map(|(name, _)| {
            let before = instance
                .data
                .variables
                .get(name.as_str())
                .cloned()
                .unwrap_or(Value::Null);
            let after = data
                .variables
                .get(name.as_str())
                .cloned()
                .unwrap_or(Value::Null);
            (before != after).then(|| (name.to_string(), before, after))
        })
        .collect();
    // Published: it has left its initial state and takes applications.
    let published = old.submissions.is_some() && old.initial_state().id.as_str() != instance.state;
    let criteria = |p: &Procedure| {
        p.evaluation
            .as_ref()
            .map(|e| serde_json::to_value(&e.criteria).unwrap_or(Value::Null))
    };
    let lex_specialis = published && (!terms_changed.is_empty() || criteria(old) != criteria(new));
    if lex_specialis && rettifica.is_none_or(|r| r.trim().is_empty()) {
        blockers.push(
            "avviso pubblicato: la nuova versione ne cambia termini o criteri (lex specialis); serve il riferimento dell'atto di rettifica".into(),
        );
    }

    let before = desired_timers(old, instance.state, instance.data);
    let after = to_state
        .as_deref()
        .map(|s| desired_timers(new, s, &data))
        .unwrap_or_default();
    let mut effects = Vec::new();
    let mut timers_armed = Vec::new();
    let mut timers_cancelled = Vec::new();
    for key in before.keys() {
        if !after.contains_key(key) {
            timers_cancelled.push(key.clone());
            effects.push(Effect::CancelTimer { key: key.clone() });
        }
    }
    for (key, plan) in after {
        let unchanged = before
            .get(&key)
            .is_some_and(|o| o.fire_at == plan.fire_at && o.action == plan.action);
        if !unchanged {
            timers_armed.push((key.clone(), plan.fire_at));
            effects.push(Effect::ScheduleTimer(plan));
        }
    }

    let report = MigrationPlan {
        instance_id: instance.id.to_string(),
        from_version: old.version,
        to_version: new.version,
        from_state: instance.state.to_string(),
        to_state: to_state.clone(),
        variables_added,
        variables_dropped,
        terms_changed,
        timers_armed,
        timers_cancelled,
        lex_specialis,
        blockers,
    };
    let step = match (&to_state, report.blockers.is_empty()) {
        (Some(to), true) => Some(Step {
            from: Some(instance.state.to_string()),
            to: to.clone(),
            event: EVENT_MIGRATED.into(),
            is_final: new.state(to).is_some_and(|s| s.is_final),
            data,
            effects,
            participant: None,
        }),
        _ => None,
    };
    (report, step)
}

/// The history payload of a move.
pub fn payload(plan: &MigrationPlan, rettifica: Option<&str>) -> Value {
    json!({
        "da_versione": plan.from_version,
        "a_versione": plan.to_version,
        "da_stato": plan.from_state,
        "a_stato": plan.to_state,
        "variabili_aggiunte": plan.variables_added,
        "variabili_eliminate": plan.variables_dropped,
        "termini_cambiati": plan.terms_changed,
        "timer_armati": plan.timers_armed,
        "timer_annullati": plan.timers_cancelled,
        "rettifica": rettifica,
    })
}
