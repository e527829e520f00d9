//! Administration over GraphQL, for the `amministratore` role only: organisations, people and
//! their roles, tokens (the secret shown once; a revocation takes effect at once), and the
//! append-only audit log of every such action. The checks are the CLI's (`crate::admin`).

use async_graphql::{Context, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::context::{caller, shared};
use super::error::ApiError;
use super::policy::{Caller, Subject, authorize};
use crate::admin::{self, Admin};
use crate::store::{OrganisationRow, PersonRow, TokenRow};

/// The most audit rows one query returns.
const MAX_AUDIT_ROWS: u64 = 500;

impl From<admin::Error> for ApiError {
    fn from(e: admin::Error) -> Self {
        match e {
            admin::Error::Invalid(message) => ApiError::BadUserInput {
                message,
                field: None,
            },
            admin::Error::NotFound { what, .. } => ApiError::NotFound { what },
            admin::Error::Store(crate::store::Error::Database(message))
                if message.starts_with("identificativo già in uso") =>
            {
                ApiError::Conflict(message)
            }
            admin::Error::Store(e) => e.into(),
        }
    }
}

/// The administrator calling, or `FORBIDDEN`.
async fn administrator(ctx: &Context<'_>) -> Result<(std::sync::Arc<Caller>, Admin), ApiError> {
    let caller = caller(ctx).await?;
    authorize(&caller, &Subject::Administration)?;
    let admin = Admin {
        id: caller.person_id.clone(),
        role: caller.role.as_str().to_string(),
    };
    Ok((caller, admin))
}

/// An organisation.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct Organisation {
    /// Id.
    pub id: ID,
    /// Name.
    pub name: String,
    /// `ambito`, `comune` or `ets`.
    pub kind: String,
    /// Codice fiscale.
    pub codice_fiscale: Option<String>,
    /// RUNTS number.
    pub runts: Option<String>,
    /// PEC address (domicilio digitale).
    pub pec: Option<String>,
}

impl From<OrganisationRow> for Organisation {
    fn from(o: OrganisationRow) -> Self {
        Organisation {
            id: ID(o.id),
            name: o.name,
            kind: o.kind.as_str().to_string(),
            codice_fiscale: o.codice_fiscale,
            runts: o.runts,
            pec: o.pec,
        }
    }
}

/// A person who may act for an organisation.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct Person {
    /// Id.
    pub id: ID,
    /// Name.
    pub name: String,
    /// Email.
    pub email: String,
    /// Organisation.
    pub organisation_id: ID,
    /// Roles.
    pub roles: Vec<String>,
    /// `immediato` or `giornaliero`.
    pub digest: String,
}

impl From<PersonRow> for Person {
    fn from(p: PersonRow) -> Self {
        Person {
            id: ID(p.id),
            name: p.name,
            email: p.email,
            organisation_id: ID(p.organisation_id),
            roles: p.roles,
            digest: p.digest,
        }
    }
}

/// A token (never its secret).
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct Token {
    /// Id (to revoke it).
    pub id: ID,
    /// Its person.
    pub person_id: ID,
    /// The role it acts in.
    pub role: String,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<TokenRow> for Token {
    fn from(t: TokenRow) -> Self {
        Token {
            id: ID(t.id),
            person_id: ID(t.person_id),
            role: t.role,
            created_at: t.created_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
        }
    }
}

/// A token just issued: `secret` is shown this once and cannot be read again.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct IssuedToken {
    /// The token.
    pub token: Token,
    /// The secret for `Authorization: Bearer …`.
    pub secret: String,
}

/// One administrative action in the audit log.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct AuditEntry {
    /// Position in the log.
    pub id: ID,
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor_id: String,
    /// In what role.
    pub role: String,
    /// What (`crea_persona`, `crea_token`, `revoca_token`, `pubblica_definizione`…).
    pub action: String,
    /// On what.
    pub subject: String,
    /// Details (never a secret).
    pub detail: Json<Value>,
}

/// A new organisation.
#[derive(Debug, Clone, InputObject)]
pub(crate) struct OrganisationInput {
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
    /// PEC address (domicilio digitale), where PEC notifications go.
    pub pec: Option<String>,
}

/// A new person.
#[derive(Debug, Clone, InputObject)]
pub(crate) struct PersonInput {
    /// Id (a UUID when omitted).
    pub id: Option<String>,
    /// Name.
    pub name: String,
    /// Email.
    pub email: String,
    /// Their organisation.
    pub organisation_id: ID,
    /// Their roles (each must fit the organisation's kind).
    pub roles: Vec<String>,
    /// `immediato` (default) or `giornaliero`.
    pub digest: Option<String>,
}

