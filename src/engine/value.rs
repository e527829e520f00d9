//! Typed values of variables: checking payloads and evaluating expressions. Numbers are
//! decimals (`rust_decimal`): what a score adds up to is exact, and a division is rounded the
//! way the procedure declares.

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value;

use crate::definition::expr::{AggFunc, ArithOp, CmpOp, Expr, Literal};
use crate::definition::{NumberSettings, Rounding, VarType};
use crate::terms::ROME;

/// A value during evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// No value.
    Null,
    /// Boolean.
    Bool(bool),
    /// Decimal number.
    Number(Decimal),
    /// Text.
    Text(String),
    /// Civil date.
    Date(NaiveDate),
    /// Instant.
    DateTime(DateTime<Utc>),
    /// A list (only its length matters to expressions).
    List(usize),
}

/// A JSON number as a decimal (through its text, so `0.1` stays `0.1`).
pub fn decimal(n: &serde_json::Number) -> Option<Decimal> {
    let text = n.to_string();
    Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .ok()
}

/// A decimal as a JSON number.
pub fn number_json(d: Decimal) -> Value {
    serde_json::Number::from_str(&d.normalize().to_string()).map_or(Value::Null, Value::Number)
}

/// Checks a JSON value against a variable type and returns its canonical form, or an Italian
/// description of what was expected.
pub fn check(kind: VarType, value: &Value) -> Result<Value, String> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    match kind {
        VarType::Date => value
            .as_str()
            .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
            .map(|d| Value::String(d.format("%Y-%m-%d").to_string()))
            .ok_or_else(|| "una data AAAA-MM-GG".to_string()),
        VarType::DateTime => value
            .as_str()
            .and_then(parse_instant)
            .map(|dt| Value::String(dt.with_timezone(&ROME).to_rfc3339()))
            .ok_or_else(|| {
                "una data e ora RFC 3339 con fuso (es. 2026-12-28T12:00:00+01:00)".to_string()
            }),
        VarType::Text => value
            .as_str()
            .map(|s| Value::String(s.to_string()))
            .ok_or_else(|| "un testo".to_string()),
        VarType::Number => match value {
            Value::Number(n) => decimal(n)
                .map(number_json)
                .ok_or_else(|| "un numero".to_string()),
            _ => Err("un numero".to_string()),
        },
        VarType::Bool => value
            .as_bool()
            .map(Value::Bool)
            .ok_or_else(|| "vero o falso".to_string()),
        VarType::Parties => {
            let list = value
                .as_array()
                .ok_or_else(|| "un elenco di soggetti".to_string())?;
            for item in list {
                let ok = item.is_string() || item.get("id").is_some_and(Value::is_string);
                if !ok {
                    return Err("un elenco di soggetti (testo, o oggetti con 'id')".to_string());
                }
            }
            Ok(value.clone())
        }
        VarType::List => {
            let list = value
                .as_array()
                .ok_or_else(|| "un elenco di testi".to_string())?;
            if list.iter().all(Value::is_string) {
                Ok(value.clone())
            } else {
                Err("un elenco di testi".to_string())
            }
        }
    }
}

/// The instant a date or datetime value stands for: a datetime as is; a date at the end of
/// that day (the first instant of the next day in Europe/Rome).
pub fn instant_of(kind: VarType, v: &Value) -> Option<DateTime<Utc>> {
    let s = v.as_str()?;
    match kind {
        VarType::DateTime => parse_instant(s),
        _ => {
            let next = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?.succ_opt()?;
            local_instant(next, chrono::NaiveTime::MIN)
        }
    }
}

/// A civil date and time in Europe/Rome as an instant; a time skipped by DST moves forward by
/// the gap, an ambiguous one takes the earlier instant.
pub fn local_instant(date: NaiveDate, time: chrono::NaiveTime) -> Option<DateTime<Utc>> {
    use chrono::TimeZone;
    let naive = date.and_time(time);
    match ROME.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        chrono::LocalResult::Ambiguous(a, _) => Some(a.with_timezone(&Utc)),
        chrono::LocalResult::None => ROME
            .from_local_datetime(&(naive + chrono::Duration::hours(1)))
            .earliest()
            .map(|t| t.with_timezone(&Utc)),
    }
}

fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// Reads a stored value as a `Val` of its declared type.
pub fn to_val(kind: Option<VarType>, value: Option<&Value>) -> Val {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Val::Null;
    };
    match kind {
        Some(VarType::Date) => value
            .as_str()
            .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
            .map_or(Val::Null, Val::Date),
        Some(VarType::DateTime) => value
            .as_str()
            .and_then(parse_instant)
            .map_or(Val::Null, Val::DateTime),
        Some(VarType::Number) => match value {
            Value::Number(n) => decimal(n).map_or(Val::Null, Val::Number),
            _ => Val::Null,
        },
        Some(VarType::Bool) => value.as_bool().map_or(Val::Null, Val::Bool),
        Some(VarType::Parties | VarType::List) => {
            value.as_array().map_or(Val::Null, |a| Val::List(a.len()))
        }
        Some(VarType::Text) | None => value
            .as_str()
            .map_or(Val::Null, |s| Val::Text(s.to_string())),
    }
}

/// Converts back to JSON (for `set`), rounding numbers as the procedure declares.
pub fn to_json(val: &Val, numbers: &NumberSettings) -> Value {
    match val {
        Val::Null | Val::List(_) => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Number(n) => number_json(round(*n, numbers)),
        Val::Text(t) => Value::String(t.clone()),
        Val::Date(d) => Value::String(d.format("%Y-%m-%d").to_string()),
        Val::DateTime(dt) => Value::String(dt.with_timezone(&ROME).to_rfc3339()),
    }
}

/// A decimal rounded to the declared places with the declared rule.
pub fn round(n: Decimal, numbers: &NumberSettings) -> Decimal {
    let strategy = match numbers.rounding {
        Rounding::HalfUp => RoundingStrategy::MidpointAwayFromZero,
        Rounding::HalfEven => RoundingStrategy::MidpointNearestEven,
        Rounding::Down => RoundingStrategy::ToZero,
        Rounding::Up => RoundingStrategy::AwayFromZero,
    };
    n.round_dp_with_strategy(numbers.decimals, strategy)
}

/// A name's value in one scope.
pub type Lookup<'a> = Box<dyn Fn(&str) -> Val + 'a>;

/// What an expression reads: names, and the participants for aggregates.
pub struct Env<'a> {
    /// A name outside aggregates.
    pub lookup: &'a dyn Fn(&str) -> Val,
    /// Each participant still in the procedure (withdrawn ones excluded): a lookup of its
    /// names (its variables, `state`, then the instance's).
    pub participants: &'a [&'a dyn Fn(&str) -> Val],
    /// How divisions round.
    pub numbers: &'a NumberSettings,
}

/// Evaluates an expression. Type errors were excluded at load time; a comparison with a null
/// side is false except `==`/`!=` against null; arithmetic with a null side, a division by
/// zero or an overflow is null. Never panics.
pub fn eval(expr: &Expr, env: &Env<'_>, now: DateTime<Utc>) -> Val {
    match expr {
        Expr::Literal(literal) => literal_val(literal),
        Expr::Now => Val::DateTime(now),
        Expr::Today => Val::Date(now.with_timezone(&ROME).date_naive()),
        Expr::Var(name) => (env.lookup)(name),
        Expr::Count(name) => match (env.lookup)(name) {
            Val::List(n) => Val::Number(Decimal::from(n)),
            _ => Val::Number(Decimal::ZERO),
        },
        Expr::Neg(e) => match eval(e, env, now) {
            Val::Number(n) => Val::Number(-n),
            _ => Val::Null,
        },
        Expr::Arith(a, op, b) => match (eval(a, env, now), eval(b, env, now)) {
            (Val::Number(x), Val::Number(y)) => arith(x, *op, y, env.numbers),
            (Val::Date(d), Val::Number(n)) => shift_days(d, *op, n),
            _ => Val::Null,
        },
        Expr::Not(e) => Val::Bool(!truthy(&eval(e, env, now))),
        Expr::And(a, b) => Val::Bool(truthy(&eval(a, env, now)) && truthy(&eval(b, env, now))),
        Expr::Or(a, b) => Val::Bool(truthy(&eval(a, env, now)) || truthy(&eval(b, env, now))),
        Expr::Compare(a, op, b) => Val::Bool(compare(&eval(a, env, now), *op, &eval(b, env, now))),
        Expr::In(e, items) => {
            let v = eval(e, env, now);
            Val::Bool(
                items
                    .iter()
                    .any(|item| compare(&v, CmpOp::Eq, &literal_val(item))),
            )
        }
        Expr::Aggregate {
            func,
            value,
            filter,
        } => aggregate(*func, value.as_deref(), filter.as_deref(), env, now),
    }
}

