//! What ETS send through the API: submissions (applications) with their documents, soccorso
//! istruttorio responses, and questions with their answers. Document content is stored once
//! per SHA-256, whoever uploads it.
//!
//! Invariant: at most one active (`submitted`) submission per (instance, organisation); the
//! check and the insert share one write transaction, and a partial unique index backs it.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement,
};

use super::entities::{
    document, instance, question, soccorso_response, submission, submission_document,
};
use super::{Error, InstanceRow, Result, Store, instant, is_unique_violation, outbox, settle};
use crate::engine::Effect;

/// Where a submission is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubmissionStatus {
    /// Received and standing.
    Submitted,
    /// Withdrawn by its ETS before the deadline.
    Withdrawn,
}

impl SubmissionStatus {
    /// The value in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            SubmissionStatus::Submitted => "submitted",
            SubmissionStatus::Withdrawn => "withdrawn",
        }
    }

    fn parse(text: &str, id: &str) -> Result<SubmissionStatus> {
        match text {
            "submitted" => Ok(SubmissionStatus::Submitted),
            "withdrawn" => Ok(SubmissionStatus::Withdrawn),
            other => Err(Error::Corrupt(format!(
                "submissions.status '{other}' di {id}"
            ))),
        }
    }
}

impl fmt::Display for SubmissionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A document to attach, with its content (already checked against its declared hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedDocument {
    /// File name as the ETS calls it.
    pub name: String,
    /// Media type.
    pub media_type: String,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    /// The bytes.
    pub content: Vec<u8>,
}

/// A submission to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSubmission {
    /// Id (a UUID).
    pub id: String,
    /// The instance (the avviso).
    pub instance_id: String,
    /// The submitting ETS.
    pub organisation_id: String,
    /// The person who submitted.
    pub person_id: String,
    /// Free note.
    pub note: Option<String>,
    /// Documents.
    pub documents: Vec<AttachedDocument>,
    /// When (the service clock).
    pub at: DateTime<Utc>,
}

/// A stored submission.
#[derive(Debug, Clone, PartialEq)]
pub struct SubmissionRow {
    /// Id.
    pub id: String,
    /// The instance.
    pub instance_id: String,
    /// The ETS.
    pub organisation_id: String,
    /// Who submitted.
    pub person_id: String,
    /// Status.
    pub status: SubmissionStatus,
    /// Note.
    pub note: Option<String>,
    /// When submitted.
    pub submitted_at: DateTime<Utc>,
    /// When withdrawn.
    pub withdrawn_at: Option<DateTime<Utc>>,
    /// Outcome of the evaluation (e.g. `ammesso`, `non ammesso`).
    pub outcome: Option<String>,
    /// Score.
    pub score: Option<f64>,
    /// When the outcome was recorded.
    pub outcome_at: Option<DateTime<Utc>>,
}

impl SubmissionRow {
    fn from_model(m: submission::Model) -> Result<SubmissionRow> {
        Ok(SubmissionRow {
            status: SubmissionStatus::parse(&m.status, &m.id)?,
            id: m.id,
            instance_id: m.instance_id,
            organisation_id: m.organisation_id,
            person_id: m.person_id,
            note: m.note,
            submitted_at: m.submitted_at,
            withdrawn_at: m.withdrawn_at,
            outcome: m.outcome,
            score: m.score,
            outcome_at: m.outcome_at,
        })
    }
}

/// What `submit` did.
#[derive(Debug, Clone, PartialEq)]
pub enum Submitted {
    /// Stored.
    Created(SubmissionRow),
    /// The organisation already has an active submission on the instance; nothing written.
    AlreadyActive(SubmissionRow),
}

/// Which submissions to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubmissionFilter {
    /// Only this instance.
    pub instance_id: Option<String>,
    /// Only this organisation.
    pub organisation_id: Option<String>,
}

