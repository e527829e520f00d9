//! `daticert.xml`: the certification data a PEC provider puts in every receipt and transport
//! envelope (DM 2 novembre 2005, allegato: `postacert` with `intestazione` and `dati`).
//!
//! Parsing never panics and reads no external entity: the DTD line real providers write is
//! allowed and ignored. The date is read with its own zone (`<data zona="+0100">`), never
//! assumed to be Rome's.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone};

use super::Error;

/// What a `postacert` is (`tipo`), as the technical rules name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tipo {
    /// Ricevuta di accettazione: the sender's provider took the message.
    Accettazione,
    /// Avviso di non accettazione: the sender's provider refused it.
    NonAccettazione,
    /// Ricevuta di presa in carico (between providers).
    PresaInCarico,
    /// Ricevuta di avvenuta consegna: in the recipient's mailbox.
    AvvenutaConsegna,
    /// A transport envelope (busta di trasporto) around a message.
    PostaCertificata,
    /// A busta di anomalia.
    Errore,
    /// Avviso di mancata consegna.
    ErroreConsegna,
    /// Avviso di mancata consegna per superamento dei tempi massimi (12 h).
    PreavvisoErroreConsegna,
    /// Avviso di rilevazione virus.
    RilevazioneVirus,
}

impl Tipo {
    /// Every type, as in the `tipo` attribute and the `X-Ricevuta` header.
    pub const ALL: [Tipo; 9] = [
        Tipo::Accettazione,
        Tipo::NonAccettazione,
        Tipo::PresaInCarico,
        Tipo::AvvenutaConsegna,
        Tipo::PostaCertificata,
        Tipo::Errore,
        Tipo::ErroreConsegna,
        Tipo::PreavvisoErroreConsegna,
        Tipo::RilevazioneVirus,
    ];

    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Tipo::Accettazione => "accettazione",
            Tipo::NonAccettazione => "non-accettazione",
            Tipo::PresaInCarico => "presa-in-carico",
            Tipo::AvvenutaConsegna => "avvenuta-consegna",
            Tipo::PostaCertificata => "posta-certificata",
            Tipo::Errore => "errore",
            Tipo::ErroreConsegna => "errore-consegna",
            Tipo::PreavvisoErroreConsegna => "preavviso-errore-consegna",
            Tipo::RilevazioneVirus => "rilevazione-virus",
        }
    }

    /// Parses an attribute or header value (case and surrounding space ignored).
    pub fn parse(text: &str) -> Option<Tipo> {
        let text = text.trim();
        Tipo::ALL
            .into_iter()
            .find(|tipo| tipo.as_str().eq_ignore_ascii_case(text))
    }

    /// How the Ufficio di Piano reads it, in Italian.
    pub fn description(self) -> &'static str {
        match self {
            Tipo::Accettazione => "ricevuta di accettazione",
            Tipo::NonAccettazione => "avviso di non accettazione",
            Tipo::PresaInCarico => "ricevuta di presa in carico",
            Tipo::AvvenutaConsegna => "ricevuta di avvenuta consegna",
            Tipo::PostaCertificata => "busta di trasporto",
            Tipo::Errore => "busta di anomalia",
            Tipo::ErroreConsegna => "avviso di mancata consegna",
            Tipo::PreavvisoErroreConsegna => {
                "avviso di mancata consegna per superamento dei tempi massimi"
            }
            Tipo::RilevazioneVirus => "avviso di rilevazione virus",
        }
    }
}

/// One recipient in the `intestazione`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destinatario {
    /// The address.
    pub address: String,
    /// `certificato` (a PEC mailbox) or `esterno` (ordinary email).
    pub certificato: bool,
}

/// The parsed `daticert.xml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatiCert {
    /// `postacert@tipo`.
    pub tipo: Tipo,
    /// `postacert@errore`: `nessuno`, `no-dest`, `no-dominio`, `virus`, `altro`.
    pub errore: String,
    /// The original sender.
    pub mittente: String,
    /// The original recipients.
    pub destinatari: Vec<Destinatario>,
    /// The reply-to address.
    pub risposte: String,
    /// The original subject.
    pub oggetto: String,
    /// The provider that wrote it (`gestore-emittente`).
    pub gestore: String,
    /// When, with the zone the provider wrote.
    pub data: DateTime<FixedOffset>,
    /// The provider's identifier of the message (`identificativo`).
    pub identificativo: String,
    /// The Message-ID of the original message, when given (`msgid`).
    pub msgid: Option<String>,
    /// `ricevuta@tipo`: `completa`, `breve` or `sintetica`.
    pub ricevuta: Option<String>,
    /// The recipient a consegna or an error is about (`consegna`).
    pub consegna: Option<String>,
    /// The provider's explanation of an error (`errore-esteso`).
    pub errore_esteso: Option<String>,
}

