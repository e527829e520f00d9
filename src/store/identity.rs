//! Identity: organisations (the Ambito, its comuni, ETS), the people who act for them, and
//! their API tokens. A token is stored as the SHA-256 of its secret only: the secret is shown
//! once when created and cannot be read back.

use std::fmt;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder, Statement,
};

use super::entities::{organisation, person, token};
use super::{Error, Result, Store, from_json, instant, is_unique_violation, to_json};

/// What kind of organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrganisationKind {
    /// The Ambito territoriale (its Ufficio di Piano).
    Ambito,
    /// A comune of the Ambito.
    Comune,
    /// An ente del Terzo Settore.
    Ets,
}

impl OrganisationKind {
    /// The value in the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            OrganisationKind::Ambito => "ambito",
            OrganisationKind::Comune => "comune",
            OrganisationKind::Ets => "ets",
        }
    }

    /// Parses a kind (`ambito`, `comune`, `ets`).
    pub fn parse(text: &str) -> Option<OrganisationKind> {
        match text {
            "ambito" => Some(OrganisationKind::Ambito),
            "comune" => Some(OrganisationKind::Comune),
            "ets" => Some(OrganisationKind::Ets),
            _ => None,
        }
    }
}

impl fmt::Display for OrganisationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An organisation to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrganisation {
    /// Its id (a slug or a UUID, chosen by the caller).
    pub id: String,
    /// Its name.
    pub name: String,
    /// What it is.
    pub kind: OrganisationKind,
    /// Codice fiscale.
    pub codice_fiscale: Option<String>,
    /// RUNTS registration number (ETS).
    pub runts: Option<String>,
    /// Its PEC address (domicilio digitale), where PEC notifications go.
    pub pec: Option<String>,
    /// When it was added.
    pub at: DateTime<Utc>,
}

/// A stored organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganisationRow {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: OrganisationKind,
    /// Codice fiscale.
    pub codice_fiscale: Option<String>,
    /// RUNTS number.
    pub runts: Option<String>,
    /// PEC address.
    pub pec: Option<String>,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

/// An organisation row from its model (other store modules).
pub(super) fn organisation_row(m: organisation::Model) -> Result<OrganisationRow> {
    OrganisationRow::from_model(m)
}

impl OrganisationRow {
    fn from_model(m: organisation::Model) -> Result<OrganisationRow> {
        let kind = OrganisationKind::parse(&m.kind).ok_or_else(|| {
            Error::Corrupt(format!("organisations.kind '{}' di {}", m.kind, m.id))
        })?;
        Ok(OrganisationRow {
            id: m.id,
            name: m.name,
            kind,
            codice_fiscale: m.codice_fiscale,
            runts: m.runts,
            pec: m.pec,
            created_at: m.created_at,
        })
    }
}

/// A person to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPerson {
    /// Id (chosen by the caller).
    pub id: String,
    /// Full name.
    pub name: String,
    /// Email for notifications.
    pub email: String,
    /// The organisation they act for.
    pub organisation_id: String,
    /// Role names they may act in.
    pub roles: Vec<String>,
    /// Digest preference: `immediato` or `giornaliero`.
    pub digest: String,
    /// When they were added.
    pub at: DateTime<Utc>,
}

/// A stored person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonRow {
    /// Id.
    pub id: String,
    /// Full name.
    pub name: String,
    /// Email.
    pub email: String,
    /// Their organisation.
    pub organisation_id: String,
    /// Role names they may act in.
    pub roles: Vec<String>,
    /// Digest preference.
    pub digest: String,
    /// When they were added.
    pub created_at: DateTime<Utc>,
}

impl PersonRow {
    fn from_model(m: person::Model) -> Result<PersonRow> {
        let roles = from_json(&m.roles, format_args!("people.roles di {}", m.id))?;
        Ok(PersonRow {
            id: m.id,
            name: m.name,
            email: m.email,
            organisation_id: m.organisation_id,
            roles,
            digest: m.digest,
            created_at: m.created_at,
        })
    }
}

/// A token to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// Public id (to list and revoke it).
    pub id: String,
    /// The person it acts for.
    pub person_id: String,
    /// The one role it acts in.
    pub role: String,
    /// Hex SHA-256 of the secret.
    pub hash: String,
    /// When it was created.
    pub at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A stored token (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// Public id.
    pub id: String,
    /// The person.
    pub person_id: String,
    /// The role.
    pub role: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl TokenRow {
    fn from_model(m: token::Model) -> TokenRow {
        TokenRow {
            id: m.id,
            person_id: m.person_id,
            role: m.role,
            created_at: m.created_at,
            expires_at: m.expires_at,
            revoked_at: m.revoked_at,
        }
    }

    /// Whether it works at `now`: not revoked and not expired.
    pub fn is_valid_at(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|end| now < end)
    }
}

