//! What procedo does with each message in its PEC mailbox.
//!
//! - A **receipt** is verified (the provider's signature against the trusted list), linked to
//!   the delivery it is about by `X-Riferimento-Message-ID` (and the `msgid` and recipient in
//!   its `daticert.xml`), and moves that delivery's PEC status. A consegna to a participant
//!   sets the date its terms run from (the notification's `consegna:` variable); a mancata
//!   consegna, a non accettazione or a virus leaves them unstarted and alerts the RUP — one
//!   step of the instance each. Consegne and failures are registered in the protocollo as
//!   incoming documents (the receipt's raw message), as an AOO's manual asks. A receipt with
//!   a broken signature, an unknown Message-ID or another recipient is refused: logged and
//!   kept with the reason, and it changes nothing.
//! - A **transport envelope** (a message someone sent to the office by PEC) is verified,
//!   registered in the protocollo as incoming with its delivery instant, and matched: sender's
//!   PEC address → organisation, `rif. <pratica>` in the subject → procedure. An application
//!   joins the avviso judged on the delivery instant (a minute late is late, however soon it
//!   is read); what cannot be matched waits for the office (`da_abbinare`).
//!
//! The raw message is kept in the file store by its SHA-256, whatever becomes of it. Every
//! step is idempotent (the instance's step by the key `pec:<sha256>`, the receipt and
//! the envelope by their SHA-256, the registration by its key), so a message read again after
//! a crash changes nothing twice; it is marked read in the mailbox only once handled.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;
use tracing::{info, warn};

use super::daticert::Tipo;
use super::mailbox::Mailbox;
use super::message::{PecMessage, normalize_id, parse};
use super::{Error, PecStatus, TrustList};
use crate::engine::consegna::{ConsegnaRecord, Receipt};
use crate::engine::{Actor, Effect};
use crate::protocollo::{Protocollo, Request, RequestDocument};
use crate::service::{self, Group, Service};
use crate::store::{
    self, AttachedDocument, Correspondent, CorrespondentKind, DeliveryRow, Direction, DocumentRole,
    NewPecIncoming, NewPecReceipt, NewSubmission, PROTOCOL_REGISTER, ReceiptRecorded, Submitted,
};
use crate::terms::ROME;

/// Environment variable naming the trusted providers' file (PEM bundle or AgID's XML list).
pub const TRUST_VARIABLE: &str = "PROCEDO_PEC_TRUST";

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A receipt linked to its delivery; the status it moved to, if it moved.
    Receipt {
        /// The delivery.
        delivery: i64,
        /// Its new status.
        status: Option<PecStatus>,
    },
    /// A receipt refused, with the reason (logged and kept).
    Refused(String),
    /// A message received by PEC: `domanda`, `domanda_tardiva`, `da_abbinare`, `rifiutata`.
    Incoming {
        /// What became of it.
        outcome: String,
        /// Why, when it was not accepted.
        reason: Option<String>,
    },
    /// An ordinary email in the PEC mailbox: left for the office.
    NotPec,
}

/// Handles the messages of the PEC mailbox.
#[derive(Clone)]
pub struct Ingest {
    service: Service,
    trust: Arc<TrustList>,
    protocollo: Option<Protocollo>,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("trusted", &self.trust.len())
            .field("protocollo", &self.protocollo.is_some())
            .finish()
    }
}