impl DatiCert {
    /// Parses the XML text. Every missing required field is an error naming it.
    pub fn parse(xml: &str) -> Result<DatiCert, Error> {
        let options = roxmltree::ParsingOptions {
            allow_dtd: true,
            nodes_limit: 10_000,
        };
        let doc = roxmltree::Document::parse_with_options(xml, options)
            .map_err(|error| Error::Daticert(format!("XML non leggibile: {error}")))?;
        let root = doc.root_element();
        if root.tag_name().name() != "postacert" {
            return Err(Error::Daticert(format!(
                "l'elemento radice è «{}», non «postacert»",
                root.tag_name().name()
            )));
        }
        let tipo_text = root
            .attribute("tipo")
            .ok_or_else(|| missing("postacert@tipo"))?;
        let tipo = Tipo::parse(tipo_text)
            .ok_or_else(|| Error::Daticert(format!("tipo «{tipo_text}» sconosciuto")))?;
        let errore = root.attribute("errore").unwrap_or("nessuno").to_owned();
        let intestazione = child(root, "intestazione").ok_or_else(|| missing("intestazione"))?;
        let dati = child(root, "dati").ok_or_else(|| missing("dati"))?;
        let destinatari = intestazione
            .children()
            .filter(|node| node.is_element() && node.tag_name().name() == "destinatari")
            .map(|node| Destinatario {
                address: node.text().unwrap_or_default().trim().to_owned(),
                certificato: node.attribute("tipo") != Some("esterno"),
            })
            .collect();
        let data_node = child(dati, "data").ok_or_else(|| missing("dati/data"))?;
        let zona = data_node.attribute("zona").unwrap_or("+0000");
        let giorno = text(child(data_node, "giorno")).ok_or_else(|| missing("data/giorno"))?;
        let ora = text(child(data_node, "ora")).ok_or_else(|| missing("data/ora"))?;
        let data = parse_date(&giorno, &ora, zona)?;
        Ok(DatiCert {
            tipo,
            errore,
            mittente: text(child(intestazione, "mittente")).unwrap_or_default(),
            destinatari,
            risposte: text(child(intestazione, "risposte")).unwrap_or_default(),
            oggetto: text(child(intestazione, "oggetto")).unwrap_or_default(),
            gestore: text(child(dati, "gestore-emittente"))
                .ok_or_else(|| missing("dati/gestore-emittente"))?,
            data,
            identificativo: text(child(dati, "identificativo"))
                .filter(|id| !id.is_empty())
                .ok_or_else(|| missing("dati/identificativo"))?,
            msgid: text(child(dati, "msgid")).filter(|id| !id.is_empty()),
            ricevuta: child(dati, "ricevuta")
                .and_then(|node| node.attribute("tipo"))
                .map(str::to_owned),
            consegna: text(child(dati, "consegna")).filter(|c| !c.is_empty()),
            errore_esteso: text(child(dati, "errore-esteso")).filter(|e| !e.is_empty()),
        })
    }

