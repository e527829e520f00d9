//! Who a notification (or an act registered as outgoing) is for: the people with a role —
//! for `ets`, only the organisations that submitted to the instance or that it names as
//! parties, and never every ETS when the procedure is not a public notice. One recipient per
//! address.

use std::collections::BTreeSet;

use lettre::Address;
use lettre::message::Mailbox;
use tracing::warn;

use crate::scheduler::DispatchError;
use crate::service::Service;
use crate::store::{self, PersonRow, SubmissionFilter};

/// The role whose recipients are narrowed to the organisations concerned.
pub(crate) const ETS_ROLE: &str = "ets";
/// The digest preference that holds non-urgent messages for the riepilogo.
const DAILY_DIGEST: &str = "giornaliero";

/// One recipient.
#[derive(Debug, Clone)]
pub struct Recipient {
    /// The person, when resolved from one.
    pub person_id: Option<String>,
    /// Their organisation, when resolved from a person.
    pub organisation_id: Option<String>,
    /// Their name.
    pub name: String,
    /// Their address.
    pub email: String,
    /// Prefers the daily digest for non-urgent messages.
    pub digest: bool,
}

impl Recipient {
    /// The recipient a person is.
    pub fn from_person(person: PersonRow) -> Recipient {
        Recipient {
            digest: person.digest == DAILY_DIGEST,
            person_id: Some(person.id),
            organisation_id: Some(person.organisation_id),
            name: person.name,
            email: person.email.trim().to_owned(),
        }
    }

    /// The person id, or the organisation for a PEC, or the address: the delivery's key.
    pub fn key(&self) -> &str {
        self.person_id
            .as_deref()
            .or(self.organisation_id.as_deref())
            .unwrap_or(&self.email)
    }

    /// `Name <address>`, quoted as needed; the bare text when the address does not parse
    /// (the send then fails permanently and the delivery shows why).
    pub fn mailbox(&self) -> String {
        match self.email.parse::<Address>() {
            Ok(address) => Mailbox::new(Some(self.name.clone()), address).to_string(),
            Err(_) => self.email.clone(),
        }
    }

    /// The part of the address after `@`: the only recipient detail logs may show.
    pub fn domain(&self) -> &str {
        self.email
            .rsplit_once('@')
            .map_or("?", |(_, domain)| domain)
    }
}

/// Which store errors are worth retrying.
pub(crate) fn store_failure(error: store::Error) -> DispatchError {
    match error {
        store::Error::Busy | store::Error::Database(_) | store::Error::Conflict { .. } => {
            DispatchError::Transient(error.to_string())
        }
        other => DispatchError::Permanent(other.to_string()),
    }
}

/// Who a message or an act is for.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    /// The role whose people receive it.
    pub role: &'a str,
    /// Only the people of these organisations (a participant's capofila, a parties variable).
    pub organisations: Option<&'a [String]>,
    /// Every person with the role, whoever applied (what is published).
    pub public: bool,
}

/// People with `role`; for `ets`, only the organisations concerned by `instance_id` (see the
/// module). One recipient per address.
pub async fn of_role(
    service: &Service,
    instance_id: Option<&str>,
    role: &str,
) -> Result<Vec<Recipient>, DispatchError> {
    let who = Who {
        role,
        organisations: None,
        public: false,
    };
    resolve(service, instance_id, &who).await
}

