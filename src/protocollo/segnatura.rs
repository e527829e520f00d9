//! The segnatura di protocollo of an outgoing document (AgID, Linee guida sul documento
//! informatico, Allegato 6, schema `segnatura_protocollo.xsd` 3.0.0): `Intestazione` (the
//! registration's identifier, subject, classification, fascicolo) and `Descrizione` (sender,
//! recipients, the primary document and the attachments with their SHA-256 impronta in
//! base64), signed XAdES baseline B (ETSI EN 319 132-1: an enveloped XML signature whose
//! signed properties carry the signing time and the digest of the signing certificate) when a
//! signing certificate is configured.
//!
//! The XML is written already in exclusive canonical form (C14N without comments): no
//! whitespace between elements, attributes in canonical order, empty elements as start and
//! end tags, the namespace of `ds:SignedInfo` and `xades:SignedProperties` declared on them.
//! What is digested and signed is therefore exactly the text written, and any independent
//! verifier (e.g. `xmlsec1`) canonicalises it to the same bytes.
//!
//! Pure but for the signature, which the `Signer` computes with the configured key.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, SecondsFormat, Utc};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use sha2::{Digest, Sha256};

use crate::store::{Correspondent, CorrespondentKind, DocumentRole, ProtocolRegistration};
use crate::terms::ROME;

/// The segnatura's namespace.
pub const PROT: &str = "http://www.agid.gov.it/protocollo/";
const DS: &str = "http://www.w3.org/2000/09/xmldsig#";
const XADES: &str = "http://uri.etsi.org/01903/v1.3.2#";
const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const SHA256_URI: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const ECDSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256";
const SIGNED_PROPERTIES_TYPE: &str = "http://uri.etsi.org/01903#SignedProperties";

/// Who registers: the administration and its AOO as the IPA index knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aoo {
    /// The administration's IPA code.
    pub codice_amministrazione: String,
    /// The AOO's IPA code.
    pub codice_aoo: String,
    /// The register's code in the segnatura (`[A-Za-z0-9_.-]{1,16}`).
    pub codice_registro: String,
    /// The administration's name.
    pub denominazione: String,
    /// Its codice fiscale (11 digits).
    pub codice_fiscale: String,
    /// Its address (PEC) for replies.
    pub email: Option<String>,
    /// The classification used when a registration gives none (titolario code, name).
    pub default_classification: (String, String),
}

/// Why a segnatura could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The signing key or certificate is unusable.
    #[error("chiave o certificato di firma della segnatura non utilizzabili: {0}")]
    Key(String),
    /// Signing failed.
    #[error("firma della segnatura non riuscita")]
    Signing,
}

/// The key and certificate that sign segnature (RSA or ECDSA P-256).
pub struct Signer {
    key: SigningKey,
    certificate_der: Vec<u8>,
}

