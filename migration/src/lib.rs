//! Migrations of the Conduit schema. One set runs on both PostgreSQL and SQLite.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_create_schema;
mod m20261126_000001_token_version;
mod m20261203_000001_schema_usage;

/// Runs Conduit's migrations in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_create_schema::Migration),
            Box::new(m20261126_000001_token_version::Migration),
            Box::new(m20261203_000001_schema_usage::Migration),
        ]
    }
}
