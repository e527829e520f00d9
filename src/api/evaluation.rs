//! The commissione and the graduatoria over GraphQL: the avviso's criteria (public), the
//! commissione with each member's declaration, the scores per proposal (read by declared
//! members and the Ufficio di Piano; by an ETS only its own, after the approval), and the
//! commands: rettifica, nomina, dichiarazione, sostituzione, punteggi, seduta.

use std::str::FromStr;

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::json;

use super::access::{self, LoadedInstance};
use super::context::{caller, shared};
use super::error::ApiError;
use super::mutation::CommandResult;
use super::policy::{Caller, Subject, authorize, reads_proposals};
use super::subscription::publish;
use super::types::caller::OrganisationRef;
use super::types::event::InstanceEvent;
use super::types::instance::Instance;
use crate::definition::Criterion;
use crate::engine::evaluation::{
    self as ev, EvaluationData, MemberRole, MemberStatus, NewMember, ScoreInput,
};
use crate::identity::Role;

/// A member's role, as the API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub(crate) enum CommissionerRole {
    /// Presides; scores.
    Presidente,
    /// Scores.
    Componente,
    /// Takes the minutes; does not score.
    Segretario,
}

impl From<CommissionerRole> for MemberRole {
    fn from(r: CommissionerRole) -> Self {
        match r {
            CommissionerRole::Presidente => MemberRole::Presidente,
            CommissionerRole::Componente => MemberRole::Componente,
            CommissionerRole::Segretario => MemberRole::Segretario,
        }
    }
}

impl From<MemberRole> for CommissionerRole {
    fn from(r: MemberRole) -> Self {
        match r {
            MemberRole::Presidente => CommissionerRole::Presidente,
            MemberRole::Componente => CommissionerRole::Componente,
            MemberRole::Segretario => CommissionerRole::Segretario,
        }
    }
}

/// Where a member stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub(crate) enum CommissionerStatus {
    /// Named, no declaration yet: sees the applicants' names, no proposal.
    Pending,
    /// Declared no conflict and no conviction: evaluates.
    Active,
    /// Declared a conflict or a conviction: abstains.
    Abstained,
    /// Replaced.
    Replaced,
}

impl From<MemberStatus> for CommissionerStatus {
    fn from(s: MemberStatus) -> Self {
        match s {
            MemberStatus::Pending => CommissionerStatus::Pending,
            MemberStatus::Active => CommissionerStatus::Active,
            MemberStatus::Abstained => CommissionerStatus::Abstained,
            MemberStatus::Replaced => CommissionerStatus::Replaced,
        }
    }
}

/// One criterion of the avviso.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct EvaluationCriterion {
    /// Id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Maximum points (its weight).
    pub max: f64,
    /// Sub-criteria, scored instead of it.
    pub sub: Vec<EvaluationCriterion>,
}

fn number(d: Decimal) -> f64 {
    d.to_string().parse().unwrap_or(0.0)
}

impl From<&Criterion> for EvaluationCriterion {
    fn from(c: &Criterion) -> Self {
        EvaluationCriterion {
            id: c.id.clone(),
            title: c.title.clone(),
            max: number(c.max),
            sub: c.sub.iter().map(Into::into).collect(),
        }
    }
}

/// A criterion as a rettifica writes it.
#[derive(Debug, Clone, InputObject)]
pub(crate) struct CriterionInput {
    /// Id (lowercase letters, digits, `_`).
    pub id: String,
    /// Title.
    pub title: String,
    /// Maximum points.
    pub max: f64,
    /// Sub-criteria (their maxima add up to `max`).
    #[graphql(default)]
    pub sub: Vec<CriterionInput>,
}

fn decimal(field: &str, v: f64) -> Result<Decimal, ApiError> {
    if !v.is_finite() {
        return Err(ApiError::bad_field(
            field,
            format!("{field}: numero non valido"),
        ));
    }
    Decimal::from_str(&v.to_string())
        .map_err(|_| ApiError::bad_field(field, format!("{field}: numero non valido")))
}

