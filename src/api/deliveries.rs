//! Deliveries and the outbox over GraphQL: per instance and per recipient, the status, the
//! attempts, the last error and who holds the lease; a failed delivery re-queued (the same
//! email, the same Message-ID, attempts counted anew, the action in the audit log); and a
//! subscription that reports each delivery as it ends failed. Staff read them (Ufficio di
//! Piano, RUP, auditor) and the amministratore; the Ufficio di Piano and the amministratore
//! re-queue.

use std::time::Duration as StdDuration;

use async_graphql::futures_util::Stream;
use async_graphql::futures_util::stream;
use async_graphql::{Context, Enum, ID, Object, SimpleObject, Subscription};
use chrono::{DateTime, Utc};

use super::context::{caller, shared};
use super::error::ApiError;
use super::policy::{Subject, authorize};
use crate::store::{
    AdminWrite, DeliveryFilter, DeliveryRow, DeliveryStatus, NewAudit, OutboxRow, OutboxStatus,
};

/// The most rows one query returns.
const MAX_ROWS: usize = 500;
/// How often the failure subscription looks for new failures.
const WATCH_EVERY: StdDuration = StdDuration::from_millis(500);

/// Where a delivery is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub(crate) enum DeliveryState {
    /// To be sent (or being sent).
    Pending,
    /// Held for the recipient's daily digest.
    Held,
    /// Listed in a digest.
    Digested,
    /// Accepted by the mail server.
    Sent,
    /// Refused, or given up after the last attempt.
    Failed,
}

impl From<DeliveryStatus> for DeliveryState {
    fn from(s: DeliveryStatus) -> Self {
        match s {
            DeliveryStatus::Pending => DeliveryState::Pending,
            DeliveryStatus::Held => DeliveryState::Held,
            DeliveryStatus::Digested => DeliveryState::Digested,
            DeliveryStatus::Sent => DeliveryState::Sent,
            DeliveryStatus::Failed => DeliveryState::Failed,
        }
    }
}

impl From<DeliveryState> for DeliveryStatus {
    fn from(s: DeliveryState) -> Self {
        match s {
            DeliveryState::Pending => DeliveryStatus::Pending,
            DeliveryState::Held => DeliveryStatus::Held,
            DeliveryState::Digested => DeliveryStatus::Digested,
            DeliveryState::Sent => DeliveryStatus::Sent,
            DeliveryState::Failed => DeliveryStatus::Failed,
        }
    }
}

/// One message to one recipient.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct Delivery {
    /// Id (to re-queue it).
    pub id: ID,
    /// The outbox row it comes from.
    pub outbox_id: ID,
    /// The instance it is about.
    pub instance_id: Option<ID>,
    /// The person it is for.
    pub person_id: Option<ID>,
    /// The recipient's name.
    pub recipient_name: String,
    /// The recipient's address.
    pub recipient_email: String,
    /// The message kind (template).
    pub kind: String,
    /// Where it is.
    pub status: DeliveryState,
    /// Attempts so far.
    pub attempts: u32,
    /// Not before.
    pub next_attempt_at: DateTime<Utc>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// The SMTP code of the last failure.
    pub last_code: Option<u16>,
    /// What the server answered when it accepted it.
    pub server_answer: Option<String>,
    /// The worker holding (or that last held) its lease.
    pub claimed_by: Option<String>,
    /// Until when.
    pub lease_until: Option<DateTime<Utc>>,
    /// The Message-ID (the same on every attempt).
    pub message_id: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When the server accepted it.
    pub sent_at: Option<DateTime<Utc>>,
    /// `email` or `pec`.
    pub channel: String,
    /// For PEC: where the provider's receipts say it is (`inviata`, `accettata`,
    /// `consegnata`, `preavviso_mancata_consegna`, `mancata_consegna`…).
    pub pec_status: Option<String>,
    /// For PEC: the provider's date of the receipt that set the status (the consegna's is
    /// the legal date).
    pub pec_at: Option<DateTime<Utc>>,
}

