//! The command line as a user runs it: the real binary, its exit codes and what it prints.

use std::path::Path;
use std::process::{Command, Output};

fn procedo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_procedo"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("PROCEDO_DATABASE_URL")
        // Registered documents go to a temporary folder, never into the checkout.
        .env(
            "PROCEDO_FILES_DIR",
            std::env::temp_dir().join("procedo-cli-test-files"),
        )
        .env(
            "PROCEDO_CONSERVAZIONE_DIR",
            std::env::temp_dir().join("procedo-cli-test-conservazione"),
        )
        .output()
        .expect("the procedo binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_shipped_workflows_validate() {
    let out = procedo(&["validate", "workflows/"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("procedure valide"));
}

#[test]
fn three_planted_mistakes_give_three_located_errors_and_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/accreditamento.yaml"),
    )
    .expect("shipped file");
    let broken = source
        .replacen("    to: respinto\n", "    to: respintto\n", 1) // unknown state
        .replacen(
            "term: { from: data_domanda, days: 30 }",
            "term: { from: data_domanda, days: 30, months: 1 }",
            1,
        ) // malformed term
        .replacen(
            "roles: [rup]\n    inputs: { data_accreditamento: required, esito: optional }",
            "roles: [dirigente]\n    inputs: { data_accreditamento: required, esito: optional }",
            1,
        ); // unknown role
    assert_ne!(broken, source);
    let file = dir.path().join("accreditamento.yaml");
    std::fs::write(&file, broken).expect("write");
    // The broken file beside the shipped templates, so template checks run too.
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/templates");
    std::fs::create_dir(dir.path().join("templates")).expect("mkdir");
    for entry in std::fs::read_dir(templates).expect("templates") {
        let entry = entry.expect("entry");
        std::fs::copy(
            entry.path(),
            dir.path().join("templates").join(entry.file_name()),
        )
        .expect("copy");
    }
    let out = procedo(&["validate", file.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("accreditamento.yaml:"))
        .collect();
    assert_eq!(errors.len(), 3, "{stderr}");
    for e in &errors {
        let mut parts = e
            .rsplit_once(".yaml:")
            .expect("file prefix")
            .1
            .splitn(3, ':');
        let line: u32 = parts
            .next()
            .and_then(|l| l.parse().ok())
            .expect("a line number");
        let column: u32 = parts
            .next()
            .and_then(|c| c.parse().ok())
            .expect("a column number");
        assert!(line > 0 && column > 0, "{e}");
    }
    assert!(stderr.contains("termine non valido"), "{stderr}");
    assert!(stderr.contains("ruolo sconosciuto 'dirigente'"), "{stderr}");
    assert!(stderr.contains("stato sconosciuto 'respintto'"), "{stderr}");
}

