//! Loading what the policy decides on: an instance with its pinned procedure and whether the
//! caller's organisation submitted to it. Each loader asks the policy before handing the object
//! out, so a hidden object is `NOT_FOUND` exactly like a missing one.

use std::sync::Arc;

use super::Shared;
use super::error::ApiError;
use super::policy::{Caller, InstanceFacts, Subject, authorize};
use crate::definition::Procedure;
use crate::identity::Role;
use crate::store::{InstanceRow, SubmissionRow};

/// An instance with what the policy needs to know about it.
#[derive(Debug, Clone)]
pub(crate) struct LoadedInstance {
    /// The row.
    pub row: Arc<InstanceRow>,
    /// Its pinned procedure.
    pub procedure: Arc<Procedure>,
    /// The caller's organisation submitted to it.
    pub submitted: bool,
    /// The submissions of the caller's organisation to it, when the caller is an ETS and
    /// they were read to decide `submitted` (in the order `Store::submissions` gives).
    pub own_submissions: Option<Arc<Vec<SubmissionRow>>>,
}

impl LoadedInstance {
    /// The facts for the policy.
    pub fn facts(&self) -> InstanceFacts<'_> {
        InstanceFacts {
            procedure: &self.procedure,
            row: &self.row,
            submitted: self.submitted,
        }
    }
}

/// An instance the caller may see, or `NOT_FOUND`.
pub(crate) async fn instance(
    shared: &Shared,
    caller: &Caller,
    id: &str,
) -> Result<LoadedInstance, ApiError> {
    let store = shared.service.store();
    // An ETS's own submissions decide what it may see: read with the instance, in one
    // statement, they also answer `submissions` without a second read.
    let (row, own) = if caller.role == Role::Ets {
        let (row, own) = store
            .instance_for_organisation(id, &caller.organisation_id)
            .await?
            .ok_or(ApiError::NotFound { what: "istanza" })?;
        (row, Some(Arc::new(own)))
    } else {
        let row = store
            .instance(id)
            .await?
            .ok_or(ApiError::NotFound { what: "istanza" })?;
        (row, None)
    };
    let submitted = own.as_ref().is_some_and(|rows| !rows.is_empty());
    let mut loaded = with_facts(shared, row, submitted).await?;
    loaded.own_submissions = own;
    authorize(caller, &Subject::Instance(loaded.facts()))?;
    Ok(loaded)
}

/// Wraps a row the caller already has facts for (no policy check: the caller of this
/// function asks the policy).
pub(crate) async fn with_facts(
    shared: &Shared,
    row: InstanceRow,
    submitted: bool,
) -> Result<LoadedInstance, ApiError> {
    let procedure = shared
        .service
        .procedure(&row.definition_id, Some(row.definition_version))
        .await?;
    Ok(LoadedInstance {
        row: Arc::new(row),
        procedure,
        submitted,
        own_submissions: None,
    })
}

/// A submission the caller may read, or `NOT_FOUND` (another ETS's submission included).
pub(crate) async fn submission(
    shared: &Shared,
    caller: &Caller,
    id: &str,
) -> Result<SubmissionRow, ApiError> {
    let row = shared
        .service
        .store()
        .submission(id)
        .await?
        .ok_or(ApiError::NotFound { what: "domanda" })?;
    authorize(caller, &Subject::Submission(&row))?;
    if caller.role == Role::Commissione {
        // Where a commissione evaluates, a proposal is for its members with a declaration.
        let loaded = instance(shared, caller, &row.instance_id).await?;
        if !super::policy::reads_proposals(caller, loaded.facts()) {
            return Err(ApiError::NotFound { what: "domanda" });
        }
    }
    Ok(row)
}
