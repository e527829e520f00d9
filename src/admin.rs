//! Administration of the Ambito: organisations, people, their roles and tokens, with the same
//! checks whether they come from the CLI or from the API, each written together with its row in
//! the append-only audit log (Garante, provvedimento 27/11/2008 on system administrators). A
//! token's secret is returned once, to show; only its hash is stored, and it is never logged.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::identity::{self, Role};
use crate::store::{
    self, AdminWrite, NewAudit, NewOrganisation, NewPerson, NewToken, OrganisationKind,
    OrganisationRow, PersonRow, Store, TokenRow,
};

/// Why an administrative action was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is wrong (the message names the field).
    #[error("{0}")]
    Invalid(String),
    /// Something named does not exist.
    #[error("{what} '{id}' inesistente")]
    NotFound {
        /// What.
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// Who acts: recorded in the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// A person id, or `riga di comando`.
    pub id: String,
    /// The role they act in.
    pub role: String,
}

impl Admin {
    /// The operator at the server's command line.
    pub fn command_line() -> Admin {
        Admin {
            id: "riga di comando".into(),
            role: Role::Amministratore.as_str().into(),
        }
    }

    fn audit(
        &self,
        at: DateTime<Utc>,
        action: &str,
        subject: &str,
        detail: serde_json::Value,
    ) -> NewAudit {
        NewAudit {
            at,
            actor_id: self.id.clone(),
            role: self.role.clone(),
            action: action.into(),
            subject: subject.into(),
            detail,
        }
    }
}

/// A new organisation, as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganisationInput {
    /// Id (stable, e.g. `ets-il-ponte`).
    pub id: String,
    /// Name.
    pub name: String,
    /// `ambito`, `comune` or `ets`.
    pub kind: String,
    /// Codice fiscale.
    pub codice_fiscale: Option<String>,
    /// RUNTS number (ETS).
    pub runts: Option<String>,
    /// PEC address (domicilio digitale): where PEC notifications go.
    pub pec: Option<String>,
}

/// A new person, as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonInput {
    /// Id (a UUID when absent).
    pub id: Option<String>,
    /// Name.
    pub name: String,
    /// Email.
    pub email: String,
    /// Their organisation.
    pub organisation_id: String,
    /// Their roles.
    pub roles: Vec<String>,
    /// `immediato` or `giornaliero`.
    pub digest: String,
}

/// A token just made: the secret, shown this once.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The stored token.
    pub token: TokenRow,
    /// The secret (`pdo_…`).
    pub secret: String,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &self.token)
            .field("secret", &"<nascosto>")
            .finish()
    }
}

fn not_blank(field: &str, value: &str) -> Result<(), Error> {
    if value.trim().is_empty() {
        return Err(Error::Invalid(format!("{field}: non può essere vuoto")));
    }
    Ok(())
}

/// ETS roles belong to ETS, mayors and technical referents to comuni, staff and the
/// administrator to the Ambito or a comune.
pub fn check_role_fits(role: Role, kind: OrganisationKind) -> Result<(), Error> {
    let fits = match role {
        Role::Ets => kind == OrganisationKind::Ets,
        Role::Sindaco | Role::Tecnico => kind == OrganisationKind::Comune,
        _ => kind != OrganisationKind::Ets,
    };
    if !fits {
        return Err(Error::Invalid(format!(
            "il ruolo '{role}' non è ammesso per un'organizzazione di tipo {kind}"
        )));
    }
    Ok(())
}

/// Adds an organisation.
///
/// # Errors
///
/// [`Error::Invalid`] for a blank id or name or an unknown kind; the store's error when the id
/// is taken.
pub async fn add_organisation(
    store: &Store,
    by: &Admin,
    input: OrganisationInput,
    now: DateTime<Utc>,
) -> Result<OrganisationRow, Error> {
    not_blank("id", &input.id)?;
    not_blank("nome", &input.name)?;
    let Some(kind) = OrganisationKind::parse(&input.kind) else {
        return Err(Error::Invalid(format!(
            "tipo di organizzazione '{}' sconosciuto (ammessi: ambito, comune, ets)",
            input.kind
        )));
    };
    let pec = input.pec.as_deref().map(pec_address).transpose()?;
    let new = NewOrganisation {
        id: input.id.trim().to_string(),
        name: input.name.trim().to_string(),
        kind,
        codice_fiscale: input.codice_fiscale,
        runts: input.runts,
        pec,
        at: now,
    };
    let audit = by.audit(
        now,
        "crea_organizzazione",
        &new.id,
        json!({ "nome": new.name, "tipo": kind.as_str(), "runts": new.runts, "pec": new.pec }),
    );
    store
        .audited(AdminWrite::Organisation(&new), &audit)
        .await?;
    store
        .organisation(&new.id)
        .await?
        .ok_or_else(|| Error::NotFound {
            what: "organizzazione",
            id: new.id.clone(),
        })
}

