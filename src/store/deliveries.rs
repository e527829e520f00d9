//! Deliveries: one email to one recipient of a notification, and its record (status,
//! attempts, last error and SMTP code, the server's answer, the Message-ID).
//!
//! Invariant: at most one delivery per (outbox row, recipient address). The fan-out of a
//! notification inserts with `ON CONFLICT DO NOTHING` on that key, so an outbox row dispatched
//! again after a crash adds only the recipients the first dispatch did not reach.
//!
//! Claims work like the outbox's: a due `pending` delivery whose lease is free (or ran out) is
//! taken with a lease in one statement (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the write lock
//! on SQLite), and each claim counts as an attempt, so a crash in the middle of a send counts
//! too. The status stays `pending` while claimed: `claimed_by` and `lease_until` say who holds
//! it. Every transition after a claim names the worker and is a no-op (`false`) when another
//! worker took the delivery meanwhile.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::Value;

use super::entities::{delivery, outbox};
use super::outbox::OutboxRow;
use super::{Error, Result, Store, from_json, instant, lease, settle, to_json};
use crate::engine::Effect;

/// The message that tells the Ufficio di Piano a delivery failed.
pub const FAILURE_ALERT_KIND: &str = "consegna_fallita";
/// Who receives it.
pub const FAILURE_ALERT_ROLE: &str = "ufficio_di_piano";

/// Where a delivery is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeliveryStatus {
    /// To be sent at `next_attempt_at` (possibly claimed by a worker: see `claimed_by`).
    Pending,
    /// Not urgent, for someone who chose the daily digest: waits for the next riepilogo.
    Held,
    /// Listed in a riepilogo (which is a delivery of its own); never sent by itself.
    Digested,
    /// Accepted by the transport (`server_answer`, `sent_at`).
    Sent,
    /// Refused, or given up after the last attempt (`last_error`, `last_code`).
    Failed,
}

impl DeliveryStatus {
    /// Every status, in the order of a delivery's life.
    pub const ALL: [DeliveryStatus; 5] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Held,
        DeliveryStatus::Digested,
        DeliveryStatus::Sent,
        DeliveryStatus::Failed,
    ];

    /// The value in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Held => "held",
            DeliveryStatus::Digested => "digested",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Failed => "failed",
        }
    }

    /// Parses a status as written in the column (and on the command line).
    pub fn parse(text: &str) -> Option<DeliveryStatus> {
        DeliveryStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A delivery to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    /// The outbox row it comes from (with `recipient_email`, the idempotency key).
    pub outbox_id: i64,
    /// The instance the notification is about.
    pub instance_id: Option<String>,
    /// The person it is for, when it was resolved from a person.
    pub person_id: Option<String>,
    /// The address it goes to.
    pub recipient_email: String,
    /// The recipient's name.
    pub recipient_name: String,
    /// The message kind (template).
    pub kind: String,
    /// Urgent messages ignore the digest preference.
    pub urgent: bool,
    /// The rendered email (the serialized `notify::OutgoingEmail`).
    pub email: Value,
    /// The email's Message-ID, stable across attempts.
    pub message_id: String,
    /// `Pending` or `Held`.
    pub status: DeliveryStatus,
    /// When it was created; also its first due instant.
    pub at: DateTime<Utc>,
    /// Ordinary email or PEC.
    pub channel: crate::definition::Channel,
}

/// A stored delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRow {
    /// Row id.
    pub id: i64,
    /// The outbox row it comes from.
    pub outbox_id: i64,
    /// The instance the notification is about.
    pub instance_id: Option<String>,
    /// The person it is for.
    pub person_id: Option<String>,
    /// The address it goes to.
    pub recipient_email: String,
    /// The recipient's name.
    pub recipient_name: String,
    /// The message kind (template).
    pub kind: String,
    /// Urgent (not held for the digest).
    pub urgent: bool,
    /// The rendered email, sent as is on every attempt.
    pub email: Value,
    /// The Message-ID.
    pub message_id: String,
    /// Where it is in its life.
    pub status: DeliveryStatus,
    /// Claims so far (a claim counts as an attempt).
    pub attempts: u32,
    /// Not to be claimed before.
    pub next_attempt_at: DateTime<Utc>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// The SMTP code of the last failure, when the server answered.
    pub last_code: Option<u16>,
    /// What the transport answered when it accepted the email.
    pub server_answer: Option<String>,
    /// The worker holding (or that last held) the claim.
    pub claimed_by: Option<String>,
    /// Until when the claim holds.
    pub lease_until: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When the transport accepted it.
    pub sent_at: Option<DateTime<Utc>>,
    /// Ordinary email or PEC.
    pub channel: crate::definition::Channel,
    /// For PEC: where the receipts say it is.
    pub pec_status: Option<crate::pec::PecStatus>,
    /// For PEC: the provider's instant of the receipt that set `pec_status`.
    pub pec_at: Option<DateTime<Utc>>,
}

