//! Meetings of the Ambito's bodies. PURE: a body's seats with their vote weights and its
//! rules, the register of who is present (with arrivals and departures), the quorum at the
//! instant of each vote, the result of a vote by the body's rule, and what a verbale is drafted
//! from. What a record does not say stays unknown (`None`): never zero, never "unanimità".

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

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
    fn met(self, part: Decimal, total: Decimal) -> bool {
        let needed = total * self.fraction;
        if self.strict {
            part > needed
        } else {
            part >= needed
        }
    }

    fn describe(self, what: &str) -> String {
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

/// Someone in the register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    /// The seat they hold for this meeting; `None` for who attends without a vote.
    pub seat: Option<String>,
    /// Their name.
    pub name: String,
    /// Their capacity.
    pub capacity: Capacity,
    /// For who attends without a vote: why they are there ("responsabile dell'Ufficio di
    /// Piano", "assessore ai servizi sociali di Tradate").
    #[serde(default)]
    pub note: Option<String>,
    /// When they arrived (`None`: from the opening).
    #[serde(default)]
    pub arrived: Option<DateTime<Utc>>,
    /// When they left (`None`: until the end).
    #[serde(default)]
    pub left: Option<DateTime<Utc>>,
}

impl Presence {
    fn present_at(&self, at: DateTime<Utc>) -> bool {
        self.arrived.is_none_or(|a| a <= at) && self.left.is_none_or(|l| l > at)
    }
}

/// A vote cast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ballot {
    /// In favour.
    Favorevole,
    /// Against.
    Contrario,
    /// Abstained.
    Astenuto,
}

/// The outcome of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Approved.
    Approvato,
    /// Rejected.
    Respinto,
    /// Not voted: the quorum was lacking at the vote.
    MancanzaNumeroLegale,
    /// Postponed.
    Rinviato,
    /// Discussed, no decision.
    NessunaDecisione,
}

impl Outcome {
    /// Italian.
    pub fn title(self) -> &'static str {
        match self {
            Outcome::Approvato => "approvato",
            Outcome::Respinto => "respinto",
            Outcome::MancanzaNumeroLegale => "non votato per mancanza del numero legale",
            Outcome::Rinviato => "rinviato",
            Outcome::NessunaDecisione => "nessuna decisione",
        }
    }
}

/// The quorum at an instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuorumCheck {
    /// Seats present.
    pub heads: usize,
    /// Of the seats.
    pub seats: usize,
    /// Weight present.
    pub weight: Decimal,
    /// Of the total.
    pub total_weight: Decimal,
    /// Met; `None` when the body's rule is unknown.
    pub met: Option<bool>,
    /// Why, one Italian line each.
    pub trace: Vec<String>,
}

/// The seats present at an instant: a seat counts once whoever holds it.
pub fn seats_present<'a>(
    body: &'a Body,
    register: &[Presence],
    at: DateTime<Utc>,
) -> Vec<&'a Seat> {
    body.seats
        .iter()
        .filter(|s| {
            register
                .iter()
                .any(|p| p.seat.as_deref() == Some(s.id.as_str()) && p.present_at(at))
        })
        .collect()
}

/// The quorum at `at`, by the rule of the first or second call.
pub fn quorum(
    body: &Body,
    register: &[Presence],
    at: DateTime<Utc>,
    second_call: bool,
) -> QuorumCheck {
    let present = seats_present(body, register, at);
    let weight: Decimal = present.iter().map(|s| s.weight).sum();
    let total_weight: Decimal = body.seats.iter().map(|s| s.weight).sum();
    let heads = present.len();
    let seats = body.seats.len();
    let mut trace = vec![format!(
        "presenti {heads} seggi su {seats}, quote {} su {}",
        weight.normalize(),
        total_weight.normalize()
    )];
    let rule = if second_call {
        body.rules.second_quorum.or(body.rules.quorum)
    } else {
        body.rules.quorum
    };
    let met = rule.map(|q| {
        let mut ok = true;
        if let Some(t) = q.heads {
            let m = t.met(Decimal::from(heads), Decimal::from(seats));
            trace.push(format!(
                "{}: {}",
                t.describe("dei seggi"),
                if m { "raggiunto" } else { "non raggiunto" }
            ));
            ok &= m;
        }
        if let Some(t) = q.weights {
            let m = t.met(weight, total_weight);
            trace.push(format!(
                "{}: {}",
                t.describe("delle quote"),
                if m { "raggiunto" } else { "non raggiunto" }
            ));
            ok &= m;
        }
        ok
    });
    if met.is_none() {
        trace.push("regola del numero legale non indicata: non verificato".into());
    }
    QuorumCheck {
        heads,
        seats,
        weight,
        total_weight,
        met,
        trace,
    }
}

