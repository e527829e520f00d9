//! The protocollo's outbox rows:
//! - `protocollo`: a step's `Effect::RegisterProtocol` — an act of a procedure. Its subject is
//!   a template over the step's variables; its recipients are the people of the `to` role
//!   (with their organisations); its document, when the action names a template, is that
//!   message rendered as HTML. Registered once per row (key `outbox:<row>`).
//! - `protocollo_in`: an ETS's application or soccorso answer received through the platform,
//!   registered as incoming with its receipt instant and its documents (key
//!   `domanda:<id>` / `soccorso:<id>`).
//! - `protocol_register`: the daily register job; `protocol_reconcile`: the emergency
//!   register's reconciliation.

use std::sync::Arc;

use handlebars::{Handlebars, handlebars_helper};
use serde_json::{Value, json};
use tracing::{Instrument, info, info_span};

use super::{Error, Protocollo, Request, RequestDocument};
use crate::engine::Effect;
use crate::notify::recipients::{self, Recipient};
use crate::notify::{Templates, data, data_lunga, data_ora};
use crate::scheduler::{Dispatch, DispatchError, DispatchFuture, Scheduler};
use crate::store::{
    self, Correspondent, CorrespondentKind, Direction, DocumentRole, OrganisationKind, OutboxRow,
    PROTOCOL_REGISTER,
};

/// Outbox kind of a step's registration.
pub const PROTOCOLLO_KIND: &str = crate::notify::delivery::PROTOCOLLO_KIND;
/// Outbox kind of an incoming document from the platform.
pub const INCOMING_KIND: &str = "protocollo_in";
/// Outbox kind queued by the `protocol_register` recurring job.
pub const PROTOCOL_REGISTER_KIND: &str = "protocol_register";
/// Outbox kind of the daily job that writes the referti di pubblicazione of the albo.
pub const ALBO_REFERTO_KIND: &str = "albo_referto";
/// Outbox kind of the job that hands acts over to the ente capofila's albo.
pub const ALBO_CAPOFILA_KIND: &str = "albo_capofila";
/// Outbox kind queued by the `protocol_reconcile` recurring job.
pub const PROTOCOL_RECONCILE_KIND: &str = "protocol_reconcile";

handlebars_helper!(data_helper: |input: str| data(input).unwrap_or_else(|_| input.to_owned()));
handlebars_helper!(data_lunga_helper: |input: str| data_lunga(input).unwrap_or_else(|_| input.to_owned()));
handlebars_helper!(data_ora_helper: |input: str| data_ora(input).unwrap_or_else(|_| input.to_owned()));

/// Carries out the protocollo's outbox rows.
pub struct ProtocolloDispatch {
    protocollo: Protocollo,
    templates: Arc<Templates>,
    ambito: String,
    subjects: Handlebars<'static>,
}

impl std::fmt::Debug for ProtocolloDispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtocolloDispatch")
            .field("protocollo", &self.protocollo)
            .finish_non_exhaustive()
    }
}

/// Registers the protocollo's dispatchers on `scheduler`.
#[must_use]
pub fn install(
    scheduler: Scheduler,
    protocollo: &Protocollo,
    mail: &crate::notify::MailSettings,
) -> Scheduler {
    let dispatch: Arc<dyn Dispatch> = Arc::new(ProtocolloDispatch::new(
        protocollo.clone(),
        mail.templates.clone(),
        &mail.ambito,
    ));
    scheduler
        .with_dispatcher(PROTOCOLLO_KIND, dispatch.clone())
        .with_dispatcher(INCOMING_KIND, dispatch.clone())
        .with_dispatcher(PROTOCOL_REGISTER_KIND, dispatch.clone())
        .with_dispatcher(ALBO_REFERTO_KIND, dispatch.clone())
        .with_dispatcher(ALBO_CAPOFILA_KIND, dispatch.clone())
        .with_dispatcher(PROTOCOL_RECONCILE_KIND, dispatch)
}

