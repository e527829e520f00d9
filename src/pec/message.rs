//! A PEC message as it sits in a mailbox: a receipt (`X-Ricevuta`) or a transport envelope
//! (`X-Trasporto`), each a `multipart/signed` whose first part holds the provider's text,
//! `daticert.xml` and, in an envelope, the original message as `postacert.eml`.
//!
//! [`parse`] reads one; it checks that the header and `daticert.xml` say the same thing, and
//! keeps the signed bytes exactly as they were for [`PecMessage::verify`]. [`compose`] is the
//! provider side. Neither panics on any input (property tests).

use chrono::{DateTime, Utc};
use mail_parser::{MessageParser, MimeHeaders};

use super::Error;
use super::daticert::{DatiCert, Tipo};
use super::smime::{Signer, TrustList, Verified, verify};

/// A parsed PEC message.
#[derive(Debug, Clone)]
pub struct PecMessage {
    /// What it is (from `daticert.xml`, agreeing with the headers).
    pub tipo: Tipo,
    /// `X-Riferimento-Message-ID`: the Message-ID of the message a receipt is about.
    pub riferimento: Option<String>,
    /// Its own Message-ID.
    pub message_id: Option<String>,
    /// Its subject.
    pub subject: String,
    /// The certification data.
    pub daticert: DatiCert,
    /// The signed first part, canonical (CRLF line ends).
    pub signed_content: Vec<u8>,
    /// The detached signature (DER).
    pub signature: Vec<u8>,
    /// In an envelope, the original message (`postacert.eml`).
    pub original: Option<Vec<u8>>,
}

impl PecMessage {
    /// Verifies the provider's signature at the receipt's own date.
    pub fn verify(&self, trust: &TrustList) -> Result<Verified, Error> {
        verify(
            &self.signed_content,
            &self.signature,
            trust,
            self.daticert.data.with_timezone(&Utc),
        )
    }

    /// Whether it is a receipt (about a message procedo sent) rather than an envelope.
    pub fn is_receipt(&self) -> bool {
        !matches!(self.tipo, Tipo::PostaCertificata | Tipo::Errore)
    }
}

/// Parses a raw message. An ordinary email (no PEC header) is `Error::NotPec`.
pub fn parse(raw: &[u8]) -> Result<PecMessage, Error> {
    let bad = |reason: &str| Error::Message(reason.to_owned());
    let message = MessageParser::default()
        .parse(raw)
        .ok_or_else(|| bad("messaggio non leggibile"))?;
    let header = |name: &str| message.header_raw(name).map(|v| v.trim().to_owned());
    let declared = match (header("X-Ricevuta"), header("X-Trasporto")) {
        (Some(ricevuta), _) => Tipo::parse(&ricevuta)
            .ok_or_else(|| Error::Message(format!("X-Ricevuta «{ricevuta}» sconosciuto")))?,
        (None, Some(trasporto)) => Tipo::parse(&trasporto)
            .ok_or_else(|| Error::Message(format!("X-Trasporto «{trasporto}» sconosciuto")))?,
        (None, None) => return Err(Error::NotPec),
    };
    let root = message
        .parts
        .first()
        .ok_or_else(|| bad("messaggio senza corpo"))?;
    let boundary = root
        .content_type()
        .filter(|ct| {
            ct.ctype().eq_ignore_ascii_case("multipart")
                && ct
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("signed"))
        })
        .and_then(|ct| ct.attribute("boundary"))
        .ok_or_else(|| bad("il messaggio non è firmato (multipart/signed)"))?
        .to_owned();
    let body_start = usize::try_from(root.offset_body).unwrap_or(usize::MAX);
    let body = raw
        .get(body_start..)
        .ok_or_else(|| bad("corpo del messaggio non trovato"))?;
    let (content, signature_part) =
        split_signed(body, &boundary).ok_or_else(|| bad("parti firmate non trovate"))?;
    let signature = MessageParser::default()
        .parse(signature_part)
        .and_then(|part| part.parts.first().map(|p| p.contents().to_vec()))
        .filter(|bytes| !bytes.is_empty())
        .ok_or_else(|| bad("firma (smime.p7s) non trovata"))?;
    let signed_content = canonical(content);
    let inner = MessageParser::default()
        .parse(&signed_content)
        .ok_or_else(|| bad("contenuto firmato non leggibile"))?;
    let mut daticert_xml = None;
    let mut original = None;
    for part in inner.attachments() {
        let name = part
            .attachment_name()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if name == "daticert.xml" {
            daticert_xml = Some(String::from_utf8_lossy(part.contents()).into_owned());
        } else if name == "postacert.eml" || (part.is_message() && original.is_none()) {
            original = Some(part.contents().to_vec());
        }
    }
    let daticert = DatiCert::parse(
        daticert_xml
            .as_deref()
            .ok_or_else(|| bad("daticert.xml non trovato"))?,
    )?;
    if daticert.tipo != declared {
        return Err(Error::Message(format!(
            "l'intestazione dice «{}», daticert.xml «{}»",
            declared.as_str(),
            daticert.tipo.as_str()
        )));
    }
    Ok(PecMessage {
        tipo: daticert.tipo,
        riferimento: header("X-Riferimento-Message-ID").map(|id| normalize_id(&id)),
        message_id: message.message_id().map(|id| format!("<{id}>")),
        subject: message.subject().unwrap_or_default().to_owned(),
        daticert,
        signed_content,
        signature,
        original,
    })
}

