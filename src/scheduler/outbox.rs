//! Carrying out outbox rows: a `Dispatch` per kind, called for each claimed row; the row is
//! then marked done, retried with exponential backoff, or failed. Delivery is at least once
//! (a crash after the dispatch and before `done` dispatches again), so dispatchers are
//! idempotent: the built-in `start_instance` one starts the child with the row id as the
//! idempotency key, so a retry returns the child the first attempt started.

use std::future::Future;
use std::pin::Pin;

use tracing::{info, warn};

use super::Options;
use super::retry::backoff;
use crate::engine::{Actor, Effect};
use crate::service::{self, Service};
use crate::store::{self, OutboxRow, Store};

/// The kind of the outbox rows that start a sub-procedure.
pub const START_INSTANCE: &str = "start_instance";
/// The kind of the outbox rows that tell a parent its awaited child ended.
pub const RESUME_PARENT: &str = "resume_parent";
/// The kind of the outbox rows that record, on an earlier meeting, its verbale's approval.
pub const APPROVE_VERBALE: &str = "approva_verbale";

/// Why a dispatch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// Worth retrying later (a server down, a busy database).
    #[error("errore temporaneo: {0}")]
    Transient(String),
    /// Retrying cannot help (a payload that makes no sense, a refused command).
    #[error("errore definitivo: {0}")]
    Permanent(String),
}

/// The future a dispatcher returns.
pub type DispatchFuture<'a> = Pin<Box<dyn Future<Output = Result<(), DispatchError>> + Send + 'a>>;

/// Carries out outbox rows of one kind. Must be idempotent: a row may be dispatched again
/// after a crash (use `row.id` as the idempotency key of whatever it does).
pub trait Dispatch: Send + Sync {
    /// Carries out one row.
    fn dispatch<'a>(&'a self, row: &'a OutboxRow) -> DispatchFuture<'a>;
}

/// Starts the sub-procedure of an `Effect::StartInstance` row, as the system, with the row id
/// as the idempotency key.
#[derive(Debug, Clone)]
pub struct StartInstance {
    service: Service,
}

impl StartInstance {
    /// The dispatcher over a service.
    pub fn new(service: Service) -> StartInstance {
        StartInstance { service }
    }

    /// The idempotency key of the start a row asks for.
    pub fn idempotency_key(row: &OutboxRow) -> String {
        format!("outbox:{}", row.id)
    }
}

impl Dispatch for StartInstance {
    fn dispatch<'a>(&'a self, row: &'a OutboxRow) -> DispatchFuture<'a> {
        Box::pin(async move {
            let Effect::StartInstance {
                procedure,
                variables,
                parent,
                await_event,
            } = &row.payload
            else {
                return Err(DispatchError::Permanent(format!(
                    "la riga {} non chiede di avviare una procedura",
                    row.id
                )));
            };
            let key = StartInstance::idempotency_key(row);
            match self
                .service
                .start_child(
                    procedure,
                    None,
                    variables.clone(),
                    parent.as_deref(),
                    await_event.as_deref(),
                    &Actor::system(),
                    Some(&key),
                )
                .await
            {
                Ok(outcome) => {
                    info!(child = %outcome.instance.id, procedure = %procedure, replayed = outcome.committed.replayed, "sotto-procedura avviata");
                    Ok(())
                }
                Err(e) => Err(classify(e)),
            }
        })
    }
}

/// Fires the parent's event of an `Effect::ResumeParent` row, as the system, with the row id
/// as the idempotency key: a retry has one effect.
#[derive(Debug, Clone)]
pub struct ResumeParent {
    service: Service,
}

impl ResumeParent {
    /// The dispatcher over a service.
    pub fn new(service: Service) -> ResumeParent {
        ResumeParent { service }
    }
}

impl Dispatch for ResumeParent {
    fn dispatch<'a>(&'a self, row: &'a OutboxRow) -> DispatchFuture<'a> {
        Box::pin(async move {
            let Effect::ResumeParent {
                parent_id,
                event,
                results,
            } = &row.payload
            else {
                return Err(DispatchError::Permanent(format!(
                    "la riga {} non riguarda una procedura madre",
                    row.id
                )));
            };
            let key = format!("outbox:{}", row.id);
            match self
                .service
                .resume_parent(parent_id, event, results, &key)
                .await
            {
                Ok(outcome) => {
                    info!(parent = %parent_id, event = %event, state = %outcome.instance.state, replayed = outcome.committed.replayed, "procedura madre ripresa");
                    Ok(())
                }
                Err(e) => Err(classify(e)),
            }
        })
    }
}