/// A PEC receipt read from the mailbox.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct PecReceipt {
    /// `accettazione`, `avvenuta-consegna`, `errore-consegna`…
    pub tipo: Option<String>,
    /// The provider's date.
    pub provider_at: Option<DateTime<Utc>>,
    /// The provider's identifier.
    pub identificativo: Option<String>,
    /// The provider.
    pub gestore: Option<String>,
    /// The provider's explanation of an error.
    pub errore: Option<String>,
    /// Verified and linked; false when refused.
    pub accepted: bool,
    /// Why it was refused.
    pub reason: Option<String>,
    /// When procedo read it.
    pub read_at: DateTime<Utc>,
}

impl From<crate::store::PecReceiptRow> for PecReceipt {
    fn from(r: crate::store::PecReceiptRow) -> Self {
        PecReceipt {
            tipo: r.tipo,
            provider_at: r.provider_at,
            identificativo: r.identificativo,
            gestore: r.gestore,
            errore: r.errore,
            accepted: r.accepted,
            reason: r.reason,
            read_at: r.read_at,
        }
    }
}

/// A message received by PEC and what became of it.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct PecIncoming {
    /// The sender's PEC address.
    pub mittente: String,
    /// The subject.
    pub oggetto: String,
    /// When it was delivered to the office's mailbox: what timeliness is judged on.
    pub delivered_at: DateTime<Utc>,
    /// `domanda`, `domanda_tardiva`, `da_abbinare`, `rifiutata`.
    pub outcome: String,
    /// Why it was not accepted.
    pub reason: Option<String>,
    /// The organisation it was matched to.
    pub organisation_id: Option<ID>,
    /// The procedure it was matched to.
    pub instance_id: Option<ID>,
    /// The provider's identifier.
    pub identificativo: Option<String>,
}

impl From<crate::store::PecIncomingRow> for PecIncoming {
    fn from(r: crate::store::PecIncomingRow) -> Self {
        PecIncoming {
            mittente: r.mittente,
            oggetto: r.oggetto,
            delivered_at: r.delivered_at,
            outcome: r.outcome,
            reason: r.reason,
            organisation_id: r.organisation_id.map(ID),
            instance_id: r.instance_id.map(ID),
            identificativo: r.identificativo,
        }
    }
}

impl From<DeliveryRow> for Delivery {
    fn from(d: DeliveryRow) -> Self {
        Delivery {
            id: ID(d.id.to_string()),
            outbox_id: ID(d.outbox_id.to_string()),
            instance_id: d.instance_id.map(ID),
            person_id: d.person_id.map(ID),
            recipient_name: d.recipient_name,
            recipient_email: d.recipient_email,
            kind: d.kind,
            status: d.status.into(),
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_error: d.last_error,
            last_code: d.last_code,
            server_answer: d.server_answer,
            claimed_by: d.claimed_by,
            lease_until: d.lease_until,
            message_id: d.message_id,
            created_at: d.created_at,
            sent_at: d.sent_at,
            channel: match d.channel {
                crate::definition::Channel::Email => "email".to_owned(),
                crate::definition::Channel::Pec => "pec".to_owned(),
            },
            pec_status: d.pec_status.map(|s| s.as_str().to_owned()),
            pec_at: d.pec_at,
        }
    }
}

/// A side effect waiting in (or done from) the outbox.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct OutboxEntry {
    /// Id.
    pub id: ID,
    /// The instance whose step queued it.
    pub instance_id: Option<ID>,
    /// What it does (`notify`, `protocollo`, `start_instance`…).
    pub kind: String,
    /// `pending`, `claimed`, `done` or `failed`.
    pub status: String,
    /// Attempts so far.
    pub attempts: u32,
    /// Not before.
    pub next_attempt_at: DateTime<Utc>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// The worker holding (or that last held) its lease.
    pub claimed_by: Option<String>,
    /// Until when.
    pub lease_until: Option<DateTime<Utc>>,
    /// When the step committed.
    pub created_at: DateTime<Utc>,
    /// When it was carried out.
    pub done_at: Option<DateTime<Utc>>,
}

