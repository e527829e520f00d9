//! Typed values of variables: checking payloads and evaluating expressions.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use crate::definition::VarType;
use crate::definition::expr::{CmpOp, Expr, Literal};
use crate::terms::ROME;

/// A value during evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// No value.
    Null,
    /// Boolean.
    Bool(bool),
    /// Number.
    Number(f64),
    /// Text.
    Text(String),
    /// Civil date.
    Date(NaiveDate),
    /// Instant.
    DateTime(DateTime<Utc>),
    /// A party list (only its length matters to expressions).
    List(usize),
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
        VarType::Number => value
            .as_f64()
            .map(|_| value.clone())
            .ok_or_else(|| "un numero".to_string()),
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
        Some(VarType::Number) => value.as_f64().map_or(Val::Null, Val::Number),
        Some(VarType::Bool) => value.as_bool().map_or(Val::Null, Val::Bool),
        Some(VarType::Parties | VarType::List) => {
            value.as_array().map_or(Val::Null, |a| Val::List(a.len()))
        }
        Some(VarType::Text) | None => value
            .as_str()
            .map_or(Val::Null, |s| Val::Text(s.to_string())),
    }
}

/// Converts back to JSON (for `set`).
pub fn to_json(val: &Val) -> Value {
    match val {
        Val::Null | Val::List(_) => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Number(n) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
        Val::Text(t) => Value::String(t.clone()),
        Val::Date(d) => Value::String(d.format("%Y-%m-%d").to_string()),
        Val::DateTime(dt) => Value::String(dt.with_timezone(&ROME).to_rfc3339()),
    }
}

/// Evaluates an expression. Type errors were excluded at load time; a comparison with a null
/// side is false except `==`/`!=` against null.
pub fn eval(expr: &Expr, lookup: &dyn Fn(&str) -> Val, now: DateTime<Utc>) -> Val {
    match expr {
        Expr::Literal(Literal::Null) => Val::Null,
        Expr::Literal(Literal::Bool(b)) => Val::Bool(*b),
        Expr::Literal(Literal::Number(n)) => Val::Number(*n),
        Expr::Literal(Literal::Text(t)) => Val::Text(t.clone()),
        Expr::Literal(Literal::Date(d)) => Val::Date(*d),
        Expr::Now => Val::DateTime(now),
        Expr::Today => Val::Date(now.with_timezone(&ROME).date_naive()),
        Expr::Var(name) => lookup(name),
        Expr::Count(name) => match lookup(name) {
            Val::List(n) => Val::Number(n as f64),
            _ => Val::Number(0.0),
        },
        Expr::Not(e) => Val::Bool(!truthy(&eval(e, lookup, now))),
        Expr::And(a, b) => {
            Val::Bool(truthy(&eval(a, lookup, now)) && truthy(&eval(b, lookup, now)))
        }
        Expr::Or(a, b) => Val::Bool(truthy(&eval(a, lookup, now)) || truthy(&eval(b, lookup, now))),
        Expr::Compare(a, op, b) => {
            Val::Bool(compare(&eval(a, lookup, now), *op, &eval(b, lookup, now)))
        }
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
        (Val::Number(x), Val::Number(y)) => x.partial_cmp(y),
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
