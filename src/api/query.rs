//! Queries: definitions, instances (filtered, Relay-paginated), one instance, submissions,
//! questions, the ranking, upcoming deadlines and the term calculator. Every object handed
//! out went through the policy.

use std::collections::{BTreeSet, HashMap};

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use super::access::{self, LoadedInstance};
use super::context::{caller, shared};
use super::error::ApiError;
use super::policy::{Subject, allows, authorize, listed_parties};
use super::types::caller::{Me, OrganisationRef};
use super::types::definition::Definition;
use super::types::instance::{Deadline, Instance};
use super::types::protocol::ProtocolRegistration;
use super::types::question::Question;
use super::types::submission::{Ranking, RankingEntry, Submission};
use super::types::term::{self, ComputedTerm, TermInput};
use crate::engine::TimerAction;
use crate::identity::Role;
use crate::store::{InstanceFilter, SubmissionFilter, SubmissionStatus};

/// How many store pages `instances` reads at most to fill one page of visible instances.
const MAX_SCANS: usize = 40;
/// The widest `upcomingDeadlines` range, in days.
const MAX_DEADLINE_RANGE_DAYS: i64 = 366;

/// The query root: the procedures' reads and the administrator's.
#[derive(async_graphql::MergedObject, Default)]
#[graphql(name = "Query")]
pub(crate) struct QueryRoot(
    CoreQuery,
    super::admin::AdminQuery,
    super::deliveries::DeliveryQuery,
    super::calendar::CalendarQuery,
    super::export::ExportQuery,
    super::admin::BodyQuery,
);

/// Procedures, instances, submissions, questions, the protocollo, terms.
#[derive(Default)]
pub(crate) struct CoreQuery;

#[Object]
impl CoreQuery {
    /// Who the token says the caller is.
    async fn me(&self, ctx: &Context<'_>) -> Result<Me, ApiError> {
        Ok(Me::from(caller(ctx).await?.as_ref()))
    }

