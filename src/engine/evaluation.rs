//! The commissione and the graduatoria. PURE: the avviso's criteria fixed at publication,
//! the commissione named after the deadline with each member's declaration, the scores per
//! proposal and criterion, and the ranking computed from them — never typed in. Each command
//! is a step of the instance (an append-only history row); the approval of the graduatoria
//! freezes everything.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::step::{Context, ParticipantMove, Snapshot, Step, stay, submissions_open};
use super::value::{number_json, round};
use super::{Effect, Error, InstanceData, NotificationPlan, ParticipantData};
use crate::definition::{
    Criterion, EvaluationDef, NumberSettings, Procedure, Scoring, TIE_SUBMITTED,
};

/// The history event of a rettifica of the criteria.
pub const EVENT_RECTIFY: &str = "rettifica_criteri";
/// The history event of the appointment of the commissione.
pub const EVENT_APPOINT: &str = "nomina_commissione";
/// The history event of a member's declaration.
pub const EVENT_DECLARE: &str = "dichiarazione_commissario";
/// The history event of a member's replacement.
pub const EVENT_REPLACE: &str = "sostituzione_commissario";
/// The history event of scores given to a proposal.
pub const EVENT_SCORE: &str = "punteggio";
/// The history event of a session of the commissione (its verbale).
pub const EVENT_SESSION: &str = "seduta_commissione";
/// Steps only staff read: the scores are the commissione's until the graduatoria.
pub const STAFF_ONLY_EVENTS: &[&str] = &[EVENT_SCORE, EVENT_SESSION];
/// Who a collegial score is recorded for.
pub const COLLEGIAL: &str = "commissione";
/// The template of a rettifica's public notice.
pub const RECTIFY_TEMPLATE: &str = "rettifica_criteri";
/// The template of a session's verbale.
pub const VERBALE_TEMPLATE: &str = "verbale_commissione";
/// The longest motivazione of one score.
pub const MAX_MOTIVATION: usize = 2000;

/// The evaluation of one instance: what is fixed, who evaluates, what they gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationData {
    /// The criteria in force (fixed at publication, changed only by rettifica).
    pub criteria: Vec<Criterion>,
    /// Their total.
    pub total: Decimal,
    /// The threshold to enter the graduatoria.
    pub threshold: Decimal,
    /// The tie rule.
    pub tie: Vec<String>,
    /// Collegial or per member.
    pub scoring: Scoring,
    /// The act that approved the criteria.
    #[serde(default)]
    pub act: Option<String>,
    /// When they were fixed.
    pub fixed_at: DateTime<Utc>,
    /// Rettifiche published, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rectifications: Vec<Rectification>,
    /// The commissione, once named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commission: Option<Commission>,
    /// Scores: participant → leaf criterion → scorer (a member, or `commissione`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scores: BTreeMap<String, BTreeMap<String, BTreeMap<String, Score>>>,
    /// The sessions with their verbale, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<Session>,
    /// The approval of the graduatoria: from then nothing changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
}

/// A rettifica of the criteria, with what it replaced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rectification {
    /// The act that published it.
    pub act: String,
    /// Why.
    pub reason: String,
    /// When.
    pub at: DateTime<Utc>,
    /// The criteria before.
    pub previous: Vec<Criterion>,
    /// The threshold before.
    pub previous_threshold: Decimal,
}

/// The commissione.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Commission {
    /// The act that named it.
    pub act: String,
    /// When.
    pub appointed_at: DateTime<Utc>,
    /// Its members, in order of appointment (replaced ones stay, marked).
    pub members: Vec<Commissioner>,
}

impl Commission {
    /// A member by person id.
    pub fn member(&self, person: &str) -> Option<&Commissioner> {
        self.members.iter().find(|m| m.person_id == person)
    }

    /// Members who score now: declared with no impediment, not replaced, not the secretary.
    pub fn scorers(&self) -> impl Iterator<Item = &Commissioner> {
        self.members
            .iter()
            .filter(|m| m.status() == MemberStatus::Active && m.role != MemberRole::Segretario)
    }
}

/// A member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    /// Presides; scores.
    Presidente,
    /// Scores.
    Componente,
    /// Takes the minutes; does not score.
    Segretario,
}

impl MemberRole {
    /// Italian.
    pub fn title(self) -> &'static str {
        match self {
            MemberRole::Presidente => "Presidente",
            MemberRole::Componente => "Componente",
            MemberRole::Segretario => "Segretario verbalizzante",
        }
    }
}

/// Where a member stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    /// Named; no declaration yet: sees the applicants' names, no proposal.
    Pending,
    /// Declared no conflict and no conviction: evaluates.
    Active,
    /// Declared a conflict of interest or a conviction: abstains.
    Abstained,
    /// Replaced by another member.
    Replaced,
}

impl MemberStatus {
    /// Italian.
    pub fn title(self) -> &'static str {
        match self {
            MemberStatus::Pending => "in attesa della dichiarazione",
            MemberStatus::Active => "in carica",
            MemberStatus::Abstained => "astenuto",
            MemberStatus::Replaced => "sostituito",
        }
    }
}

/// A member of the commissione.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Commissioner {
    /// The person.
    pub person_id: String,
    /// Their name, as the verbale prints it.
    pub name: String,
    /// Their role.
    pub role: MemberRole,
    /// When named.
    pub appointed_at: DateTime<Utc>,
    /// Their declaration (art. 6-bis L. 241/1990, art. 35-bis D.Lgs. 165/2001).
    #[serde(default)]
    pub declaration: Option<Declaration>,
    /// Who replaced them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
    /// Whom they replace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    /// The act of the replacement (on the member who came in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement_act: Option<String>,
}