/// How a failure of the protocollo is retried.
fn failure(error: Error) -> DispatchError {
    match error {
        Error::Store(
            store::Error::Busy | store::Error::Database(_) | store::Error::Conflict { .. },
        )
        | Error::Port(super::PortError::Ambiguous(_) | super::PortError::Unavailable(_))
        | Error::Files { .. } => DispatchError::Transient(error.to_string()),
        other => DispatchError::Permanent(other.to_string()),
    }
}

impl ProtocolloDispatch {
    /// The dispatcher over a protocollo, rendering documents with `templates`.
    pub fn new(
        protocollo: Protocollo,
        templates: Arc<Templates>,
        ambito: &str,
    ) -> ProtocolloDispatch {
        let mut subjects = Handlebars::new();
        subjects.register_escape_fn(handlebars::no_escape);
        subjects.register_helper("data", Box::new(data_helper));
        subjects.register_helper("data_lunga", Box::new(data_lunga_helper));
        subjects.register_helper("data_ora", Box::new(data_ora_helper));
        ProtocolloDispatch {
            protocollo,
            templates,
            ambito: ambito.to_owned(),
            subjects,
        }
    }

    async fn carry_out(&self, row: &OutboxRow) -> Result<(), DispatchError> {
        match row.kind.as_str() {
            PROTOCOL_REGISTER_KIND => {
                let days = self.protocollo.daily_registers().await.map_err(failure)?;
                info!(
                    giorni = days.len(),
                    "registri giornalieri di protocollo prodotti"
                );
                Ok(())
            }
            ALBO_REFERTO_KIND => {
                let today = self
                    .protocollo
                    .service()
                    .now()
                    .with_timezone(&crate::terms::ROME)
                    .date_naive();
                let written = crate::albo::referti(&self.protocollo, today)
                    .await
                    .map_err(failure)?;
                if written > 0 {
                    info!(referti = written, "referti di pubblicazione registrati");
                }
                Ok(())
            }
            ALBO_CAPOFILA_KIND => {
                let today = self
                    .protocollo
                    .service()
                    .now()
                    .with_timezone(&crate::terms::ROME)
                    .date_naive();
                let handed = crate::albo::capofila::hand_over_pending(&self.protocollo, today)
                    .await
                    .map_err(|e| failure(e.into()))?;
                if handed > 0 {
                    info!(atti = handed, "atti consegnati all'albo del capofila");
                }
                Ok(())
            }
            PROTOCOL_RECONCILE_KIND => {
                let reconciled = self.protocollo.reconcile().await.map_err(failure)?;
                if reconciled > 0 {
                    info!(reconciled, "registrazioni di emergenza riconciliate");
                }
                Ok(())
            }
            INCOMING_KIND => match &row.payload {
                Effect::RegisterIncoming {
                    submission_id,
                    soccorso_id,
                } => {
                    register_incoming(&self.protocollo, submission_id, soccorso_id.as_deref())
                        .await
                        .map_err(failure)?;
                    Ok(())
                }
                _ => Err(DispatchError::Permanent(format!(
                    "la riga {} non chiede la registrazione di un documento in entrata",
                    row.id
                ))),
            },
            _ => self.outgoing(row).await,
        }
    }

