//! The S/MIME signature of a PEC receipt or envelope: a detached CMS `SignedData` (RFC 5652)
//! over the first part of a `multipart/signed` message (RFC 1847), made by the provider.
//!
//! [`TrustList`] holds the providers' certificates: a PEM bundle, or the XML trusted list
//! AgID publishes (ETSI TS 119 612: every `X509Certificate` element). A signature is good
//! when the signed attributes carry the content's digest, the signer's key verifies them, and
//! the signer's certificate is either in the list or issued (and signed) by a certificate in
//! it, and was valid at the receipt's date. RSA (SHA-256, or SHA-1 of older providers) and
//! ECDSA P-256 with SHA-256 are read.
//!
//! [`Signer`] is the provider side (the PEC provider of the tests and the demo): it signs with
//! ECDSA P-256.

use chrono::{DateTime, Utc};
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{ObjectIdentifier, OctetString, SetOfVec, UtcTime};
use der::{Any, Decode, Encode};
use ring::signature;
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::spki::AlgorithmIdentifierOwned;

use super::Error;

const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA1_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

/// The certificates of the PEC providers procedo trusts.
#[derive(Debug, Clone, Default)]
pub struct TrustList {
    certificates: Vec<Certificate>,
}

impl TrustList {
    /// From the DER of each certificate.
    pub fn from_der(certificates: &[Vec<u8>]) -> Result<TrustList, Error> {
        let certificates = certificates
            .iter()
            .map(|der| {
                Certificate::from_der(der)
                    .map_err(|error| Error::Trust(format!("certificato illeggibile: {error}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TrustList { certificates })
    }

    /// From a file's text: a PEM bundle (`-----BEGIN CERTIFICATE-----`), or the trusted list
    /// in XML (every `X509Certificate` element, base64).
    pub fn parse(text: &str) -> Result<TrustList, Error> {
        let mut ders = Vec::new();
        if text.contains("-----BEGIN CERTIFICATE-----") {
            for item in rustls_pemfile::certs(&mut text.as_bytes()) {
                let der =
                    item.map_err(|error| Error::Trust(format!("PEM non leggibile: {error}")))?;
                ders.push(der.as_ref().to_vec());
            }
        } else {
            let options = roxmltree::ParsingOptions {
                allow_dtd: false,
                nodes_limit: 5_000_000,
            };
            let doc = roxmltree::Document::parse_with_options(text, options).map_err(|error| {
                Error::Trust(format!("né PEM né elenco XML leggibile: {error}"))
            })?;
            for node in doc
                .descendants()
                .filter(|node| node.tag_name().name() == "X509Certificate")
            {
                let b64: String = node
                    .text()
                    .unwrap_or_default()
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect();
                use base64::Engine as _;
                let der = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|error| {
                        Error::Trust(format!("X509Certificate non in base64: {error}"))
                    })?;
                ders.push(der);
            }
        }
        if ders.is_empty() {
            return Err(Error::Trust(
                "nessun certificato nell'elenco dei gestori fidati".into(),
            ));
        }
        TrustList::from_der(&ders)
    }

    /// How many certificates it holds.
    pub fn len(&self) -> usize {
        self.certificates.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.certificates.is_empty()
    }
}

/// Who signed, once verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The signer certificate's subject, as text.
    pub signer: String,
    /// The SHA-256 of the signer certificate (hex).
    pub certificate_sha256: String,
}

/// Verifies the detached signature `p7s` (DER ContentInfo) over `content` at the instant
/// `at` against `trust`. Never panics on any input.
pub fn verify(
    content: &[u8],
    p7s: &[u8],
    trust: &TrustList,
    at: DateTime<Utc>,
) -> Result<Verified, Error> {
    let bad = |reason: String| Error::Signature(reason);
    let info = ContentInfo::from_der(p7s).map_err(|e| bad(format!("firma illeggibile: {e}")))?;
    if info.content_type != ID_SIGNED_DATA {
        return Err(bad("la firma non è un SignedData".into()));
    }
    let signed: SignedData = info
        .content
        .decode_as()
        .map_err(|e| bad(format!("SignedData illeggibile: {e}")))?;
    if signed.encap_content_info.econtent.is_some() {
        return Err(bad("la firma non è staccata dal contenuto".into()));
    }
    let signer_info = signed
        .signer_infos
        .0
        .iter()
        .next()
        .ok_or_else(|| bad("nessun firmatario".into()))?;
    let certificates: Vec<&Certificate> = signed
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|choice| match choice {
            CertificateChoices::Certificate(cert) => Some(cert),
            CertificateChoices::Other(_) => None,
        })
        .collect();
    let cert = match &signer_info.sid {
        SignerIdentifier::IssuerAndSerialNumber(id) => certificates.iter().find(|cert| {
            cert.tbs_certificate.issuer == id.issuer
                && cert.tbs_certificate.serial_number == id.serial_number
        }),
        SignerIdentifier::SubjectKeyIdentifier(_) => certificates.first(),
    }
    .copied()
    .ok_or_else(|| bad("il certificato del firmatario non è nella firma".into()))?;

    // 1. The content's digest is the one signed.
    let digest_oid = signer_info.digest_alg.oid;
    let digest = match digest_oid {
        SHA256 => ring::digest::digest(&ring::digest::SHA256, content),
        SHA1 => ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, content),
        other => return Err(bad(format!("algoritmo di impronta {other} non supportato"))),
    };
    let attrs = signer_info
        .signed_attrs
        .as_ref()
        .ok_or_else(|| bad("mancano gli attributi firmati".into()))?;
    let signed_digest = attrs
        .iter()
        .find(|attr| attr.oid == MESSAGE_DIGEST)
        .and_then(|attr| attr.values.iter().next())
        .and_then(|value| value.decode_as::<OctetString>().ok())
        .ok_or_else(|| bad("manca l'impronta firmata (messageDigest)".into()))?;
    if signed_digest.as_bytes() != digest.as_ref() {
        return Err(bad(
            "l'impronta del contenuto non corrisponde a quella firmata: messaggio alterato".into(),
        ));
    }
    // 2. The signer's key verifies the signed attributes (DER, as a SET OF).
    let signed_bytes = attrs
        .to_der()
        .map_err(|e| bad(format!("attributi firmati non codificabili: {e}")))?;
    verify_with(
        cert,
        &signer_info.signature_algorithm.oid,
        digest_oid,
        &signed_bytes,
        signer_info.signature.as_bytes(),
    )
    .map_err(|_| bad("la firma del gestore non è valida".into()))?;
    // 3. The certificate is trusted and was valid at `at`.
    let validity = &cert.tbs_certificate.validity;
    let from = validity.not_before.to_unix_duration().as_secs();
    let until = validity.not_after.to_unix_duration().as_secs();
    let when = u64::try_from(at.timestamp()).unwrap_or(0);
    if when < from || when > until {
        return Err(bad(format!(
            "il certificato del gestore non era valido il {}",
            at.format("%d/%m/%Y %H:%M")
        )));
    }
    let cert_der = cert
        .to_der()
        .map_err(|e| bad(format!("certificato non codificabile: {e}")))?;
    let trusted = trust.certificates.iter().any(|anchor| {
        if anchor.to_der().is_ok_and(|der| der == cert_der) {
            return true;
        }
        if anchor.tbs_certificate.subject != cert.tbs_certificate.issuer {
            return false;
        }
        let Ok(tbs) = cert.tbs_certificate.to_der() else {
            return false;
        };
        let Some(signature) = cert.signature.as_bytes() else {
            return false;
        };
        verify_certificate(anchor, &cert.signature_algorithm.oid, &tbs, signature).is_ok()
    });
    if !trusted {
        return Err(bad(
            "il certificato del gestore non è nell'elenco dei gestori fidati".into(),
        ));
    }
    Ok(Verified {
        signer: cert.tbs_certificate.subject.to_string(),
        certificate_sha256: hex::encode(ring::digest::digest(&ring::digest::SHA256, &cert_der)),
    })
}

/// Verifies `signature` over `message` with `cert`'s key, for a CMS signer.
fn verify_with(
    cert: &Certificate,
    signature_oid: &ObjectIdentifier,
    digest_oid: ObjectIdentifier,
    message: &[u8],
    signature: &[u8],
) -> Result<(), ()> {
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let key = spki.subject_public_key.as_bytes().ok_or(())?;
    let algorithm: &dyn signature::VerificationAlgorithm = match (spki.algorithm.oid, digest_oid) {
        (RSA, SHA256) if matches!(*signature_oid, RSA | SHA256_WITH_RSA) => {
            &signature::RSA_PKCS1_2048_8192_SHA256
        }
        (RSA, SHA1) if matches!(*signature_oid, RSA | SHA1_WITH_RSA) => {
            &signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY
        }
        (EC_PUBLIC_KEY, SHA256) if *signature_oid == ECDSA_SHA256 => {
            &signature::ECDSA_P256_SHA256_ASN1
        }
        _ => return Err(()),
    };
    signature::UnparsedPublicKey::new(algorithm, key)
        .verify(message, signature)
        .map_err(|_| ())
}

/// Verifies a certificate's signature (`tbs`, `signature`) with `issuer`'s key.
fn verify_certificate(
    issuer: &Certificate,
    signature_oid: &ObjectIdentifier,
    tbs: &[u8],
    signature: &[u8],
) -> Result<(), ()> {
    let spki = &issuer.tbs_certificate.subject_public_key_info;
    let key = spki.subject_public_key.as_bytes().ok_or(())?;
    let algorithm: &dyn signature::VerificationAlgorithm = match *signature_oid {
        SHA256_WITH_RSA => &signature::RSA_PKCS1_2048_8192_SHA256,
        SHA1_WITH_RSA => &signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
        ECDSA_SHA256 => &signature::ECDSA_P256_SHA256_ASN1,
        _ => return Err(()),
    };
    signature::UnparsedPublicKey::new(algorithm, key)
        .verify(tbs, signature)
        .map_err(|_| ())
}

/// A provider's signing identity: its certificate and ECDSA P-256 key.
pub struct Signer {
    certificate: Certificate,
    key: signature::EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field(
                "subject",
                &self.certificate.tbs_certificate.subject.to_string(),
            )
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// From the certificate's DER and the key's PKCS#8 DER (ECDSA P-256).
    pub fn new(certificate_der: &[u8], pkcs8: &[u8]) -> Result<Signer, Error> {
        let certificate = Certificate::from_der(certificate_der)
            .map_err(|e| Error::Trust(format!("certificato del gestore illeggibile: {e}")))?;
        let rng = ring::rand::SystemRandom::new();
        let key = signature::EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            pkcs8,
            &rng,
        )
        .map_err(|e| Error::Trust(format!("chiave del gestore illeggibile: {e}")))?;
        Ok(Signer {
            certificate,
            key,
            rng,
        })
    }