fn literal_val(literal: &Literal) -> Val {
    match literal {
        Literal::Null => Val::Null,
        Literal::Bool(b) => Val::Bool(*b),
        Literal::Number(n) => Val::Number(*n),
        Literal::Text(t) => Val::Text(t.clone()),
        Literal::Date(d) => Val::Date(*d),
    }
}

/// A date moved by a whole number of calendar days; anything else has no value.
fn shift_days(d: NaiveDate, op: ArithOp, n: Decimal) -> Val {
    use rust_decimal::prelude::ToPrimitive;
    if !n.fract().is_zero() {
        return Val::Null;
    }
    let Some(days) = n.to_i64().filter(|n| n.unsigned_abs() <= 100_000) else {
        return Val::Null;
    };
    let days = match op {
        ArithOp::Add => days,
        ArithOp::Sub => -days,
        _ => return Val::Null,
    };
    d.checked_add_signed(chrono::Duration::days(days))
        .map_or(Val::Null, Val::Date)
}

fn arith(x: Decimal, op: ArithOp, y: Decimal, numbers: &NumberSettings) -> Val {
    let result = match op {
        ArithOp::Add => x.checked_add(y),
        ArithOp::Sub => x.checked_sub(y),
        ArithOp::Mul => x.checked_mul(y),
        ArithOp::Div => x.checked_div(y).map(|q| round(q, numbers)),
    };
    result.map_or(Val::Null, Val::Number)
}

fn aggregate(
    func: AggFunc,
    value: Option<&Expr>,
    filter: Option<&Expr>,
    env: &Env<'_>,
    now: DateTime<Utc>,
) -> Val {
    let mut count = 0u64;
    let mut numbers: Vec<Decimal> = Vec::new();
    let mut all = true;
    let mut any = false;
    for participant in env.participants {
        let inner = Env {
            lookup: *participant,
            participants: &[],
            numbers: env.numbers,
        };
        if let Some(filter) = filter
            && !truthy(&eval(filter, &inner, now))
        {
            continue;
        }
        count += 1;
        match (func, value) {
            (AggFunc::Sum | AggFunc::Min | AggFunc::Max, Some(v)) => {
                if let Val::Number(n) = eval(v, &inner, now) {
                    numbers.push(n);
                }
            }
            (AggFunc::All | AggFunc::Any, Some(v)) => {
                let holds = truthy(&eval(v, &inner, now));
                all &= holds;
                any |= holds;
            }
            _ => {}
        }
    }
    match func {
        AggFunc::Count => Val::Number(Decimal::from(count)),
        AggFunc::Sum => numbers
            .iter()
            .try_fold(Decimal::ZERO, |acc, n| acc.checked_add(*n))
            .map_or(Val::Null, Val::Number),
        AggFunc::Min => numbers.iter().min().copied().map_or(Val::Null, Val::Number),
        AggFunc::Max => numbers.iter().max().copied().map_or(Val::Null, Val::Number),
        AggFunc::All => Val::Bool(all),
        AggFunc::Any => Val::Bool(any),
    }
}

/// Truth of a value: only `true` is true.
pub fn truthy(v: &Val) -> bool {
    matches!(v, Val::Bool(true))
}

