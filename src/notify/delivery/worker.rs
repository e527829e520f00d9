//! The delivery worker: claims due deliveries, sends them with bounded concurrency, and
//! records what happened to each — sent, retried later, or failed for good.
//!
//! Exactly once, as far as SMTP allows: a delivery is marked `sent` right after the server
//! accepted it. A crash between the two leaves it claimed; when the lease runs out it is sent
//! again with the same bytes and the same Message-ID, so the duplicate is recognisable.
//!
//! The lease is short (seconds) and kept alive by a heartbeat while the worker works, so a
//! slow SMTP server never makes a second worker send the same delivery, and the deliveries of
//! a worker killed mid-batch go out again within one lease. A delivery is sent only while its
//! claim is alive (`Heartbeat::may_start`); one the worker could not keep is given back
//! unsent. The retry delay after a failed attempt is the delivery's own `next_attempt_at`,
//! not the lease.

use std::future::Future;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use futures_util::StreamExt;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::clock::SharedClock;
use crate::definition::Channel;
use crate::notify::{OutgoingEmail, SendError, Transport};
use crate::scheduler::{Heartbeat, backoff};
use crate::store::{self, Claim, DeliveryRow, Store};

/// How a delivery worker claims, sends and retries.
#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// Names this process in claims (`claimed_by`).
    pub worker_id: String,
    /// Deliveries claimed per tick.
    pub batch: u64,
    /// Sends in flight at once (lettre's pool does not cap it).
    pub concurrency: usize,
    /// Attempts after which a delivery that keeps failing transiently is `failed`.
    pub max_attempts: u32,
    /// The delay before the first retry; it doubles (with jitter) up to `max_backoff`.
    pub backoff: StdDuration,
    /// The longest delay between two attempts.
    pub max_backoff: StdDuration,
    /// How long a claim holds without renewal: what a worker killed mid-batch delays the
    /// deliveries it held. Renewed every `heartbeat` while the worker works on them.
    pub lease: Duration,
    /// The pause between two renewals (`None`: a third of the lease).
    pub heartbeat: Option<StdDuration>,
    /// The pause between two ticks while there is nothing to send.
    pub poll_interval: StdDuration,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            worker_id: crate::scheduler::default_worker_id(),
            batch: 20,
            concurrency: 4,
            max_attempts: 12,
            backoff: StdDuration::from_secs(30),
            max_backoff: StdDuration::from_secs(3600),
            lease: Duration::seconds(crate::scheduler::DEFAULT_LEASE_SECONDS),
            heartbeat: None,
            poll_interval: StdDuration::from_secs(1),
        }
    }
}

/// What became of one claimed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    Sent,
    Retried,
    Failed,
    /// Another worker took it meanwhile, or the record could not be written.
    Lost,
    /// Not sent: its claim could not be kept alive, so it was given back.
    NotStarted,
}

/// Sends due deliveries. `tick` for tests and the demo, `run` for a process.
#[derive(Debug, Clone)]
pub struct DeliveryWorker {
    store: Store,
    transport: Transport,
    pec: Option<Transport>,
    options: DeliveryOptions,
    clock: SharedClock,
    heartbeat: Heartbeat,
}

impl DeliveryWorker {
    /// A worker over a store and a transport, reading time from `clock`.
    pub fn new(
        store: Store,
        transport: Transport,
        options: DeliveryOptions,
        clock: SharedClock,
    ) -> DeliveryWorker {
        let heartbeat = Heartbeat::new(
            store.clone(),
            clock.clone(),
            &options.worker_id,
            options.lease,
        );
        DeliveryWorker {
            store,
            transport,
            pec: None,
            options,
            clock,
            heartbeat,
        }
    }

    /// Sends PEC deliveries through `transport` (the provider's submission server).
    #[must_use]
    pub fn with_pec(mut self, transport: Transport) -> DeliveryWorker {
        self.pec = Some(transport);
        self
    }

    /// The heartbeat that renews this worker's claims (`run` spawns its renewals).
    pub fn heartbeat(&self) -> &Heartbeat {
        &self.heartbeat
    }