/// `<id>` however it was written.
pub fn normalize_id(id: &str) -> String {
    let id = id.trim().trim_start_matches('<').trim_end_matches('>');
    format!("<{id}>")
}

/// (first part, second part) of a multipart body with `boundary` (RFC 2046 delimiters: the
/// line break before a delimiter belongs to it).
fn split_signed<'a>(body: &'a [u8], boundary: &str) -> Option<(&'a [u8], &'a [u8])> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let starts: Vec<usize> = (0..body.len())
        .filter(|&i| body[i..].starts_with(delimiter) && (i == 0 || body[i - 1] == b'\n'))
        .take(3)
        .collect();
    if starts.len() < 3 {
        return None;
    }
    let after_line = |at: usize| -> Option<usize> {
        body[at..]
            .iter()
            .position(|b| *b == b'\n')
            .map(|p| at + p + 1)
    };
    let before_break = |at: usize| -> usize {
        let mut end = at;
        if end > 0 && body[end - 1] == b'\n' {
            end -= 1;
            if end > 0 && body[end - 1] == b'\r' {
                end -= 1;
            }
        }
        end
    };
    let first = after_line(starts[0])?;
    let first_end = before_break(starts[1]);
    let second = after_line(starts[1])?;
    let second_end = before_break(starts[2]);
    Some((body.get(first..first_end)?, body.get(second..second_end)?))
}

/// Bare LF line ends made CRLF, as S/MIME signs them (a mailbox may have stored LF).
fn canonical(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + content.len() / 40);
    for (i, byte) in content.iter().enumerate() {
        if *byte == b'\n' && (i == 0 || content[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(*byte);
    }
    out
}

/// What a provider writes: a receipt or an envelope, signed.
#[derive(Debug)]
pub struct Composition<'a> {
    /// `From:` (the provider's address, "Per conto di: …" as the display name).
    pub from: &'a str,
    /// `To:`.
    pub to: &'a str,
    /// `Subject:` ("CONSEGNA: …", "POSTA CERTIFICATA: …").
    pub subject: &'a str,
    /// The new message's id.
    pub message_id: &'a str,
    /// The message a receipt is about (`X-Riferimento-Message-ID`).
    pub riferimento: Option<&'a str>,
    /// The provider's text, in Italian.
    pub text: &'a str,
    /// The certification data.
    pub daticert: &'a DatiCert,
    /// The original message (`postacert.eml`), in an envelope or a completa receipt.
    pub original: Option<&'a [u8]>,
}

