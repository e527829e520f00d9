//! Raw YAML → validated `Procedure`, collecting every problem with its line and column.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::fmt;

use indexmap::IndexMap;
use serde::Serialize;
use serde_saphyr::{Location, Spanned};

use super::expr::{self, Expr};
use super::model::*;
use super::raw::*;
use crate::terms;

/// One problem in a workflow file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Diagnostic {
    /// The file, as named by the caller.
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: u64,
    /// 1-based column (0 when unknown).
    pub column: u64,
    /// What is wrong, in Italian.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Names that every notification context provides besides the procedure's variables.
pub const CONTEXT_NAMES: &[&str] = &[
    "procedura",
    "istanza",
    "destinatario",
    "ambito",
    "protocollo",
    "partecipante",
    "valutazione",
    "verbale",
    "termine_superato",
];

/// The name under which messages and documents read a meeting's record (the verbale).
pub const MEETING_CONTEXT: &str = "verbale";

/// The name under which messages read the evaluation (criteria, scores, graduatoria).
pub const EVALUATION_CONTEXT: &str = "valutazione";
/// Names a reminder's context adds.
pub const REMINDER_NAMES: &[&str] = &["scadenza"];

/// What validation may look up outside the file. Reading is injected: validation does no I/O.
pub struct Environment<'a> {
    /// Message kinds with the top-level names each template reads; `None` skips template checks.
    pub templates: Option<&'a BTreeMap<String, BTreeSet<String>>>,
    /// Reads a closures file named in `calendar.closures` (path as written in the file).
    pub read_closures: &'a dyn Fn(&str) -> Result<String, String>,
    /// Ids of known procedures, for `start:` actions; `None` skips the check.
    pub procedures: Option<&'a BTreeSet<String>>,
    /// Roles people can hold (tokens, `person add`); `None` skips the check.
    pub known_roles: Option<&'a [&'a str]>,
}

impl Default for Environment<'_> {
    fn default() -> Self {
        Environment {
            templates: None,
            read_closures: &|path| Err(format!("nessun lettore per '{path}'")),
            procedures: None,
            known_roles: None,
        }
    }
}

struct Ctx<'a> {
    file: &'a str,
    diags: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn at(&mut self, loc: &Location, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            file: self.file.to_string(),
            line: loc.line(),
            column: loc.column(),
            message: message.into(),
        });
    }
}

fn loc<T>(s: &Spanned<T>) -> Location {
    s.referenced
}

/// Validates one workflow file.
pub fn validate(
    file: &str,
    text: &str,
    env: &Environment<'_>,
) -> Result<Procedure, Vec<Diagnostic>> {
    let raw: RawProcedure = match serde_saphyr::from_str(text) {
        Ok(raw) => raw,
        Err(err) => {
            let (line, column) = err
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            let message = first_line(&err.to_string());
            return Err(vec![Diagnostic {
                file: file.to_string(),
                line,
                column,
                message,
            }]);
        }
    };
    let mut ctx = Ctx {
        file,
        diags: Vec::new(),
    };
    let procedure = build(&mut ctx, raw, env);
    if ctx.diags.is_empty() {
        Ok(procedure)
    } else {
        ctx.diags.sort();
        ctx.diags.dedup();
        Err(ctx.diags)
    }
}

/// The parser's message without its own "error: line L column C:" prefix (the diagnostic
/// already carries the position).
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message).trim();
    let rest = line.strip_prefix("error:").unwrap_or(line).trim_start();
    match rest.strip_prefix("line ").and_then(|r| r.split_once(": ")) {
        Some((position, text)) if position.contains("column") => text.to_string(),
        _ => rest.to_string(),
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Where a piece of the file is read: the procedure itself, or a participant's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Where {
    /// The procedure's states, transitions and timers.
    Instance,
    /// The `participant:` section.
    Participant,
}

/// Names the participant scope provides besides its variables.
const PARTICIPANT_STATE: &str = "state";
/// The name under which a participant's message sees who it is for.
pub const PARTICIPANT_CONTEXT: &str = "partecipante";

/// What the checks of actions, transitions and timers look up: the roles, and the types of
/// the variables of each scope.
struct Checker<'a, 'e> {
    env: &'a Environment<'e>,
    roles: IndexMap<RoleName, String>,
    vars: BTreeMap<String, VarType>,
    /// The participant's variables (with `state`), when the procedure declares participants.
    pvars: Option<BTreeMap<String, VarType>>,
    /// Term variables of each scope (including those whose rule is broken, to avoid cascades).
    terms: BTreeSet<String>,
    pterms: BTreeSet<String>,
    participant_role: Option<String>,
    /// Instance states, for `while:` of participant transitions.
    instance_states: BTreeSet<String>,
    /// Instance transitions' events, for `await:`.
    instance_events: BTreeSet<String>,
}

impl Checker<'_, '_> {
    fn role_ok(&self, name: &str) -> bool {
        self.roles.contains_key(name) || name == SYSTEM_ROLE
    }

    /// The type of a name in a scope: in a participant's, its own variables (and `state`)
    /// first, then the procedure's.
    fn type_of(&self, scope: Where, name: &str) -> Option<VarType> {
        if scope == Where::Participant
            && let Some(t) = self.pvars.as_ref().and_then(|p| p.get(name))
        {
            return Some(*t);
        }
        self.vars.get(name).copied()
    }

    fn is_term(&self, scope: Where, name: &str) -> bool {
        self.terms.contains(name) || (scope == Where::Participant && self.pterms.contains(name))
    }

    /// Type-checks an expression in a scope; aggregates see the participants when declared.
    fn expr_type(&self, scope: Where, e: &Expr) -> Result<expr::ExprType, String> {
        let names = |name: &str| self.type_of(scope, name);
        let participant = |name: &str| self.pvars.as_ref().and_then(|p| p.get(name)).copied();
        e.check_in(&expr::Scope {
            names: &names,
            participant: self
                .pvars
                .as_ref()
                .map(|_| &participant as &dyn Fn(&str) -> Option<VarType>),
        })
    }

    fn expr(&self, ctx: &mut Ctx<'_>, scope: Where, src: &Spanned<String>) -> Option<Expr> {
        match expr::parse(&src.value) {
            Ok(e) => match self.expr_type(scope, &e) {
                Ok(_) => Some(e),
                Err(msg) => {
                    ctx.at(&loc(src), format!("espressione '{}': {msg}", src.value));
                    None
                }
            },
            Err(err) => {
                ctx.at(&loc(src), format!("espressione '{}': {err}", src.value));
                None
            }
        }
    }

    /// A condition: an expression that is true or false.
    fn condition(&self, ctx: &mut Ctx<'_>, scope: Where, src: &Spanned<String>) -> Option<Expr> {
        let e = self.expr(ctx, scope, src)?;
        if !matches!(
            self.expr_type(scope, &e),
            Ok(expr::ExprType::Of(VarType::Bool) | expr::ExprType::Null)
        ) {
            ctx.at(
                &loc(src),
                format!("la condizione '{}' non è vera o falsa", src.value),
            );
        }
        Some(e)
    }

    /// A participant filter (`participants where …`): a condition in the participant's scope.
    fn filter(&self, ctx: &mut Ctx<'_>, at: &Location, text: &str) -> Option<Expr> {
        let src = Spanned {
            value: text.to_owned(),
            referenced: *at,
            defined: *at,
        };
        self.condition(ctx, Where::Participant, &src)
    }

