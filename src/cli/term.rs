//! `procedo term`: computes an Italian legal term from the command line and prints its expiry
//! and the trace of the computation, for a person or as JSON.

use crate::terms::{self, Calendar, Rule, RuleSpec, Suspension};
use chrono::NaiveDate;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

/// Calcola la scadenza di un termine di legge (art. 2963 c.c., art. 155 c.p.c.) e ne mostra il
/// calcolo passo per passo.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TermArgs {
    /// Dies a quo (AAAA-MM-GG), escluso dal computo; con --window è il primo giorno di
    /// pubblicazione, compreso; con --backward è il giorno di riferimento (es. la seduta).
    #[arg(long, value_name = "AAAA-MM-GG")]
    pub start: String,
    /// Termine in giorni di calendario.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub days: Option<i64>,
    /// Termine in mesi, secondo il calendario.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub months: Option<i64>,
    /// Termine in anni, secondo il calendario.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub years: Option<i64>,
    /// Pubblicazione per N giorni consecutivi: il primo giorno conta, nessuno spostamento.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub window: Option<i64>,
    /// Termine a ritroso ("almeno N giorni prima"): un festivo anticipa la scadenza.
    #[arg(long)]
    pub backward: bool,
    /// Giorni liberi: esclusi sia il dies a quo sia il dies ad quem.
    #[arg(long)]
    pub free: bool,
    /// Il sabato sposta la scadenza come un festivo.
    #[arg(long)]
    pub saturday_shift: bool,
    /// Sospensione feriale: dal 1° al 31 agosto i giorni non si contano (solo termini processuali).
    #[arg(long)]
    pub feriale: bool,
    /// Comune (solo "Roma" ha una festività propria: 29 giugno).
    #[arg(long, value_name = "NOME")]
    pub comune: Option<String>,
    /// File YAML delle chiusure degli uffici (`closures: [{date, reason}]`); le chiusure
    /// spostano la scadenza come i festivi.
    #[arg(long, value_name = "FILE")]
    pub closures: Option<PathBuf>,
    /// Ora della scadenza (HH:MM, Europe/Rome); senza, la fine del giorno (23:59:59).
    #[arg(long, value_name = "HH:MM")]
    pub at: Option<String>,
    /// Sospensione del termine, estremi compresi (ripetibile).
    #[arg(long = "suspension", value_name = "AAAA-MM-GG..AAAA-MM-GG")]
    pub suspensions: Vec<String>,
    /// Stampa {"expiry", "deadline", "trace"} in JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `procedo term`: the result on stdout, or the problem on stderr with exit code 2.
pub fn run(args: &TermArgs) -> ExitCode {
    match render(args) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("errore: {message}");
            ExitCode::from(2)
        }
    }
}

/// The JSON shape of a computed term, fields in this order.
#[derive(Serialize)]
struct JsonTerm<'a> {
    expiry: NaiveDate,
    deadline: String,
    trace: &'a [String],
}

/// Computes the term the arguments describe and renders it; reads the closures file, if any.
///
/// Errors are Italian sentences naming the option or the file at fault.
pub fn render(args: &TermArgs) -> Result<String, String> {
    let start = parse_date("--start", &args.start)?;
    let closures = match &args.closures {
        None => Vec::new(),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|error| {
                format!("--closures {}: file non leggibile: {error}", path.display())
            })?;
            terms::parse_closures(&text)
                .map_err(|error| format!("--closures {}: {error}", path.display()))?
        }
    };
    let suspensions = args
        .suspensions
        .iter()
        .map(|text| parse_suspension(text))
        .collect::<Result<Vec<_>, _>>()?;
    let spec = RuleSpec {
        days: args.days,
        months: args.months,
        years: args.years,
        window: args.window,
        hours: None,
        backward: args.backward,
        free: args.free,
        at: args.at.clone(),
        saturday_shift: args.saturday_shift,
        closures_shift: args.closures.is_some(),
        feriale: args.feriale,
    };
    let rule = Rule::new(spec).map_err(|error| error.to_string())?;
    let calendar = Calendar {
        comune: args.comune.clone(),
        closures,
    };
    let term =
        terms::compute(&rule, start, &calendar, &suspensions).map_err(|error| error.to_string())?;
    if args.json {
        let json = JsonTerm {
            expiry: term.expiry,
            deadline: term.deadline.to_rfc3339(),
            trace: &term.trace,
        };
        return serde_json::to_string_pretty(&json).map_err(|error| error.to_string());
    }
    let mut text = format!(
        "Scadenza: {}\nIstante: {}\nRegola: {}\nDecorrenza: {}\n\nCalcolo:",
        term.describe(),
        term.deadline.to_rfc3339(),
        rule,
        start.format("%d/%m/%Y")
    );
    for (number, line) in term.trace.iter().enumerate() {
        text.push_str(&format!("\n  {}. {line}", number + 1));
    }
    Ok(text)
}

fn parse_date(option: &str, text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| format!("{option}: data inesistente o non nella forma AAAA-MM-GG: {text:?}"))
}