fn criterion(input: CriterionInput, depth: usize) -> Result<Criterion, ApiError> {
    if depth > 3 {
        return Err(ApiError::bad_field(
            "criteria",
            "al massimo tre livelli di sottocriteri",
        ));
    }
    Ok(Criterion {
        id: input.id,
        title: input.title,
        max: decimal("max", input.max)?,
        sub: input
            .sub
            .into_iter()
            .map(|c| criterion(c, depth + 1))
            .collect::<Result<_, _>>()?,
    })
}

/// A rettifica of the criteria.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct EvaluationRectification {
    /// The act.
    pub act: String,
    /// Why.
    pub reason: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A member of the commissione.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct Commissioner {
    /// The person.
    pub person_id: ID,
    /// Name.
    pub name: String,
    /// Role.
    pub role: CommissionerRole,
    /// Where they stand.
    pub status: CommissionerStatus,
    /// When they filed their declaration.
    pub declared_at: Option<DateTime<Utc>>,
    /// Whom they replace.
    pub replaces: Option<ID>,
    /// Who replaced them.
    pub replaced_by: Option<ID>,
}

/// The commissione.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct Commission {
    /// The act that named it.
    pub act: String,
    /// When.
    pub appointed_at: DateTime<Utc>,
    /// Its members, replaced ones included.
    pub members: Vec<Commissioner>,
}

/// One score given.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct GivenScore {
    /// Who (a member's person id, or `commissione`); hidden from an ETS.
    pub by: Option<String>,
    /// Points.
    pub points: f64,
    /// Why.
    pub motivazione: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A criterion's points for one proposal.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct CriterionPoints {
    /// The criterion.
    pub criterion: String,
    /// Its points (for a leaf with several members: their mean, rounded).
    pub points: Option<f64>,
    /// The scores given on it (leaves only).
    pub scores: Vec<GivenScore>,
}

/// One proposal's evaluation.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct ProposalEvaluation {
    /// The application.
    pub submission_id: ID,
    /// The ETS.
    pub organisation: OrganisationRef,
    /// Points per criterion (every level).
    pub criteria: Vec<CriterionPoints>,
    /// The total.
    pub total: f64,
    /// Every criterion scored by all who must.
    pub complete: bool,
    /// Complete and at or above the threshold.
    pub eligible: bool,
    /// Its position in the approved graduatoria.
    pub rank: Option<i32>,
}

/// A session of the commissione.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct CommissionSession {
    /// 1 for the first.
    pub number: i32,
    /// The day it met.
    pub date: NaiveDate,
    /// Present (name and role).
    pub present: Vec<String>,
    /// What the verbale adds.
    pub note: String,
    /// How many scores it recorded.
    pub scores: i32,
}

/// The approval of the graduatoria.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct GraduatoriaApproval {
    /// The determina's number.
    pub number: String,
    /// Its date.
    pub date: NaiveDate,
}

/// The evaluation of an avviso.
pub(crate) struct Evaluation {
    pub loaded: LoadedInstance,
    pub caller: std::sync::Arc<Caller>,
}

impl Evaluation {
    fn data(&self) -> Option<&EvaluationData> {
        self.loaded.row.data.evaluation.as_ref()
    }

    fn approved(&self) -> bool {
        self.data().is_some_and(|e| e.approval.is_some())
    }
}

#[Object]
impl Evaluation {
    /// The criteria in force (the avviso's, or as rectified).
    async fn criteria(&self) -> Vec<EvaluationCriterion> {
        self.data()
            .map(|e| e.criteria.iter().map(Into::into).collect())
            .unwrap_or_default()
    }

    /// Their total.
    async fn total(&self) -> Option<f64> {
        self.data().map(|e| number(e.total))
    }

    /// The threshold to enter the graduatoria.
    async fn threshold(&self) -> Option<f64> {
        self.data().map(|e| number(e.threshold))
    }

    /// The tie rule: criterion ids (higher first), then `presentazione` (earlier first).
    async fn tie_rule(&self) -> Vec<String> {
        self.data().map(|e| e.tie.clone()).unwrap_or_default()
    }

    /// The act that approved the criteria.
    async fn act(&self) -> Option<String> {
        self.data().and_then(|e| e.act.clone())
    }