/// The people a message or an act is for: with an organisations list, exactly their people
/// with the role; `public`, every person with the role; else as [`of_role`].
pub async fn resolve(
    service: &Service,
    instance_id: Option<&str>,
    who: &Who<'_>,
) -> Result<Vec<Recipient>, DispatchError> {
    let store = service.store();
    let role = who.role;
    // No role with a list of organisations: their people, whatever their role.
    let mut people = if role.is_empty() && who.organisations.is_some() {
        store.people().await.map_err(store_failure)?
    } else {
        store
            .people_with_role(None, role)
            .await
            .map_err(store_failure)?
    };
    if let Some(organisations) = who.organisations {
        people.retain(|person| organisations.contains(&person.organisation_id));
    } else if role == ETS_ROLE
        && !who.public
        && let Some(instance_id) = instance_id
    {
        let submitted: BTreeSet<String> = store
            .submissions(&SubmissionFilter {
                instance_id: Some(instance_id.to_owned()),
                organisation_id: None,
            })
            .await
            .map_err(store_failure)?
            .into_iter()
            .map(|submission| submission.organisation_id)
            .collect();
        let parties = parties(service, instance_id).await?;
        let concerned: BTreeSet<String> = submitted.union(&parties.listed).cloned().collect();
        if !concerned.is_empty() {
            people.retain(|person| concerned.contains(&person.organisation_id));
        } else if !parties.public_notice {
            // Never broadcast to every ETS what concerns some of them: a procedure that is
            // not a public notice must name its parties.
            return Err(DispatchError::Permanent(format!(
                "nessun ETS destinatario per il ruolo '{role}': la procedura non è un avviso pubblico e non indica le parti (variabile di tipo parties)"
            )));
        }
    }
    let mut seen = BTreeSet::new();
    let mut recipients = Vec::with_capacity(people.len());
    for person in people {
        if person.email.trim().is_empty() {
            warn!(person = %person.id, "persona senza indirizzo email: esclusa dai destinatari");
            continue;
        }
        if seen.insert(person.email.trim().to_lowercase()) {
            recipients.push(Recipient::from_person(person));
        }
    }
    Ok(recipients)
}

/// Who an instance concerns among the ETS.
#[derive(Debug, Default)]
struct Parties {
    /// Organisation ids listed in the instance's `parties` variables.
    listed: BTreeSet<String>,
    /// The procedure is a public notice (it takes submissions).
    public_notice: bool,
}

/// The organisations an instance names in its `parties` variables, and whether its procedure
/// is a public notice (it takes submissions), which may address every ETS.
async fn parties(service: &Service, instance_id: &str) -> Result<Parties, DispatchError> {
    let store = service.store();
    let Some(row) = store.instance(instance_id).await.map_err(store_failure)? else {
        return Ok(Parties::default());
    };
    let procedure = service
        .procedure(&row.definition_id, Some(row.definition_version))
        .await
        .map_err(|e| DispatchError::Transient(e.to_string()))?;
    let mut listed = BTreeSet::new();
    for var in procedure
        .variables
        .values()
        .filter(|v| v.kind == crate::definition::VarType::Parties)
    {
        for party in row
            .data
            .variables
            .get(var.name.as_str())
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            let id = party
                .as_str()
                .or_else(|| party.get("id").and_then(|id| id.as_str()));
            if let Some(id) = id {
                listed.insert(id.to_string());
            }
        }
    }
    Ok(Parties {
        listed,
        public_notice: procedure.submissions.is_some(),
    })
}

/// The organisations of `people`, each once, at its PEC address: a PEC goes to the
/// organisation's domicilio digitale, not to a person. An organisation without one is kept
/// with an empty address, so that its delivery fails visibly and the office is alerted.
pub async fn pec_addresses(
    service: &Service,
    people: Vec<Recipient>,
) -> Result<Vec<Recipient>, DispatchError> {
    let store = service.store();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for person in people {
        let Some(organisation_id) = person.organisation_id.clone() else {
            continue;
        };
        if !seen.insert(organisation_id.clone()) {
            continue;
        }
        let organisation = store
            .organisation(&organisation_id)
            .await
            .map_err(store_failure)?;
        let (name, pec) =
            organisation.map_or_else(|| (organisation_id.clone(), None), |o| (o.name, o.pec));
        out.push(Recipient {
            person_id: None,
            organisation_id: Some(organisation_id),
            name,
            email: pec.map(|p| p.trim().to_owned()).unwrap_or_default(),
            digest: false,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recipient_mailbox_is_quoted_and_a_bad_address_passes_through() {
        let recipient = Recipient {
            person_id: Some("p1".to_owned()),
            organisation_id: None,
            name: "Rossi, Anna".to_owned(),
            email: "anna@comune.example.it".to_owned(),
            digest: false,
        };
        assert_eq!(
            recipient.mailbox(),
            "\"Rossi, Anna\" <anna@comune.example.it>"
        );
        let broken = Recipient {
            email: "non un indirizzo".to_owned(),
            ..recipient
        };
        assert_eq!(broken.mailbox(), "non un indirizzo");
    }
}