enum SigningKey {
    Rsa(RsaKeyPair),
    EcdsaP256(EcdsaKeyPair),
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field(
                "algorithm",
                &match self.key {
                    SigningKey::Rsa(_) => "rsa-sha256",
                    SigningKey::EcdsaP256(_) => "ecdsa-sha256",
                },
            )
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer from PEM text: the certificate (the first one is the signer's) and its
    /// private key (PKCS#8, or PKCS#1 for RSA).
    pub fn from_pem(certificate: &[u8], key: &[u8]) -> Result<Signer, Error> {
        let certificate_der = rustls_pemfile::certs(&mut &certificate[..])
            .next()
            .ok_or_else(|| Error::Key("nessun certificato nel file PEM".to_owned()))?
            .map_err(|e| Error::Key(e.to_string()))?
            .to_vec();
        let key_der = rustls_pemfile::private_key(&mut &key[..])
            .map_err(|e| Error::Key(e.to_string()))?
            .ok_or_else(|| Error::Key("nessuna chiave privata nel file PEM".to_owned()))?;
        let key = match &key_der {
            rustls_pki_types::PrivateKeyDer::Pkcs1(der) => SigningKey::Rsa(
                RsaKeyPair::from_der(der.secret_pkcs1_der())
                    .map_err(|e| Error::Key(format!("chiave RSA: {e}")))?,
            ),
            rustls_pki_types::PrivateKeyDer::Pkcs8(der) => {
                let bytes = der.secret_pkcs8_der();
                match RsaKeyPair::from_pkcs8(bytes) {
                    Ok(pair) => SigningKey::Rsa(pair),
                    Err(_) => SigningKey::EcdsaP256(
                        EcdsaKeyPair::from_pkcs8(
                            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                            bytes,
                            &SystemRandom::new(),
                        )
                        .map_err(|e| Error::Key(format!("né RSA né ECDSA P-256: {e}")))?,
                    ),
                }
            }
            _ => return Err(Error::Key("formato di chiave non supportato".to_owned())),
        };
        let signer = Signer {
            key,
            certificate_der,
        };
        // The pair must match: a signature the certificate cannot verify is worthless.
        signer.check_pair()?;
        Ok(signer)
    }

    fn algorithm(&self) -> &'static str {
        match self.key {
            SigningKey::Rsa(_) => RSA_SHA256,
            SigningKey::EcdsaP256(_) => ECDSA_SHA256,
        }
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let rng = SystemRandom::new();
        match &self.key {
            SigningKey::Rsa(pair) => {
                let mut out = vec![0u8; pair.public().modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut out)
                    .map_err(|_| Error::Signing)?;
                Ok(out)
            }
            SigningKey::EcdsaP256(pair) => pair
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| Error::Signing),
        }
    }

    /// The public key in the certificate is the key's.
    fn check_pair(&self) -> Result<(), Error> {
        let public = match &self.key {
            SigningKey::Rsa(pair) => pair.public().as_ref().to_vec(),
            SigningKey::EcdsaP256(pair) => pair.public_key().as_ref().to_vec(),
        };
        if contains(&self.certificate_der, &public) {
            Ok(())
        } else {
            Err(Error::Key(
                "la chiave privata non corrisponde al certificato".to_owned(),
            ))
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether a registration gets a segnatura: an outgoing document with a primary document and
/// at least one recipient.
pub fn applies(r: &ProtocolRegistration) -> bool {
    r.direction == crate::store::Direction::Uscita
        && !r.correspondents.is_empty()
        && r.documents.iter().any(|d| d.role == DocumentRole::Primario)
}

/// A tiny writer of canonical XML.
#[derive(Default)]
struct Xml {
    out: String,
}

impl Xml {
    /// `<name a="v" …>`, attributes given in canonical order.
    fn open(&mut self, name: &str, attributes: &[(&str, &str)]) {
        self.out.push('<');
        self.out.push_str(name);
        for (key, value) in attributes {
            self.out.push(' ');
            self.out.push_str(key);
            self.out.push_str("=\"");
            self.out.push_str(&escape_attribute(value));
            self.out.push('"');
        }
        self.out.push('>');
    }

    fn close(&mut self, name: &str) {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }

    fn leaf(&mut self, name: &str, attributes: &[(&str, &str)], text: &str) {
        self.open(name, attributes);
        self.out.push_str(&escape_text(text));
        self.close(name);
    }
}

/// Text as C14N writes it.
fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c if is_xml_char(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
    out
}

/// An attribute value as C14N writes it.
fn escape_attribute(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c if is_xml_char(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
    out
}

/// Characters XML 1.0 allows (control characters other than tab, newline and return are
/// replaced: they cannot appear in a document at all).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn sha256_b64(bytes: &[u8]) -> String {
    BASE64.encode(Sha256::digest(bytes))
}

/// Hex SHA-256 to base64, as the segnatura writes an impronta.
pub fn hex_to_base64(hex_digest: &str) -> String {
    hex::decode(hex_digest)
        .map(|bytes| BASE64.encode(bytes))
        .unwrap_or_default()
}

/// The digits of a codice fiscale that the segnatura's 11-digit patterns accept.
fn eleven_digits(code: Option<&str>) -> Option<&str> {
    code.map(str::trim)
        .filter(|c| c.len() == 11 && c.bytes().all(|b| b.is_ascii_digit()))
}

/// A personal codice fiscale (16 characters).
fn personal_code(code: Option<&str>) -> Option<String> {
    code.map(|c| c.trim().to_ascii_uppercase())
        .filter(|c| c.len() == 16 && c.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn contacts(x: &mut Xml, element: &str, email: Option<&str>) {
    if let Some(email) = email.filter(|e| !e.trim().is_empty()) {
        x.open(element, &[]);
        x.leaf(
            "prot:IndirizzoTelematico",
            &[("prot:tipo", "smtp")],
            email.trim(),
        );
        x.close(element);
    }
}

/// `Nome`/`Cognome` of a name written "Nome Cognome".
fn split_name(full: &str) -> (String, String) {
    let full = full.trim();
    match full.split_once(' ') {
        Some((first, rest)) if !rest.trim().is_empty() => {
            (first.to_owned(), rest.trim().to_owned())
        }
        _ => (full.to_owned(), full.to_owned()),
    }
}

fn persona_fisica(x: &mut Xml, element: &str, name: &str, c: &Correspondent) {
    let (nome, cognome) = split_name(name);
    x.open(element, &[]);
    x.leaf("prot:Nome", &[], &nome);
    x.leaf("prot:Cognome", &[], &cognome);
    if let Some(code) = personal_code(c.codice_fiscale.as_deref()) {
        x.leaf("prot:CodiceFiscale", &[], &code);
    }
    contacts(x, "prot:Contatti", c.email.as_deref());
    x.close(element);
}

/// One `SoggettoType`: a PA or a legal person when its code fits the schema, otherwise the
/// natural person who acts for it.
fn soggetto(x: &mut Xml, c: &Correspondent) {
    match (c.kind, eleven_digits(c.codice_fiscale.as_deref())) {
        (CorrespondentKind::Pa, Some(cf)) => {
            x.open("prot:PA", &[]);
            x.leaf("prot:DenominazionePA", &[], &c.name);
            x.leaf("prot:CFPA", &[], cf);
            contacts(x, "prot:ContattiAmministrazione", c.email.as_deref());
            x.close("prot:PA");
        }
        (CorrespondentKind::PersonaGiuridica, Some(piva)) => {
            x.open("prot:PersonaGiuridica", &[]);
            x.leaf("prot:Denominazione", &[], &c.name);
            x.leaf("prot:PIVA", &[], piva);
            contacts(x, "prot:ContattiPersonaGiuridica", c.email.as_deref());
            x.close("prot:PersonaGiuridica");
        }
        (CorrespondentKind::PersonaGiuridica, None)
            if personal_code(c.codice_fiscale.as_deref()).is_some() =>
        {
            x.open("prot:PersonaGiuridica", &[]);
            x.leaf("prot:Denominazione", &[], &c.name);
            x.leaf(
                "prot:CF",
                &[],
                &personal_code(c.codice_fiscale.as_deref()).unwrap_or_default(),
            );
            contacts(x, "prot:ContattiPersonaGiuridica", c.email.as_deref());
            x.close("prot:PersonaGiuridica");
        }
        _ => {
            let name = c.referente.as_deref().unwrap_or(&c.name);
            persona_fisica(x, "prot:PersonaFisica", name, c);
        }
    }
}

fn document(x: &mut Xml, element: &str, name: &str, media_type: &str, sha256_hex: &str) {
    x.open(
        element,
        &[("prot:mimeType", media_type), ("prot:nomeFile", name)],
    );
    x.leaf(
        "prot:Impronta",
        &[("prot:algoritmo", "SHA-256")],
        &hex_to_base64(sha256_hex),
    );
    x.close(element);
}

/// The segnatura without its signature, in canonical form: the root element with
/// `Intestazione` and `Descrizione`, and the text to close it.
fn body(aoo: &Aoo, r: &ProtocolRegistration) -> (String, &'static str) {
    let local = r.registered_at.with_timezone(&ROME);
    let mut x = Xml::default();
    x.open(
        "prot:SegnaturaInformatica",
        &[
            ("xmlns:prot", PROT),
            ("prot:lang", "it"),
            ("prot:versione", "3.0.0"),
        ],
    );
    x.open("prot:Intestazione", &[]);
    x.open("prot:Identificatore", &[]);
    x.leaf(
        "prot:CodiceAmministrazione",
        &[],
        &aoo.codice_amministrazione,
    );
    x.leaf("prot:CodiceAOO", &[], &aoo.codice_aoo);
    let registro = if r.register == crate::store::PROTOCOL_REGISTER {
        aoo.codice_registro.clone()
    } else {
        r.register.to_ascii_uppercase()
    };
    x.leaf("prot:CodiceRegistro", &[], &registro);
    x.leaf("prot:NumeroRegistrazione", &[], &r.padded_number());
    x.leaf(
        "prot:DataRegistrazione",
        &[],
        &local.format("%Y-%m-%d").to_string(),
    );
    x.leaf(
        "prot:OraRegistrazione",
        &[],
        &local.format("%H:%M:%S%:z").to_string(),
    );
    x.close("prot:Identificatore");
    x.leaf("prot:Oggetto", &[], &r.subject);
    let (code, name) = match &r.classification {
        Some(code) => (code.clone(), format!("Titolario {code}")),
        None => aoo.default_classification.clone(),
    };
    x.open("prot:Classifica", &[]);
    x.leaf("prot:Denominazione", &[], &name);
    x.leaf("prot:CodiceFlat", &[], &code);
    x.close("prot:Classifica");
    if let Some(fascicolo) = &r.fascicolo {
        x.open("prot:Fascicolo", &[]);
        x.leaf(
            "prot:Denominazione",
            &[],
            &format!("Fascicolo del procedimento {fascicolo}"),
        );
        x.leaf("prot:CodiceFascicolo", &[], fascicolo);
        x.close("prot:Fascicolo");
    }
    x.close("prot:Intestazione");
    x.open("prot:Descrizione", &[]);
    x.open("prot:Mittente", &[]);
    x.open("prot:PA", &[]);
    x.leaf("prot:DenominazionePA", &[], &aoo.denominazione);
    x.leaf("prot:CFPA", &[], &aoo.codice_fiscale);
    x.leaf("prot:CodiceIPAPA", &[], &aoo.codice_amministrazione);
    x.leaf("prot:CodiceIPAAOO", &[], &aoo.codice_aoo);
    contacts(&mut x, "prot:ContattiAOO", aoo.email.as_deref());
    x.close("prot:PA");
    x.close("prot:Mittente");
    for recipient in &r.correspondents {
        x.open("prot:Destinatario", &[]);
        soggetto(&mut x, recipient);
        x.close("prot:Destinatario");
    }
    for d in r
        .documents
        .iter()
        .filter(|d| d.role == DocumentRole::Primario)
    {
        document(
            &mut x,
            "prot:DocumentoPrimario",
            &d.name,
            &d.media_type,
            &d.sha256,
        );
    }
    for d in r
        .documents
        .iter()
        .filter(|d| d.role == DocumentRole::Allegato)
    {
        document(&mut x, "prot:Allegato", &d.name, &d.media_type, &d.sha256);
    }
    x.close("prot:Descrizione");
    (x.out, "</prot:SegnaturaInformatica>")
}

/// The segnatura of a registration, signed when a signer is given. `None` when the
/// registration takes none (see `applies`).
pub fn build(
    aoo: &Aoo,
    r: &ProtocolRegistration,
    signer: Option<&Signer>,
    signing_time: DateTime<Utc>,
) -> Result<Option<String>, Error> {
    if !applies(r) {
        return Ok(None);
    }
    let (open, close) = body(aoo, r);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&open);
    if let Some(signer) = signer {
        out.push_str(&signature(&open, close, r, signer, signing_time)?);
    }
    out.push_str(close);
    Ok(Some(out))
}

/// The `ds:Signature` (XAdES baseline B) over the canonical body.
fn signature(
    open: &str,
    close: &str,
    r: &ProtocolRegistration,
    signer: &Signer,
    signing_time: DateTime<Utc>,
) -> Result<String, Error> {
    let id = format!("Firma-{}-{}-{}", r.register, r.year, r.padded_number());
    let properties_id = format!(
        "ProprietaFirmate-{}-{}-{}",
        r.register,
        r.year,
        r.padded_number()
    );
    // The document as the enveloped-signature and exclusive C14N transforms leave it.
    let document_digest = sha256_b64(format!("{open}{close}").as_bytes());

    let mut p = Xml::default();
    p.open(
        "xades:SignedProperties",
        &[("xmlns:xades", XADES), ("Id", &properties_id)],
    );
    p.open("xades:SignedSignatureProperties", &[]);
    p.leaf(
        "xades:SigningTime",
        &[],
        &signing_time.to_rfc3339_opts(SecondsFormat::Secs, true),
    );
    p.open("xades:SigningCertificateV2", &[]);
    p.open("xades:Cert", &[]);
    p.open("xades:CertDigest", &[]);
    p.leaf(
        "ds:DigestMethod",
        &[("xmlns:ds", DS), ("Algorithm", SHA256_URI)],
        "",
    );
    p.leaf(
        "ds:DigestValue",
        &[("xmlns:ds", DS)],
        &sha256_b64(&signer.certificate_der),
    );
    p.close("xades:CertDigest");
    p.close("xades:Cert");
    p.close("xades:SigningCertificateV2");
    p.close("xades:SignedSignatureProperties");
    p.close("xades:SignedProperties");
    let properties = p.out;

    let mut i = Xml::default();
    i.open("ds:SignedInfo", &[("xmlns:ds", DS)]);
    i.leaf("ds:CanonicalizationMethod", &[("Algorithm", EXC_C14N)], "");
    i.leaf(
        "ds:SignatureMethod",
        &[("Algorithm", signer.algorithm())],
        "",
    );
    i.open(
        "ds:Reference",
        &[("Id", "Riferimento-Segnatura"), ("URI", "")],
    );
    i.open("ds:Transforms", &[]);
    i.leaf("ds:Transform", &[("Algorithm", ENVELOPED)], "");
    i.leaf("ds:Transform", &[("Algorithm", EXC_C14N)], "");
    i.close("ds:Transforms");
    i.leaf("ds:DigestMethod", &[("Algorithm", SHA256_URI)], "");
    i.leaf("ds:DigestValue", &[], &document_digest);
    i.close("ds:Reference");
    let target = format!("#{properties_id}");
    i.open(
        "ds:Reference",
        &[("Type", SIGNED_PROPERTIES_TYPE), ("URI", &target)],
    );
    i.open("ds:Transforms", &[]);
    i.leaf("ds:Transform", &[("Algorithm", EXC_C14N)], "");
    i.close("ds:Transforms");
    i.leaf("ds:DigestMethod", &[("Algorithm", SHA256_URI)], "");
    i.leaf("ds:DigestValue", &[], &sha256_b64(properties.as_bytes()));
    i.close("ds:Reference");
    i.close("ds:SignedInfo");
    let signed_info = i.out;
    let value = BASE64.encode(signer.sign(signed_info.as_bytes())?);

    let mut s = Xml::default();
    s.open("ds:Signature", &[("xmlns:ds", DS), ("Id", &id)]);
    s.out.push_str(&signed_info);
    s.leaf("ds:SignatureValue", &[], &value);
    s.open("ds:KeyInfo", &[]);
    s.open("ds:X509Data", &[]);
    s.leaf(
        "ds:X509Certificate",
        &[],
        &BASE64.encode(&signer.certificate_der),
    );
    s.close("ds:X509Data");
    s.close("ds:KeyInfo");
    s.open("ds:Object", &[]);
    let target = format!("#{id}");
    s.open(
        "xades:QualifyingProperties",
        &[("xmlns:xades", XADES), ("Target", &target)],
    );
    s.out.push_str(&properties);
    s.close("xades:QualifyingProperties");
    s.close("ds:Object");
    s.close("ds:Signature");
    Ok(s.out)
}

/// The text of the segnatura stamped on a document: "Prot. n. 0000042 del 27/11/2026".
pub fn stamp(aoo: &Aoo, r: &ProtocolRegistration) -> String {
    let local = r.registered_at.with_timezone(&ROME);
    let registro = if r.register == crate::store::PROTOCOL_REGISTER {
        "Prot.".to_owned()
    } else {
        format!("Reg. {}", r.register)
    };
    format!(
        "{} – {} n. {} del {}",
        aoo.denominazione,
        registro,
        r.padded_number(),
        local.format("%d/%m/%Y")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Direction, ProtocolDocument, Source};

    fn aoo() -> Aoo {
        Aoo {
            codice_amministrazione: "c_x001".to_owned(),
            codice_aoo: "AOO_UDP".to_owned(),
            codice_registro: "PROTOCOLLO".to_owned(),
            denominazione: "Ambito di Borgo Fiorito".to_owned(),
            codice_fiscale: "80012345678".to_owned(),
            email: Some("udp@pec.example.it".to_owned()),
            default_classification: ("VII".to_owned(), "Servizi alla persona".to_owned()),
        }
    }

    fn registration() -> ProtocolRegistration {
        ProtocolRegistration {
            id: 1,
            log_seq: 1,
            register: "protocollo".to_owned(),
            year: 2026,
            number: 42,
            registered_at: DateTime::parse_from_rfc3339("2026-12-10T10:05:00Z")
                .expect("valid")
                .with_timezone(&Utc),
            direction: Direction::Uscita,
            subject: "Convocazione <Assemblea> & \"seduta\"".to_owned(),
            correspondents: vec![Correspondent {
                kind: CorrespondentKind::Pa,
                name: "Comune di Lago".to_owned(),
                codice_fiscale: Some("00123456789".to_owned()),
                email: Some("sindaco@lago.example.it".to_owned()),
                organisation_id: None,
                person_id: None,
                referente: None,
            }],
            classification: None,
            fascicolo: Some("avviso-1".to_owned()),
            instance_id: None,
            key: None,
            sender_reference: None,
            sender_date: None,
            received_at: None,
            channel: "procedura".to_owned(),
            operator: "sistema".to_owned(),
            source: Source::Locale,
            segnatura: None,
            chain: None,
            documents: vec![ProtocolDocument {
                position: 1,
                role: DocumentRole::Primario,
                name: "convocazione.html".to_owned(),
                media_type: "text/html".to_owned(),
                size: 3,
                sha256: "a665a45920422f9d417e4867efdc4fb8a04a1f3fff1fa07e998e86f7f7a27ae3"
                    .to_owned(),
            }],
            amendments: Vec::new(),
        }
    }

    #[test]
    fn the_unsigned_segnatura_carries_number_date_subject_and_the_impronta_in_base64() {
        let xml = build(&aoo(), &registration(), None, Utc::now())
            .expect("built")
            .expect("outgoing with a document");
        assert!(xml.contains("<prot:NumeroRegistrazione>0000042</prot:NumeroRegistrazione>"));
        assert!(xml.contains("<prot:DataRegistrazione>2026-12-10</prot:DataRegistrazione>"));
        assert!(xml.contains("<prot:OraRegistrazione>11:05:00+01:00</prot:OraRegistrazione>"));
        assert!(xml.contains(
            "<prot:Oggetto>Convocazione &lt;Assemblea&gt; &amp; \"seduta\"</prot:Oggetto>"
        ));
        // SHA-256 of "123" in base64.
        assert!(xml.contains("pmWkWSBCL51Bfkhn79xPuKBKHz//H6B+mY6G9/eieuM="));
        assert!(xml.contains("<prot:CFPA>00123456789</prot:CFPA>"));
    }

    #[test]
    fn an_incoming_or_undocumented_registration_has_no_segnatura() {
        let mut incoming = registration();
        incoming.direction = Direction::Entrata;
        assert_eq!(build(&aoo(), &incoming, None, Utc::now()), Ok(None));
        let mut bare = registration();
        bare.documents.clear();
        assert_eq!(build(&aoo(), &bare, None, Utc::now()), Ok(None));
    }

    #[test]
    fn attribute_and_text_escaping_follow_c14n() {
        assert_eq!(escape_text("a&b<c>d\re"), "a&amp;b&lt;c&gt;d&#xD;e");
        assert_eq!(escape_attribute("a\"b\tc\nd<"), "a&quot;b&#x9;c&#xA;d&lt;");
        assert_eq!(escape_text("x\u{1}y"), "x\u{FFFD}y");
    }

    #[test]
    fn a_name_splits_into_nome_and_cognome() {
        assert_eq!(
            split_name("Maria Grazia Rossi"),
            ("Maria".to_owned(), "Grazia Rossi".to_owned())
        );
        assert_eq!(
            split_name("Rossi"),
            ("Rossi".to_owned(), "Rossi".to_owned())
        );
    }
}
