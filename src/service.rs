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
use crate::engine::{self, Actor, Command, TimerAction};
use crate::store::{
    self, Committed, InstanceRow, NewDefinition, NewSoccorsoResponse, NewSubmission, SoccorsoRow,
    StartRecord, StepRecord, Store, SubmissionRow, SubmissionWrite, Submitted, TimerRow,
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

/// How many times a participant's step is recomputed when another step committed first: the
/// steps of one instance are serialised, so with many ETS applying in the last minute each may
/// wait for all the others.
const PARTICIPANT_ATTEMPTS: usize = 64;

/// A group still to be formed (ATS) that applies: its capofila acts, the others are named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group {
    /// The other members, by name.
    pub members: Vec<String>,
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

    /// Stores one validated procedure version (a deploy): `Unchanged` when the same content is
    /// there already.
    ///
    /// # Errors
    ///
    /// `Store(DefinitionChanged)` when the same id and version is stored with another content.
    pub async fn deploy(&self, loaded: &crate::catalog::Loaded) -> Result<store::Saved, Error> {
        Ok(self
            .store
            .save_definition(&NewDefinition {
                id: loaded.procedure.id.clone(),
                version: loaded.procedure.version,
                title: loaded.procedure.title.clone(),
                content_hash: loaded.hash.clone(),
                source: loaded.source.clone(),
                assets: loaded.assets.clone(),
                loaded_at: self.now(),
            })
            .await?)
    }

    /// Moves an instance to `to_version` of its procedure, or with `dry_run` only says what the
    /// move would do. True when it moved: one transaction with its `migrazione` history row,
    /// its timers re-planned and its pinned version changed.
    ///
    /// # Errors
    ///
    /// `UnknownInstance`; `UnknownProcedure` for a version not deployed; the store's.
    pub async fn migrate(
        &self,
        instance_id: &str,
        to_version: u32,
        state_map: &std::collections::BTreeMap<String, String>,
        rettifica: Option<&str>,
        dry_run: bool,
        actor: &Actor,
    ) -> Result<(engine::migrate::MigrationPlan, bool), Error> {
        let row =
            self.store
                .instance(instance_id)
                .await?
                .ok_or_else(|| Error::UnknownInstance {
                    id: instance_id.to_string(),
                })?;
        let old = self
            .procedure(&row.definition_id, Some(row.definition_version))
            .await?;
        let new = self.procedure(&row.definition_id, Some(to_version)).await?;
        let (plan, step) = engine::migrate::plan(&old, &new, &row.snapshot(), state_map, rettifica);
        let Some(step) = step.filter(|_| !dry_run) else {
            return Ok((plan, false));
        };
        let payload = engine::migrate::payload(&plan, rettifica);
        self.store
            .commit_migration(
                &StepRecord {
                    instance_id: &row.id,
                    expected_version: row.version,
                    actor,
                    step: &step,
                    payload: &payload,
                    idempotency_key: None,
                    at: self.now(),
                    late: false,
                    fired_timer: None,
                    submission: None,
                },
                to_version,
            )
            .await?;
        Ok((plan, true))
    }

    /// Imports the workflow files at start-up: the database is the source of truth, so a file
    /// whose id and version is already deployed with another content is reported (in the
    /// returned list and the log) and skipped; it does not stop the start. Any other failure
    /// does.
    pub async fn import(&self, catalog: &Catalog) -> Result<Vec<String>, Error> {
        let mut conflicts = Vec::new();
        for l in &catalog.procedures {
            match self.deploy(l).await {
                Ok(_) => {}
                Err(Error::Store(store::Error::DefinitionChanged { id, version })) => {
                    let message = format!(
                        "{}: la procedura '{id}' versione {version} è già installata con un altro contenuto; il file è ignorato (per cambiarla, una nuova versione)",
                        l.path.display()
                    );
                    tracing::warn!(procedure = %id, version, "{message}");
                    conflicts.push(message);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(conflicts)
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
            None,
            actor,
            idempotency_key,
        )
        .await
    }

    /// Starts an instance as the child of `parent` (a sub-procedure), or a top-level one. A
    /// parent that awaits the child receives `await_event` when it ends.
    #[allow(clippy::too_many_arguments)]
    pub async fn start_child(
        &self,
        procedure_id: &str,
        version: Option<u32>,
        variables: Map<String, Value>,
        parent: Option<&str>,
        await_event: Option<&str>,
        actor: &Actor,
        idempotency_key: Option<&str>,
    ) -> Result<Outcome, Error> {
        if let Some(key) = idempotency_key
            && let Some(done) = self.replayed(key).await?
        {
            return Ok(done);
        }
        let p = self.procedure(procedure_id, version).await?;
        let now = self.now();
        let instance_id = crate::store::new_row_id(now);
        tracing::Span::current().record("id", tracing::field::display(&instance_id));
        let link = parent
            .zip(await_event)
            .map(|(parent, event)| engine::ParentLink {
                instance_id: parent.to_string(),
                event: event.to_string(),
            });
        let step = engine::start_awaited(&p, &instance_id, &variables, link, actor, now)?;
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
    /// the caller decides whether to retry on the new state. A participant's event is
    /// recomputed on the new state instead: what others did meanwhile does not concern it,
    /// and the engine checks it again.
    #[tracing::instrument(name = "instance", skip_all, fields(id = %instance_id, event = %command.event))]
    pub async fn fire(
        &self,
        instance_id: &str,
        command: &Command,
        idempotency_key: Option<&str>,
    ) -> Result<Outcome, Error> {
        if command.participant.is_some() {
            return self
                .fire_on_participant(instance_id, command, idempotency_key)
                .await;
        }
        if let Some(key) = idempotency_key
            && let Some(done) = self.replayed(key).await?
        {
            return Ok(done);
        }
        let (row, p) = self.pinned(instance_id).await?;
        self.fire_on(&row, &p, command, idempotency_key).await
    }

    /// `fire` of a command about one participant.
    async fn fire_on_participant(
        &self,
        instance_id: &str,
        command: &Command,
        idempotency_key: Option<&str>,
    ) -> Result<Outcome, Error> {
        let payload = Value::Object(command.payload.clone());
        self.participant_step(
            instance_id,
            &command.actor,
            &payload,
            None,
            idempotency_key,
            |p, row, now| engine::fire(p, &row.snapshot(), command, now),
        )
        .await
    }

    /// `fire` on an instance the caller has just read with its pinned procedure (the API
    /// reads it to ask the policy): not read again. The version read is the one the step
    /// must move from, so a step committed in between is a `Conflict` as with `fire`.
    #[tracing::instrument(name = "instance", skip_all, fields(id = %row.id, event = %command.event))]
    pub async fn fire_read(
        &self,
        row: &InstanceRow,
        p: &Procedure,
        command: &Command,
        idempotency_key: Option<&str>,
    ) -> Result<Outcome, Error> {
        if command.participant.is_some() {
            return self
                .fire_on_participant(&row.id, command, idempotency_key)
                .await;
        }
        if let Some(key) = idempotency_key
            && let Some(done) = self.replayed(key).await?
        {
            return Ok(done);
        }
        self.fire_on(row, p, command, idempotency_key).await
    }

    /// The step of a (non-participant) command on the row read, committed.
    async fn fire_on(
        &self,
        row: &InstanceRow,
        p: &Procedure,
        command: &Command,
        idempotency_key: Option<&str>,
    ) -> Result<Outcome, Error> {
        let now = self.now();
        let step = engine::fire(p, &row.snapshot(), command, now)?;
        let committed = self
            .store
            .commit_step(&StepRecord {
                instance_id: &row.id,
                expected_version: row.version,
                actor: &command.actor,
                step: &step,
                payload: &Value::Object(command.payload.clone()),
                idempotency_key,
                at: now,
                late: false,
                fired_timer: None,
                submission: None,
            })
            .await?;
        info!(from = %row.state, to = %step.to, "evento eseguito");
        if committed.replayed {
            return self.outcome(committed).await;
        }
        // What was just written, without reading it back.
        let instance = row.advanced(step, committed.version, now);
        Ok(Outcome {
            committed,
            instance,
        })
    }

    /// An instance with the definition version it is pinned to.
    async fn pinned(&self, instance_id: &str) -> Result<(InstanceRow, Arc<Procedure>), Error> {
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
        Ok((row, p))
    }

    /// A step about one participant, recomputed on the fresh instance when another step
    /// committed first; what the ETS sent (`submission`) is written in the same transaction.
    #[allow(clippy::too_many_arguments)]
    async fn participant_step(
        &self,
        instance_id: &str,
        actor: &Actor,
        payload: &Value,
        submission: Option<SubmissionWrite<'_>>,
        idempotency_key: Option<&str>,
        compute: impl Fn(&Procedure, &InstanceRow, DateTime<Utc>) -> Result<engine::Step, engine::Error>,
    ) -> Result<Outcome, Error> {
        if let Some(key) = idempotency_key
            && let Some(done) = self.replayed(key).await?
        {
            return Ok(done);
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (row, p) = self.pinned(instance_id).await?;
            let now = self.now();
            let step = compute(&p, &row, now)?;
            let result = self
                .store
                .commit_step(&StepRecord {
                    instance_id,
                    expected_version: row.version,
                    actor,
                    step: &step,
                    payload,
                    idempotency_key,
                    at: now,
                    late: false,
                    fired_timer: None,
                    submission: submission.clone(),
                })
                .await;
            match result {
                Ok(committed) => {
                    if let Some(moved) = &step.participant {
                        info!(participant = %moved.id, from = ?moved.from, to = %moved.to, event = %step.event, "partecipante");
                    }
                    return self.outcome(committed).await;
                }
                Err(store::Error::Conflict { .. }) if attempt < PARTICIPANT_ATTEMPTS => {
                    // A short random pause, so that those who lost do not collide again at once.
                    let pause = rand::random_range(1..=attempt.min(20) as u64);
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A command recorded on an instance without an event of its definition — the
    /// commissione's (criteria, nomina, declarations, scores, sessions) and a meeting's
    /// (answers, register, votes): computed by `compute` on the fresh instance, recomputed when
    /// another step committed first, committed with its history row and effects.
    pub async fn record_step(
        &self,
        instance_id: &str,
        actor: &Actor,
        payload: &Value,
        idempotency_key: Option<&str>,
        compute: impl Fn(&Procedure, &InstanceRow, DateTime<Utc>) -> Result<engine::Step, engine::Error>,
    ) -> Result<Outcome, Error> {
        use tracing::Instrument;
        let span = tracing::info_span!("instance", id = %instance_id);
        self.participant_step(instance_id, actor, payload, None, idempotency_key, compute)
            .instrument(span)
            .await
    }

    /// An application arrives. With a participant lifecycle, the application and its joining
    /// (the participant's first step, its actions and timers) are one transaction; else the
    /// application is stored as it is.
    pub async fn submit(
        &self,
        new: &NewSubmission,
        group: &Group,
        actor: &Actor,
    ) -> Result<Submitted, Error> {
        let (_, p) = self.pinned(&new.instance_id).await?;
        if p.participant.is_none() {
            return Ok(self.store.submit(new).await?);
        }
        let organisation = self.store.organisation(&new.organisation_id).await?;
        let pec = organisation.as_ref().and_then(|o| o.pec.clone());
        let name = organisation.map_or_else(|| new.organisation_id.clone(), |o| o.name);
        let payload = serde_json::json!({
            "domanda": new.id,
            "ente": name,
            "componenti": group.members,
            "documenti": new.documents.len(),
        });
        let joined = self
            .participant_step(
                &new.instance_id,
                actor,
                &payload,
                Some(SubmissionWrite::Submit(new)),
                None,
                |p, row, now| {
                    engine::join(
                        p,
                        &row.snapshot(),
                        &engine::Joining {
                            id: &new.id,
                            organisation_id: &new.organisation_id,
                            name: &name,
                            members: &group.members,
                            received_at: Some(new.at),
                            pec: pec.as_deref(),
                        },
                        now,
                    )
                },
            )
            .await;
        match joined {
            Ok(_) => {}
            Err(Error::Store(store::Error::AlreadyExists { id, .. })) => {
                return match self.store.submission(&id).await? {
                    Some(existing) => Ok(Submitted::AlreadyActive(existing)),
                    None => Err(Error::Store(store::Error::NotFound {
                        what: "domanda",
                        id,
                    })),
                };
            }
            Err(Error::Engine(engine::Error::AlreadyParticipant { .. })) => {
                let active = self
                    .store
                    .submissions(&store::SubmissionFilter {
                        instance_id: Some(new.instance_id.clone()),
                        organisation_id: Some(new.organisation_id.clone()),
                    })
                    .await?
                    .into_iter()
                    .find(|s| s.status == store::SubmissionStatus::Submitted);
                if let Some(existing) = active {
                    return Ok(Submitted::AlreadyActive(existing));
                }
                return Err(Error::Engine(engine::Error::AlreadyParticipant { name }));
            }
            Err(e) => return Err(e),
        }
        let stored =
            self.store
                .submission(&new.id)
                .await?
                .ok_or_else(|| store::Error::NotFound {
                    what: "domanda",
                    id: new.id.clone(),
                })?;
        Ok(Submitted::Created(stored))
    }

    /// An application is withdrawn; its participant, if any, stops counting in the same
    /// transaction. `None` if it was not active.
    pub async fn withdraw(
        &self,
        submission: &SubmissionRow,
        actor: &Actor,
    ) -> Result<Option<SubmissionRow>, Error> {
        let row = self
            .store
            .instance(&submission.instance_id)
            .await?
            .ok_or_else(|| Error::UnknownInstance {
                id: submission.instance_id.clone(),
            })?;
        if !row.data.participants.contains_key(&submission.id) {
            return Ok(self
                .store
                .withdraw_submission(&submission.id, self.now())
                .await?);
        }
        let payload = serde_json::json!({ "domanda": submission.id });
        let now = self.now();
        let done = self
            .participant_step(
                &submission.instance_id,
                actor,
                &payload,
                Some(SubmissionWrite::Withdraw {
                    id: &submission.id,
                    at: now,
                }),
                None,
                |p, row, now| engine::withdraw(p, &row.snapshot(), &submission.id, now),
            )
            .await;
        match done {
            Ok(_) => Ok(self.store.submission(&submission.id).await?),
            Err(Error::Engine(engine::Error::Withdrawn { .. }))
            | Err(Error::Store(store::Error::NotFound { .. })) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// An answer to a soccorso istruttorio. With a participant lifecycle that names its answer
    /// event, the answer fires it on that participant alone, in one transaction; else it is
    /// stored as it is.
    pub async fn answer_soccorso(
        &self,
        new: &NewSoccorsoResponse,
        instance_id: &str,
        actor: &Actor,
    ) -> Result<SoccorsoRow, Error> {
        let (row, p) = self.pinned(instance_id).await?;
        let answer = p
            .participant
            .as_ref()
            .and_then(|d| d.answer.as_ref())
            .filter(|_| row.data.participants.contains_key(&new.submission_id));
        let Some(event) = answer else {
            return Ok(self.store.add_soccorso_response(new).await?);
        };
        let command = Command {
            event: event.to_string(),
            actor: actor.clone(),
            payload: Map::new(),
            participant: Some(new.submission_id.clone()),
        };
        let payload = serde_json::json!({
            "risposta": new.id,
            "documenti": new.documents.len(),
        });
        self.participant_step(
            instance_id,
            actor,
            &payload,
            Some(SubmissionWrite::Soccorso(new)),
            None,
            // Judged at its receipt: an answer by PEC read after its consegna counts from
            // the consegna.
            |p, row, now| engine::fire(p, &row.snapshot(), &command, new.at.min(now)),
        )
        .await?;
        self.store
            .soccorso_responses(&new.submission_id)
            .await?
            .into_iter()
            .find(|r| r.id == new.id)
            .ok_or_else(|| {
                Error::Store(store::Error::NotFound {
                    what: "risposta al soccorso",
                    id: new.id.clone(),
                })
            })
    }

    /// Tells a parent that awaits a child that it ended: the parent's event, as the system,
    /// with the child's results its transition takes as inputs.
    pub async fn resume_parent(
        &self,
        parent_id: &str,
        event: &str,
        results: &Map<String, Value>,
        idempotency_key: &str,
    ) -> Result<Outcome, Error> {
        let (row, p) = self.pinned(parent_id).await?;
        let taken: Vec<String> = p
            .candidates(&row.state, event)
            .flat_map(|t| t.inputs.iter().map(|i| i.variable.to_string()))
            .collect();
        let payload = results
            .iter()
            .filter(|(name, value)| taken.contains(name) && !value.is_null())
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let command = Command {
            event: event.to_string(),
            actor: Actor::system(),
            payload,
            participant: None,
        };
        self.fire(parent_id, &command, Some(idempotency_key)).await
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
                let notifications = engine::reminder_notifications(
                    &p,
                    &row.id,
                    &row.state,
                    &row.data,
                    &engine::ReminderTimer {
                        timer: &timer.timer,
                        key: &timer.key,
                        action: &timer.action,
                        trace: &timer.trace,
                    },
                );
                match self
                    .store
                    .complete_reminder(timer.id, worker, &notifications, now)
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
                        submission: None,
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
        let TimerAction::Fire { event, participant } = &timer.action else {
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
            participant: participant.clone(),
        };
        Ok(engine::fire(&p, &row.snapshot(), &command, now))
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
