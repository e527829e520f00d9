//! Meetings of the Ambito's bodies over GraphQL: the body as convened, the answers to the
//! convocation, the register, the quorum now, each item's outcome with its count and trace;
//! members answer for their own seat, the Ufficio di Piano runs the session.

use std::collections::BTreeMap;

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::access::{self, LoadedInstance};
use super::context::{caller, shared};
use super::error::ApiError;
use super::evaluation::commit;
use super::mutation::CommandResult;
use super::policy::Caller;
use crate::engine::meeting::{self as mt, Answer, Ballot, Capacity, Outcome, Presence};
use crate::identity::Role;

/// An answer to a convocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub(crate) enum ConvocationAnswer {
    /// Partecipo.
    Partecipa,
    /// Non partecipo.
    NonPartecipa,
    /// Delego.
    Delega,
}

/// In what capacity someone sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub(crate) enum SeatCapacity {
    /// The sindaco (or the member themselves).
    Sindaco,
    /// Vice sindaco.
    ViceSindaco,
    /// Assessore.
    Assessore,
    /// Delegate with a written delega.
    Delegato,
    /// Not stated.
    NonIndicata,
}

impl From<SeatCapacity> for Capacity {
    fn from(c: SeatCapacity) -> Self {
        match c {
            SeatCapacity::Sindaco => Capacity::Sindaco,
            SeatCapacity::ViceSindaco => Capacity::ViceSindaco,
            SeatCapacity::Assessore => Capacity::Assessore,
            SeatCapacity::Delegato => Capacity::Delegato,
            SeatCapacity::NonIndicata => Capacity::NonIndicata,
        }
    }
}

impl From<Capacity> for SeatCapacity {
    fn from(c: Capacity) -> Self {
        match c {
            Capacity::Sindaco => SeatCapacity::Sindaco,
            Capacity::ViceSindaco => SeatCapacity::ViceSindaco,
            Capacity::Assessore => SeatCapacity::Assessore,
            Capacity::Delegato => SeatCapacity::Delegato,
            Capacity::NonIndicata => SeatCapacity::NonIndicata,
        }
    }
}

/// A ballot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub(crate) enum BallotValue {
    /// In favour.
    Favorevole,
    /// Against.
    Contrario,
    /// Abstained.
    Astenuto,
}

/// An item's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub(crate) enum ItemOutcome {
    /// Approved.
    Approvato,
    /// Rejected.
    Respinto,
    /// Not voted for lack of quorum.
    MancanzaNumeroLegale,
    /// Postponed.
    Rinviato,
    /// No decision.
    NessunaDecisione,
}

impl From<ItemOutcome> for Outcome {
    fn from(o: ItemOutcome) -> Self {
        match o {
            ItemOutcome::Approvato => Outcome::Approvato,
            ItemOutcome::Respinto => Outcome::Respinto,
            ItemOutcome::MancanzaNumeroLegale => Outcome::MancanzaNumeroLegale,
            ItemOutcome::Rinviato => Outcome::Rinviato,
            ItemOutcome::NessunaDecisione => Outcome::NessunaDecisione,
        }
    }
}

impl From<Outcome> for ItemOutcome {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Approvato => ItemOutcome::Approvato,
            Outcome::Respinto => ItemOutcome::Respinto,
            Outcome::MancanzaNumeroLegale => ItemOutcome::MancanzaNumeroLegale,
            Outcome::Rinviato => ItemOutcome::Rinviato,
            Outcome::NessunaDecisione => ItemOutcome::NessunaDecisione,
        }
    }
}

/// A seat of the body.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct BodySeat {
    /// Id (the comune's).
    pub id: ID,
    /// Name.
    pub name: String,
    /// Vote weight (quota).
    pub weight: f64,
}

/// An answer to the convocation.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct SeatAnswer {
    /// The seat.
    pub seat: ID,
    /// The answer.
    pub answer: ConvocationAnswer,
    /// The delegate, for a delegation.
    pub delegate: Option<String>,
    /// Their capacity.
    pub capacity: Option<SeatCapacity>,
    /// When.
    pub at: DateTime<Utc>,
}

