//! Made-up Italian data for every shipped message kind: `procedo mail test`, the benchmark and
//! the tests render these. The places and people are invented.
//!
//! Each context follows the contract the engine will honour (see
//! `workflows/templates/README.md`): the instance variables by name, plus `procedura`,
//! `istanza`, `destinatario`, `ambito` and, for reminders, `scadenza`.

use chrono::{DateTime, Utc};
use chrono_tz::Europe::Rome;
use serde_json::{Value, json};

use super::{Meeting, agenda_description};

/// The sample seduta: Monday 28 December 2026, 12:00 in Rome.
pub const SEDUTA: &str = "2026-12-28T12:00:00+01:00";

/// The sample agenda.
pub const ORDINE_DEL_GIORNO: [&str; 3] = [
    "Approvazione del verbale della seduta precedente",
    "Piano di Zona 2027-2029: approvazione del documento di programmazione",
    "Varie ed eventuali",
];

const AMBITO: &str = "Ambito Territoriale di Borgo Fiorito";
const LUOGO: &str = "Sala consiliare del Comune di Borgo Fiorito, piazza della Repubblica 1";

/// Three invented mayors: (name, email).
pub fn mayors() -> Vec<(String, String)> {
    [
        ("Anna Rossi", "sindaco@comune.borgofiorito.example.it"),
        ("Marco Bianchi", "sindaco@comune.castelverde.example.it"),
        (
            "Giulia Esposito",
            "sindaco@comune.sanlorenzoallago.example.it",
        ),
    ]
    .into_iter()
    .map(|(name, email)| (name.to_owned(), email.to_owned()))
    .collect()
}

/// The sample context of `kind` addressed to Anna Rossi; `None` for an unknown kind.
pub fn context(kind: &str) -> Option<Value> {
    context_for(kind, "Anna Rossi", "sindaco@comune.borgofiorito.example.it")
}

