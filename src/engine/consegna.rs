//! What a PEC receipt does to a participant: the consegna gives the date its terms run from
//! (the variable a `notify` with `consegna:` names), a mancata consegna leaves them unstarted
//! and alerts the RUP. Pure, like the rest of the engine: the receipt has been read and
//! verified outside; here it is one step of the instance that stays in its state.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::step::{Context, ParticipantMove, Snapshot, Step, stay};
use super::{Effect, InstanceData};
use crate::definition::{Audience, Channel, Notify, Procedure, RoleName, VarType};

/// The history event of a consegna.
pub const EVENT_CONSEGNA: &str = "consegna_pec";
/// The history event of a PEC that did not reach its recipient.
pub const EVENT_MANCATA: &str = "mancata_consegna_pec";
/// The message to the RUP when a PEC did not reach its recipient.
pub const FAILURE_TEMPLATE: &str = "mancata_consegna_pec";
/// Who hears of it.
pub const FAILURE_ROLE: &str = "rup";

/// What a receipt attested about one PEC to a participant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsegnaRecord {
    /// The message kind (template) that travelled.
    pub message: String,
    /// `consegnata`, `mancata_consegna`, `non_accettata` or `virus`.
    pub status: String,
    /// The instant the provider attested.
    pub at: DateTime<Utc>,
    /// Its civil date in Europe/Rome: the dies a quo of a term running from the consegna.
    pub day: NaiveDate,
    /// The receipt, cited ("ricevuta di avvenuta consegna n. … del …").
    pub receipt: String,
    /// The PEC address it went to.
    pub recipient: String,
    /// The provider's explanation of a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl ConsegnaRecord {
    /// Whether the message reached its recipient (or went by ordinary email).
    pub fn delivered(&self) -> bool {
        self.status == "consegnata" || self.status == BY_EMAIL
    }

    /// The line a term's trace starts with.
    pub fn trace_line(&self) -> String {
        if self.status == BY_EMAIL {
            return format!(
                "dies a quo: invio del {} ({})",
                self.day.format("%d/%m/%Y"),
                self.receipt
            );
        }
        format!(
            "dies a quo: consegna del {} attestata dalla {}",
            self.day.format("%d/%m/%Y"),
            self.receipt
        )
    }
}

/// The status of a PEC notice sent and waiting for its receipt: its term has not started.
pub const PENDING: &str = "in_attesa_di_consegna";
/// The status of a PEC notice that went by ordinary email (no domicilio digitale).
pub const BY_EMAIL: &str = "inviata_posta_ordinaria";

/// A `channel: pec` notice to a participant whose organisation has no PEC address: it goes
/// by ordinary email, and the `consegna:` variable, if any, takes the day of sending
/// (recorded, with the reason, for the trace). Returns the channel to use, or `None` when the
/// notice goes by PEC as declared (the variable is cleared and waits for the receipt).
pub fn by_ordinary_email(
    p: &Procedure,
    n: &Notify,
    data: &mut InstanceData,
    scope: Option<&str>,
    now: DateTime<Utc>,
) -> Option<Channel> {
    let (Channel::Pec, Some(id)) = (n.channel, scope) else {
        return None;
    };
    let part = data.participants.get_mut(id)?;
    if part.pec.as_deref().is_some_and(|a| !a.trim().is_empty()) {
        // A new notice by PEC: its consegna is pending until the receipt, whatever an earlier
        // one attested.
        if let Some(variable) = &n.consegna {
            part.variables.insert(variable.to_string(), Value::Null);
            part.consegne.insert(
                variable.to_string(),
                ConsegnaRecord {
                    message: n.template.clone(),
                    status: PENDING.to_owned(),
                    at: now,
                    day: now.with_timezone(&crate::terms::ROME).date_naive(),
                    receipt: "inviata per PEC: il termine decorre dalla consegna, in attesa della ricevuta".to_owned(),
                    recipient: part.pec.clone().unwrap_or_default(),
                    reason: None,
                },
            );
        }
        return None;
    }
    let Some(variable) = n.consegna.as_ref() else {
        return Some(Channel::Email);
    };
    let kind = p
        .participant
        .as_ref()
        .and_then(|def| def.variables.get(variable.as_str()))
        .map(|v| v.kind);
    let day = now.with_timezone(&crate::terms::ROME).date_naive();
    let value = match kind {
        Some(VarType::DateTime) => Value::String(now.to_rfc3339()),
        _ => Value::String(day.format("%Y-%m-%d").to_string()),
    };
    part.variables.insert(variable.to_string(), value);
    part.consegne.insert(
        variable.to_string(),
        ConsegnaRecord {
            message: n.template.clone(),
            status: BY_EMAIL.to_owned(),
            at: now,
            day,
            receipt: "comunicazione per posta elettronica ordinaria: l'ente non ha un domicilio digitale registrato, il termine decorre dall'invio".to_owned(),
            recipient: String::new(),
            reason: None,
        },
    );
    Some(Channel::Email)
}