impl From<OutboxRow> for OutboxEntry {
    fn from(o: OutboxRow) -> Self {
        OutboxEntry {
            id: ID(o.id.to_string()),
            instance_id: o.instance_id.map(ID),
            kind: o.kind,
            status: o.status.as_str().to_string(),
            attempts: o.attempts,
            next_attempt_at: o.next_attempt_at,
            last_error: o.last_error,
            claimed_by: o.claimed_by,
            lease_until: o.lease_until,
            created_at: o.created_at,
            done_at: o.done_at,
        }
    }
}

fn parse_id(id: &ID, what: &'static str) -> Result<i64, ApiError> {
    id.parse::<i64>().map_err(|_| ApiError::NotFound { what })
}

/// The queries on deliveries and the outbox.
#[derive(Default)]
pub(crate) struct DeliveryQuery;

#[Object]
impl DeliveryQuery {
    /// Deliveries, newest last, of an instance and/or in a status (staff and the
    /// amministratore; at most 500, the latest).
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        instance_id: Option<ID>,
        status: Option<DeliveryState>,
    ) -> Result<Vec<Delivery>, ApiError> {
        let caller = caller(ctx).await?;
        authorize(&caller, &Subject::Deliveries)?;
        let rows = shared(ctx)?
            .service
            .store()
            .deliveries(&DeliveryFilter {
                status: status.map(Into::into),
                instance_id: instance_id.map(|i| i.to_string()),
                ..DeliveryFilter::default()
            })
            .await?;
        let skip = rows.len().saturating_sub(MAX_ROWS);
        Ok(rows.into_iter().skip(skip).map(Delivery::from).collect())
    }

    /// The PEC receipts read for a delivery, in the order they were read (staff and the
    /// amministratore).
    async fn pec_receipts(
        &self,
        ctx: &Context<'_>,
        delivery_id: ID,
    ) -> Result<Vec<PecReceipt>, ApiError> {
        let caller = caller(ctx).await?;
        authorize(&caller, &Subject::Deliveries)?;
        let id = parse_id(&delivery_id, "consegna")?;
        let rows = shared(ctx)?.service.store().pec_receipts(id).await?;
        Ok(rows.into_iter().map(PecReceipt::from).collect())
    }

    /// The receipts refused (a broken signature, an unknown Message-ID, another recipient),
    /// latest first, with the reason (staff and the amministratore; at most 500).
    async fn pec_refused_receipts(&self, ctx: &Context<'_>) -> Result<Vec<PecReceipt>, ApiError> {
        let caller = caller(ctx).await?;
        authorize(&caller, &Subject::Deliveries)?;
        let rows = shared(ctx)?
            .service
            .store()
            .pec_refused_receipts(MAX_ROWS as u64)
            .await?;
        Ok(rows.into_iter().map(PecReceipt::from).collect())
    }

    /// The messages received by PEC, latest first, with what became of each (an
    /// application, a late one, one the office must match): staff and the amministratore;
    /// at most 500.
    async fn pec_incoming(&self, ctx: &Context<'_>) -> Result<Vec<PecIncoming>, ApiError> {
        let caller = caller(ctx).await?;
        authorize(&caller, &Subject::Deliveries)?;
        let rows = shared(ctx)?
            .service
            .store()
            .pec_incoming(MAX_ROWS as u64)
            .await?;
        Ok(rows.into_iter().map(PecIncoming::from).collect())
    }

    /// Outbox rows, newest last, of an instance and/or in a status (`pending`, `claimed`,
    /// `done`, `failed`; staff and the amministratore; at most 500, the latest).
    async fn outbox(
        &self,
        ctx: &Context<'_>,
        instance_id: Option<ID>,
        status: Option<String>,
    ) -> Result<Vec<OutboxEntry>, ApiError> {
        let caller = caller(ctx).await?;
        authorize(&caller, &Subject::Deliveries)?;
        let status = match status.as_deref() {
            None => None,
            Some(s) => Some(
                OutboxStatus::named(s).ok_or_else(|| ApiError::BadUserInput {
                    message: format!(
                        "stato «{s}» sconosciuto (ammessi: pending, claimed, done, failed)"
                    ),
                    field: Some("status".into()),
                })?,
            ),
        };
        let rows = shared(ctx)?.service.store().outbox_rows(status).await?;
        let rows: Vec<OutboxRow> = rows
            .into_iter()
            .filter(|r| {
                instance_id
                    .as_ref()
                    .is_none_or(|id| r.instance_id.as_deref() == Some(id.as_str()))
            })
            .collect();
        let skip = rows.len().saturating_sub(MAX_ROWS);
        Ok(rows.into_iter().skip(skip).map(OutboxEntry::from).collect())
    }
}