/// The sample context of `kind` addressed to `name <email>`; `None` for an unknown kind.
pub fn context_for(kind: &str, name: &str, email: &str) -> Option<Value> {
    let mut context = match kind {
        "convocazione" => json!({
            "procedura": {"id": "convocazione_assemblea", "titolo": "Convocazione dell'Assemblea dei Sindaci"},
            "istanza": {"id": 42, "stato": "convocata"},
            "organo": "Assemblea dei Sindaci",
            "data_seduta": SEDUTA,
            "seconda_convocazione": "2026-12-29T12:00:00+01:00",
            "luogo": LUOGO,
            "ordine_del_giorno": ORDINE_DEL_GIORNO,
            "link": "https://procedo.example.it/sedute/42",
        }),
        "convocazione_annullata" => json!({
            "procedura": {"id": "convocazione_assemblea", "titolo": "Convocazione dell'Assemblea dei Sindaci"},
            "istanza": {"id": 42, "stato": "annullata"},
            "organo": "Assemblea dei Sindaci",
            "data_seduta": SEDUTA,
            "luogo": LUOGO,
        }),
        "mancata_consegna_pec" => json!({
            "procedura": {"id": "avviso_coprogettazione", "titolo": "Avviso pubblico di co-progettazione"},
            "istanza": {"id": 7, "stato": "istruttoria"},
            "pec": {
                "ente": "Cooperativa Sociale Aurora",
                "messaggio": "soccorso_istruttorio",
                "indirizzo": "aurora@pec.example.it",
                "stato": "non consegnata",
                "ricevuta": "avviso di mancata consegna n. opec.1@pec.example.it del 01/12/2026 09:00:00 (Gestore)",
                "motivo": "5.2.2 - casella del destinatario piena",
            },
        }),
        "termine_scaduto" => json!({
            "procedura": {"id": "accreditamento", "titolo": "Accreditamento degli enti del Terzo Settore"},
            "istanza": {"id": 21, "stato": "istruttoria"},
            "termine_superato": {
                "termine": "Termine di conclusione (30 giorni, art. 2 L. 241/1990)",
                "scadenza": "11/01/2027",
                "silenzio": "silenzio-inadempimento (art. 2 L. 241/1990): impugnabile finché dura l'inadempimento e comunque entro un anno dalla scadenza",
                "potere_sostitutivo": true,
                "giorni_previsti": 30,
                "giorni_impiegati": 31,
                "traccia": [
                    "dies a quo: giovedì 10/12/2026 (ricezione dell'istanza), escluso",
                    "termine: 30 giorni → sabato 09/01/2027",
                    "sabato: non festivo, nessuno spostamento",
                ],
            },
            "link": "https://procedo.example.it/istanze/21",
        }),
        "promemoria_scadenza" => json!({
            "procedura": {"id": "avviso_coprogettazione", "titolo": "Co-progettazione servizi per l'inclusione degli adulti fragili"},
            "istanza": {"id": 17, "stato": "raccolta proposte"},
            "scadenza": {
                "data": "venerdì 15 gennaio 2027, ore 12:00",
                "traccia": [
                    "pubblicazione dell'avviso: mercoledì 16/12/2026",
                    "termine: 30 giorni, escluso il giorno iniziale",
                    "venerdì 15/01/2027: giorno lavorativo, nessuno spostamento",
                    "scadenza alle ore 12:00 come previsto dall'avviso",
                ],
            },
            "link": "https://procedo.example.it/istanze/17",
        }),
        "avviso_pubblicato" => json!({
            "procedura": {"id": "avviso_coprogettazione", "titolo": "Co-progettazione servizi per l'inclusione degli adulti fragili"},
            "istanza": {"id": 17, "stato": "pubblicato"},
            "scadenza_domande": "2027-01-15T12:00:00+01:00",
            "link_avviso": "https://procedo.example.it/avvisi/17",
        }),
        "esito_istruttoria" => json!({
            "procedura": {"id": "accreditamento", "titolo": "Accreditamento del servizio di assistenza domiciliare"},
            "istanza": {"id": 23, "stato": "istruttoria conclusa"},
            "esito": "ammessa",
            "punteggio": "78/100",
            "motivazione": "requisiti strutturali e organizzativi posseduti; esperienza documentata nel territorio.",
        }),
        "soccorso_istruttorio" => json!({
            "procedura": {"id": "accreditamento", "titolo": "Accreditamento del servizio di assistenza domiciliare"},
            "istanza": {"id": 23, "stato": "soccorso istruttorio"},
            "documenti_mancanti": [
                "copia dello statuto vigente",
                "dichiarazione sulla regolarità contributiva (DURC)",
            ],
            "termine_integrazione": "2027-01-11T12:00:00+01:00",
            "link": "https://procedo.example.it/istanze/23",
        }),
        "verbale_disponibile" => json!({
            "procedura": {"id": "convocazione_assemblea", "titolo": "Convocazione dell'Assemblea dei Sindaci"},
            "istanza": {"id": 42, "stato": "verbalizzata"},
            "organo": "Assemblea dei Sindaci",
            "data_seduta": SEDUTA,
            "link_verbale": "https://procedo.example.it/sedute/42/verbale",
        }),
        "riepilogo_giornaliero" => json!({
            "procedura": {"id": "riepilogo", "titolo": "Riepilogo giornaliero"},
            "istanza": {"id": 0, "stato": "inviato"},
            "data_riepilogo": "2026-12-16",
            "voci": [
                {
                    "procedura": "Co-progettazione servizi per l'inclusione degli adulti fragili",
                    "descrizione": "pubblicato l'avviso",
                    "scadenza": "2027-01-15T12:00:00+01:00",
                    "link": "https://procedo.example.it/avvisi/17",
                },
                {
                    "procedura": "Accreditamento del servizio di assistenza domiciliare",
                    "descrizione": "richiesto il soccorso istruttorio a Cooperativa Sociale Il Germoglio",
                },
            ],
        }),
        "avviso_annullato" => json!({
            "procedura": {"id": "avviso_coprogettazione", "titolo": AVVISO},
            "istanza": {"id": 17, "stato": "annullato"},
            "partecipante": partecipante(),
            "motivazione_annullamento": "errore materiale nei criteri di valutazione dell'avviso.",
        }),
        "decadenza" => json!({
            "procedura": {"id": "avviso_coprogettazione", "titolo": AVVISO},
            "istanza": {"id": 17, "stato": "valutazione"},
            "partecipante": partecipante(),
            "motivo_decadenza": "l'iscrizione al RUNTS dichiarata non risulta dal registro.",
        }),
        "esito_adesione" => json!({
            "procedura": {"id": "coprogrammazione", "titolo": "Co-programmazione dei servizi per la domiciliarità"},
            "istanza": {"id": 31, "stato": "verifica delle adesioni"},
            "partecipante": partecipante(),
            "esito": "non_ammessa",
            "motivazione": "l'ente non opera nell'ambito della domiciliarità.",
        }),
        "esito_graduatoria" => json!({
            "procedura": {"id": "avviso_coprogettazione", "titolo": AVVISO},
            "istanza": {"id": 17, "stato": "graduatoria pubblicata"},
            "partecipante": partecipante(),
            "data_graduatoria": "2027-02-10",
            "punteggio": 86.5,
            "motivazione_valutazione": "proposta coerente con i bisogni rilevati; rete territoriale solida.",
            "link": "https://procedo.example.it/avvisi/17",
        }),
        "esito_valutazione" => json!({
            "procedura": {"id": "avviso_coprogettazione", "titolo": AVVISO},
            "istanza": {"id": 17, "stato": "graduatoria pubblicata"},
            "partecipante": partecipante(),
            "oggetto": "Servizi per l'autonomia delle persone con disabilità",
            "termine_ricorso_graduatoria": "2027-04-12",
            "link": "https://procedo.example.it/avvisi/17",
            "valutazione": valutazione(),
        }),
        "rettifica_criteri" => json!({
            "procedura": {"id": "avviso_coprogettazione", "titolo": AVVISO},
            "istanza": {"id": 17, "stato": "pubblicato"},
            "oggetto": "Servizi per l'autonomia delle persone con disabilità",
            "scadenza_domande": "2027-01-29T12:00:00+01:00",
            "link_avviso": "https://procedo.example.it/avvisi/17",
            "rettifica": {"atto": "determina n. 51 del 14/01/2027", "motivo": "errore materiale nei massimi dei sottocriteri"},
            "valutazione": valutazione(),
        }),
        "verbale_commissione" => json!({
            "procedura": {"id": "avviso_coprogettazione", "titolo": AVVISO},
            "istanza": {"id": 17, "stato": "valutazione"},
            "oggetto": "Servizi per l'autonomia delle persone con disabilità",
            "seduta": {
                "numero": 1,
                "data": "04/02/2027",
                "presenti": ["Maria Rossi (Presidente)", "Paolo Verdi (Componente)"],
                "nota": "La seduta si chiude alle 13:00.",
                "punteggi": [{"ente": "Cooperativa Sociale Il Germoglio", "criterio": "Esperienza nei servizi del territorio", "punti": "24", "da": "Maria Rossi", "motivazione": "dieci anni di servizi domiciliari nell'ambito"}],
            },
        }),
        "deliberazione" => json!({
            "procedura": {"id": "convocazione_assemblea", "titolo": "Convocazione dell'Assemblea dei Sindaci"},
            "istanza": {"id": 42, "stato": "in_seduta"},
            "organo": "Assemblea dei Sindaci",
            "deliberazione": {
                "punto": 2,
                "oggetto": "Piano di Zona 2025-2027: aggiornamento annuale",
                "esito": "Approvato",
                "data": "21/01/2027",
                "voti": {"favorevoli": 9, "contrari": 0, "astenuti": 1, "favorevoli_quote": "88.4", "contrari_quote": "0", "astenuti_quote": "11.6"},
                "pubblicazione": {"dal": "21/01/2027", "al": "04/02/2027"},
            },
        }),
        "avviso_pubblico" => json!({
            "procedura": {"id": "avviso_coprogettazione", "titolo": AVVISO},
            "istanza": {"id": 17, "stato": "pubblicato"},
            "oggetto": "Servizi per l'autonomia delle persone con disabilità",
            "atto_criteri": "determina n. 12 del 26/11/2026",
            "scadenza_domande": "2026-12-28T12:00:00+01:00",
            "link_avviso": "https://ambito.example.it/avvisi/17",
        }),
        "graduatoria" => json!({
            "procedura": {"id": "avviso_coprogettazione", "titolo": AVVISO},
            "istanza": {"id": 17, "stato": "graduatoria pubblicata"},
            "oggetto": "Servizi per l'autonomia delle persone con disabilità",
            "valutazione": valutazione(),
        }),
        "verbale_seduta" => json!({ "verbale": {
            "organo": "Assemblea dei Sindaci",
            "giorno": "20/01/2027",
            "luogo": "Sala consiliare del Comune di Borgo Fiorito",
            "ora_convocazione": "17.30",
            "ora_apertura": "17.40",
            "ora_chiusura": "19.05",
            "convocazione": "prot. n. 0000041 del 08/01/2027",
            "presidente": "Anna Rossi",
            "verbalizzante": "Paolo Galli",
            "presenti": [{"seggio": "Comune di Borgo Fiorito", "nome": "Anna Rossi", "carica": "Sindaco"}],
            "assenti": [{"seggio": "Comune di San Lorenzo al Lago"}],
            "senza_voto": [{"nome": "Paolo Galli", "carica": null, "nota": "responsabile dell'Ufficio di Piano"}],
            "punti": [{"titolo": "Approvazione del Piano di Zona", "discussione": null, "esito": "approvato", "decisione": null,
                       "votazione": {"favorevoli": 2, "contrari": 0, "astenuti": 1}}],
            "approvato_in_seduta": true,
            "firme": [{"ruolo": "Il Presidente", "nome": "Anna Rossi"}, {"ruolo": "Il Segretario verbalizzante", "nome": "Paolo Galli"}],
        }}),
        "consegna_fallita" => json!({
            "istanza": {"id": 42},
            "consegna": {
                "id": 118,
                "messaggio": "convocazione",
                "destinatario": "Anna Rossi",
                "indirizzo": "sindaco@comune.borgofiorito.example.it",
                "tentativi": 12,
                "errore": "il server di posta 127.0.0.1:25 non è raggiungibile (abbandonata dopo 12 tentativi)",
            },
        }),
        "soccorso_senza_risposta" => json!({
            "procedura": {"id": "avviso_coprogettazione", "titolo": AVVISO},
            "istanza": {"id": 17, "stato": "istruttoria"},
            "partecipante": partecipante(),
            "termine_integrazione": "2027-01-11T12:00:00+01:00",
        }),
        "integrazioni_ricevute" => json!({
            "procedura": {"id": "avviso_coprogettazione", "titolo": AVVISO},
            "istanza": {"id": 17, "stato": "istruttoria"},
            "partecipante": partecipante(),
        }),
        "preavviso_rigetto" => json!({
            "procedura": {"id": "accreditamento", "titolo": "Accreditamento del servizio di assistenza domiciliare"},
            "istanza": {"id": 23, "stato": "preavviso di rigetto"},
            "motivi_ostativi": "il personale indicato non possiede la qualifica di OSS richiesta.",
            "termine_osservazioni": "2027-01-21",
            "link": "https://procedo.example.it/istanze/23",
        }),
        "proroga_termini" | "riapertura_termini" => json!({
            "procedura": {"id": "avviso_coprogettazione", "titolo": AVVISO},
            "istanza": {"id": 17, "stato": "pubblicato"},
            "scadenza_domande": "2027-01-29T12:00:00+01:00",
            "atto_proroga": "determina n. 45 del 12/01/2027",
            "motivo_proroga": "richieste di chiarimento sulla modulistica",
            "link_avviso": "https://procedo.example.it/avvisi/17",
        }),
        "rigetto_istanza" => json!({
            "procedura": {"id": "accreditamento", "titolo": "Accreditamento del servizio di assistenza domiciliare"},
            "istanza": {"id": 23, "stato": "respinto"},
            "motivazione": "requisiti di personale non posseduti.",
            "data_osservazioni": "2027-01-15",
            "motivi_mancato_accoglimento": "l'attestato prodotto non è una qualifica OSS riconosciuta.",
        }),
        _ => return None,
    };
    if let Some(object) = context.as_object_mut() {
        object.insert(
            "destinatario".to_owned(),
            json!({"nome": name, "email": email, "risposta": null}),
        );
        object.insert("ambito".to_owned(), json!({"nome": AMBITO}));
    }
    Some(context)
}

