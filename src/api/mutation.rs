//! Mutations: start and fire (through `Service`, with idempotency keys scoped to the caller),
//! and the ETS acts on a notice — submit, withdraw, ask, answer a soccorso — plus the staff's
//! answers and outcomes. Time is the service clock's.

use async_graphql::{Context, ID, Json, Object, SimpleObject};
use serde_json::{Map, Value};

use super::access;
use super::context::{caller, shared};
use super::error::ApiError;
use super::policy::{Caller, Subject, authorize};
use super::subscription::publish;
use super::types::event::InstanceEvent;
use super::types::instance::Instance;
use super::types::question::Question;
use super::types::submission::{SoccorsoResponse, Submission};
use super::uploads::{self, DocumentInput};
use super::window::{self, Act};
use crate::engine::{Command, START_EVENT};
use crate::service::Group;
use crate::store::{NewQuestion, NewSoccorsoResponse, NewSubmission, SubmissionStatus, Submitted};

/// The longest idempotency key accepted.
const MAX_KEY_LEN: usize = 200;
/// The longest question, answer or note accepted, in characters.
const MAX_TEXT_CHARS: usize = 8_000;

/// The mutation root: the procedure's commands and the commissione's.
#[derive(async_graphql::MergedObject, Default)]
pub(crate) struct MutationRoot(
    CoreMutation,
    super::evaluation::EvaluationMutation,
    super::meeting::MeetingMutation,
    super::admin::AdminMutation,
    super::admin::DefinitionMutation,
    super::deliveries::DeliveryMutation,
    super::calendar::CalendarMutation,
    super::migrate::MigrationMutation,
    super::admin::BodyMutation,
);

/// Start, fire, and what an ETS does on a notice.
#[derive(Default)]
pub(crate) struct CoreMutation;

/// The outcome of a start or fire.
#[derive(SimpleObject)]
pub(crate) struct CommandResult {
    /// The instance after the command.
    pub instance: Instance,
    /// The history row the command produced.
    pub seq: i64,
    /// The idempotency key had been used: nothing was done again; this is the first outcome.
    pub replayed: bool,
}

#[Object(name = "Mutation")]
impl CoreMutation {
    /// Starts an instance of a procedure (Ufficio di Piano, RUP).
    async fn start_instance(
        &self,
        ctx: &Context<'_>,
        procedure_id: String,
        version: Option<u32>,
        variables: Option<Json<Value>>,
        idempotency_key: Option<String>,
    ) -> Result<CommandResult, ApiError> {
        let shared = shared(ctx)?;
        let caller = caller(ctx).await?;
        let procedure = shared.service.procedure(&procedure_id, version).await?;
        authorize(&caller, &Subject::Start(&procedure))?;
        let variables = object("variables", variables)?;
        let key = scoped_key(&caller, "start", idempotency_key.as_deref())?;
        let outcome = shared
            .service
            .start(
                &procedure_id,
                version,
                variables,
                &caller.actor(),
                key.as_deref(),
            )
            .await?;
        if outcome.committed.replayed && outcome.instance.definition_id != procedure.id {
            return Err(ApiError::Conflict(
                "chiave di idempotenza già usata per un altro comando".into(),
            ));
        }
        let loaded = access::with_facts(shared, outcome.instance, false).await?;
        authorize(&caller, &Subject::Instance(loaded.facts()))?;
        if !outcome.committed.replayed {
            publish(
                shared,
                InstanceEvent {
                    instance_id: ID(loaded.row.id.clone()),
                    definition_id: loaded.row.definition_id.clone(),
                    seq: outcome.committed.seq,
                    event: START_EVENT.to_string(),
                    from_state: None,
                    to_state: loaded.row.state.clone(),
                    at: loaded.row.updated_at,
                    actor_role: caller.role.as_str().to_string(),
                    participant_id: None,
                    participant_from: None,
                    participant_to: None,
                },
            );
        }
        Ok(CommandResult {
            seq: outcome.committed.seq,
            replayed: outcome.committed.replayed,
            instance: Instance { loaded, caller },
        })
    }

