//! From outbox rows to emails: who receives a notification, what each person gets, and when.
//!
//! The path of a notification, each step a durable row:
//!
//! 1. A step commits an `Effect::Notify` as an outbox row of kind `notify`.
//! 2. [`NotifyDispatch`] (called by the scheduler for that row) resolves the recipients from
//!    the role (for `ets`, the organisations that submitted to the instance, when any did),
//!    renders the template once per recipient — with `destinatario` and `ambito` added — and
//!    attaches the calendar invite when the notification asks for one. It writes one delivery
//!    per recipient, with the rendered email and a Message-ID derived from (outbox row,
//!    person), so the row dispatched again after a crash creates nothing new (the store
//!    inserts or ignores on that key). A non-urgent message for someone who chose the daily
//!    digest is written `held`.
//! 3. [`DigestDispatch`] (outbox kind `digest`, queued by the `digest` recurring job) writes
//!    one `riepilogo_giornaliero` delivery per person with held deliveries, listing them, and
//!    marks those `digested`, in one transaction.
//! 4. [`DeliveryWorker`] claims due deliveries with a lease and sends them through the
//!    [`Transport`], with bounded concurrency: `sent` with the server's answer, retried with
//!    exponential backoff and jitter on a transient error, `failed` (and listed by `procedo
//!    mail deliveries`) on a permanent one or after the last attempt. Never dropped.
//!
//! The calendar invite of a meeting has the UID `<instance id>@<mail domain>` for its whole
//! life and the SEQUENCE "number of earlier invites of the same instance and role", counted
//! from the outbox: the same on every dispatch of a row, one more at every move, and the
//! cancellation above them all.
//!
//! A notification of a step that also registers an act in the protocollo cites it: the
//! dispatcher waits for the registration of that step (`protocollo` in the template context:
//! number, date, the text of the segnatura) and retries until it is there.
//!
//! Invariants: nothing here logs a body or a full address (the recipient's domain at most);
//! the clock comes from the service (dispatchers) or from the caller (worker); a dispatcher
//! is idempotent per outbox row.

mod worker;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use lettre::message::Mailbox;
use serde_json::{Map, Value, json};
use tracing::{Instrument, info, info_span, warn};

pub use worker::{DeliveryOptions, DeliveryWorker};

use super::recipients::{self, Recipient, store_failure};
use super::{
    DEFAULT_FROM, Error, Meeting, Method, Moment, OutgoingEmail, SMTP_FROM_VARIABLE, SmtpSettings,
    Templates, Transport, agenda_description, invite_ics, long_date, long_date_time,
    message_id_for, parse_moment,
};
use crate::definition::{Channel, InviteMethod};
use crate::engine::{Effect, NotificationPlan};
use crate::scheduler::{Dispatch, DispatchError, DispatchFuture, Scheduler};
use crate::service::Service;
use crate::store::{self, DeliveryStatus, NewDelivery, OutboxRow};

/// Outbox kind of a notification (`Effect::Notify` of a step or a reminder).
pub const NOTIFY_KIND: &str = "notify";
/// Outbox kind queued by the `digest` recurring job.
pub const DIGEST_KIND: &str = "digest";

/// Environment variable naming the Ambito in messages (`ambito.nome`).
pub const AMBITO_VARIABLE: &str = "PROCEDO_AMBITO_NOME";
/// The Ambito's name when `PROCEDO_AMBITO_NOME` is not set.
pub const DEFAULT_AMBITO: &str = "Ambito territoriale";
/// Environment variable naming the folder of the `.eml` transport (used without SMTP URL).
pub const MAIL_DIR_VARIABLE: &str = "PROCEDO_MAIL_DIR";
/// The `.eml` folder when neither `PROCEDO_SMTP_URL` nor `PROCEDO_MAIL_DIR` is set.
pub const DEFAULT_MAIL_DIR: &str = "out/mail";

/// The message kind of the riepilogo.
const DIGEST_TEMPLATE: &str = crate::scheduler::cron::DIGEST_TEMPLATE;
/// Length of a meeting whose context says nothing (`durata_minuti`).
const DEFAULT_MEETING_MINUTES: i64 = 120;