/// The administrator's queries.
#[derive(Default)]
pub(crate) struct AdminQuery;

#[Object]
impl AdminQuery {
    /// Every organisation (amministratore).
    async fn organisations(&self, ctx: &Context<'_>) -> Result<Vec<Organisation>, ApiError> {
        administrator(ctx).await?;
        let rows = shared(ctx)?.service.store().organisations().await?;
        Ok(rows.into_iter().map(Organisation::from).collect())
    }

    /// Every person (amministratore).
    async fn people(&self, ctx: &Context<'_>) -> Result<Vec<Person>, ApiError> {
        administrator(ctx).await?;
        let rows = shared(ctx)?.service.store().people().await?;
        Ok(rows.into_iter().map(Person::from).collect())
    }

    /// People who signed in for an ETS and wait for the office to confirm them (Ufficio di
    /// Piano, amministratore).
    async fn pending_representatives(&self, ctx: &Context<'_>) -> Result<Vec<Person>, ApiError> {
        let caller = caller(ctx).await?;
        if !matches!(
            caller.role,
            crate::identity::Role::UfficioDiPiano | crate::identity::Role::Amministratore
        ) {
            return Err(ApiError::Forbidden(
                "le richieste di rappresentanza sono lette dall'Ufficio di Piano o dall'amministratore".into(),
            ));
        }
        let store = shared(ctx)?.service.store();
        let ets: std::collections::BTreeSet<String> = store
            .organisations()
            .await?
            .into_iter()
            .filter(|o| o.kind == crate::store::OrganisationKind::Ets)
            .map(|o| o.id)
            .collect();
        Ok(store
            .people()
            .await?
            .into_iter()
            .filter(|p| p.roles.is_empty() && ets.contains(&p.organisation_id))
            .map(Person::from)
            .collect())
    }

    /// The tokens of a person, or of everyone (amministratore); never a secret.
    async fn tokens(
        &self,
        ctx: &Context<'_>,
        person_id: Option<ID>,
    ) -> Result<Vec<Token>, ApiError> {
        administrator(ctx).await?;
        let rows = shared(ctx)?
            .service
            .store()
            .tokens(person_id.as_ref().map(|p| p.as_str()))
            .await?;
        Ok(rows.into_iter().map(Token::from).collect())
    }

    /// The latest administrative actions, newest first (amministratore; at most 500).
    async fn admin_audit(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 100)] limit: u32,
    ) -> Result<Vec<AuditEntry>, ApiError> {
        administrator(ctx).await?;
        let rows = shared(ctx)?
            .service
            .store()
            .audit_log(u64::from(limit).min(MAX_AUDIT_ROWS))
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| AuditEntry {
                id: ID(r.id.to_string()),
                at: r.at,
                actor_id: r.actor_id,
                role: r.role,
                action: r.action,
                subject: r.subject,
                detail: Json(r.detail),
            })
            .collect())
    }
}

/// The administrator's mutations.
#[derive(Default)]
pub(crate) struct AdminMutation;

#[Object]
impl AdminMutation {
    /// Adds an organisation (amministratore).
    async fn create_organisation(
        &self,
        ctx: &Context<'_>,
        input: OrganisationInput,
    ) -> Result<Organisation, ApiError> {
        let (_, by) = administrator(ctx).await?;
        let service = &shared(ctx)?.service;
        let row = admin::add_organisation(
            service.store(),
            &by,
            admin::OrganisationInput {
                id: input.id,
                name: input.name,
                kind: input.kind,
                codice_fiscale: input.codice_fiscale,
                runts: input.runts,
                pec: input.pec,
            },
            service.now(),
        )
        .await?;
        Ok(row.into())
    }

    /// Sets, or with `null` clears, an organisation's PEC address (amministratore).
    async fn set_organisation_pec(
        &self,
        ctx: &Context<'_>,
        id: ID,
        pec: Option<String>,
    ) -> Result<Organisation, ApiError> {
        let (_, by) = administrator(ctx).await?;
        let service = &shared(ctx)?.service;
        let row = admin::set_organisation_pec(
            service.store(),
            &by,
            id.as_str(),
            pec.as_deref(),
            service.now(),
        )
        .await?;
        Ok(row.into())
    }