    /// Fires an event on an instance, with its inputs. The same idempotency key twice has one
    /// effect: the second call returns the first outcome with `replayed: true`.
    async fn fire(
        &self,
        ctx: &Context<'_>,
        instance_id: ID,
        event: String,
        input: Option<Json<Value>>,
        idempotency_key: Option<String>,
    ) -> Result<CommandResult, ApiError> {
        let shared = shared(ctx)?;
        let caller = caller(ctx).await?;
        let before = access::instance(shared, &caller, instance_id.as_str()).await?;
        authorize(&caller, &Subject::Fire(before.facts(), &event))?;
        let payload = object("input", input)?;
        let key = scoped_key(&caller, "fire", idempotency_key.as_deref())?;
        let command = Command {
            event: event.clone(),
            actor: caller.actor(),
            payload,
            participant: None,
        };
        let outcome = shared
            .service
            .fire_read(&before.row, &before.procedure, &command, key.as_deref())
            .await?;
        if outcome.committed.replayed && outcome.instance.id != instance_id.as_str() {
            return Err(ApiError::Conflict(
                "chiave di idempotenza già usata per un altro comando".into(),
            ));
        }
        let loaded = access::with_facts(shared, outcome.instance, before.submitted).await?;
        if !outcome.committed.replayed {
            publish(
                shared,
                InstanceEvent {
                    instance_id: ID(loaded.row.id.clone()),
                    definition_id: loaded.row.definition_id.clone(),
                    seq: outcome.committed.seq,
                    event,
                    from_state: Some(before.row.state.clone()),
                    to_state: loaded.row.state.clone(),
                    at: loaded.row.updated_at,
                    actor_role: caller.role.as_str().to_string(),
                    participant_id: None,
                    participant_from: None,
                    participant_to: None,
                },
            );
        }
        // The caller may no longer see it (e.g. an ETS after a state change); then only the seq.
        authorize(&caller, &Subject::Instance(loaded.facts()))?;
        Ok(CommandResult {
            seq: outcome.committed.seq,
            replayed: outcome.committed.replayed,
            instance: Instance { loaded, caller },
        })
    }

    /// Submits an application to a notice (ETS), with its documents, while submissions are
    /// open; after the deadline: `DEADLINE_PASSED` with the deadline and its trace. A group
    /// still to be formed (ATS) applies through its capofila, naming the other `members`.
    async fn submit_application(
        &self,
        ctx: &Context<'_>,
        instance_id: ID,
        note: Option<String>,
        #[graphql(default)] documents: Vec<DocumentInput>,
        #[graphql(default)] members: Vec<String>,
    ) -> Result<Submission, ApiError> {
        let shared = shared(ctx)?;
        let caller = caller(ctx).await?;
        let loaded = access::instance(shared, &caller, instance_id.as_str()).await?;
        authorize(&caller, &Subject::Submit(loaded.facts()))?;
        let now = shared.service.now();
        window::check(&loaded.procedure, &loaded.row, Act::Submit, now)?;
        let note = text("note", note, false)?;
        let members = group_members(members)?;
        let documents = uploads::read(ctx, documents, shared.limits.max_files).await?;
        let new = NewSubmission {
            id: crate::store::new_row_id(now),
            instance_id: loaded.row.id.to_string(),
            organisation_id: caller.organisation_id.clone(),
            person_id: caller.person_id.clone(),
            note,
            documents,
            at: now,
        };
        let group = Group { members };
        match shared.service.submit(&new, &group, &caller.actor()).await? {
            Submitted::Created(row) => {
                tracing::info!(submission = %row.id, instance = %row.instance_id, "domanda presentata");
                register_now(shared, &row.id, None).await;
                Ok(Submission { row, caller })
            }
            Submitted::AlreadyActive(_) => Err(ApiError::Conflict("la vostra organizzazione ha già una domanda attiva su questo avviso: ritirarla per presentarne una nuova".into())),
        }
    }

    /// Withdraws the caller's own submission before the deadline (ETS).
    async fn withdraw_submission(&self, ctx: &Context<'_>, id: ID) -> Result<Submission, ApiError> {
        let shared = shared(ctx)?;
        let caller = caller(ctx).await?;
        let row = access::submission(shared, &caller, id.as_str()).await?;
        authorize(&caller, &Subject::ManageSubmission(&row))?;
        let loaded = access::instance(shared, &caller, &row.instance_id).await?;
        let now = shared.service.now();
        window::check(&loaded.procedure, &loaded.row, Act::Withdraw, now)?;
        if row.status != SubmissionStatus::Submitted {
            return Err(ApiError::Conflict("la domanda è già stata ritirata".into()));
        }
        let row = shared
            .service
            .withdraw(&row, &caller.actor())
            .await?
            .filter(|r| r.status == SubmissionStatus::Withdrawn)
            .ok_or_else(|| ApiError::Conflict("la domanda è già stata ritirata".into()))?;
        Ok(Submission { row, caller })
    }

