//! The calculator: from a rule, a dies a quo, a calendar and the suspensions to an expiry date,
//! a deadline instant in Europe/Rome and the Italian trace of every step.

use super::calendar::{Calendar, LegalHoliday};
use super::format::{DayThenWeekday, DayWithWeekday, Short, WeekdayThenDay, count_of};
use super::rule::{Kind, Rule};
use super::{Error, ROME};
use chrono::{
    DateTime, Datelike, Days, MappedLocalTime, Months, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    TimeDelta, TimeZone, Timelike, Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// How far the holiday shift may walk before giving up (a calendar closed for a year is broken).
const MAX_SHIFT_DAYS: u32 = 366;

/// A stop-the-clock interval (both days included) that extends a running term by its length.
///
/// Semantics: the term's *counted days* are the days the count runs over (for a forward term
/// dies a quo + 1 up to the raw expiry; for a window its first day up to its last; for a backward
/// term dies a quo − 1 down to the raw expiry). A suspended day is not counted, so the raw expiry
/// is the N-th counted day that falls in no suspension. In practice, overlapping suspensions are
/// first merged; then each one that touches the counted days (as they grow) pushes the raw expiry
/// by the number of its days on the counted side of the dies a quo — all of them when it lies
/// wholly inside the term, only those after the dies a quo when it began earlier. A suspension
/// wholly before the dies a quo or after the (extended) raw expiry changes nothing; the trace says
/// so. Backward terms mirror this towards the past. Suspensions act before "giorni liberi" add
/// their extra day and before the holiday shift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspension {
    /// First suspended day.
    pub from: NaiveDate,
    /// Last suspended day.
    pub to: NaiveDate,
}

/// A computed term.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Term {
    /// The civil date of expiry.
    pub expiry: NaiveDate,
    /// The instant of expiry in Europe/Rome: at the rule's `at`, or at 23:59:59 local (the last
    /// whole second of the day; compare instants at second precision).
    pub deadline: DateTime<Tz>,
    /// One Italian line per step, for a person (and a judge) to read.
    pub trace: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Forward,
    Backward,
}

/// The days a count runs over, before suspensions: `first` is next to the dies a quo, `last` is
/// the raw end of the count.
#[derive(Debug, Clone, Copy)]
struct Counted {
    first: NaiveDate,
    last: NaiveDate,
    direction: Direction,
}

/// The suspensions of a processual term: the caller's, plus 1–31 August of every year the term
/// can reach (L. 742/1969 as amended by DL 132/2014). A term whose dies a quo falls in August
/// starts counting on 1 September, which counts (Ad. Plen. 4/2016): the same arithmetic.
fn august_suspensions(
    start: NaiveDate,
    kind: Kind,
    given: &[Suspension],
    trace: &mut Vec<String>,
) -> Vec<Suspension> {
    let span_years = match kind {
        Kind::Days { count, .. } => i32::try_from(count / 365).unwrap_or(100) + 2,
        _ => 0,
    };
    let mut all = given.to_vec();
    for year in start.year()..=start.year().saturating_add(span_years) {
        if let (Some(from), Some(to)) = (
            NaiveDate::from_ymd_opt(year, 8, 1),
            NaiveDate::from_ymd_opt(year, 8, 31),
        ) && to > start
        {
            all.push(Suspension { from, to });
        }
    }
    trace.push(
        "sospensione feriale: dal 1° al 31 agosto i giorni non si contano (L. 742/1969)".to_owned(),
    );
    all
}