    /// Installed procedure definitions: the latest version of each (every version with
    /// `allVersions: true`).
    #[graphql(complexity = "crate::api::limits::DB_READ_COST + child_complexity")]
    async fn definitions(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] all_versions: bool,
    ) -> Result<Vec<Definition>, ApiError> {
        let shared = shared(ctx)?;
        let caller = caller(ctx).await?;
        let rows = shared.service.store().definitions().await?;
        let mut latest: Vec<(String, u32)> = Vec::new();
        for row in rows {
            match latest.iter_mut().find(|(id, _)| *id == row.id) {
                Some(entry) if !all_versions => entry.1 = entry.1.max(row.version),
                _ => latest.push((row.id, row.version)),
            }
        }
        let mut out = Vec::with_capacity(latest.len());
        for (id, version) in latest {
            let procedure = shared.service.procedure(&id, Some(version)).await?;
            if allows(&caller, &Subject::Definition(&procedure)) {
                out.push(Definition { procedure });
            }
        }
        Ok(out)
    }

    /// One definition (the latest version when `version` is omitted).
    #[graphql(complexity = "crate::api::limits::DB_READ_COST + child_complexity")]
    async fn definition(
        &self,
        ctx: &Context<'_>,
        id: String,
        version: Option<u32>,
    ) -> Result<Definition, ApiError> {
        let shared = shared(ctx)?;
        let caller = caller(ctx).await?;
        let procedure = shared.service.procedure(&id, version).await?;
        authorize(&caller, &Subject::Definition(&procedure))?;
        Ok(Definition { procedure })
    }

    /// Instances the caller may see, by id; filter by procedure, state and party (an
    /// organisation that submitted to it or that a `parties` variable lists). Relay cursor
    /// pagination: `first` (at most the configured page size) and `after`.
    #[graphql(
        complexity = "crate::api::limits::DB_READ_COST + first.unwrap_or(20).clamp(0, 10_000) as usize * child_complexity"
    )]
    async fn instances(
        &self,
        ctx: &Context<'_>,
        definition: Option<String>,
        state: Option<String>,
        party: Option<ID>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, Instance>, ApiError> {
        let shared = shared(ctx)?;
        let caller = caller(ctx).await?;
        let limit = shared.limits.page_size(first)?;
        let mut cursor = after.as_deref().map(decode_cursor).transpose()?;
        let store = shared.service.store();
        let mut connection = Connection::new(cursor.is_some(), false);
        // An ETS asking for another party's instances learns nothing: its scope is itself.
        if let Some(org) = &party
            && !caller.role.is_staff()
            && org.as_str() != caller.organisation_id
        {
            return Ok(connection);
        }
        let party_submitted: Option<BTreeSet<String>> = match &party {
            Some(org) => Some(store.instances_submitted_by(org.as_str()).await?),
            None => None,
        };
        let mine: BTreeSet<String> = if caller.role == Role::Ets {
            store
                .instances_submitted_by(&caller.organisation_id)
                .await?
        } else {
            BTreeSet::new()
        };
        let batch = (limit + 1).max(50);
        let mut nodes: Vec<LoadedInstance> = Vec::new();
        let mut has_next = false;
        let mut reached_the_end = false;
        'scan: for _ in 0..MAX_SCANS {
            let rows = store
                .instances(&InstanceFilter {
                    definition_id: definition.clone(),
                    state: state.clone(),
                    after_id: cursor.clone(),
                    limit: Some(batch as u64),
                })
                .await?;
            let exhausted = rows.len() < batch;
            for row in rows {
                cursor = Some(row.id.clone());
                let submitted = mine.contains(&row.id);
                let loaded = access::with_facts(shared, row, submitted).await?;
                if let (Some(org), Some(ids)) = (&party, &party_submitted)
                    && !ids.contains(&loaded.row.id)
                    && !listed_parties(&loaded.procedure, &loaded.row).contains(&org.as_str())
                {
                    continue;
                }
                if !allows(&caller, &Subject::Instance(loaded.facts())) {
                    continue;
                }
                if nodes.len() == limit {
                    has_next = true;
                    break 'scan;
                }
                nodes.push(loaded);
            }
            if exhausted {
                reached_the_end = true;
                break;
            }
        }
        // The scan budget ran out before the end: there may be more visible rows after the
        // last one returned, so say so rather than end the pages early.
        connection.has_next_page = has_next || (!reached_the_end && !nodes.is_empty());
        for loaded in nodes {
            let cursor = encode_cursor(&loaded.row.id);
            connection.edges.push(Edge::new(
                cursor,
                Instance {
                    loaded,
                    caller: caller.clone(),
                },
            ));
        }
        Ok(connection)
    }

    /// One instance.
    #[graphql(complexity = "crate::api::limits::DB_READ_COST + child_complexity")]
    async fn instance(&self, ctx: &Context<'_>, id: ID) -> Result<Instance, ApiError> {
        let caller = caller(ctx).await?;
        let loaded = access::instance(shared(ctx)?, &caller, id.as_str()).await?;
        Ok(Instance { loaded, caller })
    }

    /// One submission (an ETS: only its own; any other id is `NOT_FOUND`).
    #[graphql(complexity = "crate::api::limits::DB_READ_COST + child_complexity")]
    async fn submission(&self, ctx: &Context<'_>, id: ID) -> Result<Submission, ApiError> {
        let caller = caller(ctx).await?;
        let row = access::submission(shared(ctx)?, &caller, id.as_str()).await?;
        Ok(Submission { row, caller })
    }

    /// Submissions the caller may read, optionally of one instance (an ETS: its own).
    #[graphql(complexity = "crate::api::limits::DB_READ_COST + child_complexity")]
    async fn submissions(
        &self,
        ctx: &Context<'_>,
        instance_id: Option<ID>,
    ) -> Result<Vec<Submission>, ApiError> {
        let shared = shared(ctx)?;
        let caller = caller(ctx).await?;
        if let Some(id) = &instance_id {
            access::instance(shared, &caller, id.as_str()).await?;
        }
        let filter = SubmissionFilter {
            instance_id: instance_id.map(|i| i.0),
            organisation_id: (!caller.role.is_staff()).then(|| caller.organisation_id.clone()),
        };
        let rows = shared.service.store().submissions(&filter).await?;
        let mut readable = std::collections::HashMap::new();
        let mut out = Vec::new();
        for row in rows {
            if !allows(&caller, &Subject::Submission(&row)) {
                continue;
            }
            // Where a commissione evaluates, its role reads proposals as a declared member.
            if caller.role == Role::Commissione {
                let id = row.instance_id.clone();
                let ok = match readable.get(&id) {
                    Some(ok) => *ok,
                    None => {
                        let ok = match access::instance(shared, &caller, &id).await {
                            Ok(loaded) => {
                                crate::api::policy::reads_proposals(&caller, loaded.facts())
                            }
                            Err(_) => false,
                        };
                        readable.insert(id, ok);
                        ok
                    }
                };
                if !ok {
                    continue;
                }
            }
            out.push(Submission {
                row,
                caller: caller.clone(),
            });
        }
        Ok(out)
    }

    /// Questions on an instance the caller may read.
    #[graphql(complexity = "crate::api::limits::DB_READ_COST + child_complexity")]
    async fn questions(
        &self,
        ctx: &Context<'_>,
        instance_id: ID,
    ) -> Result<Vec<Question>, ApiError> {
        let shared = shared(ctx)?;
        let caller = caller(ctx).await?;
        access::instance(shared, &caller, instance_id.as_str()).await?;
        let rows = shared
            .service
            .store()
            .questions(instance_id.as_str())
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

    /// The ranking of a notice: published once outcomes are recorded and submissions are
    /// closed. Scores are shown to staff and to each ETS for itself only.
    #[graphql(complexity = "crate::api::limits::DB_READ_COST + child_complexity")]
    async fn ranking(&self, ctx: &Context<'_>, instance_id: ID) -> Result<Ranking, ApiError> {
        let shared = shared(ctx)?;
        let caller = caller(ctx).await?;
        let loaded = access::instance(shared, &caller, instance_id.as_str()).await?;
        authorize(&caller, &Subject::Ranking(loaded.facts()))?;
        if let Some(score) = loaded
            .procedure
            .submissions
            .as_ref()
            .and_then(|s| s.score.as_ref())
            .filter(|_| loaded.procedure.participant.is_some())
        {
            return Ok(participant_ranking(&loaded, &caller, score.as_str()));
        }
        let store = shared.service.store();
        let mut rows: Vec<_> = store
            .submissions(&SubmissionFilter {
                instance_id: Some(loaded.row.id.clone()),
                organisation_id: None,
            })
            .await?
            .into_iter()
            .filter(|s| s.status == SubmissionStatus::Submitted && s.outcome.is_some())
            .collect();
        // Public once the procedure says so (the graduatoria is approved), not merely once
        // submissions close: during the evaluation outcomes are still the commission's.
        let public_state = match loaded.procedure.submissions.as_ref() {
            Some(s) if !s.ranking_while.is_empty() => s
                .ranking_while
                .iter()
                .any(|st| st.as_str() == loaded.row.state),
            _ => loaded.row.is_final,
        };
        let published = !rows.is_empty() && public_state;
        if !published && !caller.role.is_staff() {
            return Ok(Ranking {
                published,
                entries: Vec::new(),
            });
        }
        rows.sort_by(|a, b| {
            b.score
                .unwrap_or(f64::MIN)
                .total_cmp(&a.score.unwrap_or(f64::MIN))
                .then(a.submitted_at.cmp(&b.submitted_at))
        });
        let mut entries = Vec::with_capacity(rows.len());
        for (i, row) in rows.into_iter().enumerate() {
            let name = store
                .organisation(&row.organisation_id)
                .await?
                .map_or_else(|| row.organisation_id.clone(), |o| o.name);
            let mine = row.organisation_id == caller.organisation_id;
            entries.push(RankingEntry {
                position: i32::try_from(i + 1).unwrap_or(i32::MAX),
                organisation: OrganisationRef {
                    id: ID(row.organisation_id.clone()),
                    name,
                },
                outcome: row.outcome.clone().unwrap_or_default(),
                score: if caller.role.is_staff() || (mine && caller.role == Role::Ets) {
                    row.score
                } else {
                    None
                },
                mine,
            });
        }
        Ok(Ranking { published, entries })
    }

    /// Armed timers firing in `[from, to)` on instances the caller may see, for variables the
    /// caller may read, with the trace of each instant.
    #[graphql(complexity = "crate::api::limits::DB_READ_COST + child_complexity")]
    async fn upcoming_deadlines(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Deadline>, ApiError> {
        if to <= from {
            return Err(ApiError::bad_field("to", "`to` deve seguire `from`"));
        }
        if to - from > chrono::Duration::days(MAX_DEADLINE_RANGE_DAYS) {
            return Err(ApiError::bad_field(
                "to",
                format!("intervallo troppo ampio: al massimo {MAX_DEADLINE_RANGE_DAYS} giorni"),
            ));
        }
        let shared = shared(ctx)?;
        let caller = caller(ctx).await?;
        let store = shared.service.store();
        let timers = store.timers_between(from, to, None).await?;
        let mine: BTreeSet<String> = if caller.role == Role::Ets {
            store
                .instances_submitted_by(&caller.organisation_id)
                .await?
        } else {
            BTreeSet::new()
        };
        let mut seen: HashMap<String, Option<LoadedInstance>> = HashMap::new();
        let mut out = Vec::new();
        for timer in timers {
            if !seen.contains_key(&timer.instance_id) {
                let visible = match store.instance(&timer.instance_id).await? {
                    Some(row) => {
                        let loaded =
                            access::with_facts(shared, row, mine.contains(&timer.instance_id))
                                .await?;
                        allows(&caller, &Subject::Instance(loaded.facts())).then_some(loaded)
                    }
                    None => None,
                };
                seen.insert(timer.instance_id.clone(), visible);
            }
            let Some(Some(loaded)) = seen.get(&timer.instance_id) else {
                continue;
            };
            let participant = match &timer.action {
                TimerAction::Fire { participant, .. } | TimerAction::Remind { participant, .. } => {
                    participant.as_deref()
                }
            };
            let var = match participant {
                // A participant's own timer: for staff and for that participant's ETS only.
                Some(id) => {
                    let (Some(part), Some(def)) = (
                        loaded.row.data.participants.get(id),
                        loaded.procedure.participant.as_ref(),
                    ) else {
                        continue;
                    };
                    let Some(var) = def
                        .timers
                        .iter()
                        .find(|t| t.id == timer.timer)
                        .and_then(|t| {
                            def.variables
                                .get(t.at.as_str())
                                .or_else(|| loaded.procedure.variable(t.at.as_str()))
                        })
                    else {
                        continue;
                    };
                    if !allows(
                        &caller,
                        &Subject::ParticipantVariable(loaded.facts(), part, var),
                    ) {
                        continue;
                    }
                    var
                }
                None => {
                    let Some(def) = loaded.procedure.timers.iter().find(|t| t.id == timer.timer)
                    else {
                        continue;
                    };
                    let Some(var) = loaded.procedure.variable(def.at.as_str()) else {
                        continue;
                    };
                    if !allows(&caller, &Subject::Variable(loaded.facts(), var)) {
                        continue;
                    }
                    var
                }
            };
            out.push(Deadline {
                participant_id: participant.map(|id| ID(id.to_string())),
                instance_id: ID(timer.instance_id.clone()),
                variable: var.name.to_string(),
                label: var.label.clone(),
                at: timer.fire_at,
                trace: timer.trace.clone(),
                timer: Some(timer.key.clone()),
                event: match &timer.action {
                    TimerAction::Fire { event, .. } => Some(event.clone()),
                    TimerAction::Remind { .. } => None,
                },
            });
        }
        Ok(out)
    }

    /// The protocol registrations of an instance: every one for staff; for an ETS or a
    /// comune those it sent or that were addressed to it.
    #[graphql(complexity = "crate::api::limits::DB_READ_COST + child_complexity")]
    async fn protocol_registrations(
        &self,
        ctx: &Context<'_>,
        instance_id: ID,
    ) -> Result<Vec<ProtocolRegistration>, ApiError> {
        let shared = shared(ctx)?;
        let caller = caller(ctx).await?;
        access::instance(shared, &caller, instance_id.as_str()).await?;
        let rows = shared
            .service
            .store()
            .protocol_registrations(&crate::store::ProtocolFilter {
                instance_id: Some(instance_id.to_string()),
                ..crate::store::ProtocolFilter::default()
            })
            .await?;
        Ok(rows
            .into_iter()
            .filter(|row| allows(&caller, &Subject::ProtocolRegistration(row)))
            .map(|row| ProtocolRegistration {
                row,
                caller: caller.clone(),
            })
            .collect())
    }

    /// The legal-term calculator (art. 2963 c.c., art. 155 c.p.c.), with its trace.
    async fn compute_term(
        &self,
        ctx: &Context<'_>,
        input: TermInput,
    ) -> Result<ComputedTerm, ApiError> {
        caller(ctx).await?;
        term::compute(input)
    }
}

/// An opaque cursor for an instance id.
fn encode_cursor(id: &str) -> String {
    hex::encode(id)
}

fn decode_cursor(cursor: &str) -> Result<String, ApiError> {
    hex::decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| ApiError::bad_field("after", "cursore non valido"))
}

