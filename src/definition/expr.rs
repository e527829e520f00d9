//! The guard and assignment language: small, typed, checked at load time.
//!
//! ```text
//! expr    := and ("or" and)*
//! and     := unary ("and" unary)*
//! unary   := "not" unary | compare
//! compare := operand (("==" | "!=" | "<" | "<=" | ">" | ">=") operand)?
//! operand := name | number | 'text' | "text" | true | false | null | YYYY-MM-DD | now | today
//!          | count(name) | "(" expr ")"
//! ```
//! `now` is the instant of the command, `today` its civil date in Europe/Rome. A name is a
//! variable of the procedure. `count(name)` is the length of a party list.

use std::fmt;

use chrono::NaiveDate;
use serde::Serialize;

use super::model::VarType;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Expr {
    /// A literal value.
    Literal(Literal),
    /// A variable of the instance.
    Var(String),
    /// The command's instant.
    Now,
    /// The command's civil date (Europe/Rome).
    Today,
    /// Length of a party list.
    Count(String),
    /// Negation.
    Not(Box<Expr>),
    /// Conjunction.
    And(Box<Expr>, Box<Expr>),
    /// Disjunction.
    Or(Box<Expr>, Box<Expr>),
    /// Comparison.
    Compare(Box<Expr>, CmpOp, Box<Expr>),
}

/// A literal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Literal {
    /// `null`: the variable has no value.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number.
    Number(f64),
    /// Quoted text.
    Text(String),
    /// A civil date.
    Date(NaiveDate),
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl fmt::Display for CmpOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        })
    }
}

/// A parse or type error, with the character offset in the expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (carattere {offset})")]
pub struct ExprError {
    /// 0-based character offset inside the expression text.
    pub offset: usize,
    /// What is wrong, in Italian.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Number(f64),
    Text(String),
    Date(NaiveDate),
    Op(CmpOp),
    LParen,
    RParen,
}

