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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::{Map, json};

    use super::*;
    use crate::definition::{Environment, validate};
    use crate::engine::step::{Command, Joining, fire, join, start};
    use crate::engine::{Actor, Effect};

    const AVVISO: &str = r#"id: prova_pec
version: 1
title: "Prova PEC"
roles:
  rup: "RUP"
  ets: "ETS"
variables:
  scadenza_domande: { type: datetime }
participant:
  role: ets
  variables:
    data_consegna: { type: date }
    termine:
      type: datetime
      term: { from: data_consegna, days: 10, at: "12:00" }
  states:
    ricevuta: { initial: true }
    in_soccorso:
      on_enter:
        - notify: { to: participant, template: t, channel: pec, consegna: data_consegna }
    chiusa: { final: true }
  transitions:
    - { event: richiedi, from: ricevuta, to: in_soccorso, roles: [rup] }
    - { event: scaduto, from: in_soccorso, to: chiusa, roles: [rup] }
  timers:
    - { id: soccorso, while: in_soccorso, at: termine, fires: scaduto }
states:
  aperto: { initial: true }
  chiuso: { final: true }
transitions:
  - { event: chiudi, from: aperto, to: chiuso, roles: [rup] }
submissions:
  deadline: scadenza_domande
  while: aperto
"#;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        crate::terms::ROME
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .expect("instant")
            .with_timezone(&Utc)
    }

    fn rup() -> Actor {
        Actor {
            id: "rup".into(),
            role: "rup".into(),
        }
    }

    /// A participant of an organisation with or without a PEC address, in soccorso since
    /// 28/12/2026 23:50.
    fn in_soccorso(pec: Option<&str>) -> (Procedure, InstanceData) {
        let p = validate("prova.yaml", AVVISO, &Environment::default()).expect("valid");
        let mut vars = Map::new();
        vars.insert(
            "scadenza_domande".into(),
            json!("2026-12-20T12:00:00+01:00"),
        );
        let s = start(&p, "i1", &vars, &rup(), at(2026, 12, 1, 9, 0)).expect("start");
        let joined = join(
            &p,
            &Snapshot {
                id: "i1",
                state: &s.to,
                data: &s.data,
            },
            &Joining {
                id: "a1",
                organisation_id: "ets-aurora",
                name: "Aurora",
                members: &[],
                received_at: None,
                pec,
            },
            at(2026, 12, 2, 9, 0),
        )
        .expect("join");
        let step = fire(
            &p,
            &Snapshot {
                id: "i1",
                state: &joined.to,
                data: &joined.data,
            },
            &Command {
                event: "richiedi".into(),
                actor: rup(),
                payload: Map::new(),
                participant: Some("a1".into()),
            },
            at(2026, 12, 28, 23, 50),
        )
        .expect("richiedi");
        let notices: Vec<&NotificationPlan> = step
            .effects
            .iter()
            .filter_map(|e| match e {
                Effect::Notify(plan) => Some(plan),
                _ => None,
            })
            .collect();
        assert_eq!(notices.len(), 1);
        let expected = if pec.is_some() {
            Channel::Pec
        } else {
            Channel::Email
        };
        assert_eq!(notices[0].channel, expected);
        (p, step.data)
    }

    use crate::engine::NotificationPlan;

    fn receipt(status: &str, when: DateTime<Utc>) -> Receipt {
        Receipt {
            participant: "a1".into(),
            variable: Some("data_consegna".into()),
            record: ConsegnaRecord {
                message: "t".into(),
                status: status.into(),
                at: when,
                day: when.with_timezone(&crate::terms::ROME).date_naive(),
                receipt: "ricevuta di avvenuta consegna n. X del 29/12/2026 00:10:00 (Gestore)"
                    .into(),
                recipient: "aurora@pec.example.it".into(),
                reason: None,
            },
        }
    }

    #[test]
    fn by_pec_the_term_waits_for_the_consegna_and_runs_from_its_day() {
        let (p, data) = in_soccorso(Some("aurora@pec.example.it"));
        let part = &data.participants["a1"];
        assert!(
            part.variables.get("termine").is_none_or(Value::is_null),
            "pending: {part:?}"
        );
        assert_eq!(part.consegne["data_consegna"].status, PENDING);
        let snapshot = Snapshot {
            id: "i1",
            state: "aperto",
            data: &data,
        };
        let step = record(
            &p,
            &snapshot,
            &receipt("consegnata", at(2026, 12, 29, 0, 10)),
            at(2026, 12, 29, 0, 12),
        )
        .expect("recorded");
        let part = &step.data.participants["a1"];
        assert_eq!(part.variables["data_consegna"], json!("2026-12-29"));
        assert_eq!(
            part.variables["termine"],
            json!("2027-01-08T12:00:00+01:00")
        );
        assert!(
            part.terms["termine"].trace[0].starts_with("dies a quo: consegna del 29/12/2026 attestata dalla ricevuta di avvenuta consegna n. X"),
            "{:?}",
            part.terms["termine"].trace
        );
        assert!(
            step.effects.iter().all(|e| !matches!(e, Effect::Notify(_))),
            "no alert"
        );
        assert!(
            step.effects
                .iter()
                .any(|e| matches!(e, Effect::ScheduleTimer(_))),
            "the term's timer is armed: {:?}",
            step.effects
        );
    }

    #[test]
    fn a_mancata_consegna_leaves_the_term_unstarted_and_alerts_the_rup() {
        let (p, data) = in_soccorso(Some("aurora@pec.example.it"));
        let snapshot = Snapshot {
            id: "i1",
            state: "aperto",
            data: &data,
        };
        let step = record(
            &p,
            &snapshot,
            &receipt("mancata_consegna", at(2026, 12, 29, 23, 50)),
            at(2026, 12, 29, 23, 51),
        )
        .expect("recorded");
        assert_eq!(step.event, EVENT_MANCATA);
        let part = &step.data.participants["a1"];
        assert!(part.variables.get("termine").is_none_or(Value::is_null));
        assert!(
            part.variables
                .get("data_consegna")
                .is_none_or(Value::is_null)
        );
        let alert = step
            .effects
            .iter()
            .find_map(|e| match e {
                Effect::Notify(plan) => Some(plan),
                _ => None,
            })
            .expect("an alert");
        assert_eq!(alert.role, FAILURE_ROLE);
        assert_eq!(alert.template, FAILURE_TEMPLATE);
        assert_eq!(alert.context["pec"]["ente"], "Aurora");
        // An unknown participant: refused.
        let mut other = receipt("consegnata", at(2026, 12, 29, 0, 10));
        other.participant = "nessuno".into();
        assert!(record(&p, &snapshot, &other, at(2026, 12, 29, 1, 0)).is_err());
    }

    #[test]
    fn without_a_pec_address_the_notice_goes_by_email_and_the_term_runs_from_the_sending() {
        let (_, data) = in_soccorso(None);
        let part = &data.participants["a1"];
        assert_eq!(part.variables["data_consegna"], json!("2026-12-28"));
        assert_eq!(
            part.variables["termine"],
            json!("2027-01-07T12:00:00+01:00")
        );
        assert_eq!(part.consegne["data_consegna"].status, BY_EMAIL);
        assert!(part.terms["termine"].trace[0].contains("posta elettronica ordinaria"));
    }
}