/// A PEC address as typed: trimmed, one address (`nome@dominio`), lower case.
fn pec_address(text: &str) -> Result<String, Error> {
    let address = text.trim().to_lowercase();
    match address.parse::<lettre::Address>() {
        Ok(_) => Ok(address),
        Err(e) => Err(Error::Invalid(format!(
            "pec: '{text}' non è un indirizzo PEC valido ({e})"
        ))),
    }
}

/// Sets or clears the PEC address (domicilio digitale) of an organisation, with its audit
/// row. Applications made before keep the address they were made with.
///
/// # Errors
///
/// [`Error::Invalid`] for an address that does not parse; [`Error::NotFound`] for an
/// unknown organisation.
pub async fn set_organisation_pec(
    store: &Store,
    by: &Admin,
    id: &str,
    pec: Option<&str>,
    now: DateTime<Utc>,
) -> Result<OrganisationRow, Error> {
    let pec = pec
        .filter(|p| !p.trim().is_empty())
        .map(pec_address)
        .transpose()?;
    let audit = by.audit(now, "pec_organizzazione", id, json!({ "pec": pec }));
    store
        .audited(
            AdminWrite::OrganisationPec {
                id,
                pec: pec.as_deref(),
            },
            &audit,
        )
        .await?;
    store
        .organisation(id)
        .await?
        .ok_or_else(|| Error::NotFound {
            what: "organizzazione",
            id: id.to_owned(),
        })
}

