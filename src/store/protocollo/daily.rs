//! The registro giornaliero of each day (art. 53 c.2 DPR 445/2000): which days have one,
//! the digests of its files, and its hand-over to conservation. Unlike the register itself
//! this row changes: its conservation status moves from `da_inviare` to `inviato` (with the
//! receipt) or `errore` (with the reason, retried).

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::super::entities::protocol_daily_register as daily;
use super::super::{Error, Result, Store, instant};

/// Where a day's register is in its hand-over to conservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConservationStatus {
    /// Produced, not handed over yet.
    DaInviare,
    /// Handed over; the receipt is kept.
    Inviato,
    /// The last hand-over failed (retried at the next run).
    Errore,
}

impl ConservationStatus {
    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            ConservationStatus::DaInviare => "da_inviare",
            ConservationStatus::Inviato => "inviato",
            ConservationStatus::Errore => "errore",
        }
    }

    fn parse(text: &str) -> Option<ConservationStatus> {
        match text {
            "da_inviare" => Some(ConservationStatus::DaInviare),
            "inviato" => Some(ConservationStatus::Inviato),
            "errore" => Some(ConservationStatus::Errore),
            _ => None,
        }
    }
}

/// A day's register as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyRegisterRow {
    /// The day (Europe/Rome).
    pub day: NaiveDate,
    /// When it was produced.
    pub produced_at: DateTime<Utc>,
    /// Registrations it lists.
    pub registrations: u32,
    /// Annulments, corrections and reconciliations it lists.
    pub amendments: u32,
    /// Hex SHA-256 of the CSV file.
    pub csv_sha256: String,
    /// Hex SHA-256 of the HTML file.
    pub html_sha256: String,
    /// The chain value of the last row of the register at the end of the day.
    pub chain_head: Option<String>,
    /// Hand-over to conservation.
    pub conservation_status: ConservationStatus,
    /// What the conservation system answered.
    pub conservation_receipt: Option<String>,
    /// When it was handed over.
    pub conserved_at: Option<DateTime<Utc>>,
    /// Why the last hand-over failed.
    pub last_error: Option<String>,
}

/// A day's register just produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDailyRegister {
    /// The day.
    pub day: NaiveDate,
    /// When.
    pub produced_at: DateTime<Utc>,
    /// Registrations listed.
    pub registrations: u32,
    /// Amendments listed.
    pub amendments: u32,
    /// Digest of the CSV.
    pub csv_sha256: String,
    /// Digest of the HTML.
    pub html_sha256: String,
    /// The chain head at the end of the day.
    pub chain_head: Option<String>,
}

fn day_text(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

fn from_model(m: daily::Model) -> Result<DailyRegisterRow> {
    let day = NaiveDate::parse_from_str(&m.day, "%Y-%m-%d")
        .map_err(|_| Error::Corrupt(format!("protocol_daily_registers.day '{}'", m.day)))?;
    Ok(DailyRegisterRow {
        conservation_status: ConservationStatus::parse(&m.conservation_status).ok_or_else(
            || {
                Error::Corrupt(format!(
                    "protocol_daily_registers.conservation_status '{}'",
                    m.conservation_status
                ))
            },
        )?,
        day,
        produced_at: m.produced_at,
        registrations: u32::try_from(m.registrations).unwrap_or(0),
        amendments: u32::try_from(m.amendments).unwrap_or(0),
        csv_sha256: m.csv_sha256,
        html_sha256: m.html_sha256,
        chain_head: m.chain_head,
        conservation_receipt: m.conservation_receipt,
        conserved_at: m.conserved_at,
        last_error: m.last_error,
    })
}

impl Store {
    /// Records a day's register, once: false if the day already has one (another worker
    /// produced it).
    pub async fn record_daily_register(&self, new: &NewDailyRegister) -> Result<bool> {
        let row = daily::ActiveModel {
            day: Set(day_text(new.day)),
            produced_at: Set(instant(new.produced_at)),
            registrations: Set(i32::try_from(new.registrations).unwrap_or(i32::MAX)),
            amendments: Set(i32::try_from(new.amendments).unwrap_or(i32::MAX)),
            csv_sha256: Set(new.csv_sha256.clone()),
            html_sha256: Set(new.html_sha256.clone()),
            chain_head: Set(new.chain_head.clone()),
            conservation_status: Set(ConservationStatus::DaInviare.as_str().to_owned()),
            conservation_receipt: Set(None),
            conserved_at: Set(None),
            last_error: Set(None),
        };
        let inserted = daily::Entity::insert(row)
            .on_conflict(
                OnConflict::column(daily::Column::Day)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        Ok(inserted > 0)
    }

    /// Records the hand-over of a day's register to conservation.
    pub async fn daily_register_conserved(
        &self,
        day: NaiveDate,
        receipt: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        daily::Entity::update_many()
            .col_expr(
                daily::Column::ConservationStatus,
                Expr::value(ConservationStatus::Inviato.as_str()),
            )
            .col_expr(daily::Column::ConservationReceipt, Expr::value(receipt))
            .col_expr(daily::Column::ConservedAt, Expr::value(instant(at)))
            .col_expr(
                daily::Column::LastError,
                Expr::value(Option::<String>::None),
            )
            .filter(daily::Column::Day.eq(day_text(day)))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Records a failed hand-over (retried at the next run).
    pub async fn daily_register_failed(&self, day: NaiveDate, error: &str) -> Result<()> {
        daily::Entity::update_many()
            .col_expr(
                daily::Column::ConservationStatus,
                Expr::value(ConservationStatus::Errore.as_str()),
            )
            .col_expr(daily::Column::LastError, Expr::value(error))
            .filter(daily::Column::Day.eq(day_text(day)))
            .filter(daily::Column::ConservationStatus.ne(ConservationStatus::Inviato.as_str()))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// One day's register.
    pub async fn daily_register(&self, day: NaiveDate) -> Result<Option<DailyRegisterRow>> {
        daily::Entity::find_by_id(day_text(day))
            .one(&self.db)
            .await?
            .map(from_model)
            .transpose()
    }

    /// Every day's register, by day.
    pub async fn daily_registers(&self) -> Result<Vec<DailyRegisterRow>> {
        daily::Entity::find()
            .order_by_asc(daily::Column::Day)
            .all(&self.db)
            .await?
            .into_iter()
            .map(from_model)
            .collect()
    }
}
