//! The application service: loads pinned definitions, runs the pure engine, and commits each
//! step with its effects through the store. CLI, API and scheduler all go through here, so
//! there is one path from a command to the database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tracing::{info, warn};

use crate::catalog::{self, Catalog};
use crate::clock::SharedClock;
use crate::definition::{Diagnostic, Procedure};
use crate::engine::{self, Actor, Command, Snapshot, TimerAction};
use crate::store::{
    self, Committed, InstanceRow, NewDefinition, StartRecord, StepRecord, Store, TimerRow,
};

/// Why a command failed, for the boundary (CLI, API) to map.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The engine refused the command.
    #[error(transparent)]
    Engine(#[from] engine::Error),
    /// The store failed or refused (conflict, not found…).
    #[error(transparent)]
    Store(#[from] store::Error),
    /// No such procedure (or version) is installed.
    #[error("procedura sconosciuta '{id}'{}", version.map(|v| format!(" versione {v}")).unwrap_or_default())]
    UnknownProcedure {
        /// The id.
        id: String,
        /// The version asked for.
        version: Option<u32>,
    },
    /// No such instance.
    #[error("istanza sconosciuta '{id}'")]
    UnknownInstance {
        /// The id.
        id: String,
    },
    /// A stored definition no longer validates (should not happen: they are pinned).
    #[error("definizione salvata non valida: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Definition(Vec<Diagnostic>),
}

/// Outcome of a command.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// What the store recorded.
    pub committed: Committed,
    /// The instance after the command.
    pub instance: InstanceRow,
}

/// What firing a due timer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimerOutcome {
    /// The timer's event moved the instance.
    Fired,
    /// A reminder was queued for delivery.
    Reminded,
    /// The timer no longer applied (the engine refused its event); recorded, nothing moved.
    Skipped(String),
    /// Someone else changed the timer or the instance first; nothing was done.
    Stale,
}

/// Pinned procedures by (id, version): they never change once stored.
type ProcedureCache = HashMap<(String, u32), Arc<Procedure>>;

/// The service.
#[derive(Clone)]
pub struct Service {
    store: Store,
    clock: SharedClock,
    cache: Arc<Mutex<ProcedureCache>>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").finish_non_exhaustive()
    }
}

/// A timer fired later than this is marked late in the history.
pub const LATE_AFTER: chrono::Duration = chrono::Duration::seconds(60);