    /// A step's act.
    async fn outgoing(&self, row: &OutboxRow) -> Result<(), DispatchError> {
        let Effect::RegisterProtocol {
            direction,
            subject,
            context,
            register,
            to,
            document,
            classification,
            organisations,
            ..
        } = &row.payload
        else {
            return Err(DispatchError::Permanent(format!(
                "la riga {} non chiede una registrazione di protocollo",
                row.id
            )));
        };
        let direction = Direction::parse(direction).ok_or_else(|| {
            DispatchError::Permanent(format!(
                "direzione di protocollo «{direction}» sconosciuta (ammesse: entrata, uscita, interno)"
            ))
        })?;
        let subject = self
            .subjects
            .render_template(subject, context)
            .map_err(|error| {
                DispatchError::Permanent(format!(
                    "oggetto di protocollo «{subject}» non componibile: {error}"
                ))
            })?;
        let service = self.protocollo.service();
        let correspondents = match to {
            Some(role) => {
                let who = recipients::Who {
                    role,
                    organisations: organisations.as_deref(),
                    public: false,
                };
                let people = recipients::resolve(service, row.instance_id.as_deref(), &who).await?;
                correspondents(service.store(), &people).await?
            }
            None => Vec::new(),
        };
        let documents = match document {
            Some(template) => {
                let mut ctx = context.clone();
                if let Value::Object(map) = &mut ctx {
                    // A participant's act is addressed to it; others to whom it may concern.
                    let addressee = map
                        .get(crate::definition::validate::PARTICIPANT_CONTEXT)
                        .and_then(|p| p.get("ente"))
                        .and_then(Value::as_str)
                        .unwrap_or("Destinatari in indirizzo")
                        .to_owned();
                    map.insert(
                        "destinatario".to_owned(),
                        json!({ "nome": addressee, "email": "", "risposta": null }),
                    );
                    map.insert("ambito".to_owned(), json!({ "nome": self.ambito }));
                    map.entry("protocollo").or_insert(Value::Null);
                }
                let rendered = self
                    .templates
                    .render(template, &ctx)
                    .map_err(|e| DispatchError::Permanent(e.to_string()))?;
                // The PDF/A copy (ISO 19005-1, level B) is the one to sign (PAdES) outside
                // procedo; the same text as the HTML, dated when the step wrote the act so that
                // a retry renders the same bytes.
                let pdf = crate::notify::pdfa::render(
                    &crate::notify::pdfa::Meta {
                        title: &subject,
                        author: &self.ambito,
                        subject: &rendered.subject,
                        created: row.created_at,
                    },
                    &rendered.text,
                );
                vec![
                    RequestDocument {
                        role: DocumentRole::Primario,
                        name: format!("{template}.html"),
                        media_type: "text/html".to_owned(),
                        content: rendered.html.into_bytes(),
                    },
                    RequestDocument {
                        role: DocumentRole::Allegato,
                        name: format!("{template}.pdf"),
                        media_type: "application/pdf".to_owned(),
                        content: pdf,
                    },
                ]
            }
            None => Vec::new(),
        };
        self.protocollo
            .register(Request {
                register: register
                    .clone()
                    .unwrap_or_else(|| PROTOCOL_REGISTER.to_owned()),
                direction,
                subject,
                correspondents,
                classification: classification.clone(),
                fascicolo: row.instance_id.clone(),
                instance_id: row.instance_id.clone(),
                key: Some(format!("outbox:{}", row.id)),
                sender_reference: None,
                sender_date: None,
                received_at: None,
                channel: "procedura".to_owned(),
                operator: "sistema".to_owned(),
                documents,
            })
            .await
            .map_err(failure)?;
        Ok(())
    }
}

/// The correspondents of recipients: each person with their organisation (a comune or the
/// Ambito as a PA, an ETS as a legal person).
async fn correspondents(
    store: &store::Store,
    people: &[Recipient],
) -> Result<Vec<Correspondent>, DispatchError> {
    let mut out = Vec::with_capacity(people.len());
    for person in people {
        let organisation = match &person.organisation_id {
            Some(id) => store
                .organisation(id)
                .await
                .map_err(recipients::store_failure)?,
            None => None,
        };
        out.push(match organisation {
            Some(org) => Correspondent {
                kind: match org.kind {
                    OrganisationKind::Ets => CorrespondentKind::PersonaGiuridica,
                    OrganisationKind::Comune | OrganisationKind::Ambito => CorrespondentKind::Pa,
                },
                name: org.name,
                codice_fiscale: org.codice_fiscale,
                email: Some(person.email.clone()),
                organisation_id: Some(org.id),
                person_id: person.person_id.clone(),
                referente: Some(person.name.clone()),
            },
            None => Correspondent {
                kind: CorrespondentKind::PersonaFisica,
                name: person.name.clone(),
                codice_fiscale: None,
                email: Some(person.email.clone()),
                organisation_id: None,
                person_id: person.person_id.clone(),
                referente: None,
            },
        });
    }
    Ok(out)
}