/// Computes a term from its dies a quo.
///
/// Non-working days are the legal holidays of `calendar` (Sundays included), Saturdays when the
/// rule has `saturday_shift`, and the calendar's closures when the rule has `closures_shift`.
/// The deadline is the expiry at the rule's time in Europe/Rome, or 23:59:59 local. A local time
/// that does not exist (the spring DST gap, e.g. 02:30 on 29/03/2026) is read with the offset in
/// force before the gap, as RFC 5545 §3.3.5 does (02:30+01:00 = 03:30+02:00); a local time that
/// occurs twice (the autumn change) is the *later* instant, which never shortens the term.
///
/// # Errors
///
/// [`Error::InvalidSuspension`] when a suspension ends before it starts;
/// [`Error::OutOfRange`] when the arithmetic leaves chrono's date range or the shift finds no
/// working day within a year (a calendar closed for a whole year).
pub fn compute(
    rule: &Rule,
    start: NaiveDate,
    calendar: &Calendar,
    suspensions: &[Suspension],
) -> Result<Term, Error> {
    let mut trace = Vec::with_capacity(8);
    let counted = count(rule.kind(), start, &mut trace)?;
    let with_august;
    let suspensions = if rule.feriale() {
        with_august = august_suspensions(start, rule.kind(), suspensions, &mut trace);
        &with_august[..]
    } else {
        suspensions
    };
    let last = suspend(counted, suspensions, &mut trace)?;
    let raw_expiry = match rule.kind() {
        Kind::Days { free: true, .. } => {
            let day = step(last, counted.direction)?;
            trace.push(format!(
                "giorni liberi: escluso anche il dies ad quem → {}",
                DayWithWeekday(day)
            ));
            day
        }
        _ => last,
    };
    let expiry = match rule.kind() {
        Kind::Window(_) => {
            trace.push("finestra di pubblicazione: nessuno spostamento per festivi".to_owned());
            raw_expiry
        }
        _ => shift(raw_expiry, counted.direction, rule, calendar, &mut trace)?,
    };
    let deadline = deadline(expiry, rule.at(), &mut trace)?;
    trace.push(format!("scadenza: {}", describe(expiry, deadline)));
    Ok(Term {
        expiry,
        deadline,
        trace,
    })
}

impl Term {
    /// The expiry for a person: "lunedì 28/12/2026 ore 23:59:59 (Europe/Rome)".
    pub fn describe(&self) -> String {
        describe(self.expiry, self.deadline)
    }
}

/// "weekday dd/mm/yyyy ore HH:MM[:SS] (Europe/Rome)", seconds only when there are some.
fn describe(expiry: NaiveDate, deadline: DateTime<Tz>) -> String {
    let local = deadline.with_timezone(&ROME);
    let (hour, minute, second) = (local.hour(), local.minute(), local.second());
    let day = WeekdayThenDay(expiry);
    let zone = ROME.name();
    if second == 0 {
        format!("{day} ore {hour:02}:{minute:02} ({zone})")
    } else {
        format!("{day} ore {hour:02}:{minute:02}:{second:02} ({zone})")
    }
}

/// The arithmetic of the count, civil dates only.
fn count(kind: Kind, start: NaiveDate, trace: &mut Vec<String>) -> Result<Counted, Error> {
    let out_of_range = || Error::OutOfRange(format!("{} con la regola indicata", Short(start)));
    let counted = match kind {
        Kind::Days {
            count,
            backward: false,
            free,
        } => {
            trace.push(format!("dies a quo {} escluso", Short(start)));
            let last = start
                .checked_add_days(Days::new(u64::from(count)))
                .ok_or_else(out_of_range)?;
            let free = if free { " liberi" } else { "" };
            trace.push(format!(
                "+{}{free} → {}",
                count_of(count, "giorno", "giorni"),
                DayWithWeekday(last)
            ));
            Counted {
                first: start.succ_opt().ok_or_else(out_of_range)?,
                last,
                direction: Direction::Forward,
            }
        }
        Kind::Days {
            count,
            backward: true,
            free,
        } => {
            trace.push(format!(
                "dies a quo {} escluso (termine a ritroso)",
                Short(start)
            ));
            let last = start
                .checked_sub_days(Days::new(u64::from(count)))
                .ok_or_else(out_of_range)?;
            let free = if free { " liberi" } else { "" };
            trace.push(format!(
                "−{}{free} → {}",
                count_of(count, "giorno", "giorni"),
                DayWithWeekday(last)
            ));
            Counted {
                first: start.pred_opt().ok_or_else(out_of_range)?,
                last,
                direction: Direction::Backward,
            }
        }
        Kind::Months(count) | Kind::Years(count) => {
            trace.push(format!("dies a quo {} escluso", Short(start)));
            let (months, label) = match kind {
                Kind::Years(years) => (years * 12, count_of(years, "anno", "anni")),
                _ => (count, count_of(count, "mese", "mesi")),
            };
            let last = start
                .checked_add_months(Months::new(months))
                .ok_or_else(out_of_range)?;
            if last.day() == start.day() {
                trace.push(format!(
                    "+{label} secondo il calendario → {}",
                    DayWithWeekday(last)
                ));
            } else {
                trace.push(format!(
                    "+{label} secondo il calendario → il {:02}/{:02}/{} non esiste: ultimo giorno del mese, {}",
                    start.day(),
                    last.month(),
                    last.year(),
                    DayWithWeekday(last)
                ));
            }
            Counted {
                first: start.succ_opt().ok_or_else(out_of_range)?,
                last,
                direction: Direction::Forward,
            }
        }
        Kind::Hours { .. } => {
            return Err(Error::InvalidRule(
                "un termine in ore parte da un istante, non da una data".to_owned(),
            ));
        }
        Kind::Window(count) => {
            trace.push(format!(
                "primo giorno di pubblicazione {} compreso",
                Short(start)
            ));
            let last = start
                .checked_add_days(Days::new(u64::from(count) - 1))
                .ok_or_else(out_of_range)?;
            trace.push(format!(
                "{} consecutivi → ultimo giorno {}",
                count_of(count, "giorno", "giorni"),
                DayWithWeekday(last)
            ));
            Counted {
                first: start,
                last,
                direction: Direction::Forward,
            }
        }
    };
    Ok(counted)
}

