//! Instances and their history: committing a step (the instance row, a history row, the
//! step's timers and outbox rows, the idempotency key) in one transaction, and reading back.
//!
//! The instance `version` is the optimistic lock: it is 1 after the start and grows by one per
//! step, and the history row of a step has `seq` equal to the version it produced, so
//! `UNIQUE(instance_id, seq)` makes gaps and duplicates in the history impossible.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Statement,
};
use serde_json::Value;

use super::entities::{command, history, instance, outbox as outbox_entity, timer};
use super::script::Script;
use super::submissions::{self, SubmissionWrite};
use super::{
    Error, Result, Store, definitions, from_json, instant, is_unique_violation, outbox, rollback,
    timers, to_json,
};
use crate::engine::{Actor, Effect, InstanceData, ParticipantMove, Step};

/// What `commit_start` writes.
#[derive(Debug, Clone)]
pub struct StartRecord<'a> {
    /// The new instance's id (a UUID).
    pub instance_id: &'a str,
    /// Definition id; the (id, version) must be stored.
    pub definition_id: &'a str,
    /// Definition version the instance is pinned to.
    pub definition_version: u32,
    /// The instance that started this one, if any.
    pub parent_id: Option<String>,
    /// Who started it.
    pub actor: &'a Actor,
    /// The engine's start step.
    pub step: &'a Step,
    /// The variables as given (recorded in the history).
    pub payload: &'a Value,
    /// Makes a retried start a no-op that returns the first outcome.
    pub idempotency_key: Option<&'a str>,
    /// The command's `now`.
    pub at: DateTime<Utc>,
}

/// What `commit_step` writes.
#[derive(Debug, Clone)]
pub struct StepRecord<'a> {
    /// The instance.
    pub instance_id: &'a str,
    /// The version the step was computed from; the commit fails with `Conflict` if the
    /// instance has moved on since.
    pub expected_version: i64,
    /// Who acts.
    pub actor: &'a Actor,
    /// The engine's step.
    pub step: &'a Step,
    /// The command's payload (recorded in the history).
    pub payload: &'a Value,
    /// Makes a retried command a no-op that returns the first outcome.
    pub idempotency_key: Option<&'a str>,
    /// The command's `now`.
    pub at: DateTime<Utc>,
    /// A timer fired after its instant (recorded in the history).
    pub late: bool,
    /// The claimed timer this step fires: it must still be claimed, and becomes done.
    pub fired_timer: Option<i64>,
    /// What an ETS sent that the step is about (an application, a withdrawal, a soccorso
    /// answer), written in the same transaction.
    pub submission: Option<SubmissionWrite<'a>>,
}

/// The outcome of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The instance (for a replayed start: the one the first call created).
    pub instance_id: String,
    /// The history row's `seq`.
    pub seq: i64,
    /// The instance version after the step (equal to `seq`).
    pub version: i64,
    /// The idempotency key had been seen: nothing was written, this is the first outcome.
    pub replayed: bool,
}

/// A stored instance.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRow {
    /// Id (UUID).
    pub id: String,
    /// Definition id.
    pub definition_id: String,
    /// Pinned definition version.
    pub definition_version: u32,
    /// The instance that started it.
    pub parent_id: Option<String>,
    /// Current state.
    pub state: String,
    /// The state is final.
    pub is_final: bool,
    /// Variables, terms, suspensions.
    pub data: InstanceData,
    /// Optimistic-lock version: pass it as `expected_version`.
    pub version: i64,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When its last step committed.
    pub updated_at: DateTime<Utc>,
}

