//! `Instance`: a running procedure as the caller may see it — state, the variables the policy
//! lets them read (with term traces), history, upcoming deadlines, the transitions they may
//! fire now, and (for ETS, their own) submissions and questions.

use std::sync::Arc;

use async_graphql::{Context, ID, Json, Object, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use super::definition::{StateInfo, TransitionInfo};
use super::question::Question;
use super::submission::{Submission, SubmissionWindow};
use crate::api::access::LoadedInstance;
use crate::api::context::{caller, shared};
use crate::api::error::ApiError;
use crate::api::policy::{Caller, Subject, allows};
use crate::api::window;
use crate::engine::{self, TermRecord};
use crate::store::SubmissionFilter;

/// An instance, as one caller sees it.
pub(crate) struct Instance {
    pub loaded: LoadedInstance,
    pub caller: Arc<Caller>,
}

/// A variable's value.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct VariableValue {
    /// Name.
    pub name: String,
    /// Label.
    pub label: Option<String>,
    /// Type.
    #[graphql(name = "type")]
    pub kind: String,
    /// Value (JSON; null when unset).
    pub value: Json<Value>,
    /// For a term-computed variable, how it was computed.
    pub term: Option<TermInfo>,
}

/// How a term-computed variable got its value.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct TermInfo {
    /// The rule, in words.
    pub rule: String,
    /// The variable it runs from.
    pub from: String,
    /// Dies a quo.
    pub start: NaiveDate,
    /// Civil date of expiry.
    pub expiry: NaiveDate,
    /// Instant of expiry (RFC 3339, Europe/Rome).
    pub deadline: String,
    /// One Italian line per step.
    pub trace: Vec<String>,
}

impl From<&TermRecord> for TermInfo {
    fn from(t: &TermRecord) -> TermInfo {
        TermInfo {
            rule: t.rule.clone(),
            from: t.from.clone(),
            start: t.start,
            expiry: t.expiry,
            deadline: t.deadline.clone(),
            trace: t.trace.clone(),
        }
    }
}

/// A deadline: a term-computed instant, or an armed timer.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct Deadline {
    /// The instance.
    pub instance_id: ID,
    /// The variable holding the instant.
    pub variable: String,
    /// Its label.
    pub label: Option<String>,
    /// The instant.
    pub at: DateTime<Utc>,
    /// Why then, one Italian line per step.
    pub trace: Vec<String>,
    /// The timer armed for it, if any.
    pub timer: Option<String>,
    /// The event the timer fires, if any (none for a reminder).
    pub event: Option<String>,
    /// The application whose term it is, for a participant's term.
    pub participant_id: Option<ID>,
}

/// One step of the history.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct HistoryEntry {
    /// 1 for the start, then one per step.
    pub seq: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// The event.
    pub event: String,
    /// State before.
    pub from_state: Option<String>,
    /// State after.
    pub to_state: String,
    /// The role that acted.
    pub actor_role: String,
    /// A timer fired after its instant.
    pub late: bool,
    /// Who acted (staff only).
    pub actor_id: Option<String>,
    /// The command's inputs (staff only).
    pub payload: Option<Json<Value>>,
    /// The participant (application) the step was about.
    pub participant_id: Option<ID>,
    /// Its state before (none when it joined).
    pub participant_from: Option<String>,
    /// Its state after.
    pub participant_to: Option<String>,
}

impl HistoryEntry {
    /// The entry as `detail` allows (actor and payload for staff only).
    /// The rows as `detail` allows, numbered: for non-staff `seq` is the position among the
    /// rows given (the gaps would count the steps of applications that are not theirs).
    pub(crate) fn numbered(
        rows: impl IntoIterator<Item = crate::store::HistoryRow>,
        detail: bool,
    ) -> Vec<HistoryEntry> {
        rows.into_iter()
            .enumerate()
            .map(|(i, h)| {
                let mut entry = HistoryEntry::from_row(h, detail);
                if !detail {
                    entry.seq = i64::try_from(i + 1).unwrap_or(i64::MAX);
                }
                entry
            })
            .collect()
    }

    pub(crate) fn from_row(h: crate::store::HistoryRow, detail: bool) -> HistoryEntry {
        HistoryEntry {
            seq: h.seq,
            at: h.at,
            event: h.event,
            from_state: h.from_state,
            to_state: h.to_state,
            actor_role: h.actor.role,
            late: h.late,
            actor_id: detail.then_some(h.actor.id),
            payload: detail.then_some(Json(h.payload)),
            participant_id: h.participant.as_ref().map(|m| ID(m.id.clone())),
            participant_from: h.participant.as_ref().and_then(|m| m.from.clone()),
            participant_to: h.participant.map(|m| m.to),
        }
    }
}

impl Instance {
    /// The caller reads the whole history (staff).
    fn detail(&self) -> bool {
        allows(&self.caller, &Subject::HistoryDetail(self.loaded.facts()))
    }

