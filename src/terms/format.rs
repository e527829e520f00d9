//! Italian renderings of dates and weekdays for traces ("lunedì 28/12/2026").

use chrono::{Datelike, NaiveDate, Weekday};
use std::fmt;

/// The Italian name of a weekday, lower case as written in running text.
pub(crate) fn weekday_name(weekday: Weekday) -> &'static str {
    match weekday {
        Weekday::Mon => "lunedì",
        Weekday::Tue => "martedì",
        Weekday::Wed => "mercoledì",
        Weekday::Thu => "giovedì",
        Weekday::Fri => "venerdì",
        Weekday::Sat => "sabato",
        Weekday::Sun => "domenica",
    }
}

/// A date as "dd/mm/yyyy".
pub(crate) struct Short(pub(crate) NaiveDate);

impl fmt::Display for Short {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let date = self.0;
        write!(f, "{:02}/{:02}/{}", date.day(), date.month(), date.year())
    }
}

/// A date as "dd/mm/yyyy weekday", the subject of a shift line.
pub(crate) struct DayThenWeekday(pub(crate) NaiveDate);

impl fmt::Display for DayThenWeekday {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", Short(self.0), weekday_name(self.0.weekday()))
    }
}

/// A date as "weekday dd/mm/yyyy", for the final line.
pub(crate) struct WeekdayThenDay(pub(crate) NaiveDate);

impl fmt::Display for WeekdayThenDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", weekday_name(self.0.weekday()), Short(self.0))
    }
}

/// A date as "dd/mm/yyyy (weekday)", after an arithmetic step.
pub(crate) struct DayWithWeekday(pub(crate) NaiveDate);

impl fmt::Display for DayWithWeekday {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", Short(self.0), weekday_name(self.0.weekday()))
    }
}

/// "1 giorno" / "30 giorni", and the like for months and years.
pub(crate) fn count_of(count: u32, singular: &str, plural: &str) -> String {
    if count == 1 {
        format!("1 {singular}")
    } else {
        format!("{count} {plural}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_render_the_italian_way() {
        let date = NaiveDate::from_ymd_opt(2026, 1, 5).expect("valid");
        assert_eq!(Short(date).to_string(), "05/01/2026");
        assert_eq!(DayThenWeekday(date).to_string(), "05/01/2026 lunedì");
        assert_eq!(WeekdayThenDay(date).to_string(), "lunedì 05/01/2026");
        assert_eq!(DayWithWeekday(date).to_string(), "05/01/2026 (lunedì)");
        assert_eq!(count_of(1, "mese", "mesi"), "1 mese");
        assert_eq!(count_of(3, "mese", "mesi"), "3 mesi");
    }
}