/// A receipt's outcome for a participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The participant.
    pub participant: String,
    /// The variable that receives the consegna date, when the notification named one.
    pub variable: Option<String>,
    /// What was attested.
    pub record: ConsegnaRecord,
}

/// Records a consegna (setting the variable and so starting the terms that run from it) or a
/// failure (alerting the RUP) on the participant.
///
/// # Errors
///
/// `UnknownParticipant` when the receipt names none of the instance's.
pub fn record(
    p: &Procedure,
    instance: &Snapshot<'_>,
    receipt: &Receipt,
    now: DateTime<Utc>,
) -> Result<Step, super::Error> {
    let part = instance
        .data
        .participants
        .get(&receipt.participant)
        .ok_or_else(|| super::Error::UnknownParticipant {
            id: receipt.participant.clone(),
        })?;
    let state = part.state.clone();
    let mut data: InstanceData = instance.data.clone();
    let key = receipt
        .variable
        .clone()
        .unwrap_or_else(|| receipt.record.message.clone());
    let delivered = receipt.record.delivered();
    if let Some(target) = data.participants.get_mut(&receipt.participant) {
        if delivered && let Some(variable) = &receipt.variable {
            let kind = p
                .participant
                .as_ref()
                .and_then(|def| def.variables.get(variable.as_str()))
                .map(|v| v.kind);
            let value = match kind {
                Some(VarType::DateTime) => Value::String(receipt.record.at.to_rfc3339()),
                _ => Value::String(receipt.record.day.format("%Y-%m-%d").to_string()),
            };
            target.variables.insert(variable.clone(), value);
        }
        target.consegne.insert(key, receipt.record.clone());
    }
    super::terms::compute_all(p, &mut data)?;
    let mut effects = Vec::new();
    if !delivered {
        let ctx = Context {
            p,
            instance_id: instance.id,
            now,
        };
        let notify = Notify {
            role: RoleName(FAILURE_ROLE.to_owned()),
            to: Audience::Role,
            template: FAILURE_TEMPLATE.to_owned(),
            urgent: true,
            invite: None,
            channel: Channel::Email,
            consegna: None,
        };
        for mut plan in ctx.notification_plans(&notify, instance.state, &data, None, &[]) {
            if let Value::Object(map) = &mut plan.context {
                map.insert(
                    "pec".to_owned(),
                    failure_context(part.name.as_str(), &receipt.record),
                );
            }
            effects.push(Effect::Notify(plan));
        }
    }
    let event = if delivered {
        EVENT_CONSEGNA
    } else {
        EVENT_MANCATA
    };
    Ok(stay(
        p,
        instance,
        data,
        effects,
        event,
        Some(ParticipantMove {
            id: receipt.participant.clone(),
            from: Some(state.clone()),
            to: state,
        }),
        now,
    ))
}

fn failure_context(name: &str, r: &ConsegnaRecord) -> Value {
    let stato = match r.status.as_str() {
        "non_accettata" => "non accettata dal gestore del mittente",
        "virus" => "bloccata per rilevazione di virus",
        _ => "non consegnata",
    };
    json!({
        "ente": name,
        "messaggio": r.message,
        "indirizzo": r.recipient,
        "stato": stato,
        "ricevuta": r.receipt,
        "motivo": r.reason.clone().unwrap_or_else(|| "non indicato dal gestore".to_owned()),
    })
}