/// Adds a person with roles that fit their organisation.
///
/// # Errors
///
/// [`Error::Invalid`] for an unknown role or digest, a role that does not fit the
/// organisation, a blank name or an email without `@`; [`Error::NotFound`] for an unknown
/// organisation.
pub async fn add_person(
    store: &Store,
    by: &Admin,
    input: PersonInput,
    now: DateTime<Utc>,
) -> Result<PersonRow, Error> {
    not_blank("nome", &input.name)?;
    if !input.email.contains('@') {
        return Err(Error::Invalid(format!(
            "email: '{}' non è un indirizzo email",
            input.email
        )));
    }
    if input.roles.is_empty() {
        return Err(Error::Invalid("ruoli: almeno uno".into()));
    }
    let roles = input
        .roles
        .iter()
        .map(|r| r.parse::<Role>().map_err(|e| Error::Invalid(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    if !matches!(input.digest.as_str(), "immediato" | "giornaliero") {
        return Err(Error::Invalid(format!(
            "preferenza '{}' sconosciuta (ammesse: immediato, giornaliero)",
            input.digest
        )));
    }
    let organisation = store
        .organisation(&input.organisation_id)
        .await?
        .ok_or_else(|| Error::NotFound {
            what: "organizzazione",
            id: input.organisation_id.clone(),
        })?;
    for role in &roles {
        check_role_fits(*role, organisation.kind)?;
    }
    let new = NewPerson {
        id: input
            .id
            .filter(|id| !id.trim().is_empty())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        name: input.name.trim().to_string(),
        email: input.email.trim().to_string(),
        organisation_id: organisation.id.clone(),
        roles: roles.iter().map(|r| r.as_str().to_string()).collect(),
        digest: input.digest,
        at: now,
    };
    let audit = by.audit(
        now,
        "crea_persona",
        &new.id,
        json!({ "nome": new.name, "organizzazione": new.organisation_id, "ruoli": new.roles }),
    );
    store.audited(AdminWrite::Person(&new), &audit).await?;
    store.person(&new.id).await?.ok_or_else(|| Error::NotFound {
        what: "persona",
        id: new.id.clone(),
    })
}

/// Issues a token for a person in one of their roles; the secret is returned once.
///
/// # Errors
///
/// [`Error::NotFound`] for an unknown person; [`Error::Invalid`] for a role they do not have
/// or an expiry of zero days.
pub async fn create_token(
    store: &Store,
    by: &Admin,
    person_id: &str,
    role: &str,
    expires_in_days: Option<u32>,
    now: DateTime<Utc>,
) -> Result<IssuedToken, Error> {
    let role: Role = role
        .parse()
        .map_err(|e: identity::UnknownRole| Error::Invalid(e.to_string()))?;
    let who = store
        .person(person_id)
        .await?
        .ok_or_else(|| Error::NotFound {
            what: "persona",
            id: person_id.to_string(),
        })?;
    if !who.roles.iter().any(|r| r == role.as_str()) {
        return Err(Error::Invalid(format!(
            "{} non ha il ruolo '{role}' (ruoli: {})",
            who.name,
            who.roles.join(", ")
        )));
    }
    if expires_in_days == Some(0) {
        return Err(Error::Invalid(
            "scadenza: almeno un giorno (senza scadenza: ometterla)".into(),
        ));
    }
    let expires_at = expires_in_days.map(|d| now + Duration::days(i64::from(d)));
    let secret = identity::new_secret();
    let new = NewToken {
        id: identity::new_token_id(),
        person_id: who.id.clone(),
        role: role.as_str().to_string(),
        hash: secret.hash,
        at: now,
        expires_at,
    };
    let audit = by.audit(
        now,
        "crea_token",
        &new.id,
        json!({ "persona": who.id, "ruolo": role.as_str(), "scade": expires_at }),
    );
    store.audited(AdminWrite::Token(&new), &audit).await?;
    let token = store.token(&new.id).await?.ok_or_else(|| Error::NotFound {
        what: "token",
        id: new.id.clone(),
    })?;
    Ok(IssuedToken {
        token,
        secret: secret.secret,
    })
}

/// Revokes a token at once (the next request with it is refused; an open WebSocket is
/// closed by its watchdog).
///
/// # Errors
///
/// [`Error::NotFound`] for an unknown token.
pub async fn revoke_token(
    store: &Store,
    by: &Admin,
    id: &str,
    now: DateTime<Utc>,
) -> Result<TokenRow, Error> {
    let audit = by.audit(now, "revoca_token", id, json!({}));
    match store.audited(AdminWrite::Revoke { id }, &audit).await {
        Ok(_) => {}
        Err(store::Error::NotFound { .. }) => {
            return Err(Error::NotFound {
                what: "token",
                id: id.to_string(),
            });
        }
        Err(e) => return Err(e.into()),
    }
    store.token(id).await?.ok_or_else(|| Error::NotFound {
        what: "token",
        id: id.to_string(),
    })
}

/// What a signed-in representative of an ETS gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Representation {
    /// First time: recorded, waiting for the office to confirm that the person represents
    /// the ETS; no token yet.
    Pending(PersonRow),
    /// Confirmed earlier: a token for the ETS's client, shown once.
    Granted(PersonRow, IssuedToken),
}

/// The days a token obtained by signing in lasts.
pub const SIGNED_IN_TOKEN_DAYS: u32 = 90;

/// An ETS's legal representative signed in through OpenID Connect as `identity`, asking to act
/// for `organisation_id`. The first time the request is recorded (a person of that ETS with no
/// role yet) for the office to confirm; once confirmed, every sign-in issues a token in the
/// role `ets`, valid for 90 days. Both are in the audit log.
///
/// # Errors
///
/// [`Error::NotFound`] for an unknown organisation; [`Error::Invalid`] when it is not an ETS.
pub async fn sign_in_representative(
    store: &Store,
    organisation_id: &str,
    identity: &identity::oidc::Identity,
    now: DateTime<Utc>,
) -> Result<Representation, Error> {
    let organisation =
        store
            .organisation(organisation_id)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "organizzazione",
                id: organisation_id.to_string(),
            })?;
    if organisation.kind != OrganisationKind::Ets {
        return Err(Error::Invalid(format!(
            "{} non è un ente del Terzo Settore: l'accesso con identità digitale è per i rappresentanti degli ETS",
            organisation.name
        )));
    }
    let person_id = format!("{}:{}", organisation.id, identity.subject);
    let by = Admin {
        id: person_id.clone(),
        role: Role::Ets.as_str().into(),
    };
    match store.person(&person_id).await? {
        None => {
            let new = NewPerson {
                id: person_id.clone(),
                name: identity.name.clone(),
                email: identity.email.clone().unwrap_or_default(),
                organisation_id: organisation.id.clone(),
                roles: Vec::new(),
                digest: "immediato".into(),
                at: now,
            };
            let audit = by.audit(
                now,
                "richiesta_rappresentanza",
                &person_id,
                json!({ "ente": organisation.id, "nome": identity.name }),
            );
            store.audited(AdminWrite::Person(&new), &audit).await?;
            let person = store
                .person(&person_id)
                .await?
                .ok_or_else(|| Error::NotFound {
                    what: "persona",
                    id: person_id.clone(),
                })?;
            Ok(Representation::Pending(person))
        }
        Some(person) if !person.roles.iter().any(|r| r == Role::Ets.as_str()) => {
            Ok(Representation::Pending(person))
        }
        Some(person) => {
            let issued = create_token(
                store,
                &by,
                &person.id,
                Role::Ets.as_str(),
                Some(SIGNED_IN_TOKEN_DAYS),
                now,
            )
            .await?;
            Ok(Representation::Granted(person, issued))
        }
    }
}