fn parse_suspension(text: &str) -> Result<Suspension, String> {
    let Some((from, to)) = text.split_once("..") else {
        return Err(format!(
            "--suspension: atteso AAAA-MM-GG..AAAA-MM-GG, trovato {text:?}"
        ));
    };
    Ok(Suspension {
        from: parse_date("--suspension", from)?,
        to: parse_date("--suspension", to)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn args(start: &str) -> TermArgs {
        TermArgs {
            start: start.into(),
            ..TermArgs::default()
        }
    }

    #[test]
    fn thirty_days_are_rendered_for_a_person() {
        let text = render(&TermArgs {
            days: Some(30),
            ..args("2026-11-27")
        })
        .expect("valid term");
        assert!(
            text.starts_with(
                "Scadenza: lunedì 28/12/2026 ore 23:59:59 (Europe/Rome)\nIstante: 2026-12-28T23:59:59+01:00\nRegola: 30 giorni\nDecorrenza: 27/11/2026\n\nCalcolo:\n  1. dies a quo 27/11/2026 escluso\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn json_output_has_expiry_deadline_and_trace_in_this_order() {
        let text = render(&TermArgs {
            days: Some(30),
            at: Some("12:00".into()),
            json: true,
            ..args("2026-11-27")
        })
        .expect("valid term");
        let value: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(value["expiry"], "2026-12-28");
        assert_eq!(value["deadline"], "2026-12-28T12:00:00+01:00");
        assert_eq!(value["trace"][0], "dies a quo 27/11/2026 escluso");
        let expiry = text.find("\"expiry\"").expect("expiry");
        let deadline = text.find("\"deadline\"").expect("deadline");
        let trace = text.find("\"trace\"").expect("trace");
        assert!(expiry < deadline && deadline < trace, "{text}");
        assert_eq!(value.as_object().map(|object| object.len()), Some(3));
    }

    #[test]
    fn a_closures_file_turns_on_the_closures_shift() {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        writeln!(
            file,
            "closures:\n  - date: 2026-12-07\n    reason: \"Sant'Ambrogio\""
        )
        .expect("written");
        let text = render(&TermArgs {
            days: Some(15),
            closures: Some(file.path().to_path_buf()),
            comune: Some("Milano".into()),
            json: true,
            ..args("2026-11-22")
        })
        .expect("valid term");
        let value: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(value["expiry"], "2026-12-09");
    }

    #[test]
    fn backward_free_and_saturday_flags_reach_the_rule() {
        let render_expiry = |args: TermArgs| {
            let text = render(&TermArgs { json: true, ..args }).expect("valid term");
            let value: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
            value["expiry"].as_str().map(str::to_owned)
        };
        let backward = TermArgs {
            days: Some(5),
            backward: true,
            free: true,
            ..args("2026-12-31")
        };
        assert_eq!(render_expiry(backward).as_deref(), Some("2026-12-24"));
        let saturday = TermArgs {
            days: Some(30),
            saturday_shift: true,
            ..args("2026-01-22")
        };
        assert_eq!(render_expiry(saturday).as_deref(), Some("2026-02-23"));
        let suspended = TermArgs {
            days: Some(30),
            suspensions: vec!["2027-01-11..2027-01-20".into()],
            ..args("2027-01-04")
        };
        assert_eq!(render_expiry(suspended).as_deref(), Some("2027-02-13"));
    }

    #[test]
    fn an_impossible_start_date_names_the_option() {
        let error = render(&TermArgs {
            days: Some(10),
            ..args("2026-02-30")
        })
        .expect_err("30 February");
        assert_eq!(
            error,
            "--start: data inesistente o non nella forma AAAA-MM-GG: \"2026-02-30\""
        );
    }

    #[test]
    fn a_missing_or_negative_count_names_the_field() {
        let missing = render(&args("2026-02-03")).expect_err("no count");
        assert!(
            missing.contains("indicare uno tra days, months, years e window"),
            "{missing}"
        );
        let negative = render(&TermArgs {
            days: Some(-3),
            ..args("2026-02-03")
        })
        .expect_err("negative");
        assert!(
            negative.contains("days deve essere almeno 1 (trovato -3)"),
            "{negative}"
        );
    }

    #[test]
    fn an_unreadable_or_broken_closures_file_names_the_file() {
        let missing = TermArgs {
            days: Some(10),
            closures: Some("/nonexistent/chiusure.yaml".into()),
            ..args("2026-02-03")
        };
        let error = render(&missing).expect_err("no file");
        assert!(
            error.starts_with("--closures /nonexistent/chiusure.yaml: file non leggibile"),
            "{error}"
        );
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        writeln!(file, "closures:\n  - date: 2026-13-01\n    reason: x").expect("written");
        let broken = TermArgs {
            days: Some(10),
            closures: Some(file.path().to_path_buf()),
            ..args("2026-02-03")
        };
        let error = render(&broken).expect_err("bad date");
        assert!(error.contains("riga 2, colonna 11"), "{error}");
        assert!(
            error.contains(&file.path().display().to_string()),
            "{error}"
        );
    }

    #[test]
    fn a_bad_suspension_names_the_option() {
        let error = render(&TermArgs {
            days: Some(10),
            suspensions: vec!["2027-01-11".into()],
            ..args("2027-01-04")
        })
        .expect_err("no range");
        assert!(error.starts_with("--suspension:"), "{error}");
    }

    #[test]
    fn run_exits_with_2_on_a_bad_input() {
        assert_eq!(run(&args("ieri")), ExitCode::from(2));
    }

    #[test]
    fn the_flags_parse_with_clap() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            term: TermArgs,
        }
        let cli = Cli::try_parse_from([
            "procedo",
            "--start",
            "2026-12-31",
            "--days",
            "-5",
            "--backward",
            "--free",
            "--saturday-shift",
            "--comune",
            "Roma",
            "--at",
            "12:00",
            "--suspension",
            "2026-12-01..2026-12-02",
            "--json",
        ])
        .expect("parses");
        assert_eq!(cli.term.days, Some(-5));
        assert!(cli.term.backward && cli.term.free && cli.term.saturday_shift && cli.term.json);
        assert_eq!(cli.term.suspensions.len(), 1);
    }
}