/// A vote's count and outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// The quorum at the vote.
    pub quorum: QuorumCheck,
    /// In favour: heads, weight.
    pub favorevoli: (usize, Decimal),
    /// Against.
    pub contrari: (usize, Decimal),
    /// Abstained.
    pub astenuti: (usize, Decimal),
    /// The outcome; `None` when the body's majority rule is unknown.
    pub outcome: Option<Outcome>,
    /// Why, one Italian line each.
    pub trace: Vec<String>,
}

/// Counts a vote taken at `at`: only seats present then vote (a ballot from a seat that left
/// is refused by the caller); without quorum the item is not voted.
pub fn tally(
    body: &Body,
    register: &[Presence],
    at: DateTime<Utc>,
    second_call: bool,
    ballots: &BTreeMap<String, Ballot>,
) -> Tally {
    let q = quorum(body, register, at, second_call);
    let present = seats_present(body, register, at);
    let count = |which: Ballot| {
        let seats: Vec<&&Seat> = present
            .iter()
            .filter(|s| ballots.get(&s.id) == Some(&which))
            .collect();
        (seats.len(), seats.iter().map(|s| s.weight).sum::<Decimal>())
    };
    let favorevoli = count(Ballot::Favorevole);
    let contrari = count(Ballot::Contrario);
    let astenuti = count(Ballot::Astenuto);
    let mut trace = q.trace.clone();
    let outcome = if q.met == Some(false) {
        trace.push("numero legale mancante: l'argomento non è votato".into());
        Some(Outcome::MancanzaNumeroLegale)
    } else {
        body.rules.majority.map(|m| {
            let pick = |(h, w): (usize, Decimal)| match m.basis {
                Basis::Heads => Decimal::from(h),
                Basis::Weights => w,
            };
            let present_total = match m.basis {
                Basis::Heads => Decimal::from(q.heads),
                Basis::Weights => q.weight,
            };
            let base = match m.base {
                Base::Present => present_total,
                Base::Voting => pick(favorevoli) + pick(contrari),
            };
            let pro = pick(favorevoli);
            let passed = pro > base / Decimal::TWO;
            trace.push(format!(
                "favorevoli {} su {} {} ({}): {}",
                pro.normalize(),
                base.normalize(),
                match m.base {
                    Base::Present => "presenti",
                    Base::Voting => "presenti e votanti",
                },
                match m.basis {
                    Basis::Heads => "per teste",
                    Basis::Weights => "secondo le quote",
                },
                if passed {
                    "maggioranza raggiunta"
                } else {
                    "maggioranza non raggiunta"
                }
            ));
            if passed {
                Outcome::Approvato
            } else {
                Outcome::Respinto
            }
        })
    };
    if outcome.is_none() {
        trace.push("regola di maggioranza non indicata: esito non calcolato".into());
    }
    Tally {
        quorum: q,
        favorevoli,
        contrari,
        astenuti,
        outcome,
        trace,
    }
}

/// One item of the agenda as the record has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRecord {
    /// Its title.
    pub title: String,
    /// What was said, as the verbale reports it.
    #[serde(default)]
    pub discussion: Option<String>,
    /// The outcome; `None` when the record does not say.
    #[serde(default)]
    pub outcome: Option<Outcome>,
    /// What was decided, in words ("il piano territoriale … allegato al verbale").
    #[serde(default)]
    pub decision: Option<String>,
    /// The count, when there was a roll-call vote; `None` when the record has no count.
    #[serde(default)]
    pub tally: Option<CountRecord>,
}

/// A count as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountRecord {
    /// In favour.
    pub favorevoli: usize,
    /// Against.
    pub contrari: usize,
    /// Abstained.
    pub astenuti: usize,
}

/// What a verbale is drafted from. Every field the minutes may leave unsaid is an `Option`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingRecord {
    /// The day (dd/mm/yyyy as printed).
    pub date: String,
    /// The place.
    pub place: Option<String>,
    /// Convened at (hh.mm).
    pub convened: Option<String>,
    /// Opened at.
    pub opened: Option<String>,
    /// Closed at.
    pub closed: Option<String>,
    /// The convocation's reference (prot. n. … del …).
    pub convocation: Option<String>,
    /// Who presided (name).
    pub presidente: Option<String>,
    /// Who took the minutes.
    pub verbalizzante: Option<String>,
    /// The register.
    pub register: Vec<Presence>,
    /// The agenda with what happened.
    pub items: Vec<ItemRecord>,
    /// Approved in the same session ("letto, approvato e sottoscritto").
    pub approved_in_session: bool,
}

