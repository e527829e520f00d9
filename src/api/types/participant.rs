//! `Participant`: an application in its own lifecycle, as staff or its own ETS see it — its
//! state, its variables (with the trace of each term: its soccorso term, its challenge
//! date), the events the caller may fire on it now, and its own history.

use std::sync::Arc;

use async_graphql::{Context, ID, Json, Object};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::definition::{StateInfo, TransitionInfo};
use super::instance::{HistoryEntry, VariableValue};
use crate::api::access::LoadedInstance;
use crate::api::context::shared;
use crate::api::error::ApiError;
use crate::api::policy::{Caller, Subject, allows};
use crate::engine::{self, ParticipantData};

/// What a PEC receipt attested about a notice to a participant.
#[derive(Debug, Clone, async_graphql::SimpleObject)]
pub(crate) struct Consegna {
    /// The participant's variable the consegna date goes to.
    pub variable: String,
    /// The message (template) that travelled.
    pub message: String,
    /// `in_attesa_di_consegna`, `consegnata`, `mancata_consegna`, `non_accettata`, `virus`
    /// or `inviata_posta_ordinaria`.
    pub status: String,
    /// The provider's instant (the sending, while pending).
    pub at: DateTime<Utc>,
    /// Its civil date in Europe/Rome (`YYYY-MM-DD`).
    pub day: String,
    /// The receipt, cited.
    pub receipt: String,
    /// The provider's explanation of a failure.
    pub reason: Option<String>,
}

/// A participant the caller may read (the policy was asked when it was built).
pub(crate) struct Participant {
    pub loaded: LoadedInstance,
    pub id: String,
    pub caller: Arc<Caller>,
}

impl Participant {
    /// The participant of an application, if the caller may read it.
    pub(crate) fn of(loaded: LoadedInstance, id: &str, caller: Arc<Caller>) -> Option<Participant> {
        let part = loaded.row.data.participants.get(id)?;
        allows(&caller, &Subject::Participant(loaded.facts(), part)).then(|| Participant {
            id: id.to_string(),
            loaded,
            caller,
        })
    }

    fn data(&self) -> Result<&ParticipantData, ApiError> {
        self.loaded
            .row
            .data
            .participants
            .get(&self.id)
            .ok_or(ApiError::NotFound {
                what: "partecipante",
            })
    }
}

#[Object]
impl Participant {
    /// Its id (the id of its application).
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }

    /// The organisation that acts and receives (for a group, its capofila).
    async fn name(&self) -> Result<&str, ApiError> {
        Ok(&self.data()?.name)
    }

    /// For a group still to be formed (ATS): the other members, named.
    async fn members(&self) -> Result<&[String], ApiError> {
        Ok(&self.data()?.members)
    }

    /// Its state in the participant's lifecycle.
    async fn state(&self) -> Result<StateInfo, ApiError> {
        let part = self.data()?;
        let def = self.loaded.procedure.participant.as_ref();
        Ok(match def.and_then(|d| d.states.get(part.state.as_str())) {
            Some(s) => StateInfo {
                id: s.id.to_string(),
                title: s.title.clone(),
                initial: s.initial,
                is_final: s.is_final,
            },
            None => StateInfo {
                id: part.state.clone(),
                title: part.state.clone(),
                initial: false,
                is_final: false,
            },
        })
    }

    /// Withdrawn by its ETS: it no longer counts.
    async fn withdrawn(&self) -> Result<bool, ApiError> {
        Ok(self.data()?.withdrawn)
    }

    /// When it joined.
    async fn joined_at(&self) -> Result<DateTime<Utc>, ApiError> {
        Ok(self.data()?.joined_at)
    }

    /// Its variables the caller may read, each term with how it was computed (its soccorso
    /// term, the date by which it may challenge its outcome).
    async fn variables(&self) -> Result<Vec<VariableValue>, ApiError> {
        let part = self.data()?;
        let Some(def) = &self.loaded.procedure.participant else {
            return Ok(Vec::new());
        };
        let facts = self.loaded.facts();
        Ok(def
            .variables
            .values()
            .filter(|v| allows(&self.caller, &Subject::ParticipantVariable(facts, part, v)))
            .map(|v| VariableValue {
                name: v.name.to_string(),
                label: v.label.clone(),
                kind: v.kind.to_string(),
                value: Json(
                    part.variables
                        .get(v.name.as_str())
                        .cloned()
                        .unwrap_or(Value::Null),
                ),
                term: part.terms.get(v.name.as_str()).map(Into::into),
            })
            .collect())
    }

    /// What the PEC receipts attested about the notices sent to it: for each variable a
    /// consegna sets (the day a term runs from), `in_attesa_di_consegna` until the receipt,
    /// then `consegnata` with the receipt cited, or `mancata_consegna` (the term never
    /// starts); `inviata_posta_ordinaria` when the ETS has no PEC address.
    async fn consegne(&self) -> Result<Vec<Consegna>, ApiError> {
        let part = self.data()?;
        Ok(part
            .consegne
            .iter()
            .map(|(variable, r)| Consegna {
                variable: variable.clone(),
                message: r.message.clone(),
                status: r.status.clone(),
                at: r.at,
                day: r.day.format("%Y-%m-%d").to_string(),
                receipt: r.receipt.clone(),
                reason: r.reason.clone(),
            })
            .collect())
    }

    /// The events the caller may fire on it now (guards are checked when fired).
    async fn available_events(&self) -> Result<Vec<TransitionInfo>, ApiError> {
        let part = self.data()?;
        let facts = self.loaded.facts();
        Ok(engine::available_to_participant(
            &self.loaded.procedure,
            &self.loaded.row.state,
            part,
            self.caller.role.as_str(),
        )
        .into_iter()
        .filter(|t| {
            allows(
                &self.caller,
                &Subject::FireParticipant(facts, part, t.event.as_str()),
            )
        })
        .map(Into::into)
        .collect())
    }

    /// Its own steps in the history (actor and inputs shown to staff only).
    #[graphql(complexity = "crate::api::limits::DB_READ_COST + child_complexity")]
    async fn history(&self, ctx: &Context<'_>) -> Result<Vec<HistoryEntry>, ApiError> {
        let detail = allows(&self.caller, &Subject::HistoryDetail(self.loaded.facts()));
        let rows = shared(ctx)?
            .service
            .store()
            .history(&self.loaded.row.id)
            .await?;
        let facts = self.loaded.facts();
        let own = rows
            .into_iter()
            .filter(|h| h.participant.as_ref().is_some_and(|m| m.id == self.id))
            .filter(|h| crate::api::policy::reads_step(&self.caller, facts, &h.event));
        Ok(HistoryEntry::numbered(own, detail))
    }
}
