//! The administrative audit log (`admin_audit`): every change to people, organisations,
//! tokens and procedure definitions is written in the same transaction as the audit row that
//! records it, so neither exists without the other. The table refuses UPDATE and DELETE.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::NotSet, ActiveValue::Set, EntityTrait, QueryOrder, QuerySelect};
use serde_json::Value;

use super::entities::{admin_audit, token};
use super::identity::{
    NewOrganisation, NewPerson, NewToken, insert_organisation, insert_person, insert_token,
    update_revoked,
};
use super::{Error, Result, Store, from_json, instant, settle, to_json};

/// An administrative action to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAudit {
    /// When.
    pub at: DateTime<Utc>,
    /// Who (a person id, or `riga di comando`).
    pub actor_id: String,
    /// In what role.
    pub role: String,
    /// What (`crea_persona`, `crea_token`, `revoca_token`, `pubblica_definizione`…).
    pub action: String,
    /// On what (an id).
    pub subject: String,
    /// The details (never a secret).
    pub detail: Value,
}

/// A recorded administrative action.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    /// Its position in the log.
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor_id: String,
    /// In what role.
    pub role: String,
    /// What.
    pub action: String,
    /// On what.
    pub subject: String,
    /// The details.
    pub detail: Value,
}

/// A change the audit row goes with.
#[derive(Debug, Clone, PartialEq)]
pub enum AdminWrite<'a> {
    /// A new organisation.
    Organisation(&'a NewOrganisation),
    /// A new person.
    Person(&'a NewPerson),
    /// A new token (its hash only).
    Token(&'a NewToken),
    /// A definition version deployed (only a new one is audited: see [`Store::audited`]).
    Definition(&'a super::NewDefinition),
    /// A failed delivery re-queued (`NotFound` when there is no such failed delivery).
    Requeue {
        /// The delivery.
        id: i64,
    },
    /// A person's roles replaced.
    Roles {
        /// The person.
        person_id: &'a str,
        /// The roles.
        roles: &'a [String],
    },
    /// An organisation's PEC address set or cleared (`NotFound` for an unknown one).
    OrganisationPec {
        /// The organisation.
        id: &'a str,
        /// The address.
        pec: Option<&'a str>,
    },
    /// A calendar feed created.
    CalendarFeed(&'a super::NewCalendarFeed),
    /// A calendar feed revoked (`NotFound` when there is no such live feed).
    RevokeCalendarFeed {
        /// The feed.
        id: &'a str,
    },
    /// A token revoked.
    Revoke {
        /// The token.
        id: &'a str,
    },
    /// Nothing else to write (the action happened elsewhere, e.g. a definition stored).
    None,
}

impl Store {
    /// Writes `change` and its audit row in one transaction. A definition already deployed
    /// with the same content writes nothing (no audit row either) and says `Unchanged`.
    pub async fn audited(&self, change: AdminWrite<'_>, audit: &NewAudit) -> Result<super::Saved> {
        let (txn, _turn) = self.begin_write().await?;
        let outcome = async {
            match change {
                AdminWrite::Definition(new) => {
                    if super::definitions::save_in(&txn, new).await? == super::Saved::Unchanged {
                        return Ok(super::Saved::Unchanged);
                    }
                }
                AdminWrite::Organisation(new) => insert_organisation(&txn, new).await?,
                AdminWrite::Person(new) => insert_person(&txn, new).await?,
                AdminWrite::Token(new) => insert_token(&txn, new).await?,
                AdminWrite::Revoke { id } => {
                    if token::Entity::find_by_id(id.to_string())
                        .one(&txn)
                        .await?
                        .is_none()
                    {
                        return Err(Error::NotFound {
                            what: "token",
                            id: id.to_string(),
                        });
                    }
                    update_revoked(&txn, id, audit.at).await?;
                }
                AdminWrite::Requeue { id } => {
                    if !super::deliveries::requeue(&txn, id, audit.at).await? {
                        return Err(Error::NotFound {
                            what: "consegna fallita",
                            id: id.to_string(),
                        });
                    }
                }
                AdminWrite::Roles { person_id, roles } => {
                    super::identity::update_roles(&txn, person_id, roles).await?;
                }
                AdminWrite::OrganisationPec { id, pec } => {
                    if !super::pec::set_organisation_pec(&txn, id, pec).await? {
                        return Err(Error::NotFound {
                            what: "organizzazione",
                            id: id.to_string(),
                        });
                    }
                }
                AdminWrite::CalendarFeed(new) => super::calendar::insert_feed(&txn, new).await?,
                AdminWrite::RevokeCalendarFeed { id } => {
                    if !super::calendar::revoke_feed(&txn, id, audit.at).await? {
                        return Err(Error::NotFound {
                            what: "calendario",
                            id: id.to_string(),
                        });
                    }
                }
                AdminWrite::None => {}
            }
            admin_audit::Entity::insert(admin_audit::ActiveModel {
                id: NotSet,
                at: Set(instant(audit.at)),
                actor_id: Set(audit.actor_id.clone()),
                role: Set(audit.role.clone()),
                action: Set(audit.action.clone()),
                subject: Set(audit.subject.clone()),
                detail: Set(to_json(&audit.detail)?),
            })
            .exec_without_returning(&txn)
            .await?;
            Ok(super::Saved::Inserted)
        }
        .await;
        settle(txn, outcome).await
    }

    /// The latest `limit` administrative actions, newest first.
    pub async fn audit_log(&self, limit: u64) -> Result<Vec<AuditRow>> {
        admin_audit::Entity::find()
            .order_by_desc(admin_audit::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| {
                let detail = from_json(&m.detail, format_args!("admin_audit.detail {}", m.id))?;
                Ok(AuditRow {
                    id: m.id,
                    at: m.at,
                    actor_id: m.actor_id,
                    role: m.role,
                    action: m.action,
                    subject: m.subject,
                    detail,
                })
            })
            .collect()
    }
}