/// Pushes the end of the count past every suspended day (see [`Suspension`]).
fn suspend(
    counted: Counted,
    suspensions: &[Suspension],
    trace: &mut Vec<String>,
) -> Result<NaiveDate, Error> {
    if suspensions.is_empty() {
        return Ok(counted.last);
    }
    let merged = merge(suspensions)?;
    if merged.len() < suspensions.len() {
        trace.push(format!(
            "sospensioni sovrapposte riunite in {} intervalli",
            merged.len()
        ));
    }
    let mut last = counted.last;
    let out_of_range =
        |day: NaiveDate| Error::OutOfRange(format!("{} più la sospensione", Short(day)));
    match counted.direction {
        Direction::Forward => {
            for suspension in &merged {
                let from = suspension.from.max(counted.first);
                if suspension.to < counted.first || from > last {
                    trace.push(ignored(suspension));
                    continue;
                }
                let length = days_between(from, suspension.to);
                last = last
                    .checked_add_days(Days::new(length))
                    .ok_or_else(|| out_of_range(last))?;
                trace.push(applied(suspension, length, "si allunga", last));
            }
        }
        Direction::Backward => {
            for suspension in merged.iter().rev() {
                let to = suspension.to.min(counted.first);
                if suspension.from > counted.first || to < last {
                    trace.push(ignored(suspension));
                    continue;
                }
                let length = days_between(suspension.from, to);
                last = last
                    .checked_sub_days(Days::new(length))
                    .ok_or_else(|| out_of_range(last))?;
                trace.push(applied(suspension, length, "arretra", last));
            }
        }
    }
    Ok(last)
}

/// Sorts the suspensions and joins those sharing at least one day.
fn merge(suspensions: &[Suspension]) -> Result<Vec<Suspension>, Error> {
    let mut sorted = suspensions.to_vec();
    if let Some(bad) = sorted.iter().find(|s| s.to < s.from) {
        return Err(Error::InvalidSuspension(format!(
            "dal {} al {}: termina prima di iniziare",
            Short(bad.from),
            Short(bad.to)
        )));
    }
    sorted.sort_by_key(|s| s.from);
    let mut merged: Vec<Suspension> = Vec::with_capacity(sorted.len());
    for suspension in sorted {
        match merged.last_mut() {
            Some(previous) if suspension.from <= previous.to => {
                previous.to = previous.to.max(suspension.to);
            }
            _ => merged.push(suspension),
        }
    }
    Ok(merged)
}

