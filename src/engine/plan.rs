//! The timers an instance needs armed: a pure function of its state and data, so that
//! rescheduling after a step is a diff between before and after. A participant's timers are
//! its own (keyed `participant/timer`), armed while it is in their states and the procedure
//! has not ended.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveTime, Utc};
use serde_json::Value;

use super::effect::*;
use super::terms::civil_date;
use super::value::{instant_of, local_instant};
use crate::definition::{Offset, Procedure, Timer, VarType};
use crate::terms::ROME;

/// Default local time of reminders for date-only timers.
const REMINDER_TIME_FOR_DATES: NaiveTime = match NaiveTime::from_hms_opt(9, 0, 0) {
    Some(t) => t,
    None => NaiveTime::MIN,
};

/// The key of a participant's timer: `participant/timer`.
pub fn participant_key(participant: &str, timer: &str) -> String {
    format!("{participant}/{timer}")
}

/// What one timer reads: the value of its variable, how it was computed and whether its
/// clock is stopped.
struct Reading<'a> {
    kind: VarType,
    name: &'a str,
    value: Option<&'a Value>,
    term: Option<&'a TermRecord>,
    suspended: bool,
}

/// The timers an instance needs armed in `state` with `data`.
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
        let name = var.name.as_str();
        let reading = Reading {
            kind: var.kind,
            name,
            value: data.variables.get(name),
            term: data.terms.get(name),
            suspended: is_suspended(data.suspensions.get(name)),
        };
        plan(timer, &reading, None, &mut out);
    }
    let ended = p.state(state).is_none_or(|s| s.is_final);
    if let (Some(def), false) = (&p.participant, ended) {
        for (id, part) in &data.participants {
            if part.withdrawn {
                continue;
            }
            for timer in &def.timers {
                if !timer.while_in.iter().any(|s| s.as_str() == part.state) {
                    continue;
                }
                let name = timer.at.as_str();
                let (kind, value, term, suspended) = match def.variables.get(name) {
                    Some(var) => (
                        var.kind,
                        part.variables.get(name),
                        part.terms.get(name),
                        is_suspended(part.suspensions.get(name)),
                    ),
                    None => match p.variable(name) {
                        Some(var) => (
                            var.kind,
                            data.variables.get(name),
                            data.terms.get(name),
                            is_suspended(data.suspensions.get(name)),
                        ),
                        None => continue,
                    },
                };
                let reading = Reading {
                    kind,
                    name,
                    value,
                    term,
                    suspended,
                };
                plan(timer, &reading, Some(id), &mut out);
            }
        }
    }
    out
}

fn is_suspended(list: Option<&Vec<SuspensionRecord>>) -> bool {
    list.and_then(|l| l.last())
        .is_some_and(|s| s.until.is_none())
}

/// The plans of one timer (its event and its reminders).
fn plan(
    timer: &Timer,
    reading: &Reading<'_>,
    participant: Option<&String>,
    out: &mut BTreeMap<String, TimerPlan>,
) {
    if reading.suspended {
        return;
    }
    let Some(value) = reading.value else {
        return;
    };
    let Some(at) = instant_of(reading.kind, value) else {
        return;
    };
    let mut trace = match reading.term {
        Some(t) => {
            let mut lines = vec![format!(
                "{} = {} da {} ({})",
                reading.name,
                t.rule,
                t.from,
                t.start.format("%d/%m/%Y")
            )];
            lines.extend(t.trace.iter().cloned());
            lines
        }
        None => vec![format!(
            "{} = {} (valore dell'istanza)",
            reading.name,
            value.as_str().unwrap_or("")
        )],
    };
    if reading.kind == VarType::Date {
        trace.push("data senza ora: il timer scatta alla fine del giorno (00:00 del giorno dopo, Europe/Rome)".into());
    }
    let base = match participant {
        Some(id) => participant_key(id, &timer.id),
        None => timer.id.clone(),
    };
    if let Some(event) = &timer.fires {
        out.insert(
            base.clone(),
            TimerPlan {
                key: base.clone(),
                timer: timer.id.clone(),
                fire_at: at,
                action: TimerAction::Fire {
                    event: event.to_string(),
                    participant: participant.cloned(),
                },
                trace: trace.clone(),
            },
        );
    }
    if timer.expired.is_some() && timer.fires.is_none() && participant.is_none() {
        let key = format!("{base}#scaduto");
        let mut t = trace.clone();
        t.push(
            "alla scadenza, con il procedimento ancora aperto: silenzio registrato e avviso al RUP"
                .into(),
        );
        out.insert(
            key.clone(),
            TimerPlan {
                key,
                timer: timer.id.clone(),
                fire_at: at,
                action: TimerAction::Fire {
                    event: format!("{}{}", super::expiry::EXPIRY_PREFIX, timer.id),
                    participant: None,
                },
                trace: t,
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
                let (date, time) = if reading.kind == VarType::Date {
                    (
                        civil_date(value).unwrap_or(local.date_naive()),
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
        let key = format!("{base}#promemoria-{}", i + 1);
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
                    participant: participant.cloned(),
                },
                trace: t,
            },
        );
    }
}

/// Effects that take the armed timers from what `before` needed to what `after` needs. A
/// reminder that is new or moved and whose moment has already passed is not armed: a late
/// reminder is noise. One that was armed before and is unchanged stays, even if due.
pub fn timer_diff(
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

/// The reminder index of a timer key (`…#promemoria-N` → N-1).
pub fn reminder_index(key: &str) -> Option<usize> {
    key.rsplit_once("#promemoria-")
        .and_then(|(_, n)| n.parse::<usize>().ok())
        .and_then(|n| n.checked_sub(1))
}