    /// `to:` of a notification or a registration.
    fn audience(
        &self,
        ctx: &mut Ctx<'_>,
        scope: Where,
        to: Option<&Spanned<String>>,
        role_given: bool,
    ) -> Audience {
        let Some(to) = to else {
            return Audience::Role;
        };
        let text = to.value.trim();
        let needs_participants = |ctx: &mut Ctx<'_>| {
            if self.pvars.is_none() {
                ctx.at(
                    &loc(to),
                    format!("to: '{text}' richiede i partecipanti (sezione participant:)"),
                );
            }
        };
        if text == "participant" {
            needs_participants(ctx);
            if scope != Where::Participant {
                ctx.at(&loc(to), "to: participant vale solo nelle azioni di un partecipante (o in for_each_participant): altrove usare 'participants where …'");
            }
            return Audience::Participant;
        }
        if text == "participants" {
            needs_participants(ctx);
            return Audience::Participants {
                filter: None,
                source: None,
            };
        }
        if let Some(rest) = text.strip_prefix("participants where ") {
            needs_participants(ctx);
            let filter = if self.pvars.is_some() {
                self.filter(ctx, &loc(to), rest.trim())
            } else {
                None
            };
            return Audience::Participants {
                filter,
                source: Some(rest.trim().to_owned()),
            };
        }
        if text == "public" {
            if !role_given {
                ctx.at(
                    &loc(to),
                    "to: public richiede role: (chi riceve ciò che è pubblicato)",
                );
            }
            return Audience::Public;
        }
        match self.type_of(scope, text) {
            Some(VarType::Parties) => Audience::Parties(VarName(text.to_owned())),
            Some(other) => {
                ctx.at(
                    &loc(to),
                    format!("to: '{text}' è di tipo {other}: serve una variabile parties"),
                );
                Audience::Role
            }
            None => {
                ctx.at(&loc(to), format!("to: '{text}' non è participant, participants [where …], public né una variabile parties"));
                Audience::Role
            }
        }
    }

    /// The role of a notification: as written, or the participants' role for participant
    /// audiences.
    fn notify_role(
        &self,
        ctx: &mut Ctx<'_>,
        at: &Location,
        role: Option<Spanned<String>>,
        audience: &Audience,
    ) -> RoleName {
        match role {
            Some(r) => {
                if !self.roles.contains_key(r.value.as_str()) {
                    ctx.at(&loc(&r), format!("ruolo sconosciuto '{}'", r.value));
                }
                RoleName(r.value)
            }
            None => match (audience, &self.participant_role) {
                (Audience::Participant | Audience::Participants { .. }, Some(role)) => {
                    RoleName(role.clone())
                }
                _ => {
                    ctx.at(at, "notify: manca role: (a quale ruolo si scrive)");
                    RoleName(String::new())
                }
            },
        }
    }

    fn notify(
        &self,
        ctx: &mut Ctx<'_>,
        at: &Location,
        n: RawNotify,
        scope: Where,
        reminder: bool,
    ) -> Notify {
        let to = self.audience(ctx, scope, n.to.as_ref(), n.role.is_some());
        let role = self.notify_role(ctx, at, n.role, &to);
        // Inside a participant's lifecycle, writing to the participants' role at large would
        // tell every applicant what concerns one.
        if scope == Where::Participant
            && to == Audience::Role
            && self.participant_role.as_deref() == Some(role.as_str())
        {
            ctx.at(at, format!("nelle azioni di un partecipante, una notifica al ruolo '{role}' andrebbe a tutti: usare to: participant"));
        }
        let per_participant = scope == Where::Participant
            || matches!(to, Audience::Participant | Audience::Participants { .. });
        if let Some(templates) = self.env.templates {
            match templates.get(&n.template.value) {
                None => ctx.at(
                    &loc(&n.template),
                    format!("template sconosciuto '{}'", n.template.value),
                ),
                Some(names) => {
                    for used in names {
                        let participant_name = per_participant
                            && (used == PARTICIPANT_CONTEXT
                                || self.pvars.as_ref().is_some_and(|p| p.contains_key(used)));
                        let provided = self.vars.contains_key(used)
                            || participant_name
                            || CONTEXT_NAMES.contains(&used.as_str())
                            || (reminder && REMINDER_NAMES.contains(&used.as_str()));
                        if !provided {
                            ctx.at(
                                &loc(&n.template),
                                format!("il template '{}' usa '{used}', che questa notifica non fornisce", n.template.value),
                            );
                        }
                    }
                }
            }
        }
        let invite = n.invite.and_then(|m| match m.value.as_str() {
            "request" => Some(InviteMethod::Request),
            "cancel" => Some(InviteMethod::Cancel),
            other => {
                ctx.at(
                    &loc(&m),
                    format!("invite '{other}' non valido (request oppure cancel)"),
                );
                None
            }
        });
        if invite.is_some() && !self.vars.contains_key("data_seduta") {
            ctx.at(
                &loc(&n.template),
                "un invito di calendario richiede la variabile 'data_seduta' (datetime)",
            );
        }
        let channel = match n.channel.as_ref().map(|c| c.value.as_str()) {
            None | Some("email") => Channel::Email,
            Some("pec") => Channel::Pec,
            Some(other) => {
                if let Some(c) = &n.channel {
                    ctx.at(
                        &loc(c),
                        format!("channel '{other}' non valido (email oppure pec)"),
                    );
                }
                Channel::Email
            }
        };
        if channel == Channel::Pec && invite.is_some() {
            ctx.at(
                &loc(&n.template),
                "un invito di calendario viaggia per email, non per PEC: togliere invite o channel: pec",
            );
        }
        let consegna = n.consegna.map(|c| {
            if channel != Channel::Pec {
                ctx.at(&loc(&c), "consegna: vale solo con channel: pec (la data viene dalla ricevuta di avvenuta consegna)");
            } else if !(scope == Where::Participant && to == Audience::Participant) {
                ctx.at(&loc(&c), "consegna: vale solo per una notifica to: participant nelle azioni di un partecipante");
            }
            match self.pvars.as_ref().and_then(|vars| vars.get(c.value.as_str())) {
                None => ctx.at(
                    &loc(&c),
                    format!("consegna: '{}' non è una variabile del partecipante", c.value),
                ),
                Some(kind) if !matches!(kind, VarType::Date | VarType::DateTime) => ctx.at(
                    &loc(&c),
                    format!("consegna: '{}' deve essere una variabile date o datetime", c.value),
                ),
                Some(_) => {}
            }
            VarName(c.value)
        });
        Notify {
            role,
            to,
            template: n.template.value,
            urgent: n.urgent,
            invite,
            channel,
            consegna,
        }
    }

    fn protocollo(
        &self,
        ctx: &mut Ctx<'_>,
        at: &Location,
        p: RawProtocollo,
        scope: Where,
    ) -> Protocollo {
        let direction = match p.direction.value.as_str() {
            "entrata" => Direction::Entrata,
            "uscita" => Direction::Uscita,
            "interno" => Direction::Interno,
            other => {
                ctx.at(
                    &loc(&p.direction),
                    format!(
                        "direzione di protocollo '{other}' sconosciuta (entrata, uscita, interno)"
                    ),
                );
                Direction::Interno
            }
        };
        let register = p.register.map(|r| {
            let code = r.value.trim().to_owned();
            let valid = (1..=16).contains(&code.len())
                && code
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
            if !valid {
                ctx.at(
                    &loc(&r),
                    format!(
                        "registro '{}' non valido: lettere, cifre, _ . -, al massimo 16 caratteri",
                        r.value
                    ),
                );
            }
            code
        });
        // `to:` is a role, or a participant audience (whose people act in the participants'
        // role), or a parties variable.
        let (to, audience) = match p.to {
            None => (None, Audience::Role),
            Some(t) if self.roles.contains_key(t.value.as_str()) => {
                // Inside a participant, an act to the participants' role at large would be
                // registered with every applicant as its correspondent.
                if scope == Where::Participant
                    && self.participant_role.as_deref() == Some(t.value.as_str())
                {
                    ctx.at(&loc(&t), format!("nelle azioni di un partecipante, un atto al ruolo '{}' andrebbe a tutti: usare to: participant", t.value));
                }
                (Some(RoleName(t.value)), Audience::Role)
            }
            Some(t) => {
                let audience = self.audience(ctx, scope, Some(&t), false);
                let role = match (&audience, &self.participant_role) {
                    (Audience::Role, _) => {
                        ctx.at(&loc(&t), format!("ruolo sconosciuto '{}'", t.value));
                        None
                    }
                    (Audience::Public, _) => {
                        ctx.at(&loc(&t), "to: public non si protocolla: indicare un ruolo");
                        None
                    }
                    (Audience::Participant | Audience::Participants { .. }, Some(role)) => {
                        Some(RoleName(role.clone()))
                    }
                    // Whoever the listed organisations are, in any role.
                    (Audience::Parties(_), _) => Some(RoleName(String::new())),
                    _ => None,
                };
                (role, audience)
            }
        };
        let document = p.document.map(|d| {
            if let Some(templates) = self.env.templates
                && !templates.contains_key(&d.value)
            {
                ctx.at(
                    &loc(&d),
                    format!(
                        "template sconosciuto '{}' come documento da protocollare",
                        d.value
                    ),
                );
            }
            d.value
        });
        if direction == Direction::Uscita && to.is_none() && document.is_some() {
            ctx.at(
                at,
                "un documento in uscita da protocollare richiede i destinatari: aggiungere to: <ruolo>",
            );
        }
        let classification = p
            .classificazione
            .map(|c| c.value.trim().to_owned())
            .filter(|c| !c.is_empty());
        Protocollo {
            direction,
            subject: p.subject.value,
            register,
            to,
            audience,
            document,
            classification,
        }
    }

    /// A variable of the scope that must have one of `kinds`, for action arguments.
    fn variable_of(
        &self,
        ctx: &mut Ctx<'_>,
        scope: Where,
        name: &Spanned<String>,
        kinds: &[VarType],
        what: &str,
    ) -> VarName {
        match self.type_of(scope, &name.value) {
            Some(t) if kinds.contains(&t) => {}
            Some(t) => ctx.at(
                &loc(name),
                format!(
                    "{what}: '{}' è di tipo {t}, serve {}",
                    name.value,
                    kinds
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" o ")
                ),
            ),
            None => ctx.at(
                &loc(name),
                format!("{what}: variabile non dichiarata '{}'", name.value),
            ),
        }
        VarName(name.value.clone())
    }

    fn term_variable(
        &self,
        ctx: &mut Ctx<'_>,
        scope: Where,
        name: &Spanned<String>,
        what: &str,
    ) -> VarName {
        if self.type_of(scope, &name.value).is_none() {
            ctx.at(
                &loc(name),
                format!("variabile non dichiarata '{}'", name.value),
            );
        } else if !self.is_term(scope, &name.value) {
            ctx.at(
                &loc(name),
                format!(
                    "'{}' non è calcolata da un termine: non si può {what}",
                    name.value
                ),
            );
        }
        VarName(name.value.clone())
    }

    fn actions(
        &self,
        ctx: &mut Ctx<'_>,
        raw_actions: Vec<Spanned<RawAction>>,
        scope: Where,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        for action in raw_actions {
            let at = loc(&action);
            let mut a = action.value;
            let condition = a.when.take();
            let count = [
                a.notify.is_some(),
                a.protocollo.is_some(),
                a.set.is_some(),
                a.start.is_some(),
                a.suspend.is_some(),
                a.resume.is_some(),
                a.proroga.is_some(),
                a.riapertura.is_some(),
                a.for_each_participant.is_some(),
            ]
            .iter()
            .filter(|x| **x)
            .count();
            if count != 1 {
                ctx.at(&at, "ogni azione deve avere esattamente una chiave tra notify, protocollo, set, start, suspend, resume, proroga, riapertura, for_each_participant (più when: facoltativo)");
                continue;
            }
            let Some(built) = self.action(ctx, &at, a, scope) else {
                continue;
            };
            match condition {
                None => out.push(built),
                Some(src) => {
                    if let Some(condition) = self.condition(ctx, scope, &src) {
                        out.push(Action::When {
                            condition,
                            source: src.value,
                            action: Box::new(built),
                        });
                    }
                }
            }
        }
        out
    }

    fn action(
        &self,
        ctx: &mut Ctx<'_>,
        at: &Location,
        a: RawAction,
        scope: Where,
    ) -> Option<Action> {
        if let Some(n) = a.notify {
            return Some(Action::Notify(self.notify(ctx, at, n, scope, false)));
        }
        if let Some(p) = a.protocollo {
            return Some(Action::Protocollo(self.protocollo(ctx, at, p, scope)));
        }
        if let Some(assignments) = a.set {
            let mut list = Vec::new();
            for (name, value) in assignments {
                let Some(target) = self.type_of(scope, &name) else {
                    ctx.at(
                        &loc(&value),
                        format!("set: variabile non dichiarata '{name}'"),
                    );
                    continue;
                };
                if self.is_term(scope, &name) {
                    ctx.at(
                        &loc(&value),
                        format!("set: '{name}' è calcolata da un termine e non si assegna"),
                    );
                }
                if scope == Where::Participant && name == PARTICIPANT_STATE {
                    ctx.at(
                        &loc(&value),
                        "set: lo stato del partecipante cambia solo con le sue transizioni",
                    );
                    continue;
                }
                if let Some(e) = self.expr(ctx, scope, &value) {
                    if let Ok(expr::ExprType::Of(t)) = self.expr_type(scope, &e)
                        && t != target
                    {
                        ctx.at(
                            &loc(&value),
                            format!("set: '{name}' è di tipo {target}, il valore è di tipo {t}"),
                        );
                    }
                    list.push((VarName(name), e));
                }
            }
            return Some(Action::Set(list));
        }
        if let Some(s) = a.start {
            if let Some(known) = self.env.procedures
                && !known.contains(&s.procedure.value)
            {
                ctx.at(
                    &loc(&s.procedure),
                    format!("procedura sconosciuta '{}'", s.procedure.value),
                );
            }
            let mut vars = Vec::new();
            for (name, value) in s.variables {
                let text = value.value.trim();
                if text == "participants" || text.starts_with("participants where ") {
                    if self.pvars.is_none() {
                        ctx.at(
                            &loc(&value),
                            format!("'{text}' richiede i partecipanti (sezione participant:)"),
                        );
                        continue;
                    }
                    let filter = text
                        .strip_prefix("participants where ")
                        .and_then(|rest| self.filter(ctx, &loc(&value), rest.trim()));
                    vars.push((name, StartValue::Participants(filter)));
                } else if let Some(e) = self.expr(ctx, scope, &value) {
                    vars.push((name, StartValue::Expr(e)));
                }
            }
            let await_event = s.await_event.map(|e| {
                if !self.instance_events.contains(&e.value) {
                    ctx.at(
                        &loc(&e),
                        format!(
                            "await: nessuna transizione della procedura accetta l'evento '{}'",
                            e.value
                        ),
                    );
                }
                EventName(e.value)
            });
            return Some(Action::Start {
                procedure: s.procedure.value,
                variables: vars,
                await_event,
            });
        }
        if let Some(v) = a.suspend {
            return Some(Action::Suspend(self.term_variable(
                ctx,
                scope,
                &v,
                "sospendere",
            )));
        }
        if let Some(r) = a.resume {
            let (term, on) = match r.value {
                RawResume::Name(term) => (
                    Spanned {
                        value: term,
                        referenced: r.referenced,
                        defined: r.defined,
                    },
                    None,
                ),
                RawResume::On(RawResumeOn { term, from }) => (term, from),
            };
            let term = self.term_variable(ctx, scope, &term, "riprendere");
            let on =
                on.map(|on| self.variable_of(ctx, scope, &on, &[VarType::Date], "resume.from"));
            return Some(Action::Resume(term, on));
        }
        if let Some((kind, e)) = a
            .proroga
            .map(|e| (ExtensionKind::Proroga, e))
            .or(a.riapertura.map(|e| (ExtensionKind::Riapertura, e)))
        {
            let what = match kind {
                ExtensionKind::Proroga => "prorogare",
                ExtensionKind::Riapertura => "riaprire",
            };
            let term = self.term_variable(ctx, scope, &e.term, what);
            if self.pterms.contains(term.as_str()) && scope == Where::Participant {
                ctx.at(
                    &loc(&e.term),
                    format!(
                        "{} vale per i termini della procedura, non per quelli di un partecipante",
                        match kind {
                            ExtensionKind::Proroga => "proroga",
                            ExtensionKind::Riapertura => "riapertura",
                        }
                    ),
                );
            }
            let term_type = self
                .type_of(scope, term.as_str())
                .unwrap_or(VarType::DateTime);
            let to = self.variable_of(ctx, scope, &e.to, &[term_type], "to");
            let act = self.variable_of(ctx, scope, &e.act, &[VarType::Text], "act");
            let reason = e
                .reason
                .map(|r| self.variable_of(ctx, scope, &r, &[VarType::Text], "reason"));
            return Some(Action::Extend(Extension {
                kind,
                term,
                to,
                act,
                reason,
            }));
        }
        if let Some(each) = a.for_each_participant {
            if self.pvars.is_none() {
                ctx.at(
                    at,
                    "for_each_participant richiede i partecipanti (sezione participant:)",
                );
                return None;
            }
            if scope == Where::Participant {
                ctx.at(
                    at,
                    "for_each_participant non si usa dentro le azioni di un partecipante",
                );
                return None;
            }
            let filter = each
                .filter
                .and_then(|f| self.condition(ctx, Where::Participant, &f));
            let actions = self.actions(ctx, each.actions, Where::Participant);
            return Some(Action::ForEachParticipant { filter, actions });
        }
        None
    }

    /// Builds the variables of a scope; the types were read beforehand.
    fn variables(
        &self,
        ctx: &mut Ctx<'_>,
        raw: IndexMap<String, Spanned<RawVariable>>,
        scope: Where,
        calendar: &CalendarSettings,
    ) -> IndexMap<VarName, Variable> {
        let mut variables = IndexMap::new();
        for (name, var) in raw {
            let var_loc = loc(&var);
            let v = var.value;
            let kind = self.type_of(scope, &name).unwrap_or(VarType::Text);
            let mut visibility = Visibility::Staff;
            let mut visible_roles = Vec::new();
            for who in v.visible_to {
                if who.value == "public" {
                    visibility = Visibility::Public;
                } else if self.roles.contains_key(who.value.as_str()) {
                    visible_roles.push(RoleName(who.value));
                } else {
                    ctx.at(
                        &loc(&who),
                        format!("ruolo sconosciuto '{}' in visible_to", who.value),
                    );
                }
            }
            if visibility != Visibility::Public && !visible_roles.is_empty() {
                visibility = Visibility::Roles(visible_roles);
            }
            let term = v
                .term
                .and_then(|term| self.term(ctx, &name, kind, term, scope, calendar));
            if term.is_some() && v.required {
                ctx.at(
                    &var_loc,
                    format!("'{name}' è calcolata da un termine: non può essere required"),
                );
            }
            variables.insert(
                VarName(name.clone()),
                Variable {
                    name: VarName(name),
                    kind,
                    label: v.label,
                    required: v.required,
                    visibility,
                    term,
                },
            );
        }
        variables
    }

    fn term(
        &self,
        ctx: &mut Ctx<'_>,
        name: &str,
        kind: VarType,
        term: Spanned<RawTerm>,
        scope: Where,
        calendar: &CalendarSettings,
    ) -> Option<TermDef> {
        let term_loc = loc(&term);
        let t = term.value;
        if !matches!(kind, VarType::Date | VarType::DateTime) {
            ctx.at(
                &term_loc,
                format!(
                    "la variabile '{name}' ha un termine ma è di tipo {kind}: serve date o datetime"
                ),
            );
        }
        match self.type_of(scope, &t.from.value) {
            Some(VarType::Date | VarType::DateTime) => {}
            Some(other) => ctx.at(
                &loc(&t.from),
                format!(
                    "il termine parte da '{}' che è di tipo {other}: serve date o datetime",
                    t.from.value
                ),
            ),
            None => ctx.at(
                &loc(&t.from),
                format!("variabile non dichiarata '{}' in term.from", t.from.value),
            ),
        }
        if t.from.value == name {
            ctx.at(
                &loc(&t.from),
                "un termine non può partire dalla sua stessa variabile",
            );
        }
        let length_var = t.length_var.map(|v| {
            if t.rule.window.is_some() || t.rule.days.is_some() || t.rule.months.is_some() || t.rule.years.is_some() {
                self.variable_of(ctx, scope, &v, &[VarType::Number], "length_var")
            } else {
                ctx.at(&loc(&v), "length_var: indicare anche la durata predefinita (days, months, years o window)");
                VarName(v.value)
            }
        });
        let at_var = t
            .at_var
            .map(|v| self.variable_of(ctx, scope, &v, &[VarType::Text], "at_var"));
        let mut spec = t.rule;
        if spec.hours.is_some()
            && !matches!(
                self.type_of(scope, &t.from.value),
                Some(VarType::DateTime) | None
            )
        {
            ctx.at(
                &loc(&t.from),
                format!(
                    "un termine in ore parte da un istante: '{}' deve essere di tipo datetime",
                    t.from.value
                ),
            );
        }
        // A publication window and a term in hours never move: the procedure's shifts apply to
        // the other terms.
        if spec.window.is_none() && spec.hours.is_none() {
            spec.saturday_shift |= calendar.saturday_shift;
            spec.closures_shift |= calendar.closures_shift;
        }
        match terms::Rule::new(spec) {
            Ok(rule) => Some(TermDef {
                from: VarName(t.from.value),
                rule,
                length_var,
                at_var,
            }),
            Err(e) => {
                ctx.at(&term_loc, format!("termine non valido per '{name}': {e}"));
                None
            }
        }
    }

    fn states(
        &self,
        ctx: &mut Ctx<'_>,
        raw: IndexMap<String, Spanned<RawState>>,
        scope: Where,
        at: &Location,
    ) -> (IndexMap<StateId, State>, BTreeMap<String, Location>) {
        let mut states = IndexMap::new();
        let mut state_locs: BTreeMap<String, Location> = BTreeMap::new();
        let mut initial = Vec::new();
        for (id, state) in raw {
            let st_loc = loc(&state);
            let s = state.value;
            if !is_identifier(&id) {
                ctx.at(&st_loc, format!("nome di stato '{id}' non valido"));
            }
            if s.initial {
                initial.push(st_loc);
            }
            state_locs.insert(id.clone(), st_loc);
            if s.initial && s.is_final {
                ctx.at(
                    &st_loc,
                    format!("lo stato '{id}' non può essere insieme iniziale e finale"),
                );
            }
            let on_enter = self.actions(ctx, s.on_enter, scope);
            states.insert(
                StateId(id.clone()),
                State {
                    title: s.title.unwrap_or_else(|| id.replace('_', " ")),
                    id: StateId(id),
                    initial: s.initial,
                    is_final: s.is_final,
                    on_enter,
                },
            );
        }
        match initial.len() {
            1 => {}
            0 => ctx.at(at, "manca lo stato iniziale (initial: true)"),
            _ => {
                for at in &initial[1..] {
                    ctx.at(at, "più di uno stato iniziale");
                }
            }
        }
        if states.is_empty() {
            ctx.at(at, "nessuno stato definito");
        } else if scope == Where::Instance && !states.values().any(|s| s.is_final) {
            ctx.at(at, "nessuno stato finale (final: true)");
        }
        (states, state_locs)
    }

    /// Transitions; `false` when one names an unknown state (reachability is then moot).
    fn transitions(
        &self,
        ctx: &mut Ctx<'_>,
        raw: Vec<Spanned<RawTransition>>,
        states: &IndexMap<StateId, State>,
        scope: Where,
    ) -> (Vec<Transition>, bool) {
        let mut transitions = Vec::new();
        // (state, event) → where the last transition for it is, and whether it has a guard.
        let mut seen: BTreeMap<(String, String), (Location, bool)> = BTreeMap::new();
        let mut graph_is_sound = true;
        for tr in raw {
            let tr_loc = loc(&tr);
            let t = tr.value;
            if !is_identifier(&t.event.value) {
                ctx.at(
                    &loc(&t.event),
                    format!("nome di evento '{}' non valido", t.event.value),
                );
            }
            let guarded = !t.guard.is_empty();
            let mut from = Vec::new();
            for f in t.from.into_vec() {
                if !states.contains_key(f.value.as_str()) {
                    graph_is_sound = false;
                    ctx.at(&loc(&f), format!("stato sconosciuto '{}'", f.value));
                } else if states.get(f.value.as_str()).is_some_and(|s| s.is_final) {
                    ctx.at(
                        &loc(&f),
                        format!(
                            "lo stato '{}' è finale: nessuna transizione può uscirne",
                            f.value
                        ),
                    );
                }
                let key = (f.value.clone(), t.event.value.clone());
                if let Some((first, first_guarded)) = seen.get(&key)
                    && !first_guarded
                {
                    let (line, column) = (first.line(), first.column());
                    ctx.at(&loc(&t.event), format!("evento '{}' duplicato dallo stato '{}' (già definito a riga {line}, colonna {column} senza condizioni: questa alternativa non sarebbe mai presa)", t.event.value, f.value));
                }
                seen.insert(key, (loc(&t.event), guarded));
                from.push(StateId(f.value));
            }
            if !states.contains_key(t.to.value.as_str()) {
                graph_is_sound = false;
                ctx.at(&loc(&t.to), format!("stato sconosciuto '{}'", t.to.value));
            }
            let mut while_in = Vec::new();
            if let Some(list) = t.while_in {
                for st in list.into_vec() {
                    if scope == Where::Instance {
                        ctx.at(&loc(&st), "while: vale solo per le transizioni di un partecipante (gli stati della procedura in cui sono ammesse)");
                        break;
                    }
                    if !self.instance_states.contains(&st.value) {
                        ctx.at(
                            &loc(&st),
                            format!("stato della procedura sconosciuto '{}'", st.value),
                        );
                    }
                    while_in.push(StateId(st.value));
                }
            }
            let mut tr_roles = Vec::new();
            for r in t.roles {
                if !self.role_ok(&r.value) {
                    ctx.at(&loc(&r), format!("ruolo sconosciuto '{}'", r.value));
                }
                tr_roles.push(RoleName(r.value));
            }
            let mut inputs = Vec::new();
            for (name, mode) in t.inputs {
                let required = match mode.value.as_str() {
                    "required" => true,
                    "optional" => false,
                    other => {
                        ctx.at(
                            &loc(&mode),
                            format!(
                                "input '{name}': '{other}' non valido (required oppure optional)"
                            ),
                        );
                        false
                    }
                };
                if self.type_of(scope, &name).is_none() || name == PARTICIPANT_STATE {
                    ctx.at(
                        &loc(&mode),
                        format!("input '{name}': variabile non dichiarata"),
                    );
                } else if self.is_term(scope, &name) {
                    ctx.at(
                        &loc(&mode),
                        format!("input '{name}': la variabile è calcolata da un termine"),
                    );
                }
                inputs.push(Input {
                    variable: VarName(name),
                    required,
                });
            }
            let mut guard = Vec::new();
            for g in t.guard {
                let g = g.value;
                if let Some(e) = self.condition(ctx, scope, &g.when) {
                    guard.push(Guard {
                        message: g.message.unwrap_or_else(|| {
                            format!("condizione non soddisfatta: {}", g.when.value)
                        }),
                        source: g.when.value,
                        expr: e,
                    });
                }
            }
            if tr_roles.is_empty() {
                ctx.at(
                    &tr_loc,
                    format!(
                        "la transizione '{}' non indica chi può eseguirla (roles)",
                        t.event.value
                    ),
                );
            }
            let actions = self.actions(ctx, t.actions, scope);
            transitions.push(Transition {
                title: t.title.unwrap_or_else(|| t.event.value.replace('_', " ")),
                event: EventName(t.event.value),
                from,
                to: StateId(t.to.value),
                while_in,
                roles: tr_roles,
                inputs,
                guard,
                actions,
            });
        }
        (transitions, graph_is_sound)
    }

    /// A timer's `expired:` section: a known silenzio, known roles, a known message.
    fn expiry(
        &self,
        ctx: &mut Ctx<'_>,
        raw: Spanned<RawExpiry>,
        timer: &str,
        fires: bool,
    ) -> Expiry {
        let at = loc(&raw);
        let raw = raw.value;
        if fires {
            ctx.at(
                &at,
                format!(
                    "timer '{timer}': expired (l'allarme alla scadenza) non si combina con fires: alla scadenza l'evento fa già cambiare stato"
                ),
            );
        }
        let silenzio = match &raw.silenzio {
            None => Silenzio::Inadempimento,
            Some(s) => Silenzio::parse(&s.value).unwrap_or_else(|| {
                ctx.at(
                    &loc(s),
                    format!(
                        "silenzio '{}' sconosciuto (ammessi: inadempimento, assenso, rigetto)",
                        s.value
                    ),
                );
                Silenzio::Inadempimento
            }),
        };
        let mut notify = Vec::new();
        for role in &raw.notify {
            if !self.roles.contains_key(role.value.as_str()) {
                ctx.at(
                    &loc(role),
                    format!("ruolo '{}' non dichiarato in roles:", role.value),
                );
            }
            notify.push(RoleName(role.value.clone()));
        }
        if notify.is_empty() {
            ctx.at(
                &at,
                format!(
                    "timer '{timer}': expired.notify nomina almeno un ruolo da avvisare (il RUP)"
                ),
            );
        }
        let template = raw
            .template
            .map_or_else(|| EXPIRY_TEMPLATE.to_string(), |t| t.value);
        if let Some(names) = self.env.templates
            && !names.contains_key(&template)
        {
            ctx.at(
                &at,
                format!("modello di messaggio '{template}' inesistente"),
            );
        }
        Expiry {
            silenzio,
            notify,
            template,
        }
    }

    fn timers(
        &self,
        ctx: &mut Ctx<'_>,
        raw: Vec<Spanned<RawTimer>>,
        states: &IndexMap<StateId, State>,
        transitions: &[Transition],
        scope: Where,
    ) -> Vec<Timer> {
        let mut timers = Vec::new();
        let mut timer_ids = HashSet::new();
        for tm in raw {
            let t = tm.value;
            if !timer_ids.insert(t.id.value.clone()) {
                ctx.at(&loc(&t.id), format!("timer '{}' duplicato", t.id.value));
            }
            if t.id.value.contains('/') || t.id.value.contains('#') {
                ctx.at(
                    &loc(&t.id),
                    format!("timer '{}': l'id non può contenere / o #", t.id.value),
                );
            }
            let mut while_in = Vec::new();
            for s in t.while_in.into_vec() {
                if !states.contains_key(s.value.as_str()) {
                    ctx.at(&loc(&s), format!("stato sconosciuto '{}'", s.value));
                }
                while_in.push(StateId(s.value));
            }
            match self.type_of(scope, &t.at.value) {
                Some(VarType::Date | VarType::DateTime) => {}
                Some(other) => ctx.at(
                    &loc(&t.at),
                    format!(
                        "il timer usa '{}' che è di tipo {other}: serve date o datetime",
                        t.at.value
                    ),
                ),
                None => ctx.at(
                    &loc(&t.at),
                    format!("variabile non dichiarata '{}'", t.at.value),
                ),
            }
            let fires = t.fires.map(|event| {
                let taken = while_in.iter().any(|s| {
                    transitions
                        .iter()
                        .any(|tr| tr.event.as_str() == event.value && tr.from.contains(s))
                });
                if !taken {
                    ctx.at(&loc(&event), format!("il timer '{}' genera l'evento '{}' ma nessuna transizione lo accetta dagli stati in cui è attivo", t.id.value, event.value));
                }
                EventName(event.value)
            });
            let mut reminders = Vec::new();
            for r in t.reminders {
                let r_loc = loc(&r);
                let r = r.value;
                let before = match (r.days_before, r.hours_before) {
                    (Some(d), None) if d > 0 => u32::try_from(d).ok().map(Offset::Days),
                    (None, Some(h)) if h > 0 => u32::try_from(h).ok().map(Offset::Hours),
                    _ => None,
                };
                let Some(before) = before else {
                    ctx.at(
                        &r_loc,
                        "un promemoria vuole esattamente uno tra days_before e hours_before, positivo",
                    );
                    continue;
                };
                let notify = self.notify(ctx, &r_loc, r.notify, scope, true);
                reminders.push(Reminder { before, notify });
            }
            let expired = t.expired.map(|e| {
                if scope != Where::Instance {
                    ctx.at(
                        &loc(&e),
                        format!(
                            "timer '{}': expired vale per i timer della procedura, non di una domanda",
                            t.id.value
                        ),
                    );
                }
                self.expiry(ctx, e, &t.id.value, fires.is_some())
            });
            if fires.is_none() && reminders.is_empty() && expired.is_none() {
                ctx.at(
                    &loc(&t.id),
                    format!("il timer '{}' non genera eventi né promemoria", t.id.value),
                );
            }
            timers.push(Timer {
                id: t.id.value,
                while_in,
                at: VarName(t.at.value),
                fires,
                reminders,
                expired,
            });
        }
        timers
    }
}