impl InstanceRow {
    /// What the engine reads of it.
    pub fn snapshot(&self) -> crate::engine::Snapshot<'_> {
        crate::engine::Snapshot {
            id: &self.id,
            state: &self.state,
            data: &self.data,
        }
    }

    /// The row as a step committed at `at` leaves it, at `version`: what reading it back
    /// would give.
    pub fn advanced(&self, step: Step, version: i64, at: DateTime<Utc>) -> InstanceRow {
        InstanceRow {
            id: self.id.clone(),
            definition_id: self.definition_id.clone(),
            definition_version: self.definition_version,
            parent_id: self.parent_id.clone(),
            state: step.to,
            is_final: step.is_final,
            data: step.data,
            version,
            created_at: self.created_at,
            updated_at: instant(at),
        }
    }

    pub(super) fn from_model(m: instance::Model) -> Result<InstanceRow> {
        let definition_version = u32::try_from(m.definition_version)
            .map_err(|_| Error::Corrupt(format!("instances.definition_version di {}", m.id)))?;
        let data = from_json(&m.data, format_args!("instances.data di {}", m.id))?;
        Ok(InstanceRow {
            id: m.id,
            definition_id: m.definition_id,
            definition_version,
            parent_id: m.parent_id,
            state: m.state,
            is_final: m.is_final,
            data,
            version: m.version,
            created_at: m.created_at,
            updated_at: m.updated_at,
        })
    }
}

/// One history row: what a judge reads.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRow {
    /// Row id.
    pub id: i64,
    /// The instance.
    pub instance_id: String,
    /// 1 for the start, then one per step, no gaps.
    pub seq: i64,
    /// The command's `now`.
    pub at: DateTime<Utc>,
    /// Who acted, in which role.
    pub actor: Actor,
    /// The event (`avvio` for the start).
    pub event: String,
    /// State before (`None` for the start).
    pub from_state: Option<String>,
    /// State after.
    pub to_state: String,
    /// The command's payload.
    pub payload: Value,
    /// A timer fired after its instant.
    pub late: bool,
    /// The command's idempotency key.
    pub idempotency_key: Option<String>,
    /// The effects the step produced, as JSON (a list of `Effect`s when written): kept as a
    /// value so that rows written by older versions always read back.
    pub effects: Value,
    /// The participant whose event it was, and how it moved.
    pub participant: Option<ParticipantMove>,
}

impl HistoryRow {
    fn from_model(m: history::Model) -> Result<HistoryRow> {
        let payload = from_json(
            &m.payload,
            format_args!("history.payload di {} #{}", m.instance_id, m.seq),
        )?;
        let effects = from_json(
            &m.effects,
            format_args!("history.effects di {} #{}", m.instance_id, m.seq),
        )?;
        Ok(HistoryRow {
            id: m.id,
            instance_id: m.instance_id,
            seq: m.seq,
            at: m.at,
            actor: Actor {
                id: m.actor_id,
                role: m.role,
            },
            event: m.event,
            from_state: m.from_state,
            to_state: m.to_state,
            payload,
            late: m.late,
            idempotency_key: m.idempotency_key,
            effects,
            participant: m
                .participant_id
                .zip(m.participant_to)
                .map(|(id, to)| ParticipantMove {
                    id,
                    from: m.participant_from,
                    to,
                }),
        })
    }
}

/// An accepted command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRow {
    /// The key.
    pub idempotency_key: String,
    /// The instance it acted on.
    pub instance_id: String,
    /// The history row it produced.
    pub seq: i64,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl From<command::Model> for CommandRow {
    fn from(m: command::Model) -> Self {
        CommandRow {
            idempotency_key: m.idempotency_key,
            instance_id: m.instance_id,
            seq: m.seq,
            created_at: m.created_at,
        }
    }
}

/// Which instances to list. Results are ordered by id; page with `after_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceFilter {
    /// Only this definition.
    pub definition_id: Option<String>,
    /// Only this state.
    pub state: Option<String>,
    /// Only ids after this one (the last id of the previous page).
    pub after_id: Option<String>,
    /// At most this many.
    pub limit: Option<u64>,
}

/// What a write transaction came to.
enum Attempt {
    /// Written; commit.
    Written(Committed),
    /// The key was already used; roll back and return the first outcome.
    Replayed(Committed),
    /// A concurrent transaction committed the same key first; roll back, then read it.
    KeyTaken,
}