/// A document attached to a submission (metadata only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentRef {
    /// Name.
    pub name: String,
    /// Hex SHA-256.
    pub sha256: String,
    /// Media type.
    pub media_type: String,
    /// Size in bytes.
    pub size: i64,
    /// The soccorso response that added it, if any.
    pub soccorso_id: Option<String>,
    /// When it was attached.
    pub added_at: DateTime<Utc>,
}

/// A stored document with its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDocument {
    /// Hex SHA-256.
    pub sha256: String,
    /// Media type.
    pub media_type: String,
    /// The bytes.
    pub content: Vec<u8>,
}

/// A soccorso response to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSoccorsoResponse {
    /// Id (a UUID).
    pub id: String,
    /// The submission it completes.
    pub submission_id: String,
    /// Who answered.
    pub person_id: String,
    /// Note.
    pub note: Option<String>,
    /// Documents added.
    pub documents: Vec<AttachedDocument>,
    /// When.
    pub at: DateTime<Utc>,
}

/// A stored soccorso response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoccorsoRow {
    /// Id.
    pub id: String,
    /// The submission.
    pub submission_id: String,
    /// Who answered.
    pub person_id: String,
    /// Note.
    pub note: Option<String>,
    /// When.
    pub responded_at: DateTime<Utc>,
}

impl From<soccorso_response::Model> for SoccorsoRow {
    fn from(m: soccorso_response::Model) -> Self {
        SoccorsoRow {
            id: m.id,
            submission_id: m.submission_id,
            person_id: m.person_id,
            note: m.note,
            responded_at: m.responded_at,
        }
    }
}

/// A question to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewQuestion {
    /// Id (a UUID).
    pub id: String,
    /// The instance.
    pub instance_id: String,
    /// The asking ETS.
    pub organisation_id: String,
    /// The asking person.
    pub person_id: String,
    /// The question.
    pub text: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A stored question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuestionRow {
    /// Id.
    pub id: String,
    /// The instance.
    pub instance_id: String,
    /// The asking ETS.
    pub organisation_id: String,
    /// The asking person.
    pub person_id: String,
    /// The question.
    pub text: String,
    /// The answer.
    pub answer: Option<String>,
    /// Whether question and answer are published to every ETS (FAQ).
    pub public: bool,
    /// When asked.
    pub asked_at: DateTime<Utc>,
    /// When answered.
    pub answered_at: Option<DateTime<Utc>>,
    /// Who answered.
    pub answered_by: Option<String>,
}

impl From<question::Model> for QuestionRow {
    fn from(m: question::Model) -> Self {
        QuestionRow {
            id: m.id,
            instance_id: m.instance_id,
            organisation_id: m.organisation_id,
            person_id: m.person_id,
            text: m.text,
            answer: m.answer,
            public: m.public,
            asked_at: m.asked_at,
            answered_at: m.answered_at,
            answered_by: m.answered_by,
        }
    }
}

impl Store {
    /// Stores a submission with its documents in one transaction, unless the organisation
    /// already has an active one on the instance.
    #[tracing::instrument(skip_all, fields(instance_id = %new.instance_id, submission_id = %new.id))]
    pub async fn submit(&self, new: &NewSubmission) -> Result<Submitted> {
        let (txn, _turn) = self.begin_write().await?;
        let outcome = submit_in(&txn, new).await;
        let outcome = settle(txn, outcome).await;
        match outcome {
            Ok(Some(existing)) => Ok(Submitted::AlreadyActive(existing)),
            Ok(None) => Ok(Submitted::Created(
                self.submission(&new.id)
                    .await?
                    .ok_or_else(|| Error::NotFound {
                        what: "domanda",
                        id: new.id.clone(),
                    })?,
            )),
            // A concurrent twin won the partial unique index.
            Err(Error::Conflict { .. }) => {
                let active = self
                    .active_submission(&new.instance_id, &new.organisation_id)
                    .await?;
                active
                    .map(Submitted::AlreadyActive)
                    .ok_or_else(|| Error::Conflict {
                        instance_id: new.instance_id.clone(),
                        expected_version: 0,
                    })
            }
            Err(e) => Err(e),
        }
    }