    /// The options.
    pub fn options(&self) -> &DeliveryOptions {
        &self.options
    }

    /// Claims one batch of deliveries due now, sends them (at most `concurrency` at once) and
    /// records each outcome. Returns how many were handled; 0 when nothing was due.
    pub async fn tick(&self) -> Result<usize, store::Error> {
        let now = self.clock.now();
        let claimed = self
            .store
            .claim_deliveries(
                now,
                self.options.batch,
                &self.options.worker_id,
                self.options.lease,
            )
            .await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        for delivery in &claimed {
            self.heartbeat.hold(
                [Claim::Delivery(delivery.id)],
                delivery.lease_until.unwrap_or(now + self.options.lease),
            );
        }
        let count = claimed.len();
        let outcomes: Vec<Attempt> = futures_util::stream::iter(claimed)
            .map(|delivery| async move {
                let claim = Claim::Delivery(delivery.id);
                let attempt = self.deliver(delivery).await;
                self.heartbeat.forget(&claim);
                attempt
            })
            .buffer_unordered(self.options.concurrency.max(1))
            .collect()
            .await;
        let tally = |wanted: Attempt| {
            outcomes
                .iter()
                .filter(|outcome| **outcome == wanted)
                .count()
        };
        info!(
            sent = tally(Attempt::Sent),
            retried = tally(Attempt::Retried),
            failed = tally(Attempt::Failed),
            lost = tally(Attempt::Lost),
            not_started = tally(Attempt::NotStarted),
            "giro di consegne"
        );
        Ok(count)
    }