    /// The detached signature (DER ContentInfo) of `content`, signed at `at`.
    pub fn sign(&self, content: &[u8], at: DateTime<Utc>) -> Result<Vec<u8>, Error> {
        let fail = |e: der::Error| Error::Signature(format!("firma non codificabile: {e}"));
        let digest = ring::digest::digest(&ring::digest::SHA256, content);
        let attribute = |oid: ObjectIdentifier, value: Any| -> Result<Attribute, Error> {
            let mut values = SetOfVec::new();
            values.insert(value).map_err(fail)?;
            Ok(Attribute { oid, values })
        };
        let time = UtcTime::from_unix_duration(std::time::Duration::from_secs(
            u64::try_from(at.timestamp()).unwrap_or(0),
        ))
        .map_err(fail)?;
        let mut attrs = SetOfVec::new();
        attrs
            .insert(attribute(
                CONTENT_TYPE,
                Any::encode_from(&ID_DATA).map_err(fail)?,
            )?)
            .map_err(fail)?;
        attrs
            .insert(attribute(
                MESSAGE_DIGEST,
                Any::encode_from(&OctetString::new(digest.as_ref()).map_err(fail)?)
                    .map_err(fail)?,
            )?)
            .map_err(fail)?;
        attrs
            .insert(attribute(
                SIGNING_TIME,
                Any::encode_from(&time).map_err(fail)?,
            )?)
            .map_err(fail)?;
        let signed_bytes = attrs.to_der().map_err(fail)?;
        let signature = self
            .key
            .sign(&self.rng, &signed_bytes)
            .map_err(|_| Error::Signature("firma ECDSA non riuscita".into()))?;
        let sha256 = AlgorithmIdentifierOwned {
            oid: SHA256,
            parameters: None,
        };
        let signer_info = SignerInfo {
            version: CmsVersion::V1,
            sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: self.certificate.tbs_certificate.issuer.clone(),
                serial_number: self.certificate.tbs_certificate.serial_number.clone(),
            }),
            digest_alg: sha256.clone(),
            signed_attrs: Some(attrs),
            signature_algorithm: AlgorithmIdentifierOwned {
                oid: ECDSA_SHA256,
                parameters: None,
            },
            signature: OctetString::new(signature.as_ref()).map_err(fail)?,
            unsigned_attrs: None,
        };
        let mut digests = SetOfVec::new();
        digests.insert(sha256).map_err(fail)?;
        let mut certs = SetOfVec::new();
        certs
            .insert(CertificateChoices::Certificate(self.certificate.clone()))
            .map_err(fail)?;
        let mut signers = SetOfVec::new();
        signers.insert(signer_info).map_err(fail)?;
        let signed = SignedData {
            version: CmsVersion::V1,
            digest_algorithms: digests,
            encap_content_info: EncapsulatedContentInfo {
                econtent_type: ID_DATA,
                econtent: None,
            },
            certificates: Some(CertificateSet(certs)),
            crls: None,
            signer_infos: SignerInfos(signers),
        };
        ContentInfo {
            content_type: ID_SIGNED_DATA,
            content: Any::encode_from(&signed).map_err(fail)?,
        }
        .to_der()
        .map_err(fail)
    }
}

