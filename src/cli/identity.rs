//! `procedo org|person|token`: who may call the API. Organisations (the Ambito, its comuni,
//! ETS), people with their roles, and API tokens bound to a person and one role. A token's
//! secret is printed once, on creation; only its SHA-256 is stored.

use anyhow::Context;
use chrono::Utc;

use crate::admin::{self, Admin};
use crate::config::StoreArgs;
use crate::store::Store;

/// `procedo org …`.
#[derive(clap::Subcommand, Debug)]
pub enum OrgCommand {
    /// Add an organisation.
    Add {
        /// Id (a short slug, e.g. `ets-aurora`).
        #[arg(long)]
        id: String,
        /// Name.
        #[arg(long)]
        name: String,
        /// ambito, comune or ets.
        #[arg(long)]
        kind: String,
        /// Codice fiscale.
        #[arg(long = "codice-fiscale")]
        codice_fiscale: Option<String>,
        /// RUNTS registration number (ETS).
        #[arg(long)]
        runts: Option<String>,
        /// PEC address (domicilio digitale), where PEC notifications go.
        #[arg(long)]
        pec: Option<String>,
        /// Store options.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Set (or, empty, clear) an organisation's PEC address.
    Pec {
        /// Organisation id.
        #[arg(long)]
        id: String,
        /// The PEC address; empty to clear it.
        #[arg(long)]
        address: String,
        /// Store options.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List organisations.
    List {
        /// Store options.
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// `procedo person …`.
#[derive(clap::Subcommand, Debug)]
pub enum PersonCommand {
    /// Add a person to an organisation, with the roles they may act in.
    Add {
        /// Id (default: a new UUID).
        #[arg(long)]
        id: Option<String>,
        /// Full name.
        #[arg(long)]
        name: String,
        /// Email.
        #[arg(long)]
        email: String,
        /// Organisation id.
        #[arg(long)]
        org: String,
        /// Role (repeatable): ufficio_di_piano, rup, commissione, sindaco, ets, auditor.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Notifications: immediato or giornaliero (a daily digest).
        #[arg(long, default_value = "immediato")]
        digest: String,
        /// Store options.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List people.
    List {
        /// Store options.
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// `procedo token …`.
#[derive(clap::Subcommand, Debug)]
pub enum TokenCommand {
    /// Create an API token for a person in one of their roles; prints the secret once.
    Create {
        /// Person id.
        #[arg(long)]
        person: String,
        /// The role the token acts in (one of the person's roles).
        #[arg(long)]
        role: String,
        /// Days until it expires (default: never).
        #[arg(long = "expires-in-days")]
        expires_in_days: Option<u32>,
        /// Store options.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a token by its id (`tok_…`).
    Revoke {
        /// Token id.
        id: String,
        /// Store options.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List tokens (never their secrets).
    List {
        /// Only this person's.
        #[arg(long)]
        person: Option<String>,
        /// Store options.
        #[command(flatten)]
        store: StoreArgs,
    },
}

async fn open(store: &StoreArgs) -> anyhow::Result<Store> {
    Store::connect(&store.database_url).await.with_context(|| {
        format!(
            "apertura del database {}",
            crate::cli::db::redact(&store.database_url)
        )
    })
}

/// Runs `procedo org …`.
pub async fn run_org(cmd: OrgCommand) -> anyhow::Result<()> {
    match cmd {
        OrgCommand::Add {
            id,
            name,
            kind,
            codice_fiscale,
            runts,
            pec,
            store,
        } => {
            let store = open(&store).await?;
            let org = admin::add_organisation(
                &store,
                &Admin::command_line(),
                admin::OrganisationInput {
                    id,
                    name,
                    kind,
                    codice_fiscale,
                    runts,
                    pec,
                },
                Utc::now(),
            )
            .await?;
            println!("{}", org.id);
            eprintln!("organizzazione {} ({}) aggiunta", org.name, org.kind);
        }
        OrgCommand::Pec { id, address, store } => {
            let store = open(&store).await?;
            let org = admin::set_organisation_pec(
                &store,
                &Admin::command_line(),
                &id,
                Some(address.as_str()),
                Utc::now(),
            )
            .await?;
            match org.pec {
                Some(pec) => eprintln!("PEC di {}: {pec}", org.name),
                None => eprintln!("{} non ha più un indirizzo PEC", org.name),
            }
        }
        OrgCommand::List { store } => {
            for org in open(&store).await?.organisations().await? {
                println!(
                    "{:<24} {:<8} {:<40} {:<14} {}",
                    org.id,
                    org.kind.as_str(),
                    org.name,
                    org.runts.unwrap_or_default(),
                    org.pec.unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}

/// Runs `procedo person …`.
pub async fn run_person(cmd: PersonCommand) -> anyhow::Result<()> {
    match cmd {
        PersonCommand::Add {
            id,
            name,
            email,
            org,
            roles,
            digest,
            store,
        } => {
            let store = open(&store).await?;
            let person = admin::add_person(
                &store,
                &Admin::command_line(),
                admin::PersonInput {
                    id,
                    name,
                    email,
                    organisation_id: org,
                    roles,
                    digest,
                },
                Utc::now(),
            )
            .await?;
            let organisation = store
                .organisation(&person.organisation_id)
                .await?
                .with_context(|| format!("organizzazione '{}'", person.organisation_id))?;
            println!("{}", person.id);
            eprintln!(
                "persona {} aggiunta a {} con i ruoli {}",
                person.name,
                organisation.name,
                person.roles.join(", ")
            );
        }
        PersonCommand::List { store } => {
            for p in open(&store).await?.people().await? {
                println!(
                    "{:<38} {:<28} {:<20} {}",
                    p.id,
                    p.name,
                    p.organisation_id,
                    p.roles.join(",")
                );
            }
        }
    }
    Ok(())
}

/// Runs `procedo token …`.
pub async fn run_token(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create {
            person,
            role,
            expires_in_days,
            store,
        } => {
            let store = open(&store).await?;
            let issued = admin::create_token(
                &store,
                &Admin::command_line(),
                &person,
                &role,
                expires_in_days,
                Utc::now(),
            )
            .await?;
            let (token, secret) = (issued.token.clone(), issued.secret.clone());
            let who = store
                .person(&token.person_id)
                .await?
                .with_context(|| format!("persona '{}'", token.person_id))?;
            let expires_at = token.expires_at;
            let role = token.role.clone();
            // The only time the secret is shown.
            println!("{secret}");
            eprintln!(
                "token {} per {} come {role}{}: conservarlo ora, non sarà più mostrato",
                token.id,
                who.name,
                expires_at
                    .map(|e| format!(", scade il {}", e.format("%d/%m/%Y %H:%M UTC")))
                    .unwrap_or_default()
            );
        }
        TokenCommand::Revoke { id, store } => {
            let store = open(&store).await?;
            let token =
                admin::revoke_token(&store, &Admin::command_line(), &id, Utc::now()).await?;
            eprintln!("token {} revocato", token.id);
        }
        TokenCommand::List { person, store } => {
            let now = Utc::now();
            for t in open(&store).await?.tokens(person.as_deref()).await? {
                let state = if t.revoked_at.is_some() {
                    "revocato"
                } else if t.is_valid_at(now) {
                    "valido"
                } else {
                    "scaduto"
                };
                println!("{:<18} {:<38} {:<18} {state}", t.id, t.person_id, t.role);
            }
        }
    }
    Ok(())
}