    /// Runs until `shutdown` completes: tick, then pause — not at all while there is work,
    /// `poll_interval` when idle. The batch in flight when the signal comes is finished.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let span = info_span!("delivery_worker", worker = %self.options.worker_id);
        async move {
            info!(transport = %self.transport.describe(), lease = %self.options.lease, "consegna delle email avviata");
            let every = self
                .options
                .heartbeat
                .unwrap_or_else(|| Heartbeat::default_interval(self.options.lease));
            let (beats_stop, beats_stopped) = tokio::sync::oneshot::channel::<()>();
            let beats = self.heartbeat.spawn(every, async move {
                let _ = beats_stopped.await;
            });
            let mut shutdown = std::pin::pin!(shutdown);
            loop {
                let pause = match self.tick().await {
                    Ok(0) => self.options.poll_interval,
                    Ok(_) => StdDuration::ZERO,
                    Err(failure) => {
                        error!(error = %failure, "giro di consegne non riuscito: nuovo tentativo");
                        self.options.poll_interval
                    }
                };
                let stop = if pause.is_zero() {
                    tokio::select! {
                        biased;
                        () = &mut shutdown => true,
                        () = tokio::task::yield_now() => false,
                    }
                } else {
                    tokio::select! {
                        () = &mut shutdown => true,
                        () = tokio::time::sleep(pause) => false,
                    }
                };
                if stop {
                    break;
                }
            }
            let _ = beats_stop.send(());
            let _ = beats.await;
            info!("consegna delle email fermata");
        }
        .instrument(span)
        .await;
    }

    /// Sends one claimed delivery, if its claim is still alive, and records the outcome.
    async fn deliver(&self, delivery: DeliveryRow) -> Attempt {
        let span = info_span!(
            "delivery",
            id = delivery.id,
            kind = %delivery.kind,
            attempt = delivery.attempts,
            recipient_domain = %delivery.recipient_domain(),
        );
        async move {
            if !self.heartbeat.may_start(&Claim::Delivery(delivery.id)) {
                return self.give_back(&delivery).await;
            }
            let email: OutgoingEmail = match serde_json::from_value(delivery.email.clone()) {
                Ok(email) => email,
                Err(failure) => {
                    let reason = format!("email registrata illeggibile: {failure}");
                    return self.record_failed(&delivery, &reason, None).await;
                }
            };
            let transport = match delivery.channel {
                Channel::Email => &self.transport,
                Channel::Pec => {
                    if delivery.recipient_email.trim().is_empty() {
                        let reason = format!(
                            "{} non ha un indirizzo PEC registrato (procedo identity organisation pec)",
                            delivery.recipient_name
                        );
                        return self.record_failed(&delivery, &reason, None).await;
                    }
                    match &self.pec {
                        Some(pec) => pec,
                        None => {
                            let reason = "la PEC non è configurata: manca PROCEDO_PEC_SMTP_URL";
                            return self.record_failed(&delivery, reason, None).await;
                        }
                    }
                }
            };
            let result = transport.send(&email).await;
            let now = self.clock.now();
            match result {
                Ok(report) => {
                    self.record_sent(&delivery, &report.server_answer, now)
                        .await
                }
                Err(failure) => self.record_error(&delivery, &failure, now).await,
            }
        }
        .instrument(span)
        .await
    }

    /// A delivery whose claim could not be kept alive: not sent, given back if the store
    /// answers (else its lease lapses and any worker takes it).
    async fn give_back(&self, delivery: &DeliveryRow) -> Attempt {
        warn!("presa in carico non rinnovata: la consegna non viene inviata");
        match self
            .store
            .release_delivery(delivery.id, &self.options.worker_id)
            .await
        {
            Ok(_) => {}
            Err(failure) => {
                warn!(error = %failure, "consegna non restituita: tornerà disponibile alla scadenza della presa in carico")
            }
        }
        Attempt::NotStarted
    }

    async fn record_sent(
        &self,
        delivery: &DeliveryRow,
        answer: &str,
        now: DateTime<Utc>,
    ) -> Attempt {
        let worker = &self.options.worker_id;
        match self
            .store
            .delivery_sent(delivery.id, worker, answer, now)
            .await
        {
            Ok(true) => {
                debug!(message_id = %delivery.message_id, "consegnata");
                Attempt::Sent
            }
            Ok(false) => {
                warn!(
                    "presa in carico scaduta durante l'invio: la consegna resta a chi l'ha ripresa"
                );
                Attempt::Lost
            }
            Err(failure) => {
                error!(error = %failure, "consegna inviata ma non registrata: sarà ripetuta con lo stesso Message-ID");
                Attempt::Lost
            }
        }
    }

    async fn record_error(
        &self,
        delivery: &DeliveryRow,
        failure: &SendError,
        now: DateTime<Utc>,
    ) -> Attempt {
        if !failure.is_transient() {
            return self
                .record_failed(delivery, failure.reason(), failure.code())
                .await;
        }
        if delivery.attempts >= self.options.max_attempts {
            let reason = format!(
                "{} (abbandonata dopo {} tentativi)",
                failure.reason(),
                delivery.attempts
            );
            return self.record_failed(delivery, &reason, failure.code()).await;
        }
        let delay = backoff(
            delivery.attempts,
            self.options.backoff,
            self.options.max_backoff,
            delivery.id.unsigned_abs(),
        );
        let next = now + Duration::from_std(delay).unwrap_or(Duration::hours(1));
        let worker = &self.options.worker_id;
        match self
            .store
            .delivery_retry(delivery.id, worker, next, failure.reason(), failure.code())
            .await
        {
            Ok(true) => {
                warn!(code = failure.code(), attempts = delivery.attempts, next = %next, "invio non riuscito: nuovo tentativo più tardi");
                Attempt::Retried
            }
            Ok(false) => Attempt::Lost,
            Err(store_failure) => {
                error!(error = %store_failure, "nuovo tentativo non registrato: la consegna tornerà disponibile alla scadenza della presa in carico");
                Attempt::Lost
            }
        }
    }

    async fn record_failed(
        &self,
        delivery: &DeliveryRow,
        reason: &str,
        code: Option<u16>,
    ) -> Attempt {
        let worker = &self.options.worker_id;
        match self
            .store
            .delivery_failed(delivery.id, worker, reason, code)
            .await
        {
            Ok(true) => {
                warn!(
                    code,
                    attempts = delivery.attempts,
                    "consegna fallita: visibile con procedo mail deliveries --status failed"
                );
                Attempt::Failed
            }
            Ok(false) => Attempt::Lost,
            Err(store_failure) => {
                error!(error = %store_failure, "esito della consegna non registrato");
                Attempt::Lost
            }
        }
    }
}