impl DeliveryRow {
    pub(super) fn from_model(m: delivery::Model) -> Result<DeliveryRow> {
        let email = from_json(
            &m.email,
            format_args!("deliveries.email della consegna {}", m.id),
        )?;
        let status = DeliveryStatus::parse(&m.status).ok_or_else(|| {
            Error::Corrupt(format!(
                "deliveries.status '{}' della consegna {}",
                m.status, m.id
            ))
        })?;
        Ok(DeliveryRow {
            id: m.id,
            outbox_id: m.outbox_id,
            instance_id: m.instance_id,
            person_id: m.person_id,
            recipient_email: m.recipient_email,
            recipient_name: m.recipient_name,
            kind: m.kind,
            urgent: m.urgent,
            email,
            message_id: m.message_id,
            status,
            attempts: u32::try_from(m.attempts).unwrap_or(0),
            next_attempt_at: m.next_attempt_at,
            last_error: m.last_error,
            last_code: m.last_code.and_then(|code| u16::try_from(code).ok()),
            server_answer: m.server_answer,
            claimed_by: m.claimed_by,
            lease_until: m.lease_until,
            created_at: m.created_at,
            sent_at: m.sent_at,
            channel: if m.channel == "pec" {
                crate::definition::Channel::Pec
            } else {
                crate::definition::Channel::Email
            },
            pec_status: m
                .pec_status
                .as_deref()
                .and_then(crate::pec::PecStatus::parse),
            pec_at: m.pec_at,
        })
    }

    /// The part of the address after `@`: the only recipient detail logs may show.
    pub fn recipient_domain(&self) -> &str {
        self.recipient_email
            .rsplit_once('@')
            .map_or("?", |(_, domain)| domain)
    }
}

/// Which deliveries to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    /// Only this status.
    pub status: Option<DeliveryStatus>,
    /// Only the fan-out of this outbox row.
    pub outbox_id: Option<i64>,
    /// Only notifications about this instance.
    pub instance_id: Option<String>,
    /// Only this person's.
    pub person_id: Option<String>,
}

/// A failed delivery back in the queue, due at `at`, its attempts counted anew: the same
/// email (the same Message-ID) is sent again. Nothing happens to a delivery not failed.
pub(super) async fn requeue<C: ConnectionTrait>(
    conn: &C,
    id: i64,
    at: DateTime<Utc>,
) -> Result<bool> {
    let res = delivery::Entity::update_many()
        .col_expr(
            delivery::Column::Status,
            Expr::value(DeliveryStatus::Pending.as_str()),
        )
        .col_expr(delivery::Column::Attempts, Expr::value(0))
        .col_expr(delivery::Column::NextAttemptAt, Expr::value(instant(at)))
        .col_expr(
            delivery::Column::ClaimedBy,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            delivery::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(delivery::Column::Id.eq(id))
        .filter(delivery::Column::Status.eq(DeliveryStatus::Failed.as_str()))
        .exec(conn)
        .await?;
    Ok(res.rows_affected > 0)
}

/// Inserts a delivery unless one exists for its (outbox row, address); true if inserted.
async fn insert_new<C: ConnectionTrait>(conn: &C, new: &NewDelivery) -> Result<bool> {
    let at = instant(new.at);
    let row = delivery::ActiveModel {
        id: NotSet,
        outbox_id: Set(new.outbox_id),
        instance_id: Set(new.instance_id.clone()),
        person_id: Set(new.person_id.clone()),
        recipient_email: Set(new.recipient_email.clone()),
        recipient_name: Set(new.recipient_name.clone()),
        kind: Set(new.kind.clone()),
        urgent: Set(new.urgent),
        email: Set(to_json(&new.email)?),
        message_id: Set(new.message_id.clone()),
        status: Set(new.status.as_str().to_string()),
        attempts: Set(0),
        next_attempt_at: Set(at),
        last_error: Set(None),
        last_code: Set(None),
        server_answer: Set(None),
        claimed_by: Set(None),
        lease_until: Set(None),
        created_at: Set(at),
        sent_at: Set(None),
        channel: Set(channel_name(new.channel).to_owned()),
        pec_status: Set(None),
        pec_at: Set(None),
    };
    let inserted = delivery::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([delivery::Column::OutboxId, delivery::Column::RecipientEmail])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(inserted > 0)
}

/// The `channel` column's value.
pub(super) fn channel_name(channel: crate::definition::Channel) -> &'static str {
    match channel {
        crate::definition::Channel::Email => "email",
        crate::definition::Channel::Pec => "pec",
    }
}

