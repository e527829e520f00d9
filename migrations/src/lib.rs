//! Database migrations for procedo, written once for SQLite and PostgreSQL.
//!
//! Conventions shared by every table: timestamps are `timestamp with time zone` (text in
//! RFC 3339 on SQLite, always UTC); JSON is stored as text and parsed by the store, so both
//! backends hold the same bytes; instances are keyed by a text UUID, every other row by a
//! big-integer autoincrement id.

pub use sea_orm_migration::prelude::*;

mod m20250601_000001_definitions_instances;
mod m20250601_000002_history_commands;
mod m20250601_000003_timers_outbox_cron;
mod m20250615_000001_identity_submissions;
mod m20250620_000001_deliveries_protocollo;
mod m20261128_000001_timer_retries;
mod m20261129_000001_protocol_register;
mod m20261130_000001_participant_history;
mod m20261201_000001_admin_audit;
mod m20261202_000001_pec;
mod m20261203_000001_calendar_feeds;
mod m20261204_000001_albo_handovers;
mod m20261205_000001_timer_due_order;

/// The ordered list of procedo's migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20250601_000001_definitions_instances::Migration),
            Box::new(m20250601_000002_history_commands::Migration),
            Box::new(m20250601_000003_timers_outbox_cron::Migration),
            Box::new(m20250615_000001_identity_submissions::Migration),
            Box::new(m20250620_000001_deliveries_protocollo::Migration),
            Box::new(m20261128_000001_timer_retries::Migration),
            Box::new(m20261129_000001_protocol_register::Migration),
            Box::new(m20261130_000001_participant_history::Migration),
            Box::new(m20261201_000001_admin_audit::Migration),
            Box::new(m20261202_000001_pec::Migration),
            Box::new(m20261203_000001_calendar_feeds::Migration),
            Box::new(m20261204_000001_albo_handovers::Migration),
            Box::new(m20261205_000001_timer_due_order::Migration),
        ]
    }
}