/// Everything the notification side needs: templates, transport, sender, the Ambito's name
/// and how the delivery worker works. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// The message templates (the workflows folder's, or the shipped ones).
    pub templates: Arc<Templates>,
    /// Where emails go.
    pub transport: Transport,
    /// The sender mailbox; its domain names Message-IDs and invite UIDs.
    pub from: String,
    /// `ambito.nome` in every message.
    pub ambito: String,
    /// How the delivery worker claims, sends and retries.
    pub delivery: DeliveryOptions,
    /// Personal links in convocations (`PROCEDO_LINK_KEY`, `PROCEDO_PUBLIC_URL`).
    pub links: Option<LinkSettings>,
    /// The PEC channel, when configured (`PROCEDO_PEC_SMTP_URL`, `PROCEDO_PEC_FROM`).
    pub pec: Option<PecSending>,
}

/// How PEC messages leave: the provider's SMTP submission and the office's PEC address.
#[derive(Debug, Clone)]
pub struct PecSending {
    /// The provider's submission server (TLS in production).
    pub transport: Transport,
    /// The Ufficio di Piano's PEC address (the sender of every PEC).
    pub from: String,
}

/// Environment variable holding the PEC provider's SMTP submission URL.
pub const PEC_SMTP_URL_VARIABLE: &str = "PROCEDO_PEC_SMTP_URL";
/// Environment variable holding the PEC provider's rate limit (messages per second).
pub const PEC_SMTP_RATE_VARIABLE: &str = "PROCEDO_PEC_SMTP_RATE";
/// Environment variable holding the office's PEC address.
pub const PEC_FROM_VARIABLE: &str = "PROCEDO_PEC_FROM";

impl PecSending {
    /// From `PROCEDO_PEC_SMTP_URL` and `PROCEDO_PEC_FROM`; `Ok(None)` when the URL is not set.
    pub fn from_env() -> Result<Option<PecSending>, Error> {
        let Ok(url) = std::env::var(PEC_SMTP_URL_VARIABLE) else {
            return Ok(None);
        };
        let from = std::env::var(PEC_FROM_VARIABLE).map_err(|_| Error::Settings {
            reason: format!("{PEC_SMTP_URL_VARIABLE} è impostato ma manca {PEC_FROM_VARIABLE} (l'indirizzo PEC dell'Ufficio di Piano)"),
        })?;
        parse_sender(&from)?;
        let transport = Transport::smtp(&SmtpSettings {
            // Certified-mail providers cap senders.
            rate: super::transport::rate_from_env(PEC_SMTP_RATE_VARIABLE)?,
            url,
            from: from.clone(),
            timeout: None,
        })?;
        Ok(Some(PecSending { transport, from }))
    }
}

/// How personal links are made: the key they are signed with and where `procedo serve`
/// answers them.
#[derive(Clone)]
pub struct LinkSettings {
    /// The signing key.
    pub key: Vec<u8>,
    /// The public address of the API (`https://procedo.ambito.example.it`).
    pub base_url: String,
}

impl std::fmt::Debug for LinkSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSettings")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl LinkSettings {
    /// From `PROCEDO_LINK_KEY` (at least 32 characters) and `PROCEDO_PUBLIC_URL`; `None`
    /// when the key is not set.
    pub fn from_env() -> Result<Option<LinkSettings>, Error> {
        let Ok(key) = std::env::var("PROCEDO_LINK_KEY") else {
            return Ok(None);
        };
        if key.len() < 32 {
            return Err(Error::Settings {
                reason: "PROCEDO_LINK_KEY: servono almeno 32 caratteri casuali".into(),
            });
        }
        let base_url = std::env::var("PROCEDO_PUBLIC_URL")
            .unwrap_or_else(|_| "http://127.0.0.1:8080".to_owned());
        Ok(Some(LinkSettings {
            key: key.into_bytes(),
            base_url,
        }))
    }
}

impl MailSettings {
    /// Settings with the default sender, Ambito name and worker options.
    pub fn new(templates: Templates, transport: Transport) -> MailSettings {
        MailSettings {
            templates: Arc::new(templates),
            transport,
            from: DEFAULT_FROM.to_owned(),
            ambito: DEFAULT_AMBITO.to_owned(),
            delivery: DeliveryOptions::default(),
            links: None,
            pec: None,
        }
    }