/// Registers as incoming an application, or an answer to a soccorso istruttorio, received
/// through the platform: sender, receipt instant (what timeliness is judged on), documents.
pub async fn register_incoming(
    protocollo: &Protocollo,
    submission_id: &str,
    soccorso_id: Option<&str>,
) -> Result<store::ProtocolRegistration, Error> {
    let store = protocollo.service().store();
    let submission = store
        .submission(submission_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("domanda {submission_id}")))?;
    let organisation = store.organisation(&submission.organisation_id).await?;
    let person = store.person(&submission.person_id).await?;
    let instance = store.instance(&submission.instance_id).await?;
    let title = match &instance {
        Some(row) => {
            let title = protocollo
                .service()
                .procedure(&row.definition_id, Some(row.definition_version))
                .await
                .map(|p| p.title.clone())
                .unwrap_or_else(|_| row.definition_id.clone());
            match row.data.variables.get("oggetto").and_then(Value::as_str) {
                Some(oggetto) => format!("{title}: {oggetto}"),
                None => title,
            }
        }
        None => submission.instance_id.clone(),
    };
    let organisation_name = organisation
        .as_ref()
        .map_or_else(|| submission.organisation_id.clone(), |o| o.name.clone());
    let (key, subject, received_at, wanted): (String, String, _, Option<&str>) = match soccorso_id {
        Some(soccorso) => {
            let response = store
                .soccorso_responses(submission_id)
                .await?
                .into_iter()
                .find(|r| r.id == soccorso)
                .ok_or_else(|| Error::NotFound(format!("risposta al soccorso {soccorso}")))?;
            (
                format!("soccorso:{soccorso}"),
                format!("Integrazioni in soccorso istruttorio di {organisation_name} – {title}"),
                response.responded_at,
                Some(soccorso),
            )
        }
        None => (
            format!("domanda:{submission_id}"),
            format!("Domanda di partecipazione di {organisation_name} – {title}"),
            submission.submitted_at,
            None,
        ),
    };
    let mut documents = Vec::new();
    for reference in store.submission_documents(submission_id).await? {
        if reference.soccorso_id.as_deref() != wanted {
            continue;
        }
        let Some(stored) = store
            .submission_document(submission_id, &reference.sha256)
            .await?
        else {
            continue;
        };
        documents.push(RequestDocument {
            role: if documents.is_empty() {
                DocumentRole::Primario
            } else {
                DocumentRole::Allegato
            },
            name: reference.name,
            media_type: stored.media_type,
            content: stored.content,
        });
    }
    let correspondent = Correspondent {
        kind: CorrespondentKind::PersonaGiuridica,
        name: organisation_name,
        codice_fiscale: organisation.as_ref().and_then(|o| o.codice_fiscale.clone()),
        email: person.as_ref().map(|p| p.email.clone()),
        organisation_id: Some(submission.organisation_id.clone()),
        person_id: Some(submission.person_id.clone()),
        referente: person.as_ref().map(|p| p.name.clone()),
    };
    protocollo
        .register(Request {
            register: PROTOCOL_REGISTER.to_owned(),
            direction: Direction::Entrata,
            subject,
            correspondents: vec![correspondent],
            classification: None,
            fascicolo: Some(submission.instance_id.clone()),
            instance_id: Some(submission.instance_id.clone()),
            key: Some(key),
            sender_reference: None,
            sender_date: None,
            received_at: Some(received_at),
            channel: "piattaforma".to_owned(),
            operator: "sistema".to_owned(),
            documents,
        })
        .await
}

impl Dispatch for ProtocolloDispatch {
    fn dispatch<'a>(&'a self, row: &'a OutboxRow) -> DispatchFuture<'a> {
        Box::pin(
            self.carry_out(row)
                .instrument(info_span!("protocollo", outbox = row.id, kind = %row.kind)),
        )
    }
}