    /// Adds a person with their roles (amministratore): each role must fit the organisation
    /// (an `ets` role in an ETS, `sindaco` and `tecnico` in a comune, staff elsewhere).
    async fn create_person(
        &self,
        ctx: &Context<'_>,
        input: PersonInput,
    ) -> Result<Person, ApiError> {
        let (_, by) = administrator(ctx).await?;
        let service = &shared(ctx)?.service;
        let row = admin::add_person(
            service.store(),
            &by,
            admin::PersonInput {
                id: input.id,
                name: input.name,
                email: input.email,
                organisation_id: input.organisation_id.to_string(),
                roles: input.roles,
                digest: input.digest.unwrap_or_else(|| "immediato".into()),
            },
            service.now(),
        )
        .await?;
        Ok(row.into())
    }

    /// Issues a token for a person in one of their roles (amministratore). The secret is in
    /// this answer only.
    async fn create_token(
        &self,
        ctx: &Context<'_>,
        person_id: ID,
        role: String,
        expires_in_days: Option<u32>,
    ) -> Result<IssuedToken, ApiError> {
        let (_, by) = administrator(ctx).await?;
        let service = &shared(ctx)?.service;
        let issued = admin::create_token(
            service.store(),
            &by,
            &person_id,
            &role,
            expires_in_days,
            service.now(),
        )
        .await?;
        Ok(IssuedToken {
            token: issued.token.clone().into(),
            secret: issued.secret.clone(),
        })
    }

    /// Confirms that a person who signed in with a digital identity represents their ETS
    /// (Ufficio di Piano, amministratore): at their next sign-in they receive a token.
    async fn confirm_representative(
        &self,
        ctx: &Context<'_>,
        person_id: ID,
    ) -> Result<Person, ApiError> {
        let caller = caller(ctx).await?;
        if !matches!(
            caller.role,
            crate::identity::Role::UfficioDiPiano | crate::identity::Role::Amministratore
        ) {
            return Err(ApiError::Forbidden(
                "il rappresentante di un ETS è confermato dall'Ufficio di Piano o dall'amministratore".into(),
            ));
        }
        let service = &shared(ctx)?.service;
        let by = Admin {
            id: caller.person_id.clone(),
            role: caller.role.as_str().to_string(),
        };
        let row =
            admin::confirm_representative(service.store(), &by, &person_id, service.now()).await?;
        Ok(row.into())
    }

    /// Revokes a token at once (amministratore).
    async fn revoke_token(&self, ctx: &Context<'_>, id: ID) -> Result<Token, ApiError> {
        let (_, by) = administrator(ctx).await?;
        let service = &shared(ctx)?.service;
        let row = admin::revoke_token(service.store(), &by, &id, service.now()).await?;
        Ok(row.into())
    }
}

/// A problem in a definition, where it is.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct DefinitionDiagnostic {
    /// The name the definition was given.
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: u64,
    /// 1-based column (0 when unknown).
    pub column: u64,
    /// What is wrong, in Italian.
    pub message: String,
}

/// A deployed definition version.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct Deployed {
    /// Procedure id.
    pub id: String,
    /// Version.
    pub version: u32,
    /// Title.
    pub title: String,
    /// False when the same content was already deployed (nothing changed).
    pub inserted: bool,
    /// The procedure as a Mermaid state diagram.
    pub mermaid: String,
}

/// Validates a definition text as `procedo validate` would, reading its files from the
/// server's workflows folder; `name` names it in the diagnostics.
async fn check_definition(
    ctx: &Context<'_>,
    name: &str,
    yaml: &str,
) -> Result<Result<crate::catalog::Loaded, Vec<crate::definition::Diagnostic>>, ApiError> {
    let shared = shared(ctx)?;
    let dir = shared.workflows.clone().unwrap_or_default();
    let templates = match crate::catalog::templates_dir(std::slice::from_ref(&dir)) {
        Some(t) => crate::notify::Templates::load_dir(&t),
        None => crate::notify::Templates::builtin(),
    }
    .map_err(|_| ApiError::internal("i modelli delle notifiche del server non sono validi"))?;
    let names = crate::catalog::template_names(&templates);
    let ids: std::collections::BTreeSet<String> = shared
        .service
        .store()
        .definitions()
        .await?
        .into_iter()
        .map(|d| d.id)
        .collect();
    let name = name.to_string();
    let yaml = yaml.to_string();
    // Validation reads files: off the async workers.
    tokio::task::spawn_blocking(move || {
        crate::catalog::load_source(&dir, &name, &yaml, Some(&names), &ids)
    })
    .await
    .map_err(|e| ApiError::internal(format!("validazione interrotta: {e}")))
}