impl Commissioner {
    /// Where they stand.
    pub fn status(&self) -> MemberStatus {
        if self.replaced_by.is_some() {
            return MemberStatus::Replaced;
        }
        match &self.declaration {
            None => MemberStatus::Pending,
            Some(d) if d.conflict || d.conviction => MemberStatus::Abstained,
            Some(_) => MemberStatus::Active,
        }
    }
}

/// A member's declaration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Declaration {
    /// When filed.
    pub at: DateTime<Utc>,
    /// A conflict of interest with an applicant (art. 6-bis L. 241/1990).
    pub conflict: bool,
    /// A conviction for crimes against the PA (art. 35-bis c.1 lett. a D.Lgs. 165/2001).
    pub conviction: bool,
    /// What they added.
    #[serde(default)]
    pub note: Option<String>,
}

/// One score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Score {
    /// Points.
    pub points: Decimal,
    /// Why.
    pub motivazione: String,
    /// Who recorded it (person id).
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A session of the commissione and its verbale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// 1 for the first.
    pub number: u32,
    /// The day it met.
    pub date: NaiveDate,
    /// The members present, by name with role.
    pub present: Vec<String>,
    /// What the verbale adds.
    pub note: String,
    /// When it was closed.
    pub at: DateTime<Utc>,
    /// The scores given since the previous session, as the verbale lists them.
    pub decided: Vec<ScoreLine>,
}

/// One score as a verbale lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreLine {
    /// The applicant's name.
    pub ente: String,
    /// The criterion's title.
    pub criterio: String,
    /// Points (as written).
    pub punti: String,
    /// Why.
    pub motivazione: String,
    /// Who gave it (a member's name, or the commissione).
    pub da: String,
}

/// The approval of the graduatoria.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    /// The determina's number.
    pub number: String,
    /// Its date.
    pub date: NaiveDate,
    /// When recorded.
    pub at: DateTime<Utc>,
    /// The graduatoria as approved.
    pub ranking: Vec<RankEntry>,
}

/// One proposal's computed result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankEntry {
    /// The participant.
    pub participant: String,
    /// Points per criterion (every level), when scored.
    pub points: BTreeMap<String, Decimal>,
    /// The total.
    pub total: Decimal,
    /// Every criterion scored by all who must.
    pub complete: bool,
    /// Complete and at or above the threshold.
    pub eligible: bool,
    /// Position among the eligible (ties share it); `None` below the threshold.
    pub rank: Option<u32>,
}

/// A member to name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMember {
    /// The person.
    pub person_id: String,
    /// Their name.
    pub name: String,
    /// Their role.
    pub role: MemberRole,
}

/// One score given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreInput {
    /// The leaf criterion.
    pub criterion: String,
    /// Points.
    pub points: Decimal,
    /// Why.
    pub motivazione: String,
}

fn refused(reason: impl Into<String>) -> Error {
    Error::EvaluationRefused {
        reason: reason.into(),
    }
}

fn def(p: &Procedure) -> Result<&EvaluationDef, Error> {
    p.evaluation.as_ref().ok_or(Error::NoEvaluation)
}

/// The evaluation of an instance, with its definition, or why there is none.
fn fixed<'p, 'd>(
    p: &'p Procedure,
    data: &'d InstanceData,
) -> Result<(&'p EvaluationDef, &'d EvaluationData), Error> {
    let d = def(p)?;
    let ev = data.evaluation.as_ref().ok_or_else(|| {
        refused("i criteri non sono ancora fissati: lo sono alla pubblicazione dell'avviso")
    })?;
    if let Some(a) = &ev.approval {
        return Err(Error::ScoresFrozen {
            number: a.number.clone(),
            date: a.date.format("%d/%m/%Y").to_string(),
        });
    }
    Ok((d, ev))
}

/// The criteria fixed when the avviso is published: the definition's, with the act that
/// approved them.
pub fn fix(d: &EvaluationDef, act: Option<String>, now: DateTime<Utc>) -> EvaluationData {
    EvaluationData {
        criteria: d.criteria.clone(),
        total: d.total,
        threshold: d.threshold,
        tie: d.tie.clone(),
        scoring: d.scoring,
        act,
        fixed_at: now,
        rectifications: Vec::new(),
        commission: None,
        scores: BTreeMap::new(),
        sessions: Vec::new(),
        approval: None,
    }
}

fn in_states(list: &[crate::definition::StateId], state: &str) -> bool {
    list.iter().any(|s| s.as_str() == state)
}

