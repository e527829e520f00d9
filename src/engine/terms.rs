//! Term variables: recomputed from their anchors after every change, for the instance and for
//! each participant, with the length or time of day a variable may give, the suspensions, and
//! the proroghe and riaperture that moved them. Each keeps the trace of how it got its value.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};

use super::Error;
use super::effect::{ExtensionRecord, InstanceData, SuspensionRecord, TermRecord};
use super::value;
use crate::definition::{ExtensionKind, Procedure, TermDef, VarType, Variable};
use crate::terms::{self, ROME};

/// The civil date a date or datetime value falls on in Europe/Rome.
pub fn civil_date(v: &Value) -> Option<NaiveDate> {
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

/// What a term reads: its own scope's values, falling back to the instance's.
struct Scope<'a> {
    variables: &'a mut Map<String, Value>,
    terms: &'a mut BTreeMap<String, TermRecord>,
    suspensions: &'a BTreeMap<String, Vec<SuspensionRecord>>,
    extensions: Option<&'a BTreeMap<String, Vec<ExtensionRecord>>>,
    outer: Option<&'a Map<String, Value>>,
    /// A participant's consegne: a term from a variable a PEC receipt set cites it.
    consegne: Option<&'a BTreeMap<String, super::consegna::ConsegnaRecord>>,
}

impl Scope<'_> {
    fn get(&self, name: &str) -> Option<&Value> {
        self.variables
            .get(name)
            .or_else(|| self.outer.and_then(|o| o.get(name)))
            .filter(|v| !v.is_null())
    }
}

/// Recomputes every term variable of the instance and of each participant.
pub fn compute_all(p: &Procedure, data: &mut InstanceData) -> Result<(), Error> {
    let InstanceData {
        variables,
        terms,
        suspensions,
        extensions,
        participants,
        ..
    } = data;
    compute(
        p,
        &p.variables,
        &mut Scope {
            variables,
            terms,
            suspensions,
            extensions: Some(extensions),
            outer: None,
            consegne: None,
        },
    )?;
    if let Some(def) = &p.participant {
        for part in participants.values_mut() {
            compute(
                p,
                &def.variables,
                &mut Scope {
                    variables: &mut part.variables,
                    terms: &mut part.terms,
                    suspensions: &part.suspensions,
                    extensions: None,
                    outer: Some(&*variables),
                    consegne: Some(&part.consegne),
                },
            )?;
        }
    }
    Ok(())
}

/// Terms may chain; the validator rejects cycles, so as many passes as variables reach a
/// fixpoint.
fn compute(
    p: &Procedure,
    declared: &indexmap::IndexMap<crate::definition::VarName, Variable>,
    scope: &mut Scope<'_>,
) -> Result<(), Error> {
    for _ in 0..declared.len().max(1) {
        let mut changed = false;
        for var in declared.values() {
            let Some(term) = &var.term else { continue };
            let name = var.name.as_str();
            // A term in hours runs from the instant itself: elapsed time, never shifted.
            if matches!(term.rule.kind(), terms::Kind::Hours { .. }) {
                let from = scope
                    .get(term.from.as_str())
                    .and_then(|v| value::instant_of(VarType::DateTime, v));
                let computed = match from {
                    Some(from) => {
                        Some(
                            terms::compute_hours(&term.rule, from).map_err(|e| Error::Term {
                                variable: name.to_string(),
                                message: e.to_string(),
                            })?,
                        )
                    }
                    None => None,
                };
                let value = computed.as_ref().map_or(Value::Null, |t| match var.kind {
                    VarType::Date => Value::String(t.expiry.format("%Y-%m-%d").to_string()),
                    _ => Value::String(t.deadline.to_rfc3339()),
                });
                if scope.variables.get(name) != Some(&value) {
                    scope.variables.insert(name.to_string(), value);
                    changed = true;
                }
                match (computed, from) {
                    (Some(t), Some(from)) => {
                        scope.terms.insert(
                            name.to_string(),
                            TermRecord {
                                rule: term.rule.to_string(),
                                from: term.from.to_string(),
                                start: from.with_timezone(&ROME).date_naive(),
                                expiry: t.expiry,
                                deadline: t.deadline.to_rfc3339(),
                                trace: t.trace,
                            },
                        );
                    }
                    _ => {
                        scope.terms.remove(name);
                    }
                }
                continue;
            }
            let Some(start) = scope.get(term.from.as_str()).and_then(civil_date) else {
                if scope.variables.get(name).is_some_and(|v| !v.is_null()) {
                    scope.variables.insert(name.to_string(), Value::Null);
                    scope.terms.remove(name);
                    changed = true;
                }
                continue;
            };
            let (rule, mut trace) = effective_rule(p, term, scope, name)?;
            if let Some(consegna) = scope
                .consegne
                .and_then(|c| c.get(term.from.as_str()))
                .filter(|c| c.delivered())
            {
                trace.insert(0, consegna.trace_line());
            }
            let suspensions = closed_suspensions(scope.suspensions.get(name));
            let result =
                terms::compute(&rule, start, &p.calendar.calendar, &suspensions).map_err(|e| {
                    Error::Term {
                        variable: name.to_string(),
                        message: e.to_string(),
                    }
                })?;
            trace.extend(result.trace);
            let mut value = match var.kind {
                VarType::Date => Value::String(result.expiry.format("%Y-%m-%d").to_string()),
                _ => Value::String(result.deadline.to_rfc3339()),
            };
            let mut expiry = result.expiry;
            let mut deadline = result.deadline.to_rfc3339();
            if let Some(last) = scope
                .extensions
                .and_then(|e| e.get(name))
                .and_then(|list| list.last())
            {
                for ext in scope
                    .extensions
                    .and_then(|e| e.get(name))
                    .into_iter()
                    .flatten()
                {
                    trace.push(extension_line(ext));
                }
                value = last.new.clone();
                if let Some(day) = civil_date(&value) {
                    expiry = day;
                }
                if let Some(instant) = value::instant_of(var.kind, &value) {
                    deadline = instant.with_timezone(&ROME).to_rfc3339();
                }
            }
            if scope.variables.get(name) != Some(&value) {
                scope.variables.insert(name.to_string(), value);
                changed = true;
            }
            scope.terms.insert(
                name.to_string(),
                TermRecord {
                    rule: rule.to_string(),
                    from: term.from.to_string(),
                    start,
                    expiry,
                    deadline,
                    trace,
                },
            );
        }
        if !changed {
            break;
        }
    }
    Ok(())
}