/// Reads the declared types of a set of variables, reporting unknown types and bad names.
fn variable_types(
    ctx: &mut Ctx<'_>,
    raw: &IndexMap<String, Spanned<RawVariable>>,
    reserved: &[&str],
) -> BTreeMap<String, VarType> {
    let mut types = BTreeMap::new();
    for (name, var) in raw {
        match VarType::parse(&var.value.kind.value) {
            Some(t) => {
                types.insert(name.clone(), t);
            }
            None => ctx.at(
                &loc(&var.value.kind),
                format!(
                    "tipo '{}' sconosciuto per la variabile '{name}' (ammessi: date, datetime, text, number, bool, parties, list)",
                    var.value.kind.value
                ),
            ),
        }
        if !is_identifier(name)
            || CONTEXT_NAMES.contains(&name.as_str())
            || REMINDER_NAMES.contains(&name.as_str())
            || reserved.contains(&name.as_str())
        {
            ctx.at(
                &loc(var),
                format!("nome di variabile '{name}' non valido o riservato"),
            );
        }
    }
    types
}

fn term_names(raw: &IndexMap<String, Spanned<RawVariable>>) -> BTreeSet<String> {
    raw.iter()
        .filter(|(_, v)| v.value.term.is_some())
        .map(|(n, _)| n.clone())
        .collect()
}

