//! A term that passes with the procedure still open — the L. 241/1990 conclusion term: the
//! timer's `expired:` section records the *silenzio* of the kind the procedure declares
//! (inadempimento by default, assenso only where art. 20 applies), alerts the RUP and the
//! titolare del potere sostitutivo (art. 2 c.9-bis) once, and lets a late decision state the
//! legal term and the time taken (c.9-quinquies) through the `termine_superato` context.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::step::{Context, Snapshot, Step, stay};
use super::{Effect, InstanceData};
use crate::definition::{Audience, Notify, Procedure, Silenzio};

/// The system event a timer's expiry fires: `termine_scaduto:<timer id>`.
pub const EXPIRY_PREFIX: &str = "termine_scaduto:";
/// The history event that records it.
pub const EVENT_EXPIRED: &str = "termine_scaduto";
/// The role of the titolare del potere sostitutivo.
pub const SUBSTITUTE_ROLE: &str = "potere_sostitutivo";

/// A term that passed with the procedure open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiredTerm {
    /// The timer.
    pub timer: String,
    /// The variable holding the term.
    pub variable: String,
    /// Its label.
    pub label: String,
    /// The dies a quo, when the term was computed by a rule.
    pub start: Option<NaiveDate>,
    /// The civil date of expiry.
    pub expiry: Option<NaiveDate>,
    /// The silenzio it amounts to.
    pub silenzio: Silenzio,
    /// Whether the titolare del potere sostitutivo was alerted.
    pub substitute: bool,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
    /// How the term was computed.
    pub trace: Vec<String>,
}

/// Records that the term of `timer_id` passed and alerts who the procedure names.
///
/// # Errors
///
/// `UnknownEvent` for a timer without `expired:`; `WrongState` when the instance has left the
/// timer's states (the procedure concluded in time, or moved on).
pub fn expire(
    p: &Procedure,
    instance: &Snapshot<'_>,
    timer_id: &str,
    now: DateTime<Utc>,
) -> Result<Step, super::Error> {
    let event = format!("{EXPIRY_PREFIX}{timer_id}");
    let (timer, expiry) = p
        .timers
        .iter()
        .find(|t| t.id == timer_id)
        .and_then(|t| t.expired.as_ref().map(|e| (t, e)))
        .ok_or_else(|| super::Error::UnknownEvent {
            event: event.clone(),
        })?;
    if !timer.while_in.iter().any(|s| s.as_str() == instance.state) {
        return Err(super::Error::WrongState {
            event,
            state: instance.state.to_string(),
            allowed: timer.while_in.iter().map(ToString::to_string).collect(),
        });
    }
    let record = instance.data.terms.get(timer.at.as_str());
    let label = p
        .variables
        .get(timer.at.as_str())
        .and_then(|v| v.label.clone())
        .unwrap_or_else(|| timer.at.to_string());
    let mut data: InstanceData = instance.data.clone();
    data.expired.insert(
        timer.id.clone(),
        ExpiredTerm {
            timer: timer.id.clone(),
            variable: timer.at.to_string(),
            label,
            start: record.map(|r| r.start),
            expiry: record.map(|r| r.expiry),
            silenzio: expiry.silenzio,
            substitute: expiry.notify.iter().any(|r| r.as_str() == SUBSTITUTE_ROLE),
            recorded_at: now,
            trace: record.map(|r| r.trace.clone()).unwrap_or_default(),
        },
    );
    let ctx = Context {
        p,
        instance_id: instance.id,
        now,
    };
    let mut effects = Vec::new();
    for role in &expiry.notify {
        let notify = Notify {
            role: role.clone(),
            to: Audience::Role,
            template: expiry.template.clone(),
            urgent: true,
            invite: None,
            channel: crate::definition::Channel::Email,
            consegna: None,
        };
        for plan in ctx.notification_plans(&notify, instance.state, &data, None, &[]) {
            effects.push(Effect::Notify(plan));
        }
    }
    Ok(stay(p, instance, data, effects, EVENT_EXPIRED, None, now))
}

/// What messages read as `termine_superato`: the latest term passed with the procedure open,
/// with the legal days and the days taken so far (art. 2 c.9-quinquies); null when none.
pub fn context_value(data: &InstanceData, now: DateTime<Utc>) -> Value {
    let Some(e) = data.expired.values().max_by_key(|e| e.recorded_at) else {
        return Value::Null;
    };
    let today = now.with_timezone(&crate::terms::ROME).date_naive();
    let days = |from: Option<NaiveDate>, to: Option<NaiveDate>| match (from, to) {
        (Some(a), Some(b)) if b >= a => Some((b - a).num_days()),
        _ => None,
    };
    json!({
        "termine": e.label,
        "scadenza": e.expiry.map(|d| d.format("%d/%m/%Y").to_string()),
        "silenzio": e.silenzio.title(),
        "potere_sostitutivo": e.substitute,
        "giorni_previsti": days(e.start, e.expiry),
        "giorni_impiegati": days(e.start, (now > DateTime::<Utc>::MIN_UTC).then_some(today)),
        "traccia": e.trace,
    })
}