fn compare(a: &Val, op: CmpOp, b: &Val) -> bool {
    use std::cmp::Ordering;
    if matches!(a, Val::Null) || matches!(b, Val::Null) {
        let both = matches!(a, Val::Null) && matches!(b, Val::Null);
        return match op {
            CmpOp::Eq => both,
            CmpOp::Ne => !both,
            _ => false,
        };
    }
    let ord: Option<Ordering> = match (a, b) {
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(y)),
        (Val::Number(x), Val::Number(y)) => Some(x.cmp(y)),
        (Val::Text(x), Val::Text(y)) => Some(x.cmp(y)),
        (Val::Date(x), Val::Date(y)) => Some(x.cmp(y)),
        (Val::DateTime(x), Val::DateTime(y)) => Some(x.cmp(y)),
        (Val::List(x), Val::List(y)) => Some(x.cmp(y)),
        _ => None,
    };
    let Some(ord) = ord else {
        return matches!(op, CmpOp::Ne);
    };
    match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::expr::parse;
    use proptest::prelude::*;

    fn settings() -> NumberSettings {
        NumberSettings::default()
    }

    fn no_names(_: &str) -> Val {
        Val::Null
    }

    fn run(src: &str, participants: &[&dyn Fn(&str) -> Val]) -> Val {
        let numbers = settings();
        let env = Env {
            lookup: &no_names,
            participants,
            numbers: &numbers,
        };
        eval(
            &parse(src).expect("parses"),
            &env,
            DateTime::<Utc>::UNIX_EPOCH,
        )
    }

    fn dec(text: &str) -> Val {
        Val::Number(Decimal::from_str(text).expect("decimal"))
    }

    #[test]
    fn decimals_add_up_exactly_and_division_rounds_as_declared() {
        assert_eq!(run("0.1 + 0.2", &[]), dec("0.3"));
        assert_eq!(run("86.5 * 2 - 0.25", &[]), dec("172.75"));
        assert_eq!(run("10 / 3", &[]), dec("3.33"));
        assert_eq!(run("2 / 3", &[]), dec("0.67"));
        assert_eq!(run("1 / 0", &[]), Val::Null);
        assert_eq!(run("1 / 0 == null", &[]), Val::Bool(true));
        let half_even = NumberSettings {
            decimals: 0,
            rounding: Rounding::HalfEven,
        };
        assert_eq!(
            round(Decimal::from_str("2.5").expect("d"), &half_even),
            Decimal::from(2)
        );
        let half_up = NumberSettings {
            decimals: 0,
            rounding: Rounding::HalfUp,
        };
        assert_eq!(
            round(Decimal::from_str("2.5").expect("d"), &half_up),
            Decimal::from(3)
        );
    }

    #[test]
    fn a_date_moves_by_whole_calendar_days() {
        let day =
            |text: &str| Val::Date(NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date"));
        assert_eq!(run("2026-12-31 + 1", &[]), day("2027-01-01"));
        assert_eq!(run("2027-03-01 - 1", &[]), day("2027-02-28"));
        assert_eq!(run("2027-01-01 + 1.5", &[]), Val::Null);
        assert_eq!(run("2027-01-01 + 1 > 2027-01-01", &[]), Val::Bool(true));
        // Types are checked before: a number minus a date is refused at load time.
        let refused = parse("1 - 2027-01-01")
            .expect("parses")
            .check(&|_: &str| None);
        assert!(refused.is_err());
    }

    #[test]
    fn aggregates_over_participants_skip_what_the_filter_excludes() {
        let a = |name: &str| match name {
            "state" => Val::Text("ammessa".into()),
            "voto" => dec("80.5"),
            _ => Val::Null,
        };
        let b = |name: &str| match name {
            "state" => Val::Text("esclusa".into()),
            "voto" => dec("40"),
            _ => Val::Null,
        };
        let c = |name: &str| match name {
            "state" => Val::Text("ammessa".into()),
            "voto" => dec("60"),
            _ => Val::Null,
        };
        let all: [&dyn Fn(&str) -> Val; 3] = [&a, &b, &c];
        assert_eq!(run("count(participants)", &all), dec("3"));
        assert_eq!(
            run("count(participants where state == 'ammessa')", &all),
            dec("2")
        );
        assert_eq!(
            run("sum(participants, voto where state == 'ammessa')", &all),
            dec("140.5")
        );
        assert_eq!(run("min(participants, voto)", &all), dec("40"));
        assert_eq!(run("max(participants, voto)", &all), dec("80.5"));
        assert_eq!(
            run("all(participants, state in ['ammessa', 'esclusa'])", &all),
            Val::Bool(true)
        );
        assert_eq!(
            run("any(participants, state == 'in_soccorso')", &all),
            Val::Bool(false)
        );
        // None at all: all() holds, any() does not, min is null.
        assert_eq!(run("all(participants, state == 'x')", &[]), Val::Bool(true));
        assert_eq!(run("min(participants, voto)", &[]), Val::Null);
    }

    /// Expressions made of numbers, names and every operator, well or badly typed.
    fn arbitrary_expression() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            (-1000i64..1000).prop_map(|n| n.to_string()),
            (0u32..100000).prop_map(|n| format!("{}.{:02}", n / 100, n % 100)),
            Just("voto".to_owned()),
            Just("state".to_owned()),
            Just("'ammessa'".to_owned()),
            Just("null".to_owned()),
            Just("today".to_owned()),
            Just("2026-12-01".to_owned()),
        ];
        leaf.prop_recursive(6, 64, 4, |inner| {
            prop_oneof![
                (
                    inner.clone(),
                    prop::sample::select(vec!["+", "-", "*", "/", "==", "<", ">=", "and", "or"]),
                    inner.clone()
                )
                    .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
                inner.clone().prop_map(|a| format!("not {a}")),
                inner.clone().prop_map(|a| format!("-{a}")),
                inner
                    .clone()
                    .prop_map(|a| format!("sum(participants, {a})")),
                inner
                    .clone()
                    .prop_map(|a| format!("count(participants where {a})")),
                inner
                    .clone()
                    .prop_map(|a| format!("all(participants, {a})")),
                inner.prop_map(|a| format!("{a} in ['ammessa', 1, null]")),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_text_parses_or_fails_without_panicking(src in ".{0,80}") {
            let _ = parse(&src);
        }

        #[test]
        fn any_expression_evaluates_without_panicking(src in arbitrary_expression()) {
            if let Ok(expr) = parse(&src) {
                let p = |name: &str| match name {
                    "voto" => dec("12.5"),
                    "state" => Val::Text("ammessa".into()),
                    _ => Val::Null,
                };
                let participants: [&dyn Fn(&str) -> Val; 2] = [&p, &p];
                let numbers = settings();
                let env = Env { lookup: &p, participants: &participants, numbers: &numbers };
                let _ = eval(&expr, &env, DateTime::<Utc>::UNIX_EPOCH);
            }
        }

        /// Sums, differences and products of cents agree with integer arithmetic on cents.
        #[test]
        fn arithmetic_agrees_with_integer_cents(
            a in -10_000_000i64..10_000_000,
            b in -10_000_000i64..10_000_000,
            c in -1000i64..1000,
        ) {
            let cents = |n: i64| format!("{}{}.{:02}", if n < 0 { "-" } else { "" }, n.abs() / 100, n.abs() % 100);
            let src = format!("({}) + ({}) * ({}) - ({})", cents(a), cents(b), c, cents(b));
            let expected = i128::from(a) + i128::from(b) * i128::from(c) - i128::from(b);
            let got = run(&src, &[]);
            prop_assert_eq!(got, Val::Number(Decimal::from_i128_with_scale(expected, 2)));
        }

        /// count, sum, min and max over participants agree with the same computed directly.
        #[test]
        fn aggregates_agree_with_a_reference(
            scores in proptest::collection::vec((0i64..10_000, any::<bool>()), 0..30),
        ) {
            let lookups: Vec<Lookup<'_>> = scores
                .iter()
                .map(|(cents, admitted)| {
                    let (cents, admitted) = (*cents, *admitted);
                    Box::new(move |name: &str| match name {
                        "voto" => Val::Number(Decimal::new(cents, 2)),
                        "state" => Val::Text(if admitted { "ammessa" } else { "esclusa" }.into()),
                        _ => Val::Null,
                    }) as Box<dyn Fn(&str) -> Val>
                })
                .collect();
            let refs: Vec<&dyn Fn(&str) -> Val> = lookups.iter().map(|b| b.as_ref()).collect();
            let admitted: Vec<i64> = scores.iter().filter(|(_, a)| *a).map(|(c, _)| *c).collect();
            prop_assert_eq!(
                run("count(participants where state == 'ammessa')", &refs),
                Val::Number(Decimal::from(admitted.len()))
            );
            prop_assert_eq!(
                run("sum(participants, voto where state == 'ammessa')", &refs),
                Val::Number(Decimal::new(admitted.iter().sum(), 2))
            );
            let all: Vec<i64> = scores.iter().map(|(c, _)| *c).collect();
            prop_assert_eq!(
                run("min(participants, voto)", &refs),
                all.iter().min().map_or(Val::Null, |m| Val::Number(Decimal::new(*m, 2)))
            );
            prop_assert_eq!(
                run("max(participants, voto)", &refs),
                all.iter().max().map_or(Val::Null, |m| Val::Number(Decimal::new(*m, 2)))
            );
            prop_assert_eq!(
                run("all(participants, state == 'ammessa')", &refs),
                Val::Bool(admitted.len() == scores.len())
            );
        }
    }
}
