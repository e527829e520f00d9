//! Subscriptions over WebSocket: committed events of the instances the caller may see. The
//! API publishes an event on a broadcast channel after each start and fire it commits; each
//! subscriber's stream asks the policy, per event, whether its caller may see the instance.

use std::sync::Arc;

use async_graphql::futures_util::Stream;
use async_graphql::futures_util::stream;
use async_graphql::{Context, ID, Subscription};
use tokio::sync::broadcast::error::RecvError;

use super::Shared;
use super::access;
use super::context::{caller, shared};
use super::error::ApiError;
use super::types::event::InstanceEvent;

/// The subscription root.
pub(crate) struct SubscriptionRoot;

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// Steps committed on the instances the caller may see (or on one of them).
    async fn instance_events(
        &self,
        ctx: &Context<'_>,
        instance_id: Option<ID>,
    ) -> Result<impl Stream<Item = InstanceEvent>, ApiError> {
        let shared = shared(ctx)?.clone();
        let caller = caller(ctx).await?;
        if let Some(id) = &instance_id {
            access::instance(&shared, &caller, id.as_str()).await?;
        }
        let receiver = shared.events.subscribe();
        Ok(stream::unfold(
            (receiver, shared, caller, instance_id),
            |(mut receiver, shared, caller, only)| async move {
                loop {
                    match receiver.recv().await {
                        Ok(event) => {
                            if only
                                .as_ref()
                                .is_some_and(|id| id.as_str() != event.instance_id.as_str())
                            {
                                continue;
                            }
                            if access::instance(&shared, &caller, event.instance_id.as_str())
                                .await
                                .is_ok()
                            {
                                return Some((event, (receiver, shared, caller, only)));
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

/// Publishes a committed event to the subscribers.
pub(crate) fn publish(shared: &Arc<Shared>, event: InstanceEvent) {
    // No subscriber is not an error.
    let _ = shared.events.send(event);
    shared.metrics.count_event();
}