    /// Rettifiche published.
    async fn rectifications(&self) -> Vec<EvaluationRectification> {
        self.data()
            .map(|e| {
                e.rectifications
                    .iter()
                    .map(|r| EvaluationRectification {
                        act: r.act.clone(),
                        reason: r.reason.clone(),
                        at: r.at,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The commissione, once named (its composition is public).
    async fn commission(&self) -> Option<Commission> {
        let c = self.data()?.commission.as_ref()?;
        Some(Commission {
            act: c.act.clone(),
            appointed_at: c.appointed_at,
            members: c
                .members
                .iter()
                .map(|m| Commissioner {
                    person_id: ID(m.person_id.clone()),
                    name: m.name.clone(),
                    role: m.role.into(),
                    status: m.status().into(),
                    declared_at: m.declaration.as_ref().map(|d| d.at),
                    replaces: m.replaces.clone().map(ID),
                    replaced_by: m.replaced_by.clone().map(ID),
                })
                .collect(),
        })
    }

    /// The applicants, by name: what a member needs to know whether a conflict exists. For
    /// staff (members included, declared or not).
    async fn applicants(&self) -> Vec<OrganisationRef> {
        if !self.caller.role.is_staff() {
            return Vec::new();
        }
        self.loaded
            .row
            .data
            .participants
            .values()
            .filter(|p| !p.withdrawn)
            .map(|p| OrganisationRef {
                id: ID(p.organisation_id.clone()),
                name: p.name.clone(),
            })
            .collect()
    }

    /// The scores per proposal: for staff, and for members of the commissione who declared
    /// no conflict; for an ETS, its own once the graduatoria is approved.
    async fn proposals(&self) -> Vec<ProposalEvaluation> {
        let Some(data) = self.data() else {
            return Vec::new();
        };
        let staff = reads_proposals(&self.caller, self.loaded.facts());
        let own_only = !staff && self.caller.role == Role::Ets && self.approved();
        if !staff && !own_only {
            return Vec::new();
        }
        let numbers = &self.loaded.procedure.numbers;
        let ranks: std::collections::HashMap<&str, Option<u32>> = data
            .approval
            .iter()
            .flat_map(|a| a.ranking.iter())
            .map(|e| (e.participant.as_str(), e.rank))
            .collect();
        let mut out = Vec::new();
        for (id, part) in &self.loaded.row.data.participants {
            if part.withdrawn || !data.scores.contains_key(id) {
                continue;
            }
            if own_only && part.organisation_id != self.caller.organisation_id {
                continue;
            }
            let result = ev::result_of(data, id, numbers);
            let per_leaf = data.scores.get(id);
            let mut criteria = Vec::new();
            fn walk(
                list: &[Criterion],
                result: &ev::RankEntry,
                per_leaf: Option<
                    &std::collections::BTreeMap<
                        String,
                        std::collections::BTreeMap<String, ev::Score>,
                    >,
                >,
                staff: bool,
                out: &mut Vec<CriterionPoints>,
            ) {
                for c in list {
                    let scores = per_leaf
                        .and_then(|m| m.get(&c.id))
                        .map(|m| {
                            m.iter()
                                .map(|(by, s)| GivenScore {
                                    by: staff.then(|| by.clone()),
                                    points: number(s.points),
                                    motivazione: s.motivazione.clone(),
                                    at: s.at,
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    out.push(CriterionPoints {
                        criterion: c.id.clone(),
                        points: result.points.get(&c.id).map(|d| number(*d)),
                        scores,
                    });
                    walk(&c.sub, result, per_leaf, staff, out);
                }
            }
            walk(&data.criteria, &result, per_leaf, staff, &mut criteria);
            out.push(ProposalEvaluation {
                submission_id: ID(id.clone()),
                organisation: OrganisationRef {
                    id: ID(part.organisation_id.clone()),
                    name: part.name.clone(),
                },
                criteria,
                total: number(result.total),
                complete: result.complete,
                eligible: result.eligible,
                rank: ranks
                    .get(id.as_str())
                    .copied()
                    .flatten()
                    .and_then(|r| i32::try_from(r).ok()),
            });
        }
        out
    }

    /// The sessions of the commissione (for who reads the proposals).
    async fn sessions(&self) -> Vec<CommissionSession> {
        if !reads_proposals(&self.caller, self.loaded.facts()) {
            return Vec::new();
        }
        self.data()
            .map(|e| {
                e.sessions
                    .iter()
                    .map(|s| CommissionSession {
                        number: i32::try_from(s.number).unwrap_or(i32::MAX),
                        date: s.date,
                        present: s.present.clone(),
                        note: s.note.clone(),
                        scores: i32::try_from(s.decided.len()).unwrap_or(i32::MAX),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The approval of the graduatoria: from then scores are frozen.
    async fn approval(&self) -> Option<GraduatoriaApproval> {
        self.data()?.approval.as_ref().map(|a| GraduatoriaApproval {
            number: a.number.clone(),
            date: a.date,
        })
    }
}

/// A member to name.
#[derive(Debug, Clone, InputObject)]
pub(crate) struct CommissionerInput {
    /// The person (with the role `commissione`).
    pub person_id: ID,
    /// Their role in the commissione.
    pub role: CommissionerRole,
}

/// One score.
#[derive(Debug, Clone, InputObject)]
pub(crate) struct ScoreEntry {
    /// The criterion (a leaf: a criterion without sub-criteria, or a sub-criterion).
    pub criterion: String,
    /// Points, from 0 to the criterion's maximum.
    pub points: f64,
    /// Why (required).
    pub motivazione: String,
}

/// The evaluation's mutations.
#[derive(Default)]
pub(crate) struct EvaluationMutation;

async fn member(shared: &super::Shared, input: &CommissionerInput) -> Result<NewMember, ApiError> {
    let person = shared
        .service
        .store()
        .person(input.person_id.as_str())
        .await?
        .ok_or_else(|| {
            ApiError::bad_field(
                "personId",
                format!("persona sconosciuta '{}'", input.person_id.as_str()),
            )
        })?;
    if !person.roles.iter().any(|r| r == Role::Commissione.as_str()) {
        return Err(ApiError::bad_field(
            "personId",
            format!("{} non ha il ruolo commissione", person.name),
        ));
    }
    Ok(NewMember {
        person_id: person.id,
        name: person.name,
        role: input.role.into(),
    })
}

/// Staff who run the procedure (Ufficio di Piano, RUP) on an instance they see.
async fn staff_instance(
    ctx: &Context<'_>,
    instance_id: &ID,
) -> Result<(std::sync::Arc<Caller>, LoadedInstance), ApiError> {
    let caller = caller(ctx).await?;
    let loaded = access::instance(shared(ctx)?, &caller, instance_id.as_str()).await?;
    if !matches!(caller.role, Role::UfficioDiPiano | Role::Rup) {
        return Err(ApiError::Forbidden(
            "solo l'Ufficio di Piano e il RUP gestiscono criteri e commissione".into(),
        ));
    }
    Ok((caller, loaded))
}

/// Commits an evaluation step, publishes it, and returns the result.
pub(crate) async fn commit(
    ctx: &Context<'_>,
    caller: &std::sync::Arc<Caller>,
    before: &LoadedInstance,
    payload: serde_json::Value,
    event: &str,
    participant: Option<String>,
    compute: impl Fn(
        &crate::definition::Procedure,
        &crate::store::InstanceRow,
        DateTime<Utc>,
    ) -> Result<crate::engine::Step, crate::engine::Error>,
) -> Result<CommandResult, ApiError> {
    let shared = shared(ctx)?;
    let outcome = shared
        .service
        .record_step(&before.row.id, &caller.actor(), &payload, None, compute)
        .await?;
    let state = participant
        .as_ref()
        .and_then(|id| outcome.instance.data.participants.get(id))
        .map(|p| p.state.clone());
    publish(
        shared,
        InstanceEvent {
            instance_id: ID(outcome.instance.id.clone()),
            definition_id: outcome.instance.definition_id.clone(),
            seq: outcome.committed.seq,
            event: event.to_string(),
            from_state: Some(before.row.state.clone()),
            to_state: outcome.instance.state.clone(),
            at: outcome.instance.updated_at,
            actor_role: caller.role.as_str().to_string(),
            participant_id: participant.map(ID),
            participant_from: state.clone(),
            participant_to: state,
        },
    );
    let loaded = access::with_facts(shared, outcome.instance, before.submitted).await?;
    Ok(CommandResult {
        instance: Instance {
            loaded,
            caller: caller.clone(),
        },
        seq: outcome.committed.seq,
        replayed: outcome.committed.replayed,
    })
}

#[Object]
impl EvaluationMutation {
    /// Publishes a rettifica of the avviso's criteria (Ufficio di Piano, RUP): only while the
    /// avviso is open and before the deadline, never once proposals are known. Everyone who
    /// reads the avviso is told.
    async fn rectify_criteria(
        &self,
        ctx: &Context<'_>,
        instance_id: ID,
        criteria: Vec<CriterionInput>,
        threshold: f64,
        act: String,
        reason: String,
    ) -> Result<CommandResult, ApiError> {
        let (caller, loaded) = staff_instance(ctx, &instance_id).await?;
        let criteria: Vec<Criterion> = criteria
            .into_iter()
            .map(|c| criterion(c, 1))
            .collect::<Result<_, _>>()?;
        let threshold = decimal("threshold", threshold)?;
        let payload = json!({ "atto": act, "motivo": reason, "soglia": threshold.to_string() });
        commit(
            ctx,
            &caller,
            &loaded,
            payload,
            ev::EVENT_RECTIFY,
            None,
            |p, row, now| {
                ev::rectify(
                    p,
                    &row.snapshot(),
                    criteria.clone(),
                    threshold,
                    &act,
                    &reason,
                    now,
                )
            },
        )
        .await
    }

    /// Names the commissione (Ufficio di Piano, RUP), after the submission deadline: one
    /// presidente, members with the role `commissione`, optionally a secretary.
    async fn appoint_commission(
        &self,
        ctx: &Context<'_>,
        instance_id: ID,
        members: Vec<CommissionerInput>,
        act: String,
    ) -> Result<CommandResult, ApiError> {
        let (caller, loaded) = staff_instance(ctx, &instance_id).await?;
        let shared = shared(ctx)?;
        let mut named = Vec::with_capacity(members.len());
        for m in members.iter().take(16) {
            named.push(member(shared, m).await?);
        }
        let payload = json!({
            "atto": act,
            "componenti": named.iter().map(|m| json!({ "persona": m.person_id, "ruolo": m.role })).collect::<Vec<_>>(),
        });
        commit(
            ctx,
            &caller,
            &loaded,
            payload,
            ev::EVENT_APPOINT,
            None,
            |p, row, now| ev::appoint(p, &row.snapshot(), &named, &act, now),
        )
        .await
    }

    /// A member of the commissione files their declaration: no conflict of interest with the
    /// applicants (art. 6-bis L. 241/1990) and no conviction for crimes against the public
    /// administration (art. 35-bis D.Lgs. 165/2001). Declaring either, they abstain.
    async fn file_declaration(
        &self,
        ctx: &Context<'_>,
        instance_id: ID,
        conflict: bool,
        conviction: bool,
        note: Option<String>,
    ) -> Result<CommandResult, ApiError> {
        let caller = caller(ctx).await?;
        let loaded = access::instance(shared(ctx)?, &caller, instance_id.as_str()).await?;
        if caller.role != Role::Commissione {
            return Err(ApiError::Forbidden(
                "la dichiarazione la presenta il componente, con il ruolo commissione".into(),
            ));
        }
        let payload = json!({ "conflitto": conflict, "condanna": conviction, "nota": note });
        let person = caller.person_id.clone();
        commit(
            ctx,
            &caller,
            &loaded,
            payload,
            ev::EVENT_DECLARE,
            None,
            |p, row, now| {
                ev::declare(
                    p,
                    &row.snapshot(),
                    &person,
                    conflict,
                    conviction,
                    note.as_deref(),
                    now,
                )
            },
        )
        .await
    }

    /// Replaces a member (who abstained, or resigned) with another person in the same role
    /// (Ufficio di Piano, RUP), with the act.
    async fn replace_commissioner(
        &self,
        ctx: &Context<'_>,
        instance_id: ID,
        person_id: ID,
        replacement: ID,
        act: String,
    ) -> Result<CommandResult, ApiError> {
        let (caller, loaded) = staff_instance(ctx, &instance_id).await?;
        let incoming = member(
            shared(ctx)?,
            &CommissionerInput {
                person_id: replacement,
                // The role is the replaced member's; the engine keeps it.
                role: CommissionerRole::Componente,
            },
        )
        .await?;
        let out = person_id.to_string();
        let payload = json!({ "sostituito": out, "sostituto": incoming.person_id, "atto": act });
        commit(
            ctx,
            &caller,
            &loaded,
            payload,
            ev::EVENT_REPLACE,
            None,
            |p, row, now| ev::replace(p, &row.snapshot(), &out, &incoming, &act, now),
        )
        .await
    }

    /// Scores a proposal (a member of the commissione who filed a clean declaration): one
    /// entry per criterion, each with its motivazione. Per-member scoring records the
    /// caller's own; collegial scoring records the commissione's.
    async fn score_proposal(
        &self,
        ctx: &Context<'_>,
        submission_id: ID,
        scores: Vec<ScoreEntry>,
    ) -> Result<CommandResult, ApiError> {
        let shared = shared(ctx)?;
        let caller = caller(ctx).await?;
        if caller.role != Role::Commissione {
            return Err(ApiError::Forbidden(
                "i punteggi li attribuisce la commissione".into(),
            ));
        }
        if scores.len() > 100 {
            return Err(ApiError::bad_field("scores", "al massimo 100 punteggi"));
        }
        let row = access::submission(shared, &caller, submission_id.as_str()).await?;
        let loaded = access::instance(shared, &caller, &row.instance_id).await?;
        let part = loaded.row.data.participants.get(&row.id).ok_or_else(|| {
            ApiError::bad_input("questa domanda non ha un ciclo di vita proprio nella procedura")
        })?;
        authorize(&caller, &Subject::Participant(loaded.facts(), part))?;
        let inputs: Vec<ScoreInput> = scores
            .iter()
            .map(|s| {
                Ok(ScoreInput {
                    criterion: s.criterion.clone(),
                    points: decimal("points", s.points)?,
                    motivazione: s.motivazione.clone(),
                })
            })
            .collect::<Result<_, ApiError>>()?;
        let payload = json!({
            "punteggi": inputs.iter().map(|s| json!({
                "criterio": s.criterion, "punti": s.points.to_string(), "motivazione": s.motivazione,
            })).collect::<Vec<_>>(),
        });
        let person = caller.person_id.clone();
        let id = row.id.clone();
        commit(
            ctx,
            &caller,
            &loaded,
            payload,
            ev::EVENT_SCORE,
            Some(row.id.clone()),
            |p, r, now| ev::score(p, &r.snapshot(), &id, &person, &inputs, now),
        )
        .await
    }

    /// Closes a session of the commissione: its verbale (who was present, every score given
    /// since the previous session) is registered in the protocollo. A declared member or the
    /// RUP.
    async fn close_commission_session(
        &self,
        ctx: &Context<'_>,
        instance_id: ID,
        date: NaiveDate,
        note: String,
    ) -> Result<CommandResult, ApiError> {
        let caller = caller(ctx).await?;
        let loaded = access::instance(shared(ctx)?, &caller, instance_id.as_str()).await?;
        let allowed = match caller.role {
            Role::Rup | Role::UfficioDiPiano => true,
            Role::Commissione => reads_proposals(&caller, loaded.facts()),
            _ => false,
        };
        if !allowed {
            return Err(ApiError::Forbidden(
                "il verbale della seduta lo chiude un componente della commissione o il RUP".into(),
            ));
        }
        let payload = json!({ "data": date.to_string(), "nota": note });
        commit(
            ctx,
            &caller,
            &loaded,
            payload,
            ev::EVENT_SESSION,
            None,
            |p, row, now| ev::session(p, &row.snapshot(), date, &note, now),
        )
        .await
    }
}