fn tokenize(src: &str) -> Result<Vec<(usize, Tok)>, ExprError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        match c {
            '(' => {
                out.push((start, Tok::LParen));
                i += 1;
            }
            ')' => {
                out.push((start, Tok::RParen));
                i += 1;
            }
            '\'' | '"' => {
                let quote = c;
                i += 1;
                let mut text = String::new();
                while i < chars.len() && chars[i] != quote {
                    text.push(chars[i]);
                    i += 1;
                }
                if i >= chars.len() {
                    return Err(ExprError {
                        offset: start,
                        message: "testo tra virgolette non chiuso".into(),
                    });
                }
                i += 1;
                out.push((start, Tok::Text(text)));
            }
            '=' | '!' | '<' | '>' => {
                let next = chars.get(i + 1).copied();
                let (op, len) = match (c, next) {
                    ('=', Some('=')) => (CmpOp::Eq, 2),
                    ('!', Some('=')) => (CmpOp::Ne, 2),
                    ('<', Some('=')) => (CmpOp::Le, 2),
                    ('>', Some('=')) => (CmpOp::Ge, 2),
                    ('<', _) => (CmpOp::Lt, 1),
                    ('>', _) => (CmpOp::Gt, 1),
                    _ => {
                        return Err(ExprError {
                            offset: start,
                            message: format!(
                                "operatore sconosciuto '{c}' (usare ==, !=, <, <=, >, >=)"
                            ),
                        });
                    }
                };
                out.push((start, Tok::Op(op)));
                i += len;
            }
            c if c.is_ascii_digit() || c == '-' => {
                let mut j = i + 1;
                while j < chars.len()
                    && (chars[j].is_ascii_digit() || chars[j] == '.' || chars[j] == '-')
                {
                    j += 1;
                }
                let word: String = chars[i..j].iter().collect();
                if word.len() == 10 && word.as_bytes()[4] == b'-' {
                    let date =
                        NaiveDate::parse_from_str(&word, "%Y-%m-%d").map_err(|_| ExprError {
                            offset: start,
                            message: format!("data non valida '{word}' (formato AAAA-MM-GG)"),
                        })?;
                    out.push((start, Tok::Date(date)));
                } else {
                    let number: f64 = word.parse().map_err(|_| ExprError {
                        offset: start,
                        message: format!("numero non valido '{word}'"),
                    })?;
                    out.push((start, Tok::Number(number)));
                }
                i = j;
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut j = i + 1;
                while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                out.push((start, Tok::Ident(chars[i..j].iter().collect())));
                i = j;
            }
            other => {
                return Err(ExprError {
                    offset: start,
                    message: format!("carattere inatteso '{other}'"),
                });
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }
    fn offset(&self) -> usize {
        self.toks.get(self.pos).map(|(o, _)| *o).unwrap_or(self.end)
    }
    fn keyword(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Ident(w)) if w == word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }
    fn unary(&mut self) -> Result<Expr, ExprError> {
        if self.keyword("not") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        let left = self.operand()?;
        if let Some(Tok::Op(op)) = self.peek().cloned() {
            self.pos += 1;
            let right = self.operand()?;
            return Ok(Expr::Compare(Box::new(left), op, Box::new(right)));
        }
        Ok(left)
    }
    fn operand(&mut self) -> Result<Expr, ExprError> {
        let offset = self.offset();
        let Some(tok) = self.peek().cloned() else {
            return Err(ExprError {
                offset,
                message: "espressione incompleta".into(),
            });
        };
        self.pos += 1;
        Ok(match tok {
            Tok::Number(n) => Expr::Literal(Literal::Number(n)),
            Tok::Text(t) => Expr::Literal(Literal::Text(t)),
            Tok::Date(d) => Expr::Literal(Literal::Date(d)),
            Tok::LParen => {
                let inner = self.or()?;
                if self.peek() != Some(&Tok::RParen) {
                    return Err(ExprError {
                        offset: self.offset(),
                        message: "manca ')'".into(),
                    });
                }
                self.pos += 1;
                inner
            }
            Tok::Ident(word) => match word.as_str() {
                "true" => Expr::Literal(Literal::Bool(true)),
                "false" => Expr::Literal(Literal::Bool(false)),
                "null" => Expr::Literal(Literal::Null),
                "now" => Expr::Now,
                "today" => Expr::Today,
                "and" | "or" | "not" => {
                    return Err(ExprError {
                        offset,
                        message: format!("'{word}' non è un valore"),
                    });
                }
                "count" if self.peek() == Some(&Tok::LParen) => {
                    self.pos += 1;
                    let name_offset = self.offset();
                    let Some(Tok::Ident(name)) = self.peek().cloned() else {
                        return Err(ExprError {
                            offset: name_offset,
                            message: "count() vuole il nome di una variabile".into(),
                        });
                    };
                    self.pos += 1;
                    if self.peek() != Some(&Tok::RParen) {
                        return Err(ExprError {
                            offset: self.offset(),
                            message: "manca ')'".into(),
                        });
                    }
                    self.pos += 1;
                    Expr::Count(name)
                }
                _ => Expr::Var(word),
            },
            Tok::RParen | Tok::Op(_) => {
                return Err(ExprError {
                    offset,
                    message: "atteso un valore".into(),
                });
            }
        })
    }
}

/// Parses an expression.
pub fn parse(src: &str) -> Result<Expr, ExprError> {
    let toks = tokenize(src)?;
    let mut parser = Parser {
        toks,
        pos: 0,
        end: src.chars().count(),
    };
    let expr = parser.or()?;
    if parser.pos < parser.toks.len() {
        return Err(ExprError {
            offset: parser.offset(),
            message: "testo in più dopo l'espressione".into(),
        });
    }
    Ok(expr)
}

/// The static type of an expression, for load-time checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExprType {
    /// `null` fits any type.
    Null,
    /// A variable or literal of a declared type.
    Of(VarType),
}

impl Expr {
    /// Every variable name the expression reads.
    pub fn variables(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_vars(&mut out);
        out
    }

