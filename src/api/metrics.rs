//! `GET /metrics` in the Prometheus text format: requests and errors counted by the API, and
//! the scheduler's queues (timers due and fired, outbox backlog) read from the store when
//! scraped. A small hand-written renderer: a handful of counters need no metrics framework.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::service::Service;
use crate::store::{OutboxStatus, TimerStatus};

/// Counters kept by the API process.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    duration_micros: AtomicU64,
    duration_count: AtomicU64,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    events_published: AtomicU64,
}

impl Metrics {
    /// Counts one HTTP request by route and status, with its duration.
    pub fn count_request(&self, route: &str, status: u16, took: Duration) {
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *requests.entry((route.to_string(), status)).or_default() += 1;
        drop(requests);
        self.duration_micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.duration_count.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one GraphQL error by code.
    pub fn count_error(&self, code: &'static str) {
        *self
            .errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(code)
            .or_default() += 1;
    }

    /// Counts one event published to subscribers.
    pub fn count_event(&self) {
        self.events_published.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text: the process counters, then the store gauges (when the store
    /// answers; a failing store leaves them out and says so in `procedo_store_up`).
    pub async fn render(&self, service: &Service) -> String {
        let mut out = String::new();
        out.push_str("# HELP procedo_http_requests_total HTTP requests by route and status.\n# TYPE procedo_http_requests_total counter\n");
        for ((route, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "procedo_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP procedo_http_request_duration_seconds Time to answer HTTP requests.\n# TYPE procedo_http_request_duration_seconds summary\n");
        let micros = self.duration_micros.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "procedo_http_request_duration_seconds_sum {}",
            micros as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "procedo_http_request_duration_seconds_count {}",
            self.duration_count.load(Ordering::Relaxed)
        );
        out.push_str("# HELP procedo_graphql_errors_total GraphQL errors by extensions.code.\n# TYPE procedo_graphql_errors_total counter\n");
        for (code, n) in self.errors.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "procedo_graphql_errors_total{{code=\"{code}\"}} {n}");
        }
        out.push_str("# HELP procedo_events_published_total Instance events published to subscribers.\n# TYPE procedo_events_published_total counter\n");
        let _ = writeln!(
            out,
            "procedo_events_published_total {}",
            self.events_published.load(Ordering::Relaxed)
        );
        match gauges(service).await {
            Ok((due, fired, backlog)) => {
                out.push_str("# HELP procedo_store_up Whether the store answered this scrape.\n# TYPE procedo_store_up gauge\nprocedo_store_up 1\n");
                out.push_str("# HELP procedo_timers_due Armed timers whose instant has passed.\n# TYPE procedo_timers_due gauge\n");
                let _ = writeln!(out, "procedo_timers_due {due}");
                out.push_str("# HELP procedo_timers_fired Timers fired or handled.\n# TYPE procedo_timers_fired gauge\n");
                let _ = writeln!(out, "procedo_timers_fired {fired}");
                out.push_str("# HELP procedo_outbox_backlog Outbox messages waiting to be delivered.\n# TYPE procedo_outbox_backlog gauge\n");
                let _ = writeln!(out, "procedo_outbox_backlog {backlog}");
            }
            Err(e) => {
                tracing::warn!(error = %e, "metriche del database non disponibili");
                out.push_str("# HELP procedo_store_up Whether the store answered this scrape.\n# TYPE procedo_store_up gauge\nprocedo_store_up 0\n");
            }
        }
        out
    }
}

async fn gauges(service: &Service) -> Result<(u64, u64, u64), crate::store::Error> {
    let store = service.store();
    let due = store.count_due_timers(service.now()).await?;
    let fired = store.count_timers(TimerStatus::Done).await?;
    let backlog = store.count_outbox(OutboxStatus::Pending).await?;
    Ok((due, fired, backlog))
}