    /// The XML text, as a provider writes it (the provider of the tests).
    pub fn to_xml(&self) -> String {
        let mut xml = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<!DOCTYPE postacert SYSTEM \"daticert.dtd\">\r\n",
        );
        xml.push_str(&format!(
            "<postacert tipo=\"{}\" errore=\"{}\">\r\n  <intestazione>\r\n    <mittente>{}</mittente>\r\n",
            self.tipo.as_str(),
            escape(&self.errore),
            escape(&self.mittente)
        ));
        for d in &self.destinatari {
            xml.push_str(&format!(
                "    <destinatari tipo=\"{}\">{}</destinatari>\r\n",
                if d.certificato {
                    "certificato"
                } else {
                    "esterno"
                },
                escape(&d.address)
            ));
        }
        xml.push_str(&format!(
            "    <risposte>{}</risposte>\r\n    <oggetto>{}</oggetto>\r\n  </intestazione>\r\n  <dati>\r\n    <gestore-emittente>{}</gestore-emittente>\r\n",
            escape(&self.risposte),
            escape(&self.oggetto),
            escape(&self.gestore)
        ));
        xml.push_str(&format!(
            "    <data zona=\"{}\">\r\n      <giorno>{}</giorno>\r\n      <ora>{}</ora>\r\n    </data>\r\n    <identificativo>{}</identificativo>\r\n",
            self.data.format("%z"),
            self.data.format("%d/%m/%Y"),
            self.data.format("%H:%M:%S"),
            escape(&self.identificativo)
        ));
        if let Some(msgid) = &self.msgid {
            xml.push_str(&format!("    <msgid>{}</msgid>\r\n", escape(msgid)));
        }
        if let Some(ricevuta) = &self.ricevuta {
            xml.push_str(&format!(
                "    <ricevuta tipo=\"{}\" />\r\n",
                escape(ricevuta)
            ));
        }
        if let Some(consegna) = &self.consegna {
            xml.push_str(&format!(
                "    <consegna>{}</consegna>\r\n",
                escape(consegna)
            ));
        }
        if let Some(errore) = &self.errore_esteso {
            xml.push_str(&format!(
                "    <errore-esteso>{}</errore-esteso>\r\n",
                escape(errore)
            ));
        }
        xml.push_str("  </dati>\r\n</postacert>\r\n");
        xml
    }

    /// "n. <identificativo> del 28/11/2026 17:30:12 (+0100), <gestore>": how a trace cites it.
    pub fn citation(&self) -> String {
        format!(
            "{} n. {} del {} ({})",
            self.tipo.description(),
            self.identificativo,
            self.data.format("%d/%m/%Y %H:%M:%S"),
            self.gestore
        )
    }
}

fn child<'a, 'input>(
    parent: roxmltree::Node<'a, 'input>,
    name: &str,
) -> Option<roxmltree::Node<'a, 'input>> {
    parent
        .children()
        .find(|node| node.is_element() && node.tag_name().name() == name)
}

fn text(node: Option<roxmltree::Node<'_, '_>>) -> Option<String> {
    node.map(|node| node.text().unwrap_or_default().trim().to_owned())
}

fn missing(field: &str) -> Error {
    Error::Daticert(format!("manca «{field}»"))
}

/// `giorno` dd/mm/yyyy, `ora` hh:mm:ss, `zona` ±hhmm.
fn parse_date(giorno: &str, ora: &str, zona: &str) -> Result<DateTime<FixedOffset>, Error> {
    let day = NaiveDate::parse_from_str(giorno, "%d/%m/%Y")
        .map_err(|_| Error::Daticert(format!("giorno «{giorno}» non è gg/mm/aaaa")))?;
    let time = NaiveTime::parse_from_str(ora, "%H:%M:%S")
        .map_err(|_| Error::Daticert(format!("ora «{ora}» non è hh:mm:ss")))?;
    let zone =
        parse_zone(zona).ok_or_else(|| Error::Daticert(format!("zona «{zona}» non è ±hhmm")))?;
    zone.from_local_datetime(&day.and_time(time))
        .single()
        .ok_or_else(|| Error::Daticert(format!("data {giorno} {ora} {zona} impossibile")))
}

