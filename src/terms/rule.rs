//! Term rules: the serde mirror written in workflow files and on the command line
//! ([`RuleSpec`]) and the validated rule the calculator runs ([`Rule`]).

use super::Error;
use super::format::count_of;
use chrono::NaiveTime;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Largest count of days (or window days) accepted: about a century.
const MAX_DAYS: i64 = 36_600;
/// Largest count of months accepted: a century.
const MAX_MONTHS: i64 = 1_200;
/// Largest count of years accepted.
const MAX_YEARS: i64 = 100;
/// Largest count of hours accepted: a year.
const MAX_HOURS: i64 = 8_784;

/// Serde mirror of a term rule as written in a workflow file or given on the command line.
/// Exactly one of `days`, `months`, `years`, `window` must be set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Forward (or backward) term in calendar days, dies a quo excluded.
    #[serde(default)]
    pub days: Option<i64>,
    /// Term in months by the calendar (art. 2963 c.c.).
    #[serde(default)]
    pub months: Option<i64>,
    /// Term in years by the calendar.
    #[serde(default)]
    pub years: Option<i64>,
    /// Publication window of N consecutive days, first day counted, no shift.
    #[serde(default)]
    pub window: Option<i64>,
    /// A term in hours from an instant ("almeno 24 ore prima"): elapsed time, never shifted.
    #[serde(default)]
    pub hours: Option<i64>,
    /// "almeno N giorni prima": counted backwards, a holiday moves the expiry earlier.
    #[serde(default)]
    pub backward: bool,
    /// "giorni liberi": both ends excluded.
    #[serde(default)]
    pub free: bool,
    /// Time of day "HH:MM" in Europe/Rome; absent means the end of the last day.
    #[serde(default)]
    pub at: Option<String>,
    /// Saturday shifts like a holiday (the Saturday rule, art. 155 c.5 c.p.c. by choice).
    #[serde(default)]
    pub saturday_shift: bool,
    /// Office closures (from the calendar) shift like holidays.
    #[serde(default)]
    pub closures_shift: bool,
    /// Sospensione feriale (L. 742/1969): 1–31 August does not count. Processual terms only
    /// (e.g. the 60 days for the TAR), never an administrative deadline. Days only.
    #[serde(default)]
    pub feriale: bool,
}

/// What a rule counts, with its count already checked to be between 1 and the maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Calendar days from the dies a quo, forward or backward, optionally "liberi".
    Days {
        /// How many days.
        count: u32,
        /// "almeno N giorni prima": counted towards the past, shifted earlier.
        backward: bool,
        /// "giorni liberi": the final day is excluded too.
        free: bool,
    },
    /// Months by the calendar.
    Months(u32),
    /// Years by the calendar.
    Years(u32),
    /// Publication for N consecutive days, the first one included; never shifted.
    Window(u32),
    /// Hours of elapsed time from an instant, forward or backward; never shifted.
    Hours {
        /// How many hours.
        count: u32,
        /// "almeno N ore prima".
        backward: bool,
    },
}

/// A validated term rule.
///
/// Serializes as its [`RuleSpec`] and deserializes through [`Rule::new`], so a workflow file can
/// hold a `Rule` directly and still gets the Italian validation messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "RuleSpec", try_from = "RuleSpec")]
pub struct Rule {
    spec: RuleSpec,
    kind: Kind,
    at: Option<NaiveTime>,
}

