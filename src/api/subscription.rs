//! Subscriptions over WebSocket: committed events of the instances the caller may see. The
//! API publishes an event on a broadcast channel after each start and fire it commits, and a
//! tail of the history table publishes the steps committed elsewhere (timers fired by the
//! scheduler, other replicas); each event goes out once. Each subscriber's stream asks the
//! policy, per event, whether its caller may see the instance.

use std::sync::Arc;

use async_graphql::futures_util::Stream;
use async_graphql::futures_util::stream;
use async_graphql::{Context, ID, Subscription};
use tokio::sync::broadcast::error::RecvError;

use super::Shared;
use super::access;
use super::context::{Auth, authenticate, caller, shared};
use super::error::ApiError;
use super::policy::{Subject, allows};
use super::types::event::InstanceEvent;

/// The subscription root: instance events and delivery failures.
#[derive(async_graphql::MergedSubscription, Default)]
#[graphql(name = "Subscription")]
pub(crate) struct SubscriptionRoot(
    InstanceSubscription,
    super::deliveries::DeliverySubscription,
);

/// Committed events of instances.
#[derive(Default)]
pub(crate) struct InstanceSubscription;

#[Subscription]
impl InstanceSubscription {
    /// Steps committed on the instances the caller may see (or on one of them).
    async fn instance_events(
        &self,
        ctx: &Context<'_>,
        instance_id: Option<ID>,
    ) -> Result<impl Stream<Item = InstanceEvent>, ApiError> {
        let shared = shared(ctx)?.clone();
        let caller = caller(ctx).await?;
        let secret = ctx
            .data::<Auth>()
            .ok()
            .and_then(Auth::secret)
            .map(str::to_owned);
        if let Some(id) = &instance_id {
            access::instance(&shared, &caller, id.as_str()).await?;
        }
        let receiver = shared.events.subscribe();
        Ok(stream::unfold(
            (receiver, shared, caller, instance_id, secret),
            |(mut receiver, shared, caller, only, secret)| async move {
                loop {
                    match receiver.recv().await {
                        Ok(event) => {
                            if only
                                .as_ref()
                                .is_some_and(|id| id.as_str() != event.instance_id.as_str())
                            {
                                continue;
                            }
                            let visible = match access::instance(
                                &shared,
                                &caller,
                                event.instance_id.as_str(),
                            )
                            .await
                            {
                                Ok(loaded) => {
                                    crate::api::policy::reads_step(
                                        &caller,
                                        loaded.facts(),
                                        &event.event,
                                    ) && event.participant_id.as_ref().is_none_or(|id| {
                                        loaded.row.data.participants.get(id.as_str()).is_some_and(
                                            |part| {
                                                allows(
                                                    &caller,
                                                    &Subject::Participant(loaded.facts(), part),
                                                )
                                            },
                                        )
                                    })
                                }
                                Err(_) => false,
                            };
                            if visible {
                                // A token revoked or expired since the subscription started,
                                // or a person or role withdrawn, ends it.
                                if !still_the_caller(&shared, secret.as_deref(), &caller).await {
                                    tracing::info!(token = %caller.token_id, "token non più valido: sottoscrizione chiusa");
                                    return None;
                                }
                                let mut event = event;
                                if !caller.role.is_staff() {
                                    event.seq = 0;
                                }
                                return Some((event, (receiver, shared, caller, only, secret)));
                            }
                        }
                        Err(RecvError::Lagged(skipped)) => {
                            tracing::warn!(skipped, "sottoscrittore in ritardo: eventi saltati")
                        }
                        Err(RecvError::Closed) => return None,
                    }
                }
            },
        ))
    }
}

/// Whether the token still resolves to the same caller now (by the service clock): not
/// revoked or expired, its person and role still there. A failure of the database does not end
/// the subscription (the socket's watchdog checks again).
async fn still_the_caller(
    shared: &Arc<Shared>,
    secret: Option<&str>,
    caller: &super::policy::Caller,
) -> bool {
    match authenticate(&shared.service, secret).await {
        Ok(now) => now == *caller,
        Err(ApiError::Unauthenticated) => false,
        Err(_) => true,
    }
}