fn numbers(ctx: &mut Ctx<'_>, raw: Option<Spanned<RawNumbers>>) -> NumberSettings {
    let mut numbers = NumberSettings::default();
    let Some(raw) = raw else {
        return numbers;
    };
    if let Some(d) = raw.value.decimals {
        match u32::try_from(d.value) {
            Ok(places) if places <= 10 => numbers.decimals = places,
            _ => ctx.at(&loc(&d), "numbers.decimals: un intero tra 0 e 10"),
        }
    }
    if let Some(r) = raw.value.rounding {
        match Rounding::parse(&r.value) {
            Some(rounding) => numbers.rounding = rounding,
            None => ctx.at(
                &loc(&r),
                format!(
                    "numbers.rounding '{}' sconosciuto (half_up, half_even, down, up)",
                    r.value
                ),
            ),
        }
    }
    numbers
}

fn build(ctx: &mut Ctx<'_>, raw: RawProcedure, env: &Environment<'_>) -> Procedure {
    if !is_identifier(&raw.id.value) {
        ctx.at(
            &loc(&raw.id),
            format!(
                "id '{}' non valido: usare minuscole, cifre e _",
                raw.id.value
            ),
        );
    }
    let version = match u32::try_from(raw.version.value) {
        Ok(v) if v >= 1 => v,
        _ => {
            ctx.at(&loc(&raw.version), "version deve essere un intero ≥ 1");
            1
        }
    };
    let id_loc = loc(&raw.id);

    // Calendar
    let mut calendar = CalendarSettings::default();
    if let Some(cal) = raw.calendar {
        let cal_loc = loc(&cal);
        let cal = cal.value;
        calendar.calendar.comune = cal.comune;
        calendar.saturday_shift = cal.saturday_shift;
        calendar.closures_shift = cal.closures_shift;
        if let Some(path) = cal.closures {
            match (env.read_closures)(&path.value) {
                Ok(text) => match terms::parse_closures(&text) {
                    Ok(closures) => calendar.calendar.closures = closures,
                    Err(e) => ctx.at(
                        &loc(&path),
                        format!("calendario chiusure '{}': {e}", path.value),
                    ),
                },
                Err(e) => ctx.at(
                    &loc(&path),
                    format!("calendario chiusure '{}' non leggibile: {e}", path.value),
                ),
            }
            calendar.closures_file = Some(path.value);
        } else if cal.closures_shift {
            ctx.at(&cal_loc, "closures_shift richiede un file 'closures'");
        }
    }
    let numbers = numbers(ctx, raw.numbers);

    // Roles
    let mut roles = IndexMap::new();
    for (name, label) in raw.roles {
        if !is_identifier(&name) || name == SYSTEM_ROLE {
            ctx.at(&loc(&label), format!("nome di ruolo '{name}' non valido"));
        } else if let Some(known) = env.known_roles
            && !known.contains(&name.as_str())
        {
            ctx.at(
                &loc(&label),
                format!(
                    "ruolo '{name}' non assegnabile a nessuna persona (ammessi: {})",
                    known.join(", ")
                ),
            );
        }
        roles.insert(RoleName(name), label.value);
    }

    // Variables: the types of both scopes first, so that terms and expressions can refer to
    // any of them.
    let vars = variable_types(ctx, &raw.variables, &[PARTICIPANT_CONTEXT]);
    let (participant_loc, raw_participant) = match raw.participant {
        Some(p) => (loc(&p), Some(p.value)),
        None => (id_loc, None),
    };
    let pvars = raw_participant.as_ref().map(|p| {
        let mut types = variable_types(ctx, &p.variables, &[PARTICIPANT_CONTEXT, PARTICIPANT_STATE]);
        for (name, var) in &p.variables {
            if vars.contains_key(name) {
                ctx.at(
                    &loc(var),
                    format!("la variabile del partecipante '{name}' ha lo stesso nome di una variabile della procedura"),
                );
            }
        }
        types.insert(PARTICIPANT_STATE.to_owned(), VarType::Text);
        types
    });
    let participant_role = raw_participant.as_ref().map(|p| {
        if !roles.contains_key(p.role.value.as_str()) {
            ctx.at(
                &loc(&p.role),
                format!("ruolo sconosciuto '{}'", p.role.value),
            );
        }
        p.role.value.clone()
    });
    let instance_states: BTreeSet<String> = raw.states.keys().cloned().collect();
    let instance_events: BTreeSet<String> = raw
        .transitions
        .iter()
        .map(|t| t.value.event.value.clone())
        .collect();
    let checker = Checker {
        env,
        roles,
        vars,
        pvars,
        terms: term_names(&raw.variables),
        pterms: raw_participant
            .as_ref()
            .map(|p| term_names(&p.variables))
            .unwrap_or_default(),
        participant_role,
        instance_states,
        instance_events,
    };
    let variables = checker.variables(ctx, raw.variables, Where::Instance, &calendar);
    check_term_cycles(ctx, &variables);

    // The procedure's machine.
    let (states, state_locs) = checker.states(ctx, raw.states, Where::Instance, &id_loc);
    let (transitions, graph_is_sound) =
        checker.transitions(ctx, raw.transitions, &states, Where::Instance);
    let timers = checker.timers(ctx, raw.timers, &states, &transitions, Where::Instance);

    // The participants' machine.
    let participant = raw_participant.map(|rp| {
        let pvariables = checker.variables(ctx, rp.variables, Where::Participant, &calendar);
        check_term_cycles(ctx, &pvariables);
        let (pstates, plocs) =
            checker.states(ctx, rp.states, Where::Participant, &participant_loc);
        let (ptransitions, sound) =
            checker.transitions(ctx, rp.transitions, &pstates, Where::Participant);
        let ptimers = checker.timers(ctx, rp.timers, &pstates, &ptransitions, Where::Participant);
        for t in &ptimers {
            if timers.iter().any(|own| own.id == t.id) {
                ctx.at(
                    &participant_loc,
                    format!("il timer del partecipante '{}' ha lo stesso id di un timer della procedura", t.id),
                );
            }
        }
        let role = RoleName(rp.role.value.clone());
        let answer = rp.soccorso_answer.map(|e| {
            let taken = ptransitions.iter().any(|t| {
                t.event.as_str() == e.value && t.roles.iter().any(|r| r == &role)
            });
            if !taken {
                ctx.at(&loc(&e), format!("soccorso_answer: nessuna transizione del partecipante accetta l'evento '{}' dal ruolo '{}'", e.value, role));
            }
            EventName(e.value)
        });
        if sound {
            check_machine(ctx, &pstates, &ptransitions, &plocs, false);
        }
        ParticipantDef {
            title: rp.title.unwrap_or_else(|| "Partecipante".to_owned()),
            role,
            variables: pvariables,
            states: pstates,
            transitions: ptransitions,
            timers: ptimers,
            answer,
        }
    });

    // Cron jobs
    let mut cron = Vec::new();
    for job in raw.cron {
        let j = job.value;
        if let Err(e) = j.schedule.value.parse::<cron::Schedule>() {
            ctx.at(
                &loc(&j.schedule),
                format!("espressione cron '{}' non valida: {e}", j.schedule.value),
            );
        }
        if !JOB_KINDS.contains(&j.job.value.as_str()) {
            ctx.at(
                &loc(&j.job),
                format!(
                    "lavoro '{}' sconosciuto (ammessi: {})",
                    j.job.value,
                    JOB_KINDS.join(", ")
                ),
            );
        }
        if cron.iter().any(|c: &CronJob| c.id == j.id.value) {
            ctx.at(
                &loc(&j.id),
                format!("lavoro pianificato '{}' duplicato", j.id.value),
            );
        }
        cron.push(CronJob {
            id: j.id.value,
            schedule: j.schedule.value,
            job: j.job.value,
        });
    }

    let submissions = raw.submissions.map(|sub| {
        let s = sub.value;
        match checker.type_of(Where::Instance, &s.deadline.value) {
            Some(VarType::DateTime) => {}
            Some(other) => ctx.at(
                &loc(&s.deadline),
                format!(
                    "submissions.deadline: '{}' è di tipo {other}, serve datetime",
                    s.deadline.value
                ),
            ),
            None => ctx.at(
                &loc(&s.deadline),
                format!("variabile non dichiarata '{}'", s.deadline.value),
            ),
        }
        let mut states_of = |list: OneOrMany| -> Vec<StateId> {
            list.into_vec()
                .into_iter()
                .map(|st| {
                    if !states.contains_key(st.value.as_str()) {
                        ctx.at(&loc(&st), format!("stato sconosciuto '{}'", st.value));
                    }
                    StateId(st.value)
                })
                .collect()
        };
        let while_in = states_of(s.while_in);
        let questions_while = s
            .questions_while
            .map(&mut states_of)
            .unwrap_or_else(|| while_in.clone());
        let soccorso_while = s.soccorso_while.map(&mut states_of).unwrap_or_default();
        let ranking_while = s.ranking_while.map(&mut states_of).unwrap_or_default();
        let score = s.score.map(|v| {
            match checker.pvars.as_ref().and_then(|p| p.get(&v.value)) {
                Some(VarType::Number) => {}
                Some(other) => ctx.at(
                    &loc(&v),
                    format!(
                        "submissions.score: '{}' è di tipo {other}, serve number",
                        v.value
                    ),
                ),
                None => ctx.at(
                    &loc(&v),
                    format!(
                        "submissions.score: '{}' non è una variabile del partecipante",
                        v.value
                    ),
                ),
            }
            VarName(v.value)
        });
        Submissions {
            score,
            deadline: VarName(s.deadline.value),
            while_in,
            questions_while,
            soccorso_while,
            ranking_while,
        }
    });
    if participant.is_some() && submissions.is_none() {
        ctx.at(
            &participant_loc,
            "i partecipanti entrano con una domanda: la procedura deve dichiarare submissions:",
        );
    }

    let results = raw
        .results
        .into_iter()
        .map(|r| {
            if !variables.contains_key(r.value.as_str()) {
                ctx.at(
                    &loc(&r),
                    format!("results: variabile non dichiarata '{}'", r.value),
                );
            }
            VarName(r.value)
        })
        .collect();

    let evaluation = raw.evaluation.map(|e| {
        evaluation(
            ctx,
            e,
            &checker,
            &states,
            &transitions,
            participant.as_ref(),
            submissions.as_ref(),
        )
    });

    let meeting = raw
        .meeting
        .map(|m| meeting(ctx, m, env, &checker, &states, &transitions));

    let mut albo: Vec<AlboEntry> = Vec::new();
    // Checked once the procedure is built: its actions say which documents it registers.
    let mut albo_documents = Vec::new();
    for entry in raw.albo {
        let e = entry.value;
        for var in [&e.from, &e.until] {
            match variables.get(var.value.as_str()) {
                None => ctx.at(&loc(var), format!("albo: variabile sconosciuta '{}'", var.value)),
                Some(v) if !matches!(v.kind, VarType::Date | VarType::DateTime) => ctx.at(
                    &loc(var),
                    format!("albo: '{}' deve essere una data (date o datetime)", var.value),
                ),
                Some(v) if v.visibility != Visibility::Public => ctx.at(
                    &loc(var),
                    format!("albo: '{}' non è pubblica (visible_to: [public]): l'albo mostra solo ciò che è pubblico", var.value),
                ),
                Some(_) => {}
            }
        }
        if albo.iter().any(|a| a.id == e.id.value) {
            ctx.at(&loc(&e.id), format!("albo: id '{}' duplicato", e.id.value));
        }
        albo.push(AlboEntry {
            id: e.id.value,
            title: e.title.value,
            from: VarName(e.from.value),
            until: VarName(e.until.value),
            trasparente: e.trasparente,
            document: e.document.map(|d| (loc(&d), d.value)).map(|(at, d)| {
                albo_documents.push((at, d.clone()));
                d
            }),
            faq: e.faq,
        });
    }

    let procedure = Procedure {
        albo,
        meeting,
        evaluation,
        submissions,
        id: raw.id.value,
        version,
        title: raw.title.value,
        description: raw.description,
        calendar,
        roles: checker.roles,
        variables,
        states,
        transitions,
        timers,
        cron,
        participant,
        numbers,
        results,
    };
    for (at, document) in albo_documents {
        let known = if document == crate::definition::model::SIGNED_VERBALE {
            procedure
                .meeting
                .as_ref()
                .is_some_and(|m| m.signed.is_some())
        } else {
            procedure.registers_document(&document)
        };
        if !known {
            ctx.at(
                &at,
                format!(
                    "albo: il documento '{document}' non è registrato da nessuna azione protocollo della procedura (document: …){}",
                    if document == crate::definition::model::SIGNED_VERBALE {
                        ""
                    } else {
                        "; per il verbale firmato della seduta: verbale_firmato, con meeting.signed"
                    }
                ),
            );
        }
    }
    if graph_is_sound {
        check_machine(
            ctx,
            &procedure.states,
            &procedure.transitions,
            &state_locs,
            true,
        );
    }
    procedure
}