    /// Settings from the environment: SMTP when `PROCEDO_SMTP_URL` is set (with
    /// `PROCEDO_SMTP_FROM`, `PROCEDO_SMTP_TIMEOUT`), else `.eml` files in `PROCEDO_MAIL_DIR`
    /// (default `out/mail`); the Ambito's name from `PROCEDO_AMBITO_NOME`. Must be called
    /// inside a Tokio runtime (the SMTP pool starts a task).
    pub fn from_env(templates: Templates) -> Result<MailSettings, Error> {
        let (transport, from) = match SmtpSettings::from_env()? {
            Some(smtp) => (Transport::smtp(&smtp)?, smtp.from),
            None => {
                let dir = std::env::var_os(MAIL_DIR_VARIABLE)
                    .map_or_else(|| PathBuf::from(DEFAULT_MAIL_DIR), PathBuf::from);
                let from =
                    std::env::var(SMTP_FROM_VARIABLE).unwrap_or_else(|_| DEFAULT_FROM.to_owned());
                (Transport::files(dir), from)
            }
        };
        parse_sender(&from)?;
        let ambito = std::env::var(AMBITO_VARIABLE)
            .ok()
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| DEFAULT_AMBITO.to_owned());
        Ok(MailSettings {
            templates: Arc::new(templates),
            transport,
            from,
            ambito,
            delivery: DeliveryOptions::default(),
            links: LinkSettings::from_env()?,
            pec: PecSending::from_env()?,
        })
    }

    /// The domain of the sender: the right side of Message-IDs and invite UIDs.
    pub fn mail_domain(&self) -> String {
        parse_sender(&self.from).map_or_else(
            |_| "procedo.local".to_owned(),
            |mailbox| mailbox.email.domain().to_owned(),
        )
    }
}

fn parse_sender(from: &str) -> Result<Mailbox, Error> {
    from.parse::<Mailbox>().map_err(|error| Error::Address {
        role: "mittente",
        address: from.to_owned(),
        reason: error.to_string(),
    })
}

/// Registers the notification dispatchers on `scheduler`: `notify` and `digest`. The delivery
/// worker runs beside it ([`spawn_delivery_worker`]); the protocollo installs its own.
#[must_use]
pub fn install(scheduler: Scheduler, settings: &MailSettings) -> Scheduler {
    let service = scheduler.service().clone();
    let composer = Composer::new(settings);
    let notify: Arc<dyn Dispatch> = Arc::new(NotifyDispatch {
        service: service.clone(),
        composer: composer.clone(),
    });
    let digest: Arc<dyn Dispatch> = Arc::new(DigestDispatch { service, composer });
    scheduler
        .with_dispatcher(NOTIFY_KIND, notify)
        .with_dispatcher(DIGEST_KIND, digest)
}

/// Starts the delivery worker of `settings` on the service's store and clock, until
/// `shutdown` completes (the batch in flight is finished first).
pub fn spawn_delivery_worker(
    service: &Service,
    settings: &MailSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let mut worker = DeliveryWorker::new(
        service.store().clone(),
        settings.transport.clone(),
        settings.delivery.clone(),
        service.clock(),
    );
    if let Some(pec) = &settings.pec {
        worker = worker.with_pec(pec.transport.clone());
    }
    tokio::spawn(worker.run(shutdown))
}

/// Renders messages for recipients: the parts shared by notifications and digests.
#[derive(Debug, Clone)]
struct Composer {
    templates: Arc<Templates>,
    from: String,
    ambito: String,
    domain: String,
    links: Option<LinkSettings>,
    pec_from: Option<String>,
}

impl Composer {
    fn new(settings: &MailSettings) -> Composer {
        Composer {
            templates: settings.templates.clone(),
            from: settings.from.clone(),
            ambito: settings.ambito.clone(),
            domain: settings.mail_domain(),
            links: settings.links.clone(),
            pec_from: settings.pec.as_ref().map(|pec| pec.from.clone()),
        }
    }