/// Someone in the register.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct RegisterEntry {
    /// The seat they hold; none for who attends without a vote.
    pub seat: Option<ID>,
    /// Name.
    pub name: String,
    /// Capacity.
    pub capacity: SeatCapacity,
    /// Why they attend, without a vote.
    pub note: Option<String>,
    /// Arrived.
    pub arrived: Option<DateTime<Utc>>,
    /// Left.
    pub left: Option<DateTime<Utc>>,
}

/// The quorum now.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct QuorumNow {
    /// Seats present.
    pub heads: i32,
    /// Of.
    pub seats: i32,
    /// Weight present.
    pub weight: f64,
    /// Of.
    pub total_weight: f64,
    /// Met; null when the body's rule is unknown.
    pub met: Option<bool>,
    /// Why, one Italian line each.
    pub trace: Vec<String>,
}

/// A vote's count.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct VoteCount {
    /// In favour (seats).
    pub favorevoli: i32,
    /// Against.
    pub contrari: i32,
    /// Abstained.
    pub astenuti: i32,
    /// In favour (weights).
    pub favorevoli_quote: f64,
    /// Against (weights).
    pub contrari_quote: f64,
    /// Abstained (weights).
    pub astenuti_quote: f64,
}

/// An agenda item.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct AgendaItem {
    /// 1 for the first.
    pub number: i32,
    /// Title.
    pub title: String,
    /// Its outcome, once treated.
    pub outcome: Option<ItemOutcome>,
    /// The count, when there was a roll-call vote.
    pub count: Option<VoteCount>,
    /// How the outcome was reached.
    pub trace: Vec<String>,
    /// An approved item is a deliberazione, at the albo on its own for its window.
    pub publication: Option<AlboWindow>,
}

/// The approval of a verbale by a later session.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct VerbaleApprovalView {
    /// The later meeting.
    pub by_instance_id: ID,
    /// Its day (dd/mm/yyyy).
    pub date: String,
    /// The item that approved it.
    pub item: i32,
}

/// A deliberazione's window at the albo.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct AlboWindow {
    /// First day (counted).
    pub from: chrono::NaiveDate,
    /// Last day.
    pub to: chrono::NaiveDate,
    /// How it was computed, one Italian line each.
    pub trace: Vec<String>,
}

/// A meeting of a body.
pub(crate) struct Meeting {
    pub loaded: LoadedInstance,
}

fn number(d: rust_decimal::Decimal) -> f64 {
    d.to_string().parse().unwrap_or(0.0)
}

#[Object]
impl Meeting {
    /// The body's name.
    async fn body(&self) -> String {
        self.def()
            .map(|d| mt::body_of(d, &self.loaded.row.data).title.clone())
            .unwrap_or_default()
    }

