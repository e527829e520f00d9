//! A body of the Ambito (Assemblea dei Sindaci, Tavolo Tecnico) as data: its seats with their
//! vote weights and its rules, read from a YAML file that a procedure's `meeting:` names. Each
//! rule may be unknown: what the statute does not say is not invented.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A body (Assemblea dei Sindaci, Tavolo Tecnico): its seats and its rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Body {
    /// Stable id.
    pub id: String,
    /// Its name, as the verbale prints it.
    pub title: String,
    /// The seats that vote (a comune, or a person).
    pub seats: Vec<Seat>,
    /// Who attends without a vote (by title: "Responsabile dell'Ufficio di Piano").
    #[serde(default)]
    pub attendees: Vec<String>,
    /// Its rules; each one may be unknown.
    #[serde(default)]
    pub rules: Rules,
    /// The seat whose holder presides, when the statute says so.
    #[serde(default)]
    pub presidente: Option<String>,
    /// Who may sit for a seat's holder (empty: the statute does not restrict it).
    #[serde(default)]
    pub delegates: Vec<Capacity>,
}

/// A seat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seat {
    /// Id (the comune's, or the person's).
    pub id: String,
    /// Name ("Comune di Tradate").
    pub name: String,
    /// Its vote weight (a quota); 1 when one head one vote.
    #[serde(default = "one")]
    pub weight: Decimal,
}

fn one() -> Decimal {
    Decimal::ONE
}

/// A share of the total that must be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Threshold {
    /// The fraction of the total (0.5 for half).
    pub fraction: Decimal,
    /// `true`: more than the fraction; `false`: at least it.
    #[serde(default = "yes")]
    pub strict: bool,
}

fn yes() -> bool {
    true
}

impl Threshold {
    /// Whether `part` of `total` reaches the threshold.
    pub fn met(self, part: Decimal, total: Decimal) -> bool {
        let needed = total * self.fraction;
        if self.strict {
            part > needed
        } else {
            part >= needed
        }
    }

    /// The rule in Italian ("più del 50% dei seggi").
    pub fn describe(self, what: &str) -> String {
        let share = (self.fraction * Decimal::from(100)).normalize();
        if self.strict {
            format!("più del {share}% {what}")
        } else {
            format!("almeno il {share}% {what}")
        }
    }
}

/// A quorum: by heads, by weights, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quorum {
    /// Share of the seats present.
    #[serde(default)]
    pub heads: Option<Threshold>,
    /// Share of the weights present.
    #[serde(default)]
    pub weights: Option<Threshold>,
}

/// What a majority counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// One seat, one vote.
    Heads,
    /// Each seat with its weight ("secondo le quote").
    Weights,
}

/// Which votes a majority is computed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Base {
    /// Everyone present: an abstention weighs as not in favour.
    Present,
    /// Only who voted for or against ("presenti e votanti"): abstentions are out.
    Voting,
}

/// How a decision passes: more in favour than half of the base.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Majority {
    /// Heads or weights.
    pub basis: Basis,
    /// Present or voting.
    pub base: Base,
}

/// The rules of a body. Each may be unknown: a rule the statute does not give is not invented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Rules {
    /// Quorum costitutivo at the first call.
    #[serde(default)]
    pub quorum: Option<Quorum>,
    /// Quorum costitutivo at the second call.
    #[serde(default)]
    pub second_quorum: Option<Quorum>,
    /// How decisions pass.
    #[serde(default)]
    pub majority: Option<Majority>,
}

/// In what capacity someone sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capacity {
    /// The holder (the sindaco).
    Sindaco,
    /// The vice sindaco.
    ViceSindaco,
    /// An assessore.
    Assessore,
    /// A delegate with a written delega.
    Delegato,
    /// The record does not say.
    NonIndicata,
}

impl Capacity {
    /// Italian, as a verbale prints it; `None` when the record does not say.
    pub fn title(self) -> Option<&'static str> {
        match self {
            Capacity::Sindaco => Some("Sindaco"),
            Capacity::ViceSindaco => Some("Vice Sindaco"),
            Capacity::Assessore => Some("Assessore"),
            Capacity::Delegato => Some("Delegato"),
            Capacity::NonIndicata => None,
        }
    }
}

impl Body {
    /// Parses and checks a body file: seat ids unique, weights positive, fractions in (0, 1].
    pub fn parse(text: &str) -> Result<Body, String> {
        let body: Body = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        if body.seats.is_empty() {
            return Err("l'organo non ha seggi".into());
        }
        for (i, s) in body.seats.iter().enumerate() {
            if body.seats[..i].iter().any(|o| o.id == s.id) {
                return Err(format!("seggio '{}' duplicato", s.id));
            }
            if s.weight <= Decimal::ZERO {
                return Err(format!("il seggio '{}' ha una quota non positiva", s.id));
            }
        }
        if let Some(p) = &body.presidente
            && !body.seats.iter().any(|s| &s.id == p)
        {
            return Err(format!("presidente: '{p}' non è un seggio dell'organo"));
        }
        for q in [body.rules.quorum, body.rules.second_quorum]
            .into_iter()
            .flatten()
        {
            for t in [q.heads, q.weights].into_iter().flatten() {
                if t.fraction <= Decimal::ZERO || t.fraction > Decimal::ONE {
                    return Err(format!(
                        "numero legale: la frazione {} deve stare tra 0 (escluso) e 1",
                        t.fraction
                    ));
                }
            }
        }
        Ok(body)
    }
}