    /// The context of `base` for one recipient: `destinatario` and `ambito` added, and a
    /// reminder's `scadenza.data` written out in Italian.
    fn context_for(&self, base: &Value, recipient: &Recipient) -> Result<Value, DispatchError> {
        let Value::Object(map) = base else {
            return Err(DispatchError::Permanent(
                "il contesto della notifica non è un oggetto".to_owned(),
            ));
        };
        let mut map = map.clone();
        // A convocation carries each member's personal link to answer it, signed for their
        // comune and valid until the meeting.
        let risposta = match (&self.links, map.get("risposta"), &recipient.organisation_id) {
            (Some(links), Some(Value::Object(r)), Some(seat)) => {
                let until = r
                    .get("fino_a")
                    .and_then(Value::as_str)
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.timestamp());
                let instance = map
                    .get("istanza")
                    .and_then(|i| i.get("id"))
                    .and_then(Value::as_str);
                match (until, instance) {
                    (Some(until), Some(instance)) => Value::String(format!(
                        "{}/risposta/{}",
                        links.base_url.trim_end_matches('/'),
                        crate::identity::links::sign(&links.key, instance, seat, until)
                    )),
                    _ => Value::Null,
                }
            }
            _ => Value::Null,
        };
        map.insert(
            "destinatario".to_owned(),
            json!({ "nome": recipient.name, "email": recipient.email, "risposta": risposta }),
        );
        map.insert("ambito".to_owned(), json!({ "nome": self.ambito }));
        map.entry("protocollo").or_insert(Value::Null);
        map.entry("partecipante").or_insert(Value::Null);
        write_out_deadline(&mut map);
        Ok(Value::Object(map))
    }

    /// The email of `template` for `recipient`, under the Message-ID of `delivery_key`;
    /// from the office's PEC address when it travels by PEC.
    fn compose(
        &self,
        template: &str,
        context: &Value,
        recipient: &Recipient,
        delivery_key: &str,
        channel: Channel,
    ) -> Result<OutgoingEmail, DispatchError> {
        let rendered = self
            .templates
            .render(template, context)
            .map_err(|error| DispatchError::Permanent(error.to_string()))?;
        let from = match channel {
            Channel::Pec => self.pec_from.clone().ok_or_else(|| {
                DispatchError::Permanent(format!(
                    "la notifica va per PEC ma la PEC non è configurata ({PEC_SMTP_URL_VARIABLE}, {PEC_FROM_VARIABLE})"
                ))
            })?,
            Channel::Email => self.from.clone(),
        };
        Ok(OutgoingEmail::new(
            message_id_for(delivery_key, &self.domain),
            from,
            recipient.mailbox(),
            rendered,
        ))
    }

    /// (name, address) of the sender, for the invite's ORGANIZER.
    fn organizer(&self) -> (String, String) {
        match parse_sender(&self.from) {
            Ok(mailbox) => (
                mailbox
                    .name
                    .clone()
                    .unwrap_or_else(|| "Ufficio di Piano".to_owned()),
                mailbox.email.to_string(),
            ),
            Err(_) => ("Ufficio di Piano".to_owned(), self.from.clone()),
        }
    }
}

/// `scadenza.data` of a reminder, when it is a date or an instant, written out as the
/// templates expect ("lunedì 28 dicembre 2026, ore 12:00").
fn write_out_deadline(map: &mut Map<String, Value>) {
    let Some(Value::Object(deadline)) = map.get_mut("scadenza") else {
        return;
    };
    let Some(Value::String(text)) = deadline.get("data") else {
        return;
    };
    let written = match parse_moment(text) {
        Ok(Moment::Instant(at)) => long_date_time(&at),
        Ok(Moment::Day(day)) => long_date(day),
        Err(_) => return,
    };
    deadline.insert("data".to_owned(), Value::String(written));
}

/// Fans a notification out into one delivery per recipient (outbox kind `notify`).
#[derive(Debug, Clone)]
pub struct NotifyDispatch {
    service: Service,
    composer: Composer,
}

impl NotifyDispatch {
    /// The dispatcher over a service, with `settings`' templates, sender and Ambito.
    pub fn new(service: Service, settings: &MailSettings) -> NotifyDispatch {
        NotifyDispatch {
            service,
            composer: Composer::new(settings),
        }
    }