/// Days from `from` to `to`, both included (`from <= to`).
fn days_between(from: NaiveDate, to: NaiveDate) -> u64 {
    u64::try_from((to - from).num_days() + 1).unwrap_or(0)
}

fn ignored(suspension: &Suspension) -> String {
    format!(
        "sospensione dal {} al {}: fuori dal termine, nessun effetto",
        Short(suspension.from),
        Short(suspension.to)
    )
}

fn applied(suspension: &Suspension, length: u64, verb: &str, last: NaiveDate) -> String {
    let total = days_between(suspension.from, suspension.to);
    let counted = if length == total {
        String::new()
    } else {
        format!(", di cui {length} nel termine")
    };
    let days = if total == 1 { "giorno" } else { "giorni" };
    format!(
        "sospensione dal {} al {} ({total} {days}{counted}): il termine {verb} di {length} → {}",
        Short(suspension.from),
        Short(suspension.to),
        DayWithWeekday(last)
    )
}

fn step(day: NaiveDate, direction: Direction) -> Result<NaiveDate, Error> {
    match direction {
        Direction::Forward => day.succ_opt(),
        Direction::Backward => day.pred_opt(),
    }
    .ok_or_else(|| Error::OutOfRange(Short(day).to_string()))
}

/// Moves the expiry off non-working days: later for forward terms, earlier for backward ones.
fn shift(
    raw: NaiveDate,
    direction: Direction,
    rule: &Rule,
    calendar: &Calendar,
    trace: &mut Vec<String>,
) -> Result<NaiveDate, Error> {
    let mut day = raw;
    for moves in 0..=MAX_SHIFT_DAYS {
        match blocking_reason(day, rule, calendar) {
            Some(reason) => {
                trace.push(format!("{}: {reason}", DayThenWeekday(day)));
                day = step(day, direction)?;
            }
            None => {
                trace.push(settled(day, moves > 0, direction, rule, calendar));
                return Ok(day);
            }
        }
    }
    Err(Error::OutOfRange(format!(
        "nessun giorno utile entro {MAX_SHIFT_DAYS} giorni dal {}",
        Short(raw)
    )))
}

/// Why the expiry cannot stay on `day` under this rule, if it cannot.
fn blocking_reason<'a>(
    day: NaiveDate,
    rule: &Rule,
    calendar: &'a Calendar,
) -> Option<Cow<'a, str>> {
    match calendar.legal_holiday(day) {
        Some(LegalHoliday::Named(name)) => return Some(Cow::Borrowed(name)),
        Some(LegalHoliday::Sunday) => return Some(Cow::Borrowed("festivo")),
        None => {}
    }
    if rule.closures_shift()
        && let Some(closure) = calendar.closure(day)
    {
        return Some(Cow::Owned(format!(
            "chiusura degli uffici ({})",
            closure.reason
        )));
    }
    if rule.saturday_shift() && day.weekday() == Weekday::Sat {
        return Some(Cow::Borrowed("non lavorativo per la regola del sabato"));
    }
    None
}

/// The line for the day the expiry stays on, with what this rule chose to ignore there.
fn settled(
    day: NaiveDate,
    moved: bool,
    direction: Direction,
    rule: &Rule,
    calendar: &Calendar,
) -> String {
    let adjective = if rule.saturday_shift() || rule.closures_shift() {
        "lavorativo"
    } else {
        "non festivo"
    };
    let mut line = match (moved, direction) {
        (true, Direction::Forward) => format!("{}: primo giorno {adjective}", DayThenWeekday(day)),
        (true, Direction::Backward) => {
            format!(
                "{}: primo giorno {adjective} precedente",
                DayThenWeekday(day)
            )
        }
        (false, _) => format!(
            "{}: giorno {adjective}, nessuno spostamento",
            DayThenWeekday(day)
        ),
    };
    let mut notes = Vec::new();
    if !rule.closures_shift()
        && let Some(closure) = calendar.closure(day)
    {
        notes.push(format!(
            "la chiusura degli uffici ({}) non sposta questo termine",
            closure.reason
        ));
    }
    if !rule.saturday_shift() && day.weekday() == Weekday::Sat {
        notes.push("il sabato resta lavorativo".to_owned());
    }
    if !notes.is_empty() {
        line.push_str(" (");
        line.push_str(&notes.join("; "));
        line.push(')');
    }
    line
}