/// The longest definition text accepted, in bytes.
const MAX_DEFINITION_BYTES: usize = 512 * 1024;

fn definition_name(name: Option<String>) -> String {
    name.filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "definizione.yaml".into())
}

fn size_checked(yaml: &str) -> Result<(), ApiError> {
    if yaml.len() > MAX_DEFINITION_BYTES {
        return Err(ApiError::BadUserInput {
            message: format!("la definizione supera {} KiB", MAX_DEFINITION_BYTES / 1024),
            field: Some("yaml".into()),
        });
    }
    Ok(())
}

/// Definitions through the API.
#[derive(Default)]
pub(crate) struct DefinitionMutation;

#[Object]
impl DefinitionMutation {
    /// Checks a definition without deploying it: the same diagnostics as `procedo validate`
    /// (file:line:column, Italian); an empty list when it is valid. Staff and the
    /// amministratore.
    async fn validate_definition(
        &self,
        ctx: &Context<'_>,
        yaml: String,
        name: Option<String>,
    ) -> Result<Vec<DefinitionDiagnostic>, ApiError> {
        let caller = caller(ctx).await?;
        if !(caller.role.is_staff() || caller.role == crate::identity::Role::Amministratore) {
            return Err(ApiError::Forbidden(
                "le definizioni sono verificate dall'Ufficio di Piano e dall'amministratore".into(),
            ));
        }
        size_checked(&yaml)?;
        Ok(
            match check_definition(ctx, &definition_name(name), &yaml).await? {
                Ok(_) => Vec::new(),
                Err(diagnostics) => diagnostics
                    .into_iter()
                    .map(|d| DefinitionDiagnostic {
                        file: d.file,
                        line: d.line,
                        column: d.column,
                        message: d.message,
                    })
                    .collect(),
            },
        )
    }