/// The raw message for `c`, signed by `signer` at `at`.
pub fn compose(c: &Composition<'_>, signer: &Signer, at: DateTime<Utc>) -> Result<Vec<u8>, Error> {
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| {
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        let mut out = String::with_capacity(text.len() + text.len() / 76 * 2 + 2);
        for chunk in text.as_bytes().chunks(76) {
            out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            out.push_str("\r\n");
        }
        out
    };
    let seed = hex::encode(
        &ring::digest::digest(&ring::digest::SHA256, c.message_id.as_bytes()).as_ref()[..8],
    );
    let mixed = format!("mixed-{seed}");
    let signed = format!("signed-{seed}");
    let mut inner = format!(
        "Content-Type: multipart/mixed; boundary=\"{mixed}\"\r\n\r\n--{mixed}\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
        b64(c.text.as_bytes())
    );
    if let Some(original) = c.original {
        inner.push_str(&format!(
            "--{mixed}\r\nContent-Type: message/rfc822; name=\"postacert.eml\"\r\nContent-Disposition: inline; filename=\"postacert.eml\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
            b64(original)
        ));
    }
    inner.push_str(&format!(
        "--{mixed}\r\nContent-Type: application/xml; name=\"daticert.xml\"\r\nContent-Disposition: inline; filename=\"daticert.xml\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}--{mixed}--\r\n",
        b64(c.daticert.to_xml().as_bytes())
    ));
    let p7s = signer.sign(inner.as_bytes(), at)?;
    let kind_header = if matches!(c.daticert.tipo, Tipo::PostaCertificata | Tipo::Errore) {
        format!("X-Trasporto: {}\r\n", c.daticert.tipo.as_str())
    } else {
        format!(
            "X-Ricevuta: {}\r\nX-TipoRicevuta: {}\r\n",
            c.daticert.tipo.as_str(),
            c.daticert.ricevuta.as_deref().unwrap_or("completa")
        )
    };
    let riferimento = c
        .riferimento
        .map(|id| format!("X-Riferimento-Message-ID: {}\r\n", normalize_id(id)))
        .unwrap_or_default();
    let mut out = format!(
        "Date: {}\r\nFrom: {}\r\nTo: {}\r\nSubject: {}\r\nMessage-ID: {}\r\n{kind_header}{riferimento}X-VerificaSicurezza: {}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"{signed}\"\r\n\r\n--{signed}\r\n",
        at.to_rfc2822(),
        c.from,
        c.to,
        encode_word(c.subject),
        normalize_id(c.message_id),
        if c.daticert.tipo == Tipo::Errore {
            "errore"
        } else {
            "ok"
        },
    );
    out.push_str(&inner);
    out.push_str(&format!(
        "\r\n--{signed}\r\nContent-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\nContent-Disposition: attachment; filename=\"smime.p7s\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--{signed}--\r\n",
        b64(&p7s).trim_end()
    ));
    Ok(out.into_bytes())
}

