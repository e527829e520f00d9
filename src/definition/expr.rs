//! The expression language of guards, assignments, `when:` conditions and recipient filters:
//! small, typed and checked at load time, with Italian messages that name the character.
//!
//! ```text
//! expr      := and ("or" and)*
//! and       := unary ("and" unary)*
//! unary     := "not" unary | compare
//! compare   := sum (("==" | "!=" | "<" | "<=" | ">" | ">=") sum | "in" "[" literal ("," literal)* "]")?
//! sum       := product (("+" | "-") product)*
//! product   := prefix (("*" | "/") prefix)*
//! prefix    := "-" prefix | operand
//! operand   := name | number | 'text' | "text" | true | false | null | YYYY-MM-DD | now | today
//!            | count(name)                                   -- length of a list variable
//!            | count(participants [where expr])              -- participants that satisfy expr
//!            | sum|min|max(participants, expr [where expr])  -- over a number expression
//!            | all|any(participants, expr)
//!            | "(" expr ")"
//! ```
//! `now` is the instant of the command, `today` its civil date in Europe/Rome. A name is a
//! variable of the procedure; inside an aggregate over `participants` it is a variable of
//! the participant (or `state`, its state), else of the procedure.
//!
//! Numbers are decimals (never binary floating point: a score of 86.5 decides an outcome):
//! `+ - *` are exact, `/` is rounded to the procedure's declared decimals with its rounding
//! rule, a division by zero gives no value (`null`), as does an overflow. Participants that
//! withdrew their application are not counted.

use std::fmt;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;

use super::model::VarType;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Expr {
    /// A literal value.
    Literal(Literal),
    /// A variable of the instance (or of the participant, inside an aggregate).
    Var(String),
    /// The command's instant.
    Now,
    /// The command's civil date (Europe/Rome).
    Today,
    /// Length of a list variable.
    Count(String),
    /// Arithmetic negation.
    Neg(Box<Expr>),
    /// Arithmetic.
    Arith(Box<Expr>, ArithOp, Box<Expr>),
    /// Negation.
    Not(Box<Expr>),
    /// Conjunction.
    And(Box<Expr>, Box<Expr>),
    /// Disjunction.
    Or(Box<Expr>, Box<Expr>),
    /// Comparison.
    Compare(Box<Expr>, CmpOp, Box<Expr>),
    /// Membership in a list of literals.
    In(Box<Expr>, Vec<Literal>),
    /// An aggregate over the instance's participants.
    Aggregate {
        /// What it computes.
        func: AggFunc,
        /// The value for each participant (sum, min, max, all, any).
        value: Option<Box<Expr>>,
        /// Which participants count.
        filter: Option<Box<Expr>>,
    },
}

/// A literal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Literal {
    /// `null`: the variable has no value.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A decimal number.
    Number(Decimal),
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

/// Arithmetic operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ArithOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
}

impl fmt::Display for ArithOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
        })
    }
}

/// Aggregates over participants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AggFunc {
    /// How many.
    Count,
    /// Sum of a number.
    Sum,
    /// Least of a number.
    Min,
    /// Greatest of a number.
    Max,
    /// Every one satisfies a condition (true when there are none).
    All,
    /// At least one satisfies a condition.
    Any,
}

impl AggFunc {
    fn name(self) -> &'static str {
        match self {
            AggFunc::Count => "count",
            AggFunc::Sum => "sum",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
            AggFunc::All => "all",
            AggFunc::Any => "any",
        }
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

/// The deepest nesting the parser accepts: a guard is a line, not a program.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Number(Decimal),
    Text(String),
    Date(NaiveDate),
    Op(CmpOp),
    Arith(ArithOp),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
}

