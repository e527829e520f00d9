//! The status of one PEC delivery, moved by the receipts about it.
//!
//! `inviata → accettata | non_accettata → presa_in_carico → consegnata |
//! preavviso_mancata_consegna (12 h) → mancata_consegna (24 h) | virus`. A receipt never moves
//! a status backwards (an accettazione read after the consegna changes nothing) and a final
//! status never changes.

use super::Tipo;

/// Where a PEC delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PecStatus {
    /// Handed to the provider's SMTP submission; no receipt yet.
    Inviata,
    /// Ricevuta di accettazione.
    Accettata,
    /// Avviso di non accettazione (final: the provider refused it).
    NonAccettata,
    /// Ricevuta di presa in carico by the recipient's provider.
    PresaInCarico,
    /// Ricevuta di avvenuta consegna (final): the legal date.
    Consegnata,
    /// Avviso di mancata consegna per superamento dei tempi massimi (12 h).
    PreavvisoMancataConsegna,
    /// Avviso di mancata consegna (final).
    MancataConsegna,
    /// Avviso di rilevazione virus (final).
    Virus,
}

impl PecStatus {
    /// Every status.
    pub const ALL: [PecStatus; 8] = [
        PecStatus::Inviata,
        PecStatus::Accettata,
        PecStatus::NonAccettata,
        PecStatus::PresaInCarico,
        PecStatus::Consegnata,
        PecStatus::PreavvisoMancataConsegna,
        PecStatus::MancataConsegna,
        PecStatus::Virus,
    ];

    /// The value stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            PecStatus::Inviata => "inviata",
            PecStatus::Accettata => "accettata",
            PecStatus::NonAccettata => "non_accettata",
            PecStatus::PresaInCarico => "presa_in_carico",
            PecStatus::Consegnata => "consegnata",
            PecStatus::PreavvisoMancataConsegna => "preavviso_mancata_consegna",
            PecStatus::MancataConsegna => "mancata_consegna",
            PecStatus::Virus => "virus",
        }
    }

    /// Parses a stored value.
    pub fn parse(text: &str) -> Option<PecStatus> {
        PecStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Final: nothing moves it any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            PecStatus::NonAccettata
                | PecStatus::Consegnata
                | PecStatus::MancataConsegna
                | PecStatus::Virus
        )
    }

    /// A failure the RUP must hear of: the recipient was not reached.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            PecStatus::NonAccettata | PecStatus::MancataConsegna | PecStatus::Virus
        )
    }

    fn rank(self) -> u8 {
        match self {
            PecStatus::Inviata => 0,
            PecStatus::Accettata => 1,
            PecStatus::PresaInCarico => 2,
            PecStatus::PreavvisoMancataConsegna => 3,
            _ => 4,
        }
    }

    /// The status a receipt of type `tipo` leads to.
    pub fn of_receipt(tipo: Tipo) -> Option<PecStatus> {
        Some(match tipo {
            Tipo::Accettazione => PecStatus::Accettata,
            Tipo::NonAccettazione => PecStatus::NonAccettata,
            Tipo::PresaInCarico => PecStatus::PresaInCarico,
            Tipo::AvvenutaConsegna => PecStatus::Consegnata,
            Tipo::PreavvisoErroreConsegna => PecStatus::PreavvisoMancataConsegna,
            Tipo::ErroreConsegna => PecStatus::MancataConsegna,
            Tipo::RilevazioneVirus => PecStatus::Virus,
            Tipo::PostaCertificata | Tipo::Errore => return None,
        })
    }

    /// The status after a receipt of type `tipo`, or `None` when it changes nothing.
    pub fn after(self, tipo: Tipo) -> Option<PecStatus> {
        let next = PecStatus::of_receipt(tipo)?;
        (!self.is_final() && next.rank() > self.rank()).then_some(next)
    }
}

impl std::fmt::Display for PecStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_move_forward_only() {
        let s = PecStatus::Inviata;
        let s = s.after(Tipo::Accettazione).expect("accettata");
        assert_eq!(s, PecStatus::Accettata);
        let s = s.after(Tipo::PreavvisoErroreConsegna).expect("preavviso");
        assert_eq!(s.after(Tipo::Accettazione), None);
        let s = s.after(Tipo::ErroreConsegna).expect("mancata");
        assert!(s.is_final() && s.is_failure());
        assert_eq!(s.after(Tipo::AvvenutaConsegna), None);
        // A consegna read before the accettazione: the accettazione changes nothing.
        let s = PecStatus::Inviata
            .after(Tipo::AvvenutaConsegna)
            .expect("consegnata");
        assert_eq!(s.after(Tipo::Accettazione), None);
        assert_eq!(PecStatus::Inviata.after(Tipo::PostaCertificata), None);
        for s in PecStatus::ALL {
            assert_eq!(PecStatus::parse(s.as_str()), Some(s));
        }
    }
}
