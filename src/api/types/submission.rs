//! `Submission` (an ETS's application with its documents, soccorso answers and outcome), the
//! submission window of a notice, and the public ranking.

use std::sync::Arc;

use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::caller::OrganisationRef;
use super::instance::Instance;
use super::participant::Participant;
use super::protocol::ProtocolReference;
use crate::api::access;
use crate::api::context::shared;
use crate::api::error::ApiError;
use crate::api::policy::Caller;
use crate::store::{self, SubmissionRow, SubmissionStatus};

/// A submission, as its ETS or staff see it.
pub(crate) struct Submission {
    pub row: SubmissionRow,
    pub caller: Arc<Caller>,
}

/// Where a submission is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub(crate) enum SubmissionState {
    /// Received and standing.
    Submitted,
    /// Withdrawn by its ETS.
    Withdrawn,
}

impl From<SubmissionStatus> for SubmissionState {
    fn from(s: SubmissionStatus) -> SubmissionState {
        match s {
            SubmissionStatus::Submitted => SubmissionState::Submitted,
            SubmissionStatus::Withdrawn => SubmissionState::Withdrawn,
        }
    }
}

/// A document attached to a submission.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct Document {
    /// Name.
    pub name: String,
    /// Media type.
    pub media_type: String,
    /// Size in bytes.
    pub size: i64,
    /// Hex SHA-256.
    pub sha256: String,
    /// When attached.
    pub added_at: DateTime<Utc>,
    /// The soccorso answer that added it, if any.
    pub soccorso_response_id: Option<ID>,
    /// Where to download it (same bearer token): `/documents/{submission}/{sha256}`.
    pub url: String,
}

/// An answer to a soccorso istruttorio.
#[derive(Debug, Clone, SimpleObject)]
#[graphql(complex)]
pub(crate) struct SoccorsoResponse {
    /// Id.
    pub id: ID,
    /// The submission it completes.
    pub submission_id: ID,
    /// Note.
    pub note: Option<String>,
    /// When.
    pub responded_at: DateTime<Utc>,
}

impl From<store::SoccorsoRow> for SoccorsoResponse {
    fn from(r: store::SoccorsoRow) -> SoccorsoResponse {
        SoccorsoResponse {
            id: ID(r.id),
            submission_id: ID(r.submission_id),
            note: r.note,
            responded_at: r.responded_at,
        }
    }
}

#[async_graphql::ComplexObject]
impl SoccorsoResponse {
    /// Its registration in the protocollo as incoming (null until registered).
    #[graphql(complexity = "crate::api::limits::DB_READ_COST + child_complexity")]
    async fn protocol(&self, ctx: &Context<'_>) -> Result<Option<ProtocolReference>, ApiError> {
        let key = format!("soccorso:{}", self.id.as_str());
        Ok(shared(ctx)?
            .service
            .store()
            .protocol_citation(&key)
            .await?
            .as_ref()
            .map(ProtocolReference::from))
    }
}

/// Whether a notice takes submissions now.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct SubmissionWindow {
    /// Open now (right state, deadline not passed).
    pub open: bool,
    /// The deadline, once fixed.
    pub deadline: Option<DateTime<Utc>>,
    /// Its computation, one Italian line per step.
    pub trace: Vec<String>,
}

/// The public ranking of a notice.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct Ranking {
    /// Published: every ETS that may see the notice reads it.
    pub published: bool,
    /// Entries by position (empty while unpublished, except for staff).
    pub entries: Vec<RankingEntry>,
}

/// One place in the ranking.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct RankingEntry {
    /// 1 for the first.
    pub position: i32,
    /// The ETS.
    pub organisation: OrganisationRef,
    /// The outcome.
    pub outcome: String,
    /// The score: shown to staff and to the ETS itself only.
    pub score: Option<f64>,
    /// The entry is the caller's own.
    pub mine: bool,
}