    /// The history rows the caller may read: a participant's to staff and to its own
    /// organisation only.
    async fn visible_history(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Vec<crate::store::HistoryRow>, ApiError> {
        let rows = shared(ctx)?
            .service
            .store()
            .history(&self.loaded.row.id)
            .await?;
        let facts = self.loaded.facts();
        Ok(rows
            .into_iter()
            .filter(|h| crate::api::policy::reads_step(&self.caller, facts, &h.event))
            .filter(|h| {
                h.participant.as_ref().is_none_or(|m| {
                    self.loaded
                        .row
                        .data
                        .participants
                        .get(&m.id)
                        .is_some_and(|part| {
                            allows(&self.caller, &Subject::Participant(facts, part))
                        })
                })
            })
            .collect())
    }

    fn variable_visible(&self, name: &str) -> bool {
        self.loaded
            .procedure
            .variable(name)
            .is_some_and(|v| allows(&self.caller, &Subject::Variable(self.loaded.facts(), v)))
    }
}

#[Object]
impl Instance {
    /// Id.
    async fn id(&self) -> ID {
        ID(self.loaded.row.id.clone())
    }

    /// Procedure id.
    async fn definition_id(&self) -> &str {
        &self.loaded.procedure.id
    }

    /// Pinned version.
    async fn definition_version(&self) -> u32 {
        self.loaded.procedure.version
    }

    /// Procedure title.
    async fn title(&self) -> &str {
        &self.loaded.procedure.title
    }

    /// Current state.
    async fn state(&self) -> StateInfo {
        let p = &self.loaded.procedure;
        let id = &self.loaded.row.state;
        match p.state(id) {
            Some(s) => StateInfo {
                id: s.id.to_string(),
                title: s.title.clone(),
                initial: s.initial,
                is_final: s.is_final,
            },
            None => StateInfo {
                id: id.clone(),
                title: id.clone(),
                initial: false,
                is_final: self.loaded.row.is_final,
            },
        }
    }

    /// Optimistic-lock version (history length), for staff. Hidden from others: it would count
    /// the steps of applications that are not theirs.
    async fn version(&self) -> Option<i64> {
        self.detail().then_some(self.loaded.row.version)
    }

    /// When it started.
    async fn created_at(&self) -> DateTime<Utc> {
        self.loaded.row.created_at
    }

    /// When its last step committed.
    #[graphql(complexity = "crate::api::limits::DB_READ_COST + child_complexity")]
    async fn updated_at(&self, ctx: &Context<'_>) -> Result<DateTime<Utc>, ApiError> {
        if self.detail() {
            return Ok(self.loaded.row.updated_at);
        }
        // Others see the instant of the last step they may read, not of another ETS's.
        Ok(self
            .visible_history(ctx)
            .await?
            .last()
            .map_or(self.loaded.row.created_at, |h| h.at))
    }

    /// The variables the caller may read, in declaration order.
    async fn variables(&self) -> Vec<VariableValue> {
        let data = &self.loaded.row.data;
        self.loaded
            .procedure
            .variables
            .values()
            .filter(|v| allows(&self.caller, &Subject::Variable(self.loaded.facts(), v)))
            .map(|v| VariableValue {
                name: v.name.to_string(),
                label: v.label.clone(),
                kind: v.kind.to_string(),
                value: Json(
                    data.variables
                        .get(v.name.as_str())
                        .cloned()
                        .unwrap_or(Value::Null),
                ),
                term: data.terms.get(v.name.as_str()).map(Into::into),
            })
            .collect()
    }

    /// Term-computed instants not yet passed, that the caller may read, earliest first: the
    /// procedure's, and each application's own (for staff, and for its own ETS).
    async fn deadlines(&self, ctx: &Context<'_>) -> Result<Vec<Deadline>, ApiError> {
        let now = shared(ctx)?.service.now();
        let p = &self.loaded.procedure;
        let facts = self.loaded.facts();
        let deadline =
            |participant: Option<&str>, name: &str, label: Option<String>, term: &TermRecord| {
                let at = DateTime::parse_from_rfc3339(&term.deadline)
                    .ok()?
                    .with_timezone(&Utc);
                (at >= now).then(|| Deadline {
                    instance_id: ID(self.loaded.row.id.clone()),
                    variable: name.to_string(),
                    label,
                    at,
                    trace: term.trace.clone(),
                    timer: None,
                    event: None,
                    participant_id: participant.map(|id| ID(id.to_string())),
                })
            };
        let mut out: Vec<Deadline> = self
            .loaded
            .row
            .data
            .terms
            .iter()
            .filter(|(name, _)| self.variable_visible(name))
            .filter_map(|(name, term)| {
                deadline(
                    None,
                    name,
                    p.variable(name).and_then(|v| v.label.clone()),
                    term,
                )
            })
            .collect();
        if let Some(def) = &p.participant {
            for (id, part) in &self.loaded.row.data.participants {
                if part.withdrawn {
                    continue;
                }
                for (name, term) in &part.terms {
                    let Some(var) = def.variables.get(name.as_str()) else {
                        continue;
                    };
                    if allows(
                        &self.caller,
                        &Subject::ParticipantVariable(facts, part, var),
                    ) && let Some(d) = deadline(Some(id), name, var.label.clone(), term)
                    {
                        out.push(d);
                    }
                }
            }
        }
        out.sort_by_key(|d| d.at);
        Ok(out)
    }