impl Store {
    /// Starts an instance: inserts it at version 1 with history row 1, its timers and outbox
    /// rows. With an idempotency key already used, writes nothing and returns the first outcome.
    #[tracing::instrument(skip_all, fields(instance_id = record.instance_id, definition = record.definition_id))]
    pub async fn commit_start(&self, record: &StartRecord<'_>) -> Result<Committed> {
        let (txn, _turn) = self.begin_write().await?;
        let attempt = start_in(&txn, record).await;
        let attempt = settle_attempt(txn, attempt).await?;
        self.resolve(attempt, record.idempotency_key).await
    }

    /// Commits a step computed from version `expected_version`: one transaction that (1)
    /// returns the first outcome if the idempotency key was used, (2) moves the instance to
    /// the next version or fails with `Conflict`, (3) appends the history row, (4) marks the
    /// fired timer done (`StaleTimer` if it is no longer claimed), (5) writes timers and outbox
    /// rows for the effects and (6) records the key.
    #[tracing::instrument(skip_all, fields(instance_id = record.instance_id, expected_version = record.expected_version, event = %record.step.event))]
    pub async fn commit_step(&self, record: &StepRecord<'_>) -> Result<Committed> {
        let (txn, _turn) = self.begin_write().await?;
        let attempt = step_in(&txn, record).await;
        let attempt = settle_attempt(txn, attempt).await?;
        self.resolve(attempt, record.idempotency_key).await
    }

    /// Commits a migration step and pins the instance to `definition_version`, in one
    /// transaction.
    pub async fn commit_migration(
        &self,
        record: &StepRecord<'_>,
        definition_version: u32,
    ) -> Result<Committed> {
        let version = i32::try_from(definition_version).map_err(|_| Error::NotFound {
            what: "definizione",
            id: format!("versione {definition_version}"),
        })?;
        let (txn, _turn) = self.begin_write().await?;
        let attempt = async {
            let attempt = step_in(&txn, record).await?;
            if let Attempt::Written(_) = &attempt {
                instance::Entity::update_many()
                    .col_expr(instance::Column::DefinitionVersion, Expr::value(version))
                    .filter(instance::Column::Id.eq(record.instance_id))
                    .exec(&txn)
                    .await?;
            }
            Ok(attempt)
        }
        .await;
        let attempt = settle_attempt(txn, attempt).await?;
        self.resolve(attempt, record.idempotency_key).await
    }

    /// Turns a settled attempt into the caller's outcome.
    async fn resolve(&self, attempt: Attempt, key: Option<&str>) -> Result<Committed> {
        match attempt {
            Attempt::Written(committed) => Ok(committed),
            Attempt::Replayed(committed) => {
                tracing::debug!(seq = committed.seq, "comando già eseguito: esito originale");
                Ok(committed)
            }
            Attempt::KeyTaken => match key {
                Some(key) => replay(&self.db, key).await?.ok_or_else(|| {
                    Error::Database(format!("chiave di idempotenza '{key}' contesa ma assente"))
                }),
                None => Err(Error::Database(
                    "chiave di idempotenza contesa ma assente".into(),
                )),
            },
        }
    }

    /// One instance.
    pub async fn instance(&self, id: &str) -> Result<Option<InstanceRow>> {
        instance::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
            .map(InstanceRow::from_model)
            .transpose()
    }

    /// Instances matching the filter, ordered by id.
    pub async fn instances(&self, filter: &InstanceFilter) -> Result<Vec<InstanceRow>> {
        let mut query = instance::Entity::find().order_by_asc(instance::Column::Id);
        if let Some(definition_id) = &filter.definition_id {
            query = query.filter(instance::Column::DefinitionId.eq(definition_id.as_str()));
        }
        if let Some(state) = &filter.state {
            query = query.filter(instance::Column::State.eq(state.as_str()));
        }
        if let Some(after) = &filter.after_id {
            query = query.filter(instance::Column::Id.gt(after.as_str()));
        }
        if let Some(limit) = filter.limit {
            query = query.limit(limit);
        }
        query
            .all(&self.db)
            .await?
            .into_iter()
            .map(InstanceRow::from_model)
            .collect()
    }