    /// The seats as convened, with their weights.
    async fn seats(&self) -> Vec<BodySeat> {
        self.def()
            .map(|d| {
                mt::body_of(d, &self.loaded.row.data)
                    .seats
                    .iter()
                    .map(|s| BodySeat {
                        id: ID(s.id.clone()),
                        name: s.name.clone(),
                        weight: number(s.weight),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// At its second call.
    async fn second_call(&self) -> bool {
        self.data().is_some_and(|m| m.second_call)
    }

    /// Answers to the convocation.
    async fn answers(&self) -> Vec<SeatAnswer> {
        self.data()
            .map(|m| {
                m.rsvps
                    .iter()
                    .map(|(seat, r)| SeatAnswer {
                        seat: ID(seat.clone()),
                        answer: match r.answer {
                            Answer::Partecipa => ConvocationAnswer::Partecipa,
                            Answer::NonPartecipa => ConvocationAnswer::NonPartecipa,
                            Answer::Delega => ConvocationAnswer::Delega,
                        },
                        delegate: r.delegate.clone(),
                        capacity: r.capacity.map(Into::into),
                        at: r.at,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The register.
    async fn register(&self) -> Vec<RegisterEntry> {
        self.data()
            .map(|m| {
                m.register
                    .iter()
                    .map(|p| RegisterEntry {
                        seat: p.seat.clone().map(ID),
                        name: p.name.clone(),
                        capacity: p.capacity.into(),
                        note: p.note.clone(),
                        arrived: p.arrived,
                        left: p.left,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The quorum now (once closed: at the closing), by the rule of the call in force.
    async fn quorum(&self, ctx: &Context<'_>) -> Result<Option<QuorumNow>, ApiError> {
        let now = shared(ctx)?.service.now();
        Ok(self.def().zip(self.data()).map(|(d, m)| {
            let q = mt::quorum(
                mt::body_of(d, &self.loaded.row.data),
                &m.register,
                m.closed_at.unwrap_or(now),
                m.second_call,
            );
            QuorumNow {
                heads: i32::try_from(q.heads).unwrap_or(i32::MAX),
                seats: i32::try_from(q.seats).unwrap_or(i32::MAX),
                weight: number(q.weight),
                total_weight: number(q.total_weight),
                met: q.met,
                trace: q.trace,
            }
        }))
    }

    /// The agenda with what happened to each item.
    async fn items(&self) -> Vec<AgendaItem> {
        let Some(d) = self.def() else {
            return Vec::new();
        };
        let empty = BTreeMap::new();
        let decided = self.data().map_or(&empty, |m| &m.items);
        mt::agenda(d, &self.loaded.row.data)
            .into_iter()
            .enumerate()
            .map(|(i, title)| {
                let x = decided.get(&i);
                AgendaItem {
                    number: i32::try_from(i + 1).unwrap_or(i32::MAX),
                    title,
                    outcome: x.map(|x| x.outcome.into()),
                    count: x.and_then(|x| x.count.as_ref()).map(|c| VoteCount {
                        favorevoli: i32::try_from(c.favorevoli.0).unwrap_or(i32::MAX),
                        contrari: i32::try_from(c.contrari.0).unwrap_or(i32::MAX),
                        astenuti: i32::try_from(c.astenuti.0).unwrap_or(i32::MAX),
                        favorevoli_quote: number(c.favorevoli.1),
                        contrari_quote: number(c.contrari.1),
                        astenuti_quote: number(c.astenuti.1),
                    }),
                    trace: x.map(|x| x.trace.clone()).unwrap_or_default(),
                    publication: x.and_then(|x| x.publication.as_ref()).map(|w| AlboWindow {
                        from: w.from,
                        to: w.to,
                        trace: w.trace.clone(),
                    }),
                }
            })
            .collect()
    }

    /// The verbale's approval by a later session of the body (the first item of that
    /// session); null while not approved that way (or approved in its own session).
    async fn verbale_approval(&self) -> Option<VerbaleApprovalView> {
        self.data()
            .and_then(|m| m.approval.as_ref())
            .map(|a| VerbaleApprovalView {
                by_instance_id: ID(a.by_instance.clone()),
                date: a.date.clone(),
                item: i32::try_from(a.item).unwrap_or(i32::MAX),
            })
    }

    /// When the session opened.
    async fn opened_at(&self) -> Option<DateTime<Utc>> {
        self.data().and_then(|m| m.opened_at)
    }

    /// When it closed.
    async fn closed_at(&self) -> Option<DateTime<Utc>> {
        self.data().and_then(|m| m.closed_at)
    }
}

impl Meeting {
    fn def(&self) -> Option<&crate::definition::MeetingDef> {
        self.loaded.procedure.meeting.as_ref()
    }

    fn data(&self) -> Option<&mt::MeetingData> {
        self.loaded.row.data.meeting.as_ref()
    }
}

/// A ballot of a seat.
#[derive(Debug, Clone, InputObject)]
pub(crate) struct SeatBallot {
    /// The seat.
    pub seat: ID,
    /// The ballot.
    pub ballot: BallotValue,
}

/// The meetings' mutations.
#[derive(Default)]
pub(crate) struct MeetingMutation;

/// The Ufficio di Piano running a session, on an instance it sees.
async fn staff(
    ctx: &Context<'_>,
    instance_id: &ID,
) -> Result<(std::sync::Arc<Caller>, LoadedInstance), ApiError> {
    let caller = caller(ctx).await?;
    let loaded = access::instance(shared(ctx)?, &caller, instance_id.as_str()).await?;
    if caller.role != Role::UfficioDiPiano {
        return Err(ApiError::Forbidden(
            "la seduta la registra l'Ufficio di Piano".into(),
        ));
    }
    Ok((caller, loaded))
}

fn item_index(item: i32) -> Result<usize, ApiError> {
    usize::try_from(item)
        .ok()
        .and_then(|i| i.checked_sub(1))
        .ok_or_else(|| ApiError::bad_field("item", "i punti dell'ordine del giorno contano da 1"))
}

#[Object]
impl MeetingMutation {
    /// A member answers the convocation for its own seat (its comune): partecipa, non
    /// partecipa, or delega (naming the delegate). The Ufficio di Piano may record an answer
    /// for any seat (`seat`).
    async fn answer_convocation(
        &self,
        ctx: &Context<'_>,
        instance_id: ID,
        answer: ConvocationAnswer,
        delegate: Option<String>,
        capacity: Option<SeatCapacity>,
        seat: Option<ID>,
    ) -> Result<CommandResult, ApiError> {
        let caller = caller(ctx).await?;
        let loaded = access::instance(shared(ctx)?, &caller, instance_id.as_str()).await?;
        let seat = match (caller.role, seat) {
            (Role::UfficioDiPiano, Some(seat)) => seat.to_string(),
            (Role::Sindaco | Role::Tecnico, None) => caller.organisation_id.clone(),
            (Role::Sindaco | Role::Tecnico, Some(seat))
                if seat.as_str() == caller.organisation_id =>
            {
                seat.to_string()
            }
            (Role::Sindaco | Role::Tecnico, Some(_)) => {
                return Err(ApiError::Forbidden(
                    "si risponde per il proprio comune soltanto".into(),
                ));
            }
            (Role::UfficioDiPiano, None) => {
                return Err(ApiError::bad_field(
                    "seat",
                    "indicare il seggio per cui si risponde",
                ));
            }
            _ => {
                return Err(ApiError::Forbidden(
                    "rispondono alla convocazione i membri dell'organo".into(),
                ));
            }
        };
        let answer = match answer {
            ConvocationAnswer::Partecipa => Answer::Partecipa,
            ConvocationAnswer::NonPartecipa => Answer::NonPartecipa,
            ConvocationAnswer::Delega => Answer::Delega,
        };
        let payload =
            serde_json::json!({ "seggio": seat, "risposta": answer, "delegato": delegate });
        let person = caller.person_id.clone();
        commit(
            ctx,
            &caller,
            &loaded,
            payload,
            mt::EVENT_RSVP,
            None,
            |p, row, now| {
                mt::rsvp(
                    p,
                    &row.snapshot(),
                    &seat,
                    &person,
                    answer,
                    delegate.as_deref(),
                    capacity.map(Into::into),
                    now,
                )
            },
        )
        .await
    }

    /// Records an arrival: for a seat (`seat`, counted once), or without a vote (no `seat`,
    /// with `note` saying why they attend).
    async fn record_presence(
        &self,
        ctx: &Context<'_>,
        instance_id: ID,
        seat: Option<ID>,
        name: String,
        capacity: SeatCapacity,
        note: Option<String>,
    ) -> Result<CommandResult, ApiError> {
        let (caller, loaded) = staff(ctx, &instance_id).await?;
        if note.as_ref().is_some_and(|n| n.chars().count() > 500) {
            return Err(ApiError::bad_field("note", "al massimo 500 caratteri"));
        }
        let presence = Presence {
            seat: seat.map(|s| s.to_string()),
            name,
            capacity: capacity.into(),
            note,
            arrived: None,
            left: None,
        };
        let payload = serde_json::to_value(&presence).unwrap_or_default();
        commit(
            ctx,
            &caller,
            &loaded,
            payload,
            mt::EVENT_PRESENCE,
            None,
            |p, row, now| mt::arrive(p, &row.snapshot(), presence.clone(), now),
        )
        .await
    }

    /// Records a departure: later votes are taken without them.
    async fn record_departure(
        &self,
        ctx: &Context<'_>,
        instance_id: ID,
        name: String,
    ) -> Result<CommandResult, ApiError> {
        let (caller, loaded) = staff(ctx, &instance_id).await?;
        let payload = serde_json::json!({ "nome": name });
        commit(
            ctx,
            &caller,
            &loaded,
            payload,
            mt::EVENT_DEPARTURE,
            None,
            |p, row, now| mt::leave(p, &row.snapshot(), &name, now),
        )
        .await
    }

    /// Records the vote on an item (1 for the first): each present seat's ballot, counted
    /// by the body's rule with the quorum now; or, without a roll call, the outcome as
    /// declared. An approved item is numbered as a deliberazione.
    async fn record_vote(
        &self,
        ctx: &Context<'_>,
        instance_id: ID,
        item: i32,
        ballots: Option<Vec<SeatBallot>>,
        outcome: Option<ItemOutcome>,
    ) -> Result<CommandResult, ApiError> {
        let (caller, loaded) = staff(ctx, &instance_id).await?;
        let index = item_index(item)?;
        let ballots = ballots.unwrap_or_default();
        if ballots.len() > 500 {
            return Err(ApiError::bad_field("ballots", "troppi voti"));
        }
        let mut by_seat = BTreeMap::new();
        for b in &ballots {
            let ballot = match b.ballot {
                BallotValue::Favorevole => Ballot::Favorevole,
                BallotValue::Contrario => Ballot::Contrario,
                BallotValue::Astenuto => Ballot::Astenuto,
            };
            if by_seat.insert(b.seat.to_string(), ballot).is_some() {
                return Err(ApiError::bad_field(
                    "ballots",
                    format!("il seggio '{}' vota una volta sola", b.seat.as_str()),
                ));
            }
        }
        let declared: Option<Outcome> = outcome.map(Into::into);
        let payload = serde_json::json!({ "punto": item, "voti": by_seat, "esito": declared });
        commit(
            ctx,
            &caller,
            &loaded,
            payload,
            mt::EVENT_VOTE,
            None,
            |p, row, now| mt::vote(p, &row.snapshot(), index, &by_seat, declared, now),
        )
        .await
    }

    /// Uploads the verbale signed outside procedo (a PAdES PDF or a CAdES `.p7m`): it is
    /// registered in the protocollo as an internal document and becomes what is published.
    /// Returns the registration ("0000012/2027").
    async fn upload_signed_verbale(
        &self,
        ctx: &Context<'_>,
        instance_id: ID,
        document: super::uploads::DocumentInput,
    ) -> Result<String, ApiError> {
        let (caller, loaded) = staff(ctx, &instance_id).await?;
        let shared = shared(ctx)?;
        let Some(protocollo) = &shared.protocollo else {
            return Err(ApiError::bad_input(
                "il protocollo non è configurato: il verbale firmato non può essere registrato",
            ));
        };
        let mut documents = super::uploads::read(ctx, vec![document], 1).await?;
        let Some(file) = documents.pop() else {
            return Err(ApiError::bad_field("document", "manca il file"));
        };
        let registration = crate::protocollo::verbale::register_signed(
            protocollo,
            &shared.service,
            &loaded.row.id,
            &caller.actor(),
            &file.name,
            &file.media_type,
            file.content,
        )
        .await
        .map_err(|e| match e {
            crate::protocollo::Error::Invalid(reason) => ApiError::bad_input(reason),
            other => ApiError::internal(other),
        })?;
        Ok(registration.to_string())
    }

    /// Postpones an item to another session.
    async fn postpone_item(
        &self,
        ctx: &Context<'_>,
        instance_id: ID,
        item: i32,
    ) -> Result<CommandResult, ApiError> {
        let (caller, loaded) = staff(ctx, &instance_id).await?;
        let index = item_index(item)?;
        let payload = serde_json::json!({ "punto": item });
        commit(
            ctx,
            &caller,
            &loaded,
            payload,
            mt::EVENT_POSTPONE,
            None,
            |p, row, now| mt::postpone(p, &row.snapshot(), index, now),
        )
        .await
    }
}