/// Events published lately, by (instance, seq): a step reaches subscribers once whether the
/// mutation that committed it or the history tail sees it first.
#[derive(Debug, Default)]
pub(crate) struct Published {
    seen: std::collections::HashSet<(String, i64)>,
    order: std::collections::VecDeque<(String, i64)>,
}

/// How many published events are remembered for de-duplication.
const REMEMBERED: usize = 20_000;

impl Published {
    /// Records an event; false if it was published already.
    fn first_time(&mut self, instance_id: &str, seq: i64) -> bool {
        let key = (instance_id.to_string(), seq);
        if !self.seen.insert(key.clone()) {
            return false;
        }
        self.order.push_back(key);
        while self.order.len() > REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }
}

/// Publishes a committed event to the subscribers, once: the mutation that committed it and
/// the history tail may both see it.
pub(crate) fn publish(shared: &Arc<Shared>, event: InstanceEvent) {
    let first = shared
        .published
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .first_time(event.instance_id.as_str(), event.seq);
    if first {
        send(shared, event);
    }
}

/// Whether an event was published already (checked before loading anything for it).
fn already_published(shared: &Arc<Shared>, instance_id: &str, seq: i64) -> bool {
    shared
        .published
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .seen
        .contains(&(instance_id.to_string(), seq))
}

/// Sends an event to the subscribers as it is.
pub(crate) fn send(shared: &Arc<Shared>, event: InstanceEvent) {
    // No subscriber is not an error.
    let _ = shared.events.send(event);
    shared.metrics.count_event();
}

/// History ids below the last one read that are read again, for rows that committed late
/// (PostgreSQL hands out ids before commit).
const TAIL_WINDOW: i64 = 1_000;

/// New history rows read per round at most.
const TAIL_BATCH: i64 = 1_000;

/// Follows the history table and publishes what it finds (see `ApiState::spawn_history_tail`).
pub(crate) fn spawn_history_tail(
    shared: Arc<Shared>,
    every: std::time::Duration,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let store = shared.service.store().clone();
        let mut last = match store.last_history_id().await {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(error = %e, "storico non leggibile: gli eventi dello scheduler non saranno inviati ai sottoscrittori");
                return;
            }
        };
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(every) => {}
            }
            // The window below `last` holds at most TAIL_WINDOW rows (ids are dense), so a
            // limit of window + batch always reaches new rows.
            let rows = match store
                .history_after(last - TAIL_WINDOW, (TAIL_WINDOW + TAIL_BATCH) as u64)
                .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "lettura dello storico non riuscita");
                    continue;
                }
            };
            for row in rows {
                last = last.max(row.id);
                if already_published(&shared, &row.instance_id, row.seq) {
                    continue;
                }
                if shared.events.receiver_count() == 0 {
                    // Nobody listens: remember it as seen, so a later subscriber does not get
                    // the window's old steps.
                    let _ = shared
                        .published
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .first_time(&row.instance_id, row.seq);
                    continue;
                }
                let definition_id = match store.instance(&row.instance_id).await {
                    Ok(Some(instance)) => instance.definition_id,
                    _ => continue,
                };
                publish(
                    &shared,
                    InstanceEvent {
                        instance_id: ID(row.instance_id.clone()),
                        definition_id,
                        seq: row.seq,
                        event: row.event.clone(),
                        from_state: row.from_state.clone(),
                        to_state: row.to_state.clone(),
                        at: row.at,
                        actor_role: row.actor.role.clone(),
                        participant_id: row.participant.as_ref().map(|m| ID(m.id.clone())),
                        participant_from: row.participant.as_ref().and_then(|m| m.from.clone()),
                        participant_to: row.participant.as_ref().map(|m| m.to.clone()),
                    },
                );
            }
        }
    })
}