/// The rule with the length and time of day its variables give, when set, and the lines that
/// say so.
fn effective_rule(
    p: &Procedure,
    term: &TermDef,
    scope: &Scope<'_>,
    name: &str,
) -> Result<(terms::Rule, Vec<String>), Error> {
    let mut lines = Vec::new();
    let length = term
        .length_var
        .as_ref()
        .and_then(|v| scope.get(v.as_str()).map(|value| (v, value)));
    let at = term
        .at_var
        .as_ref()
        .and_then(|v| scope.get(v.as_str()).map(|value| (v, value)));
    if length.is_none() && at.is_none() {
        return Ok((term.rule.clone(), lines));
    }
    let invalid = |message: String| Error::Term {
        variable: name.to_string(),
        message,
    };
    let mut spec = term.rule.spec().clone();
    if let Some((var, value)) = length {
        let count = value.as_i64().filter(|n| *n > 0).ok_or_else(|| {
            invalid(format!(
                "'{var}' deve essere un numero intero positivo di giorni, mesi o anni"
            ))
        })?;
        if spec.days.is_some() {
            spec.days = Some(count);
        } else if spec.months.is_some() {
            spec.months = Some(count);
        } else if spec.years.is_some() {
            spec.years = Some(count);
        } else {
            spec.window = Some(count);
        }
        lines.push(format!("durata dalla variabile '{var}' = {count}"));
    }
    if let Some((var, value)) = at {
        let text = value.as_str().unwrap_or_default().to_string();
        lines.push(format!("ora di scadenza dalla variabile '{var}' = {text}"));
        spec.at = Some(text);
    }
    let _ = p;
    let rule = terms::Rule::new(spec).map_err(|e| invalid(e.to_string()))?;
    Ok((rule, lines))
}

/// How a proroga or riapertura reads in a term's trace.
fn extension_line(ext: &ExtensionRecord) -> String {
    let what = match ext.kind {
        ExtensionKind::Proroga => "prorogato",
        ExtensionKind::Riapertura => "riaperto",
    };
    let when = ext.at.with_timezone(&ROME).format("%d/%m/%Y");
    let new = show(&ext.new);
    let previous = show(&ext.previous);
    let reason = ext
        .reason
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    format!(
        "{what} il {when} con {}: da {previous} a {new}{reason}",
        ext.act
    )
}

/// A date or datetime value as a person reads it.
pub fn show(v: &Value) -> String {
    let Some(s) = v.as_str() else {
        return "—".into();
    };
    if let Ok(day) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return day.format("%d/%m/%Y").to_string();
    }
    DateTime::parse_from_rfc3339(s).map_or_else(
        |_| s.to_string(),
        |d| {
            d.with_timezone(&ROME)
                .format("%d/%m/%Y ore %H:%M")
                .to_string()
        },
    )
}

/// Whether a term has expired at `now`: past its instant (a datetime as is, a date at the end
/// of that day). At the instant itself it is still running: what arrives at 12:00:00 of a
/// deadline at 12:00 is in time.
pub fn expired(kind: VarType, v: &Value, now: DateTime<Utc>) -> bool {
    value::instant_of(kind, v).is_some_and(|at| now > at)
}
