//! The calendars a term honours: national legal holidays (L. 260/1949 as amended), the Comune di
//! Roma's own holiday, and an ente's office closures, which are data and not law.
//!
//! The national list is the one in force from 2001 (L. 336/2000 restored 2 June) with 4 October
//! added from 2026 (L. 151/2025); earlier years are computed with the same list, which is wrong
//! for dates before 2001 and harmless for a workflow engine that starts in 2026.

use chrono::{Datelike, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

/// First year in which 4 October (San Francesco d'Assisi) is a national holiday (L. 151/2025).
const SAN_FRANCESCO_FROM: i32 = 2026;

/// An office closure of an ente (patron saint, Christmas closures…): not a legal holiday.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closure {
    /// The closed day.
    pub date: NaiveDate,
    /// Why the office is closed (the act that says so).
    pub reason: String,
}

/// Holidays and closures that a computation honours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calendar {
    /// Comune whose local legal holiday applies (only "Roma" has one: 29 June).
    pub comune: Option<String>,
    /// Office closures of the ente.
    pub closures: Vec<Closure>,
}

/// A day on which, by law, no term expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegalHoliday {
    /// A Sunday that is not also a named holiday.
    Sunday,
    /// A holiday of the national list, or 29 June in Rome, by its Italian name.
    Named(&'static str),
}

impl Calendar {
    /// The national calendar with no comune and no closures.
    pub fn national() -> Calendar {
        Calendar::default()
    }

    /// Whether the comune is Roma (compared without regard to case or surrounding spaces), the
    /// only comune with a holiday of its own by law (29 June, DPR 792/1985).
    pub fn is_roma(&self) -> bool {
        self.comune
            .as_deref()
            .is_some_and(|comune| comune.trim().eq_ignore_ascii_case("roma"))
    }

    /// The legal holiday falling on `date`, if any; a named holiday wins over Sunday.
    pub fn legal_holiday(&self, date: NaiveDate) -> Option<LegalHoliday> {
        if let Some(name) = national_holiday_name(date) {
            return Some(LegalHoliday::Named(name));
        }
        if date.month() == 6 && date.day() == 29 && self.is_roma() {
            return Some(LegalHoliday::Named("Santi Pietro e Paolo, patroni di Roma"));
        }
        (date.weekday() == Weekday::Sun).then_some(LegalHoliday::Sunday)
    }

    /// The first office closure recorded for `date`, if any.
    pub fn closure(&self, date: NaiveDate) -> Option<&Closure> {
        self.closures.iter().find(|closure| closure.date == date)
    }
}

/// The name of the national holiday (excluding plain Sundays) falling on `date`.
fn national_holiday_name(date: NaiveDate) -> Option<&'static str> {
    let name = match (date.month(), date.day()) {
        (1, 1) => "Capodanno",
        (1, 6) => "Epifania",
        (4, 25) => "Festa della Liberazione",
        (5, 1) => "Festa del lavoro",
        (6, 2) => "Festa della Repubblica",
        (8, 15) => "Assunzione",
        (10, 4) if date.year() >= SAN_FRANCESCO_FROM => "San Francesco d'Assisi, patrono d'Italia",
        (11, 1) => "Ognissanti",
        (12, 8) => "Immacolata Concezione",
        (12, 25) => "Natale",
        (12, 26) => "Santo Stefano",
        // Easter Monday falls between 23 March and 26 April.
        (3 | 4, _) if is_easter_monday(date) => "Lunedì dell'Angelo",
        _ => return None,
    };
    Some(name)
}

fn is_easter_monday(date: NaiveDate) -> bool {
    easter_sunday(date.year()).and_then(|easter| easter.succ_opt()) == Some(date)
}

