//! Personal calendar feeds through the API: a person creates, lists and revokes their own
//! (the amministratore anyone's). The URL's secret is shown once, on creation.

use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::context::{caller, shared};
use super::error::ApiError;
use crate::admin::{self, Admin};
use crate::identity::Role;

/// A calendar feed.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct CalendarFeed {
    /// Id (to revoke it).
    pub id: ID,
    /// Whose feed.
    pub person_id: ID,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The subscription URL: only on creation (only the secret's hash is kept).
    pub url: Option<String>,
}

impl From<crate::store::CalendarFeedRow> for CalendarFeed {
    fn from(r: crate::store::CalendarFeedRow) -> Self {
        CalendarFeed {
            id: ID(r.id),
            person_id: ID(r.person_id),
            created_at: r.created_at,
            revoked_at: r.revoked_at,
            url: None,
        }
    }
}

/// The public address of `procedo serve` (`PROCEDO_PUBLIC_URL`).
pub(crate) fn public_url() -> String {
    std::env::var("PROCEDO_PUBLIC_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".to_owned())
}

/// The feed URL of a secret.
pub fn feed_url(base: &str, secret: &str) -> String {
    format!("{}/calendario/{secret}.ics", base.trim_end_matches('/'))
}

/// Queries on calendar feeds.
#[derive(Default)]
pub(crate) struct CalendarQuery;

#[Object]
impl CalendarQuery {
    /// The caller's calendar feeds (live and revoked).
    async fn calendar_feeds(&self, ctx: &Context<'_>) -> Result<Vec<CalendarFeed>, ApiError> {
        let caller = caller(ctx).await?;
        let rows = shared(ctx)?
            .service
            .store()
            .calendar_feeds(&caller.person_id)
            .await?;
        Ok(rows.into_iter().map(CalendarFeed::from).collect())
    }
}

/// Mutations on calendar feeds.
#[derive(Default)]
pub(crate) struct CalendarMutation;

#[Object]
impl CalendarMutation {
    /// Creates a personal calendar feed: the meetings of the bodies the person sits in and
    /// the deadlines that concern them. For oneself; the amministratore for anyone
    /// (`personId`). The URL is shown once.
    async fn create_calendar_feed(
        &self,
        ctx: &Context<'_>,
        person_id: Option<ID>,
    ) -> Result<CalendarFeed, ApiError> {
        let caller = caller(ctx).await?;
        let person = person_id.map_or_else(|| caller.person_id.clone(), |p| p.to_string());
        if person != caller.person_id && caller.role != Role::Amministratore {
            return Err(ApiError::Forbidden(
                "un calendario si crea per sé (o dall'amministratore)".into(),
            ));
        }
        let service = &shared(ctx)?.service;
        let by = Admin {
            id: caller.person_id.clone(),
            role: caller.role.as_str().to_string(),
        };
        let issued =
            admin::create_calendar_feed(service.store(), &by, &person, service.now()).await?;
        let mut feed = CalendarFeed::from(issued.feed);
        feed.url = Some(feed_url(&public_url(), &issued.secret));
        Ok(feed)
    }

    /// Revokes a calendar feed: its URL answers 404 from now on. One's own; the
    /// amministratore anyone's.
    async fn revoke_calendar_feed(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<CalendarFeed, ApiError> {
        let caller = caller(ctx).await?;
        let service = &shared(ctx)?.service;
        let store = service.store();
        let feed = store
            .calendar_feed(id.as_str())
            .await?
            .filter(|f| f.person_id == caller.person_id || caller.role == Role::Amministratore)
            .ok_or(ApiError::NotFound { what: "calendario" })?;
        let by = Admin {
            id: caller.person_id.clone(),
            role: caller.role.as_str().to_string(),
        };
        admin::revoke_calendar_feed(store, &by, &feed.id, service.now()).await?;
        let row = store
            .calendar_feed(&feed.id)
            .await?
            .ok_or(ApiError::NotFound { what: "calendario" })?;
        Ok(row.into())
    }
}
