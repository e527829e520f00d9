//! The heartbeat of a worker: while it works on claimed rows (timers, outbox rows, email
//! deliveries, runs of recurring jobs) their leases are renewed, so that the lease itself can
//! be short — a worker killed with SIGKILL loses its claims to the others within one lease,
//! seconds rather than minutes — while a slow piece of work held by a live worker is never
//! taken from it.
//!
//! A worker registers what it claimed (`hold`), asks before starting each piece of work
//! whether it may (`may_start`), and forgets a claim when the work on it ended (`forget`).
//! A renewal round (`beat`) moves the leases of every held claim to `now + lease` in one
//! statement per table and learns which claims are no longer held.
//!
//! Architecture Invariant: a worker starts no work on a claim whose lease it could not keep —
//! not renewed within the last two thirds of a lease (the database unreachable), or taken by
//! another worker — so no second copy of a message leaves while the first worker still holds
//! the row, and a worker cut off from the database stops starting sends before its lease can
//! run out.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use tracing::{debug, warn};

use crate::clock::SharedClock;
use crate::store::{self, Claim, Store};

/// What one renewal round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Beat {
    /// Claims whose lease was moved forward.
    pub renewed: usize,
    /// Claims found no longer held (finished meanwhile, or taken by another worker).
    pub lost: usize,
}

/// A worker's claims and the renewal of their leases. Cheap to clone; clones share the
/// claims.
#[derive(Clone)]
pub struct Heartbeat {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    clock: SharedClock,
    worker: String,
    lease: Duration,
    /// Each claim held, with the end of its lease as last written.
    held: Mutex<HashMap<Claim, DateTime<Utc>>>,
}

impl std::fmt::Debug for Heartbeat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heartbeat")
            .field("worker", &self.inner.worker)
            .field("lease", &self.inner.lease)
            .field("held", &self.held_count())
            .finish()
    }
}

impl Heartbeat {
    /// The heartbeat of `worker`, whose claims last `lease` from each renewal.
    pub fn new(store: Store, clock: SharedClock, worker: &str, lease: Duration) -> Heartbeat {
        Heartbeat {
            inner: Arc::new(Inner {
                store,
                clock,
                worker: worker.to_owned(),
                lease,
                held: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The default pause between two renewals: a third of the lease, so that two renewals
    /// can fail before the lease is at risk.
    pub fn default_interval(lease: Duration) -> StdDuration {
        (lease / 3)
            .to_std()
            .unwrap_or(StdDuration::from_secs(1))
            .max(StdDuration::from_millis(50))
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<Claim, DateTime<Utc>>> {
        self.inner.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many claims are held.
    pub fn held_count(&self) -> usize {
        self.held().len()
    }

    /// Records claims just taken, whose claim statement wrote `lease_until`.
    pub fn hold(&self, claims: impl IntoIterator<Item = Claim>, lease_until: DateTime<Utc>) {
        let mut held = self.held();
        for claim in claims {
            held.insert(claim, lease_until);
        }
    }

    /// Forgets a claim: the work on it ended (done, retried, failed or given back).
    pub fn forget(&self, claim: &Claim) {
        self.held().remove(claim);
    }

    /// Whether work on `claim` may start now: it is held and at least a third of its lease is
    /// left, so that the work starts well before another worker could take the row.
    pub fn may_start(&self, claim: &Claim) -> bool {
        let now = self.inner.clock.now();
        let margin = self.inner.lease / 3;
        self.held()
            .get(claim)
            .is_some_and(|until| now + margin < *until)
    }

    /// One renewal round: every held claim's lease moves to `now + lease`; claims the store
    /// no longer finds held are dropped. On a database error nothing changes here (the
    /// leases age, and `may_start` turns false when too little is left).
    pub async fn beat(&self) -> Result<Beat, store::Error> {
        let claims: Vec<Claim> = self.held().keys().cloned().collect();
        if claims.is_empty() {
            return Ok(Beat::default());
        }
        let until = self
            .inner
            .clock
            .now()
            .checked_add_signed(self.inner.lease)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let renewed = self
            .inner
            .store
            .renew_claims(&claims, &self.inner.worker, until)
            .await?;
        let renewed: std::collections::HashSet<Claim> = renewed.into_iter().collect();
        let mut beat = Beat::default();
        let mut held = self.held();
        for claim in claims {
            if renewed.contains(&claim) {
                if let Some(end) = held.get_mut(&claim) {
                    *end = until;
                    beat.renewed += 1;
                }
            } else if held.remove(&claim).is_some() {
                beat.lost += 1;
            }
        }
        Ok(beat)
    }

    /// Renews every `every` until `shutdown` completes.
    pub fn spawn(
        &self,
        every: StdDuration,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let heartbeat = self.clone();
        tokio::spawn(async move {
            let mut shutdown = std::pin::pin!(shutdown);
            loop {
                tokio::select! {
                    () = &mut shutdown => return,
                    () = tokio::time::sleep(every) => {}
                }
                match heartbeat.beat().await {
                    Ok(beat) if beat.lost > 0 => {
                        warn!(
                            lost = beat.lost,
                            renewed = beat.renewed,
                            "prese in carico perse: il lavoro su di esse non sarà iniziato"
                        )
                    }
                    Ok(beat) => {
                        if beat.renewed > 0 {
                            debug!(renewed = beat.renewed, "prese in carico rinnovate");
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, held = heartbeat.held_count(), "prese in carico non rinnovate: nessun nuovo lavoro finché il database non risponde")
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_interval_is_a_third_of_the_lease_and_never_zero() {
        assert_eq!(
            Heartbeat::default_interval(Duration::seconds(15)),
            StdDuration::from_secs(5)
        );
        assert_eq!(
            Heartbeat::default_interval(Duration::milliseconds(30)),
            StdDuration::from_millis(50)
        );
    }
}
