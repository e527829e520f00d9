//! `procedo timers list`: the armed timers of a period, each with why it exists — the
//! instance, the rule and the term trace that put it at that instant.

use std::collections::HashMap;

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

use crate::config::StoreArgs;
use crate::engine::{TimerAction, local_instant};
use crate::store::{InstanceRow, Store, TimerRow, TimerStatus};
use crate::terms::ROME;

/// `procedo timers …` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum TimersCommand {
    /// List armed timers firing in a period (default: the next 30 days).
    List(ListArgs),
}

/// Options of `procedo timers list`.
#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// From this day (YYYY-MM-DD, Europe/Rome) or instant (RFC 3339); default: now.
    #[arg(long)]
    pub from: Option<String>,
    /// Up to this day included (YYYY-MM-DD) or instant excluded (RFC 3339); default: 30
    /// days after `--from`.
    #[arg(long)]
    pub to: Option<String>,
    /// Only the timers of this instance.
    #[arg(long)]
    pub instance: Option<String>,
    /// Store options.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Runs a `timers` subcommand.
pub async fn run(cmd: TimersCommand) -> anyhow::Result<()> {
    match cmd {
        TimersCommand::List(args) => list(args).await,
    }
}

/// Which end of a period a date names.
#[derive(Clone, Copy)]
enum End {
    From,
    To,
}

/// A day (midnight in Europe/Rome; for `--to` the midnight after, so the day is included) or
/// an RFC 3339 instant.
fn parse_instant(text: &str, end: End) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let day = NaiveDate::parse_from_str(text, "%Y-%m-%d").with_context(|| {
        format!("data '{text}' non valida: scrivere AAAA-MM-GG o un istante RFC 3339")
    })?;
    let day = match end {
        End::From => day,
        End::To => day
            .succ_opt()
            .with_context(|| format!("data '{text}' fuori intervallo"))?,
    };
    local_instant(day, NaiveTime::MIN).with_context(|| format!("data '{text}' fuori intervallo"))
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let from = match &args.from {
        Some(text) => parse_instant(text, End::From)?,
        None => Utc::now(),
    };
    let to = match &args.to {
        Some(text) => parse_instant(text, End::To)?,
        None => from + chrono::Duration::days(30),
    };
    if to <= from {
        bail!("il periodo è vuoto: --to deve essere dopo --from");
    }
    let store = Store::connect(&args.store.database_url)
        .await
        .with_context(|| {
            format!(
                "apertura del database {}",
                crate::cli::db::redact(&args.store.database_url)
            )
        })?;
    let timers = store
        .timers_between(from, to, args.instance.as_deref())
        .await?;
    let mut instances: HashMap<String, Option<InstanceRow>> = HashMap::new();
    println!(
        "Timer dal {} al {} (ora di Roma): {}",
        local(from),
        local(to),
        timers.len()
    );
    for timer in &timers {
        if !instances.contains_key(&timer.instance_id) {
            let row = store.instance(&timer.instance_id).await?;
            instances.insert(timer.instance_id.clone(), row);
        }
        let instance = instances.get(&timer.instance_id).and_then(Option::as_ref);
        print!("{}", describe(timer, instance));
    }
    store.close().await?;
    Ok(())
}

/// An instant in Europe/Rome, as people read it.
fn local(at: DateTime<Utc>) -> String {
    at.with_timezone(&ROME).format("%d/%m/%Y %H:%M").to_string()
}

/// One timer: a heading line, then the trace, indented.
fn describe(timer: &TimerRow, instance: Option<&InstanceRow>) -> String {
    let action = match &timer.action {
        TimerAction::Fire { event, .. } => format!("evento '{event}'"),
        TimerAction::Remind {
            role,
            template,
            urgent,
            ..
        } => {
            format!(
                "promemoria a '{role}' ({template}{})",
                if *urgent { ", urgente" } else { "" }
            )
        }
    };
    let whose = match instance {
        Some(i) => format!(
            "{} {} v{} [{}]",
            i.id, i.definition_id, i.definition_version, i.state
        ),
        None => format!("{} (istanza non trovata)", timer.instance_id),
    };
    let claim = match (timer.status, &timer.claimed_by, timer.lease_until) {
        (TimerStatus::Claimed, Some(worker), Some(until)) => {
            format!("  — in carico a {worker} fino alle {}", local(until))
        }
        (TimerStatus::Pending, _, _) if timer.retry_at.is_some() => format!(
            "  — non riuscito {} volte, nuovo tentativo alle {}",
            timer.attempts,
            timer.retry_at.map(local).unwrap_or_default()
        ),
        _ => String::new(),
    };
    let mut out = format!(
        "{}  {whose}  {}  {action}{claim}\n",
        local(timer.fire_at),
        timer.key
    );
    for line in &timer.trace {
        out.push_str("    ");
        out.push_str(line);
        out.push('\n');
    }
    if let (TimerStatus::Pending, Some(error)) = (timer.status, &timer.last_error) {
        out.push_str(&format!("    ultimo errore: {error}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_names_rome_midnight_and_a_to_day_is_included() {
        let from = parse_instant("2025-03-30", End::From).expect("valid day");
        assert_eq!(from.to_rfc3339(), "2025-03-29T23:00:00+00:00");
        let to = parse_instant("2025-03-30", End::To).expect("valid day");
        assert_eq!(to.to_rfc3339(), "2025-03-30T22:00:00+00:00");
        assert!(parse_instant("30/03/2025", End::From).is_err());
        assert_eq!(
            parse_instant("2025-03-30T10:00:00+02:00", End::To)
                .expect("instant")
                .to_rfc3339(),
            "2025-03-30T08:00:00+00:00"
        );
    }
}
