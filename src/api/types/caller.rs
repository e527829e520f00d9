//! `Me`: who the token says the caller is, and organisation references.

use async_graphql::{ID, SimpleObject};

use crate::api::policy::Caller;

/// The caller.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct Me {
    /// Person id.
    pub person_id: ID,
    /// Person name.
    pub person_name: String,
    /// The organisation acted for.
    pub organisation: OrganisationRef,
    /// The role the token acts in.
    pub role: String,
    /// The token's public id.
    pub token_id: String,
}

impl From<&Caller> for Me {
    fn from(c: &Caller) -> Me {
        Me {
            person_id: ID(c.person_id.clone()),
            person_name: c.person_name.clone(),
            organisation: OrganisationRef {
                id: ID(c.organisation_id.clone()),
                name: c.organisation_name.clone(),
            },
            role: c.role.as_str().to_string(),
            token_id: c.token_id.clone(),
        }
    }
}

/// An organisation, by id and name.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct OrganisationRef {
    /// Id.
    pub id: ID,
    /// Name.
    pub name: String,
}
