//! Italian dates in Europe/Rome civil time, as written in letters of the public administration.
//!
//! Pure: no clock, no I/O, never the machine's local zone. The three string functions back
//! the handlebars helpers of the same names:
//! - `data`        → "28/12/2026"
//! - `data_lunga`  → "lunedì 28 dicembre 2026" (the first of the month is "1°")
//! - `data_ora`    → "lunedì 28 dicembre 2026, ore 12:00"
//!
//! Accepted input: RFC 3339 instants (`2026-12-28T11:00:00Z`, `…+01:00`), civil date-times
//! without offset read as Europe/Rome (`2026-12-28T12:00`), and civil dates (`2026-12-28`).

use chrono::{DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::{Europe::Rome, Tz};

use super::Error;

/// A point in time as the templates receive it: a whole civil day or an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// A civil date (a day-only deadline, a publication day).
    Day(NaiveDate),
    /// An instant, already converted to Europe/Rome.
    Instant(DateTime<Tz>),
}

impl Moment {
    /// The civil date in Europe/Rome.
    pub fn date(&self) -> NaiveDate {
        match self {
            Moment::Day(date) => *date,
            Moment::Instant(at) => at.date_naive(),
        }
    }
}

/// Reads an RFC 3339 instant, a civil date-time (Europe/Rome) or a civil date.
pub fn parse_moment(input: &str) -> Result<Moment, Error> {
    let text = input.trim();
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Ok(Moment::Instant(instant.with_timezone(&Rome)));
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(Moment::Day(date));
    }
    let civil = [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok());
    let Some(civil) = civil else {
        return Err(date_error(
            input,
            "attesa una data AAAA-MM-GG o un istante RFC 3339",
        ));
    };
    match Rome.from_local_datetime(&civil) {
        LocalResult::Single(at) => Ok(Moment::Instant(at)),
        // The repeated hour at the end of summer time: the first occurrence, as a clock reads.
        LocalResult::Ambiguous(first, _) => Ok(Moment::Instant(first)),
        LocalResult::None => Err(date_error(
            input,
            "quest'ora non esiste a Roma (passaggio all'ora legale)",
        )),
    }
}

/// "28/12/2026".
pub fn short_date(date: NaiveDate) -> String {
    format!("{:02}/{:02}/{}", date.day(), date.month(), date.year())
}

/// "lunedì 28 dicembre 2026"; the first of the month is written "1°".
pub fn long_date(date: NaiveDate) -> String {
    let weekday = weekday_name(date.weekday());
    let month = month_name(date.month());
    let year = date.year();
    match date.day() {
        1 => format!("{weekday} 1° {month} {year}"),
        day => format!("{weekday} {day} {month} {year}"),
    }
}

/// "lunedì 28 dicembre 2026, ore 12:00", in Europe/Rome whatever the zone of `at`.
pub fn long_date_time<Z: TimeZone>(at: &DateTime<Z>) -> String {
    let local = at.with_timezone(&Rome);
    format!(
        "{}, ore {}",
        long_date(local.date_naive()),
        local.format("%H:%M")
    )
}

/// The `data` helper: "28/12/2026".
pub fn data(input: &str) -> Result<String, Error> {
    Ok(short_date(parse_moment(input)?.date()))
}

/// The `data_lunga` helper: "lunedì 28 dicembre 2026".
pub fn data_lunga(input: &str) -> Result<String, Error> {
    Ok(long_date(parse_moment(input)?.date()))
}

/// The `data_ora` helper: "lunedì 28 dicembre 2026, ore 12:00"; a date without time is an
/// error, because a convocation or a deadline hour must never be invented.
pub fn data_ora(input: &str) -> Result<String, Error> {
    match parse_moment(input)? {
        Moment::Instant(at) => Ok(long_date_time(&at)),
        Moment::Day(_) => Err(date_error(
            input,
            "manca l'ora: usare `data_lunga` per una data senza ora",
        )),
    }
}

fn date_error(input: &str, reason: &'static str) -> Error {
    Error::Date {
        input: input.to_owned(),
        reason,
    }
}