fn check_term_cycles(ctx: &mut Ctx<'_>, variables: &IndexMap<VarName, Variable>) {
    for (name, var) in variables {
        let mut seen = BTreeSet::new();
        let mut current = var.term.as_ref().map(|t| t.from.clone());
        while let Some(next) = current {
            if next == *name {
                ctx.at(
                    &Location::UNKNOWN,
                    format!("i termini delle variabili formano un ciclo che passa per '{name}'"),
                );
                break;
            }
            if !seen.insert(next.clone()) {
                break;
            }
            current = variables
                .get(next.as_str())
                .and_then(|v| v.term.as_ref().map(|t| t.from.clone()));
        }
    }
}

/// Every state is reached from the initial one, and every state that is not final has a way
/// out (for the procedure; a participant may rest in a state until the procedure ends).
fn check_machine(
    ctx: &mut Ctx<'_>,
    states: &IndexMap<StateId, State>,
    transitions: &[Transition],
    locations: &BTreeMap<String, Location>,
    needs_exits: bool,
) {
    let Some(initial) = states.values().find(|s| s.initial) else {
        return;
    };
    let from = |state: &str| {
        transitions
            .iter()
            .filter(move |t| t.from.iter().any(|f| f.as_str() == state))
            .map(|t| t.to.as_str())
            .collect::<Vec<_>>()
    };
    let mut reached = BTreeSet::new();
    let mut queue = VecDeque::from([initial.id.as_str()]);
    while let Some(state) = queue.pop_front() {
        if !reached.insert(state) {
            continue;
        }
        queue.extend(from(state));
    }
    for s in states.values() {
        let at = locations
            .get(s.id.as_str())
            .copied()
            .unwrap_or(Location::UNKNOWN);
        if !reached.contains(s.id.as_str()) {
            ctx.at(
                &at,
                format!(
                    "lo stato '{}' non è raggiungibile dallo stato iniziale",
                    s.id
                ),
            );
        }
        if needs_exits && !s.is_final && from(s.id.as_str()).is_empty() {
            ctx.at(
                &at,
                format!(
                    "lo stato '{}' non è finale e non ha transizioni in uscita",
                    s.id
                ),
            );
        }
    }
}