/// The ranking of a procedure with participants: those with a score, highest first (ties by
/// arrival), the outcome being the participant's state. With a commissione's evaluation, the
/// graduatoria the determina approved: its order (tie rule included), the eligible only.
/// Scores are shown to staff and to each ETS for its own entry.
fn participant_ranking(
    loaded: &access::LoadedInstance,
    caller: &crate::api::policy::Caller,
    score: &str,
) -> Ranking {
    use rust_decimal::Decimal;
    let p = &loaded.procedure;
    let data = &loaded.row.data;
    let public_state = match p.submissions.as_ref() {
        Some(s) if !s.ranking_while.is_empty() => s
            .ranking_while
            .iter()
            .any(|st| st.as_str() == loaded.row.state),
        _ => loaded.row.is_final,
    };
    let in_ranking = |part: &crate::engine::ParticipantData| {
        // Out of the ranking: who withdrew, and who ended in a final state (excluded, decaduto).
        !part.withdrawn
            && !p
                .participant
                .as_ref()
                .and_then(|d| d.states.get(part.state.as_str()))
                .is_some_and(|s| s.is_final)
    };
    // (position, score, participant), in order.
    let placed: Vec<(i32, Decimal, &crate::engine::ParticipantData)> =
        match data.evaluation.as_ref().and_then(|e| e.approval.as_ref()) {
            Some(approval) => approval
                .ranking
                .iter()
                .filter(|e| e.eligible)
                .filter_map(|e| {
                    let part = data.participants.get(&e.participant)?;
                    let position = i32::try_from(e.rank?).ok()?;
                    in_ranking(part).then_some((position, e.total, part))
                })
                .collect(),
            None => {
                let mut scored: Vec<(Decimal, &crate::engine::ParticipantData)> = data
                    .participants
                    .values()
                    .filter(|part| in_ranking(part))
                    .filter_map(|part| {
                        let value = part.variables.get(score)?.as_number()?;
                        Some((crate::engine::value::decimal(value)?, part))
                    })
                    .collect();
                scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.joined_at.cmp(&b.1.joined_at)));
                scored
                    .into_iter()
                    .enumerate()
                    .map(|(i, (value, part))| {
                        (i32::try_from(i + 1).unwrap_or(i32::MAX), value, part)
                    })
                    .collect()
            }
        };
    let published = !placed.is_empty() && public_state;
    if !published && !caller.role.is_staff() {
        return Ranking {
            published,
            entries: Vec::new(),
        };
    }
    let entries = placed
        .into_iter()
        .map(|(position, value, part)| {
            let mine = part.organisation_id == caller.organisation_id;
            let outcome = p
                .participant
                .as_ref()
                .and_then(|d| d.states.get(part.state.as_str()))
                .map_or_else(|| part.state.clone(), |s| s.title.clone());
            RankingEntry {
                position,
                organisation: OrganisationRef {
                    id: ID(part.organisation_id.clone()),
                    name: part.name.clone(),
                },
                outcome,
                score: (caller.role.is_staff() || (mine && caller.role == Role::Ets))
                    .then(|| value.to_string().parse::<f64>().ok())
                    .flatten(),
                mine,
            }
        })
        .collect();
    Ranking { published, entries }
}