    async fn notify(&self, row: &OutboxRow) -> Result<(), DispatchError> {
        let Effect::Notify(plan) = &row.payload else {
            return Err(DispatchError::Permanent(format!(
                "la riga {} non contiene una notifica",
                row.id
            )));
        };
        let who = recipients::Who {
            role: &plan.role,
            organisations: plan.organisations.as_deref(),
            public: plan.public,
        };
        let mut recipients =
            recipients::resolve(&self.service, row.instance_id.as_deref(), &who).await?;
        if plan.channel == Channel::Pec {
            recipients = recipients::pec_addresses(&self.service, recipients).await?;
        }
        if recipients.is_empty() {
            warn!(role = %plan.role, template = %plan.template, "nessun destinatario con questo ruolo: notifica senza invii");
            return Ok(());
        }
        let invite = match plan.invite {
            Some(method) => Some(self.invite(row, plan, &recipients, method).await?),
            None => None,
        };
        let mut base = plan.context.clone();
        if let (Some(citation), Value::Object(map)) = (self.citation(row, plan).await?, &mut base) {
            map.insert("protocollo".to_owned(), citation);
        }
        let now = self.service.now();
        let mut deliveries = Vec::with_capacity(recipients.len());
        for recipient in &recipients {
            let context = self.composer.context_for(&base, recipient)?;
            let key = format!("delivery-{}-{}", row.id, recipient.key());
            let mut email =
                self.composer
                    .compose(&plan.template, &context, recipient, &key, plan.channel)?;
            if let Some((method, ics)) = &invite {
                email = email.with_invite(*method, ics.clone());
            }
            let held = !plan.urgent
                && invite.is_none()
                && recipient.digest
                && plan.channel == Channel::Email;
            deliveries.push(NewDelivery {
                outbox_id: row.id,
                instance_id: row.instance_id.clone(),
                person_id: recipient.person_id.clone(),
                recipient_email: recipient.email.clone(),
                recipient_name: recipient.name.clone(),
                kind: plan.template.clone(),
                urgent: plan.urgent,
                message_id: email.message_id.clone(),
                email: serde_json::to_value(&email).map_err(|error| {
                    DispatchError::Permanent(format!("email non serializzabile: {error}"))
                })?,
                status: if held {
                    DeliveryStatus::Held
                } else {
                    DeliveryStatus::Pending
                },
                at: now,
                channel: plan.channel,
            });
        }
        let held = deliveries
            .iter()
            .filter(|delivery| delivery.status == DeliveryStatus::Held)
            .count();
        let created = self
            .service
            .store()
            .add_deliveries(&deliveries)
            .await
            .map_err(store_failure)?;
        info!(
            template = %plan.template,
            role = %plan.role,
            recipients = deliveries.len(),
            created,
            held,
            invite = ?invite.as_ref().map(|(method, _)| method.as_str()),
            "consegne create"
        );
        Ok(())
    }

    /// The registration the message cites (`protocollo` in its context): number, date and the
    /// text to print. The registration of the step comes first; until it is made the
    /// notification waits (a transient error, retried).
    async fn citation(
        &self,
        row: &OutboxRow,
        plan: &NotificationPlan,
    ) -> Result<Option<Value>, DispatchError> {
        let (Some(ordinal), Some(instance_id), Some(step_seq)) =
            (plan.protocol, row.instance_id.as_deref(), row.step_seq)
        else {
            return Ok(None);
        };
        let store = self.service.store();
        let rows = store
            .step_outbox_rows(instance_id, step_seq, PROTOCOLLO_KIND)
            .await
            .map_err(store_failure)?;
        let Some(registration_row) = usize::try_from(ordinal).ok().and_then(|n| rows.get(n)) else {
            return Ok(None);
        };
        let key = format!("outbox:{}", registration_row.id);
        let Some(registration) = store.protocol_citation(&key).await.map_err(store_failure)? else {
            return Err(DispatchError::Transient(
                "in attesa del numero di protocollo dell'atto da citare".to_owned(),
            ));
        };
        Ok(Some(citation_context(&registration)))
    }

    /// The invite of the meeting the notification is about, for every recipient.
    async fn invite(
        &self,
        row: &OutboxRow,
        plan: &NotificationPlan,
        recipients: &[Recipient],
        method: InviteMethod,
    ) -> Result<(Method, String), DispatchError> {
        let Some(instance_id) = row.instance_id.as_deref() else {
            return Err(DispatchError::Permanent(
                "un invito di calendario richiede un'istanza".to_owned(),
            ));
        };
        let sequence = self
            .service
            .store()
            .earlier_invites(instance_id, &plan.role, row.id)
            .await
            .map_err(store_failure)?;
        let method = match method {
            InviteMethod::Request => Method::Request,
            InviteMethod::Cancel => Method::Cancel,
        };
        let meeting = meeting_from_context(
            &plan.context,
            MeetingFacts {
                uid: format!("{instance_id}@{}", self.composer.domain),
                sequence,
                dtstamp: row.created_at,
                ambito: &self.composer.ambito,
                organizer: self.composer.organizer(),
                attendees: recipients
                    .iter()
                    .map(|recipient| (recipient.name.clone(), recipient.email.clone()))
                    .collect(),
            },
        )?;
        Ok((method, invite_ics(&meeting, method)))
    }
}

impl Dispatch for NotifyDispatch {
    fn dispatch<'a>(&'a self, row: &'a OutboxRow) -> DispatchFuture<'a> {
        Box::pin(
            self.notify(row)
                .instrument(info_span!("notify", outbox = row.id)),
        )
    }
}