    /// Asks a question on a notice (ETS), while questions are open.
    async fn ask_question(
        &self,
        ctx: &Context<'_>,
        instance_id: ID,
        text: String,
    ) -> Result<Question, ApiError> {
        let shared = shared(ctx)?;
        let caller = caller(ctx).await?;
        let loaded = access::instance(shared, &caller, instance_id.as_str()).await?;
        authorize(&caller, &Subject::Ask(loaded.facts()))?;
        let now = shared.service.now();
        window::check(&loaded.procedure, &loaded.row, Act::Ask, now)?;
        let text = self::text("text", Some(text), true)?.unwrap_or_default();
        let new = NewQuestion {
            id: crate::store::new_row_id(now),
            instance_id: loaded.row.id.to_string(),
            organisation_id: caller.organisation_id.clone(),
            person_id: caller.person_id.clone(),
            text,
            at: now,
        };
        let row = shared.service.store().ask_question(&new).await?;
        Ok(Question { row, caller })
    }

    /// Answers a question (Ufficio di Piano, RUP); `public` publishes question and answer to
    /// every ETS without naming who asked.
    async fn answer_question(
        &self,
        ctx: &Context<'_>,
        id: ID,
        answer: String,
        #[graphql(default = true)] public: bool,
    ) -> Result<Question, ApiError> {
        let shared = shared(ctx)?;
        let caller = caller(ctx).await?;
        let row = shared
            .service
            .store()
            .question(id.as_str())
            .await?
            .ok_or(ApiError::NotFound { what: "quesito" })?;
        authorize(&caller, &Subject::Answer(&row))?;
        let answer = text("answer", Some(answer), true)?.unwrap_or_default();
        let row = shared
            .service
            .store()
            .answer_question(
                &row.id,
                &answer,
                public,
                &caller.person_id,
                shared.service.now(),
            )
            .await?
            .ok_or(ApiError::NotFound { what: "quesito" })?;
        Ok(Question { row, caller })
    }

