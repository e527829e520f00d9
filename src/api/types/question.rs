//! `Question`: a quesito on a notice and its answer. Staff see who asked; an ETS sees its own
//! questions and the answers published to everyone.

use std::sync::Arc;

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use super::caller::OrganisationRef;
use crate::api::context::shared;
use crate::api::error::ApiError;
use crate::api::policy::Caller;
use crate::store::QuestionRow;

/// A question.
pub(crate) struct Question {
    pub row: QuestionRow,
    pub caller: Arc<Caller>,
}

#[Object]
impl Question {
    /// Id.
    async fn id(&self) -> ID {
        ID(self.row.id.clone())
    }

    /// The notice.
    async fn instance_id(&self) -> ID {
        ID(self.row.instance_id.clone())
    }

    /// The question.
    async fn text(&self) -> &str {
        &self.row.text
    }

    /// The answer, once given.
    async fn answer(&self) -> Option<&str> {
        self.row.answer.as_deref()
    }

    /// Published to every ETS (FAQ).
    async fn public(&self) -> bool {
        self.row.public
    }

    /// When asked.
    async fn asked_at(&self) -> DateTime<Utc> {
        self.row.asked_at
    }

    /// When answered.
    async fn answered_at(&self) -> Option<DateTime<Utc>> {
        self.row.answered_at
    }

    /// Asked by the caller's organisation.
    async fn mine(&self) -> bool {
        self.row.organisation_id == self.caller.organisation_id
    }

    /// Who asked: staff only (others get null; a public answer does not name its ETS).
    #[graphql(complexity = "crate::api::limits::DB_READ_COST + child_complexity")]
    async fn asked_by(&self, ctx: &Context<'_>) -> Result<Option<OrganisationRef>, ApiError> {
        if !self.caller.role.is_staff() {
            return Ok(None);
        }
        let org = shared(ctx)?
            .service
            .store()
            .organisation(&self.row.organisation_id)
            .await?;
        Ok(org.map(|o| OrganisationRef {
            id: ID(o.id),
            name: o.name,
        }))
    }
}
