//! Bulk writes: many instance starts in one transaction (benchmarks, imports), many timer
//! steps in one transaction (the scheduler on SQLite, where each statement costs a hop to the
//! connection's thread and one writer commits at a time), and the lateness of fired timers.
//! The rows are the ones `commit_start` and `commit_step` write, so everything downstream sees
//! ordinary instances and history.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{ExprTrait, LockBehavior, LockType};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use sea_orm::ConnectionTrait;
use sea_orm::sea_query::Expr;

use std::collections::HashSet;

use sea_orm::{DbBackend, Statement};

use super::entities::{history, instance, outbox as outbox_entity, timer};
use super::timers::{self, TimerRow, TimerStatus};
use super::{
    Committed, Error, InstanceRow, Result, StartRecord, StepRecord, Store, instant, outbox, settle,
    to_json,
};
use crate::engine::{Actor, Effect, Step};

/// Rows per multi-row insert: under SQLite's and PostgreSQL's limits on bound parameters
/// (13 columns × 500 rows).
const CHUNK: usize = 500;

impl Store {
    /// Starts many new instances in one transaction: like `commit_start` for each record,
    /// without idempotency keys (a record with one is refused) and without checking that the
    /// definition and the parent exist. For benchmarks and imports; returns how many started.
    #[tracing::instrument(skip_all, fields(count = records.len()))]
    pub async fn commit_starts(&self, records: &[StartRecord<'_>]) -> Result<u64> {
        if let Some(r) = records.iter().find(|r| r.idempotency_key.is_some()) {
            return Err(Error::Database(format!(
                "avvio in blocco dell'istanza {}: le chiavi di idempotenza non sono ammesse",
                r.instance_id
            )));
        }
        let (txn, _turn) = self.begin_write().await?;
        let outcome = async {
            for chunk in records.chunks(CHUNK) {
                let mut instances = Vec::with_capacity(chunk.len());
                let mut entries = Vec::with_capacity(chunk.len());
                let mut timers = Vec::new();
                for r in chunk {
                    let at = instant(r.at);
                    let definition_version =
                        i32::try_from(r.definition_version).map_err(|_| Error::NotFound {
                            what: "definizione",
                            id: format!("{} versione {}", r.definition_id, r.definition_version),
                        })?;
                    instances.push(instance::ActiveModel {
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
                    });
                    entries.push(history::ActiveModel {
                        id: NotSet,
                        instance_id: Set(r.instance_id.to_string()),
                        seq: Set(1),
                        at: Set(at),
                        actor_id: Set(r.actor.id.clone()),
                        role: Set(r.actor.role.clone()),
                        event: Set(r.step.event.clone()),
                        from_state: Set(r.step.from.clone()),
                        to_state: Set(r.step.to.clone()),
                        payload: Set(to_json(r.payload)?),
                        late: Set(false),
                        idempotency_key: Set(None),
                        effects: Set(to_json(&r.step.effects)?),
                        participant_id: Set(None),
                        participant_from: Set(None),
                        participant_to: Set(None),
                    });
                    for effect in &r.step.effects {
                        match effect {
                            Effect::ScheduleTimer(plan) => timers.push(timer::ActiveModel {
                                id: NotSet,
                                instance_id: Set(r.instance_id.to_string()),
                                key: Set(plan.key.clone()),
                                timer: Set(plan.timer.clone()),
                                fire_at: Set(instant(plan.fire_at)),
                                action: Set(to_json(&plan.action)?),
                                trace: Set(to_json(&plan.trace)?),
                                status: Set(TimerStatus::Pending.as_str().to_string()),
                                claimed_by: Set(None),
                                lease_until: Set(None),
                                fired_at: Set(None),
                                outcome: Set(None),
                                created_at: Set(at),
                                attempts: Set(0),
                                retry_at: Set(None),
                                last_error: Set(None),
                            }),
                            // A new instance has no armed timer to cancel.
                            Effect::CancelTimer { .. } => {}
                            Effect::Notify(_)
                            | Effect::RegisterProtocol { .. }
                            | Effect::RegisterIncoming { .. }
                            | Effect::StartInstance { .. }
                            | Effect::ResumeParent { .. }
                            | Effect::ApproveVerbale { .. } => {
                                outbox::enqueue(&txn, Some((r.instance_id, 1)), effect, at).await?;
                            }
                        }
                    }
                }
                instance::Entity::insert_many(instances)
                    .exec_without_returning(&txn)
                    .await?;
                history::Entity::insert_many(entries)
                    .exec_without_returning(&txn)
                    .await?;
                for timers in timers.chunks(CHUNK) {
                    timer::Entity::insert_many(timers.to_vec())
                        .exec_without_returning(&txn)
                        .await?;
                }
            }
            Ok(records.len() as u64)
        }
        .await;
        settle(txn, outcome).await
    }

    /// `(fire_at, fired_at)` of every timer that fired (done with a firing instant), in no
    /// particular order: what the benchmark's lateness is computed from.
    pub async fn fired_timer_instants(&self) -> Result<Vec<(DateTime<Utc>, DateTime<Utc>)>> {
        let rows: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> = timer::Entity::find()
            .select_only()
            .column(timer::Column::FireAt)
            .column(timer::Column::FiredAt)
            .filter(timer::Column::Status.eq(TimerStatus::Done.as_str()))
            .filter(timer::Column::FiredAt.is_not_null())
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(fire_at, fired_at)| fired_at.map(|f| (fire_at, f)))
            .collect())
    }

    /// How many instances of `definition_id` are in `state`, counted by the database.
    pub async fn count_instances_in(&self, definition_id: &str, state: &str) -> Result<u64> {
        use sea_orm::PaginatorTrait as _;
        Ok(instance::Entity::find()
            .filter(instance::Column::DefinitionId.eq(definition_id))
            .filter(instance::Column::State.eq(state))
            .count(&self.db)
            .await?)
    }

    /// Instances by id, in no particular order; ids that do not exist are left out.
    pub async fn instances_by_id(&self, ids: &[&str]) -> Result<Vec<InstanceRow>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            let models = instance::Entity::find()
                .filter(instance::Column::Id.is_in(chunk.iter().copied()))
                .all(&self.write_db)
                .await?;
            for model in models {
                out.push(InstanceRow::from_model(model)?);
            }
        }
        Ok(out)
    }

    /// Commits many steps that fire claimed timers, in one transaction, each as `commit_step`
    /// would: the timer must still be claimed (`StaleTimer` otherwise) and becomes done, the
    /// instance moves from `expected_version` (`Conflict` otherwise: the timer is then given
    /// back, pending, to be fired again on the new state), the step's timers and outbox rows
    /// are written and its history row appended. A refused record writes nothing and does not
    /// affect the others; an error of the database rolls back the whole batch.
    ///
    /// Set-based: whatever the number of records, a handful of statements — the timers marked
    /// done in one `UPDATE … RETURNING`, the instances moved in one `UPDATE … FROM (VALUES …)
    /// RETURNING` (each row against its own expected version), the history rows, new timers
    /// and outbox rows in multi-row inserts, the keys the steps disarm in one update per
    /// outcome (replaced, cancelled).
    ///
    /// Every record must have `fired_timer` and no idempotency key; at most one record per
    /// instance (a second one would see `Conflict`).
    #[tracing::instrument(skip_all, fields(count = records.len()))]
    pub async fn commit_timer_steps(
        &self,
        records: &[(StepRecord<'_>, &str)],
    ) -> Result<Vec<Result<Committed>>> {
        for (r, _) in records {
            if r.fired_timer.is_none() || r.idempotency_key.is_some() {
                return Err(Error::Database(format!(
                    "passo in blocco dell'istanza {}: serve un timer e nessuna chiave",
                    r.instance_id
                )));
            }
        }
        let (txn, _turn) = self.begin_write().await?;
        let outcome = async { commit_records(&txn, records, Held::Claimed).await }.await;
        settle(txn, outcome).await
    }
}

/// A step planned on a timer that `fire_due_in_place` locked: what `plan` returns for it.
pub struct PlannedFiring {
    /// The timer, as read.
    pub timer: TimerRow,
    /// The instance version the step was planned on.
    pub expected_version: i64,
    /// The step.
    pub step: Step,
    /// What the history records as the command's payload.
    pub payload: serde_json::Value,
    /// Fired after its instant.
    pub late: bool,
    /// When the step was planned: its `now`, the firing instant recorded.
    pub at: DateTime<Utc>,
}

/// What `fire_due_in_place` did.
#[derive(Debug, Default)]
pub struct InPlace {
    /// How many due timers the transaction locked: fewer than the limit means that none
    /// was left due.
    pub locked: usize,
    /// Every planned firing with its outcome: committed, or `StaleTimer` / `Conflict` when
    /// the instance moved meanwhile (the timer is then pending again).
    pub fired: Vec<(TimerRow, Result<Committed>)>,
    /// The timers left to the one-by-one path, claimed for the worker with a lease.
    pub claimed: Vec<TimerRow>,
    /// The timers left to the one-by-one path that a step of the same transaction disarmed
    /// (a reminder of the meeting that fired): no-ops, not claimed.
    pub disarmed: usize,
}

impl Store {
    /// Fires due timers in place, in one transaction: locks up to `limit` pending timers
    /// due at `now` (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so concurrent transactions and
    /// replicas take disjoint rows; SQLite's write lock), reads their instances, lets `plan`
    /// compute the steps, and commits each step with its timer done as `commit_timer_steps`
    /// does — no claim is written for them. The timers `plan` leaves out (reminders,
    /// refused events, a definition that did not load) are claimed for `worker` until
    /// `now + lease` in the same transaction, for the one-by-one path.
    ///
    /// Effect-once holds as with a claim: a timer is done in the transaction that writes its
    /// step, and a transaction that dies (a crash, a lost connection) leaves its timers
    /// pending, locked by nobody.
    #[tracing::instrument(skip_all, fields(limit))]
    pub async fn fire_due_in_place<F, Fut>(
        &self,
        now: DateTime<Utc>,
        limit: u64,
        worker: &str,
        lease: chrono::Duration,
        plan: F,
    ) -> Result<InPlace>
    where
        F: FnOnce(Vec<TimerRow>, Vec<InstanceRow>) -> Fut,
        Fut: std::future::Future<Output = (Vec<PlannedFiring>, Vec<TimerRow>)>,
    {
        if limit == 0 {
            return Ok(InPlace::default());
        }
        let (txn, _turn) = self.begin_write().await?;
        let outcome = async {
            if self.backend() == super::Backend::Postgres {
                // The statements of this transaction are the same at every batch, with
                // hundreds of bound values each: planned once per connection, not at every
                // run. Their generic plans read the due timers from `ix_timers_due` in order
                // and everything else by primary key, whatever the statistics say (they may
                // still describe the tables before a bulk start).
                txn.execute_unprepared("SET LOCAL plan_cache_mode = force_generic_plan")
                    .await?;
            }
            let due = timer::Entity::find()
                .filter(timers::due_pending(now))
                .order_by_asc(timer::Column::FireAt)
                .order_by_asc(timer::Column::Id)
                .limit(limit)
                .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
                .all(&txn)
                .await?
                .into_iter()
                .map(TimerRow::from_model)
                .collect::<Result<Vec<_>>>()?;
            let locked = due.len();
            if due.is_empty() {
                return Ok(InPlace::default());
            }
            let mut ids: Vec<&str> = due.iter().map(|t| t.instance_id.as_str()).collect();
            ids.sort_unstable();
            ids.dedup();
            let mut instances = Vec::with_capacity(ids.len());
            for chunk in ids.chunks(CHUNK) {
                for model in instance::Entity::find()
                    .filter(instance::Column::Id.is_in(chunk.iter().copied()))
                    .all(&txn)
                    .await?
                {
                    instances.push(InstanceRow::from_model(model)?);
                }
            }
            let (planned, rest) = plan(due, instances).await;
            let actor = Actor::system();
            let records: Vec<(StepRecord<'_>, &str)> = planned
                .iter()
                .map(|p| {
                    let record = StepRecord {
                        instance_id: &p.timer.instance_id,
                        expected_version: p.expected_version,
                        actor: &actor,
                        step: &p.step,
                        payload: &p.payload,
                        idempotency_key: None,
                        at: p.at,
                        late: p.late,
                        fired_timer: Some(p.timer.id),
                        submission: None,
                    };
                    (record, p.timer.key.as_str())
                })
                .collect();
            let results = commit_records(&txn, &records, Held::Locked(worker)).await?;
            let claimed = claim_rest(&txn, &rest, now, worker, lease).await?;
            let disarmed = rest.len().saturating_sub(claimed.len());
            let fired = planned
                .into_iter()
                .zip(results)
                .map(|(p, r)| (p.timer, r))
                .collect();
            Ok(InPlace {
                locked,
                fired,
                claimed,
                disarmed,
            })
        }
        .await;
        settle(txn, outcome).await
    }
}

/// Claims the locked timers that `fire_due_in_place` leaves to the one-by-one path.
async fn claim_rest<C: ConnectionTrait>(
    conn: &C,
    rest: &[TimerRow],
    now: DateTime<Utc>,
    worker: &str,
    lease: chrono::Duration,
) -> Result<Vec<TimerRow>> {
    let mut claimed = Vec::with_capacity(rest.len());
    for chunk in rest.chunks(CHUNK) {
        let models = timer::Entity::update_many()
            .col_expr(
                timer::Column::Status,
                Expr::value(TimerStatus::Claimed.as_str()),
            )
            .col_expr(timer::Column::ClaimedBy, Expr::value(worker))
            .col_expr(
                timer::Column::LeaseUntil,
                Expr::value(super::lease::lease_end(now, lease)),
            )
            .filter(timer::Column::Id.is_in(chunk.iter().map(|t| t.id)))
            // Still pending (a step of this transaction may have disarmed it); found by id,
            // not through the index on status (see `commit_part`).
            .filter(ExprTrait::eq(
                match conn.get_database_backend() {
                    DbBackend::Sqlite => Expr::cust("+status"),
                    _ => Expr::col(timer::Column::Status),
                },
                TimerStatus::Pending.as_str(),
            ))
            .exec_with_returning(conn)
            .await?;
        for model in models {
            claimed.push(TimerRow::from_model(model)?);
        }
    }
    claimed.sort_by_key(|t| (t.fire_at, t.id));
    Ok(claimed)
}

/// Records per set-based statement: 6 bound values per instance row, far below both
/// backends' limits on parameters.
const STEP_CHUNK: usize = 1_000;

/// Bound values and their placeholders, in the order they appear in the statement's text:
/// `$n` on PostgreSQL, a bare `?` on SQLite (numbered `?NNN` parameters make SQLite look each
/// one up by name, quadratic in their number).
struct Binds {
    backend: DbBackend,
    values: Vec<sea_orm::Value>,
}

impl Binds {
    fn new(backend: DbBackend, capacity: usize) -> Binds {
        Binds {
            backend,
            values: Vec::with_capacity(capacity),
        }
    }

    /// Binds `value`; returns its placeholder, to be written next in the text.
    fn bind(&mut self, value: impl Into<sea_orm::Value>) -> String {
        self.values.push(value.into());
        match self.backend {
            DbBackend::Postgres => format!("${}", self.values.len()),
            _ => "?".to_owned(),
        }
    }

    fn statement(self, sql: String) -> Statement {
        Statement::from_sql_and_values(self.backend, sql, self.values)
    }
}

/// Commits `records` in parts of `STEP_CHUNK`, in lock order (instances by id, so that two
/// batches never wait on each other in a cycle); one result per record, in their order.
async fn commit_records<C: ConnectionTrait>(
    conn: &C,
    records: &[(StepRecord<'_>, &str)],
    held: Held<'_>,
) -> Result<Vec<Result<Committed>>> {
    let mut results: Vec<Option<Result<Committed>>> = std::iter::repeat_with(|| None)
        .take(records.len())
        .collect();
    let mut order: Vec<usize> = (0..records.len()).collect();
    order.sort_by(|a, b| records[*a].0.instance_id.cmp(records[*b].0.instance_id));
    for part in order.chunks(STEP_CHUNK) {
        commit_part(conn, records, part, held, &mut results).await?;
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Error::Database("passo in blocco senza esito".into()))))
        .collect())
}

/// How the timers of `commit_part` are held.
#[derive(Clone, Copy)]
enum Held<'a> {
    /// Claimed with a lease (`commit_timer_steps`): they must still be claimed.
    Claimed,
    /// Pending and locked by the transaction for the worker named (`fire_due_in_place`),
    /// who is recorded as the one that fired them.
    Locked(&'a str),
}

/// One part of `commit_timer_steps` or `fire_due_in_place`: the records at `part` (indexes
/// into `records`), whose timers must still be as `held` says.
async fn commit_part<C: ConnectionTrait>(
    conn: &C,
    records: &[(StepRecord<'_>, &str)],
    part: &[usize],
    held: Held<'_>,
    results: &mut [Option<Result<Committed>>],
) -> Result<()> {
    let backend = conn.get_database_backend();
    // 1. The timers: every one still held becomes done.
    let mut binds = Binds::new(backend, part.len() * 3 + 4);
    let mut sql = format!(
        "UPDATE timers SET status = {}, outcome = {}, lease_until = NULL, ",
        binds.bind(TimerStatus::Done.as_str()),
        binds.bind(timers::FIRED)
    );
    let held_status = match held {
        Held::Claimed => TimerStatus::Claimed,
        Held::Locked(worker) => {
            sql.push_str(&format!("claimed_by = {}, ", binds.bind(worker)));
            TimerStatus::Pending
        }
    };
    sql.push_str("fired_at = ");
    // All records of a batch fire at the same instant in practice: one value then (a `CASE`
    // over hundreds of ids costs a scan of its branches per row); else each keeps its own.
    let first_at = part.first().map(|&i| records[i].0.at);
    if part.iter().all(|&i| Some(records[i].0.at) == first_at) {
        sql.push_str(&binds.bind(instant(first_at.unwrap_or_default())));
    } else {
        sql.push_str("CASE id");
        for &i in part {
            let r = &records[i].0;
            let when = binds.bind(r.fired_timer.unwrap_or_default());
            let then = binds.bind(instant(r.at));
            sql.push_str(&format!(" WHEN {when} THEN {then}"));
        }
        sql.push_str(" END");
    }
    // The rows are found by id. On SQLite, whose planner has no statistics, `+status` keeps
    // the condition out of the index on (status, fire_at, id): with it, the statement walked
    // every pending timer to pick the few hundred named.
    let status = match backend {
        DbBackend::Sqlite => "+status",
        _ => "status",
    };
    sql.push_str(&format!(
        " WHERE {status} = {} AND id IN (",
        binds.bind(held_status.as_str())
    ));
    let ids: Vec<String> = part
        .iter()
        .map(|&i| binds.bind(records[i].0.fired_timer.unwrap_or_default()))
        .collect();
    sql.push_str(&ids.join(", "));
    sql.push_str(") RETURNING id");
    let marked: HashSet<i64> = conn
        .query_all_raw(binds.statement(sql))
        .await?
        .iter()
        .map(|row| row.try_get::<i64>("", "id"))
        .collect::<std::result::Result<_, _>>()?;
    // A chain (consecutive records of one instance, each planned on the one before) stops at
    // its first stale timer: what follows assumed that step. The rest of the chain is given
    // back, its timers pending again.
    let mut live = Vec::with_capacity(part.len());
    let mut given_back = Vec::new();
    let mut broken: Option<&str> = None;
    for &i in part {
        let r = &records[i].0;
        let timer_id = r.fired_timer.unwrap_or_default();
        if broken == Some(r.instance_id) {
            if marked.contains(&timer_id) {
                given_back.push(timer_id);
            }
            results[i] = Some(Err(Error::Conflict {
                instance_id: r.instance_id.to_string(),
                expected_version: r.expected_version,
            }));
        } else if marked.contains(&timer_id) {
            broken = None;
            live.push(i);
        } else {
            broken = Some(r.instance_id);
            results[i] = Some(Err(Error::StaleTimer { timer_id }));
        }
    }
    // 2. The instances: each from the expected version of its chain's first step to its last
    // step's state, data and version.
    let mut chains: Vec<(usize, usize, i64)> = Vec::new(); // (first, last, steps)
    for &i in &live {
        match chains.last_mut() {
            Some((_, last, steps)) if records[*last].0.instance_id == records[i].0.instance_id => {
                *last = i;
                *steps += 1;
            }
            _ => chains.push((i, i, 1)),
        }
    }
    let mut binds = Binds::new(backend, chains.len() * 7);
    let mut rows = Vec::with_capacity(chains.len());
    for &(first, last, steps) in &chains {
        let (start, end) = (&records[first].0, &records[last].0);
        rows.push(format!(
            "({}, {}, {}, {}, {}, {}, {})",
            binds.bind(end.instance_id.to_string()),
            binds.bind(start.expected_version),
            binds.bind(end.step.to.clone()),
            binds.bind(end.step.is_final),
            binds.bind(to_json(&end.step.data)?),
            binds.bind(instant(end.at)),
            binds.bind(steps),
        ));
    }
    if rows.is_empty() {
        give_back(conn, given_back).await?;
        return Ok(());
    }
    let sql = format!(
        "WITH v(id, expected, state, is_final, data, at, steps) AS (VALUES {}) \
         UPDATE instances SET state = v.state, is_final = v.is_final, data = v.data, \
         version = instances.version + v.steps, updated_at = v.at \
         FROM v WHERE instances.id = v.id AND instances.version = v.expected \
         RETURNING instances.id",
        rows.join(", ")
    );
    let moved: HashSet<String> = conn
        .query_all_raw(binds.statement(sql))
        .await?
        .iter()
        .map(|row| row.try_get::<String>("", "id"))
        .collect::<std::result::Result<_, _>>()?;
    // The instances that moved meanwhile: their timers are pending again, for whoever fires
    // them on the new state.
    given_back.extend(
        live.iter()
            .filter(|&&i| !moved.contains(records[i].0.instance_id))
            .map(|&i| records[i].0.fired_timer.unwrap_or_default()),
    );
    give_back(conn, given_back).await?;
    // 3. What each step wrote: history, disarmed keys, new timers, outbox rows.
    let mut entries = Vec::with_capacity(live.len());
    let mut armed = Vec::new();
    let mut queued = Vec::new();
    // The keys the steps disarm: applied together below, before the new timers are inserted.
    let mut disarmed = Disarms::default();
    for &i in &live {
        let (r, fired_key) = &records[i];
        if !moved.contains(r.instance_id) {
            results[i] = Some(Err(Error::Conflict {
                instance_id: r.instance_id.to_string(),
                expected_version: r.expected_version,
            }));
            continue;
        }
        let seq = r.expected_version + 1;
        entries.push(history_row(r, seq)?);
        for effect in &r.step.effects {
            match effect {
                Effect::ScheduleTimer(plan) => {
                    disarmed.note(r.instance_id, &plan.key, timers::REPLACED);
                    // An earlier step of the chain may have armed the key in this batch.
                    armed.retain(|(instance, key, _)| {
                        !(*instance == r.instance_id && *key == plan.key)
                    });
                    armed.push((
                        r.instance_id,
                        plan.key.as_str(),
                        timers::armed_row(r.instance_id, plan, r.at)?,
                    ));
                }
                // The fired timer's own key: its only armed row is the one just marked done.
                Effect::CancelTimer { key } if key == fired_key => {}
                Effect::CancelTimer { key } => {
                    disarmed.note(r.instance_id, key, timers::CANCELLED);
                    armed.retain(|(instance, armed_key, _)| {
                        !(*instance == r.instance_id && armed_key == key)
                    });
                }
                Effect::Notify(_)
                | Effect::RegisterProtocol { .. }
                | Effect::RegisterIncoming { .. }
                | Effect::StartInstance { .. }
                | Effect::ResumeParent { .. }
                | Effect::ApproveVerbale { .. } => {
                    queued.push(outbox::step_row(r.instance_id, seq, effect, r.at)?);
                }
            }
        }
        results[i] = Some(Ok(Committed {
            instance_id: r.instance_id.to_string(),
            seq,
            version: seq,
            replayed: false,
        }));
    }
    for outcome in [timers::REPLACED, timers::CANCELLED] {
        for chunk in disarmed.with(outcome).chunks(CHUNK) {
            if let Some(statement) = timers::disarm_pairs_statement(backend, chunk, outcome) {
                conn.execute_raw(statement).await?;
            }
        }
    }
    for chunk in entries.chunks(CHUNK) {
        history::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(conn)
            .await?;
    }
    let armed: Vec<timer::ActiveModel> = armed.into_iter().map(|(_, _, row)| row).collect();
    for chunk in armed.chunks(CHUNK) {
        timer::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(conn)
            .await?;
    }
    for chunk in queued.chunks(CHUNK) {
        outbox_entity::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// The keys the steps of a part disarm, each with the outcome of its first disarm: one after
/// the other, only the first disarm of a key finds its row armed (what a step arms is
/// inserted after all of them).
#[derive(Default)]
struct Disarms<'k> {
    keys: Vec<(&'k str, &'k str, &'static str)>,
    seen: HashSet<(&'k str, &'k str)>,
}

impl<'k> Disarms<'k> {
    fn note(&mut self, instance: &'k str, key: &'k str, outcome: &'static str) {
        if self.seen.insert((instance, key)) {
            self.keys.push((instance, key, outcome));
        }
    }

    /// The `(instance, key)` pairs disarmed with `outcome`.
    fn with(&self, outcome: &str) -> Vec<(&'k str, &'k str)> {
        self.keys
            .iter()
            .filter(|(.., o)| *o == outcome)
            .map(|&(instance, key, _)| (instance, key))
            .collect()
    }
}

/// Timers marked done in a batch whose step is not written after all: pending again, for
/// whoever fires them on the instance's new state.
async fn give_back<C: ConnectionTrait>(conn: &C, ids: Vec<i64>) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    timers::pending_again()
        .col_expr(
            timer::Column::FiredAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(timer::Column::Outcome, Expr::value(Option::<String>::None))
        .filter(timer::Column::Id.is_in(ids))
        .exec(conn)
        .await?;
    Ok(())
}

/// The history row of a step record.
fn history_row(r: &StepRecord<'_>, seq: i64) -> Result<history::ActiveModel> {
    Ok(history::ActiveModel {
        id: NotSet,
        instance_id: Set(r.instance_id.to_string()),
        seq: Set(seq),
        at: Set(instant(r.at)),
        actor_id: Set(r.actor.id.clone()),
        role: Set(r.actor.role.clone()),
        event: Set(r.step.event.clone()),
        from_state: Set(r.step.from.clone()),
        to_state: Set(r.step.to.clone()),
        payload: Set(to_json(r.payload)?),
        late: Set(r.late),
        idempotency_key: Set(None),
        effects: Set(to_json(&r.step.effects)?),
        participant_id: Set(r.step.participant.as_ref().map(|m| m.id.clone())),
        participant_from: Set(r.step.participant.as_ref().and_then(|m| m.from.clone())),
        participant_to: Set(r.step.participant.as_ref().map(|m| m.to.clone())),
    })
}

impl Store {
    /// The ceiling of `procedo bench timers`: what the store does with the same rows when a
    /// bare loop writes them — no engine, no planning, no JSON of the instance's data. One
    /// batch: the due timers claimed (`claim_due_timers`, as the scheduler does), then one
    /// transaction that moves their instances from `from` to `to` (version + 1), appends a
    /// history row each and marks the timers done, set-based as `commit_timer_steps` is.
    /// Returns how many timers it handled (0 when none is due). For benchmarks only.
    pub async fn bare_timer_batch(
        &self,
        now: DateTime<Utc>,
        limit: u64,
        worker: &str,
        (event, from, to): (&str, &str, &str),
    ) -> Result<usize> {
        let claimed = self
            .claim_due_timers(now, limit, worker, chrono::Duration::seconds(60))
            .await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        let (txn, _turn) = self.begin_write().await?;
        let outcome = async {
            let backend = txn.get_database_backend();
            for part in claimed.chunks(STEP_CHUNK) {
                let mut binds = Binds::new(backend, part.len() + 2);
                let sql = format!(
                    "UPDATE instances SET state = {}, version = version + 1, updated_at = {} \
                     WHERE id IN ({}) RETURNING id, version",
                    binds.bind(to),
                    binds.bind(instant(now)),
                    part.iter()
                        .map(|t| binds.bind(t.instance_id.clone()))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let moved = txn.query_all_raw(binds.statement(sql)).await?;
                let mut entries = Vec::with_capacity(moved.len());
                for row in &moved {
                    let id: String = row.try_get("", "id")?;
                    let version: i64 = row.try_get("", "version")?;
                    entries.push(history::ActiveModel {
                        id: NotSet,
                        instance_id: Set(id),
                        seq: Set(version),
                        at: Set(instant(now)),
                        actor_id: Set("system".into()),
                        role: Set("system".into()),
                        event: Set(event.into()),
                        from_state: Set(Some(from.into())),
                        to_state: Set(to.into()),
                        payload: Set("{}".into()),
                        late: Set(false),
                        idempotency_key: Set(None),
                        effects: Set("[]".into()),
                        participant_id: Set(None),
                        participant_from: Set(None),
                        participant_to: Set(None),
                    });
                }
                for chunk in entries.chunks(CHUNK) {
                    history::Entity::insert_many(chunk.to_vec())
                        .exec_without_returning(&txn)
                        .await?;
                }
                timer::Entity::update_many()
                    .col_expr(
                        timer::Column::Status,
                        Expr::value(TimerStatus::Done.as_str()),
                    )
                    .col_expr(timer::Column::Outcome, Expr::value(timers::FIRED))
                    .col_expr(timer::Column::FiredAt, Expr::value(instant(now)))
                    .col_expr(
                        timer::Column::LeaseUntil,
                        Expr::value(Option::<DateTime<Utc>>::None),
                    )
                    .filter(timer::Column::Id.is_in(part.iter().map(|t| t.id)))
                    .exec(&txn)
                    .await?;
            }
            Ok(claimed.len())
        }
        .await;
        settle(txn, outcome).await
    }
}
