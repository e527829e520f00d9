//! Bulk writes: many instance starts in one transaction (benchmarks, imports), many timer
//! steps in one transaction (the scheduler on SQLite, where each statement costs a hop to the
//! connection's thread and one writer commits at a time), and the lateness of fired timers.
//! The rows are the ones `commit_start` and `commit_step` write, so everything downstream sees
//! ordinary instances and history.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, EntityTrait, QueryFilter, QuerySelect,
};

use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Expr, ExprTrait};

use super::entities::{history, instance, timer};
use super::timers::{self, TimerStatus};
use super::{
    Committed, Error, InstanceRow, Result, StartRecord, StepRecord, Store, instant, outbox, settle,
    to_json,
};
use crate::engine::Effect;

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
        let txn = self.begin_write().await?;
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

    /// Instances by id, in no particular order; ids that do not exist are left out.
    pub async fn instances_by_id(&self, ids: &[&str]) -> Result<Vec<InstanceRow>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            let models = instance::Entity::find()
                .filter(instance::Column::Id.is_in(chunk.iter().copied()))
                .all(&self.db)
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
    /// Every record must have `fired_timer` and no idempotency key; at most one record per
    /// instance (a second one would see `Conflict`).
    #[tracing::instrument(skip_all, fields(count = records.len()))]
    pub async fn commit_timer_steps(
        &self,
        records: &[(StepRecord<'_>, &str)],
    ) -> Result<Vec<Result<Committed>>> {
        let txn = self.begin_write().await?;
        let outcome = async {
            let mut results = Vec::with_capacity(records.len());
            let mut entries = Vec::with_capacity(records.len());
            for (r, fired_key) in records {
                let result = timer_step_in(&txn, r, fired_key).await?;
                if let Ok(committed) = &result {
                    entries.push(history_row(r, committed.seq)?);
                }
                results.push(result);
            }
            for chunk in entries.chunks(CHUNK) {
                history::Entity::insert_many(chunk.to_vec())
                    .exec_without_returning(&txn)
                    .await?;
            }
            Ok(results)
        }
        .await;
        settle(txn, outcome).await
    }
}

/// One record of `commit_timer_steps`: the outer error is the database's (abort the batch),
/// the inner one the record's refusal (nothing of it written).
async fn timer_step_in<C: ConnectionTrait>(
    conn: &C,
    r: &StepRecord<'_>,
    fired_key: &str,
) -> Result<Result<Committed>> {
    let (Some(timer_id), None) = (r.fired_timer, r.idempotency_key) else {
        return Err(Error::Database(format!(
            "passo in blocco dell'istanza {}: serve un timer e nessuna chiave",
            r.instance_id
        )));
    };
    let at = instant(r.at);
    // The claim first: a stale timer leaves nothing to undo.
    match timers::mark_fired(conn, timer_id, r.instance_id, at).await {
        Ok(()) => {}
        Err(refused @ Error::StaleTimer { .. }) => return Ok(Err(refused)),
        Err(e) => return Err(e),
    }
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
        // Undo the timer's half: pending again, for whoever fires it on the new state.
        timer::Entity::update_many()
            .col_expr(
                timer::Column::Status,
                Expr::value(TimerStatus::Pending.as_str()),
            )
            .col_expr(
                timer::Column::ClaimedBy,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                timer::Column::LeaseUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(
                timer::Column::FiredAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(timer::Column::Outcome, Expr::value(Option::<String>::None))
            .filter(timer::Column::Id.eq(timer_id))
            .exec(conn)
            .await?;
        return Ok(Err(Error::Conflict {
            instance_id: r.instance_id.to_string(),
            expected_version: r.expected_version,
        }));
    }
    let seq = r.expected_version + 1;
    for effect in &r.step.effects {
        match effect {
            Effect::ScheduleTimer(plan) => {
                timers::disarm(conn, r.instance_id, &plan.key, timers::REPLACED).await?;
                timers::arm(conn, r.instance_id, plan, at).await?;
            }
            // The fired timer's own key: its only armed row is the one just marked done.
            Effect::CancelTimer { key } if key == fired_key => {}
            Effect::CancelTimer { key } => {
                timers::disarm(conn, r.instance_id, key, timers::CANCELLED).await?;
            }
            Effect::Notify(_)
            | Effect::RegisterProtocol { .. }
            | Effect::RegisterIncoming { .. }
            | Effect::StartInstance { .. }
            | Effect::ResumeParent { .. }
            | Effect::ApproveVerbale { .. } => {
                outbox::enqueue(conn, Some((r.instance_id, seq)), effect, at).await?;
            }
        }
    }
    Ok(Ok(Committed {
        instance_id: r.instance_id.to_string(),
        seq,
        version: seq,
        replayed: false,
    }))
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