/// A number written in the file as a decimal (its shortest form: 12.5 is 12.5).
fn decimal_of(ctx: &mut Ctx<'_>, n: &Spanned<f64>, what: &str) -> rust_decimal::Decimal {
    match n.value.to_string().parse::<rust_decimal::Decimal>() {
        Ok(d) if d >= rust_decimal::Decimal::ZERO => d,
        _ => {
            ctx.at(&loc(n), format!("{what}: serve un numero non negativo"));
            rust_decimal::Decimal::ZERO
        }
    }
}

fn criterion_of(ctx: &mut Ctx<'_>, raw: Spanned<RawCriterion>) -> Criterion {
    let c = raw.value;
    let max = decimal_of(ctx, &c.max, "evaluation.criteria.max");
    Criterion {
        id: c.id.value,
        title: c.title.value,
        max,
        sub: c.sub.into_iter().map(|s| criterion_of(ctx, s)).collect(),
    }
}

/// The `evaluation:` section: the criteria add up, every name it uses exists with its type.
#[allow(clippy::too_many_arguments)]
fn evaluation(
    ctx: &mut Ctx<'_>,
    raw: Spanned<RawEvaluation>,
    checker: &Checker<'_, '_>,
    states: &IndexMap<StateId, State>,
    transitions: &[Transition],
    participant: Option<&ParticipantDef>,
    submissions: Option<&Submissions>,
) -> EvaluationDef {
    let at = loc(&raw);
    let e = raw.value;
    if participant.is_none() {
        ctx.at(
            &at,
            "evaluation: si valutano le proposte dei partecipanti: serve la sezione participant:",
        );
    }
    let criteria_at = e.criteria.first().map_or(at, loc);
    let criteria: Vec<Criterion> = e
        .criteria
        .into_iter()
        .map(|c| criterion_of(ctx, c))
        .collect();
    let total = decimal_of(ctx, &e.total, "evaluation.total");
    let threshold = decimal_of(ctx, &e.threshold, "evaluation.threshold");
    for problem in Criterion::check(&criteria, total) {
        ctx.at(&criteria_at, format!("evaluation.criteria: {problem}"));
    }
    if threshold > total {
        ctx.at(
            &loc(&e.threshold),
            format!("evaluation.threshold: la soglia {threshold} supera il totale {total}"),
        );
    }
    let mut ids = Vec::new();
    fn collect(list: &[Criterion], ids: &mut Vec<String>) {
        for c in list {
            ids.push(c.id.clone());
            collect(&c.sub, ids);
        }
    }
    collect(&criteria, &mut ids);
    let tie = e
        .tie
        .into_iter()
        .map(|t| {
            if t.value != TIE_SUBMITTED && !ids.contains(&t.value) {
                ctx.at(
                    &loc(&t),
                    format!(
                        "evaluation.tie: '{}' non è un criterio né '{TIE_SUBMITTED}'",
                        t.value
                    ),
                );
            }
            t.value
        })
        .collect();
    let scoring = match e.scoring {
        None => Scoring::Collegial,
        Some(s) => match s.value.as_str() {
            "collegial" | "collegiale" => Scoring::Collegial,
            "per_member" | "per_componente" => Scoring::PerMember,
            other => {
                ctx.at(
                    &loc(&s),
                    format!("evaluation.scoring '{other}' sconosciuto (collegial, per_member)"),
                );
                Scoring::Collegial
            }
        },
    };
    let instance_var = |ctx: &mut Ctx<'_>, v: &SStr, ty: VarType, what: &str| {
        section_var(ctx, checker, "evaluation", v, ty, what)
    };
    let criteria_act = e
        .criteria_act
        .as_ref()
        .map(|v| instance_var(ctx, v, VarType::Text, "criteria_act"));
    let determina = e.determina.value;
    let determina_number = instance_var(ctx, &determina.number, VarType::Text, "determina.number");
    let determina_date = instance_var(ctx, &determina.date, VarType::Date, "determina.date");
    let participant_var = |ctx: &mut Ctx<'_>, v: SStr, ty: VarType, what: &str| {
        match checker.pvars.as_ref().and_then(|p| p.get(&v.value)) {
            Some(t) if *t == ty => {}
            Some(other) => ctx.at(
                &loc(&v),
                format!(
                    "evaluation.results.{what}: '{}' è di tipo {other}, serve {ty}",
                    v.value
                ),
            ),
            None => ctx.at(
                &loc(&v),
                format!(
                    "evaluation.results.{what}: '{}' non è una variabile del partecipante",
                    v.value
                ),
            ),
        }
        VarName(v.value)
    };
    let r = e.results.value;
    let results = EvaluationResults {
        total: participant_var(ctx, r.total, VarType::Number, "total"),
        complete: r
            .complete
            .map(|v| participant_var(ctx, v, VarType::Bool, "complete")),
        eligible: r
            .eligible
            .map(|v| participant_var(ctx, v, VarType::Bool, "eligible")),
        rank: r
            .rank
            .map(|v| participant_var(ctx, v, VarType::Number, "rank")),
    };
    let event = |ctx: &mut Ctx<'_>, v: SStr, what: &str| {
        section_event(ctx, transitions, "evaluation", v, what)
    };
    if let Some(templates) = checker.env.templates {
        for kind in [
            crate::engine::evaluation::RECTIFY_TEMPLATE,
            crate::engine::evaluation::VERBALE_TEMPLATE,
        ] {
            if !templates.contains_key(kind) {
                ctx.at(
                    &at,
                    format!("evaluation: manca il modello '{kind}' (rettifiche e verbali della commissione)"),
                );
            }
        }
    }
    let fixed_on = event(ctx, e.fixed_on, "fixed_on");
    let approve = event(ctx, e.approve, "approve");
    if let Some(act) = &criteria_act
        && !transitions
            .iter()
            .filter(|t| t.event == fixed_on)
            .all(|t| t.inputs.iter().any(|i| i.variable == *act && i.required))
    {
        ctx.at(
            &at,
            format!("evaluation.criteria_act: l'evento '{fixed_on}' deve chiedere '{act}' (required): i criteri si fissano con l'atto che li approva"),
        );
    }
    for t in transitions.iter().filter(|t| t.event == approve) {
        for needed in [&determina_number, &determina_date] {
            if !t.inputs.iter().any(|i| i.variable == *needed && i.required) {
                ctx.at(
                    &at,
                    format!("evaluation.determina: l'evento '{approve}' deve chiedere '{needed}' (required): la graduatoria si approva con una determina"),
                );
            }
        }
    }
    let instance_states =
        |ctx: &mut Ctx<'_>, list: OneOrMany| -> Vec<StateId> { section_states(ctx, states, list) };
    let rectify_while = match e.rectify_while {
        Some(list) => instance_states(ctx, list),
        None => submissions.map(|s| s.while_in.clone()).unwrap_or_default(),
    };
    let commission_while = instance_states(ctx, e.commission_while);
    let score_while = instance_states(ctx, e.score_while);
    let score_states = e
        .score_states
        .into_vec()
        .into_iter()
        .map(|st| {
            if !participant.is_some_and(|p| p.states.contains_key(st.value.as_str())) {
                ctx.at(
                    &loc(&st),
                    format!(
                        "evaluation.score_states: '{}' non è uno stato del partecipante",
                        st.value
                    ),
                );
            }
            StateId(st.value)
        })
        .collect();
    EvaluationDef {
        criteria,
        total,
        threshold,
        tie,
        scoring,
        criteria_act,
        fixed_on,
        rectify_while,
        commission_while,
        score_while,
        score_states,
        approve,
        determina_number,
        determina_date,
        results,
    }
}

