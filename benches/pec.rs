//! Throughput of reading PEC receipts: a ricevuta di avvenuta consegna (with the original
//! message, as a `completa` receipt carries it) parsed — headers, `multipart/signed`,
//! `daticert.xml` — and its S/MIME signature verified against the trusted list, N times.
//!
//! `cargo bench --bench pec` (N = `PROCEDO_BENCH_RECEIPTS`, default 2000). Prints receipts per
//! second, parsed only and parsed and verified.

use std::time::Instant;

use chrono::Utc;
use procedo::pec::daticert::{DatiCert, Destinatario, Tipo};
use procedo::pec::message::{Composition, compose};
use procedo::pec::smime::test_authority;
use procedo::pec::{Signer, TrustList, parse};

fn main() {
    let count: usize = std::env::var("PROCEDO_BENCH_RECEIPTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let (ca, cert, key) = test_authority("Gestore").unwrap_or_else(|e| panic!("{e}"));
    let signer = Signer::new(&cert, &key).unwrap_or_else(|e| panic!("{e}"));
    let trust = TrustList::from_der(&[ca]).unwrap_or_else(|e| panic!("{e}"));
    let now = Utc::now();
    let original =
        "From: udp@pec.ambito.example.it\r\nSubject: Richiesta di soccorso istruttorio\r\n\r\n"
            .to_owned()
            + &"Testo della richiesta di integrazioni documentali.\r\n".repeat(60);
    let d = DatiCert {
        tipo: Tipo::AvvenutaConsegna,
        errore: "nessuno".into(),
        mittente: "udp@pec.ambito.example.it".into(),
        destinatari: vec![Destinatario {
            address: "aurora@pec.example.it".into(),
            certificato: true,
        }],
        risposte: "udp@pec.ambito.example.it".into(),
        oggetto: "Richiesta di soccorso istruttorio".into(),
        gestore: "Gestore".into(),
        data: now.fixed_offset(),
        identificativo: "opec.1@pec.example.it".into(),
        msgid: Some("<delivery-1@ambito.example.it>".into()),
        ricevuta: Some("completa".into()),
        consegna: Some("aurora@pec.example.it".into()),
        errore_esteso: None,
    };
    let raw = compose(
        &Composition {
            from: "posta-certificata@pec.example.it",
            to: "udp@pec.ambito.example.it",
            subject: "CONSEGNA: Richiesta di soccorso istruttorio",
            message_id: "<opec.1@pec.example.it>",
            riferimento: Some("<delivery-1@ambito.example.it>"),
            text: "Ricevuta di avvenuta consegna",
            daticert: &d,
            original: Some(original.as_bytes()),
        },
        &signer,
        now,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let start = Instant::now();
    for _ in 0..count {
        let m = parse(&raw).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.tipo, Tipo::AvvenutaConsegna);
    }
    let parsed = start.elapsed();
    let start = Instant::now();
    for _ in 0..count {
        let m = parse(&raw).unwrap_or_else(|e| panic!("{e}"));
        m.verify(&trust).unwrap_or_else(|e| panic!("{e}"));
    }
    let verified = start.elapsed();
    println!("receipt: {} bytes", raw.len());
    println!(
        "parsed: {:.0} receipts/s ({count} in {:.2} s)",
        count as f64 / parsed.as_secs_f64(),
        parsed.as_secs_f64()
    );
    println!(
        "parsed and verified: {:.0} receipts/s ({count} in {:.2} s)",
        count as f64 / verified.as_secs_f64(),
        verified.as_secs_f64()
    );
}