/// The delivery is claimed by `worker` (pending, claimed by it).
fn held_by(id: i64, worker: &str) -> Condition {
    lease::held_by::<lease::Deliveries>(id, worker)
}

impl Store {
    /// Creates the deliveries of one fan-out in one transaction, skipping those that exist
    /// for the same (outbox row, address). Returns how many were created.
    #[tracing::instrument(skip_all, fields(count = deliveries.len()))]
    pub async fn add_deliveries(&self, deliveries: &[NewDelivery]) -> Result<u64> {
        if deliveries.is_empty() {
            return Ok(0);
        }
        let (txn, _turn) = self.begin_write().await?;
        let outcome = async {
            let mut created = 0;
            for new in deliveries {
                if insert_new(&txn, new).await? {
                    created += 1;
                }
            }
            Ok(created)
        }
        .await;
        settle(txn, outcome).await
    }

    /// Claims up to `limit` due deliveries for `worker` until `now + lease`: pending ones whose
    /// `next_attempt_at` has come and whose lease is free or ran out. One statement; each
    /// claim counts as an attempt. Ordered by due instant, then id.
    #[tracing::instrument(skip_all, fields(worker, limit))]
    pub async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        limit: u64,
        worker: &str,
        lease: Duration,
    ) -> Result<Vec<DeliveryRow>> {
        let _turn = self.write_turn().await?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let due = Condition::all()
            .add(delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
            .add(delivery::Column::NextAttemptAt.lte(instant(now)))
            .add(lease::lease_free(delivery::Column::LeaseUntil, now));
        let models = lease::claim::<lease::Deliveries, _>(
            &self.write_db,
            due,
            &[delivery::Column::NextAttemptAt, delivery::Column::Id],
            limit,
            worker,
            lease::lease_end(now, lease),
            vec![(
                delivery::Column::Attempts,
                lease::plus_one(delivery::Column::Attempts),
            )],
        )
        .await?;
        let mut rows = models
            .into_iter()
            .map(DeliveryRow::from_model)
            .collect::<Result<Vec<_>>>()?;
        rows.sort_by_key(|row| (row.next_attempt_at, row.id));
        tracing::debug!(claimed = rows.len(), "consegne prese in carico");
        Ok(rows)
    }

    /// The transport accepted the delivery claimed by `worker`. False, and nothing written, if
    /// `worker` no longer holds it.
    pub async fn delivery_sent(
        &self,
        id: i64,
        worker: &str,
        server_answer: &str,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let res = delivery::Entity::update_many()
            .col_expr(
                delivery::Column::Status,
                Expr::value(DeliveryStatus::Sent.as_str()),
            )
            .col_expr(delivery::Column::ServerAnswer, Expr::value(server_answer))
            .col_expr(delivery::Column::SentAt, Expr::value(instant(at)))
            // A PEC handed to the provider waits for its receipts.
            .col_expr(
                delivery::Column::PecStatus,
                Expr::cust("CASE WHEN channel = 'pec' THEN 'inviata' ELSE NULL END"),
            )
            .col_expr(
                delivery::Column::LeaseUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(held_by(id, worker))
            .exec(&self.write_db)
            .await?;
        Ok(res.rows_affected > 0)
    }

    /// The attempt failed transiently: pending again, not before `next_attempt_at`. False,
    /// and nothing written, if `worker` no longer holds it.
    pub async fn delivery_retry(
        &self,
        id: i64,
        worker: &str,
        next_attempt_at: DateTime<Utc>,
        error: &str,
        code: Option<u16>,
    ) -> Result<bool> {
        let res = delivery::Entity::update_many()
            .col_expr(
                delivery::Column::NextAttemptAt,
                Expr::value(instant(next_attempt_at)),
            )
            .col_expr(delivery::Column::LastError, Expr::value(error))
            .col_expr(delivery::Column::LastCode, Expr::value(code.map(i32::from)))
            .col_expr(
                delivery::Column::ClaimedBy,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                delivery::Column::LeaseUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(held_by(id, worker))
            .exec(&self.write_db)
            .await?;
        Ok(res.rows_affected > 0)
    }

    /// Gives up on a delivery claimed by `worker` (refused, or out of attempts): it stays
    /// visible with its error, and — in the same transaction — the Ufficio di Piano is told by
    /// an urgent message ([`FAILURE_ALERT_KIND`]; a failed alert alerts no one). False, and
    /// nothing written, if `worker` no longer holds it.
    pub async fn delivery_failed(
        &self,
        id: i64,
        worker: &str,
        error: &str,
        code: Option<u16>,
    ) -> Result<bool> {
        let (txn, _turn) = self.begin_write().await?;
        let outcome = async {
            let res = delivery::Entity::update_many()
                .col_expr(
                    delivery::Column::Status,
                    Expr::value(DeliveryStatus::Failed.as_str()),
                )
                .col_expr(delivery::Column::LastError, Expr::value(error))
                .col_expr(delivery::Column::LastCode, Expr::value(code.map(i32::from)))
                .col_expr(
                    delivery::Column::LeaseUntil,
                    Expr::value(Option::<DateTime<Utc>>::None),
                )
                .filter(held_by(id, worker))
                .exec(&txn)
                .await?;
            if res.rows_affected == 0 {
                return Ok(false);
            }
            let failed = delivery::Entity::find_by_id(id)
                .one(&txn)
                .await?
                .map(DeliveryRow::from_model)
                .transpose()?;
            if let Some(failed) = failed.filter(|d| d.kind != FAILURE_ALERT_KIND) {
                let alert = Effect::Notify(crate::engine::NotificationPlan {
                    role: FAILURE_ALERT_ROLE.into(),
                    template: FAILURE_ALERT_KIND.into(),
                    urgent: true,
                    context: serde_json::json!({
                        "istanza": failed.instance_id.as_ref().map(|i| serde_json::json!({ "id": i })),
                        "consegna": {
                            "id": failed.id,
                            "messaggio": failed.kind,
                            "destinatario": failed.recipient_name,
                            "indirizzo": failed.recipient_email,
                            "tentativi": failed.attempts,
                            "errore": error,
                        },
                    }),
                    invite: None,
                    protocol: None,
                    organisations: None,
                    public: false,
                    participant: None,
                    channel: Default::default(),
                    consegna: None,
                });
                super::outbox::enqueue_as(
                    &txn,
                    failed.instance_id.as_deref(),
                    alert.kind(),
                    &alert,
                    std::cmp::Ord::max(failed.next_attempt_at, failed.created_at),
                )
                .await?;
            }
            Ok(true)
        }
        .await;
        settle(txn, outcome).await
    }

    /// Gives back a delivery claimed by `worker` and not sent (its claim could not be kept
    /// alive, or the worker is stopping): due again at once, and the attempt its claim counted
    /// is taken back. False, and nothing written, if `worker` no longer holds it.
    pub async fn release_delivery(&self, id: i64, worker: &str) -> Result<bool> {
        let res = delivery::Entity::update_many()
            .col_expr(
                delivery::Column::Attempts,
                Expr::col(delivery::Column::Attempts).sub(1),
            )
            .col_expr(
                delivery::Column::ClaimedBy,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                delivery::Column::LeaseUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(held_by(id, worker))
            .filter(delivery::Column::Attempts.gt(0))
            .exec(&self.db)
            .await?;
        Ok(res.rows_affected > 0)
    }

    /// Deliveries matching the filter, by id.
    pub async fn deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<DeliveryRow>> {
        let mut query = delivery::Entity::find().order_by_asc(delivery::Column::Id);
        if let Some(status) = filter.status {
            query = query.filter(delivery::Column::Status.eq(status.as_str()));
        }
        if let Some(outbox_id) = filter.outbox_id {
            query = query.filter(delivery::Column::OutboxId.eq(outbox_id));
        }
        if let Some(instance_id) = &filter.instance_id {
            query = query.filter(delivery::Column::InstanceId.eq(instance_id.as_str()));
        }
        if let Some(person_id) = &filter.person_id {
            query = query.filter(delivery::Column::PersonId.eq(person_id.as_str()));
        }
        query
            .all(&self.db)
            .await?
            .into_iter()
            .map(DeliveryRow::from_model)
            .collect()
    }

    /// One delivery.
    pub async fn delivery(&self, id: i64) -> Result<Option<DeliveryRow>> {
        delivery::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .map(DeliveryRow::from_model)
            .transpose()
    }

    /// Failed deliveries after `after_id`, by id (what a watcher has not seen yet).
    pub async fn failed_deliveries_after(
        &self,
        after_id: i64,
        limit: u64,
    ) -> Result<Vec<DeliveryRow>> {
        delivery::Entity::find()
            .filter(delivery::Column::Status.eq(DeliveryStatus::Failed.as_str()))
            .filter(delivery::Column::Id.gt(after_id))
            .order_by_asc(delivery::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(DeliveryRow::from_model)
            .collect()
    }

    /// Every held delivery (waiting for a digest), by person then id.
    pub async fn held_deliveries(&self) -> Result<Vec<DeliveryRow>> {
        delivery::Entity::find()
            .filter(delivery::Column::Status.eq(DeliveryStatus::Held.as_str()))
            .order_by_asc(delivery::Column::PersonId)
            .order_by_asc(delivery::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(DeliveryRow::from_model)
            .collect()
    }

    /// Creates a person's riepilogo and marks the held deliveries it lists `digested`, in one
    /// transaction. False, and nothing written, if the riepilogo already exists (the digest
    /// row was dispatched again): what is still held then waits for the next digest.
    #[tracing::instrument(skip_all, fields(outbox_id = digest.outbox_id, listed = held.len()))]
    pub async fn digest_held(&self, digest: &NewDelivery, held: &[i64]) -> Result<bool> {
        let (txn, _turn) = self.begin_write().await?;
        let outcome = async {
            if !insert_new(&txn, digest).await? {
                return Ok(false);
            }
            if !held.is_empty() {
                let marked = delivery::Entity::update_many()
                    .col_expr(
                        delivery::Column::Status,
                        Expr::value(DeliveryStatus::Digested.as_str()),
                    )
                    .filter(delivery::Column::Id.is_in(held.iter().copied()))
                    .filter(delivery::Column::Status.eq(DeliveryStatus::Held.as_str()))
                    .exec(&txn)
                    .await?;
                if marked.rows_affected != held.len() as u64 {
                    // Another digest took some of them first: roll back this riepilogo (the
                    // error aborts the transaction) and let the dispatch retry on what is
                    // still held, so nothing is listed twice.
                    return Err(Error::Busy);
                }
            }
            Ok(true)
        }
        .await;
        settle(txn, outcome).await
    }

    /// How many notification outbox rows of `instance_id` before `before_outbox_id` carried a
    /// calendar invite for `role`: the SEQUENCE of the next invite of that meeting. Counted
    /// from the outbox, so it is the same on every dispatch of the same row.
    pub async fn earlier_invites(
        &self,
        instance_id: &str,
        role: &str,
        before_outbox_id: i64,
    ) -> Result<u32> {
        let rows = outbox::Entity::find()
            .filter(outbox::Column::InstanceId.eq(instance_id))
            .filter(outbox::Column::Kind.eq("notify"))
            .filter(outbox::Column::Id.lt(before_outbox_id))
            .order_by_asc(outbox::Column::Id)
            .all(&self.db)
            .await?;
        let mut count = 0u32;
        for row in rows {
            let payload: Effect = from_json(
                &row.payload,
                format_args!("outbox.payload della riga {}", row.id),
            )?;
            if let Effect::Notify(plan) = payload
                && plan.invite.is_some()
                && plan.role == role
            {
                count = count.saturating_add(1);
            }
        }
        Ok(count)
    }

    /// One outbox row.
    pub async fn outbox_row(&self, id: i64) -> Result<Option<OutboxRow>> {
        outbox::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .map(OutboxRow::from_model)
            .transpose()
    }
}