/// A rettifica of the criteria: published, before the deadline, never once proposals are
/// known. Everyone who reads the avviso is told.
#[allow(clippy::too_many_arguments)]
pub fn rectify(
    p: &Procedure,
    instance: &Snapshot<'_>,
    criteria: Vec<Criterion>,
    threshold: Decimal,
    act: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Step, Error> {
    let (d, ev) = fixed(p, instance.data)?;
    if !in_states(&d.rectify_while, instance.state) || submissions_open(p, instance, now).is_err() {
        return Err(refused(
            "i criteri si rettificano solo con l'avviso aperto, prima della scadenza delle domande: le proposte sono ormai note",
        ));
    }
    if act.trim().is_empty() || reason.trim().is_empty() {
        return Err(refused(
            "la rettifica richiede l'atto che la approva e il motivo",
        ));
    }
    let total: Decimal = criteria.iter().map(|c| c.max).sum();
    let problems = Criterion::check(&criteria, total);
    if !problems.is_empty() {
        return Err(refused(problems.join("; ")));
    }
    if threshold < Decimal::ZERO || threshold > total {
        return Err(refused(format!(
            "la soglia {threshold} deve stare tra 0 e il totale {total}"
        )));
    }
    for t in &ev.tie {
        if t != TIE_SUBMITTED
            && !Criterion::leaves(&criteria).iter().any(|c| &c.id == t)
            && !criteria.iter().any(|c| &c.id == t)
        {
            return Err(refused(format!(
                "la regola di parità usa il criterio '{t}', che la rettifica toglie"
            )));
        }
    }
    let mut data = instance.data.clone();
    let mut next = ev.clone();
    next.rectifications.push(Rectification {
        act: act.trim().to_string(),
        reason: reason.trim().to_string(),
        at: now,
        previous: ev.criteria.clone(),
        previous_threshold: ev.threshold,
    });
    next.criteria = criteria;
    next.total = total;
    next.threshold = threshold;
    data.evaluation = Some(next);
    let ctx = Context {
        p,
        instance_id: instance.id,
        now,
    };
    let mut context = ctx.template_context(instance.state, &data, None);
    if let Value::Object(map) = &mut context {
        map.insert(
            "rettifica".into(),
            json!({ "atto": act.trim(), "motivo": reason.trim() }),
        );
    }
    let role = p
        .participant
        .as_ref()
        .map_or_else(|| "ets".to_string(), |d| d.role.to_string());
    let effects = vec![Effect::Notify(NotificationPlan {
        role,
        template: RECTIFY_TEMPLATE.into(),
        urgent: true,
        context,
        invite: None,
        protocol: None,
        organisations: None,
        public: true,
        participant: None,
        channel: Default::default(),
        consegna: None,
    })];
    Ok(stay(p, instance, data, effects, EVENT_RECTIFY, None, now))
}

/// Names the commissione: after the submission deadline, never before it.
pub fn appoint(
    p: &Procedure,
    instance: &Snapshot<'_>,
    members: &[NewMember],
    act: &str,
    now: DateTime<Utc>,
) -> Result<Step, Error> {
    let (d, ev) = fixed(p, instance.data)?;
    if ev.commission.is_some() {
        return Err(refused(
            "la commissione è già nominata: un componente si sostituisce, non si rinomina",
        ));
    }
    if submissions_open(p, instance, now).is_ok() {
        return Err(refused(
            "la commissione si nomina dopo la scadenza del termine per le domande",
        ));
    }
    if !in_states(&d.commission_while, instance.state) {
        return Err(Error::WrongState {
            event: EVENT_APPOINT.into(),
            state: instance.state.to_string(),
            allowed: d.commission_while.iter().map(ToString::to_string).collect(),
        });
    }
    if act.trim().is_empty() {
        return Err(refused("la nomina richiede l'atto (determina n. … del …)"));
    }
    check_members(members)?;
    let presidents = members
        .iter()
        .filter(|m| m.role == MemberRole::Presidente)
        .count();
    if presidents != 1 {
        return Err(refused(format!(
            "la commissione ha un presidente, uno solo (indicati: {presidents})"
        )));
    }
    let mut data = instance.data.clone();
    let mut next = ev.clone();
    next.commission = Some(Commission {
        act: act.trim().to_string(),
        appointed_at: now,
        members: members
            .iter()
            .map(|m| Commissioner {
                person_id: m.person_id.clone(),
                name: m.name.trim().to_string(),
                role: m.role,
                appointed_at: now,
                declaration: None,
                replaced_by: None,
                replaces: None,
                replacement_act: None,
            })
            .collect(),
    });
    data.evaluation = Some(next);
    Ok(stay(
        p,
        instance,
        data,
        Vec::new(),
        EVENT_APPOINT,
        None,
        now,
    ))
}

fn check_members(members: &[NewMember]) -> Result<(), Error> {
    if members.is_empty() || members.len() > 15 {
        return Err(refused("la commissione ha da 1 a 15 componenti"));
    }
    for (i, m) in members.iter().enumerate() {
        if m.name.trim().is_empty() || m.name.chars().count() > 200 {
            return Err(refused(format!(
                "il componente '{}' non ha un nome valido",
                m.person_id
            )));
        }
        if members[..i].iter().any(|o| o.person_id == m.person_id) {
            return Err(refused(format!("'{}' è indicato due volte", m.name)));
        }
    }
    if !members.iter().any(|m| m.role != MemberRole::Segretario) {
        return Err(refused("serve almeno un componente che valuti"));
    }
    Ok(())
}

/// A member files their declaration. One who declares a conflict or a conviction abstains:
/// their scores no longer count (the history keeps them). A clean declaration cannot be
/// filed twice; a conflict may be declared later.
pub fn declare(
    p: &Procedure,
    instance: &Snapshot<'_>,
    person: &str,
    conflict: bool,
    conviction: bool,
    note: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Step, Error> {
    let (_, ev) = fixed(p, instance.data)?;
    let mut next = ev.clone();
    let commission = next
        .commission
        .as_mut()
        .ok_or_else(|| refused("la commissione non è ancora nominata"))?;
    let member = commission
        .members
        .iter_mut()
        .find(|m| m.person_id == person)
        .ok_or_else(|| Error::NotCommissioner {
            person: person.to_string(),
        })?;
    match member.status() {
        MemberStatus::Replaced | MemberStatus::Abstained => {
            return Err(refused(format!(
                "{} è {}: non presenta più dichiarazioni",
                member.name,
                member.status().title()
            )));
        }
        MemberStatus::Active if !(conflict || conviction) => {
            return Err(refused("la dichiarazione è già stata presentata"));
        }
        _ => {}
    }
    if note.is_some_and(|n| n.chars().count() > MAX_MOTIVATION) {
        return Err(refused(format!(
            "la nota supera {MAX_MOTIVATION} caratteri"
        )));
    }
    member.declaration = Some(Declaration {
        at: now,
        conflict,
        conviction,
        note: note
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(String::from),
    });
    let mut data = instance.data.clone();
    data.evaluation = Some(next);
    refresh_results(p, &mut data);
    Ok(stay(
        p,
        instance,
        data,
        Vec::new(),
        EVENT_DECLARE,
        None,
        now,
    ))
}

/// Replaces a member (who abstained, or resigned) with another, in the same role.
pub fn replace(
    p: &Procedure,
    instance: &Snapshot<'_>,
    out: &str,
    incoming: &NewMember,
    act: &str,
    now: DateTime<Utc>,
) -> Result<Step, Error> {
    let (_, ev) = fixed(p, instance.data)?;
    if act.trim().is_empty() {
        return Err(refused(
            "la sostituzione richiede l'atto (determina n. … del …)",
        ));
    }
    let mut next = ev.clone();
    let commission = next
        .commission
        .as_mut()
        .ok_or_else(|| refused("la commissione non è ancora nominata"))?;
    if commission.member(&incoming.person_id).is_some() {
        return Err(refused(format!(
            "{} fa già parte della commissione",
            incoming.name
        )));
    }
    check_members(std::slice::from_ref(incoming)).or_else(|e| {
        // A secretary may replace a secretary: only the name is checked here.
        if incoming.role == MemberRole::Segretario {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    let leaving = commission
        .members
        .iter_mut()
        .find(|m| m.person_id == out)
        .ok_or_else(|| Error::NotCommissioner {
            person: out.to_string(),
        })?;
    if leaving.replaced_by.is_some() {
        return Err(refused(format!("{} è già stato sostituito", leaving.name)));
    }
    leaving.replaced_by = Some(incoming.person_id.clone());
    let role = leaving.role;
    commission.members.push(Commissioner {
        person_id: incoming.person_id.clone(),
        name: incoming.name.trim().to_string(),
        role,
        appointed_at: now,
        declaration: None,
        replaced_by: None,
        replaces: Some(out.to_string()),
        replacement_act: Some(act.trim().to_string()),
    });
    let mut data = instance.data.clone();
    data.evaluation = Some(next);
    refresh_results(p, &mut data);
    Ok(stay(
        p,
        instance,
        data,
        Vec::new(),
        EVENT_REPLACE,
        None,
        now,
    ))
}

/// Scores given to one proposal by a member (per member) or for the commissione
/// (collegial). A later score on the same criterion by the same scorer replaces it in the
/// data; the history keeps both.
pub fn score(
    p: &Procedure,
    instance: &Snapshot<'_>,
    participant: &str,
    person: &str,
    inputs: &[ScoreInput],
    now: DateTime<Utc>,
) -> Result<Step, Error> {
    let (d, ev) = fixed(p, instance.data)?;
    if !in_states(&d.score_while, instance.state) {
        return Err(Error::WrongState {
            event: EVENT_SCORE.into(),
            state: instance.state.to_string(),
            allowed: d.score_while.iter().map(ToString::to_string).collect(),
        });
    }
    let part = instance
        .data
        .participants
        .get(participant)
        .filter(|p| !p.withdrawn)
        .ok_or_else(|| Error::UnknownParticipant {
            id: participant.to_string(),
        })?;
    if !in_states(&d.score_states, &part.state) {
        return Err(refused(format!(
            "la proposta di {} non è in valutazione (stato: {})",
            part.name, part.state
        )));
    }
    let commission = ev
        .commission
        .as_ref()
        .ok_or_else(|| refused("la commissione non è ancora nominata"))?;
    let member = commission
        .member(person)
        .ok_or_else(|| Error::NotCommissioner {
            person: person.to_string(),
        })?;
    match member.status() {
        MemberStatus::Active if member.role != MemberRole::Segretario => {}
        MemberStatus::Active => return Err(refused("il segretario verbalizza, non valuta")),
        MemberStatus::Pending => {
            return Err(refused(
                "prima di valutare il componente presenta la dichiarazione sull'assenza di conflitti di interesse",
            ));
        }
        other => return Err(refused(format!("{} è {}", member.name, other.title()))),
    }
    if inputs.is_empty() {
        return Err(refused("nessun punteggio"));
    }
    let leaves = Criterion::leaves(&ev.criteria);
    let numbers = &p.numbers;
    let scorer = match ev.scoring {
        Scoring::Collegial => COLLEGIAL.to_string(),
        Scoring::PerMember => person.to_string(),
    };
    let mut next = ev.clone();
    for input in inputs {
        let Some(leaf) = leaves.iter().find(|c| c.id == input.criterion) else {
            let names: Vec<&str> = leaves.iter().map(|c| c.id.as_str()).collect();
            return Err(refused(format!(
                "criterio '{}' sconosciuto: si valutano {}",
                input.criterion,
                names.join(", ")
            )));
        };
        if input.points < Decimal::ZERO || input.points > leaf.max {
            return Err(refused(format!(
                "{}: {} punti, ma il criterio va da 0 a {}",
                leaf.title, input.points, leaf.max
            )));
        }
        if input.points.normalize().scale() > numbers.decimals {
            return Err(refused(format!(
                "{}: al massimo {} decimali",
                leaf.title, numbers.decimals
            )));
        }
        let why = input.motivazione.trim();
        if why.is_empty() {
            return Err(refused(format!("{}: il punteggio va motivato", leaf.title)));
        }
        if why.chars().count() > MAX_MOTIVATION {
            return Err(refused(format!(
                "{}: la motivazione supera {MAX_MOTIVATION} caratteri",
                leaf.title
            )));
        }
        next.scores
            .entry(participant.to_string())
            .or_default()
            .entry(leaf.id.clone())
            .or_default()
            .insert(
                scorer.clone(),
                Score {
                    points: input.points.normalize(),
                    motivazione: why.to_string(),
                    by: person.to_string(),
                    at: now,
                },
            );
    }
    let mut data = instance.data.clone();
    data.evaluation = Some(next);
    refresh_results(p, &mut data);
    let moved = ParticipantMove {
        id: participant.to_string(),
        from: Some(part.state.clone()),
        to: part.state.clone(),
    };
    Ok(stay(
        p,
        instance,
        data,
        Vec::new(),
        EVENT_SCORE,
        Some(moved),
        now,
    ))
}

/// Closes a session of the commissione: its verbale lists who was present and every score
/// given since the previous one, and is registered in the protocollo.
pub fn session(
    p: &Procedure,
    instance: &Snapshot<'_>,
    date: NaiveDate,
    note: &str,
    now: DateTime<Utc>,
) -> Result<Step, Error> {
    let (_, ev) = fixed(p, instance.data)?;
    let commission = ev
        .commission
        .as_ref()
        .ok_or_else(|| refused("la commissione non è ancora nominata"))?;
    if note.chars().count() > 20 * MAX_MOTIVATION {
        return Err(refused("il testo del verbale è troppo lungo"));
    }
    let since = ev.sessions.last().map(|s| s.at);
    let name_of = |person: &str| {
        commission
            .member(person)
            .map_or_else(|| person.to_string(), |m| m.name.clone())
    };
    let mut decided = Vec::new();
    for (participant, per_leaf) in &ev.scores {
        let ente = instance
            .data
            .participants
            .get(participant)
            .map_or_else(|| participant.clone(), |p| p.name.clone());
        for leaf in Criterion::leaves(&ev.criteria) {
            for (scorer, s) in per_leaf.get(&leaf.id).into_iter().flatten() {
                if since.is_some_and(|t| s.at <= t) {
                    continue;
                }
                decided.push(ScoreLine {
                    ente: ente.clone(),
                    criterio: leaf.title.clone(),
                    punti: s.points.to_string(),
                    motivazione: s.motivazione.clone(),
                    da: if scorer == COLLEGIAL {
                        format!("la commissione (registrato da {})", name_of(&s.by))
                    } else {
                        name_of(scorer)
                    },
                });
            }
        }
    }
    let present = commission
        .members
        .iter()
        .filter(|m| m.status() == MemberStatus::Active)
        .map(|m| format!("{} ({})", m.name, m.role.title()))
        .collect();
    let number = u32::try_from(ev.sessions.len() + 1).unwrap_or(u32::MAX);
    let mut next = ev.clone();
    next.sessions.push(Session {
        number,
        date,
        present,
        note: note.trim().to_string(),
        at: now,
        decided,
    });
    let mut data = instance.data.clone();
    data.evaluation = Some(next);
    let ctx = Context {
        p,
        instance_id: instance.id,
        now,
    };
    let mut context = ctx.template_context(instance.state, &data, None);
    if let (Value::Object(map), Some(s)) = (
        &mut context,
        data.evaluation.as_ref().and_then(|e| e.sessions.last()),
    ) {
        map.insert(
            "seduta".into(),
            json!({
                "numero": s.number,
                "data": s.date.format("%d/%m/%Y").to_string(),
                "presenti": s.present,
                "nota": s.note,
                "punteggi": s.decided,
            }),
        );
    }
    let effects = vec![Effect::RegisterProtocol {
        direction: "interno".into(),
        subject: format!(
            "Verbale della seduta n. {number} della commissione di valutazione – {{{{oggetto}}}}"
        ),
        context,
        register: None,
        to: None,
        document: Some(VERBALE_TEMPLATE.into()),
        classification: None,
        organisations: None,
        participant: None,
    }];
    Ok(stay(p, instance, data, effects, EVENT_SESSION, None, now))
}

/// One proposal's result from the scores in force: each leaf's points (the collegial score,
/// or the mean of the scoring members' rounded as the procedure says), each criterion's the
/// sum of its leaves, the total the sum of the criteria.
pub fn result_of(ev: &EvaluationData, participant: &str, numbers: &NumberSettings) -> RankEntry {
    let empty = BTreeMap::new();
    let scores = ev.scores.get(participant).unwrap_or(&empty);
    let scorers: Vec<&str> = match ev.scoring {
        Scoring::Collegial => vec![COLLEGIAL],
        Scoring::PerMember => ev
            .commission
            .as_ref()
            .map(|c| c.scorers().map(|m| m.person_id.as_str()).collect())
            .unwrap_or_default(),
    };
    let mut points = BTreeMap::new();
    let mut complete = !scorers.is_empty();
    fn walk(
        list: &[Criterion],
        scores: &BTreeMap<String, BTreeMap<String, Score>>,
        scorers: &[&str],
        numbers: &NumberSettings,
        points: &mut BTreeMap<String, Decimal>,
        complete: &mut bool,
    ) -> Decimal {
        let mut sum = Decimal::ZERO;
        for c in list {
            let value = if c.sub.is_empty() {
                let given: Vec<Decimal> = scorers
                    .iter()
                    .filter_map(|s| scores.get(&c.id).and_then(|m| m.get(*s)))
                    .map(|s| s.points)
                    .collect();
                if given.len() < scorers.len() || given.is_empty() {
                    *complete = false;
                }
                if given.is_empty() {
                    continue;
                }
                let n = Decimal::from(given.len());
                round(given.iter().copied().sum::<Decimal>() / n, numbers)
            } else {
                walk(&c.sub, scores, scorers, numbers, points, complete)
            };
            points.insert(c.id.clone(), value.normalize());
            sum += value;
        }
        sum
    }
    let total = walk(
        &ev.criteria,
        scores,
        &scorers,
        numbers,
        &mut points,
        &mut complete,
    )
    .normalize();
    RankEntry {
        participant: participant.to_string(),
        points,
        total,
        complete,
        eligible: complete && total >= ev.threshold,
        rank: None,
    }
}

/// The graduatoria: every proposal in `ids` with its result; the eligible ordered by total,
/// then by the tie rule (criteria: higher first; `presentazione`: earlier first); who is
/// still tied shares the position. Below the threshold or incomplete: no position, after.
pub fn ranking(
    ev: &EvaluationData,
    participants: &BTreeMap<String, ParticipantData>,
    ids: &[String],
    numbers: &NumberSettings,
) -> Vec<RankEntry> {
    let mut entries: Vec<RankEntry> = ids.iter().map(|id| result_of(ev, id, numbers)).collect();
    let joined = |id: &str| participants.get(id).map(|p| p.joined_at);
    let tie_order = |a: &RankEntry, b: &RankEntry| -> Ordering {
        let mut order = b.total.cmp(&a.total);
        for rule in &ev.tie {
            if order != Ordering::Equal {
                break;
            }
            order = if rule == TIE_SUBMITTED {
                joined(&a.participant).cmp(&joined(&b.participant))
            } else {
                let of = |e: &RankEntry| e.points.get(rule).copied().unwrap_or(Decimal::ZERO);
                of(b).cmp(&of(a))
            };
        }
        order
    };
    entries.sort_by(|a, b| {
        b.eligible
            .cmp(&a.eligible)
            .then_with(|| tie_order(a, b))
            .then_with(|| a.participant.cmp(&b.participant))
    });
    let mut position = 0u32;
    for i in 0..entries.len() {
        if !entries[i].eligible {
            break;
        }
        let shares = i > 0 && tie_order(&entries[i - 1], &entries[i]) == Ordering::Equal;
        if !shares {
            position = u32::try_from(i + 1).unwrap_or(u32::MAX);
        }
        entries[i].rank = Some(position);
    }
    entries
}

/// Writes each participant's computed total, completeness and eligibility into the
/// variables the definition names.
pub fn refresh_results(p: &Procedure, data: &mut InstanceData) {
    let (Some(d), Some(ev)) = (p.evaluation.as_ref(), data.evaluation.as_ref()) else {
        return;
    };
    let results: Vec<RankEntry> = data
        .participants
        .keys()
        .map(|id| result_of(ev, id, &p.numbers))
        .collect();
    for r in results {
        let scored = ev.scores.contains_key(&r.participant);
        let Some(part) = data.participants.get_mut(&r.participant) else {
            continue;
        };
        let total = if scored {
            number_json(r.total)
        } else {
            Value::Null
        };
        part.variables.insert(d.results.total.to_string(), total);
        if let Some(v) = &d.results.complete {
            part.variables
                .insert(v.to_string(), Value::Bool(r.complete));
        }
        if let Some(v) = &d.results.eligible {
            part.variables
                .insert(v.to_string(), Value::Bool(r.eligible));
        }
    }
}

/// The approval of the graduatoria, inside the step of the `approve` event: every proposal
/// in a scored state must be complete; the ranking is computed and frozen with the
/// determina; each participant gets its position.
pub fn approve(p: &Procedure, data: &mut InstanceData, now: DateTime<Utc>) -> Result<(), Error> {
    let (d, ev) = fixed(p, data)?;
    let ev = ev.clone();
    let number = data
        .variables
        .get(d.determina_number.as_str())
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::MissingInput {
            field: d.determina_number.to_string(),
        })?
        .to_string();
    let date = data
        .variables
        .get(d.determina_date.as_str())
        .and_then(Value::as_str)
        .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        .ok_or_else(|| Error::MissingInput {
            field: d.determina_date.to_string(),
        })?;
    let ids: Vec<String> = data
        .participants
        .iter()
        .filter(|(id, part)| !part.withdrawn && ev.scores.contains_key(*id))
        .map(|(id, _)| id.clone())
        .collect();
    let incomplete: Vec<String> = data
        .participants
        .iter()
        .filter(|(id, part)| {
            !part.withdrawn
                && in_states(&d.score_states, &part.state)
                && !result_of(&ev, id, &p.numbers).complete
        })
        .map(|(_, part)| part.name.clone())
        .collect();
    if !incomplete.is_empty() {
        return Err(Error::EvaluationIncomplete {
            names: incomplete.join(", "),
        });
    }
    let ranking = ranking(&ev, &data.participants, &ids, &p.numbers);
    let mut next = ev;
    next.approval = Some(Approval {
        number,
        date,
        at: now,
        ranking: ranking.clone(),
    });
    data.evaluation = Some(next);
    refresh_results(p, data);
    if let Some(rank) = &d.results.rank {
        for entry in &ranking {
            if let Some(part) = data.participants.get_mut(&entry.participant) {
                part.variables.insert(
                    rank.to_string(),
                    entry.rank.map_or(Value::Null, |r| json!(r)),
                );
            }
        }
    }
    Ok(())
}

/// What a message or document about the evaluation reads: the criteria with their maxima;
/// for a participant, its points per criterion with the motivazioni, total, threshold and
/// position; after approval, the graduatoria.
pub fn template_value(
    ev: &EvaluationData,
    data: &InstanceData,
    participant: Option<&str>,
    numbers: &NumberSettings,
) -> Value {
    let own = participant.map(|id| result_of(ev, id, numbers));
    fn criteria_json(
        list: &[Criterion],
        own: Option<&RankEntry>,
        scores: Option<&BTreeMap<String, BTreeMap<String, Score>>>,
    ) -> Vec<Value> {
        list.iter()
            .map(|c| {
                let motivazioni: Vec<String> = scores
                    .and_then(|s| s.get(&c.id))
                    .map(|m| m.values().map(|s| s.motivazione.clone()).collect())
                    .unwrap_or_default();
                json!({
                    "id": c.id,
                    "titolo": c.title,
                    "massimo": c.max.normalize().to_string(),
                    "punti": own.and_then(|o| o.points.get(&c.id)).map(|p| p.to_string()),
                    "motivazioni": motivazioni,
                    "sottocriteri": criteria_json(&c.sub, own, scores),
                })
            })
            .collect()
    }
    let scores = participant.and_then(|id| ev.scores.get(id));
    let name = |id: &str| {
        data.participants
            .get(id)
            .map_or_else(|| id.to_string(), |p| p.name.clone())
    };
    let graduatoria: Vec<Value> = ev
        .approval
        .as_ref()
        .map(|a| {
            a.ranking
                .iter()
                .map(|e| {
                    json!({
                        "posizione": e.rank,
                        "ente": name(&e.participant),
                        "totale": e.total.to_string(),
                        "idonea": e.eligible,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let own_rank = participant.and_then(|id| {
        ev.approval
            .as_ref()
            .and_then(|a| a.ranking.iter().find(|e| e.participant == id))
            .and_then(|e| e.rank)
    });
    json!({
        "criteri": criteria_json(&ev.criteria, own.as_ref(), scores),
        "totale_massimo": ev.total.normalize().to_string(),
        "soglia": ev.threshold.normalize().to_string(),
        "atto_criteri": ev.act,
        "totale": own.as_ref().map(|o| o.total.to_string()),
        "idonea": own.as_ref().map(|o| o.eligible),
        "posizione": own_rank,
        "determina": ev.approval.as_ref().map(|a| json!({
            "numero": a.number,
            "data": a.date.format("%d/%m/%Y").to_string(),
        })),
        "graduatoria": graduatoria,
        "commissione": ev.commission.as_ref().map(|c| c.members.iter().map(|m| json!({
            "nome": m.name,
            "ruolo": m.role.title(),
            "stato": m.status().title(),
        })).collect::<Vec<_>>()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    /// A fixed instant: the core reads no clock, not even in its tests.
    fn fixed_now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_798_000_000, 0).expect("instant")
    }

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).expect("decimal")
    }

    fn criterion(id: &str, max: &str) -> Criterion {
        Criterion {
            id: id.into(),
            title: id.to_uppercase(),
            max: d(max),
            sub: Vec::new(),
        }
    }

    fn member(id: &str, role: MemberRole, clean: bool) -> Commissioner {
        Commissioner {
            person_id: id.into(),
            name: id.into(),
            role,
            appointed_at: fixed_now(),
            declaration: Some(Declaration {
                at: fixed_now(),
                conflict: !clean,
                conviction: false,
                note: None,
            }),
            replaced_by: None,
            replaces: None,
            replacement_act: None,
        }
    }

    fn evaluation(scoring: Scoring) -> EvaluationData {
        EvaluationData {
            criteria: vec![
                criterion("qualita", "40"),
                criterion("esperienza", "30"),
                criterion("risorse", "30"),
            ],
            total: d("100"),
            threshold: d("60"),
            tie: vec!["qualita".into(), TIE_SUBMITTED.into()],
            scoring,
            act: Some("Determina n. 1".into()),
            fixed_at: fixed_now(),
            rectifications: Vec::new(),
            commission: Some(Commission {
                act: "Determina n. 2".into(),
                appointed_at: fixed_now(),
                members: vec![
                    member("presidente", MemberRole::Presidente, true),
                    member("componente", MemberRole::Componente, true),
                    member("conflitto", MemberRole::Componente, false),
                    member("segretario", MemberRole::Segretario, true),
                ],
            }),
            scores: BTreeMap::new(),
            sessions: Vec::new(),
            approval: None,
        }
    }

    fn give(ev: &mut EvaluationData, participant: &str, leaf: &str, scorer: &str, points: &str) {
        ev.scores
            .entry(participant.into())
            .or_default()
            .entry(leaf.into())
            .or_default()
            .insert(
                scorer.into(),
                Score {
                    points: d(points),
                    motivazione: "motivata".into(),
                    by: scorer.into(),
                    at: fixed_now(),
                },
            );
    }

    fn participants(ids: &[&str]) -> BTreeMap<String, ParticipantData> {
        ids.iter()
            .enumerate()
            .map(|(i, id)| {
                (
                    (*id).to_string(),
                    ParticipantData {
                        organisation_id: format!("org-{id}"),
                        name: id.to_uppercase(),
                        members: Vec::new(),
                        state: "ammessa".into(),
                        variables: serde_json::Map::new(),
                        terms: BTreeMap::new(),
                        suspensions: BTreeMap::new(),
                        joined_at: DateTime::from_timestamp(1_800_000_000 + i as i64 * 60, 0)
                            .expect("instant"),
                        withdrawn: false,
                        consegne: BTreeMap::new(),
                        pec: None,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn per_member_scores_are_averaged_with_the_declared_rounding_and_abstained_members_do_not_count()
     {
        let mut ev = evaluation(Scoring::PerMember);
        for (leaf, a, b) in [
            ("qualita", "35", "30.5"),
            ("esperienza", "20", "21"),
            ("risorse", "10", "11"),
        ] {
            give(&mut ev, "a", leaf, "presidente", a);
            give(&mut ev, "a", leaf, "componente", b);
            // Ignored: the member declared a conflict.
            give(&mut ev, "a", leaf, "conflitto", "0");
        }
        let r = result_of(&ev, "a", &NumberSettings::default());
        // (35 + 30.5) / 2 = 32.75; 20.5; 10.5
        assert_eq!(r.points["qualita"], d("32.75"));
        assert_eq!(r.points["esperienza"], d("20.5"));
        assert_eq!(r.total, d("63.75"));
        assert!(r.complete && r.eligible);
        // One member missing one criterion: incomplete, not eligible.
        let mut partial = evaluation(Scoring::PerMember);
        give(&mut partial, "b", "qualita", "presidente", "40");
        let r = result_of(&partial, "b", &NumberSettings::default());
        assert!(!r.complete && !r.eligible);
    }

    #[test]
    fn the_ranking_orders_by_total_then_the_tie_rule_and_leaves_those_below_the_threshold_unranked()
    {
        let mut ev = evaluation(Scoring::Collegial);
        // a and b tie at 80; b has more on qualita. c ties with b on everything but arrived
        // later. e is under the threshold.
        for (p, q, e, r) in [
            ("a", "30", "30", "20"),
            ("b", "40", "20", "20"),
            ("c", "40", "20", "20"),
            ("e", "20", "20", "10"),
        ] {
            give(&mut ev, p, "qualita", COLLEGIAL, q);
            give(&mut ev, p, "esperienza", COLLEGIAL, e);
            give(&mut ev, p, "risorse", COLLEGIAL, r);
        }
        let parts = participants(&["a", "b", "c", "e"]);
        let ids: Vec<String> = parts.keys().cloned().collect();
        let ranking = ranking(&ev, &parts, &ids, &NumberSettings::default());
        let order: Vec<(&str, Option<u32>)> = ranking
            .iter()
            .map(|e| (e.participant.as_str(), e.rank))
            .collect();
        assert_eq!(
            order,
            vec![("b", Some(1)), ("c", Some(2)), ("a", Some(3)), ("e", None)]
        );
        // Without `presentazione` in the rule b and c share the position.
        ev.tie = vec!["qualita".into()];
        let ranking = super::ranking(&ev, &parts, &ids, &NumberSettings::default());
        let ranks: Vec<Option<u32>> = ranking.iter().map(|e| e.rank).collect();
        assert_eq!(ranks, vec![Some(1), Some(1), Some(3), None]);
    }

    #[test]
    fn criteria_must_add_up_to_the_total_and_sub_criteria_to_their_parent() {
        let mut c = vec![criterion("qualita", "40"), criterion("esperienza", "30")];
        assert!(Criterion::check(&c, d("70")).is_empty());
        let problems = Criterion::check(&c, d("100"));
        assert!(problems[0].contains("sommano 70"), "{problems:?}");
        c[0].sub = vec![criterion("obiettivi", "20"), criterion("metodo", "15")];
        let problems = Criterion::check(&c, d("70"));
        assert!(
            problems[0].contains("sottocriteri di 'qualita'"),
            "{problems:?}"
        );
        c[0].sub[1].max = d("20");
        assert!(Criterion::check(&c, d("70")).is_empty());
        assert_eq!(
            Criterion::leaves(&c)
                .iter()
                .map(|l| l.id.as_str())
                .collect::<Vec<_>>(),
            vec!["obiettivi", "metodo", "esperienza"]
        );
    }

    proptest! {
        /// The ranking is a function of the scores in force, whatever order they arrived in.
        #[test]
        fn the_ranking_does_not_depend_on_the_order_scores_arrive(
            points in proptest::collection::vec((0u32..=40, 0u32..=30, 0u32..=30, 0u32..=40, 0u32..=30, 0u32..=30), 2..6),
            seed in any::<u64>(),
        ) {
            let names: Vec<String> = (0..points.len()).map(|i| format!("p{i}")).collect();
            let mut arrivals = Vec::new();
            for (name, (q1, e1, r1, q2, e2, r2)) in names.iter().zip(&points) {
                for (leaf, scorer, value) in [
                    ("qualita", "presidente", q1), ("esperienza", "presidente", e1), ("risorse", "presidente", r1),
                    ("qualita", "componente", q2), ("esperienza", "componente", e2), ("risorse", "componente", r2),
                ] {
                    // Half points too, to exercise the mean's rounding.
                    arrivals.push((name.clone(), leaf, scorer, format!("{value}.5").replace("40.5", "40").replace("30.5", "30")));
                }
            }
            let parts = participants(&names.iter().map(String::as_str).collect::<Vec<_>>());
            let mut first = evaluation(Scoring::PerMember);
            for (p, leaf, scorer, v) in &arrivals {
                give(&mut first, p, leaf, scorer, v);
            }
            // A deterministic shuffle from the seed.
            let mut shuffled = arrivals.clone();
            let mut state = seed | 1;
            for i in (1..shuffled.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let j = (state % (i as u64 + 1)) as usize;
                shuffled.swap(i, j);
            }
            let mut second = evaluation(Scoring::PerMember);
            for (p, leaf, scorer, v) in &shuffled {
                give(&mut second, p, leaf, scorer, v);
            }
            let numbers = NumberSettings::default();
            prop_assert_eq!(
                ranking(&first, &parts, &names, &numbers),
                ranking(&second, &parts, &names, &numbers)
            );
        }
    }
}