impl Rule {
    /// Validates a spec into a rule.
    ///
    /// Refused, with every problem named in one message: no count or more than one of
    /// `days`/`months`/`years`/`window`; a count below 1 (a term of zero days is not a term) or
    /// above a century; `backward` or `free` without `days`; `saturday_shift` or
    /// `closures_shift` on a publication window (a window never shifts); `at` not "HH:MM".
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRule`] listing every problem found, separated by "; ".
    pub fn new(spec: RuleSpec) -> Result<Rule, Error> {
        let mut problems = Vec::new();
        let counts = [
            ("days", spec.days, MAX_DAYS),
            ("months", spec.months, MAX_MONTHS),
            ("years", spec.years, MAX_YEARS),
            ("window", spec.window, MAX_DAYS),
            ("hours", spec.hours, MAX_HOURS),
        ];
        let given: Vec<&str> = counts
            .iter()
            .filter(|(_, value, _)| value.is_some())
            .map(|(name, _, _)| *name)
            .collect();
        match given.len() {
            0 => problems.push(
                "indicare uno tra days, months, years e window (o hours, per un termine da un istante)"
                    .to_owned(),
            ),
            1 => {}
            _ => problems.push(format!(
                "indicare uno solo tra days, months, years, window e hours (trovati: {})",
                given.join(", ")
            )),
        }
        let mut checked = None;
        for (name, value, max) in counts {
            let Some(value) = value else { continue };
            if value == 0 {
                problems.push(format!(
                    "{name} deve essere almeno 1 (trovato 0): un termine di durata zero non è un termine"
                ));
            } else if value < 0 {
                problems.push(format!("{name} deve essere almeno 1 (trovato {value})"));
            } else if value > max {
                problems.push(format!("{name} deve essere al più {max} (trovato {value})"));
            } else if let Ok(count) = u32::try_from(value) {
                checked = Some((name, count));
            }
        }
        if spec.hours.is_some()
            && (spec.at.is_some() || spec.saturday_shift || spec.closures_shift || spec.free)
        {
            problems.push(
                "un termine in ore (hours) è tempo trascorso: at, saturday_shift, closures_shift e free non si applicano"
                    .to_owned(),
            );
        }
        if spec.days.is_none() && spec.hours.is_none() {
            if spec.backward {
                problems.push("backward vale solo con days o hours".to_owned());
            }
            if spec.free {
                problems.push("free (giorni liberi) vale solo con days".to_owned());
            }
        }
        if spec.feriale && (spec.days.is_none() || spec.backward || spec.free) {
            problems.push(
                "feriale (sospensione feriale di agosto) vale solo con days in avanti".to_owned(),
            );
        }
        if spec.window.is_some() && (spec.saturday_shift || spec.closures_shift) {
            problems.push(
                "una finestra di pubblicazione (window) non si sposta: saturday_shift e closures_shift non si applicano"
                    .to_owned(),
            );
        }
        let at = match spec.at.as_deref() {
            None => None,
            Some(text) => match parse_hh_mm(text) {
                Some(time) => Some(time),
                None => {
                    problems.push(format!(
                        "at deve essere un orario HH:MM tra 00:00 e 23:59 (trovato {text:?})"
                    ));
                    None
                }
            },
        };
        let kind = match checked {
            Some(("days", count)) => Kind::Days {
                count,
                backward: spec.backward,
                free: spec.free,
            },
            Some(("months", count)) => Kind::Months(count),
            Some(("years", count)) => Kind::Years(count),
            Some(("hours", count)) => Kind::Hours {
                count,
                backward: spec.backward,
            },
            Some((_, count)) => Kind::Window(count),
            None => return Err(Error::InvalidRule(problems.join("; "))),
        };
        if !problems.is_empty() {
            return Err(Error::InvalidRule(problems.join("; ")));
        }
        Ok(Rule { spec, kind, at })
    }

    /// The spec this rule was validated from.
    pub fn spec(&self) -> &RuleSpec {
        &self.spec
    }

    /// What the rule counts.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The time of day of the deadline in Europe/Rome; `None` means the end of the last day.
    pub fn at(&self) -> Option<NaiveTime> {
        self.at
    }

    /// Whether a Saturday expiry moves like a holiday.
    pub fn saturday_shift(&self) -> bool {
        self.spec.saturday_shift
    }

    /// Whether an expiry on an office closure moves like a holiday.
    pub fn closures_shift(&self) -> bool {
        self.spec.closures_shift
    }

    /// Whether August (the sospensione feriale) is left out of the count.
    pub fn feriale(&self) -> bool {
        self.spec.feriale
    }
}

impl TryFrom<RuleSpec> for Rule {
    type Error = Error;

    fn try_from(spec: RuleSpec) -> Result<Rule, Error> {
        Rule::new(spec)
    }
}

impl From<Rule> for RuleSpec {
    fn from(rule: Rule) -> RuleSpec {
        rule.spec
    }
}

/// "30 giorni, ore 12:00", "almeno 5 giorni liberi prima", "pubblicazione per 15 giorni
/// consecutivi", followed by the shift policy when it is not the legal default.
impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::Days {
                count,
                backward,
                free,
            } => {
                let days = count_of(count, "giorno", "giorni");
                let free = if free {
                    if count == 1 { " libero" } else { " liberi" }
                } else {
                    ""
                };
                if backward {
                    write!(f, "almeno {days}{free} prima")?;
                } else {
                    write!(f, "{days}{free}")?;
                }
            }
            Kind::Months(count) => f.write_str(&count_of(count, "mese", "mesi"))?,
            Kind::Years(count) => f.write_str(&count_of(count, "anno", "anni"))?,
            Kind::Window(count) => write!(
                f,
                "pubblicazione per {} consecutivi",
                count_of(count, "giorno", "giorni")
            )?,
            Kind::Hours { count, backward } => {
                let hours = count_of(count, "ora", "ore");
                if backward {
                    write!(f, "almeno {hours} prima")?;
                } else {
                    write!(f, "{hours}")?;
                }
            }
        }
        if let Some(at) = self.at {
            write!(f, ", ore {}", at.format("%H:%M"))?;
        }
        if self.spec.saturday_shift {
            f.write_str(", sabato come festivo")?;
        }
        if self.spec.closures_shift {
            f.write_str(", chiusure degli uffici come festivi")?;
        }
        if self.spec.feriale {
            f.write_str(", con sospensione feriale di agosto")?;
        }
        Ok(())
    }
}

/// Parses exactly "HH:MM" (two digits each, 00:00–23:59).
fn parse_hh_mm(text: &str) -> Option<NaiveTime> {
    let bytes = text.as_bytes();
    if bytes.len() != 5 || bytes[2] != b':' {
        return None;
    }
    let digits = [bytes[0], bytes[1], bytes[3], bytes[4]];
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = |tens: u8, units: u8| u32::from(tens - b'0') * 10 + u32::from(units - b'0');
    NaiveTime::from_hms_opt(value(digits[0], digits[1]), value(digits[2], digits[3]), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(n: i64) -> RuleSpec {
        RuleSpec {
            days: Some(n),
            ..RuleSpec::default()
        }
    }

    fn message(spec: RuleSpec) -> String {
        match Rule::new(spec) {
            Err(Error::InvalidRule(message)) => message,
            other => panic!("expected an invalid rule, got {other:?}"),
        }
    }

    #[test]
    fn a_rule_needs_exactly_one_count() {
        assert!(message(RuleSpec::default()).contains("indicare uno tra days"));
        let two = RuleSpec {
            days: Some(3),
            months: Some(1),
            ..RuleSpec::default()
        };
        assert!(message(two).contains("trovati: days, months"));
    }

    #[test]
    fn zero_and_negative_counts_are_refused_with_the_field_name() {
        assert!(message(days(0)).contains("days deve essere almeno 1 (trovato 0)"));
        assert!(message(days(-3)).contains("days deve essere almeno 1 (trovato -3)"));
        let window = RuleSpec {
            window: Some(-1),
            ..RuleSpec::default()
        };
        assert!(message(window).contains("window deve essere almeno 1"));
        let months = RuleSpec {
            months: Some(5_000),
            ..RuleSpec::default()
        };
        assert!(message(months).contains("months deve essere al più 1200"));
    }

    #[test]
    fn backward_and_free_need_days_and_a_window_never_shifts() {
        let backward_months = RuleSpec {
            months: Some(1),
            backward: true,
            ..RuleSpec::default()
        };
        assert!(message(backward_months).contains("backward vale solo con days"));
        let backward_window = RuleSpec {
            window: Some(15),
            backward: true,
            free: true,
            ..RuleSpec::default()
        };
        let text = message(backward_window);
        assert!(text.contains("backward vale solo con days"), "{text}");
        assert!(
            text.contains("free (giorni liberi) vale solo con days"),
            "{text}"
        );
        let shifting_window = RuleSpec {
            window: Some(15),
            saturday_shift: true,
            ..RuleSpec::default()
        };
        assert!(message(shifting_window).contains("non si sposta"));
    }

    #[test]
    fn at_must_be_hh_mm() {
        for bad in [
            "12", "24:00", "12:60", "9:00", "12:00:00", "ab:cd", "", "１2:00",
        ] {
            let spec = RuleSpec {
                at: Some(bad.into()),
                ..days(10)
            };
            assert!(
                message(spec).contains("at deve essere un orario HH:MM"),
                "{bad}"
            );
        }
        let rule = Rule::new(RuleSpec {
            at: Some("00:00".into()),
            ..days(10)
        })
        .expect("valid");
        assert_eq!(rule.at(), NaiveTime::from_hms_opt(0, 0, 0));
        let rule = Rule::new(RuleSpec {
            at: Some("23:59".into()),
            ..days(10)
        })
        .expect("valid");
        assert_eq!(rule.at(), NaiveTime::from_hms_opt(23, 59, 0));
    }

    #[test]
    fn every_problem_is_named_at_once() {
        let spec = RuleSpec {
            months: Some(0),
            free: true,
            at: Some("noon".into()),
            ..RuleSpec::default()
        };
        let text = message(spec);
        assert!(text.contains("months deve essere almeno 1"), "{text}");
        assert!(text.contains("free"), "{text}");
        assert!(text.contains("at deve essere"), "{text}");
    }

    #[test]
    fn rules_read_in_italian() {
        let rule = |spec| Rule::new(spec).expect("valid").to_string();
        assert_eq!(
            rule(RuleSpec {
                at: Some("12:00".into()),
                ..days(30)
            }),
            "30 giorni, ore 12:00"
        );
        assert_eq!(
            rule(RuleSpec {
                backward: true,
                free: true,
                ..days(5)
            }),
            "almeno 5 giorni liberi prima"
        );
        assert_eq!(
            rule(RuleSpec {
                backward: true,
                ..days(1)
            }),
            "almeno 1 giorno prima"
        );
        assert_eq!(
            rule(RuleSpec {
                window: Some(15),
                ..RuleSpec::default()
            }),
            "pubblicazione per 15 giorni consecutivi"
        );
        assert_eq!(
            rule(RuleSpec {
                months: Some(1),
                saturday_shift: true,
                closures_shift: true,
                ..RuleSpec::default()
            }),
            "1 mese, sabato come festivo, chiusure degli uffici come festivi"
        );
        assert_eq!(
            rule(RuleSpec {
                years: Some(2),
                ..RuleSpec::default()
            }),
            "2 anni"
        );
    }

    #[test]
    fn a_rule_round_trips_through_serde_as_its_spec() {
        let spec = RuleSpec {
            at: Some("12:00".into()),
            saturday_shift: true,
            ..days(30)
        };
        let rule = Rule::new(spec.clone()).expect("valid");
        assert_eq!(rule.spec(), &spec);
        let json = serde_json::to_string(&rule).expect("serializes");
        let back: Rule = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, rule);
        let refused =
            serde_json::from_str::<Rule>(r#"{"days": -1}"#).expect_err("negative days are refused");
        assert!(refused.to_string().contains("days deve essere almeno 1"));
        let unknown = serde_json::from_str::<Rule>(r#"{"days": 1, "dayz": 2}"#);
        assert!(unknown.is_err());
    }
}