    /// Deploys a new version of a procedure (amministratore): validated as `procedo
    /// validate` does, then stored; running instances stay on their version. The same id and
    /// version with another content is refused (`CONFLICT`): a change is a new version.
    async fn deploy_definition(
        &self,
        ctx: &Context<'_>,
        yaml: String,
        name: Option<String>,
    ) -> Result<Deployed, ApiError> {
        let (_, by) = administrator(ctx).await?;
        size_checked(&yaml)?;
        let loaded = match check_definition(ctx, &definition_name(name), &yaml).await? {
            Ok(loaded) => loaded,
            Err(diagnostics) => {
                return Err(ApiError::BadUserInput {
                    message: diagnostics
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n"),
                    field: Some("yaml".into()),
                });
            }
        };
        let service = &shared(ctx)?.service;
        let p = &loaded.procedure;
        let definition = crate::store::NewDefinition {
            id: p.id.clone(),
            version: p.version,
            title: p.title.clone(),
            content_hash: loaded.hash.clone(),
            source: loaded.source.clone(),
            assets: loaded.assets.clone(),
            loaded_at: service.now(),
        };
        let audit = crate::store::NewAudit {
            at: service.now(),
            actor_id: by.id.clone(),
            role: by.role.clone(),
            action: "pubblica_definizione".into(),
            subject: format!("{}@v{}", p.id, p.version),
            detail: serde_json::json!({ "titolo": p.title, "impronta": loaded.hash }),
        };
        let saved = match service
            .store()
            .audited(crate::store::AdminWrite::Definition(&definition), &audit)
            .await
        {
            Ok(saved) => saved,
            Err(crate::store::Error::DefinitionChanged { id, version }) => {
                return Err(ApiError::Conflict(format!(
                    "la procedura '{id}' versione {version} è già installata con un altro contenuto: una modifica è una nuova versione"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let inserted = saved == crate::store::Saved::Inserted;
        Ok(Deployed {
            id: p.id.clone(),
            version: p.version,
            title: p.title.clone(),
            inserted,
            mermaid: crate::definition::graph::mermaid(p),
        })
    }
}

/// A seat of a body, as its file says.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct BodySeatInfo {
    /// Id (the comune's organisation id).
    pub id: String,
    /// Name.
    pub name: String,
    /// Vote weight (quota).
    pub weight: f64,
}

/// A body of the Ambito (a file in the server's `workflows/organi/`).
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct BodyInfo {
    /// Id.
    pub id: String,
    /// Name.
    pub title: String,
    /// The file, as definitions name it (`organi/….yaml`).
    pub file: String,
    /// Seats.
    pub seats: Vec<BodySeatInfo>,
    /// The file's SHA-256.
    pub sha256: String,
}

fn bodies_dir(ctx: &Context<'_>) -> Result<std::path::PathBuf, ApiError> {
    shared(ctx)?
        .workflows
        .as_ref()
        .map(|w| w.join("organi"))
        .ok_or_else(|| ApiError::internal("cartella delle procedure del server non configurata"))
}

fn body_info(file: &str, text: &str) -> Result<BodyInfo, String> {
    use sha2::Digest;
    let body = crate::definition::body::Body::parse(text)?;
    Ok(BodyInfo {
        id: body.id.clone(),
        title: body.title.clone(),
        file: format!("organi/{file}"),
        seats: body
            .seats
            .iter()
            .map(|s| BodySeatInfo {
                id: s.id.clone(),
                name: s.name.clone(),
                weight: s.weight.try_into().unwrap_or(0.0),
            })
            .collect(),
        sha256: hex::encode(sha2::Sha256::digest(text.as_bytes())),
    })
}

/// The bodies' queries.
#[derive(Default)]
pub(crate) struct BodyQuery;

#[Object]
impl BodyQuery {
    /// The bodies the server's procedures may convene (staff and the amministratore).
    async fn bodies(&self, ctx: &Context<'_>) -> Result<Vec<BodyInfo>, ApiError> {
        let caller = caller(ctx).await?;
        if !(caller.role.is_staff() || caller.role == crate::identity::Role::Amministratore) {
            return Err(ApiError::Forbidden(
                "gli organi sono letti dall'Ufficio di Piano e dall'amministratore".into(),
            ));
        }
        let dir = bodies_dir(ctx)?;
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(out);
        };
        let mut files: Vec<std::path::PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        files.sort();
        for path in files {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            match std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|text| body_info(&name, &text))
            {
                Ok(info) => out.push(info),
                Err(why) => tracing::warn!(file = %name, %why, "organo non leggibile"),
            }
        }
        Ok(out)
    }
}

/// The bodies' mutation.
#[derive(Default)]
pub(crate) struct BodyMutation;

#[Object]
impl BodyMutation {
    /// Writes a body's file (`organi/{name}.yaml`) after checking it as `procedo organo show`
    /// does (amministratore). Procedures read it when a new version is deployed: running
    /// instances keep the body they were convened with. Audited with both digests.
    async fn deploy_body(
        &self,
        ctx: &Context<'_>,
        name: String,
        yaml: String,
    ) -> Result<BodyInfo, ApiError> {
        let (_, by) = administrator(ctx).await?;
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(ApiError::BadUserInput {
                message: format!(
                    "nome «{name}»: solo lettere minuscole, cifre e _ (il file sarà organi/NOME.yaml)"
                ),
                field: Some("name".into()),
            });
        }
        size_checked(&yaml)?;
        let file = format!("{name}.yaml");
        let info = body_info(&file, &yaml).map_err(|why| ApiError::BadUserInput {
            message: format!("organi/{file}: {why}"),
            field: Some("yaml".into()),
        })?;
        let dir = bodies_dir(ctx)?;
        let path = dir.join(&file);
        let before = std::fs::read(&path).ok().map(|old| {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(&old))
        });
        let service = &shared(ctx)?.service;
        // The audit row first: a file written without its row would be an unrecorded change.
        service
            .store()
            .audited(
                crate::store::AdminWrite::None,
                &crate::store::NewAudit {
                    at: service.now(),
                    actor_id: by.id.clone(),
                    role: by.role.clone(),
                    action: "pubblica_organo".into(),
                    subject: info.file.clone(),
                    detail: serde_json::json!({
                        "organo": info.id,
                        "seggi": info.seats.len(),
                        "impronta": info.sha256,
                        "impronta_precedente": before,
                    }),
                },
            )
            .await?;
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            let temporary = dir.join(format!(".{file}.tmp"));
            std::fs::write(&temporary, yaml.as_bytes())?;
            std::fs::rename(&temporary, &path)
        };
        write().map_err(|e| {
            tracing::error!(error = %e, "file dell'organo non scritto");
            ApiError::internal("il file dell'organo non è stato scritto")
        })?;
        Ok(info)
    }
}