#[test]
fn graph_prints_mermaid_and_dot() {
    let out = procedo(&["graph", "workflows/convocazione_assemblea.yaml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mermaid = text(&out.stdout);
    assert!(mermaid.starts_with("stateDiagram-v2"));
    assert!(
        mermaid.contains("convocata --> convocata: sposta"),
        "{mermaid}"
    );
    let out = procedo(&[
        "graph",
        "workflows/convocazione_assemblea.yaml",
        "--format",
        "dot",
    ]);
    assert!(text(&out.stdout).starts_with("digraph"));
}

#[test]
fn term_prints_json_with_the_trace() {
    let out = procedo(&[
        "term",
        "--start",
        "2026-11-27",
        "--days",
        "30",
        "--at",
        "12:00",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["expiry"], "2026-12-28");
    assert_eq!(v["deadline"], "2026-12-28T12:00:00+01:00");
    assert!(v["trace"].as_array().is_some_and(|t| t.len() >= 3));
}

#[test]
fn a_bad_term_is_a_clear_error_with_exit_2() {
    let out = procedo(&["term", "--start", "2026-02-30", "--days", "10"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!text(&out.stderr).is_empty());
}

#[test]
fn instances_are_driven_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("cli.db").display());
    let start = procedo(&[
        "instance",
        "start",
        "avviso_coprogettazione",
        "--as",
        "rup",
        "--var",
        "oggetto=Prova",
        "--database",
        &url,
    ]);
    assert!(start.status.success(), "{}", text(&start.stderr));
    let id = text(&start.stdout).trim().to_string();
    let refused = procedo(&[
        "instance",
        "fire",
        &id,
        "pubblica",
        "--as",
        "ets",
        "--input",
        "data_pubblicazione=2099-01-04",
        "--database",
        &url,
    ]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("il ruolo 'ets' non può eseguire 'pubblica'"),
        "{}",
        text(&refused.stderr)
    );
    let fired = procedo(&[
        "instance",
        "fire",
        &id,
        "pubblica",
        "--as",
        "rup",
        "--input",
        "data_pubblicazione=2099-01-04",
        "--input",
        "atto_criteri=determina n. 1 del 03/01/2099",
        "--database",
        &url,
    ]);
    assert!(fired.status.success(), "{}", text(&fired.stderr));
    let show = procedo(&["instance", "show", &id, "--database", &url]);
    let shown = text(&show.stdout);
    assert!(shown.contains("pubblicato"), "{shown}");
    assert!(shown.contains("dies a quo 04/01/2099 escluso"), "{shown}");
    let list = procedo(&["instance", "list", "--database", &url]);
    assert!(text(&list.stdout).contains(&id));
}

#[test]
fn the_commented_example_in_the_workflows_readme_validates() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/README.md"))
            .expect("README");
    let start = readme.find("```yaml\n").expect("a yaml example") + "```yaml\n".len();
    let end = start + readme[start..].find("```").expect("end of the example");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("avviso_breve.yaml"), &readme[start..end]).expect("write");
    std::fs::create_dir(dir.path().join("calendari")).expect("mkdir");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/calendari/ambito.yaml"),
        dir.path().join("calendari/ambito.yaml"),
    )
    .expect("copy");
    let out = procedo(&["validate", dir.path().to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn the_demo_prints_a_plain_italian_timeline_and_logs_nothing_unasked() {
    let dir = tempfile::tempdir().expect("cartella temporanea");
    let workflows = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");
    let output = Command::new(env!("CARGO_BIN_EXE_procedo"))
        .arg("demo")
        .arg("--workflows")
        .arg(&workflows)
        .current_dir(dir.path())
        .env_remove("PROCEDO_DATABASE_URL")
        .env_remove("PROCEDO_LOG")
        .env_remove("PROCEDO_SMTP_URL")
        .output()
        .expect("the demo runs");
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    // Neither stream carries terminal escapes when it is not a terminal.
    assert!(!output.stdout.contains(&0x1b), "escape byte in stdout");
    assert!(
        !output.stderr.contains(&0x1b),
        "escape byte in stderr: {stderr}"
    );
    // No raw log line in the middle of the timeline, nor beside it.
    for line in stdout.lines().chain(stderr.lines()) {
        assert!(
            !(line.contains(" WARN ") || line.contains(" INFO ") || line.contains(" ERROR ")),
            "log line: {line}"
        );
    }
    // Who got which message is said in the timeline, in Italian: each ETS gets its own esito,
    // the soccorso goes to one ETS only, the proroga to every ETS; applications are registered
    // as incoming.
    for line in [
        // By PEC to each ETS's domicilio digitale: the terms run from each consegna.
        "📨 esito_istruttoria a Cooperativa Sociale Il Ponte: 1 PEC inviata",
        "📨 esito_istruttoria a Associazione Orizzonti APS: 1 PEC inviata",
        "📨 esito_istruttoria a Consorzio Solidale Valle Verde: 1 PEC inviata",
        "📨 soccorso_istruttorio a Associazione Orizzonti APS: 1 PEC inviata",
        "📨 PEC soccorso_istruttorio a Associazione Orizzonti APS <orizzonti@pec.orizzonti.example.it>: consegnata (ricevuta del gestore del 12/01/2027 00:10:00)",
        "dies a quo: consegna del 12/01/2027 attestata dalla ricevuta di avvenuta consegna n. ",
        "⚠️  PEC esito_istruttoria a Consorzio Solidale Valle Verde <valleverde@pec.valleverde.example.it>: mancata consegna",
        "📧 mancata_consegna_pec a Paolo Galli: 1 email scritta",
        "📧 proroga_termini a Luca Ferri, Sara Conti, Elena Marchetti: 3 email scritte",
        "[avviso · Consorzio Solidale Valle Verde] decidi_ammissione: ricevuta → esclusa (rup)",
        "rapporto della pratica [avviso]: ./rapporto-avviso.html",
        "Referto di pubblicazione – Avviso pubblico di co-progettazione",
        "Referto di pubblicazione – Graduatoria approvata",
        "Graduatoria approvata — Servizi per l'inclusione delle persone con disabilità (dal 26/01/2027 al 30/03/2027)",
        "Deliberazione – Assemblea dei Sindaci del 21/01/2027 — punto 2. Piano di Zona 2025-2027: aggiornamento annuale (dal 21/01/2027 al 04/02/2027)",
        "calendario di Anna Rossi (2 eventi, come lo legge il suo client): ./calendario-sindaco-borgo-fiorito.ics (e come pagina: ./calendario-sindaco-borgo-fiorito.html)",
        "Risposta al quesito n. 1 (FAQ) — Servizi per l'inclusione delle persone con disabilità (dal 17/12/2026 al 11/01/2027)",
        "atti consegnati all'albo dell'ente capofila: 9, in ",
        "deliberazione.pdf sha256 ",
        "ammetti rifiutato: Ci sono domande ancora da decidere",
        "Consorzio Solidale Valle Verde — Esclusa, PEC dell'esito mancata consegna: termine per il ricorso non iniziato",
    ] {
        assert!(stdout.contains(line), "missing «{line}»:\n{stdout}");
    }
    assert!(
        stdout.contains("domanda di Cooperativa Sociale Il Ponte dalla piattaforma — protocollo in entrata n. 0000002/2026"),
        "{stdout}"
    );
    assert!(stdout.contains("registro integro"), "{stdout}");
    // The commissione's graduatoria, computed from the two members' scores.
    assert!(
        stdout.contains("§ graduatoria approvata con determina n. 15 del 26/01/2027"),
        "{stdout}"
    );
    assert!(
        stdout.contains("1. Cooperativa Sociale Il Ponte — 86.5 punti"),
        "{stdout}"
    );
    assert!(
        stdout.contains("📧 esito_valutazione a Luca Ferri: 1 email scritta"),
        "{stdout}"
    );
    // The Assemblea: answers (one delegation), votes by quota with their trace, an item
    // postponed, deliberazioni numbered.
    for line in [
        "§ Comune di Castelverde: delega Luisa Conti",
        "§ punto 2. Piano di Zona 2025-2027: aggiornamento annuale: approvato",
        "favorevoli 52.4 su 83.5 presenti e votanti (secondo le quote): maggioranza raggiunta",
        "§ punto 3. Esito dell'avviso di co-progettazione: rinviato",
        "protocollo in interno n. deliberazioni 0000002/2027",
        "deliberazione all'albo da sola dal 21/01/2027 al 04/02/2027",
        "[assemblea] verbale in PDF/A-1b da firmare:",
        "verbale-assemblea-2027-01-21.pdf",
        "[assemblea] verbale caricato come firmato",
        "§ verbale approvato nella seduta del 11/02/2027 (punto 1)",
        // The conclusion term passes with the procedure open: one alert each, then the
        // late decision.
        "[accreditamento] termine_scaduto: istruttoria → istruttoria (scheduler)",
        "📧 termine_scaduto a Paolo Galli: 1 email scritta",
        "📧 termine_scaduto a Carla Monti: 1 email scritta",
        "[accreditamento] accredita: istruttoria → accreditato (rup)",
        "accesso agli atti: ./storico-avviso (.json e .html), impronta SHA-256 ",
    ] {
        assert!(stdout.contains(line), "missing «{line}»:\n{stdout}");
    }
    // The exports for accesso agli atti verify, and the third party's leaves the others out.
    for (name, omissions) in [
        ("storico-avviso", false),
        ("storico-avviso-ets-orizzonti", true),
    ] {
        let text = std::fs::read_to_string(dir.path().join(format!("{name}.json")))
            .expect("the export beside the database");
        let export: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert!(procedo::export::verify(&export), "{name}");
        assert_eq!(text.contains(procedo::export::OMITTED), omissions, "{name}");
        assert!(dir.path().join(format!("{name}.html")).exists(), "{name}");
    }
    // The verbale's PDF/A copy to sign is written beside the demo's database.
    let pdf = std::fs::read(dir.path().join("verbale-assemblea-2027-01-21.pdf"))
        .expect("the verbale's PDF/A beside the database");
    assert!(pdf.starts_with(b"%PDF-1.4"));
    assert!(String::from_utf8_lossy(&pdf).contains("<pdfaid:part>1</pdfaid:part>"));
    // And from the command line, on the demo's database.
    let avviso = stdout
        .lines()
        .find(|l| l.contains("[avviso] concluso"))
        .and_then(|l| l.split("procedo instance show ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .expect("the avviso's id in the summary")
        .to_string();
    let shown = Command::new(env!("CARGO_BIN_EXE_procedo"))
        .args(["instance", "evaluation", &avviso, "--database"])
        .arg(format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("procedo-demo.db").display()
        ))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("procedo instance evaluation runs");
    let shown_text = text(&shown.stdout);
    assert!(
        shown.status.success(),
        "{shown_text}\n{}",
        text(&shown.stderr)
    );
    for line in [
        "graduatoria approvata con determina n. 15 del 26/01/2027",
        "Anna Bianchi",
        "obiettivi: 16.5 da commissione-moretti",
        "Seduta n. 1 del 21/01/2027",
    ] {
        assert!(shown_text.contains(line), "missing «{line}»:\n{shown_text}");
    }
}

#[test]
fn the_protocol_register_is_kept_and_checked_from_the_command_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("cli.db").display());
    let letter = dir.path().join("lettera.pdf");
    std::fs::write(&letter, b"%PDF-1.7 lettera del Comune").expect("file");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_procedo"))
            .args(args)
            .args(["--database", &url])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("PROCEDO_FILES_DIR", dir.path().join("files"))
            .env_remove("PROCEDO_PROTOCOLLO_URL")
            .output()
            .expect("the procedo binary runs")
    };
    let registered = run(&[
        "protocollo",
        "registra",
        "--direzione",
        "entrata",
        "--oggetto",
        "Richiesta di informazioni",
        "--corrispondente",
        "Comune di Lago",
        "--riferimento-mittente",
        "1234/2026",
        "--data-mittente",
        "2026-11-20",
        "--file",
        letter.to_str().expect("path"),
        "--operatore",
        "maria.rossi",
    ]);
    assert!(registered.status.success(), "{}", text(&registered.stderr));
    let line = text(&registered.stdout);
    assert!(line.contains("0000001/"), "{line}");
    let year = line
        .split_whitespace()
        .next()
        .and_then(|r| r.split('/').nth(1))
        .expect("year")
        .to_owned();
    let reference = format!("0000001/{year}");

    let corrected = run(&[
        "protocollo",
        "correggi",
        &reference,
        "--campo",
        "oggetto",
        "--valore",
        "Richiesta di informazioni sul Piano di Zona",
        "--motivo",
        "oggetto incompleto",
        "--atto",
        "prov. 1",
        "--operatore",
        "maria.rossi",
    ]);
    assert!(corrected.status.success(), "{}", text(&corrected.stderr));
    let shown = run(&["protocollo", "show", &reference]);
    let shown = text(&shown.stdout);
    assert!(
        shown.contains("Richiesta di informazioni sul Piano di Zona"),
        "{shown}"
    );
    assert!(
        shown.contains(
            "oggetto: «Richiesta di informazioni» → «Richiesta di informazioni sul Piano di Zona»"
        ),
        "{shown}"
    );
    assert!(
        shown.contains("protocollo del mittente: 1234/2026 del 20/11/2026"),
        "{shown}"
    );
    assert!(shown.contains("lettera.pdf"), "{shown}");

    let verified = run(&["protocollo", "verify"]);
    assert!(verified.status.success(), "{}", text(&verified.stdout));
    assert!(text(&verified.stdout).contains("registro integro"));

    // A file changed on disk: verify names it and exits 1.
    let files = dir.path().join("files");
    let stored = std::fs::read_dir(&files)
        .expect("files")
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).expect("dir").flatten())
        .next()
        .expect("a stored file");
    std::fs::write(stored.path(), b"altro").expect("tampered");
    let tampered = run(&["protocollo", "verify"]);
    assert_eq!(tampered.status.code(), Some(1));
    assert!(
        text(&tampered.stdout).contains("modificato sul disco"),
        "{}",
        text(&tampered.stdout)
    );
}