/// The instant of the deadline: `at` (or 23:59:59) of the expiry day in Europe/Rome.
fn deadline(
    expiry: NaiveDate,
    at: Option<NaiveTime>,
    trace: &mut Vec<String>,
) -> Result<DateTime<Tz>, Error> {
    let time = match at {
        Some(time) => time,
        None => NaiveTime::from_hms_opt(23, 59, 59)
            .ok_or_else(|| Error::OutOfRange("23:59:59".to_owned()))?,
    };
    let local = expiry.and_time(time);
    match ROME.from_local_datetime(&local) {
        MappedLocalTime::Single(instant) => Ok(instant),
        MappedLocalTime::Ambiguous(_, later) => {
            trace.push(format!(
                "le ore {} del {} ricorrono due volte (cambio dell'ora): vale la seconda, {}",
                time.format("%H:%M"),
                Short(expiry),
                later.format("%H:%M%:z")
            ));
            Ok(later)
        }
        MappedLocalTime::None => {
            let instant = across_the_gap(local)?;
            trace.push(format!(
                "le ore {} del {} non esistono (cambio dell'ora): si usa lo scarto precedente al salto, cioè le {}",
                time.format("%H:%M"),
                Short(expiry),
                instant.format("%H:%M%:z")
            ));
            Ok(instant)
        }
    }
}

/// A nonexistent local time read with the UTC offset in force just before the gap
/// (RFC 5545 §3.3.5).
fn across_the_gap(local: NaiveDateTime) -> Result<DateTime<Tz>, Error> {
    let gap = || Error::OutOfRange(format!("ora locale inesistente {local}"));
    // Gaps are at most a few hours; walk back on the civil clock until a time exists.
    for half_hours in 1..=48 {
        let probe = local
            .checked_sub_signed(TimeDelta::minutes(30 * half_hours))
            .ok_or_else(gap)?;
        if let Some(before) = ROME.from_local_datetime(&probe).latest() {
            let offset = before.offset().fix().local_minus_utc();
            let utc = local
                .checked_sub_signed(TimeDelta::seconds(i64::from(offset)))
                .ok_or_else(gap)?;
            return Ok(utc.and_utc().with_timezone(&ROME));
        }
    }
    Err(gap())
}

/// Computes a term in hours from an instant: elapsed time, forward or backward, never shifted
/// for holidays ("almeno 24 ore prima" of a meeting is 24 real hours, across a change of time
/// too).
///
/// # Errors
///
/// [`Error::InvalidRule`] when the rule does not count hours; [`Error::OutOfRange`] when the
/// arithmetic leaves chrono's range.
pub fn compute_hours(rule: &Rule, from: DateTime<chrono::Utc>) -> Result<Term, Error> {
    let Kind::Hours { count, backward } = rule.kind() else {
        return Err(Error::InvalidRule(
            "compute_hours vale solo per i termini in ore".to_owned(),
        ));
    };
    let delta = chrono::Duration::hours(i64::from(count));
    let instant = if backward {
        from.checked_sub_signed(delta)
    } else {
        from.checked_add_signed(delta)
    }
    .ok_or_else(|| Error::OutOfRange(format!("{count} ore da {from}")))?;
    let start = from.with_timezone(&ROME);
    let deadline = instant.with_timezone(&ROME);
    let mut trace = vec![
        format!(
            "dalle ore {} di {} (Europe/Rome)",
            start.format("%H:%M"),
            WeekdayThenDay(start.date_naive())
        ),
        format!(
            "{}{} ore → ore {} di {}",
            if backward { "−" } else { "+" },
            count,
            deadline.format("%H:%M"),
            WeekdayThenDay(deadline.date_naive())
        ),
        "termine in ore: tempo trascorso, nessuno spostamento per festivi".to_owned(),
    ];
    let expiry = deadline.date_naive();
    trace.push(format!("scadenza: {}", describe(expiry, deadline)));
    Ok(Term {
        expiry,
        deadline,
        trace,
    })
}