/// What the verbale template reads: the seats present and absent (in the body's order) with
/// who held them and in what capacity; who attended without a vote; each item with its
/// outcome and count only where known; the signatures that exist.
pub fn verbale_context(body: &Body, record: &MeetingRecord) -> Value {
    let holder = |seat: &str| {
        record
            .register
            .iter()
            .find(|p| p.seat.as_deref() == Some(seat))
    };
    let presenti: Vec<Value> = body
        .seats
        .iter()
        .filter_map(|s| {
            holder(&s.id).map(|p| {
                json!({
                    "seggio": s.name,
                    "nome": p.name,
                    "carica": p.capacity.title(),
                })
            })
        })
        .collect();
    let assenti: Vec<Value> = body
        .seats
        .iter()
        .filter(|s| holder(&s.id).is_none())
        .map(|s| json!({ "seggio": s.name }))
        .collect();
    let senza_voto: Vec<Value> = record
        .register
        .iter()
        .filter(|p| p.seat.is_none())
        .map(|p| json!({ "nome": p.name, "carica": p.capacity.title(), "nota": p.note }))
        .collect();
    let punti: Vec<Value> = record
        .items
        .iter()
        .map(|item| {
            json!({
                "titolo": item.title,
                "discussione": item.discussion,
                "esito": item.outcome.map(Outcome::title),
                "decisione": item.decision,
                "votazione": item.tally.as_ref().map(|t| json!({
                    "favorevoli": t.favorevoli, "contrari": t.contrari, "astenuti": t.astenuti,
                })),
            })
        })
        .collect();
    let mut firme = Vec::new();
    if let Some(p) = &record.presidente {
        firme.push(json!({ "ruolo": "Il Presidente", "nome": p }));
    }
    if let Some(v) = &record.verbalizzante {
        firme.push(json!({ "ruolo": "Il Segretario verbalizzante", "nome": v }));
    }
    json!({
        "organo": body.title,
        "giorno": record.date,
        "luogo": record.place,
        "ora_convocazione": record.convened,
        "ora_apertura": record.opened,
        "ora_chiusura": record.closed,
        "convocazione": record.convocation,
        "presidente": record.presidente,
        "verbalizzante": record.verbalizzante,
        "presenti": presenti,
        "assenti": assenti,
        "senza_voto": senza_voto,
        "punti": punti,
        "approvato_in_seduta": record.approved_in_session,
        "firme": firme,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn at(hhmm: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2027-01-20T{hhmm}:00+01:00"))
            .expect("instant")
            .with_timezone(&Utc)
    }

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).expect("decimal")
    }

    fn body(weights: &[(&str, &str)], rules: Rules) -> Body {
        Body {
            id: "assemblea".into(),
            title: "Assemblea dei Sindaci".into(),
            seats: weights
                .iter()
                .map(|(id, w)| Seat {
                    id: (*id).into(),
                    name: format!("Comune di {id}"),
                    weight: d(w),
                })
                .collect(),
            attendees: Vec::new(),
            rules,
        }
    }

    fn present(seats: &[&str]) -> Vec<Presence> {
        seats
            .iter()
            .map(|s| Presence {
                seat: Some((*s).into()),
                name: format!("sindaco di {s}"),
                capacity: Capacity::Sindaco,
                note: None,
                arrived: None,
                left: None,
            })
            .collect()
    }

    fn ballots(list: &[(&str, Ballot)]) -> BTreeMap<String, Ballot> {
        list.iter().map(|(s, b)| ((*s).to_string(), *b)).collect()
    }

    /// Seed 001 (Cinisello Balsamo): "a maggioranza dei voti dei Sindaci presenti e votanti,
    /// in ragione dei voti espressi e secondo le quote di ciascuno rappresentante".
    fn by_quota() -> Rules {
        Rules {
            quorum: Some(Quorum {
                heads: None,
                weights: Some(Threshold {
                    fraction: d("0.5"),
                    strict: true,
                }),
            }),
            second_quorum: None,
            majority: Some(Majority {
                basis: Basis::Weights,
                base: Base::Voting,
            }),
        }
    }

    #[test]
    fn a_vote_by_quota_passes_where_a_head_count_fails_and_the_reverse() {
        use Ballot::*;
        let quota = body(
            &[
                ("cinisello", "40"),
                ("bresso", "10"),
                ("cormano", "10"),
                ("cusano", "10"),
            ],
            by_quota(),
        );
        let heads = Body {
            rules: Rules {
                majority: Some(Majority {
                    basis: Basis::Heads,
                    base: Base::Voting,
                }),
                ..by_quota()
            },
            ..quota.clone()
        };
        let register = present(&["cinisello", "bresso", "cormano", "cusano"]);
        // The big comune for, two small against, one abstains: 40 against 20 by quota, 1
        // against 2 by heads.
        let votes = ballots(&[
            ("cinisello", Favorevole),
            ("bresso", Contrario),
            ("cormano", Contrario),
            ("cusano", Astenuto),
        ]);
        let t = tally(&quota, &register, at("18:00"), false, &votes);
        assert_eq!(t.outcome, Some(Outcome::Approvato), "{:#?}", t.trace);
        assert_eq!(t.favorevoli, (1, d("40")));
        assert_eq!(
            tally(&heads, &register, at("18:00"), false, &votes).outcome,
            Some(Outcome::Respinto)
        );
        // The reverse: the three small ones for (30), the big one against (40).
        let votes = ballots(&[
            ("cinisello", Contrario),
            ("bresso", Favorevole),
            ("cormano", Favorevole),
            ("cusano", Favorevole),
        ]);
        assert_eq!(
            tally(&quota, &register, at("18:00"), false, &votes).outcome,
            Some(Outcome::Respinto)
        );
        assert_eq!(
            tally(&heads, &register, at("18:00"), false, &votes).outcome,
            Some(Outcome::Approvato)
        );
    }

    #[test]
    fn an_abstention_changes_the_outcome_with_the_bodys_base_rule() {
        use Ballot::*;
        let rules = |base| Rules {
            quorum: None,
            second_quorum: None,
            majority: Some(Majority {
                basis: Basis::Heads,
                base,
            }),
        };
        let seats = [("a", "1"), ("b", "1"), ("c", "1"), ("d", "1")];
        let register = present(&["a", "b", "c", "d"]);
        let votes = ballots(&[
            ("a", Favorevole),
            ("b", Favorevole),
            ("c", Contrario),
            ("d", Astenuto),
        ]);
        // 2 of 4 present is not more than half; 2 of 3 voting is.
        let t = tally(
            &body(&seats, rules(Base::Present)),
            &register,
            at("18:00"),
            false,
            &votes,
        );
        assert_eq!(t.outcome, Some(Outcome::Respinto), "{:#?}", t.trace);
        let t = tally(
            &body(&seats, rules(Base::Voting)),
            &register,
            at("18:00"),
            false,
            &votes,
        );
        assert_eq!(t.outcome, Some(Outcome::Approvato), "{:#?}", t.trace);
        // Without quorum rule the quorum is not assumed: it is unknown, and said so.
        assert_eq!(t.quorum.met, None);
        assert!(t.trace.iter().any(|l| l.contains("non indicata")));
    }

    #[test]
    fn a_member_leaving_mid_session_makes_a_later_vote_lack_quorum() {
        use Ballot::*;
        let rules = Rules {
            quorum: Some(Quorum {
                heads: Some(Threshold {
                    fraction: d("0.5"),
                    strict: true,
                }),
                weights: None,
            }),
            second_quorum: Some(Quorum {
                heads: Some(Threshold {
                    fraction: d("0.3333"),
                    strict: false,
                }),
                weights: None,
            }),
            majority: Some(Majority {
                basis: Basis::Heads,
                base: Base::Voting,
            }),
        };
        let seats: Vec<(&str, &str)> = ["a", "b", "c", "d", "e", "f", "g", "h"]
            .iter()
            .map(|s| (*s, "1"))
            .collect();
        let body = body(&seats, rules);
        let mut register = present(&["a", "b", "c", "d", "e"]);
        // A delegate holds e's seat: it counts for its comune.
        register[4].capacity = Capacity::Delegato;
        register[4].left = Some(at("19:00"));
        let votes = ballots(&[("a", Favorevole), ("b", Favorevole), ("c", Favorevole)]);
        let before = tally(&body, &register, at("18:50"), false, &votes);
        assert_eq!(before.quorum.heads, 5);
        assert_eq!(
            before.outcome,
            Some(Outcome::Approvato),
            "{:#?}",
            before.trace
        );
        let after = tally(&body, &register, at("19:05"), false, &votes);
        assert_eq!(after.quorum.heads, 4);
        assert_eq!(after.quorum.met, Some(false));
        assert_eq!(
            after.outcome,
            Some(Outcome::MancanzaNumeroLegale),
            "{:#?}",
            after.trace
        );
        // At a second call, with its lower quorum (a third), the same four suffice.
        let second = tally(&body, &register, at("19:05"), true, &votes);
        assert_eq!(
            second.outcome,
            Some(Outcome::Approvato),
            "{:#?}",
            second.trace
        );
    }

    #[test]
    fn a_seat_counts_once_whoever_sits_for_it() {
        let body = body(&[("tradate", "1"), ("gornate", "1")], by_quota());
        let mut register = present(&["tradate"]);
        register.push(Presence {
            seat: None,
            name: "Franco Accordino".into(),
            capacity: Capacity::Assessore,
            note: Some("assessore ai servizi sociali di Tradate".into()),
            arrived: None,
            left: None,
        });
        let q = quorum(&body, &register, at("18:00"), false);
        assert_eq!((q.heads, q.seats), (1, 2));
    }
}