#[test]
fn the_commissione_is_driven_from_the_command_line_with_clear_refusals() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("cli.db").display());
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--database", &url]);
        procedo(&all)
    };
    let ok = |args: &[&str]| {
        let out = run(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    ok(&[
        "org", "add", "--id", "ambito", "--name", "Ambito 7", "--kind", "ambito",
    ]);
    ok(&[
        "person",
        "add",
        "--id",
        "anna",
        "--name",
        "Anna Bianchi",
        "--email",
        "anna@ambito.example.it",
        "--org",
        "ambito",
        "--role",
        "commissione",
    ]);
    ok(&[
        "person",
        "add",
        "--id",
        "paolo",
        "--name",
        "Paolo Neri",
        "--email",
        "paolo@ambito.example.it",
        "--org",
        "ambito",
        "--role",
        "rup",
    ]);
    let id = ok(&[
        "instance",
        "start",
        "avviso_coprogettazione",
        "--var",
        "oggetto=Servizi",
        "--as",
        "rup",
    ])
    .trim()
    .to_string();
    ok(&[
        "instance",
        "fire",
        &id,
        "pubblica",
        "--as",
        "rup",
        "--input",
        "data_pubblicazione=2099-01-04",
        "--input",
        "atto_criteri=determina n. 1 del 03/01/2099",
    ]);

    // Before the deadline: no commissione; a person without the role is named and refused.
    let early = run(&[
        "commissione",
        "nomina",
        &id,
        "--membro",
        "anna=presidente",
        "--atto",
        "determina n. 2",
    ]);
    assert!(!early.status.success());
    assert!(
        text(&early.stderr).contains("dopo la scadenza del termine per le domande"),
        "{}",
        text(&early.stderr)
    );
    let not_member = run(&[
        "commissione",
        "nomina",
        &id,
        "--membro",
        "paolo=presidente",
        "--atto",
        "determina n. 2",
    ]);
    assert!(
        text(&not_member.stderr).contains("Paolo Neri non ha il ruolo commissione"),
        "{}",
        text(&not_member.stderr)
    );
    let malformed = run(&[
        "commissione",
        "punteggi",
        &id,
        "--domanda",
        "x",
        "--come",
        "anna",
        "--punteggio",
        "obiettivi=17",
    ]);
    assert!(
        text(&malformed.stderr).contains("manca la motivazione"),
        "{}",
        text(&malformed.stderr)
    );

    // A rettifica whose sums are wrong names the problem; a right one is recorded.
    let wrong = dir.path().join("sbagliati.yaml");
    std::fs::write(
        &wrong,
        "- { id: qualita, title: Qualità, max: 50 }\n- { id: esperienza, title: Esperienza, max: 30, sub: [ { id: anni, title: Anni, max: 10 } ] }\n",
    )
    .expect("file");
    let refused = run(&[
        "commissione",
        "rettifica",
        &id,
        "--criteri",
        wrong.to_str().expect("path"),
        "--soglia",
        "60",
        "--atto",
        "determina n. 5",
        "--motivo",
        "errore materiale",
    ]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("i sottocriteri di 'esperienza' sommano 10"),
        "{}",
        text(&refused.stderr)
    );
    let right = dir.path().join("criteri.yaml");
    std::fs::write(
        &right,
        "- { id: qualita, title: Qualità, max: 50 }\n- { id: esperienza, title: Esperienza, max: 30 }\n- { id: risorse, title: Risorse, max: 20 }\n",
    )
    .expect("file");
    ok(&[
        "commissione",
        "rettifica",
        &id,
        "--criteri",
        right.to_str().expect("path"),
        "--soglia",
        "55",
        "--atto",
        "determina n. 5",
        "--motivo",
        "errore materiale",
    ]);
    let shown = ok(&["instance", "evaluation", &id]);
    assert!(shown.contains("soglia 55"), "{shown}");
    assert!(
        shown.contains("rettifica determina n. 5 — errore materiale"),
        "{shown}"
    );
    assert!(shown.contains("non ancora nominata"), "{shown}");
}

#[test]
fn a_body_file_is_read_as_people_read_it_and_a_broken_one_is_named() {
    let out = procedo(&["organo", "show", "workflows/organi/assemblea_sindaci.yaml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    for line in [
        "Comune di Borgo Fiorito                  quota 52.4 (presiede)",
        "numero legale in prima convocazione: più del 50% delle quote",
        "maggioranza: dei presenti e votanti secondo le quote",
    ] {
        assert!(shown.contains(line), "missing «{line}»:\n{shown}");
    }
    let out = procedo(&["organo", "show", "workflows/organi/tavolo_tecnico.yaml"]);
    assert!(
        text(&out.stdout)
            .contains("numero legale in seconda convocazione: non indicato dal regolamento"),
        "{}",
        text(&out.stdout)
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let broken = dir.path().join("organo.yaml");
    std::fs::write(
        &broken,
        "id: x\ntitle: X\nseats:\n  - { id: a, name: A }\n  - { id: a, name: B }\n",
    )
    .expect("file");
    let out = procedo(&["organo", "show", broken.to_str().expect("path")]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("seggio 'a' duplicato"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_bodies_are_listed_with_what_their_rules_say() {
    let out = procedo(&["organo", "list", "workflows/organi"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    for body in ["assemblea_sindaci", "tavolo_tecnico"] {
        assert!(listed.contains(body), "{listed}");
    }
    // A broken file is named, with why, and the command fails.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("rotto.yaml"), "id: x\nseats: [\n").expect("write");
    let out = procedo(&["organo", "list", dir.path().to_str().expect("utf-8 path")]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("rotto.yaml"),
        "{}",
        text(&out.stderr)
    );
}