/// The mutations on deliveries.
#[derive(Default)]
pub(crate) struct DeliveryMutation;

#[Object]
impl DeliveryMutation {
    /// Puts a failed delivery back in the queue, due now (Ufficio di Piano, amministratore):
    /// the same email with the same Message-ID, its attempts counted anew. Recorded in the
    /// audit log. A delivery that did not fail is `CONFLICT`.
    async fn requeue_delivery(&self, ctx: &Context<'_>, id: ID) -> Result<Delivery, ApiError> {
        let caller = caller(ctx).await?;
        authorize(&caller, &Subject::Requeue)?;
        let number = parse_id(&id, "consegna")?;
        let service = &shared(ctx)?.service;
        let store = service.store();
        let row = store
            .delivery(number)
            .await?
            .ok_or(ApiError::NotFound { what: "consegna" })?;
        if row.status != DeliveryStatus::Failed {
            return Err(ApiError::Conflict(format!(
                "la consegna {number} non è fallita (stato: {}): si rimette in coda solo una consegna fallita",
                row.status
            )));
        }
        let audit = NewAudit {
            at: service.now(),
            actor_id: caller.person_id.clone(),
            role: caller.role.as_str().to_string(),
            action: "rimetti_in_coda".into(),
            subject: format!("consegna {number}"),
            detail: serde_json::json!({
                "tipo": row.kind,
                "istanza": row.instance_id,
                "errore_precedente": row.last_error,
                "tentativi_precedenti": row.attempts,
            }),
        };
        match store
            .audited(AdminWrite::Requeue { id: number }, &audit)
            .await
        {
            Ok(_) => {}
            Err(crate::store::Error::NotFound { .. }) => {
                return Err(ApiError::Conflict(format!(
                    "la consegna {number} non è più fallita"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        let row = store
            .delivery(number)
            .await?
            .ok_or(ApiError::NotFound { what: "consegna" })?;
        Ok(row.into())
    }
}

/// The subscription to delivery failures.
#[derive(Default)]
pub(crate) struct DeliverySubscription;

#[Subscription]
impl DeliverySubscription {
    /// Each delivery that ends failed from now on, once (staff and the amministratore).
    async fn delivery_failed(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = Delivery>, ApiError> {
        let caller = caller(ctx).await?;
        authorize(&caller, &Subject::Deliveries)?;
        let shared = shared(ctx)?.clone();
        // Failures already there are not news: start after the latest one.
        let mut last = 0;
        loop {
            let batch = shared
                .service
                .store()
                .failed_deliveries_after(last, 1000)
                .await?;
            match batch.last() {
                Some(row) => last = row.id,
                None => break,
            }
        }
        Ok(stream::unfold(
            (
                shared,
                last,
                std::collections::VecDeque::<DeliveryRow>::new(),
            ),
            |(shared, mut last, mut ready)| async move {
                loop {
                    if let Some(row) = ready.pop_front() {
                        return Some((Delivery::from(row), (shared, last, ready)));
                    }
                    tokio::time::sleep(WATCH_EVERY).await;
                    match shared
                        .service
                        .store()
                        .failed_deliveries_after(last, 100)
                        .await
                    {
                        Ok(rows) => {
                            if let Some(row) = rows.last() {
                                last = row.id;
                            }
                            ready.extend(rows);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "consegne fallite non leggibili: riprovo");
                        }
                    }
                }
            },
        ))
    }
}
