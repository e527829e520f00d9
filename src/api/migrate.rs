//! Migrating running instances to a new version of their procedure (amministratore): a dry
//! run reports, per instance, the state mapping, the variables added and dropped, the terms
//! that change, the timers armed and cancelled, and why an instance cannot move; the real run
//! moves each movable instance in its own transaction with a `migrazione` history row. The
//! instances not listed stay on their version. A real run is in the audit log.

use async_graphql::{Context, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::context::{caller, shared};
use super::error::ApiError;
use super::policy::{Subject, authorize};
use crate::engine::migrate::MigrationPlan;

/// Where a state the new version does not have goes.
#[derive(Debug, Clone, InputObject)]
pub(crate) struct StateMapping {
    /// The state in the running version.
    pub from: String,
    /// The state in the new one.
    pub to: String,
}

/// A timer a move arms.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct ArmedTimer {
    /// Its key.
    pub key: String,
    /// When it fires.
    pub at: DateTime<Utc>,
}

/// A term whose date a move changes.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct ChangedTerm {
    /// The variable.
    pub name: String,
    /// Before.
    pub before: Json<Value>,
    /// After.
    pub after: Json<Value>,
}

/// What a move does (dry run) or did to one instance.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct MigrationReport {
    /// The instance.
    pub instance_id: ID,
    /// Its version before.
    pub from_version: u32,
    /// The target version.
    pub to_version: u32,
    /// Its state before.
    pub from_state: String,
    /// Its state in the new version (null when it cannot move).
    pub to_state: Option<String>,
    /// Variables added (unset).
    pub variables_added: Vec<String>,
    /// Variables with a value that are dropped.
    pub variables_dropped: Vec<String>,
    /// Terms whose date changes.
    pub terms_changed: Vec<ChangedTerm>,
    /// Timers armed.
    pub timers_armed: Vec<ArmedTimer>,
    /// Timers cancelled.
    pub timers_cancelled: Vec<String>,
    /// A published avviso whose terms or criteria change (lex specialis).
    pub lex_specialis: bool,
    /// Why it cannot move; empty when it can.
    pub blockers: Vec<String>,
    /// Moved (false in a dry run).
    pub moved: bool,
}

impl MigrationReport {
    fn from_plan(plan: MigrationPlan, moved: bool) -> Self {
        MigrationReport {
            instance_id: ID(plan.instance_id),
            from_version: plan.from_version,
            to_version: plan.to_version,
            from_state: plan.from_state,
            to_state: plan.to_state,
            variables_added: plan.variables_added,
            variables_dropped: plan.variables_dropped,
            terms_changed: plan
                .terms_changed
                .into_iter()
                .map(|(name, before, after)| ChangedTerm {
                    name,
                    before: Json(before),
                    after: Json(after),
                })
                .collect(),
            timers_armed: plan
                .timers_armed
                .into_iter()
                .map(|(key, at)| ArmedTimer { key, at })
                .collect(),
            timers_cancelled: plan.timers_cancelled,
            lex_specialis: plan.lex_specialis,
            blockers: plan.blockers,
            moved,
        }
    }
}

/// The migration mutation.
#[derive(Default)]
pub(crate) struct MigrationMutation;

#[Object]
impl MigrationMutation {
    /// Moves the listed instances to `toVersion` of their procedure (amministratore). With
    /// `dryRun` nothing changes and the report says what would happen; otherwise each instance
    /// that can move moves in its own transaction, the others are reported and stay. A
    /// published avviso whose terms or criteria change needs `rettifica` (the act's reference).
    #[allow(clippy::too_many_arguments)]
    async fn migrate_instances(
        &self,
        ctx: &Context<'_>,
        instance_ids: Vec<ID>,
        to_version: u32,
        dry_run: bool,
        state_map: Option<Vec<StateMapping>>,
        rettifica: Option<String>,
    ) -> Result<Vec<MigrationReport>, ApiError> {
        let caller = caller(ctx).await?;
        authorize(&caller, &Subject::Administration)?;
        let service = &shared(ctx)?.service;
        let map = state_map
            .unwrap_or_default()
            .into_iter()
            .map(|m| (m.from, m.to))
            .collect();
        let actor = crate::engine::Actor {
            id: caller.person_id.clone(),
            role: caller.role.as_str().to_string(),
        };
        let mut out = Vec::new();
        for id in &instance_ids {
            let (plan, moved) = service
                .migrate(
                    id.as_str(),
                    to_version,
                    &map,
                    rettifica.as_deref(),
                    dry_run,
                    &actor,
                )
                .await?;
            out.push(MigrationReport::from_plan(plan, moved));
        }
        if !dry_run {
            let moved: Vec<&ID> = out
                .iter()
                .filter(|r| r.moved)
                .map(|r| &r.instance_id)
                .collect();
            service
                .store()
                .audited(
                    crate::store::AdminWrite::None,
                    &crate::store::NewAudit {
                        at: service.now(),
                        actor_id: caller.person_id.clone(),
                        role: caller.role.as_str().to_string(),
                        action: "migra_istanze".into(),
                        subject: format!("versione {to_version}"),
                        detail: serde_json::json!({
                            "spostate": moved.iter().map(|i| i.as_str()).collect::<Vec<_>>(),
                            "rimaste": out.iter().filter(|r| !r.moved).map(|r| r.instance_id.as_str()).collect::<Vec<_>>(),
                            "rettifica": rettifica,
                        }),
                    },
                )
                .await?;
        }
        Ok(out)
    }
}