/// The `meeting:` section: the body file parses, the variables and events exist with their
/// types.
fn meeting(
    ctx: &mut Ctx<'_>,
    raw: Spanned<RawMeeting>,
    env: &Environment<'_>,
    checker: &Checker<'_, '_>,
    states: &IndexMap<StateId, State>,
    transitions: &[Transition],
) -> MeetingDef {
    let m = raw.value;
    let body = match (env.read_closures)(&m.body.value) {
        Ok(text) => match super::body::Body::parse(&text) {
            Ok(body) => Some(body),
            Err(e) => {
                ctx.at(&loc(&m.body), format!("organo '{}': {e}", m.body.value));
                None
            }
        },
        Err(e) => {
            ctx.at(
                &loc(&m.body),
                format!("organo '{}' non leggibile: {e}", m.body.value),
            );
            None
        }
    };
    let var = |ctx: &mut Ctx<'_>, v: &SStr, ty: VarType, what: &str| {
        section_var(ctx, checker, "meeting", v, ty, what)
    };
    let members = var(ctx, &m.members, VarType::Parties, "members");
    let when = var(ctx, &m.when, VarType::DateTime, "when");
    let agenda = var(ctx, &m.agenda, VarType::List, "agenda");
    // The optional variables the section names, each checked for its type.
    let mut optional =
        |v: &Option<SStr>, ty: VarType, what: &str| v.as_ref().map(|v| var(ctx, v, ty, what));
    let place = optional(&m.place, VarType::Text, "place");
    let quorum = optional(&m.quorum, VarType::Bool, "quorum");
    let verbalizzante = optional(&m.verbalizzante, VarType::Text, "verbalizzante");
    let approved_in_session =
        optional(&m.approved_in_session, VarType::Bool, "approved_in_session");
    let signed = optional(&m.signed, VarType::Bool, "signed");
    let previous_verbale = optional(&m.previous_verbale, VarType::Text, "previous_verbale");
    let document = m.document.map(|d| {
        if let Some(templates) = env.templates
            && !templates.contains_key(&d.value)
        {
            ctx.at(
                &loc(&d),
                format!(
                    "meeting.document: template sconosciuto '{}' come documento delle deliberazioni",
                    d.value
                ),
            );
        }
        d.value
    });
    let event = |ctx: &mut Ctx<'_>, v: SStr, what: &str| {
        section_event(ctx, transitions, "meeting", v, what)
    };
    let opened_on = event(ctx, m.opened_on, "opened_on");
    let closed_on = event(ctx, m.closed_on, "closed_on");
    let second_call_on = m.second_call_on.map(|e| event(ctx, e, "second_call_on"));
    let state_list =
        |ctx: &mut Ctx<'_>, list: OneOrMany| -> Vec<StateId> { section_states(ctx, states, list) };
    let rsvp_while = state_list(ctx, m.rsvp_while);
    let session_while = state_list(ctx, m.session_while);
    let publication_days = match m.publication_days {
        None => DEFAULT_PUBLICATION_DAYS,
        Some(days) => match u32::try_from(days.value) {
            Ok(n) if (1..=365).contains(&n) => n,
            _ => {
                ctx.at(
                    &loc(&days),
                    format!(
                        "meeting.publication_days: i giorni di pubblicazione all'albo sono tra 1 e 365, non {}",
                        days.value
                    ),
                );
                DEFAULT_PUBLICATION_DAYS
            }
        },
    };
    MeetingDef {
        body: body.unwrap_or_else(|| super::body::Body {
            id: String::new(),
            title: String::new(),
            seats: Vec::new(),
            attendees: Vec::new(),
            rules: super::body::Rules::default(),
            presidente: None,
            delegates: Vec::new(),
        }),
        body_file: m.body.value,
        when,
        place,
        members,
        agenda,
        rsvp_while,
        session_while,
        opened_on,
        closed_on,
        second_call_on,
        quorum,
        verbalizzante,
        approved_in_session,
        signed,
        repertorio: m
            .repertorio
            .map_or_else(|| "deliberazioni".to_string(), |r| r.value),
        publication_days,
        previous_verbale,
        document,
    }
}