    /// The history of an instance, by seq.
    pub async fn history(&self, instance_id: &str) -> Result<Vec<HistoryRow>> {
        history::Entity::find()
            .filter(history::Column::InstanceId.eq(instance_id))
            .order_by_asc(history::Column::Seq)
            .all(&self.db)
            .await?
            .into_iter()
            .map(HistoryRow::from_model)
            .collect()
    }

    /// History rows of every instance with an id above `after_id`, by id: what a tail of
    /// committed events reads. Ids are not committed in order on PostgreSQL, so a reader
    /// re-reads a window below its last id and drops what it has already seen.
    pub async fn history_after(&self, after_id: i64, limit: u64) -> Result<Vec<HistoryRow>> {
        history::Entity::find()
            .filter(history::Column::Id.gt(after_id))
            .order_by_asc(history::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(HistoryRow::from_model)
            .collect()
    }

    /// The highest history id, 0 when there is none.
    pub async fn last_history_id(&self) -> Result<i64> {
        Ok(history::Entity::find()
            .order_by_desc(history::Column::Id)
            .one(&self.db)
            .await?
            .map_or(0, |row| row.id))
    }

    /// The command recorded under an idempotency key.
    pub async fn command(&self, idempotency_key: &str) -> Result<Option<CommandRow>> {
        Ok(command::Entity::find_by_id(idempotency_key.to_string())
            .one(&self.db)
            .await?
            .map(CommandRow::from))
    }
}

/// Commits a `Written` attempt; rolls back anything else (a replay writes nothing).
async fn settle_attempt(txn: DatabaseTransaction, attempt: Result<Attempt>) -> Result<Attempt> {
    match attempt {
        Ok(Attempt::Written(committed)) => {
            txn.commit().await?;
            Ok(Attempt::Written(committed))
        }
        other => {
            rollback(txn).await;
            other
        }
    }
}

/// The first outcome of a command, if its key was used.
async fn replay<C: ConnectionTrait>(conn: &C, key: &str) -> Result<Option<Committed>> {
    Ok(command::Entity::find_by_id(key.to_string())
        .one(conn)
        .await?
        .map(|c| Committed {
            instance_id: c.instance_id,
            seq: c.seq,
            version: c.seq,
            replayed: true,
        }))
}

async fn start_in<C: ConnectionTrait>(conn: &C, r: &StartRecord<'_>) -> Result<Attempt> {
    if let Some(key) = r.idempotency_key
        && let Some(first) = replay(conn, key).await?
    {
        return Ok(Attempt::Replayed(first));
    }
    if !definitions::exists(conn, r.definition_id, r.definition_version).await? {
        return Err(Error::NotFound {
            what: "definizione",
            id: format!("{} versione {}", r.definition_id, r.definition_version),
        });
    }
    if let Some(parent) = &r.parent_id
        && instance::Entity::find_by_id(parent.clone())
            .one(conn)
            .await?
            .is_none()
    {
        return Err(Error::NotFound {
            what: "istanza madre",
            id: parent.clone(),
        });
    }
    let at = instant(r.at);
    let definition_version = i32::try_from(r.definition_version).map_err(|_| Error::NotFound {
        what: "definizione",
        id: format!("{} versione {}", r.definition_id, r.definition_version),
    })?;
    let row = instance::ActiveModel {
        id: Set(r.instance_id.to_string()),
        definition_id: Set(r.definition_id.to_string()),
        definition_version: Set(definition_version),
        parent_id: Set(r.parent_id.clone()),
        state: Set(r.step.to.clone()),
        is_final: Set(r.step.is_final),
        data: Set(to_json(&r.step.data)?),
        version: Set(1),
        created_at: Set(at),
        updated_at: Set(at),
    };
    if let Err(err) = instance::Entity::insert(row)
        .exec_without_returning(conn)
        .await
    {
        return Err(if is_unique_violation(&err) {
            Error::Conflict {
                instance_id: r.instance_id.to_string(),
                expected_version: 0,
            }
        } else {
            err.into()
        });
    }
    let entry = Entry {
        instance_id: r.instance_id,
        seq: 1,
        at,
        actor: r.actor,
        step: r.step,
        payload: r.payload,
        late: false,
        idempotency_key: r.idempotency_key,
    };
    write_step(conn, &entry).await?;
    record_command(conn, &entry).await
}

async fn step_in<C: ConnectionTrait>(conn: &C, r: &StepRecord<'_>) -> Result<Attempt> {
    if let Some(key) = r.idempotency_key
        && let Some(first) = replay(conn, key).await?
    {
        return Ok(Attempt::Replayed(first));
    }
    let at = instant(r.at);
    let moved = instance::Entity::update_many()
        .col_expr(instance::Column::State, Expr::value(r.step.to.clone()))
        .col_expr(instance::Column::IsFinal, Expr::value(r.step.is_final))
        .col_expr(instance::Column::Data, Expr::value(to_json(&r.step.data)?))
        .col_expr(
            instance::Column::Version,
            Expr::col(instance::Column::Version).add(1),
        )
        .col_expr(instance::Column::UpdatedAt, Expr::value(at))
        .filter(instance::Column::Id.eq(r.instance_id))
        .filter(instance::Column::Version.eq(r.expected_version))
        .exec(conn)
        .await?;
    if moved.rows_affected == 0 {
        // On PostgreSQL this statement sees what committed while the UPDATE waited: a
        // concurrent twin of this command shows up here as its recorded key.
        if let Some(key) = r.idempotency_key
            && let Some(first) = replay(conn, key).await?
        {
            return Ok(Attempt::Replayed(first));
        }
        let exists = instance::Entity::find_by_id(r.instance_id.to_string())
            .one(conn)
            .await?
            .is_some();
        return Err(if exists {
            Error::Conflict {
                instance_id: r.instance_id.to_string(),
                expected_version: r.expected_version,
            }
        } else {
            Error::NotFound {
                what: "istanza",
                id: r.instance_id.to_string(),
            }
        });
    }
    let seq = r.expected_version + 1;
    // The fired timer first: the step's own effects may disarm its key.
    if let Some(timer_id) = r.fired_timer {
        timers::mark_fired(conn, timer_id, r.instance_id, at).await?;
    }
    if let Some(write) = &r.submission {
        submissions::write_in(conn, write).await?;
    }
    let entry = Entry {
        instance_id: r.instance_id,
        seq,
        at,
        actor: r.actor,
        step: r.step,
        payload: r.payload,
        late: r.late,
        idempotency_key: r.idempotency_key,
    };
    write_step(conn, &entry).await?;
    record_command(conn, &entry).await
}

/// A history row about to be written.
struct Entry<'a> {
    instance_id: &'a str,
    seq: i64,
    at: DateTime<Utc>,
    actor: &'a Actor,
    step: &'a Step,
    payload: &'a Value,
    late: bool,
    idempotency_key: Option<&'a str>,
}

