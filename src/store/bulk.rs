//! Bulk writes for benchmarks and imports: many instance starts in one transaction with
//! multi-row inserts, and the lateness of every fired timer. The rows are the same as
//! `commit_start` writes, so everything downstream (the scheduler, the history) sees ordinary
//! instances.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, EntityTrait, QueryFilter, QuerySelect,
};

use super::entities::{history, instance, timer};
use super::timers::TimerStatus;
use super::{Error, Result, StartRecord, Store, instant, outbox, settle, to_json};
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
                    let definition_version = i32::try_from(r.definition_version).map_err(|_| Error::NotFound {
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
                            }),
                            // A new instance has no armed timer to cancel.
                            Effect::CancelTimer { .. } => {}
                            Effect::Notify(_) | Effect::RegisterProtocol { .. } | Effect::StartInstance { .. } => {
                                outbox::enqueue(&txn, Some(r.instance_id), effect, at).await?;
                            }
                        }
                    }
                }
                instance::Entity::insert_many(instances).exec_without_returning(&txn).await?;
                history::Entity::insert_many(entries).exec_without_returning(&txn).await?;
                for timers in timers.chunks(CHUNK) {
                    timer::Entity::insert_many(timers.to_vec()).exec_without_returning(&txn).await?;
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
        Ok(rows.into_iter().filter_map(|(fire_at, fired_at)| fired_at.map(|f| (fire_at, f))).collect())
    }
}