/// Easter Sunday of a Gregorian year (anonymous Gregorian computus, Meeus/Jones/Butcher).
///
/// Meaningful from 1583; `None` only when the year is outside chrono's range.
pub fn easter_sunday(year: i32) -> Option<NaiveDate> {
    let a = year.rem_euclid(19);
    let b = year.div_euclid(100);
    let c = year.rem_euclid(100);
    let d = b.div_euclid(4);
    let e = b.rem_euclid(4);
    let f = (b + 8).div_euclid(25);
    let g = (b - f + 1).div_euclid(3);
    let h = (19 * a + b - d - g + 15).rem_euclid(30);
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k).rem_euclid(7);
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, u32::try_from(month).ok()?, u32::try_from(day).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
    }

    #[test]
    fn easter_sundays_match_the_domain_table_and_known_years() {
        let expected = [
            (2000, 4, 23),
            (2019, 4, 21),
            (2024, 3, 31),
            (2025, 4, 20),
            (2026, 4, 5),
            (2027, 3, 28),
            (2028, 4, 16),
            (2029, 4, 1),
            (2030, 4, 21),
            (2038, 4, 25),
            (2285, 3, 22),
        ];
        for (y, m, d) in expected {
            assert_eq!(easter_sunday(y), Some(date(y, m, d)), "Easter {y}");
        }
    }

    #[test]
    fn easter_mondays_2026_to_2030_are_holidays_and_the_day_after_is_not() {
        let calendar = Calendar::national();
        for (y, m, d) in [
            (2026, 4, 6),
            (2027, 3, 29),
            (2028, 4, 17),
            (2029, 4, 2),
            (2030, 4, 22),
        ] {
            let monday = date(y, m, d);
            assert_eq!(monday.weekday(), Weekday::Mon);
            assert_eq!(
                calendar.legal_holiday(monday),
                Some(LegalHoliday::Named("Lunedì dell'Angelo")),
                "{monday}"
            );
            assert_eq!(
                calendar.legal_holiday(monday.succ_opt().expect("next")),
                None
            );
        }
    }

    #[test]
    fn san_francesco_is_a_holiday_only_from_2026() {
        let calendar = Calendar::national();
        // 2025: Saturday, not yet a holiday.
        assert_eq!(calendar.legal_holiday(date(2025, 10, 4)), None);
        // 2026: a Sunday anyway, but named.
        assert_eq!(
            calendar.legal_holiday(date(2026, 10, 4)),
            Some(LegalHoliday::Named(
                "San Francesco d'Assisi, patrono d'Italia"
            ))
        );
        // 2027: Monday, the first weekday effect.
        assert_eq!(date(2027, 10, 4).weekday(), Weekday::Mon);
        assert!(calendar.legal_holiday(date(2027, 10, 4)).is_some());
    }

    #[test]
    fn twenty_ninth_of_june_is_a_holiday_only_in_rome() {
        let day = date(2027, 6, 29); // Tuesday
        assert_eq!(Calendar::national().legal_holiday(day), None);
        let milano = Calendar {
            comune: Some("Milano".into()),
            closures: vec![],
        };
        assert_eq!(milano.legal_holiday(day), None);
        for name in ["Roma", "ROMA", " roma "] {
            let roma = Calendar {
                comune: Some(name.into()),
                closures: vec![],
            };
            assert!(roma.legal_holiday(day).is_some(), "{name:?}");
        }
    }

    #[test]
    fn sundays_are_holidays_and_saturdays_and_patron_saints_are_not() {
        let calendar = Calendar::national();
        assert_eq!(
            calendar.legal_holiday(date(2026, 12, 27)),
            Some(LegalHoliday::Sunday)
        );
        assert_eq!(calendar.legal_holiday(date(2026, 12, 12)), None); // Saturday
        assert_eq!(calendar.legal_holiday(date(2026, 12, 7)), None); // Sant'Ambrogio
        // A named holiday on a Sunday keeps its name.
        assert_eq!(
            calendar.legal_holiday(date(2022, 12, 25)),
            Some(LegalHoliday::Named("Natale"))
        );
    }

    #[test]
    fn the_fixed_national_holidays_are_all_there() {
        let calendar = Calendar::national();
        for (m, d) in [
            (1, 1),
            (1, 6),
            (4, 25),
            (5, 1),
            (6, 2),
            (8, 15),
            (10, 4),
            (11, 1),
            (12, 8),
            (12, 25),
            (12, 26),
        ] {
            assert!(
                calendar.legal_holiday(date(2027, m, d)).is_some(),
                "{m}/{d}"
            );
        }
    }

    #[test]
    fn closures_are_found_by_date() {
        let calendar = Calendar {
            comune: None,
            closures: vec![Closure {
                date: date(2026, 12, 7),
                reason: "Sant'Ambrogio".into(),
            }],
        };
        assert_eq!(
            calendar
                .closure(date(2026, 12, 7))
                .map(|c| c.reason.as_str()),
            Some("Sant'Ambrogio")
        );
        assert_eq!(calendar.closure(date(2026, 12, 8)), None);
    }
}
