//! Database migrations for procedo (SQLite and PostgreSQL).
pub use sea_orm_migration::prelude::*;

/// The ordered list of procedo's migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![]
    }
}