/// Days a deliberazione stays at the albo when the procedure does not say (art. 124 TUEL).
pub const DEFAULT_PUBLICATION_DAYS: u32 = 15;

/// A variable a section names, checked to exist in the procedure with its type.
fn section_var(
    ctx: &mut Ctx<'_>,
    checker: &Checker<'_, '_>,
    section: &str,
    v: &SStr,
    ty: VarType,
    what: &str,
) -> VarName {
    match checker.type_of(Where::Instance, &v.value) {
        Some(t) if t == ty => {}
        Some(other) => ctx.at(
            &loc(v),
            format!(
                "{section}.{what}: '{}' è di tipo {other}, serve {ty}",
                v.value
            ),
        ),
        None => ctx.at(
            &loc(v),
            format!("{section}.{what}: variabile non dichiarata '{}'", v.value),
        ),
    }
    VarName(v.value.clone())
}

/// An event a section names, checked to be some transition's.
fn section_event(
    ctx: &mut Ctx<'_>,
    transitions: &[Transition],
    section: &str,
    v: SStr,
    what: &str,
) -> EventName {
    if !transitions.iter().any(|t| t.event.as_str() == v.value) {
        ctx.at(
            &loc(&v),
            format!(
                "{section}.{what}: nessuna transizione ha l'evento '{}'",
                v.value
            ),
        );
    }
    EventName(v.value)
}

/// States a section names, checked to exist.
fn section_states(
    ctx: &mut Ctx<'_>,
    states: &IndexMap<StateId, State>,
    list: OneOrMany,
) -> Vec<StateId> {
    list.into_vec()
        .into_iter()
        .map(|st| {
            if !states.contains_key(st.value.as_str()) {
                ctx.at(&loc(&st), format!("stato sconosciuto '{}'", st.value));
            }
            StateId(st.value)
        })
        .collect()
}