/// What a token hash resolves to: the token, its person and their organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The token.
    pub token: TokenRow,
    /// Its person.
    pub person: PersonRow,
    /// Their organisation.
    pub organisation: OrganisationRow,
}

impl Store {
    /// Adds an organisation; an error naming the id if it is taken.
    pub async fn add_organisation(&self, new: &NewOrganisation) -> Result<OrganisationRow> {
        insert_organisation(&self.db, new).await?;
        self.organisation(&new.id)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "organizzazione",
                id: new.id.clone(),
            })
    }

    /// One organisation.
    pub async fn organisation(&self, id: &str) -> Result<Option<OrganisationRow>> {
        organisation::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
            .map(OrganisationRow::from_model)
            .transpose()
    }

    /// Every organisation, by id.
    pub async fn organisations(&self) -> Result<Vec<OrganisationRow>> {
        organisation::Entity::find()
            .order_by_asc(organisation::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(OrganisationRow::from_model)
            .collect()
    }

    /// Adds a person; `NotFound` if the organisation does not exist.
    pub async fn add_person(&self, new: &NewPerson) -> Result<PersonRow> {
        insert_person(&self.db, new).await?;
        self.person(&new.id).await?.ok_or_else(|| Error::NotFound {
            what: "persona",
            id: new.id.clone(),
        })
    }

    /// One person.
    pub async fn person(&self, id: &str) -> Result<Option<PersonRow>> {
        person::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
            .map(PersonRow::from_model)
            .transpose()
    }

    /// Every person, by id.
    pub async fn people(&self) -> Result<Vec<PersonRow>> {
        person::Entity::find()
            .order_by_asc(person::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(PersonRow::from_model)
            .collect()
    }

    /// People of an organisation who may act in a role (notification recipients).
    pub async fn people_with_role(
        &self,
        organisation_id: Option<&str>,
        role: &str,
    ) -> Result<Vec<PersonRow>> {
        let mut query = person::Entity::find().order_by_asc(person::Column::Id);
        if let Some(org) = organisation_id {
            query = query.filter(person::Column::OrganisationId.eq(org));
        }
        let people: Vec<PersonRow> = query
            .all(&self.db)
            .await?
            .into_iter()
            .map(PersonRow::from_model)
            .collect::<Result<_>>()?;
        Ok(people
            .into_iter()
            .filter(|p| p.roles.iter().any(|r| r == role))
            .collect())
    }

    /// Stores a token; `NotFound` if the person does not exist.
    pub async fn add_token(&self, new: &NewToken) -> Result<TokenRow> {
        insert_token(&self.db, new).await?;
        token::Entity::find_by_id(new.id.clone())
            .one(&self.db)
            .await?
            .map(TokenRow::from_model)
            .ok_or_else(|| Error::NotFound {
                what: "token",
                id: new.id.clone(),
            })
    }

    /// One token (never its secret).
    pub async fn token(&self, id: &str) -> Result<Option<TokenRow>> {
        Ok(token::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
            .map(TokenRow::from_model))
    }

    /// The tokens of a person (or of everyone), newest first.
    pub async fn tokens(&self, person_id: Option<&str>) -> Result<Vec<TokenRow>> {
        let mut query = token::Entity::find()
            .order_by_desc(token::Column::CreatedAt)
            .order_by_asc(token::Column::Id);
        if let Some(person_id) = person_id {
            query = query.filter(token::Column::PersonId.eq(person_id));
        }
        Ok(query
            .all(&self.db)
            .await?
            .into_iter()
            .map(TokenRow::from_model)
            .collect())
    }

    /// Revokes a token at `at` (a revoked token stays revoked: the first instant is kept);
    /// `NotFound` if there is no such token.
    pub async fn revoke_token(&self, id: &str, at: DateTime<Utc>) -> Result<TokenRow> {
        update_revoked(&self.db, id, at).await?;
        token::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
            .map(TokenRow::from_model)
            .ok_or_else(|| Error::NotFound {
                what: "token",
                id: id.to_string(),
            })
    }

    /// The token with this hash, its person and organisation — whether or not it is still
    /// valid (the caller checks `TokenRow::is_valid_at`).
    pub async fn credential(&self, hash: &str) -> Result<Option<Credential>> {
        // One statement: every request resolves its caller with it.
        let sql = format!(
            "SELECT {}, {}, {} FROM tokens t \
             LEFT JOIN people p ON p.id = t.person_id \
             LEFT JOIN organisations o ON o.id = p.organisation_id \
             WHERE t.hash = {}",
            super::prefixed::<token::Entity>("t"),
            super::prefixed::<person::Entity>("p"),
            super::prefixed::<organisation::Entity>("o"),
            match self.backend() {
                super::Backend::Postgres => "$1",
                super::Backend::Sqlite => "?",
            }
        );
        let Some(row) = self
            .db
            .query_one_raw(Statement::from_sql_and_values(
                self.db.get_database_backend(),
                sql,
                [hash.into()],
            ))
            .await?
        else {
            return Ok(None);
        };
        let token = TokenRow::from_model(token::Model::from_query_result(&row, "t_")?);
        let person = person::Model::from_query_result_optional(&row, "p_")?
            .ok_or_else(|| {
                Error::Corrupt(format!(
                    "tokens.person_id {} del token {}",
                    token.person_id, token.id
                ))
            })
            .and_then(PersonRow::from_model)?;
        let organisation = organisation::Model::from_query_result_optional(&row, "o_")?
            .ok_or_else(|| {
                Error::Corrupt(format!(
                    "people.organisation_id {} di {}",
                    person.organisation_id, person.id
                ))
            })
            .and_then(OrganisationRow::from_model)?;
        Ok(Some(Credential {
            token,
            person,
            organisation,
        }))
    }
}

/// A unique violation on insert means the id is taken.
/// Inserts an organisation in any connection or transaction.
pub(super) async fn insert_organisation<C: ConnectionTrait>(
    conn: &C,
    new: &NewOrganisation,
) -> Result<()> {
    let row = organisation::ActiveModel {
        id: Set(new.id.clone()),
        name: Set(new.name.clone()),
        kind: Set(new.kind.as_str().to_string()),
        codice_fiscale: Set(new.codice_fiscale.clone()),
        runts: Set(new.runts.clone()),
        pec: Set(new.pec.clone()),
        created_at: Set(instant(new.at)),
    };
    organisation::Entity::insert(row)
        .exec_without_returning(conn)
        .await
        .map_err(|err| taken(err, &new.id))?;
    Ok(())
}

/// Inserts a person of an existing organisation.
pub(super) async fn insert_person<C: ConnectionTrait>(conn: &C, new: &NewPerson) -> Result<()> {
    if organisation::Entity::find_by_id(new.organisation_id.clone())
        .one(conn)
        .await?
        .is_none()
    {
        return Err(Error::NotFound {
            what: "organizzazione",
            id: new.organisation_id.clone(),
        });
    }
    let row = person::ActiveModel {
        id: Set(new.id.clone()),
        name: Set(new.name.clone()),
        email: Set(new.email.clone()),
        organisation_id: Set(new.organisation_id.clone()),
        roles: Set(to_json(&new.roles)?),
        digest: Set(new.digest.clone()),
        created_at: Set(instant(new.at)),
    };
    person::Entity::insert(row)
        .exec_without_returning(conn)
        .await
        .map_err(|err| taken(err, &new.id))?;
    Ok(())
}

/// Inserts a token of an existing person.
pub(super) async fn insert_token<C: ConnectionTrait>(conn: &C, new: &NewToken) -> Result<()> {
    if person::Entity::find_by_id(new.person_id.clone())
        .one(conn)
        .await?
        .is_none()
    {
        return Err(Error::NotFound {
            what: "persona",
            id: new.person_id.clone(),
        });
    }
    let row = token::ActiveModel {
        id: Set(new.id.clone()),
        person_id: Set(new.person_id.clone()),
        role: Set(new.role.clone()),
        hash: Set(new.hash.clone()),
        created_at: Set(instant(new.at)),
        expires_at: Set(new.expires_at.map(instant)),
        revoked_at: Set(None),
    };
    token::Entity::insert(row)
        .exec_without_returning(conn)
        .await
        .map_err(|err| taken(err, &new.id))?;
    Ok(())
}

/// Replaces a person's roles; `NotFound` when there is no such person.
pub(super) async fn update_roles<C: ConnectionTrait>(
    conn: &C,
    person_id: &str,
    roles: &[String],
) -> Result<()> {
    let res = person::Entity::update_many()
        .col_expr(person::Column::Roles, Expr::value(to_json(&roles)?))
        .filter(person::Column::Id.eq(person_id))
        .exec(conn)
        .await?;
    if res.rows_affected == 0 {
        return Err(Error::NotFound {
            what: "persona",
            id: person_id.to_string(),
        });
    }
    Ok(())
}

/// Marks a token revoked at `at` unless it already is (the first instant is kept).
pub(super) async fn update_revoked<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    at: DateTime<Utc>,
) -> Result<()> {
    token::Entity::update_many()
        .col_expr(token::Column::RevokedAt, Expr::value(instant(at)))
        .filter(token::Column::Id.eq(id))
        .filter(token::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    Ok(())
}

fn taken(err: sea_orm::DbErr, id: &str) -> Error {
    if is_unique_violation(&err) {
        Error::Database(format!("identificativo già in uso: {id}"))
    } else {
        err.into()
    }
}