    /// The history. Actor ids and payloads are shown to staff only; a participant's steps
    /// to staff and to that participant's organisation only. For others `seq` is the position
    /// among the rows they may read (the gaps would count the steps of other applications).
    #[graphql(complexity = "crate::api::limits::DB_READ_COST + child_complexity")]
    async fn history(&self, ctx: &Context<'_>) -> Result<Vec<HistoryEntry>, ApiError> {
        let detail = self.detail();
        Ok(HistoryEntry::numbered(
            self.visible_history(ctx).await?,
            detail,
        ))
    }

    /// The transitions the caller's role may fire from the current state (guards are checked
    /// when fired).
    async fn available_transitions(&self) -> Vec<TransitionInfo> {
        if self.loaded.row.is_final {
            return Vec::new();
        }
        let p = &self.loaded.procedure;
        engine::available(p, &self.loaded.row.state, self.caller.role.as_str())
            .filter(|t| {
                allows(
                    &self.caller,
                    &Subject::Fire(self.loaded.facts(), t.event.as_str()),
                )
            })
            .map(Into::into)
            .collect()
    }

    /// The meeting of a body this instance convenes: the seats as convened, the answers, the
    /// register, the quorum now, each item's outcome.
    async fn meeting(&self) -> Option<crate::api::meeting::Meeting> {
        self.loaded.procedure.meeting.as_ref()?;
        Some(crate::api::meeting::Meeting {
            loaded: self.loaded.clone(),
        })
    }

    /// The commissione's evaluation, once the avviso's criteria are fixed: the criteria, the
    /// commissione and, for who may read them, the scores.
    async fn evaluation(&self) -> Option<crate::api::evaluation::Evaluation> {
        self.loaded.row.data.evaluation.as_ref()?;
        Some(crate::api::evaluation::Evaluation {
            loaded: self.loaded.clone(),
            caller: self.caller.clone(),
        })
    }

    /// Whether submissions are open now, until when, and why then.
    async fn submission_window(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Option<SubmissionWindow>, ApiError> {
        let now = shared(ctx)?.service.now();
        let p = &self.loaded.procedure;
        let Some(s) = &p.submissions else {
            return Ok(None);
        };
        let open = window::check(p, &self.loaded.row, window::Act::Submit, now).is_ok();
        let deadline = window::deadline(s, &self.loaded.row).map(|d| d.with_timezone(&Utc));
        let trace = self
            .loaded
            .row
            .data
            .terms
            .get(s.deadline.as_str())
            .map(|t| t.trace.clone())
            .unwrap_or_default();
        Ok(Some(SubmissionWindow {
            open,
            deadline,
            trace,
        }))
    }

    /// Submissions to this instance the caller may read (an ETS: its own).
    #[graphql(complexity = "crate::api::limits::DB_READ_COST + child_complexity")]
    async fn submissions(&self, ctx: &Context<'_>) -> Result<Vec<Submission>, ApiError> {
        let shared = shared(ctx)?;
        let caller = caller(ctx).await?;
        if caller.role == crate::identity::Role::Commissione
            && !crate::api::policy::reads_proposals(&caller, self.loaded.facts())
        {
            return Ok(Vec::new());
        }
        let rows = match &self.loaded.own_submissions {
            // Read for this caller when the instance was loaded.
            Some(own) if caller.role == crate::identity::Role::Ets => own.as_ref().clone(),
            _ => {
                let filter = SubmissionFilter {
                    instance_id: Some(self.loaded.row.id.clone()),
                    organisation_id: (!caller.role.is_staff())
                        .then(|| caller.organisation_id.clone()),
                };
                shared.service.store().submissions(&filter).await?
            }
        };
        Ok(rows
            .into_iter()
            .filter(|s| allows(&caller, &Subject::Submission(s)))
            .map(|row| Submission {
                row,
                caller: caller.clone(),
            })
            .collect())
    }

    /// Questions on this instance the caller may read (an ETS: its own and the public
    /// answered ones).
    #[graphql(complexity = "crate::api::limits::DB_READ_COST + child_complexity")]
    async fn questions(&self, ctx: &Context<'_>) -> Result<Vec<Question>, ApiError> {
        let shared = shared(ctx)?;
        let caller = caller(ctx).await?;
        let rows = shared
            .service
            .store()
            .questions(&self.loaded.row.id)
            .await?;
        Ok(rows
            .into_iter()
            .filter(|q| allows(&caller, &Subject::Question(q)))
            .map(|row| Question {
                row,
                caller: caller.clone(),
            })
            .collect())
    }
}