/// The insert of a history row: the only write to `history` in the code base besides the
/// scheduler's batches (`bulk.rs`).
fn history_insert(backend: DbBackend, e: &Entry<'_>) -> Result<Statement> {
    let row = history::ActiveModel {
        id: NotSet,
        instance_id: Set(e.instance_id.to_string()),
        seq: Set(e.seq),
        at: Set(e.at),
        actor_id: Set(e.actor.id.clone()),
        role: Set(e.actor.role.clone()),
        event: Set(e.step.event.clone()),
        from_state: Set(e.step.from.clone()),
        to_state: Set(e.step.to.clone()),
        payload: Set(to_json(e.payload)?),
        late: Set(e.late),
        idempotency_key: Set(e.idempotency_key.map(str::to_string)),
        effects: Set(to_json(&e.step.effects)?),
        participant_id: Set(e.step.participant.as_ref().map(|m| m.id.clone())),
        participant_from: Set(e.step.participant.as_ref().and_then(|m| m.from.clone())),
        participant_to: Set(e.step.participant.as_ref().map(|m| m.to.clone())),
    };
    Ok(history::Entity::insert(row).build(backend))
}

/// Records the idempotency key (if any) and reports the outcome.
async fn record_command<C: ConnectionTrait>(conn: &C, e: &Entry<'_>) -> Result<Attempt> {
    if let Some(key) = e.idempotency_key {
        let row = command::ActiveModel {
            idempotency_key: Set(key.to_string()),
            instance_id: Set(e.instance_id.to_string()),
            seq: Set(e.seq),
            created_at: Set(e.at),
        };
        if let Err(err) = command::Entity::insert(row)
            .exec_without_returning(conn)
            .await
        {
            return if is_unique_violation(&err) {
                Ok(Attempt::KeyTaken)
            } else {
                Err(err.into())
            };
        }
    }
    Ok(Attempt::Written(Committed {
        instance_id: e.instance_id.to_string(),
        seq: e.seq,
        version: e.seq,
        replayed: false,
    }))
}

