//! The local protocol register: `protocollo` outbox rows (a step's `Effect::RegisterProtocol`)
//! get the next number of the year; a `protocol_register` row (the daily recurring job) lists
//! the registrations of its day in the log.
//!
//! The subject is a handlebars template over the step's context, rendered leniently (a subject
//! with a missing variable is still registered) with the Italian date helpers. Registration is
//! idempotent by outbox row: dispatched again, a row gets its first number back.

use chrono::{Duration, NaiveDate, NaiveTime, Utc};
use handlebars::{Handlebars, handlebars_helper};
use serde_json::Value;
use tracing::{Instrument, info, info_span};

use super::{PROTOCOL_REGISTER_KIND, store_failure};
use crate::engine::{Effect, local_instant};
use crate::notify::{data, data_lunga, data_ora};
use crate::scheduler::{Dispatch, DispatchError, DispatchFuture};
use crate::service::Service;
use crate::store::{NewRegistration, OutboxRow, Registered};

/// The directions a registration may have.
const DIRECTIONS: [&str; 3] = ["entrata", "uscita", "interno"];

handlebars_helper!(data_helper: |input: str| data(input).unwrap_or_else(|_| input.to_owned()));
handlebars_helper!(data_lunga_helper: |input: str| data_lunga(input).unwrap_or_else(|_| input.to_owned()));
handlebars_helper!(data_ora_helper: |input: str| data_ora(input).unwrap_or_else(|_| input.to_owned()));

/// Registers `protocollo` rows and reports the day's register for `protocol_register` rows.
#[derive(Debug)]
pub struct ProtocolloDispatch {
    service: Service,
    subjects: Handlebars<'static>,
}

impl ProtocolloDispatch {
    /// The dispatcher over a service.
    pub fn new(service: Service) -> ProtocolloDispatch {
        let mut subjects = Handlebars::new();
        subjects.register_escape_fn(handlebars::no_escape);
        subjects.register_helper("data", Box::new(data_helper));
        subjects.register_helper("data_lunga", Box::new(data_lunga_helper));
        subjects.register_helper("data_ora", Box::new(data_ora_helper));
        ProtocolloDispatch { service, subjects }
    }

    async fn carry_out(&self, row: &OutboxRow) -> Result<(), DispatchError> {
        let Effect::RegisterProtocol {
            direction,
            subject,
            context,
        } = &row.payload
        else {
            return Err(DispatchError::Permanent(format!(
                "la riga {} non chiede una registrazione di protocollo",
                row.id
            )));
        };
        if row.kind == PROTOCOL_REGISTER_KIND {
            return self.report_day(context).await;
        }
        if !DIRECTIONS.contains(&direction.as_str()) {
            return Err(DispatchError::Permanent(format!(
                "direzione di protocollo «{direction}» sconosciuta (ammesse: {})",
                DIRECTIONS.join(", ")
            )));
        }
        let rendered = self
            .subjects
            .render_template(subject, context)
            .map_err(|error| {
                DispatchError::Permanent(format!(
                    "oggetto di protocollo «{subject}» non componibile: {error}"
                ))
            })?;
        let subject = rendered.split_whitespace().collect::<Vec<_>>().join(" ");
        let registered = self
            .service
            .store()
            .register_protocol(&NewRegistration {
                direction: direction.clone(),
                subject,
                instance_id: row.instance_id.clone(),
                outbox_id: Some(row.id),
                at: self.service.now(),
            })
            .await
            .map_err(store_failure)?;
        let entry = registered.entry();
        info!(
            numero = %entry,
            direction = %entry.direction,
            instance = entry.instance_id.as_deref().unwrap_or("—"),
            again = matches!(registered, Registered::Existing(_)),
            "registrato al protocollo"
        );
        Ok(())
    }

    /// Lists in the log the registrations of the civil day `data_registro` (Europe/Rome).
    async fn report_day(&self, context: &Value) -> Result<(), DispatchError> {
        let day = context
            .get("data_registro")
            .and_then(Value::as_str)
            .and_then(|text| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
            .ok_or_else(|| {
                DispatchError::Permanent(
                    "registro giornaliero: manca «data_registro» (AAAA-MM-GG)".to_owned(),
                )
            })?;
        let start_of = |day: NaiveDate| {
            local_instant(day, NaiveTime::MIN)
                .unwrap_or_else(|| day.and_time(NaiveTime::MIN).and_utc() - Duration::hours(1))
        };
        let next_day = day.succ_opt().unwrap_or(day);
        let entries = self
            .service
            .store()
            .protocol_entries_between(start_of(day), start_of(next_day))
            .await
            .map_err(store_failure)?;
        info!(giorno = %day, registrazioni = entries.len(), "registro giornaliero di protocollo");
        for entry in &entries {
            info!(
                numero = %entry,
                direction = %entry.direction,
                instance = entry.instance_id.as_deref().unwrap_or("—"),
                registered_at = %entry.registered_at.with_timezone(&Utc),
                "registro giornaliero: voce"
            );
        }
        Ok(())
    }
}

impl Dispatch for ProtocolloDispatch {
    fn dispatch<'a>(&'a self, row: &'a OutboxRow) -> DispatchFuture<'a> {
        Box::pin(
            self.carry_out(row)
                .instrument(info_span!("protocollo", outbox = row.id, kind = %row.kind)),
        )
    }
}