fn weekday_name(weekday: chrono::Weekday) -> &'static str {
    match weekday {
        chrono::Weekday::Mon => "lunedì",
        chrono::Weekday::Tue => "martedì",
        chrono::Weekday::Wed => "mercoledì",
        chrono::Weekday::Thu => "giovedì",
        chrono::Weekday::Fri => "venerdì",
        chrono::Weekday::Sat => "sabato",
        chrono::Weekday::Sun => "domenica",
    }
}

fn month_name(month: u32) -> &'static str {
    match month {
        1 => "gennaio",
        2 => "febbraio",
        3 => "marzo",
        4 => "aprile",
        5 => "maggio",
        6 => "giugno",
        7 => "luglio",
        8 => "agosto",
        9 => "settembre",
        10 => "ottobre",
        11 => "novembre",
        _ => "dicembre",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(function: fn(&str) -> Result<String, Error>, input: &str, expected: &str) {
        match function(input) {
            Ok(text) => assert_eq!(text, expected, "input {input}"),
            Err(error) => panic!("input {input}: {error}"),
        }
    }

    #[test]
    fn a_civil_date_renders_short_and_long() {
        check(data, "2026-12-28", "28/12/2026");
        check(data_lunga, "2026-12-28", "lunedì 28 dicembre 2026");
        check(data_lunga, "2027-03-01", "lunedì 1° marzo 2027");
        check(data, "2027-03-01", "01/03/2027");
    }

    #[test]
    fn an_instant_renders_in_rome_not_in_utc() {
        check(
            data_ora,
            "2026-12-28T11:00:00Z",
            "lunedì 28 dicembre 2026, ore 12:00",
        );
        check(
            data_ora,
            "2026-12-28T12:00:00+01:00",
            "lunedì 28 dicembre 2026, ore 12:00",
        );
        check(
            data_ora,
            "2026-12-28T12:00",
            "lunedì 28 dicembre 2026, ore 12:00",
        );
        // 23:30 UTC on the 31st is already New Year's Day in Rome.
        check(data, "2026-12-31T23:30:00Z", "01/01/2027");
        check(
            data_lunga,
            "2026-12-31T23:30:00Z",
            "venerdì 1° gennaio 2027",
        );
    }

    #[test]
    fn the_spring_dst_day_switches_offset_at_one_utc() {
        check(
            data_ora,
            "2026-03-29T00:30:00Z",
            "domenica 29 marzo 2026, ore 01:30",
        );
        check(
            data_ora,
            "2026-03-29T01:30:00Z",
            "domenica 29 marzo 2026, ore 03:30",
        );
        check(
            data_ora,
            "2026-03-29T10:00:00Z",
            "domenica 29 marzo 2026, ore 12:00",
        );
        check(
            data_ora,
            "2026-03-28T23:30:00Z",
            "domenica 29 marzo 2026, ore 00:30",
        );
    }

    #[test]
    fn the_autumn_dst_day_repeats_two_oclock() {
        check(
            data_ora,
            "2026-10-25T00:30:00Z",
            "domenica 25 ottobre 2026, ore 02:30",
        );
        check(
            data_ora,
            "2026-10-25T01:30:00Z",
            "domenica 25 ottobre 2026, ore 02:30",
        );
        check(
            data_ora,
            "2026-10-25T11:00:00Z",
            "domenica 25 ottobre 2026, ore 12:00",
        );
        // A civil 02:30 that happens twice is read as the first one (summer time).
        let Ok(Moment::Instant(first)) = parse_moment("2026-10-25T02:30") else {
            panic!("ambiguous civil time must parse");
        };
        assert_eq!(first.to_rfc3339(), "2026-10-25T02:30:00+02:00");
    }

    #[test]
    fn a_civil_time_skipped_by_summer_time_is_refused() {
        let error = data_ora("2026-03-29T02:30").expect_err("02:30 does not exist");
        assert!(error.to_string().contains("ora legale"), "{error}");
    }

    #[test]
    fn a_date_without_time_is_refused_by_data_ora() {
        let error = data_ora("2026-12-28").expect_err("no hour");
        assert!(error.to_string().contains("data_lunga"), "{error}");
    }

    #[test]
    fn garbage_is_an_error_naming_the_input() {
        for input in ["", "28/12/2026", "domani", "2026-02-30"] {
            let error = data(input).expect_err(input);
            assert!(error.to_string().contains(input), "{error}");
        }
    }
}