#[Object]
impl Submission {
    /// Id.
    async fn id(&self) -> ID {
        ID(self.row.id.clone())
    }

    /// The notice it answers.
    #[graphql(complexity = "crate::api::limits::DB_READ_COST + child_complexity")]
    async fn instance(&self, ctx: &Context<'_>) -> Result<Instance, ApiError> {
        let loaded = access::instance(shared(ctx)?, &self.caller, &self.row.instance_id).await?;
        Ok(Instance {
            loaded,
            caller: self.caller.clone(),
        })
    }

    /// The submitting ETS.
    #[graphql(complexity = "crate::api::limits::DB_READ_COST + child_complexity")]
    async fn organisation(&self, ctx: &Context<'_>) -> Result<OrganisationRef, ApiError> {
        let org = shared(ctx)?
            .service
            .store()
            .organisation(&self.row.organisation_id)
            .await?
            .ok_or(ApiError::NotFound {
                what: "organizzazione",
            })?;
        Ok(OrganisationRef {
            id: ID(org.id),
            name: org.name,
        })
    }

    /// Status.
    async fn status(&self) -> SubmissionState {
        self.row.status.into()
    }

    /// Note.
    async fn note(&self) -> Option<&str> {
        self.row.note.as_deref()
    }

    /// When submitted.
    async fn submitted_at(&self) -> DateTime<Utc> {
        self.row.submitted_at
    }

    /// When withdrawn.
    async fn withdrawn_at(&self) -> Option<DateTime<Utc>> {
        self.row.withdrawn_at
    }

    /// The outcome, once recorded.
    async fn outcome(&self) -> Option<&str> {
        self.row.outcome.as_deref()
    }

    /// The score, once recorded.
    async fn score(&self) -> Option<f64> {
        self.row.score
    }

    /// Documents, in the order attached.
    #[graphql(complexity = "crate::api::limits::DB_READ_COST + child_complexity")]
    async fn documents(&self, ctx: &Context<'_>) -> Result<Vec<Document>, ApiError> {
        let docs = shared(ctx)?
            .service
            .store()
            .submission_documents(&self.row.id)
            .await?;
        Ok(docs
            .into_iter()
            .map(|d| Document {
                url: format!("/documents/{}/{}", self.row.id, d.sha256),
                name: d.name,
                media_type: d.media_type,
                size: d.size,
                sha256: d.sha256,
                added_at: d.added_at,
                soccorso_response_id: d.soccorso_id.map(ID),
            })
            .collect())
    }

    /// Its registration in the protocollo as incoming, with the receipt instant its
    /// timeliness is judged on (null until registered).
    #[graphql(complexity = "crate::api::limits::DB_READ_COST + child_complexity")]
    async fn protocol(&self, ctx: &Context<'_>) -> Result<Option<ProtocolReference>, ApiError> {
        let key = format!("domanda:{}", self.row.id);
        Ok(shared(ctx)?
            .service
            .store()
            .protocol_citation(&key)
            .await?
            .as_ref()
            .map(ProtocolReference::from))
    }

    /// Its participant in the procedure's per-application lifecycle (null for procedures
    /// without one): state, own terms with their traces, the events the caller may fire.
    #[graphql(complexity = "crate::api::limits::DB_READ_COST + child_complexity")]
    async fn participant(&self, ctx: &Context<'_>) -> Result<Option<Participant>, ApiError> {
        let loaded = access::instance(shared(ctx)?, &self.caller, &self.row.instance_id).await?;
        Ok(Participant::of(loaded, &self.row.id, self.caller.clone()))
    }

    /// Answers to soccorso istruttorio.
    #[graphql(complexity = "crate::api::limits::DB_READ_COST + child_complexity")]
    async fn soccorso_responses(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Vec<SoccorsoResponse>, ApiError> {
        Ok(shared(ctx)?
            .service
            .store()
            .soccorso_responses(&self.row.id)
            .await?
            .into_iter()
            .map(SoccorsoResponse::from)
            .collect())
    }
}