    async fn active_submission(
        &self,
        instance_id: &str,
        organisation_id: &str,
    ) -> Result<Option<SubmissionRow>> {
        active_in(&self.db, instance_id, organisation_id).await
    }

    /// One submission.
    pub async fn submission(&self, id: &str) -> Result<Option<SubmissionRow>> {
        submission::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
            .map(SubmissionRow::from_model)
            .transpose()
    }

    /// Submissions matching the filter, by submission instant then id.
    pub async fn submissions(&self, filter: &SubmissionFilter) -> Result<Vec<SubmissionRow>> {
        let mut query = submission::Entity::find()
            .order_by_asc(submission::Column::SubmittedAt)
            .order_by_asc(submission::Column::Id);
        if let Some(instance_id) = &filter.instance_id {
            query = query.filter(submission::Column::InstanceId.eq(instance_id.as_str()));
        }
        if let Some(org) = &filter.organisation_id {
            query = query.filter(submission::Column::OrganisationId.eq(org.as_str()));
        }
        query
            .all(&self.db)
            .await?
            .into_iter()
            .map(SubmissionRow::from_model)
            .collect()
    }

    /// An instance with the submissions an organisation made to it (in any status, in the
    /// order of `submissions`), in one statement: what an ETS's read of an instance needs.
    pub async fn instance_for_organisation(
        &self,
        instance_id: &str,
        organisation_id: &str,
    ) -> Result<Option<(InstanceRow, Vec<SubmissionRow>)>> {
        use sea_orm::FromQueryResult as _;
        let (first, second) = match self.backend() {
            super::Backend::Postgres => ("$1", "$2"),
            super::Backend::Sqlite => ("?", "?"),
        };
        let sql = format!(
            "SELECT {}, {} FROM instances i \
             LEFT JOIN submissions s ON s.instance_id = i.id AND s.organisation_id = {first} \
             WHERE i.id = {second} ORDER BY s.submitted_at, s.id",
            super::prefixed::<instance::Entity>("i"),
            super::prefixed::<submission::Entity>("s"),
        );
        let rows = self
            .db
            .query_all_raw(Statement::from_sql_and_values(
                self.db.get_database_backend(),
                sql,
                [organisation_id.into(), instance_id.into()],
            ))
            .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let instance = InstanceRow::from_model(instance::Model::from_query_result(first, "i_")?)?;
        let mut submissions = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(model) = submission::Model::from_query_result_optional(row, "s_")? {
                submissions.push(SubmissionRow::from_model(model)?);
            }
        }
        Ok(Some((instance, submissions)))
    }

    /// Ids of the instances an organisation submitted to (in any status).
    pub async fn instances_submitted_by(&self, organisation_id: &str) -> Result<BTreeSet<String>> {
        let ids: Vec<String> = submission::Entity::find()
            .select_only()
            .column(submission::Column::InstanceId)
            .filter(submission::Column::OrganisationId.eq(organisation_id))
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(ids.into_iter().collect())
    }

    /// Documents of a submission (metadata), in the order attached.
    pub async fn submission_documents(&self, submission_id: &str) -> Result<Vec<DocumentRef>> {
        let links = submission_document::Entity::find()
            .filter(submission_document::Column::SubmissionId.eq(submission_id))
            .order_by_asc(submission_document::Column::Id)
            .all(&self.db)
            .await?;
        let mut out = Vec::with_capacity(links.len());
        for link in links {
            let meta: Option<(String, i64)> = document::Entity::find_by_id(link.sha256.clone())
                .select_only()
                .column(document::Column::MediaType)
                .column(document::Column::Size)
                .into_tuple()
                .one(&self.db)
                .await?;
            let (media_type, size) = meta.ok_or_else(|| {
                Error::Corrupt(format!(
                    "documento {} della domanda {submission_id} assente",
                    link.sha256
                ))
            })?;
            out.push(DocumentRef {
                name: link.name,
                sha256: link.sha256,
                media_type,
                size,
                soccorso_id: link.soccorso_id,
                added_at: link.added_at,
            });
        }
        Ok(out)
    }

    /// A document's content, if the submission carries it (never by hash alone: the caller
    /// must name a submission it may read).
    pub async fn submission_document(
        &self,
        submission_id: &str,
        sha256: &str,
    ) -> Result<Option<StoredDocument>> {
        let linked = submission_document::Entity::find()
            .filter(submission_document::Column::SubmissionId.eq(submission_id))
            .filter(submission_document::Column::Sha256.eq(sha256))
            .one(&self.db)
            .await?
            .is_some();
        if !linked {
            return Ok(None);
        }
        Ok(document::Entity::find_by_id(sha256.to_string())
            .one(&self.db)
            .await?
            .map(|m| StoredDocument {
                sha256: m.sha256,
                media_type: m.media_type,
                content: m.content,
            }))
    }

    /// Marks an active submission withdrawn; `None` if it was not active.
    pub async fn withdraw_submission(
        &self,
        id: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<SubmissionRow>> {
        let res = submission::Entity::update_many()
            .col_expr(
                submission::Column::Status,
                Expr::value(SubmissionStatus::Withdrawn.as_str()),
            )
            .col_expr(submission::Column::WithdrawnAt, Expr::value(instant(at)))
            .filter(submission::Column::Id.eq(id))
            .filter(submission::Column::Status.eq(SubmissionStatus::Submitted.as_str()))
            .exec(&self.db)
            .await?;
        if res.rows_affected == 0 {
            return Ok(None);
        }
        self.submission(id).await
    }

    /// Records the outcome (and score) of an active submission; `None` if it is not active.
    pub async fn record_outcome(
        &self,
        id: &str,
        outcome: &str,
        score: Option<f64>,
        at: DateTime<Utc>,
    ) -> Result<Option<SubmissionRow>> {
        let res = submission::Entity::update_many()
            .col_expr(submission::Column::Outcome, Expr::value(outcome))
            .col_expr(submission::Column::Score, Expr::value(score))
            .col_expr(submission::Column::OutcomeAt, Expr::value(instant(at)))
            .filter(submission::Column::Id.eq(id))
            .filter(submission::Column::Status.eq(SubmissionStatus::Submitted.as_str()))
            .exec(&self.db)
            .await?;
        if res.rows_affected == 0 {
            return Ok(None);
        }
        self.submission(id).await
    }

    /// Stores a soccorso response and attaches its documents to the submission, in one
    /// transaction.
    pub async fn add_soccorso_response(&self, new: &NewSoccorsoResponse) -> Result<SoccorsoRow> {
        let (txn, _turn) = self.begin_write().await?;
        let outcome = soccorso_in(&txn, new).await;
        settle(txn, outcome).await?;
        soccorso_response::Entity::find_by_id(new.id.clone())
            .one(&self.db)
            .await?
            .map(SoccorsoRow::from)
            .ok_or_else(|| Error::NotFound {
                what: "risposta al soccorso",
                id: new.id.clone(),
            })
    }

    /// Soccorso responses of a submission, oldest first.
    pub async fn soccorso_responses(&self, submission_id: &str) -> Result<Vec<SoccorsoRow>> {
        Ok(soccorso_response::Entity::find()
            .filter(soccorso_response::Column::SubmissionId.eq(submission_id))
            .order_by_asc(soccorso_response::Column::RespondedAt)
            .order_by_asc(soccorso_response::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(SoccorsoRow::from)
            .collect())
    }

    /// Stores a question.
    pub async fn ask_question(&self, new: &NewQuestion) -> Result<QuestionRow> {
        let row = question::ActiveModel {
            id: Set(new.id.clone()),
            instance_id: Set(new.instance_id.clone()),
            organisation_id: Set(new.organisation_id.clone()),
            person_id: Set(new.person_id.clone()),
            text: Set(new.text.clone()),
            answer: Set(None),
            public: Set(false),
            asked_at: Set(instant(new.at)),
            answered_at: Set(None),
            answered_by: Set(None),
        };
        question::Entity::insert(row)
            .exec_without_returning(&self.db)
            .await?;
        self.question(&new.id)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "quesito",
                id: new.id.clone(),
            })
    }

    /// Answers a question (again, to correct an answer); `None` if there is no such question.
    pub async fn answer_question(
        &self,
        id: &str,
        answer: &str,
        public: bool,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<QuestionRow>> {
        question::Entity::update_many()
            .col_expr(question::Column::Answer, Expr::value(answer))
            .col_expr(question::Column::Public, Expr::value(public))
            .col_expr(question::Column::AnsweredBy, Expr::value(by))
            .col_expr(question::Column::AnsweredAt, Expr::value(instant(at)))
            .filter(question::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        self.question(id).await
    }

    /// One question.
    pub async fn question(&self, id: &str) -> Result<Option<QuestionRow>> {
        Ok(question::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
            .map(QuestionRow::from))
    }

    /// Questions of an instance, oldest first.
    pub async fn questions(&self, instance_id: &str) -> Result<Vec<QuestionRow>> {
        Ok(question::Entity::find()
            .filter(question::Column::InstanceId.eq(instance_id))
            .order_by_asc(question::Column::AskedAt)
            .order_by_asc(question::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(QuestionRow::from)
            .collect())
    }
}

/// What an ETS sent, written in the same transaction as the step it causes (its joining the
/// procedure, its withdrawal, its answer to a soccorso istruttorio).
#[derive(Debug, Clone)]
pub enum SubmissionWrite<'a> {
    /// A new application.
    Submit(&'a NewSubmission),
    /// An application withdrawn.
    Withdraw {
        /// The submission.
        id: &'a str,
        /// When.
        at: DateTime<Utc>,
    },
    /// An answer to a soccorso istruttorio.
    Soccorso(&'a NewSoccorsoResponse),
}

/// Writes what an ETS sent, inside the caller's transaction.
pub(crate) async fn write_in<C: ConnectionTrait>(
    conn: &C,
    write: &SubmissionWrite<'_>,
) -> Result<()> {
    match write {
        SubmissionWrite::Submit(new) => match submit_in(conn, new).await? {
            None => Ok(()),
            Some(existing) => Err(Error::AlreadyExists {
                what: "domanda attiva",
                id: existing.id,
            }),
        },
        SubmissionWrite::Withdraw { id, at } => {
            let res = submission::Entity::update_many()
                .col_expr(
                    submission::Column::Status,
                    Expr::value(SubmissionStatus::Withdrawn.as_str()),
                )
                .col_expr(submission::Column::WithdrawnAt, Expr::value(instant(*at)))
                .filter(submission::Column::Id.eq(*id))
                .filter(submission::Column::Status.eq(SubmissionStatus::Submitted.as_str()))
                .exec(conn)
                .await?;
            if res.rows_affected == 0 {
                return Err(Error::NotFound {
                    what: "domanda attiva",
                    id: (*id).to_string(),
                });
            }
            Ok(())
        }
        SubmissionWrite::Soccorso(new) => soccorso_in(conn, new).await,
    }
}

async fn active_in<C: ConnectionTrait>(
    conn: &C,
    instance_id: &str,
    organisation_id: &str,
) -> Result<Option<SubmissionRow>> {
    submission::Entity::find()
        .filter(submission::Column::InstanceId.eq(instance_id))
        .filter(submission::Column::OrganisationId.eq(organisation_id))
        .filter(submission::Column::Status.eq(SubmissionStatus::Submitted.as_str()))
        .one(conn)
        .await?
        .map(SubmissionRow::from_model)
        .transpose()
}

/// Inserts the submission; `Some(existing)` if the organisation already has an active one.
async fn submit_in<C: ConnectionTrait>(
    conn: &C,
    new: &NewSubmission,
) -> Result<Option<SubmissionRow>> {
    if let Some(existing) = active_in(conn, &new.instance_id, &new.organisation_id).await? {
        return Ok(Some(existing));
    }
    let at = instant(new.at);
    let row = submission::ActiveModel {
        id: Set(new.id.clone()),
        instance_id: Set(new.instance_id.clone()),
        organisation_id: Set(new.organisation_id.clone()),
        person_id: Set(new.person_id.clone()),
        status: Set(SubmissionStatus::Submitted.as_str().to_string()),
        note: Set(new.note.clone()),
        submitted_at: Set(at),
        withdrawn_at: Set(None),
        outcome: Set(None),
        score: Set(None),
        outcome_at: Set(None),
    };
    if let Err(err) = submission::Entity::insert(row)
        .exec_without_returning(conn)
        .await
    {
        return Err(if is_unique_violation(&err) {
            Error::Conflict {
                instance_id: new.instance_id.clone(),
                expected_version: 0,
            }
        } else {
            err.into()
        });
    }
    attach(conn, &new.id, None, &new.documents, at).await?;
    // Registered as incoming in the protocollo: queued with the submission, so it cannot be
    // lost, and carried out at once by the API when it can.
    let register = Effect::RegisterIncoming {
        submission_id: new.id.clone(),
        soccorso_id: None,
    };
    outbox::enqueue_as(conn, Some(&new.instance_id), register.kind(), &register, at).await?;
    Ok(None)
}

async fn soccorso_in<C: ConnectionTrait>(conn: &C, new: &NewSoccorsoResponse) -> Result<()> {
    let at = instant(new.at);
    let row = soccorso_response::ActiveModel {
        id: Set(new.id.clone()),
        submission_id: Set(new.submission_id.clone()),
        person_id: Set(new.person_id.clone()),
        note: Set(new.note.clone()),
        responded_at: Set(at),
    };
    soccorso_response::Entity::insert(row)
        .exec_without_returning(conn)
        .await?;
    attach(conn, &new.submission_id, Some(&new.id), &new.documents, at).await?;
    let instance_id = submission::Entity::find_by_id(new.submission_id.clone())
        .one(conn)
        .await?
        .map(|s| s.instance_id);
    let register = Effect::RegisterIncoming {
        submission_id: new.submission_id.clone(),
        soccorso_id: Some(new.id.clone()),
    };
    outbox::enqueue_as(conn, instance_id.as_deref(), register.kind(), &register, at).await
}

/// Stores each document's content once by hash and links it to the submission.
async fn attach<C: ConnectionTrait>(
    conn: &C,
    submission_id: &str,
    soccorso_id: Option<&str>,
    documents: &[AttachedDocument],
    at: DateTime<Utc>,
) -> Result<()> {
    for doc in documents {
        let stored = document::Entity::find_by_id(doc.sha256.clone())
            .select_only()
            .column(document::Column::Sha256)
            .into_tuple::<String>()
            .one(conn)
            .await?;
        if stored.is_none() {
            let size = i64::try_from(doc.content.len())
                .map_err(|_| Error::Corrupt(format!("documento {} troppo grande", doc.sha256)))?;
            let row = document::ActiveModel {
                sha256: Set(doc.sha256.clone()),
                media_type: Set(doc.media_type.clone()),
                size: Set(size),
                content: Set(doc.content.clone()),
                created_at: Set(at),
            };
            document::Entity::insert(row)
                .exec_without_returning(conn)
                .await?;
        }
        let link = submission_document::ActiveModel {
            id: NotSet,
            submission_id: Set(submission_id.to_string()),
            sha256: Set(doc.sha256.clone()),
            name: Set(doc.name.clone()),
            soccorso_id: Set(soccorso_id.map(str::to_string)),
            added_at: Set(at),
        };
        submission_document::Entity::insert(link)
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}