/// (CA certificate DER, provider certificate DER, provider key PKCS#8 DER).
pub type TestAuthority = (Vec<u8>, Vec<u8>, Vec<u8>);

/// A certification authority and a provider certificate it issued, made now: what the
/// tests and the demo run their PEC provider with.
pub fn test_authority(provider: &str) -> Result<TestAuthority, Error> {
    let fail = |e: rcgen::Error| Error::Trust(format!("certificati di prova non generati: {e}"));
    let ca_key = rcgen::KeyPair::generate().map_err(fail)?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "CA di prova dei gestori PEC");
    ca_params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "procedo (prova)");
    let ca_cert = ca_params.self_signed(&ca_key).map_err(fail)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().map_err(fail)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, provider);
    let cert = params.signed_by(&key, &issuer).map_err(fail)?;
    Ok((
        ca_cert.der().as_ref().to_vec(),
        cert.der().as_ref().to_vec(),
        key.serialize_der(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        Utc::now()
    }

    #[test]
    fn a_signature_verifies_against_the_authority_and_nothing_else() {
        let (ca, cert, key) = test_authority("Gestore di prova").expect("authority");
        let signer = Signer::new(&cert, &key).expect("signer");
        let content = b"Content-Type: text/plain\r\n\r\nRicevuta di avvenuta consegna\r\n";
        let p7s = signer.sign(content, at()).expect("signed");
        let trust = TrustList::from_der(std::slice::from_ref(&ca)).expect("trust");
        let verified = verify(content, &p7s, &trust, at()).expect("verified");
        assert!(verified.signer.contains("Gestore di prova"), "{verified:?}");
        // The provider's own certificate in the list is trusted too.
        let direct = TrustList::from_der(std::slice::from_ref(&cert)).expect("trust");
        verify(content, &p7s, &direct, at()).expect("verified directly");

        // A changed byte, another authority, a broken signature: refused, each with its reason.
        let altered = b"Content-Type: text/plain\r\n\r\nRicevuta di avvenuta consegnA\r\n";
        let error = verify(altered, &p7s, &trust, at()).expect_err("altered");
        assert!(error.to_string().contains("alterato"), "{error}");
        let (other_ca, _, _) = test_authority("Altro").expect("authority");
        let stranger = TrustList::from_der(&[other_ca]).expect("trust");
        let error = verify(content, &p7s, &stranger, at()).expect_err("untrusted");
        assert!(error.to_string().contains("elenco"), "{error}");
        let mut broken = p7s.clone();
        let last = broken.len() - 5;
        broken[last] ^= 0x55;
        assert!(verify(content, &broken, &trust, at()).is_err());
        // Outside the certificate's validity.
        let error = verify(
            content,
            &p7s,
            &trust,
            at() + chrono::Duration::days(365 * 5000),
        )
        .expect_err("expired");
        assert!(error.to_string().contains("valido"), "{error}");
    }

    #[test]
    fn a_trust_list_is_read_from_pem_or_from_the_xml_list() {
        let (ca, _, _) = test_authority("Gestore").expect("authority");
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&ca);
        let pem = format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n");
        assert_eq!(TrustList::parse(&pem).expect("pem").len(), 1);
        let xml = format!(
            "<TrustServiceStatusList><TrustServiceProviderList><TSPService><ServiceDigitalIdentity><DigitalId><X509Certificate>{b64}</X509Certificate></DigitalId></ServiceDigitalIdentity></TSPService></TrustServiceProviderList></TrustServiceStatusList>"
        );
        assert_eq!(TrustList::parse(&xml).expect("xml").len(), 1);
        assert!(TrustList::parse("niente").is_err());
        assert!(TrustList::parse("<a/>").is_err());
    }

    proptest::proptest! {
        #[test]
        fn verifying_garbage_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let trust = TrustList::default();
            let _ = verify(b"x", &bytes, &trust, Utc::now());
        }
    }
}