fn tokenize(src: &str) -> Result<Vec<(usize, Tok)>, ExprError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out: Vec<(usize, Tok)> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let simple = match c {
            '(' => Some(Tok::LParen),
            ')' => Some(Tok::RParen),
            '[' => Some(Tok::LBracket),
            ']' => Some(Tok::RBracket),
            ',' => Some(Tok::Comma),
            '+' => Some(Tok::Arith(ArithOp::Add)),
            '-' => Some(Tok::Arith(ArithOp::Sub)),
            '*' => Some(Tok::Arith(ArithOp::Mul)),
            '/' => Some(Tok::Arith(ArithOp::Div)),
            _ => None,
        };
        if let Some(tok) = simple {
            out.push((start, tok));
            i += 1;
            continue;
        }
        match c {
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
            c if c.is_ascii_digit() => {
                // A date is four digits, '-', two, '-', two.
                let date_like = i + 10 <= chars.len()
                    && chars[i..i + 4].iter().all(char::is_ascii_digit)
                    && chars[i + 4] == '-'
                    && chars[i + 5..i + 7].iter().all(char::is_ascii_digit)
                    && chars[i + 7] == '-'
                    && chars[i + 8..i + 10].iter().all(char::is_ascii_digit);
                if date_like {
                    let word: String = chars[i..i + 10].iter().collect();
                    let date =
                        NaiveDate::parse_from_str(&word, "%Y-%m-%d").map_err(|_| ExprError {
                            offset: start,
                            message: format!("data non valida '{word}' (formato AAAA-MM-GG)"),
                        })?;
                    out.push((start, Tok::Date(date)));
                    i += 10;
                    continue;
                }
                let mut j = i + 1;
                while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == '.') {
                    j += 1;
                }
                let word: String = chars[i..j].iter().collect();
                let number: Decimal = word.parse().map_err(|_| ExprError {
                    offset: start,
                    message: format!("numero non valido '{word}'"),
                })?;
                out.push((start, Tok::Number(number)));
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
    depth: usize,
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
    fn expect(&mut self, tok: &Tok, what: &str) -> Result<(), ExprError> {
        if self.peek() == Some(tok) {
            self.pos += 1;
            Ok(())
        } else {
            Err(ExprError {
                offset: self.offset(),
                message: format!("manca {what}"),
            })
        }
    }
    fn deeper(&mut self) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ExprError {
                offset: self.offset(),
                message: "espressione troppo annidata".into(),
            });
        }
        Ok(())
    }
    fn or(&mut self) -> Result<Expr, ExprError> {
        self.deeper()?;
        let mut left = self.and()?;
        while self.keyword("or") {
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        self.depth -= 1;
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
            self.deeper()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        let left = self.sum()?;
        if let Some(Tok::Op(op)) = self.peek().cloned() {
            self.pos += 1;
            let right = self.sum()?;
            return Ok(Expr::Compare(Box::new(left), op, Box::new(right)));
        }
        if self.keyword("in") {
            self.expect(&Tok::LBracket, "'[' dopo 'in'")?;
            let mut items = Vec::new();
            loop {
                let offset = self.offset();
                match self.operand()? {
                    Expr::Literal(literal) => items.push(literal),
                    Expr::Neg(inner) => match *inner {
                        Expr::Literal(Literal::Number(n)) => items.push(Literal::Number(-n)),
                        _ => {
                            return Err(ExprError {
                                offset,
                                message: "in [...] vuole valori costanti".into(),
                            });
                        }
                    },
                    _ => {
                        return Err(ExprError {
                            offset,
                            message: "in [...] vuole valori costanti".into(),
                        });
                    }
                }
                if self.peek() == Some(&Tok::Comma) {
                    self.pos += 1;
                    continue;
                }
                self.expect(&Tok::RBracket, "']'")?;
                break;
            }
            return Ok(Expr::In(Box::new(left), items));
        }
        Ok(left)
    }
    fn sum(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.product()?;
        while let Some(Tok::Arith(op @ (ArithOp::Add | ArithOp::Sub))) = self.peek().cloned() {
            self.pos += 1;
            let right = self.product()?;
            left = Expr::Arith(Box::new(left), op, Box::new(right));
        }
        Ok(left)
    }
    fn product(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.prefix()?;
        while let Some(Tok::Arith(op @ (ArithOp::Mul | ArithOp::Div))) = self.peek().cloned() {
            self.pos += 1;
            let right = self.prefix()?;
            left = Expr::Arith(Box::new(left), op, Box::new(right));
        }
        Ok(left)
    }
    fn prefix(&mut self) -> Result<Expr, ExprError> {
        if self.peek() == Some(&Tok::Arith(ArithOp::Sub)) {
            self.pos += 1;
            self.deeper()?;
            let inner = self.prefix()?;
            self.depth -= 1;
            return Ok(match inner {
                Expr::Literal(Literal::Number(n)) => Expr::Literal(Literal::Number(-n)),
                other => Expr::Neg(Box::new(other)),
            });
        }
        self.operand()
    }
    /// `(participants [where expr])` or `(participants, expr [where expr])`, after the name.
    fn aggregate(&mut self, func: AggFunc, offset: usize) -> Result<Expr, ExprError> {
        self.expect(&Tok::LParen, "'('")?;
        if !self.keyword("participants") {
            return Err(ExprError {
                offset: self.offset(),
                message: format!(
                    "{}(...) si calcola sui partecipanti: scrivere {}(participants{})",
                    func.name(),
                    func.name(),
                    if func == AggFunc::Count {
                        " where ..."
                    } else {
                        ", ..."
                    }
                ),
            });
        }
        let value = if func == AggFunc::Count {
            None
        } else {
            self.expect(
                &Tok::Comma,
                "',' e il valore da calcolare per ogni partecipante",
            )?;
            Some(Box::new(self.or()?))
        };
        let filter = if self.keyword("where") {
            Some(Box::new(self.or()?))
        } else {
            None
        };
        if matches!(func, AggFunc::All | AggFunc::Any) && filter.is_some() {
            return Err(ExprError {
                offset,
                message: format!(
                    "{}(participants, condizione) non ha 'where': mettere tutto nella condizione",
                    func.name()
                ),
            });
        }
        self.expect(&Tok::RParen, "')'")?;
        Ok(Expr::Aggregate {
            func,
            value,
            filter,
        })
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
                self.expect(&Tok::RParen, "')'")?;
                inner
            }
            Tok::Ident(word) => {
                let call = self.peek() == Some(&Tok::LParen);
                match word.as_str() {
                    "true" => Expr::Literal(Literal::Bool(true)),
                    "false" => Expr::Literal(Literal::Bool(false)),
                    "null" => Expr::Literal(Literal::Null),
                    "now" => Expr::Now,
                    "today" => Expr::Today,
                    "and" | "or" | "not" | "in" | "where" => {
                        return Err(ExprError {
                            offset,
                            message: format!("'{word}' non è un valore"),
                        });
                    }
                    "participants" => {
                        return Err(ExprError {
                            offset,
                            message: "'participants' si usa dentro count, sum, min, max, all, any"
                                .into(),
                        });
                    }
                    "count"
                        if call
                            && matches!(self.toks.get(self.pos + 1), Some((_, Tok::Ident(w))) if w != "participants") =>
                    {
                        self.pos += 1;
                        let Some(Tok::Ident(name)) = self.peek().cloned() else {
                            return Err(ExprError {
                                offset: self.offset(),
                                message: "count() vuole il nome di una variabile".into(),
                            });
                        };
                        self.pos += 1;
                        self.expect(&Tok::RParen, "')'")?;
                        Expr::Count(name)
                    }
                    "count" if call => self.aggregate(AggFunc::Count, offset)?,
                    "sum" if call => self.aggregate(AggFunc::Sum, offset)?,
                    "min" if call => self.aggregate(AggFunc::Min, offset)?,
                    "max" if call => self.aggregate(AggFunc::Max, offset)?,
                    "all" if call => self.aggregate(AggFunc::All, offset)?,
                    "any" if call => self.aggregate(AggFunc::Any, offset)?,
                    _ if call => {
                        return Err(ExprError {
                            offset,
                            message: format!(
                                "funzione sconosciuta '{word}' (ammesse: count, sum, min, max, all, any)"
                            ),
                        });
                    }
                    _ => Expr::Var(word),
                }
            }
            Tok::RParen
            | Tok::Op(_)
            | Tok::Arith(_)
            | Tok::LBracket
            | Tok::RBracket
            | Tok::Comma => {
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
        depth: 0,
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

/// The declared type of a name, `None` when it is not declared.
pub type TypeLookup<'a> = &'a dyn Fn(&str) -> Option<VarType>;

/// The names an expression may read, with their types.
pub struct Scope<'a> {
    /// The names outside aggregates.
    pub names: &'a dyn Fn(&str) -> Option<VarType>,
    /// The names inside an aggregate over participants (the participant's variables and
    /// `state`); `None` when the procedure has no participants.
    pub participant: Option<TypeLookup<'a>>,
}

impl Expr {
    /// Every variable name the expression reads outside aggregates.
    pub fn variables(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_vars(&mut out);
        out
    }

    fn collect_vars<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::Var(name) | Expr::Count(name) => out.push(name),
            Expr::Not(e) | Expr::Neg(e) | Expr::In(e, _) => e.collect_vars(out),
            Expr::And(a, b) | Expr::Or(a, b) | Expr::Compare(a, _, b) | Expr::Arith(a, _, b) => {
                a.collect_vars(out);
                b.collect_vars(out);
            }
            Expr::Literal(_) | Expr::Now | Expr::Today | Expr::Aggregate { .. } => {}
        }
    }

    /// Type-checks against declared variable types; `lookup` returns `None` for unknown names.
    /// Aggregates over participants are refused (see [`Expr::check_in`]).
    pub fn check(&self, lookup: &dyn Fn(&str) -> Option<VarType>) -> Result<ExprType, String> {
        self.check_in(&Scope {
            names: lookup,
            participant: None,
        })
    }

    /// Type-checks in a scope.
    pub fn check_in(&self, scope: &Scope<'_>) -> Result<ExprType, String> {
        use VarType::*;
        Ok(match self {
            Expr::Literal(literal) => literal_type(literal),
            Expr::Now => ExprType::Of(DateTime),
            Expr::Today => ExprType::Of(Date),
            Expr::Var(name) => ExprType::Of(
                (scope.names)(name).ok_or_else(|| format!("variabile non dichiarata '{name}'"))?,
            ),
            Expr::Count(name) => match (scope.names)(name) {
                Some(Parties | List) => ExprType::Of(Number),
                Some(other) => {
                    return Err(format!(
                        "count({name}): '{name}' è di tipo {other}, serve un elenco"
                    ));
                }
                None => return Err(format!("variabile non dichiarata '{name}'")),
            },
            Expr::Neg(e) => {
                number(e.check_in(scope)?, "il segno meno")?;
                ExprType::Of(Number)
            }
            Expr::Arith(a, op, b) => {
                let left = a.check_in(scope)?;
                // A date plus or minus a number of calendar days is a date (no holiday shift:
                // a legal term is a `term:`, not an expression).
                if left == ExprType::Of(Date) && matches!(op, ArithOp::Add | ArithOp::Sub) {
                    number(b.check_in(scope)?, &format!("data {op} giorni"))?;
                    return Ok(ExprType::Of(Date));
                }
                number(left, &format!("l'operatore {op}"))?;
                number(b.check_in(scope)?, &format!("l'operatore {op}"))?;
                ExprType::Of(Number)
            }
            Expr::Not(e) => {
                boolean(e.check_in(scope)?, "not")?;
                ExprType::Of(Bool)
            }
            Expr::And(a, b) | Expr::Or(a, b) => {
                boolean(a.check_in(scope)?, "and/or")?;
                boolean(b.check_in(scope)?, "and/or")?;
                ExprType::Of(Bool)
            }
            Expr::Compare(a, op, b) => {
                let left = a.check_in(scope)?;
                let right = b.check_in(scope)?;
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
            Expr::In(e, items) => {
                let t = e.check_in(scope)?;
                for item in items {
                    if let (ExprType::Of(l), ExprType::Of(r)) = (t, literal_type(item))
                        && l != r
                    {
                        return Err(format!(
                            "in [...]: un {r} in un elenco confrontato con un {l}"
                        ));
                    }
                }
                ExprType::Of(Bool)
            }
            Expr::Aggregate {
                func,
                value,
                filter,
            } => {
                let Some(participant) = scope.participant else {
                    return Err(format!(
                        "{}(participants ...): la procedura non dichiara i partecipanti (participant:)",
                        func.name()
                    ));
                };
                // Inside, the participant's names come first; the instance's stay readable;
                // aggregates do not nest.
                let inner_names = |name: &str| participant(name).or_else(|| (scope.names)(name));
                let inner = Scope {
                    names: &inner_names,
                    participant: None,
                };
                if let Some(filter) = filter {
                    boolean(filter.check_in(&inner)?, "where")?;
                }
                match (func, value) {
                    (AggFunc::Count, _) => ExprType::Of(Number),
                    (AggFunc::Sum | AggFunc::Min | AggFunc::Max, Some(v)) => {
                        number(v.check_in(&inner)?, func.name())?;
                        ExprType::Of(Number)
                    }
                    (AggFunc::All | AggFunc::Any, Some(v)) => {
                        boolean(v.check_in(&inner)?, func.name())?;
                        ExprType::Of(Bool)
                    }
                    _ => return Err(format!("{}: manca il valore", func.name())),
                }
            }
        })
    }
}