/// An RFC 2047 encoded word when `text` is not plain ASCII.
fn encode_word(text: &str) -> String {
    use base64::Engine as _;
    if text.is_ascii() {
        text.to_owned()
    } else {
        format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::daticert::Destinatario;
    use super::super::smime::test_authority;
    use super::*;

    fn daticert(tipo: Tipo) -> DatiCert {
        DatiCert {
            tipo,
            errore: "nessuno".into(),
            mittente: "udp@pec.ambito.example.it".into(),
            destinatari: vec![Destinatario {
                address: "aurora@pec.example.it".into(),
                certificato: true,
            }],
            risposte: "udp@pec.ambito.example.it".into(),
            oggetto: "Richiesta di soccorso istruttorio – Avviso".into(),
            gestore: "Gestore di prova".into(),
            data: chrono::DateTime::parse_from_rfc3339("2026-12-01T00:04:31+01:00").expect("date"),
            identificativo: "opec.1@pec.example.it".into(),
            msgid: Some("<delivery-1@ambito.example.it>".into()),
            ricevuta: Some("completa".into()),
            consegna: Some("aurora@pec.example.it".into()),
            errore_esteso: None,
        }
    }

    fn receipt(tipo: Tipo) -> (Vec<u8>, TrustList) {
        let (ca, cert, key) = test_authority("Gestore di prova").expect("authority");
        let signer = Signer::new(&cert, &key).expect("signer");
        let d = daticert(tipo);
        let raw = compose(
            &Composition {
                from: "\"Per conto di: aurora@pec.example.it\" <posta-certificata@pec.example.it>",
                to: "udp@pec.ambito.example.it",
                subject: "CONSEGNA: Richiesta di soccorso istruttorio – Avviso",
                message_id: "<opec.1@pec.example.it>",
                riferimento: Some("<delivery-1@ambito.example.it>"),
                text: "Il giorno 01/12/2026 alle ore 00:04:31 (+0100) il messaggio è stato consegnato.",
                daticert: &d,
                original: Some(b"Subject: x\r\n\r\ncorpo\r\n"),
            },
            &signer,
            Utc::now(),
        )
        .expect("composed");
        (raw, TrustList::from_der(&[ca]).expect("trust"))
    }

    #[test]
    fn a_receipt_is_read_with_its_headers_and_verified() {
        let (raw, trust) = receipt(Tipo::AvvenutaConsegna);
        let m = parse(&raw).expect("parsed");
        assert_eq!(m.tipo, Tipo::AvvenutaConsegna);
        assert!(m.is_receipt());
        assert_eq!(
            m.riferimento.as_deref(),
            Some("<delivery-1@ambito.example.it>")
        );
        assert_eq!(m.message_id.as_deref(), Some("<opec.1@pec.example.it>"));
        assert!(
            m.subject.starts_with("CONSEGNA: Richiesta"),
            "{}",
            m.subject
        );
        assert_eq!(
            m.original.as_deref(),
            Some(&b"Subject: x\r\n\r\ncorpo\r\n"[..])
        );
        m.verify(&trust).expect("verified");
        // Stored with bare LF line ends by a mailbox: still verified.
        let lf: Vec<u8> = String::from_utf8(raw.clone())
            .expect("utf8")
            .replace("\r\n", "\n")
            .into_bytes();
        parse(&lf)
            .expect("parsed")
            .verify(&trust)
            .expect("verified with LF");
    }

    #[test]
    fn a_changed_receipt_fails_verification_and_a_mismatch_is_refused() {
        let (raw, trust) = receipt(Tipo::AvvenutaConsegna);
        let text = String::from_utf8(raw).expect("utf8");
        // Someone rewrites the consegna date inside daticert (base64 of the XML changes).
        let forged_xml = daticert(Tipo::AvvenutaConsegna)
            .to_xml()
            .replace("01/12/2026", "20/11/2026");
        use base64::Engine as _;
        let original_b64 = base64::engine::general_purpose::STANDARD
            .encode(daticert(Tipo::AvvenutaConsegna).to_xml());
        let forged_b64 = base64::engine::general_purpose::STANDARD.encode(forged_xml);
        let first_line = &original_b64[..76];
        assert!(text.contains(first_line));
        let mut forged = text.clone();
        for (a, b) in original_b64
            .as_bytes()
            .chunks(76)
            .zip(forged_b64.as_bytes().chunks(76))
        {
            forged = forged.replace(
                std::str::from_utf8(a).expect("ascii"),
                std::str::from_utf8(b).expect("ascii"),
            );
        }
        let m = parse(forged.as_bytes()).expect("still parses");
        assert_eq!(m.daticert.data.format("%d/%m/%Y").to_string(), "20/11/2026");
        let error = m.verify(&trust).expect_err("refused");
        assert!(error.to_string().contains("alterato"), "{error}");

        let mismatch = text.replace("X-Ricevuta: avvenuta-consegna", "X-Ricevuta: accettazione");
        let error = parse(mismatch.as_bytes()).expect_err("refused");
        assert!(error.to_string().contains("daticert"), "{error}");
        let plain = b"From: a@b\r\nSubject: ciao\r\n\r\ntesto\r\n";
        assert!(matches!(parse(plain), Err(Error::NotPec)));
    }

    #[test]
    fn an_envelope_carries_the_original() {
        let (raw, trust) = receipt(Tipo::PostaCertificata);
        let m = parse(&raw).expect("parsed");
        assert!(!m.is_receipt());
        assert!(m.original.is_some());
        m.verify(&trust).expect("verified");
    }

    /// A receipt laid out as real providers write it: a preamble, quoted parameters, a
    /// boundary starting with dashes, headers in their own case, a text/html alternative,
    /// `postacert.eml` not encoded, `application/x-pkcs7-signature`.
    #[test]
    fn a_receipt_in_a_real_providers_layout_is_read_and_verified() {
        let (ca, cert, key) = test_authority("ARUBA PEC S.p.A.").expect("authority");
        let signer = Signer::new(&cert, &key).expect("signer");
        let d = daticert(Tipo::AvvenutaConsegna);
        use base64::Engine as _;
        let xml_b64 = base64::engine::general_purpose::STANDARD.encode(d.to_xml());
        let inner = format!(
            "Content-Type: multipart/mixed;\r\n\tboundary=\"----=_Part_B7C\"\r\n\r\n------=_Part_B7C\r\nContent-Type: multipart/alternative; boundary=\"----=_Part_ALT\"\r\n\r\n------=_Part_ALT\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nRicevuta di avvenuta consegna\r\nIl giorno 01/12/2026 alle ore 00:04:31 (+0100) il messaggio =E8 stato consegnato.\r\n------=_Part_ALT\r\nContent-Type: text/html; charset=iso-8859-1\r\n\r\n<html><body>Ricevuta di avvenuta consegna</body></html>\r\n------=_Part_ALT--\r\n\r\n------=_Part_B7C\r\nContent-Type: application/xml; name=\"daticert.xml\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: inline; filename=\"daticert.xml\"\r\n\r\n{xml_b64}\r\n------=_Part_B7C\r\nContent-Type: message/rfc822; name=\"postacert.eml\"\r\nContent-Disposition: inline; filename=\"postacert.eml\"\r\n\r\nFrom: udp@pec.ambito.example.it\r\nSubject: Richiesta di soccorso istruttorio\r\n\r\ncorpo\r\n------=_Part_B7C--\r\n"
        );
        let p7s = signer.sign(inner.as_bytes(), Utc::now()).expect("signed");
        let p7s_b64 = base64::engine::general_purpose::STANDARD.encode(p7s);
        let raw = format!(
            "Return-Path: <posta-certificata@pec.aruba.it>\r\nX-Riferimento-Message-ID: <delivery-1@ambito.example.it>\r\nX-Ricevuta: avvenuta-consegna\r\nX-Verificasicurezza: ok\r\nX-TipoRicevuta: completa\r\nDate: Tue, 1 Dec 2026 00:04:31 +0100\r\nSubject: CONSEGNA: Richiesta di soccorso istruttorio\r\nFrom: posta-certificata@pec.aruba.it\r\nTo: udp@pec.ambito.example.it\r\nMessage-ID: <opec21.20261130230431.1234.567.1.68@pec.aruba.it>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/signed; protocol=\"application/x-pkcs7-signature\";\r\n\tmicalg=\"sha-256\"; boundary=\"----2A3F\"\r\n\r\nThis is an S/MIME signed message\r\n\r\n------2A3F\r\n{inner}\r\n------2A3F\r\nContent-Type: application/x-pkcs7-signature; name=\"smime.p7s\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"smime.p7s\"\r\n\r\n{p7s_b64}\r\n\r\n------2A3F--\r\n"
        );
        let m = parse(raw.as_bytes()).expect("parsed");
        assert_eq!(m.tipo, Tipo::AvvenutaConsegna);
        assert_eq!(
            m.riferimento.as_deref(),
            Some("<delivery-1@ambito.example.it>")
        );
        assert_eq!(
            m.daticert.consegna.as_deref(),
            Some("aurora@pec.example.it")
        );
        assert!(
            m.original
                .as_deref()
                .is_some_and(|o| o.starts_with(b"From: udp@"))
        );
        let trust = TrustList::from_der(&[ca]).expect("trust");
        m.verify(&trust).expect("verified");
        // Stored with LF line ends, and read again.
        let lf = raw.replace("\r\n", "\n");
        parse(lf.as_bytes())
            .expect("parsed")
            .verify(&trust)
            .expect("verified with LF");
        // The transport header of an envelope instead of a receipt header: refused as a mismatch.
        let envelope = raw.replace(
            "X-Ricevuta: avvenuta-consegna",
            "X-Trasporto: posta-certificata",
        );
        assert!(parse(envelope.as_bytes()).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn parsing_mutated_messages_never_panics(at in 0usize..6000, cut in 0usize..200, junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)) {
            let (raw, trust) = receipt(Tipo::AvvenutaConsegna);
            let mut raw = raw;
            let at = at.min(raw.len());
            let end = (at + cut).min(raw.len());
            raw.splice(at..end, junk);
            if let Ok(m) = parse(&raw) {
                let _ = m.verify(&trust);
            }
        }

        #[test]
        fn parsing_garbage_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = parse(&bytes);
        }
    }
}