/// A failure worth retrying: the message stays unread.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The store or the service failed.
    #[error(transparent)]
    Service(#[from] service::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// The protocollo failed.
    #[error(transparent)]
    Protocollo(#[from] crate::protocollo::Error),
    /// The mailbox failed.
    #[error(transparent)]
    Mailbox(#[from] Error),
    /// The file store failed.
    #[error("archivio dei file: {0}")]
    Files(#[from] std::io::Error),
}

impl Ingest {
    /// Over `service`, trusting `trust`, registering in `protocollo` when given.
    pub fn new(service: Service, trust: TrustList, protocollo: Option<Protocollo>) -> Ingest {
        Ingest {
            service,
            trust: Arc::new(trust),
            protocollo,
        }
    }

    /// The trusted list from the file named by `PROCEDO_PEC_TRUST`.
    pub fn trust_from_env() -> Result<TrustList, Error> {
        let path = std::env::var(TRUST_VARIABLE).map_err(|_| {
            Error::Trust(format!(
                "manca {TRUST_VARIABLE} (il file dei gestori PEC fidati)"
            ))
        })?;
        let text =
            std::fs::read_to_string(&path).map_err(|e| Error::Trust(format!("{path}: {e}")))?;
        TrustList::parse(&text).map_err(|e| Error::Trust(format!("{path}: {e}")))
    }

    /// Reads the unread messages of `mailbox`, handles each, and marks read those handled.
    /// A message whose handling failed transiently stays unread for the next poll.
    pub async fn poll(&self, mailbox: &Mailbox) -> Result<Vec<Outcome>, IngestError> {
        let unread = mailbox.unread().await?;
        let mut done = Vec::new();
        let mut outcomes = Vec::new();
        let mut first_error = None;
        for item in unread {
            match self.message(&item.raw, item.delivered_at).await {
                Ok(outcome) => {
                    outcomes.push(outcome);
                    done.push(item);
                }
                Err(error) => {
                    warn!(error = %error, "messaggio PEC non gestito: resta da leggere");
                    first_error.get_or_insert(error);
                }
            }
        }
        mailbox.mark_read(&done).await?;
        match first_error {
            Some(error) if outcomes.is_empty() => Err(error),
            _ => Ok(outcomes),
        }
    }

    /// Handles one raw message delivered to the mailbox at `delivered_at`.
    pub async fn message(
        &self,
        raw: &[u8],
        delivered_at: DateTime<Utc>,
    ) -> Result<Outcome, IngestError> {
        let sha256 = hex::encode(ring::digest::digest(&ring::digest::SHA256, raw));
        let now = self.service.now();
        // Every message is kept as it came, by its SHA-256 (the key of its row): receipts,
        // envelopes, and what was refused.
        if let Some(protocollo) = &self.protocollo {
            protocollo.files().put(raw).await?;
        }
        match parse(raw) {
            Err(Error::NotPec) => {
                info!("messaggio ordinario nella casella PEC: lasciato all'ufficio");
                Ok(Outcome::NotPec)
            }
            Err(error) => {
                let reason = error.to_string();
                warn!(reason = %reason, "messaggio PEC illeggibile: rifiutato");
                self.refuse(
                    NewPecReceipt {
                        sha256,
                        read_at: now,
                        delivery_id: None,
                        tipo: None,
                        provider_at: None,
                        identificativo: None,
                        gestore: None,
                        riferimento: None,
                        destinatario: None,
                        errore: None,
                        accepted: false,
                        reason: None,
                        signer: None,
                    },
                    reason,
                )
                .await
            }
            Ok(m) if m.is_receipt() => self.receipt(raw, sha256, m, delivered_at, now).await,
            Ok(m) => self.incoming(raw, sha256, m, delivered_at, now).await,
        }
    }

    async fn refuse(&self, mut row: NewPecReceipt, reason: String) -> Result<Outcome, IngestError> {
        warn!(reason = %reason, tipo = ?row.tipo, "ricevuta PEC rifiutata: nessun effetto");
        row.accepted = false;
        row.reason = Some(reason.clone());
        row.delivery_id = None;
        self.service.store().record_pec_receipt(&row, None).await?;
        Ok(Outcome::Refused(reason))
    }

    async fn receipt(
        &self,
        raw: &[u8],
        sha256: String,
        m: PecMessage,
        delivered_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Outcome, IngestError> {
        let d = &m.daticert;
        let mut row = NewPecReceipt {
            sha256: sha256.clone(),
            read_at: now,
            delivery_id: None,
            tipo: Some(m.tipo.as_str().to_owned()),
            provider_at: Some(d.data.with_timezone(&Utc)),
            identificativo: Some(d.identificativo.clone()),
            gestore: Some(d.gestore.clone()),
            riferimento: m.riferimento.clone(),
            destinatario: d.consegna.clone(),
            errore: d.errore_esteso.clone(),
            accepted: false,
            reason: None,
            signer: None,
        };
        match m.verify(&self.trust) {
            Ok(verified) => row.signer = Some(verified.signer),
            Err(error) => return self.refuse(row, error.to_string()).await,
        }
        let Some(riferimento) = m.riferimento.clone() else {
            return self
                .refuse(row, "manca X-Riferimento-Message-ID".to_owned())
                .await;
        };
        let store = self.service.store();
        let Some(delivery) = store.delivery_by_message_id(&riferimento).await? else {
            return self
                .refuse(
                    row,
                    format!("Message-ID {riferimento} sconosciuto: procedo non ha inviato quel messaggio"),
                )
                .await;
        };
        if delivery.channel != crate::definition::Channel::Pec {
            return self
                .refuse(
                    row,
                    format!("il messaggio {riferimento} non è stato inviato per PEC"),
                )
                .await;
        }
        if let Some(msgid) = &d.msgid
            && normalize_id(msgid) != normalize_id(&riferimento)
        {
            return self
                .refuse(row, "daticert.xml cita un altro messaggio".to_owned())
                .await;
        }
        if let Some(recipient) = &d.consegna
            && !recipient
                .trim()
                .eq_ignore_ascii_case(delivery.recipient_email.trim())
        {
            return self
                .refuse(row, "la ricevuta riguarda un altro destinatario".to_owned())
                .await;
        }
        row.delivery_id = Some(delivery.id);
        row.accepted = true;
        let next = delivery
            .pec_status
            .unwrap_or(PecStatus::Inviata)
            .after(m.tipo);
        if let Some(status) = next
            && (status == PecStatus::Consegnata || status.is_failure())
        {
            self.participant_effect(&delivery, status, &m, &sha256)
                .await?;
        }
        let recorded = store.record_pec_receipt(&row, next).await?;
        if matches!(
            m.tipo,
            Tipo::AvvenutaConsegna
                | Tipo::ErroreConsegna
                | Tipo::NonAccettazione
                | Tipo::RilevazioneVirus
        ) {
            self.register_receipt(raw, &sha256, &m, &delivery, delivered_at)
                .await?;
        }
        let status = match recorded {
            ReceiptRecorded::AlreadyRead => None,
            ReceiptRecorded::Recorded(status) => status,
        };
        info!(
            delivery = delivery.id,
            tipo = m.tipo.as_str(),
            status = ?status.map(PecStatus::as_str),
            "ricevuta PEC"
        );
        if status.is_some_and(PecStatus::is_failure) {
            warn!(delivery = delivery.id, recipient_domain = %delivery.recipient_domain(), "PEC non consegnata: il RUP è avvisato");
        }
        Ok(Outcome::Receipt {
            delivery: delivery.id,
            status,
        })
    }

    /// The consegna or failure of a PEC to a participant, as a step of its instance.
    async fn participant_effect(
        &self,
        delivery: &DeliveryRow,
        status: PecStatus,
        m: &PecMessage,
        sha256: &str,
    ) -> Result<(), IngestError> {
        let Some(instance_id) = delivery.instance_id.clone() else {
            return Ok(());
        };
        let Some(outbox) = self.service.store().outbox_row(delivery.outbox_id).await? else {
            return Ok(());
        };
        let Effect::Notify(plan) = outbox.payload else {
            return Ok(());
        };
        let Some(participant) = plan.participant.clone() else {
            if status.is_failure() {
                warn!(
                    delivery = delivery.id,
                    "PEC non consegnata (nessun partecipante): stato visibile in procedo mail deliveries"
                );
            }
            return Ok(());
        };
        let at = m.daticert.data.with_timezone(&Utc);
        let receipt = Receipt {
            participant,
            variable: plan.consegna.clone(),
            record: ConsegnaRecord {
                message: delivery.kind.clone(),
                status: status.as_str().to_owned(),
                at,
                day: at.with_timezone(&ROME).date_naive(),
                receipt: m.daticert.citation(),
                recipient: delivery.recipient_email.clone(),
                reason: m.daticert.errore_esteso.clone(),
            },
        };
        let payload = json!({
            "ricevuta": m.daticert.identificativo,
            "tipo": m.tipo.as_str(),
            "consegna": delivery.id,
        });
        let key = format!("pec:{sha256}");
        let result = self
            .service
            .record_step(
                &instance_id,
                &Actor::system(),
                &payload,
                Some(&key),
                move |p, row, now| {
                    crate::engine::consegna::record(p, &row.snapshot(), &receipt, now)
                },
            )
            .await;
        match result {
            Ok(_) => Ok(()),
            // The participant or the procedure is gone (withdrawn, concluded): the receipt
            // still counts for the delivery's status.
            Err(service::Error::Engine(error)) => {
                warn!(error = %error, "ricevuta PEC senza effetto sul partecipante");
                Ok(())
            }
            Err(error) => Err(error.into()),
        }
    }

    async fn register_receipt(
        &self,
        raw: &[u8],
        sha256: &str,
        m: &PecMessage,
        delivery: &DeliveryRow,
        delivered_at: DateTime<Utc>,
    ) -> Result<(), IngestError> {
        let Some(protocollo) = &self.protocollo else {
            return Ok(());
        };
        let d = &m.daticert;
        let mut description = d.tipo.description().to_owned();
        if let Some(first) = description.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        protocollo
            .register(Request {
                register: PROTOCOL_REGISTER.to_owned(),
                direction: Direction::Entrata,
                subject: format!(
                    "{description} – {} – {}",
                    d.oggetto, delivery.recipient_name
                ),
                correspondents: vec![Correspondent {
                    kind: CorrespondentKind::PersonaGiuridica,
                    name: d.gestore.clone(),
                    codice_fiscale: None,
                    email: None,
                    organisation_id: None,
                    person_id: None,
                    referente: None,
                }],
                classification: None,
                fascicolo: delivery.instance_id.clone(),
                instance_id: delivery.instance_id.clone(),
                key: Some(format!("pec:{sha256}")),
                sender_reference: Some(d.identificativo.clone()),
                sender_date: Some(d.data.date_naive()),
                received_at: Some(delivered_at),
                channel: "PEC".to_owned(),
                operator: "procedo".to_owned(),
                documents: vec![RequestDocument {
                    role: DocumentRole::Primario,
                    name: "ricevuta.eml".to_owned(),
                    media_type: "message/rfc822".to_owned(),
                    content: raw.to_vec(),
                }],
            })
            .await?;
        Ok(())
    }

    async fn incoming(
        &self,
        raw: &[u8],
        sha256: String,
        m: PecMessage,
        delivered_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Outcome, IngestError> {
        let d = &m.daticert;
        let store = self.service.store();
        let mut row = NewPecIncoming {
            sha256: sha256.clone(),
            read_at: now,
            delivered_at,
            mittente: d.mittente.clone(),
            oggetto: d.oggetto.clone(),
            identificativo: Some(d.identificativo.clone()),
            gestore: Some(d.gestore.clone()),
            organisation_id: None,
            instance_id: None,
            outcome: "rifiutata".to_owned(),
            reason: None,
            protocol_key: None,
        };
        if let Err(error) = m.verify(&self.trust) {
            let reason = error.to_string();
            warn!(reason = %reason, "busta PEC rifiutata: nessun effetto");
            row.reason = Some(reason.clone());
            store.record_pec_incoming(&row).await?;
            return Ok(Outcome::Incoming {
                outcome: row.outcome,
                reason: Some(reason),
            });
        }
        let organisation = store.organisation_by_pec(&d.mittente).await?;
        let instance = match reference(&d.oggetto) {
            Some(id) => store.instance(&id).await?,
            None => None,
        };
        row.organisation_id = organisation.as_ref().map(|o| o.id.clone());
        row.instance_id = instance.as_ref().map(|i| i.id.clone());
        let original = m.original.clone().unwrap_or_default();
        // Read again after a crash: what the first reading created is there, under the id
        // derived from the message; only its registration may be missing.
        let derived = uuid_of(&sha256);
        if let Some(done) = self
            .already_applied(&derived, organisation.as_ref(), instance.as_ref())
            .await?
        {
            row.outcome = done.0.into();
            row.protocol_key = Some(done.1);
            store.record_pec_incoming(&row).await?;
            return Ok(Outcome::Incoming {
                outcome: row.outcome,
                reason: None,
            });
        }
        let mut registered_by_submission = false;
        match (&organisation, &instance) {
            (Some(org), Some(inst)) => {
                let person = store
                    .people_with_role(Some(&org.id), "ets")
                    .await?
                    .into_iter()
                    .next();
                match person {
                    None => {
                        row.outcome = "da_abbinare".into();
                        row.reason =
                            Some(format!("{} non ha un rappresentante in procedo", org.name));
                    }
                    Some(person)
                        if active_application(store, &inst.id, &org.id)
                            .await?
                            .is_some() =>
                    {
                        // Its application is in: this is an answer (integrazioni) to its
                        // soccorso istruttorio, judged on the delivery instant.
                        let submission = active_application(store, &inst.id, &org.id)
                            .await?
                            .unwrap_or_default();
                        let answer = store::NewSoccorsoResponse {
                            id: uuid_of(&sha256),
                            submission_id: submission.clone(),
                            person_id: person.id.clone(),
                            note: Some(format!(
                                "Pervenute via PEC da {} (identificativo {})",
                                d.mittente, d.identificativo
                            )),
                            documents: documents_of(&original),
                            at: delivered_at,
                        };
                        let actor = Actor {
                            id: person.id.clone(),
                            role: "ets".into(),
                        };
                        match self
                            .service
                            .answer_soccorso(&answer, &inst.id, &actor)
                            .await
                        {
                            Ok(_) => {
                                row.outcome = "integrazioni".into();
                                row.protocol_key = Some(format!("soccorso:{}", answer.id));
                                if let Some(protocollo) = &self.protocollo {
                                    crate::protocollo::dispatch::register_incoming(
                                        protocollo,
                                        &submission,
                                        Some(&answer.id),
                                    )
                                    .await?;
                                }
                                registered_by_submission = true;
                            }
                            Err(service::Error::Engine(error)) => {
                                row.outcome = "da_abbinare".into();
                                row.reason = Some(error.to_string());
                            }
                            Err(service::Error::Store(store::Error::AlreadyExists { .. })) => {
                                row.outcome = "integrazioni".into();
                                registered_by_submission = true;
                            }
                            Err(error) => return Err(error.into()),
                        }
                    }
                    Some(person) => {
                        let new = NewSubmission {
                            id: uuid_of(&sha256),
                            instance_id: inst.id.clone(),
                            organisation_id: org.id.clone(),
                            person_id: person.id.clone(),
                            note: Some(format!(
                                "Pervenuta via PEC da {} (identificativo {}), consegnata il {}",
                                d.mittente,
                                d.identificativo,
                                delivered_at
                                    .with_timezone(&ROME)
                                    .format("%d/%m/%Y alle %H:%M:%S")
                            )),
                            documents: documents_of(&original),
                            at: delivered_at,
                        };
                        let actor = Actor {
                            id: person.id.clone(),
                            role: "ets".into(),
                        };
                        match self
                            .service
                            .submit(
                                &new,
                                &Group {
                                    members: Vec::new(),
                                },
                                &actor,
                            )
                            .await
                        {
                            Ok(Submitted::Created(_)) => {
                                row.outcome = "domanda".into();
                                row.protocol_key = Some(format!("domanda:{}", new.id));
                                if let Some(protocollo) = &self.protocollo {
                                    crate::protocollo::dispatch::register_incoming(
                                        protocollo, &new.id, None,
                                    )
                                    .await?;
                                }
                                registered_by_submission = true;
                            }
                            Ok(Submitted::AlreadyActive(_)) => {
                                row.outcome = "da_abbinare".into();
                                row.reason = Some("l'ente ha già una domanda attiva".into());
                            }
                            Err(service::Error::Engine(
                                error @ crate::engine::Error::SubmissionsClosed { .. },
                            )) => {
                                row.outcome = "domanda_tardiva".into();
                                row.reason = Some(error.to_string());
                            }
                            Err(service::Error::Engine(error)) => {
                                row.outcome = "da_abbinare".into();
                                row.reason = Some(error.to_string());
                            }
                            Err(error) => return Err(error.into()),
                        }
                    }
                }
            }
            (None, _) => {
                row.outcome = "da_abbinare".into();
                row.reason = Some(format!("mittente {} non registrato in procedo", d.mittente));
            }
            (Some(_), None) => {
                row.outcome = "da_abbinare".into();
                row.reason = Some("nessuna pratica citata nell'oggetto (rif. <pratica>)".into());
            }
        }
        if !registered_by_submission && let Some(protocollo) = &self.protocollo {
            let key = format!("pec:{sha256}");
            protocollo
                .register(Request {
                    register: PROTOCOL_REGISTER.to_owned(),
                    direction: Direction::Entrata,
                    subject: d.oggetto.clone(),
                    correspondents: vec![Correspondent {
                        kind: CorrespondentKind::PersonaGiuridica,
                        name: organisation
                            .as_ref()
                            .map_or_else(|| d.mittente.clone(), |o| o.name.clone()),
                        codice_fiscale: organisation
                            .as_ref()
                            .and_then(|o| o.codice_fiscale.clone()),
                        email: Some(d.mittente.clone()),
                        organisation_id: organisation.as_ref().map(|o| o.id.clone()),
                        person_id: None,
                        referente: None,
                    }],
                    classification: None,
                    fascicolo: instance.as_ref().map(|i| i.id.clone()),
                    instance_id: instance.as_ref().map(|i| i.id.clone()),
                    key: Some(key.clone()),
                    sender_reference: Some(d.identificativo.clone()),
                    sender_date: Some(d.data.date_naive()),
                    received_at: Some(delivered_at),
                    channel: "PEC".to_owned(),
                    operator: "procedo".to_owned(),
                    documents: vec![RequestDocument {
                        role: DocumentRole::Primario,
                        name: "postacert.eml".to_owned(),
                        media_type: "message/rfc822".to_owned(),
                        content: if original.is_empty() {
                            raw.to_vec()
                        } else {
                            original.clone()
                        },
                    }],
                })
                .await?;
            row.protocol_key = Some(key);
        }
        store.record_pec_incoming(&row).await?;
        info!(outcome = %row.outcome, "messaggio PEC ricevuto");
        Ok(Outcome::Incoming {
            outcome: row.outcome,
            reason: row.reason,
        })
    }
}

impl Ingest {
    /// What an earlier reading of the same message created (an application, or an answer to
    /// a soccorso, with the id `derived`), registered now if it was not: (outcome, key).
    async fn already_applied(
        &self,
        derived: &str,
        organisation: Option<&store::OrganisationRow>,
        instance: Option<&store::InstanceRow>,
    ) -> Result<Option<(&'static str, String)>, IngestError> {
        let store = self.service.store();
        if store.submission(derived).await?.is_some() {
            if let Some(protocollo) = &self.protocollo {
                crate::protocollo::dispatch::register_incoming(protocollo, derived, None).await?;
            }
            return Ok(Some(("domanda", format!("domanda:{derived}"))));
        }
        let (Some(org), Some(inst)) = (organisation, instance) else {
            return Ok(None);
        };
        let Some(submission) = active_application(store, &inst.id, &org.id).await? else {
            return Ok(None);
        };
        if store
            .soccorso_responses(&submission)
            .await?
            .iter()
            .any(|r| r.id == derived)
        {
            if let Some(protocollo) = &self.protocollo {
                crate::protocollo::dispatch::register_incoming(
                    protocollo,
                    &submission,
                    Some(derived),
                )
                .await?;
            }
            return Ok(Some(("integrazioni", format!("soccorso:{derived}"))));
        }
        Ok(None)
    }
}

/// The active application of an organisation to an instance, if any.
async fn active_application(
    store: &store::Store,
    instance_id: &str,
    organisation_id: &str,
) -> Result<Option<String>, store::Error> {
    Ok(store
        .submissions(&store::SubmissionFilter {
            instance_id: Some(instance_id.to_owned()),
            organisation_id: Some(organisation_id.to_owned()),
        })
        .await?
        .into_iter()
        .find(|s| s.status == store::SubmissionStatus::Submitted)
        .map(|s| s.id))
}

/// The pratica a subject cites: `rif. <id>` (the reference the avviso asks senders to write).
pub fn reference(subject: &str) -> Option<String> {
    let lower = subject.to_lowercase();
    let at = lower.find("rif.")?;
    let rest = subject.get(at + 4..)?.trim_start();
    let id: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    (!id.is_empty()).then_some(id)
}

/// A stable application id for a message: the same envelope read twice is one application.
fn uuid_of(sha256: &str) -> String {
    let h = sha256.as_bytes();
    let part = |a: usize, b: usize| {
        String::from_utf8_lossy(&h[a.min(h.len())..b.min(h.len())]).into_owned()
    };
    format!(
        "{}-{}-{}-{}-{}",
        part(0, 8),
        part(8, 12),
        part(12, 16),
        part(16, 20),
        part(20, 32)
    )
}

/// The attachments of the original message, and the message itself, as the application's
/// documents.
fn documents_of(original: &[u8]) -> Vec<AttachedDocument> {
    let mut out = Vec::new();
    if let Some(message) = mail_parser::MessageParser::default().parse(original) {
        use mail_parser::MimeHeaders as _;
        for part in message.attachments() {
            let content = part.contents().to_vec();
            let media_type = part.content_type().map_or_else(
                || "application/octet-stream".to_owned(),
                |ct| format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("octet-stream")),
            );
            out.push(AttachedDocument {
                name: part.attachment_name().unwrap_or("allegato").to_owned(),
                media_type,
                sha256: hex::encode(ring::digest::digest(&ring::digest::SHA256, &content)),
                content,
            });
        }
    }
    if !original.is_empty() {
        out.push(AttachedDocument {
            name: "messaggio_pec.eml".to_owned(),
            media_type: "message/rfc822".to_owned(),
            sha256: hex::encode(ring::digest::digest(&ring::digest::SHA256, original)),
            content: original.to_vec(),
        });
    }
    out
}

/// Environment variable with the seconds between two reads of the PEC mailbox (default 60).
pub const POLL_VARIABLE: &str = "PROCEDO_PEC_POLL_SECONDS";

/// The PEC mailbox reader the environment configures: `PROCEDO_PEC_IMAP_URL` or
/// `PROCEDO_PEC_MAILDIR`, with `PROCEDO_PEC_TRUST` (required then). `Ok(None)` when no
/// mailbox is configured.
pub fn from_env(
    service: &Service,
    protocollo: Option<Protocollo>,
) -> Result<Option<(Ingest, Mailbox, std::time::Duration)>, Error> {
    let Some(mailbox) = Mailbox::from_env()? else {
        return Ok(None);
    };
    let trust = Ingest::trust_from_env()?;
    let every = match std::env::var(POLL_VARIABLE) {
        Ok(text) => std::time::Duration::from_secs(text.trim().parse().map_err(|_| {
            Error::Mailbox(format!(
                "{POLL_VARIABLE} deve essere un numero di secondi, non «{text}»"
            ))
        })?),
        Err(_) => std::time::Duration::from_secs(60),
    };
    Ok(Some((
        Ingest::new(service.clone(), trust, protocollo),
        mailbox,
        every,
    )))
}

/// Reads the mailbox every `every` until `shutdown` completes. A failed read is logged and
/// tried again at the next round; nothing is lost (unread messages stay unread).
pub fn spawn_poller(
    ingest: Ingest,
    mailbox: Mailbox,
    every: std::time::Duration,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    use tracing::Instrument as _;
    let span = tracing::info_span!("pec", mailbox = %mailbox.describe());
    tokio::spawn(
        async move {
            info!("lettura della casella PEC avviata");
            let mut shutdown = std::pin::pin!(shutdown);
            loop {
                match ingest.poll(&mailbox).await {
                    Ok(read) if !read.is_empty() => info!(messaggi = read.len(), "casella PEC letta"),
                    Ok(_) => {}
                    Err(error) => warn!(error = %error, "lettura della casella PEC non riuscita: nuovo tentativo al prossimo giro"),
                }
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(every) => {}
                }
            }
            info!("lettura della casella PEC fermata");
        }
        .instrument(span),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_cites_its_pratica() {
        assert_eq!(
            reference("Domanda di partecipazione – rif. 3f2a-99 – Coop Aurora").as_deref(),
            Some("3f2a-99")
        );
        assert_eq!(reference("RIF. abc"), Some("abc".to_owned()));
        assert_eq!(reference("Domanda"), None);
        assert_eq!(reference("rif. "), None);
        assert_eq!(uuid_of(&"ab".repeat(32)).len(), 36);
    }
}
