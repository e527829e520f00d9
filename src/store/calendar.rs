//! Calendar feeds: create, find by the secret's hash, revoke, list a person's.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
};

use super::entities::calendar_feed;
use super::{Result, Store, instant};

/// A feed to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCalendarFeed {
    /// Id (a UUID).
    pub id: String,
    /// Whose feed.
    pub person_id: String,
    /// SHA-256 of the URL's secret.
    pub hash: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A stored feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarFeedRow {
    /// Id.
    pub id: String,
    /// Whose feed.
    pub person_id: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

fn row(m: calendar_feed::Model) -> CalendarFeedRow {
    CalendarFeedRow {
        id: m.id,
        person_id: m.person_id,
        created_at: m.created_at,
        revoked_at: m.revoked_at,
    }
}

/// Inserts a feed (in the audited transaction).
pub(super) async fn insert_feed<C: ConnectionTrait>(conn: &C, new: &NewCalendarFeed) -> Result<()> {
    calendar_feed::Entity::insert(calendar_feed::ActiveModel {
        id: Set(new.id.clone()),
        person_id: Set(new.person_id.clone()),
        hash: Set(new.hash.clone()),
        created_at: Set(instant(new.at)),
        revoked_at: Set(None),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// Revokes a feed; false when there is no such live feed.
pub(super) async fn revoke_feed<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    at: DateTime<Utc>,
) -> Result<bool> {
    let res = calendar_feed::Entity::update_many()
        .col_expr(calendar_feed::Column::RevokedAt, Expr::value(instant(at)))
        .filter(calendar_feed::Column::Id.eq(id))
        .filter(calendar_feed::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    Ok(res.rows_affected > 0)
}

impl Store {
    /// The live feed whose secret hashes to `hash`.
    pub async fn calendar_feed_by_hash(&self, hash: &str) -> Result<Option<CalendarFeedRow>> {
        Ok(calendar_feed::Entity::find()
            .filter(calendar_feed::Column::Hash.eq(hash))
            .filter(calendar_feed::Column::RevokedAt.is_null())
            .one(&self.db)
            .await?
            .map(row))
    }

    /// A feed by id.
    pub async fn calendar_feed(&self, id: &str) -> Result<Option<CalendarFeedRow>> {
        Ok(calendar_feed::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await?
            .map(row))
    }

    /// A person's feeds, oldest first.
    pub async fn calendar_feeds(&self, person_id: &str) -> Result<Vec<CalendarFeedRow>> {
        Ok(calendar_feed::Entity::find()
            .filter(calendar_feed::Column::PersonId.eq(person_id))
            .order_by_asc(calendar_feed::Column::CreatedAt)
            .all(&self.db)
            .await?
            .into_iter()
            .map(row)
            .collect())
    }
}