fn literal_type(literal: &Literal) -> ExprType {
    match literal {
        Literal::Null => ExprType::Null,
        Literal::Bool(_) => ExprType::Of(VarType::Bool),
        Literal::Number(_) => ExprType::Of(VarType::Number),
        Literal::Text(_) => ExprType::Of(VarType::Text),
        Literal::Date(_) => ExprType::Of(VarType::Date),
    }
}

fn number(t: ExprType, what: &str) -> Result<(), String> {
    match t {
        ExprType::Null | ExprType::Of(VarType::Number) => Ok(()),
        ExprType::Of(other) => Err(format!("{what} vuole numeri, non {other}")),
    }
}

fn boolean(t: ExprType, what: &str) -> Result<(), String> {
    match t {
        ExprType::Null | ExprType::Of(VarType::Bool) => Ok(()),
        ExprType::Of(other) => Err(format!(
            "{what} vuole una condizione vera o falsa, non {other}"
        )),
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

    fn participant_types(name: &str) -> Option<VarType> {
        match name {
            "state" => Some(VarType::Text),
            "voto" => Some(VarType::Number),
            _ => None,
        }
    }

    fn scope() -> Scope<'static> {
        Scope {
            names: &types,
            participant: Some(&participant_types),
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
    fn arithmetic_binds_tighter_than_comparison_and_products_than_sums() {
        let e = parse("punteggio * 2 - 10 / 4 >= 60").unwrap();
        let Expr::Compare(left, CmpOp::Ge, _) = &e else {
            panic!("{e:?}")
        };
        assert!(
            matches!(**left, Expr::Arith(_, ArithOp::Sub, _)),
            "{left:?}"
        );
        assert_eq!(e.check(&types), Ok(ExprType::Of(VarType::Bool)));
        assert!(parse("punteggio-1 > -2.5").is_ok());
        assert_eq!(
            parse("-2.5").unwrap(),
            Expr::Literal(Literal::Number(Decimal::new(-25, 1)))
        );
    }

    #[test]
    fn aggregates_read_the_participant_and_refuse_without_participants() {
        let e = parse("count(participants where state == 'ammessa') > 0 and all(participants, state in ['ammessa', 'esclusa'])").unwrap();
        assert_eq!(e.check_in(&scope()), Ok(ExprType::Of(VarType::Bool)));
        let sum =
            parse("sum(participants, voto where state == 'ammessa') / 2 >= punteggio").unwrap();
        assert_eq!(sum.check_in(&scope()), Ok(ExprType::Of(VarType::Bool)));
        let err = e.check(&types).unwrap_err();
        assert!(err.contains("participant:"), "{err}");
        let wrong = parse("sum(participants, state) > 1").unwrap();
        assert!(wrong.check_in(&scope()).unwrap_err().contains("numeri"));
        assert!(parse("all(participants, state == 'a' where voto > 1)").is_err());
        assert!(parse("count(participants, voto)").is_err());
    }

    #[test]
    fn type_mismatch_is_reported() {
        let e = parse("now <= punteggio").unwrap();
        let err = e.check(&types).unwrap_err();
        assert!(err.contains("tipi diversi"), "{err}");
        let err = parse("nota + 1 > 0").unwrap().check(&types).unwrap_err();
        assert!(err.contains("numeri"), "{err}");
        let err = parse("nota in [1, 2]").unwrap().check(&types).unwrap_err();
        assert!(err.contains("in [...]"), "{err}");
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
        assert!(
            parse("media(participants, voto)")
                .unwrap_err()
                .message
                .contains("media")
        );
        assert!(parse("a in [b]").is_err());
    }

    #[test]
    fn a_deep_nesting_is_refused_not_overflowed() {
        let deep = format!("{}1{}", "(".repeat(500), ")".repeat(500));
        assert!(parse(&deep).unwrap_err().message.contains("annidata"));
        let negations = format!("{}true", "not ".repeat(500));
        assert!(parse(&negations).is_err());
    }
}