/// Records on an earlier meeting that a later session approved its verbale, as the system,
/// with the row id as the idempotency key: a retry has one effect.
#[derive(Debug, Clone)]
pub struct ApproveVerbale {
    service: Service,
}

impl ApproveVerbale {
    /// The dispatcher over a service.
    pub fn new(service: Service) -> ApproveVerbale {
        ApproveVerbale { service }
    }
}

impl Dispatch for ApproveVerbale {
    fn dispatch<'a>(&'a self, row: &'a OutboxRow) -> DispatchFuture<'a> {
        Box::pin(async move {
            let Effect::ApproveVerbale {
                instance_id,
                approval,
            } = &row.payload
            else {
                return Err(DispatchError::Permanent(format!(
                    "la riga {} non riguarda l'approvazione di un verbale",
                    row.id
                )));
            };
            let key = format!("outbox:{}", row.id);
            let payload = serde_json::json!({
                "approvato_da": approval.by_instance,
                "seduta": approval.date,
                "punto": approval.item,
            });
            let approval = approval.clone();
            match self
                .service
                .record_step(
                    instance_id,
                    &crate::engine::Actor::system(),
                    &payload,
                    Some(&key),
                    move |p, instance, now| {
                        crate::engine::meeting::approve_verbale(
                            p,
                            &instance.snapshot(),
                            approval.clone(),
                            now,
                        )
                    },
                )
                .await
            {
                Ok(_) => {
                    info!(instance = %instance_id, "verbale approvato nella seduta successiva");
                    Ok(())
                }
                Err(e) => Err(classify(e)),
            }
        })
    }
}

/// Which service errors are worth retrying.
fn classify(e: service::Error) -> DispatchError {
    match e {
        service::Error::Store(
            store::Error::Busy | store::Error::Database(_) | store::Error::Conflict { .. },
        ) => DispatchError::Transient(e.to_string()),
        other => DispatchError::Permanent(other.to_string()),
    }
}

/// Dispatches one claimed row and records the result. A row the worker no longer holds (its
/// lease ran out and another worker took it) is left to that worker.
pub(super) async fn carry_out(
    service: &Service,
    dispatcher: &dyn Dispatch,
    row: &OutboxRow,
    options: &Options,
) -> Result<(), store::Error> {
    let store = service.store();
    let worker = options.worker_id.as_str();
    let recorded = match dispatcher.dispatch(row).await {
        Ok(()) => store.outbox_done(row.id, worker, service.now()).await,
        Err(DispatchError::Transient(why)) if row.attempts < options.outbox_max_attempts => {
            let delay = backoff(
                row.attempts,
                options.retry_backoff,
                options.retry_max_backoff,
                row.id.unsigned_abs(),
            );
            let next = service.now()
                + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1));
            warn!(error = %why, attempts = row.attempts, next = %next, "consegna non riuscita: nuovo tentativo più tardi");
            store.outbox_retry(row.id, worker, next, &why).await
        }
        Err(e) => {
            warn!(error = %e, attempts = row.attempts, "consegna abbandonata");
            store.outbox_failed(row.id, worker, &e.to_string()).await
        }
    };
    match recorded {
        Ok(()) => Ok(()),
        Err(store::Error::StaleOutbox { .. }) => {
            warn!("presa in carico scaduta durante la consegna: la riga resta a chi l'ha ripresa");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Gives a claimed row back untouched at shutdown (due again at once).
pub(super) async fn give_back(store: &Store, row: &OutboxRow, worker: &str) {
    match store.outbox_release(row.id, worker).await {
        Ok(()) | Err(store::Error::StaleOutbox { .. }) => {}
        Err(e) => {
            warn!(id = row.id, error = %e, "riga non restituita: tornerà disponibile alla scadenza della presa in carico")
        }
    }
}