/// The sample notice.
const AVVISO: &str = "Co-progettazione servizi per l'inclusione degli adulti fragili";

/// The sample participant: a group still to be formed, through its capofila.
fn partecipante() -> Value {
    json!({
        "id": "domanda-7",
        "ente": "Consorzio Solidale Valle Verde",
        "organizzazione": "ets-valle-verde",
        "componenti": ["Cooperativa Sociale Arcobaleno", "Associazione Auser Borgo Fiorito"],
        "raggruppamento": true,
        "stato": "Ammessa",
        "codice_stato": "ammessa",
        "termini": {},
    })
}

/// The sample seduta as a meeting for `attendees`, issued at `dtstamp`; UID `seduta-42@…`.
pub fn meeting(attendees: Vec<(String, String)>, dtstamp: DateTime<Utc>) -> Meeting {
    // A constant, not input: the unit test below proves it parses.
    let start = DateTime::parse_from_rfc3339(SEDUTA)
        .expect("SEDUTA is valid RFC 3339")
        .with_timezone(&Rome);
    Meeting {
        uid: "seduta-42@procedo.local".to_owned(),
        sequence: 0,
        dtstamp,
        summary: format!("Assemblea dei Sindaci – {AMBITO}"),
        description: agenda_description(&ORDINE_DEL_GIORNO),
        location: LUOGO.to_owned(),
        start,
        end: start + chrono::Duration::hours(2),
        organizer: (
            "Ufficio di Piano – Borgo Fiorito".to_owned(),
            "ufficiodipiano@borgofiorito.example.it".to_owned(),
        ),
        attendees,
    }
}