impl Service {
    /// A service over a store and a clock.
    pub fn new(store: Store, clock: SharedClock) -> Service {
        Service {
            store,
            clock,
            cache: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The clock's current instant.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The clock itself, for the workers that keep time beside the service (heartbeats).
    pub fn clock(&self) -> SharedClock {
        self.clock.clone()
    }

    /// Saves every procedure of a catalog (new versions are added; a changed file with the same
    /// version is refused by the store).
    pub async fn install(
        &self,
        catalog: &Catalog,
    ) -> Result<Vec<(String, u32, store::Saved)>, Error> {
        let mut out = Vec::new();
        for l in &catalog.procedures {
            let saved = self
                .store
                .save_definition(&NewDefinition {
                    id: l.procedure.id.clone(),
                    version: l.procedure.version,
                    title: l.procedure.title.clone(),
                    content_hash: l.hash.clone(),
                    source: l.source.clone(),
                    assets: l.assets.clone(),
                    loaded_at: self.now(),
                })
                .await?;
            out.push((l.procedure.id.clone(), l.procedure.version, saved));
        }
        Ok(out)
    }

    /// The pinned procedure of a version (latest when `version` is `None`).
    pub async fn procedure(&self, id: &str, version: Option<u32>) -> Result<Arc<Procedure>, Error> {
        if let Some(p) = version.and_then(|v| {
            self.cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&(id.to_string(), v))
                .cloned()
        }) {
            return Ok(p);
        }
        let row = match version {
            Some(v) => self.store.definition(id, v).await?,
            None => self.store.latest_definition(id).await?,
        };
        let row = row.ok_or_else(|| Error::UnknownProcedure {
            id: id.to_string(),
            version,
        })?;
        let key = (row.id.clone(), row.version);
        if let Some(p) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(p.clone());
        }
        let name = format!("{}@v{}", row.id, row.version);
        let procedure = Arc::new(
            catalog::from_stored(&name, &row.source, &row.assets).map_err(Error::Definition)?,
        );
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, procedure.clone());
        Ok(procedure)
    }

    /// Starts an instance of the latest (or given) version of a procedure.
    #[tracing::instrument(name = "instance", skip_all, fields(procedure = %procedure_id, id = tracing::field::Empty))]
    pub async fn start(
        &self,
        procedure_id: &str,
        version: Option<u32>,
        variables: Map<String, Value>,
        actor: &Actor,
        idempotency_key: Option<&str>,
    ) -> Result<Outcome, Error> {
        self.start_child(
            procedure_id,
            version,
            variables,
            None,
            actor,
            idempotency_key,
        )
        .await
    }

    /// Starts an instance as the child of `parent` (a sub-procedure), or a top-level one.
    pub async fn start_child(
        &self,
        procedure_id: &str,
        version: Option<u32>,
        variables: Map<String, Value>,
        parent: Option<&str>,
        actor: &Actor,
        idempotency_key: Option<&str>,
    ) -> Result<Outcome, Error> {
        if let Some(key) = idempotency_key
            && let Some(done) = self.replayed(key).await?
        {
            return Ok(done);
        }
        let p = self.procedure(procedure_id, version).await?;
        let instance_id = uuid::Uuid::new_v4().to_string();
        tracing::Span::current().record("id", tracing::field::display(&instance_id));
        let now = self.now();
        let step = engine::start(&p, &instance_id, &variables, actor, now)?;
        let payload = Value::Object(variables);
        let parent_id = parent.map(str::to_string);
        let committed = self
            .store
            .commit_start(&StartRecord {
                instance_id: &instance_id,
                definition_id: &p.id,
                definition_version: p.version,
                parent_id,
                actor,
                step: &step,
                payload: &payload,
                idempotency_key,
                at: now,
            })
            .await?;
        info!(state = %step.to, "istanza avviata");
        self.outcome(committed).await
    }

    /// Fires an event on an instance. A conflict (someone moved it first) is returned as is:
    /// the caller decides whether to retry on the new state.
    #[tracing::instrument(name = "instance", skip_all, fields(id = %instance_id, event = %command.event))]
    pub async fn fire(
        &self,
        instance_id: &str,
        command: &Command,
        idempotency_key: Option<&str>,
    ) -> Result<Outcome, Error> {
        if let Some(key) = idempotency_key
            && let Some(done) = self.replayed(key).await?
        {
            return Ok(done);
        }
        let row =
            self.store
                .instance(instance_id)
                .await?
                .ok_or_else(|| Error::UnknownInstance {
                    id: instance_id.to_string(),
                })?;
        let p = self
            .procedure(&row.definition_id, Some(row.definition_version))
            .await?;
        let now = self.now();
        let step = engine::fire(
            &p,
            &Snapshot {
                id: &row.id,
                state: &row.state,
                data: &row.data,
            },
            command,
            now,
        )?;
        let committed = self
            .store
            .commit_step(&StepRecord {
                instance_id,
                expected_version: row.version,
                actor: &command.actor,
                step: &step,
                payload: &Value::Object(command.payload.clone()),
                idempotency_key,
                at: now,
                late: false,
                fired_timer: None,
            })
            .await?;
        info!(from = %row.state, to = %step.to, "evento eseguito");
        self.outcome(committed).await
    }

    /// Carries out one claimed timer: its event through the engine, or its reminder into the
    /// outbox; in both cases the timer is marked done in the same transaction as the effect.
    #[tracing::instrument(name = "timer", skip_all, fields(id = timer.id, instance = %timer.instance_id, key = %timer.key))]
    pub async fn fire_timer(&self, timer: &TimerRow, worker: &str) -> Result<TimerOutcome, Error> {
        let now = self.now();
        match &timer.action {
            TimerAction::Remind { .. } => {
                let Some(row) = self.store.instance(&timer.instance_id).await? else {
                    return self.skip(timer, worker, "istanza inesistente".into()).await;
                };
                let p = self
                    .procedure(&row.definition_id, Some(row.definition_version))
                    .await?;
                let Some(notification) = engine::reminder_notification(
                    &p,
                    &row.id,
                    &row.state,
                    &row.data,
                    &timer.timer,
                    &timer.action,
                    &timer.trace,
                ) else {
                    return self.skip(timer, worker, "non è un promemoria".into()).await;
                };
                match self
                    .store
                    .complete_reminder(timer.id, worker, &notification, now)
                    .await
                {
                    Ok(()) => Ok(TimerOutcome::Reminded),
                    Err(store::Error::StaleTimer { .. }) => Ok(TimerOutcome::Stale),
                    Err(e) => Err(e.into()),
                }
            }
            TimerAction::Fire { .. } => {
                let Some(row) = self.store.instance(&timer.instance_id).await? else {
                    return self.skip(timer, worker, "istanza inesistente".into()).await;
                };
                let step = match self.timer_step(timer, &row, now).await? {
                    Ok(step) => step,
                    Err(refusal) => {
                        let why = refusal.to_string();
                        warn!(%why, "evento del timer rifiutato");
                        return self.skip(timer, worker, why).await;
                    }
                };
                let actor = Actor::system();
                let payload = timer_payload(timer);
                let result = self
                    .store
                    .commit_step(&StepRecord {
                        instance_id: &row.id,
                        expected_version: row.version,
                        actor: &actor,
                        step: &step,
                        payload: &payload,
                        idempotency_key: None,
                        at: now,
                        late: is_late(timer, now),
                        fired_timer: Some(timer.id),
                    })
                    .await;
                match result {
                    Ok(_) => Ok(TimerOutcome::Fired),
                    // The instance moved or the timer was replaced meanwhile: the claim lapses and
                    // the timer (if still wanted) is picked up again on the new state.
                    Err(store::Error::StaleTimer { .. }) => Ok(TimerOutcome::Stale),
                    Err(store::Error::Conflict { .. }) => {
                        // The concurrent step may have disarmed the timer: either way, stale.
                        match self.store.release_timer(timer.id, worker).await {
                            Ok(()) | Err(store::Error::StaleTimer { .. }) => {
                                Ok(TimerOutcome::Stale)
                            }
                            Err(e) => Err(e.into()),
                        }
                    }
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// The step an event timer takes on its instance at `now`: the outer error is the service's
    /// (the definition did not load), the inner one the engine's refusal. Shared by
    /// `fire_timer` and the scheduler's batched path, so both fire a timer the same way.
    pub async fn timer_step(
        &self,
        timer: &TimerRow,
        row: &InstanceRow,
        now: DateTime<Utc>,
    ) -> Result<Result<engine::Step, engine::Error>, Error> {
        let TimerAction::Fire { event } = &timer.action else {
            return Ok(Err(engine::Error::UnknownEvent {
                event: timer.key.clone(),
            }));
        };
        let p = self
            .procedure(&row.definition_id, Some(row.definition_version))
            .await?;
        let command = Command {
            event: event.clone(),
            actor: Actor::system(),
            payload: Map::new(),
        };
        Ok(engine::fire(
            &p,
            &Snapshot {
                id: &row.id,
                state: &row.state,
                data: &row.data,
            },
            &command,
            now,
        ))
    }

    /// Marks a timer done without a transition (it no longer applies); `Stale` if this worker
    /// no longer holds it.
    async fn skip(
        &self,
        timer: &TimerRow,
        worker: &str,
        why: String,
    ) -> Result<TimerOutcome, Error> {
        match self
            .store
            .finish_timer(timer.id, worker, &format!("non applicabile: {why}"))
            .await
        {
            Ok(()) => Ok(TimerOutcome::Skipped(why)),
            Err(store::Error::StaleTimer { .. }) => Ok(TimerOutcome::Stale),
            Err(e) => Err(e.into()),
        }
    }

    async fn replayed(&self, key: &str) -> Result<Option<Outcome>, Error> {
        match self.store.command(key).await? {
            Some(row) => Ok(Some(
                self.outcome(Committed {
                    instance_id: row.instance_id,
                    seq: row.seq,
                    version: row.seq,
                    replayed: true,
                })
                .await?,
            )),
            None => Ok(None),
        }
    }

    async fn outcome(&self, committed: Committed) -> Result<Outcome, Error> {
        let instance = self
            .store
            .instance(&committed.instance_id)
            .await?
            .ok_or_else(|| Error::UnknownInstance {
                id: committed.instance_id.clone(),
            })?;
        Ok(Outcome {
            committed,
            instance,
        })
    }
}

/// The history payload of a step fired by a timer: which timer, and the instant it stood for.
pub fn timer_payload(timer: &TimerRow) -> Value {
    serde_json::json!({ "timer": timer.key, "scadenza": timer.fire_at.to_rfc3339() })
}

/// Whether a timer fired at `now` is late enough to be marked so in the history.
pub fn is_late(timer: &TimerRow, now: DateTime<Utc>) -> bool {
    now - timer.fire_at > LATE_AFTER
}