    fn collect_vars<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::Var(name) | Expr::Count(name) => out.push(name),
            Expr::Not(e) => e.collect_vars(out),
            Expr::And(a, b) | Expr::Or(a, b) | Expr::Compare(a, _, b) => {
                a.collect_vars(out);
                b.collect_vars(out);
            }
            Expr::Literal(_) | Expr::Now | Expr::Today => {}
        }
    }

    /// Type-checks against declared variable types; `lookup` returns `None` for unknown names.
    pub fn check(&self, lookup: &dyn Fn(&str) -> Option<VarType>) -> Result<ExprType, String> {
        use VarType::*;
        Ok(match self {
            Expr::Literal(Literal::Null) => ExprType::Null,
            Expr::Literal(Literal::Bool(_)) => ExprType::Of(Bool),
            Expr::Literal(Literal::Number(_)) => ExprType::Of(Number),
            Expr::Literal(Literal::Text(_)) => ExprType::Of(Text),
            Expr::Literal(Literal::Date(_)) => ExprType::Of(Date),
            Expr::Now => ExprType::Of(DateTime),
            Expr::Today => ExprType::Of(Date),
            Expr::Var(name) => ExprType::Of(
                lookup(name).ok_or_else(|| format!("variabile non dichiarata '{name}'"))?,
            ),
            Expr::Count(name) => match lookup(name) {
                Some(Parties | List) => ExprType::Of(Number),
                Some(other) => {
                    return Err(format!(
                        "count({name}): '{name}' è di tipo {other}, serve un elenco di soggetti"
                    ));
                }
                None => return Err(format!("variabile non dichiarata '{name}'")),
            },
            Expr::Not(e) => {
                e.check(lookup)?;
                ExprType::Of(Bool)
            }
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.check(lookup)?;
                b.check(lookup)?;
                ExprType::Of(Bool)
            }
            Expr::Compare(a, op, b) => {
                let left = a.check(lookup)?;
                let right = b.check(lookup)?;
                if let (ExprType::Of(l), ExprType::Of(r)) = (left, right) {
                    if l != r {
                        return Err(format!("confronto tra tipi diversi: {l} {op} {r}"));
                    }
                    if !matches!(op, CmpOp::Eq | CmpOp::Ne)
                        && matches!(l, Bool | Parties | List | Text)
                    {
                        return Err(format!("l'operatore {op} non si applica al tipo {l}"));
                    }
                }
                ExprType::Of(Bool)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(name: &str) -> Option<VarType> {
        match name {
            "punteggio" => Some(VarType::Number),
            "scadenza" => Some(VarType::DateTime),
            "ammessi" => Some(VarType::Parties),
            "nota" => Some(VarType::Text),
            _ => None,
        }
    }

    #[test]
    fn parses_comparisons_with_precedence() {
        let e = parse("punteggio >= 60 and not (nota == 'x' or nota == null)").unwrap();
        assert!(matches!(e, Expr::And(_, _)));
        assert_eq!(e.variables(), vec!["punteggio", "nota", "nota"]);
        assert_eq!(e.check(&types), Ok(ExprType::Of(VarType::Bool)));
    }

    #[test]
    fn dates_and_count_parse() {
        let e = parse("today >= 2026-12-01 and count(ammessi) > 0").unwrap();
        assert_eq!(e.check(&types), Ok(ExprType::Of(VarType::Bool)));
    }

    #[test]
    fn type_mismatch_is_reported() {
        let e = parse("now <= punteggio").unwrap();
        let err = e.check(&types).unwrap_err();
        assert!(err.contains("tipi diversi"), "{err}");
    }

    #[test]
    fn unknown_variable_is_reported() {
        let err = parse("ghost > 1").unwrap().check(&types).unwrap_err();
        assert!(err.contains("ghost"));
    }

    #[test]
    fn syntax_errors_carry_offsets() {
        assert_eq!(parse("punteggio >= ").unwrap_err().offset, 13);
        assert_eq!(parse("(a == 1").unwrap_err().message, "manca ')'");
        assert!(parse("a = 1").is_err());
        assert!(parse("'open").is_err());
    }
}