fn parse_zone(zona: &str) -> Option<FixedOffset> {
    let zona = zona.trim();
    let (sign, digits) = match zona.as_bytes().first()? {
        b'+' => (1, &zona[1..]),
        b'-' => (-1, &zona[1..]),
        _ => return None,
    };
    let digits = digits.replace(':', "");
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i32 = digits[..2].parse().ok()?;
    let minutes: i32 = digits[2..].parse().ok()?;
    if hours > 14 || minutes > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The structure of a real ricevuta di avvenuta consegna (fields as in the samples of
    /// the technical rules and of the reference parsers), with its DTD line.
    const CONSEGNA: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE postacert SYSTEM "daticert.dtd">
<postacert tipo="avvenuta-consegna" errore="nessuno">
  <intestazione>
    <mittente>ufficiodipiano@pec.ambito.example.it</mittente>
    <destinatari tipo="certificato">coop.aurora@pec.example.it</destinatari>
    <risposte>ufficiodipiano@pec.ambito.example.it</risposte>
    <oggetto>Richiesta di soccorso istruttorio</oggetto>
  </intestazione>
  <dati>
    <gestore-emittente>PEC Gestore di prova S.p.A.</gestore-emittente>
    <data zona="+0100">
      <giorno>01/12/2026</giorno>
      <ora>00:04:31</ora>
    </data>
    <identificativo>opec21.20261130230431.1234.567.1.68@pec.example.it</identificativo>
    <msgid>&lt;delivery-7-p1@ambito.example.it&gt;</msgid>
    <ricevuta tipo="completa" />
    <consegna>coop.aurora@pec.example.it</consegna>
  </dati>
</postacert>"#;

    #[test]
    fn a_consegna_is_read_with_its_own_zone() {
        let d = DatiCert::parse(CONSEGNA).expect("parsed");
        assert_eq!(d.tipo, Tipo::AvvenutaConsegna);
        assert_eq!(d.errore, "nessuno");
        assert_eq!(d.destinatari.len(), 1);
        assert!(d.destinatari[0].certificato);
        assert_eq!(
            d.msgid.as_deref(),
            Some("<delivery-7-p1@ambito.example.it>")
        );
        assert_eq!(d.consegna.as_deref(), Some("coop.aurora@pec.example.it"));
        assert_eq!(d.ricevuta.as_deref(), Some("completa"));
        // 00:04:31 at +0100 is 23:04:31 UTC of the day before.
        assert_eq!(d.data.to_rfc3339(), "2026-12-01T00:04:31+01:00");
        assert_eq!(
            d.data.with_timezone(&chrono::Utc).to_rfc3339(),
            "2026-11-30T23:04:31+00:00"
        );
    }

    #[test]
    fn what_is_written_is_read_back() {
        let d = DatiCert::parse(CONSEGNA).expect("parsed");
        let again = DatiCert::parse(&d.to_xml()).expect("parsed again");
        assert_eq!(d, again);
        let mut error = d.clone();
        error.tipo = Tipo::ErroreConsegna;
        error.errore = "altro".into();
        error.errore_esteso = Some("5.2.2 - casella piena".into());
        error.msgid = Some("<a&b@x>".into());
        assert_eq!(DatiCert::parse(&error.to_xml()).expect("parsed"), error);
    }

    #[test]
    fn missing_fields_and_bad_dates_are_named() {
        let no_id = CONSEGNA.replace(
            "<identificativo>opec21.20261130230431.1234.567.1.68@pec.example.it</identificativo>",
            "",
        );
        let error = DatiCert::parse(&no_id).expect_err("refused");
        assert!(error.to_string().contains("identificativo"), "{error}");
        let bad_zone = CONSEGNA.replace("+0100", "Europe/Rome");
        assert!(
            DatiCert::parse(&bad_zone)
                .expect_err("refused")
                .to_string()
                .contains("zona")
        );
        let bad_day = CONSEGNA.replace("01/12/2026", "31/02/2026");
        assert!(
            DatiCert::parse(&bad_day)
                .expect_err("refused")
                .to_string()
                .contains("giorno")
        );
        let other = DatiCert::parse("<segnatura/>").expect_err("refused");
        assert!(other.to_string().contains("postacert"), "{other}");
        let tipo = CONSEGNA.replace("avvenuta-consegna", "consegnata-forse");
        assert!(
            DatiCert::parse(&tipo)
                .expect_err("refused")
                .to_string()
                .contains("tipo")
        );
    }

    #[test]
    fn an_external_entity_is_never_read() {
        let xxe = CONSEGNA
            .replace(
                "<!DOCTYPE postacert SYSTEM \"daticert.dtd\">",
                "<!DOCTYPE postacert [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>",
            )
            .replace(
                "<oggetto>Richiesta di soccorso istruttorio</oggetto>",
                "<oggetto>&x;</oggetto>",
            );
        // roxmltree refuses external entities: an error, never the file's content.
        match DatiCert::parse(&xxe) {
            Ok(d) => assert!(!d.oggetto.contains("root:")),
            Err(error) => assert!(error.to_string().contains("XML"), "{error}"),
        }
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(text in ".{0,400}") {
            let _ = DatiCert::parse(&text);
        }

        #[test]
        fn parsing_a_mutated_receipt_never_panics(at in 0usize..900, cut in 0usize..40, junk in "[<>&\"/a-z0-9 +:-]{0,12}") {
            let mut text = CONSEGNA.to_owned();
            let at = at.min(text.len());
            let at = (0..=at).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
            let end = (at + cut).min(text.len());
            let end = (end..=text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
            text.replace_range(at..end, &junk);
            let _ = DatiCert::parse(&text);
        }
    }
}
