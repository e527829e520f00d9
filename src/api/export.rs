//! The history export for accesso agli atti over GraphQL: staff export the whole history (or,
//! naming an organisation, what that third party may read); an ETS exports only what it may
//! read of an instance it takes part in — never more, whatever it asks.

use async_graphql::{Context, ID, Json, Object, SimpleObject};
use serde_json::Value;

use super::access;
use super::context::{caller, shared};
use super::error::ApiError;
use crate::export::{self, Reader};

/// An export of an instance's history.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct HistoryExport {
    /// The export (events, terms with traces, protocol numbers, deliveries).
    pub json: Json<Value>,
    /// The same, as a readable page.
    pub html: String,
    /// SHA-256 of the canonical JSON without this field (`impronta` in the JSON).
    pub sha256: String,
}

/// The export query.
#[derive(Default)]
pub(crate) struct ExportQuery;

#[Object]
impl ExportQuery {
    /// The full history of an instance for accesso agli atti. Staff get everything, or with
    /// `forOrganisation` what that third party may read (art. 24 L. 241/1990 omissions
    /// marked); anyone else gets what its own organisation may read.
    async fn history_export(
        &self,
        ctx: &Context<'_>,
        instance_id: ID,
        for_organisation: Option<ID>,
    ) -> Result<HistoryExport, ApiError> {
        let shared = shared(ctx)?;
        let caller = caller(ctx).await?;
        let loaded = access::instance(shared, &caller, instance_id.as_str()).await?;
        let organisation = if caller.role.is_staff() {
            for_organisation.map(|o| o.to_string())
        } else {
            Some(caller.organisation_id.clone())
        };
        let reader = match &organisation {
            Some(org) => Reader::ThirdParty {
                organisation_id: org,
            },
            None => Reader::Office,
        };
        let sources = export::load(
            shared.service.store(),
            instance_id.as_str(),
            loaded.procedure.title.clone(),
        )
        .await?;
        let json = export::build(&sources, reader, shared.service.now());
        let sha256 = json["impronta"].as_str().unwrap_or_default().to_string();
        Ok(HistoryExport {
            html: export::html(&json),
            json: Json(json),
            sha256,
        })
    }
}