/// How a message cites a registration: `{{protocollo.riferimento}}` is "prot. n. 0000042 del
/// 27/11/2026" (or the emergency register's, or a repertorio's).
pub fn citation_context(r: &store::ProtocolRegistration) -> Value {
    let data = r
        .registered_at
        .with_timezone(&crate::terms::ROME)
        .format("%d/%m/%Y")
        .to_string();
    let riferimento = match r.register.as_str() {
        store::PROTOCOL_REGISTER => format!("prot. n. {} del {data}", r.padded_number()),
        store::EMERGENCY_REGISTER => format!(
            "registro di protocollo di emergenza n. {} del {data}",
            r.padded_number()
        ),
        other => format!("{other} n. {} del {data}", r.padded_number()),
    };
    json!({
        "numero": r.padded_number(),
        "anno": r.year,
        "data": data,
        "registro": r.register,
        "riferimento": riferimento,
    })
}

/// The outbox kind of a step's registration in the protocollo.
pub const PROTOCOLLO_KIND: &str = "protocollo";

/// What a meeting's invite takes from outside its context.
struct MeetingFacts<'a> {
    uid: String,
    sequence: u32,
    dtstamp: DateTime<Utc>,
    ambito: &'a str,
    organizer: (String, String),
    attendees: Vec<(String, String)>,
}