    /// Answers a soccorso istruttorio on the caller's own submission (ETS), with documents,
    /// while the soccorso is open.
    async fn respond_to_soccorso(
        &self,
        ctx: &Context<'_>,
        submission_id: ID,
        note: Option<String>,
        #[graphql(default)] documents: Vec<DocumentInput>,
    ) -> Result<SoccorsoResponse, ApiError> {
        let shared = shared(ctx)?;
        let caller = caller(ctx).await?;
        let row = access::submission(shared, &caller, submission_id.as_str()).await?;
        authorize(&caller, &Subject::ManageSubmission(&row))?;
        if row.status != SubmissionStatus::Submitted {
            return Err(ApiError::Conflict("la domanda è stata ritirata".into()));
        }
        let loaded = access::instance(shared, &caller, &row.instance_id).await?;
        let now = shared.service.now();
        // With a participant lifecycle, the participant's own state says whether a soccorso
        // is open for it (the engine checks, with its term); else the procedure's state.
        let own_lifecycle = loaded
            .procedure
            .participant
            .as_ref()
            .is_some_and(|d| d.answer.is_some())
            && loaded.row.data.participants.contains_key(&row.id);
        if !own_lifecycle {
            window::check(&loaded.procedure, &loaded.row, Act::Soccorso, now)?;
        }
        let note = text("note", note, false)?;
        let documents = uploads::read(ctx, documents, shared.limits.max_files).await?;
        if note.is_none() && documents.is_empty() {
            return Err(ApiError::bad_input(
                "indicare una nota o almeno un documento",
            ));
        }
        let new = NewSoccorsoResponse {
            id: uuid::Uuid::new_v4().to_string(),
            submission_id: row.id.clone(),
            person_id: caller.person_id.clone(),
            note,
            documents,
            at: now,
        };
        let response = match shared
            .service
            .answer_soccorso(&new, &row.instance_id, &caller.actor())
            .await
        {
            Ok(response) => response,
            Err(crate::service::Error::Engine(
                crate::engine::Error::WrongState { .. } | crate::engine::Error::UnknownEvent { .. },
            )) => {
                return Err(ApiError::Conflict(
                    "nessuna richiesta di soccorso istruttorio è aperta su questa domanda".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        register_now(shared, &row.id, Some(&response.id)).await;
        Ok(response.into())
    }

    /// Fires an event on the participant of an application — staff request a soccorso,
    /// decide the admission with its motivazione, evaluate; an ETS acts only on its own —
    /// with its inputs. The same idempotency key twice has one effect.
    async fn fire_on_submission(
        &self,
        ctx: &Context<'_>,
        submission_id: ID,
        event: String,
        input: Option<Json<Value>>,
        idempotency_key: Option<String>,
    ) -> Result<SubmissionCommandResult, ApiError> {
        let shared = shared(ctx)?;
        let caller = caller(ctx).await?;
        let row = access::submission(shared, &caller, submission_id.as_str()).await?;
        let before = access::instance(shared, &caller, &row.instance_id).await?;
        let part = before.row.data.participants.get(&row.id).ok_or_else(|| {
            ApiError::bad_input("questa domanda non ha un ciclo di vita proprio nella procedura")
        })?;
        authorize(
            &caller,
            &Subject::FireParticipant(before.facts(), part, &event),
        )?;
        // The answer to a soccorso comes with what it answers: a note or documents, registered
        // as incoming.
        if before
            .procedure
            .participant
            .as_ref()
            .and_then(|d| d.answer.as_ref())
            .is_some_and(|answer| answer.as_str() == event)
        {
            return Err(ApiError::bad_input(
                "la risposta al soccorso istruttorio si invia con respondToSoccorso, con la nota o i documenti",
            ));
        }
        let part_before = part.state.clone();
        let payload = object("input", input)?;
        // A key is scoped to the application: the same key on another one is another command.
        let key = scoped_key(
            &caller,
            &format!("fire-on-submission:{}", row.id),
            idempotency_key.as_deref(),
        )?;
        let command = Command {
            event: event.clone(),
            actor: caller.actor(),
            payload,
            participant: Some(row.id.clone()),
        };
        let outcome = shared
            .service
            .fire(&row.instance_id, &command, key.as_deref())
            .await?;
        if outcome.committed.replayed && outcome.instance.id != row.instance_id {
            return Err(ApiError::Conflict(
                "chiave di idempotenza già usata per un altro comando".into(),
            ));
        }
        if !outcome.committed.replayed {
            publish(
                shared,
                InstanceEvent {
                    instance_id: ID(outcome.instance.id.clone()),
                    definition_id: outcome.instance.definition_id.clone(),
                    seq: outcome.committed.seq,
                    event,
                    from_state: Some(before.row.state.clone()),
                    to_state: outcome.instance.state.clone(),
                    at: outcome.instance.updated_at,
                    actor_role: caller.role.as_str().to_string(),
                    participant_id: Some(ID(row.id.clone())),
                    participant_from: Some(part_before.clone()),
                    participant_to: outcome
                        .instance
                        .data
                        .participants
                        .get(&row.id)
                        .map(|p| p.state.clone()),
                },
            );
        }
        let row = shared
            .service
            .store()
            .submission(&row.id)
            .await?
            .ok_or(ApiError::NotFound { what: "domanda" })?;
        Ok(SubmissionCommandResult {
            seq: outcome.committed.seq,
            replayed: outcome.committed.replayed,
            submission: Submission { row, caller },
        })
    }

    /// Records the outcome (and score) of a submission (Ufficio di Piano, RUP, commissione).
    async fn record_outcome(
        &self,
        ctx: &Context<'_>,
        submission_id: ID,
        outcome: String,
        score: Option<f64>,
    ) -> Result<Submission, ApiError> {
        let shared = shared(ctx)?;
        let caller = caller(ctx).await?;
        let row = access::submission(shared, &caller, submission_id.as_str()).await?;
        authorize(&caller, &Subject::RecordOutcome(&row))?;
        // With a lifecycle per application the outcome is one of its steps, not a free field.
        let loaded = access::instance(shared, &caller, &row.instance_id).await?;
        if loaded.row.data.participants.contains_key(&row.id) {
            return Err(ApiError::bad_input(
                "in questa procedura l'esito è un passo della domanda (fireOnSubmission), con la sua motivazione e la sua comunicazione",
            ));
        }
        let outcome = text("outcome", Some(outcome), true)?.unwrap_or_default();
        if score.is_some_and(|s| !s.is_finite()) {
            return Err(ApiError::bad_field("score", "punteggio non valido"));
        }
        let row = shared
            .service
            .store()
            .record_outcome(&row.id, &outcome, score, shared.service.now())
            .await?
            .ok_or_else(|| ApiError::Conflict("la domanda è stata ritirata".into()))?;
        Ok(Submission { row, caller })
    }
}

/// The outcome of an event fired on an application's participant.
#[derive(SimpleObject)]
pub(crate) struct SubmissionCommandResult {
    /// The application after the command (its participant shows the new state).
    pub submission: Submission,
    /// The history row the command produced.
    pub seq: i64,
    /// The idempotency key had been used: nothing was done again; this is the first outcome.
    pub replayed: bool,
}

/// The most members a group may name, and the longest name.
const MAX_MEMBERS: usize = 20;
const MAX_MEMBER_CHARS: usize = 200;

/// The members of a group: trimmed, none empty, within the caps.
fn group_members(members: Vec<String>) -> Result<Vec<String>, ApiError> {
    if members.len() > MAX_MEMBERS {
        return Err(ApiError::bad_field(
            "members",
            format!("al massimo {MAX_MEMBERS} componenti del raggruppamento"),
        ));
    }
    members
        .into_iter()
        .map(|m| {
            let m = m.trim().to_string();
            if m.is_empty() || m.chars().count() > MAX_MEMBER_CHARS {
                Err(ApiError::bad_field(
                    "members",
                    format!(
                        "ogni componente va nominato, in al massimo {MAX_MEMBER_CHARS} caratteri"
                    ),
                ))
            } else {
                Ok(m)
            }
        })
        .collect()
}

/// A JSON object argument (absent means empty).
fn object(field: &str, value: Option<Json<Value>>) -> Result<Map<String, Value>, ApiError> {
    match value.map(|j| j.0) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map),
        Some(_) => Err(ApiError::bad_field(
            field,
            format!("{field} deve essere un oggetto JSON"),
        )),
    }
}

/// An idempotency key, scoped to the API, the command and the caller, so that two callers,
/// a start and a fire, or the API and the scheduler (`outbox:…`) never share one.
fn scoped_key(
    caller: &Caller,
    command: &str,
    key: Option<&str>,
) -> Result<Option<String>, ApiError> {
    match key {
        None => Ok(None),
        Some(k) if k.trim().is_empty() || k.len() > MAX_KEY_LEN => Err(ApiError::bad_field(
            "idempotencyKey",
            format!("chiave di idempotenza vuota o più lunga di {MAX_KEY_LEN} caratteri"),
        )),
        Some(k) => Ok(Some(format!("api:{command}:{}:{k}", caller.person_id))),
    }
}

/// A free text: trimmed, within the size cap; empty is refused when `required`, else `None`.
fn text(field: &str, value: Option<String>, required: bool) -> Result<Option<String>, ApiError> {
    let value = value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty());
    match value {
        None if required => Err(ApiError::bad_field(
            field,
            format!("{field} non può essere vuoto"),
        )),
        Some(v) if v.chars().count() > MAX_TEXT_CHARS => Err(ApiError::bad_field(
            field,
            format!("{field} troppo lungo: al massimo {MAX_TEXT_CHARS} caratteri"),
        )),
        other => Ok(other),
    }
}

/// How long a mutation waits for the protocol number of what it received; past it the
/// registration goes on from the outbox and the number appears later.
const REGISTRATION_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Registers an application (or a soccorso answer) as incoming at once, so the answer carries
/// its number. The registration is queued with the submission anyway: a failure here only
/// delays it, and is logged.
async fn register_now(shared: &crate::api::Shared, submission_id: &str, soccorso_id: Option<&str>) {
    let Some(protocollo) = &shared.protocollo else {
        return;
    };
    let registering =
        crate::protocollo::dispatch::register_incoming(protocollo, submission_id, soccorso_id);
    match tokio::time::timeout(REGISTRATION_WAIT, registering).await {
        Ok(Ok(registration)) => {
            tracing::info!(numero = %registration, "registrata al protocollo in entrata")
        }
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "registrazione al protocollo rinviata al pianificatore")
        }
        Err(_) => tracing::warn!("registrazione al protocollo lenta: completata dal pianificatore"),
    }
}