/// Writes a step's history row, timers and outbox rows, in the step's transaction and in
/// one script (see `script.rs`): the keys the step disarms in one update per outcome, its
/// new timers in one insert, its outbox rows in one insert, in the order of its effects.
async fn write_step<C: ConnectionTrait>(conn: &C, e: &Entry<'_>) -> Result<()> {
    let mut script = Script::new(conn.get_database_backend());
    script.push(history_insert(script.backend(), e)?);
    effects_into(&mut script, e.instance_id, e.seq, &e.step.effects, e.at)?;
    script.run(conn).await
}

/// The statements of a step's effects. Applied one by one, a `ScheduleTimer` disarms its
/// key's armed row (`replaced`) and arms a new one, a `CancelTimer` disarms it
/// (`cancelled`); here the rows armed before the step are disarmed once per key, with the
/// outcome of the first effect on it, and the rows the step itself arms are settled in
/// memory and written in the order of its effects, a row the step disarms again already
/// cancelled with its outcome — the same rows as one by one.
fn effects_into(
    script: &mut Script,
    instance_id: &str,
    seq: i64,
    effects: &[Effect],
    at: DateTime<Utc>,
) -> Result<()> {
    let mut touched: Vec<(&str, &str)> = Vec::new();
    // The rows the step arms, in order, with whether each is still armed.
    let mut armed: Vec<(&str, timer::ActiveModel, bool)> = Vec::new();
    let mut queued = Vec::new();
    let disarm = |armed: &mut Vec<(&str, timer::ActiveModel, bool)>, key: &str, outcome| {
        for (_, row, live) in armed.iter_mut().filter(|(k, _, live)| *k == key && *live) {
            timers::disarm_row(row, outcome);
            *live = false;
        }
    };
    for effect in effects {
        match effect {
            Effect::ScheduleTimer(plan) => {
                if !touched.iter().any(|(key, _)| *key == plan.key) {
                    touched.push((plan.key.as_str(), timers::REPLACED));
                }
                disarm(&mut armed, &plan.key, timers::REPLACED);
                let row = timers::armed_row(instance_id, plan, at)?;
                armed.push((plan.key.as_str(), row, true));
            }
            Effect::CancelTimer { key } => {
                if !touched.iter().any(|(k, _)| k == key) {
                    touched.push((key.as_str(), timers::CANCELLED));
                }
                disarm(&mut armed, key, timers::CANCELLED);
            }
            Effect::Notify(_)
            | Effect::RegisterProtocol { .. }
            | Effect::RegisterIncoming { .. }
            | Effect::StartInstance { .. }
            | Effect::ResumeParent { .. }
            | Effect::ApproveVerbale { .. } => {
                queued.push(outbox::step_row(instance_id, seq, effect, at)?);
            }
        }
    }
    for outcome in [timers::REPLACED, timers::CANCELLED] {
        let keys: Vec<&str> = touched
            .iter()
            .filter(|(_, o)| *o == outcome)
            .map(|(key, _)| *key)
            .collect();
        if !keys.is_empty() {
            script.push(timers::disarm_statement(
                script.backend(),
                instance_id,
                &keys,
                outcome,
            ));
        }
    }
    if !armed.is_empty() {
        script.push(
            timer::Entity::insert_many(armed.into_iter().map(|(_, row, _)| row))
                .build(script.backend()),
        );
    }
    if !queued.is_empty() {
        script.push(outbox_entity::Entity::insert_many(queued).build(script.backend()));
    }
    Ok(())
}
