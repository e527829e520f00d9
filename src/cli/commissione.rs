//! `procedo commissione …`: the commissione's commands from the command line, through the
//! same service steps as the API — nomina, dichiarazione, sostituzione, punteggi, seduta,
//! rettifica dei criteri. `procedo instance evaluation ID` shows the result.

use std::str::FromStr;

use anyhow::{Context, bail};
use clap::Subcommand;
use rust_decimal::Decimal;
use serde_json::json;

use crate::app;
use crate::config::StoreArgs;
use crate::definition::Criterion;
use crate::engine::Actor;
use crate::engine::evaluation::{self, MemberRole, NewMember, ScoreInput};
use crate::service::Service;

/// The commissione's commands.
#[derive(Subcommand, Debug)]
pub enum CommissioneCommand {
    /// Name the commissione (after the submission deadline): each member as PERSON=ROLE,
    /// ROLE one of presidente, componente, segretario.
    Nomina {
        /// Instance id.
        instance: String,
        /// A member, PERSON=ROLE.
        #[arg(long = "membro", value_name = "PERSONA=RUOLO", required = true)]
        members: Vec<String>,
        /// The act (determina n. … del …).
        #[arg(long = "atto")]
        act: String,
        /// Store options.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// A member files their declaration (no conflict, no conviction unless said).
    Dichiarazione {
        /// Instance id.
        instance: String,
        /// The member.
        #[arg(long = "come", value_name = "PERSONA")]
        person: String,
        /// Declares a conflict of interest (art. 6-bis L. 241/1990): abstains.
        #[arg(long = "conflitto")]
        conflict: bool,
        /// Declares a conviction (art. 35-bis D.Lgs. 165/2001): abstains.
        #[arg(long = "condanna")]
        conviction: bool,
        /// A note.
        #[arg(long = "nota")]
        note: Option<String>,
        /// Store options.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Replace a member with another person, in the same role.
    Sostituisci {
        /// Instance id.
        instance: String,
        /// The member leaving.
        #[arg(long = "esce", value_name = "PERSONA")]
        out: String,
        /// The person coming in (with the role commissione).
        #[arg(long = "entra", value_name = "PERSONA")]
        incoming: String,
        /// The act.
        #[arg(long = "atto")]
        act: String,
        /// Store options.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// A member scores a proposal: each as CRITERION=POINTS:MOTIVAZIONE.
    Punteggi {
        /// Instance id.
        instance: String,
        /// The application (its submission id).
        #[arg(long = "domanda", value_name = "ID")]
        application: String,
        /// The member.
        #[arg(long = "come", value_name = "PERSONA")]
        person: String,
        /// A score, CRITERIO=PUNTI:MOTIVAZIONE.
        #[arg(
            long = "punteggio",
            value_name = "CRITERIO=PUNTI:MOTIVAZIONE",
            required = true
        )]
        scores: Vec<String>,
        /// Store options.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Close a session: its verbale is registered in the protocollo.
    Seduta {
        /// Instance id.
        instance: String,
        /// The day it met (YYYY-MM-DD).
        #[arg(long = "data")]
        date: chrono::NaiveDate,
        /// What the verbale adds.
        #[arg(long = "nota", default_value = "")]
        note: String,
        /// Who closes it (a member, or the RUP).
        #[arg(long = "come", value_name = "PERSONA", default_value = "rup")]
        person: String,
        /// Store options.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Publish a rettifica of the criteria (before the deadline): the criteria from a YAML
    /// file (a list of {id, title, max, sub}), with the threshold, the act and the reason.
    Rettifica {
        /// Instance id.
        instance: String,
        /// The criteria file.
        #[arg(long = "criteri")]
        criteria: std::path::PathBuf,
        /// The threshold.
        #[arg(long = "soglia")]
        threshold: Decimal,
        /// The act.
        #[arg(long = "atto")]
        act: String,
        /// Why.
        #[arg(long = "motivo")]
        reason: String,
        /// Store options.
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// A member to name, from the people register: the role `commissione` is required.
async fn member(service: &Service, person: &str, role: MemberRole) -> anyhow::Result<NewMember> {
    let found = service
        .store()
        .person(person)
        .await?
        .with_context(|| format!("persona sconosciuta '{person}'"))?;
    if !found.roles.iter().any(|r| r == "commissione") {
        bail!("{} non ha il ruolo commissione", found.name);
    }
    Ok(NewMember {
        person_id: found.id,
        name: found.name,
        role,
    })
}

fn role_of(text: &str) -> anyhow::Result<MemberRole> {
    match text.trim().to_lowercase().as_str() {
        "presidente" => Ok(MemberRole::Presidente),
        "componente" => Ok(MemberRole::Componente),
        "segretario" => Ok(MemberRole::Segretario),
        other => bail!("ruolo '{other}' sconosciuto (presidente, componente, segretario)"),
    }
}

fn score_of(text: &str) -> anyhow::Result<ScoreInput> {
    let (criterion, rest) = text
        .split_once('=')
        .with_context(|| format!("'{text}': serve CRITERIO=PUNTI:MOTIVAZIONE"))?;
    let (points, why) = rest
        .split_once(':')
        .with_context(|| format!("'{text}': manca la motivazione (CRITERIO=PUNTI:MOTIVAZIONE)"))?;
    let points = Decimal::from_str(points.trim().replace(',', ".").as_str())
        .with_context(|| format!("'{points}' non è un numero"))?;
    Ok(ScoreInput {
        criterion: criterion.trim().to_string(),
        points,
        motivazione: why.trim().to_string(),
    })
}

fn actor(person: &str) -> Actor {
    Actor {
        id: person.to_string(),
        role: if person == "rup" {
            "rup"
        } else {
            "commissione"
        }
        .to_string(),
    }
}

/// Runs a `commissione` subcommand.
pub async fn run(cmd: CommissioneCommand) -> anyhow::Result<()> {
    let outcome = match cmd {
        CommissioneCommand::Nomina {
            instance,
            members,
            act,
            store,
        } => {
            let (service, _) = app::open(&store, None).await?;
            let mut named = Vec::new();
            for m in &members {
                let (person, role) = m
                    .split_once('=')
                    .with_context(|| format!("'{m}': serve PERSONA=RUOLO"))?;
                named.push(member(&service, person.trim(), role_of(role)?).await?);
            }
            let payload = json!({ "atto": act, "componenti": members });
            service
                .record_step(&instance, &actor("rup"), &payload, None, |p, row, now| {
                    evaluation::appoint(p, &row.snapshot(), &named, &act, now)
                })
                .await?
        }
        CommissioneCommand::Dichiarazione {
            instance,
            person,
            conflict,
            conviction,
            note,
            store,
        } => {
            let (service, _) = app::open(&store, None).await?;
            let payload = json!({ "conflitto": conflict, "condanna": conviction, "nota": note });
            service
                .record_step(&instance, &actor(&person), &payload, None, |p, row, now| {
                    evaluation::declare(
                        p,
                        &row.snapshot(),
                        &person,
                        conflict,
                        conviction,
                        note.as_deref(),
                        now,
                    )
                })
                .await?
        }
        CommissioneCommand::Sostituisci {
            instance,
            out,
            incoming,
            act,
            store,
        } => {
            let (service, _) = app::open(&store, None).await?;
            let incoming = member(&service, &incoming, MemberRole::Componente).await?;
            let payload =
                json!({ "sostituito": out, "sostituto": incoming.person_id, "atto": act });
            service
                .record_step(&instance, &actor("rup"), &payload, None, |p, row, now| {
                    evaluation::replace(p, &row.snapshot(), &out, &incoming, &act, now)
                })
                .await?
        }
        CommissioneCommand::Punteggi {
            instance,
            application,
            person,
            scores,
            store,
        } => {
            let (service, _) = app::open(&store, None).await?;
            let inputs = scores
                .iter()
                .map(|s| score_of(s))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let payload = json!({ "punteggi": scores });
            service
                .record_step(&instance, &actor(&person), &payload, None, |p, row, now| {
                    evaluation::score(p, &row.snapshot(), &application, &person, &inputs, now)
                })
                .await?
        }
        CommissioneCommand::Seduta {
            instance,
            date,
            note,
            person,
            store,
        } => {
            let (service, _) = app::open(&store, None).await?;
            let payload = json!({ "data": date.to_string(), "nota": note });
            service
                .record_step(&instance, &actor(&person), &payload, None, |p, row, now| {
                    evaluation::session(p, &row.snapshot(), date, &note, now)
                })
                .await?
        }
        CommissioneCommand::Rettifica {
            instance,
            criteria,
            threshold,
            act,
            reason,
            store,
        } => {
            let text = std::fs::read_to_string(&criteria)
                .with_context(|| format!("{}: impossibile leggere", criteria.display()))?;
            let list: Vec<Criterion> = serde_saphyr::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", criteria.display()))?;
            let (service, _) = app::open(&store, None).await?;
            let payload = json!({ "atto": act, "motivo": reason, "soglia": threshold.to_string() });
            service
                .record_step(&instance, &actor("rup"), &payload, None, |p, row, now| {
                    evaluation::rectify(
                        p,
                        &row.snapshot(),
                        list.clone(),
                        threshold,
                        &act,
                        &reason,
                        now,
                    )
                })
                .await?
        }
    };
    eprintln!(
        "registrato nello storico (passo {}); procedo instance evaluation {} per il quadro",
        outcome.committed.seq, outcome.instance.id
    );
    Ok(())
}