/// An evaluation as the engine gives it to messages, approved.
fn valutazione() -> Value {
    json!({
        "criteri": [
            {"id": "qualita", "titolo": "Qualità della proposta progettuale", "massimo": "40", "punti": "33.5", "motivazioni": [],
             "sottocriteri": [
                {"id": "obiettivi", "titolo": "Coerenza con gli obiettivi del Piano di Zona", "massimo": "20", "punti": "17", "motivazioni": ["obiettivi misurabili e coerenti"], "sottocriteri": []},
                {"id": "metodologia", "titolo": "Metodologia e organizzazione delle attività", "massimo": "20", "punti": "16.5", "motivazioni": ["cronoprogramma chiaro"], "sottocriteri": []}
             ]},
            {"id": "esperienza", "titolo": "Esperienza nei servizi del territorio", "massimo": "30", "punti": "24", "motivazioni": ["dieci anni di servizi domiciliari nell'ambito"], "sottocriteri": []},
            {"id": "risorse", "titolo": "Risorse aggiuntive e co-finanziamento", "massimo": "30", "punti": "18", "motivazioni": ["co-finanziamento del 10%"], "sottocriteri": []}
        ],
        "totale_massimo": "100",
        "soglia": "60",
        "atto_criteri": "determina n. 12 del 20/11/2026",
        "totale": "75.5",
        "idonea": true,
        "posizione": 1,
        "determina": {"numero": "88", "data": "10/02/2027"},
        "graduatoria": [
            {"posizione": 1, "ente": "Cooperativa Sociale Il Germoglio", "totale": "75.5", "idonea": true},
            {"posizione": null, "ente": "Associazione Borgo Aperto", "totale": "52", "idonea": false}
        ],
        "commissione": [
            {"nome": "Maria Rossi", "ruolo": "Presidente", "stato": "in carica"},
            {"nome": "Paolo Verdi", "ruolo": "Componente", "stato": "in carica"}
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_meeting_starts_at_noon_in_rome() {
        let meeting = meeting(mayors(), Utc::now());
        assert_eq!(meeting.start.to_rfc3339(), "2026-12-28T12:00:00+01:00");
        assert_eq!(meeting.attendees.len(), 3);
        assert!(meeting.description.contains("\n3. Varie ed eventuali"));
    }

    #[test]
    fn unknown_kinds_have_no_sample() {
        assert!(context("telegramma").is_none());
    }
}
