//! `computeTerm`: the legal-term calculator through the API, with its trace.

use async_graphql::{InputObject, SimpleObject};
use chrono::{DateTime, FixedOffset, NaiveDate};

use crate::api::error::ApiError;
use crate::terms::{self, Calendar, Rule, RuleSpec, Suspension};

/// A term to compute.
#[derive(Debug, Clone, InputObject)]
pub(crate) struct TermInput {
    /// Dies a quo (excluded), or the first day of a window, or the reference day of a
    /// backward term.
    pub start: NaiveDate,
    /// Calendar days.
    pub days: Option<i64>,
    /// Months by the calendar.
    pub months: Option<i64>,
    /// Years by the calendar.
    pub years: Option<i64>,
    /// Publication window of N consecutive days.
    pub window: Option<i64>,
    /// "almeno N giorni prima".
    #[graphql(default)]
    pub backward: bool,
    /// "giorni liberi".
    #[graphql(default)]
    pub free: bool,
    /// Saturday shifts like a holiday.
    #[graphql(default)]
    pub saturday_shift: bool,
    /// Sospensione feriale: 1–31 August does not count (processual terms only).
    #[graphql(default)]
    pub feriale: bool,
    /// Time of day "HH:MM" (Europe/Rome); the end of the day when absent.
    pub at: Option<String>,
    /// Comune (only "Roma" has its own holiday).
    pub comune: Option<String>,
    /// Suspensions, both ends included.
    #[graphql(default)]
    pub suspensions: Vec<SuspensionInput>,
}

/// A suspension of a term.
#[derive(Debug, Clone, InputObject)]
pub(crate) struct SuspensionInput {
    /// First suspended day.
    pub from: NaiveDate,
    /// Last suspended day.
    pub to: NaiveDate,
}

/// A computed term.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct ComputedTerm {
    /// Civil date of expiry.
    pub expiry: NaiveDate,
    /// Instant of expiry in Europe/Rome.
    pub deadline: DateTime<FixedOffset>,
    /// The expiry in words.
    pub description: String,
    /// The rule in words.
    pub rule: String,
    /// One Italian line per step.
    pub trace: Vec<String>,
}

/// Computes a term.
pub(crate) fn compute(input: TermInput) -> Result<ComputedTerm, ApiError> {
    let spec = RuleSpec {
        days: input.days,
        months: input.months,
        years: input.years,
        window: input.window,
        hours: None,
        backward: input.backward,
        free: input.free,
        at: input.at,
        saturday_shift: input.saturday_shift,
        closures_shift: false,
        feriale: input.feriale,
    };
    let rule = Rule::new(spec).map_err(|e| ApiError::bad_input(e.to_string()))?;
    let calendar = Calendar {
        comune: input.comune,
        closures: Vec::new(),
    };
    let suspensions: Vec<Suspension> = input
        .suspensions
        .into_iter()
        .map(|s| Suspension {
            from: s.from,
            to: s.to,
        })
        .collect();
    let term = terms::compute(&rule, input.start, &calendar, &suspensions)
        .map_err(|e| ApiError::bad_input(e.to_string()))?;
    Ok(ComputedTerm {
        expiry: term.expiry,
        deadline: term.deadline.fixed_offset(),
        description: term.describe(),
        rule: rule.to_string(),
        trace: term.trace,
    })
}