/// The meeting a convocation's context describes: `data_seduta` (an instant), optional
/// `durata_minuti` (default 120), `luogo`, `organo` and `ordine_del_giorno` (the description).
fn meeting_from_context(
    context: &Value,
    facts: MeetingFacts<'_>,
) -> Result<Meeting, DispatchError> {
    let text = |name: &str| context.get(name).and_then(Value::as_str).map(str::trim);
    let Some(start_text) = text("data_seduta") else {
        return Err(DispatchError::Permanent(
            "invito di calendario: manca la variabile «data_seduta»".to_owned(),
        ));
    };
    let start = match parse_moment(start_text) {
        Ok(Moment::Instant(at)) => at,
        Ok(Moment::Day(_)) => {
            return Err(DispatchError::Permanent(format!(
                "invito di calendario: «data_seduta» ({start_text}) non ha l'ora"
            )));
        }
        Err(error) => {
            return Err(DispatchError::Permanent(format!(
                "invito di calendario: «data_seduta»: {error}"
            )));
        }
    };
    let minutes = context
        .get("durata_minuti")
        .and_then(Value::as_i64)
        .filter(|minutes| *minutes > 0)
        .unwrap_or(DEFAULT_MEETING_MINUTES);
    let organo = text("organo")
        .filter(|organo| !organo.is_empty())
        .map(str::to_owned)
        .or_else(|| {
            context
                .pointer("/procedura/titolo")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "Seduta".to_owned());
    let description = match context.get("ordine_del_giorno") {
        Some(Value::Array(items)) => {
            let items: Vec<String> = items
                .iter()
                .map(|item| match item {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                })
                .collect();
            agenda_description(&items)
        }
        Some(Value::String(agenda)) => agenda.clone(),
        _ => String::new(),
    };
    Ok(Meeting {
        uid: facts.uid,
        sequence: facts.sequence,
        dtstamp: facts.dtstamp,
        summary: format!("{organo} – {}", facts.ambito),
        description,
        location: text("luogo").unwrap_or_default().to_owned(),
        start,
        end: start + Duration::minutes(minutes),
        organizer: facts.organizer,
        attendees: facts.attendees,
    })
}

/// Sends each person with held deliveries one riepilogo listing them (outbox kind `digest`).
#[derive(Debug, Clone)]
pub struct DigestDispatch {
    service: Service,
    composer: Composer,
}

impl DigestDispatch {
    /// The dispatcher over a service, with `settings`' templates, sender and Ambito.
    pub fn new(service: Service, settings: &MailSettings) -> DigestDispatch {
        DigestDispatch {
            service,
            composer: Composer::new(settings),
        }
    }

    async fn digest(&self, row: &OutboxRow) -> Result<(), DispatchError> {
        let (template, base) = match &row.payload {
            Effect::Notify(plan) => (plan.template.as_str(), plan.context.clone()),
            _ => (DIGEST_TEMPLATE, json!({})),
        };
        let store = self.service.store();
        let held = store.held_deliveries().await.map_err(store_failure)?;
        if held.is_empty() {
            info!("nessun messaggio in attesa: nessun riepilogo");
            return Ok(());
        }
        let mut by_person: BTreeMap<String, Vec<store::DeliveryRow>> = BTreeMap::new();
        for delivery in held {
            let key = delivery
                .person_id
                .clone()
                .unwrap_or_else(|| delivery.recipient_email.clone());
            by_person.entry(key).or_default().push(delivery);
        }
        let mut contexts = BTreeMap::new();
        let now = self.service.now();
        let (mut created, mut first_error) = (0usize, None);
        for (key, deliveries) in by_person {
            let items = self.items(&deliveries, &mut contexts).await?;
            let recipient = self.recipient(&key, &deliveries).await?;
            match self
                .one_digest(row, template, &base, &recipient, items, now)
                .await
            {
                Ok(riepilogo) => {
                    let listed: Vec<i64> = deliveries.iter().map(|delivery| delivery.id).collect();
                    if store
                        .digest_held(&riepilogo, &listed)
                        .await
                        .map_err(store_failure)?
                    {
                        created += 1;
                    }
                }
                Err(error) => {
                    warn!(recipient_domain = %recipient.domain(), error = %error, "riepilogo non composto");
                    first_error.get_or_insert(error);
                }
            }
        }
        info!(riepiloghi = created, "riepiloghi giornalieri creati");
        match first_error {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// The riepilogo's lines for held deliveries; `contexts` caches the context of each
    /// notification (outbox row) read so far.
    async fn items(
        &self,
        deliveries: &[store::DeliveryRow],
        contexts: &mut BTreeMap<i64, Option<Value>>,
    ) -> Result<Vec<Value>, DispatchError> {
        let mut items = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            let context = match contexts.get(&delivery.outbox_id) {
                Some(context) => context.clone(),
                None => {
                    let context = self
                        .service
                        .store()
                        .outbox_row(delivery.outbox_id)
                        .await
                        .map_err(store_failure)?
                        .and_then(|outbox| match outbox.payload {
                            Effect::Notify(plan) => Some(plan.context),
                            _ => None,
                        });
                    contexts.insert(delivery.outbox_id, context.clone());
                    context
                }
            };
            items.push(digest_item(delivery, context.as_ref()));
        }
        Ok(items)
    }

    /// The person of a group of held deliveries, as stored now (or as the deliveries say).
    async fn recipient(
        &self,
        key: &str,
        deliveries: &[store::DeliveryRow],
    ) -> Result<Recipient, DispatchError> {
        let person = match deliveries
            .first()
            .and_then(|delivery| delivery.person_id.as_deref())
        {
            Some(person_id) => self
                .service
                .store()
                .person(person_id)
                .await
                .map_err(store_failure)?,
            None => None,
        };
        Ok(match person {
            Some(person) => Recipient::from_person(person),
            None => {
                let last = deliveries.last();
                Recipient {
                    person_id: last.and_then(|delivery| delivery.person_id.clone()),
                    organisation_id: None,
                    name: last.map_or_else(String::new, |delivery| delivery.recipient_name.clone()),
                    email: last.map_or_else(
                        || key.to_owned(),
                        |delivery| delivery.recipient_email.clone(),
                    ),
                    digest: true,
                }
            }
        })
    }

    async fn one_digest(
        &self,
        row: &OutboxRow,
        template: &str,
        base: &Value,
        recipient: &Recipient,
        items: Vec<Value>,
        now: DateTime<Utc>,
    ) -> Result<NewDelivery, DispatchError> {
        let mut context = self.composer.context_for(base, recipient)?;
        if let Value::Object(map) = &mut context {
            map.insert("voci".to_owned(), Value::Array(items));
            map.entry("data_riepilogo").or_insert_with(|| {
                Value::String(
                    now.with_timezone(&crate::terms::ROME)
                        .date_naive()
                        .format("%Y-%m-%d")
                        .to_string(),
                )
            });
        }
        let key = format!("digest-{}-{}", row.id, recipient.key());
        let email = self
            .composer
            .compose(template, &context, recipient, &key, Channel::Email)?;
        Ok(NewDelivery {
            outbox_id: row.id,
            instance_id: None,
            person_id: recipient.person_id.clone(),
            recipient_email: recipient.email.clone(),
            recipient_name: recipient.name.clone(),
            kind: template.to_owned(),
            urgent: false,
            message_id: email.message_id.clone(),
            email: serde_json::to_value(&email).map_err(|error| {
                DispatchError::Permanent(format!("email non serializzabile: {error}"))
            })?,
            status: DeliveryStatus::Pending,
            at: now,
            channel: crate::definition::Channel::Email,
        })
    }
}

impl Dispatch for DigestDispatch {
    fn dispatch<'a>(&'a self, row: &'a OutboxRow) -> DispatchFuture<'a> {
        Box::pin(
            self.digest(row)
                .instrument(info_span!("digest", outbox = row.id)),
        )
    }
}

/// One line of a riepilogo: the procedure, what happened (the held message's subject), the
/// deadline of a reminder and the link, when there are any.
fn digest_item(delivery: &store::DeliveryRow, context: Option<&Value>) -> Value {
    let procedura = context
        .and_then(|context| context.pointer("/procedura/titolo"))
        .and_then(Value::as_str)
        .map_or_else(|| delivery.kind.clone(), str::to_owned);
    let descrizione = delivery
        .email
        .get("subject")
        .and_then(Value::as_str)
        .map_or_else(|| delivery.kind.clone(), str::to_owned);
    let scadenza = context
        .and_then(|context| context.pointer("/scadenza/data"))
        .and_then(Value::as_str)
        .filter(|text| parse_moment(text).is_ok())
        .map_or(Value::Null, |text| Value::String(text.to_owned()));
    let link = context
        .and_then(|context| {
            ["link", "link_verbale", "link_avviso"]
                .iter()
                .find_map(|name| context.get(*name).and_then(Value::as_str))
        })
        .filter(|link| !link.trim().is_empty())
        .map_or(Value::Null, |link| Value::String(link.to_owned()));
    json!({
        "procedura": procedura,
        "descrizione": descrizione,
        "scadenza": scadenza,
        "link": link,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> MeetingFacts<'static> {
        MeetingFacts {
            uid: "istanza-1@procedo.local".to_owned(),
            sequence: 1,
            dtstamp: DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z")
                .expect("valid")
                .with_timezone(&Utc),
            ambito: "Ambito di Borgo Fiorito",
            organizer: (
                "Ufficio di Piano".to_owned(),
                "udp@ambito.example.it".to_owned(),
            ),
            attendees: vec![("Anna Rossi".to_owned(), "anna@comune.example.it".to_owned())],
        }
    }

    #[test]
    fn a_meeting_takes_its_time_place_and_agenda_from_the_context() {
        let context = json!({
            "organo": "Assemblea dei Sindaci",
            "data_seduta": "2027-01-14T17:00:00+01:00",
            "luogo": "Sala consiliare",
            "ordine_del_giorno": ["Verbale", "Piano di Zona"],
            "durata_minuti": 90,
        });
        let meeting = meeting_from_context(&context, facts()).expect("a meeting");
        assert_eq!(
            meeting.summary,
            "Assemblea dei Sindaci – Ambito di Borgo Fiorito"
        );
        assert_eq!(meeting.start.to_rfc3339(), "2027-01-14T17:00:00+01:00");
        assert_eq!(meeting.end - meeting.start, Duration::minutes(90));
        assert_eq!(
            meeting.description,
            "Ordine del giorno:\n1. Verbale\n2. Piano di Zona"
        );
        assert_eq!(meeting.location, "Sala consiliare");
        assert_eq!(meeting.sequence, 1);
    }

    #[test]
    fn a_meeting_without_a_time_is_a_permanent_error_naming_the_variable() {
        for context in [
            json!({}),
            json!({"data_seduta": "2027-01-14"}),
            json!({"data_seduta": "domani"}),
        ] {
            let error = meeting_from_context(&context, facts()).expect_err("no meeting");
            assert!(
                matches!(&error, DispatchError::Permanent(text) if text.contains("data_seduta")),
                "{error}"
            );
        }
    }

    #[test]
    fn a_reminder_deadline_is_written_out_in_italian() {
        let mut map = json!({"scadenza": {"data": "2027-01-14T17:00:00+01:00", "traccia": []}})
            .as_object()
            .cloned()
            .expect("object");
        write_out_deadline(&mut map);
        assert_eq!(
            map["scadenza"]["data"],
            json!("giovedì 14 gennaio 2027, ore 17:00")
        );
        let mut unreadable = json!({"scadenza": {"data": "presto"}})
            .as_object()
            .cloned()
            .expect("object");
        write_out_deadline(&mut unreadable);
        assert_eq!(unreadable["scadenza"]["data"], json!("presto"));
    }
}