/// The office confirms that a person who signed in represents their ETS: they get the role
/// `ets` (and tokens at their next sign-in).
///
/// # Errors
///
/// [`Error::NotFound`] for an unknown person; [`Error::Invalid`] for a person not of an ETS.
pub async fn confirm_representative(
    store: &Store,
    by: &Admin,
    person_id: &str,
    now: DateTime<Utc>,
) -> Result<PersonRow, Error> {
    let person = store
        .person(person_id)
        .await?
        .ok_or_else(|| Error::NotFound {
            what: "persona",
            id: person_id.to_string(),
        })?;
    let organisation = store
        .organisation(&person.organisation_id)
        .await?
        .ok_or_else(|| Error::NotFound {
            what: "organizzazione",
            id: person.organisation_id.clone(),
        })?;
    if organisation.kind != OrganisationKind::Ets {
        return Err(Error::Invalid(format!(
            "{} non è di un ETS: si conferma solo il rappresentante di un ente del Terzo Settore",
            person.name
        )));
    }
    let roles = vec![Role::Ets.as_str().to_string()];
    let audit = by.audit(
        now,
        "conferma_rappresentante",
        person_id,
        json!({ "ente": organisation.id, "nome": person.name }),
    );
    store
        .audited(
            AdminWrite::Roles {
                person_id,
                roles: &roles,
            },
            &audit,
        )
        .await?;
    store
        .person(person_id)
        .await?
        .ok_or_else(|| Error::NotFound {
            what: "persona",
            id: person_id.to_string(),
        })
}

/// A calendar feed just created: its row and its URL's secret (shown once).
#[derive(Debug, Clone)]
pub struct IssuedFeed {
    /// The feed.
    pub feed: crate::store::CalendarFeedRow,
    /// The secret in its URL (`/calendario/SECRET.ics`); only its hash is stored.
    pub secret: String,
}

/// Creates a calendar feed for `person_id`, with its audit row.
///
/// # Errors
///
/// [`Error::NotFound`] for an unknown person.
pub async fn create_calendar_feed(
    store: &Store,
    by: &Admin,
    person_id: &str,
    now: DateTime<Utc>,
) -> Result<IssuedFeed, Error> {
    let who = store
        .person(person_id)
        .await?
        .ok_or_else(|| Error::NotFound {
            what: "persona",
            id: person_id.to_string(),
        })?;
    let secret = identity::new_secret();
    let new = crate::store::NewCalendarFeed {
        id: uuid::Uuid::new_v4().to_string(),
        person_id: who.id.clone(),
        hash: secret.hash,
        at: now,
    };
    let audit = by.audit(
        now,
        "crea_calendario",
        &new.id,
        json!({ "persona": who.id }),
    );
    store
        .audited(AdminWrite::CalendarFeed(&new), &audit)
        .await?;
    let feed = store
        .calendar_feed(&new.id)
        .await?
        .ok_or_else(|| Error::NotFound {
            what: "calendario",
            id: new.id.clone(),
        })?;
    Ok(IssuedFeed {
        feed,
        secret: secret.secret,
    })
}

/// Revokes a calendar feed, with its audit row: its URL answers 404 from now on.
///
/// # Errors
///
/// [`Error::NotFound`] when there is no such live feed.
pub async fn revoke_calendar_feed(
    store: &Store,
    by: &Admin,
    id: &str,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let audit = by.audit(now, "revoca_calendario", id, json!({}));
    store
        .audited(AdminWrite::RevokeCalendarFeed { id }, &audit)
        .await?;
    Ok(())
}
