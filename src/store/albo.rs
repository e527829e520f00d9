//! Hand-overs of acts to the ente capofila's albo: recorded once per act and digest.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::entities::albo_handover;
use super::{Result, Store, instant};

/// A recorded hand-over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlboHandover {
    /// The act (`<instance>:<entry>`).
    pub act_id: String,
    /// Its instance.
    pub instance_id: String,
    /// SHA-256 of what was handed over.
    pub digest: String,
    /// The capofila's receipt (its albo's registration, or where the act was deposited).
    pub receipt: String,
    /// When.
    pub handed_at: DateTime<Utc>,
}

impl Store {
    /// Records a hand-over; recording the same act and digest again changes nothing.
    pub async fn record_albo_handover(&self, handover: &AlboHandover) -> Result<()> {
        let id = format!("{}:{}", handover.act_id, handover.digest);
        albo_handover::Entity::insert(albo_handover::ActiveModel {
            id: Set(id),
            act_id: Set(handover.act_id.clone()),
            instance_id: Set(handover.instance_id.clone()),
            digest: Set(handover.digest.clone()),
            receipt: Set(handover.receipt.clone()),
            handed_at: Set(instant(handover.handed_at)),
        })
        .on_conflict(
            sea_orm::sea_query::OnConflict::column(albo_handover::Column::Id)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await?;
        Ok(())
    }

    /// The hand-overs of an instance's acts, oldest first.
    pub async fn albo_handovers(&self, instance_id: &str) -> Result<Vec<AlboHandover>> {
        Ok(albo_handover::Entity::find()
            .filter(albo_handover::Column::InstanceId.eq(instance_id))
            .order_by_asc(albo_handover::Column::HandedAt)
            .order_by_asc(albo_handover::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| AlboHandover {
                act_id: m.act_id,
                instance_id: m.instance_id,
                digest: m.digest,
                receipt: m.receipt,
                handed_at: m.handed_at,
            })
            .collect())
    }
}
