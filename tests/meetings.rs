//! Meetings of the Ambito's bodies, from real minutes: the Assemblea dei Sindaci of the
//! Distretto di Tradate of 30.01.2019 (the verbale that opens the seed document
//! `002_8dc9ed983e5765ab.txt`) goes into procedo's register, and procedo's verbale says what
//! that verbale says — the same comuni, names, roles, times, items and outcomes, one signature
//! — and nothing it does not: no vote counts, no quorum, no convocation reference, no
//! secretary.

use procedo::engine::meeting::{
    Body, Capacity, ItemRecord, MeetingRecord, Outcome, Presence, Rules, Seat, verbale_context,
};
use procedo::notify::Templates;
use serde_json::json;

/// The eight comuni of the district, one seat each; its rules are not in the document.
fn tradate() -> Body {
    let comuni = [
        "Castelseprio",
        "Castiglione Olona",
        "Gornate Olona",
        "Lonate Ceppino",
        "Tradate",
        "Vedano Olona",
        "Venegono Inferiore",
        "Venegono Superiore",
    ];
    Body {
        id: "assemblea-tradate".into(),
        title: "Assemblea dei Sindaci del Distretto di Tradate".into(),
        seats: comuni
            .iter()
            .map(|c| Seat {
                id: c.to_lowercase().replace(' ', "-"),
                name: format!("Comune di {c}"),
                weight: rust_decimal::Decimal::ONE,
            })
            .collect(),
        attendees: vec!["Responsabile dell'Ufficio di Piano".into()],
        rules: Rules::default(),
        presidente: None,
        delegates: Vec::new(),
    }
}

fn seat(comune: &str, name: &str, capacity: Capacity) -> Presence {
    Presence {
        seat: Some(comune.into()),
        name: name.into(),
        capacity,
        note: None,
        arrived: None,
        left: None,
    }
}

fn without_vote(name: &str, capacity: Capacity, note: &str) -> Presence {
    Presence {
        seat: None,
        name: name.into(),
        capacity,
        note: Some(note.into()),
        arrived: None,
        left: None,
    }
}

fn record() -> MeetingRecord {
    MeetingRecord {
        date: "30/01/2019".into(),
        place: Some("il Comune di Gornate Olona".into()),
        convened: Some("18.30".into()),
        opened: Some("18.45".into()),
        closed: Some("19.15".into()),
        convocation: None,
        presidente: Some("Barbara Bison".into()),
        verbalizzante: None,
        register: vec![
            // "=====" in the source: the role is not stated.
            seat("castelseprio", "Monica Baruzzo", Capacity::NonIndicata),
            seat("castiglione-olona", "Emanuele Poretti", Capacity::Sindaco),
            seat("gornate-olona", "Barbara Bison", Capacity::Sindaco),
            seat("lonate-ceppino", "Massimo Colombo", Capacity::NonIndicata),
            seat("tradate", "Claudio Ceriani", Capacity::ViceSindaco),
            seat("vedano-olona", "Cristiano Citterio", Capacity::Sindaco),
            seat("venegono-inferiore", "Maria Chiara Cremona", Capacity::Assessore),
            seat("venegono-superiore", "Ambrogio Crespi", Capacity::Sindaco),
            // Present, holding no extra seat.
            without_vote(
                "Luisa Limido",
                Capacity::Assessore,
                "assessore ai servizi sociali di Venegono Superiore",
            ),
            without_vote(
                "Franco Accordino",
                Capacity::Assessore,
                "assessore ai servizi sociali di Tradate",
            ),
            without_vote(
                "Mariella Luciani",
                Capacity::NonIndicata,
                "responsabile dell'Ufficio di Piano",
            ),
        ],
        items: vec![
            ItemRecord {
                title: "Approvazione piano povertà dell'ambito distrettuale".into(),
                discussion: None,
                outcome: Some(Outcome::Approvato),
                decision: Some(
                    "il piano territoriale di contrasto alla povertà, allegato al presente verbale"
                        .into(),
                ),
                tally: None,
            },
            ItemRecord {
                title: "Approvazione bilancio preventivo 2019".into(),
                discussion: None,
                outcome: Some(Outcome::Approvato),
                decision: Some("il bilancio di previsione per l'anno 2019".into()),
                tally: None,
            },
            ItemRecord {
                title: "Varie ed eventuali".into(),
                discussion: Some(
                    "Il vice sindaco di Tradate comunica l'intenzione di costruire una caserma dei vigili del fuoco; i sindaci accolgono favorevolmente la proposta."
                        .into(),
                ),
                outcome: Some(Outcome::NessunaDecisione),
                decision: None,
                tally: None,
            },
        ],
        approved_in_session: true,
    }
}

#[test]
fn the_tradate_verbale_says_what_the_minutes_say_and_nothing_more() {
    let templates = Templates::builtin().expect("shipped templates");
    let context = json!({
        "verbale": verbale_context(&tradate(), &record()),
        "ambito": { "nome": "Distretto di Tradate" },
        "protocollo": null,
        "destinatario": { "nome": "Destinatari in indirizzo", "email": "" },
    });
    let rendered = templates
        .render("verbale_seduta", &context)
        .expect("the verbale renders");
    // The HTML escapes apostrophes; read it as a person would.
    let html = rendered
        .html
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    for text in [&rendered.text, &html] {
        // The eight comuni with who sat for them, in the role the minutes give.
        for line in [
            "Comune di Castiglione Olona",
            "Emanuele Poretti",
            "Claudio Ceriani",
            "Vice Sindaco",
            "Maria Chiara Cremona",
            "Assessore",
            "Comune di Venegono Superiore",
            "Ambrogio Crespi",
        ] {
            assert!(text.contains(line), "missing «{line}»:\n{text}");
        }
        // The three times, the place, the three items with their outcomes.
        for line in ["18.30", "18.45", "19.15", "Gornate Olona"] {
            assert!(text.contains(line), "missing «{line}»:\n{text}");
        }
        assert!(text.contains("Approvazione piano povertà dell'ambito distrettuale"));
        assert!(text.contains("Varie ed eventuali"));
        assert_eq!(
            text.matches("approvato").count() - text.matches("Letto, approvato").count(),
            2,
            "{text}"
        );
        assert!(text.contains("nessuna decisione"), "{text}");
        // Who attends without a vote: the Responsabile dell'Ufficio di Piano and the two
        // extra assessori.
        assert!(text.contains("senza diritto di voto"), "{text}");
        assert!(text.contains("Mariella Luciani"), "{text}");
        assert!(text.contains("Franco Accordino"), "{text}");
        // One signature, the presidente's.
        assert!(text.contains("Letto, approvato e sottoscritto"), "{text}");
        assert!(text.contains("Il Presidente"), "{text}");
        // Nothing the source does not say.
        for absent in [
            "unanimità",
            "numero legale",
            "favorevoli",
            "prot.",
            "Convocazione:",
            "Segretario",
            "Assenti",
        ] {
            assert!(
                !text.contains(absent),
                "«{absent}» is not in the minutes:\n{text}"
            );
        }
    }
    // The text version: the two representatives whose role is not stated say so.
    assert_eq!(
        rendered.text.matches("(carica non indicata)").count(),
        2,
        "{}",
        rendered.text
    );
    // The Responsabile is in the register but holds no seat.
    let body = tradate();
    let register = record().register;
    let q = procedo::engine::meeting::quorum(&body, &register, chrono::Utc::now(), false);
    assert_eq!((q.heads, q.seats), (8, 8));
    assert_eq!(q.met, None, "the minutes give no quorum rule: not assumed");
}
