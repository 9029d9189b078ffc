//! `schema_usage`: which client used which schema coordinate, counted per hour. Each instance adds
//! its counts to the row of (coordinate, hour, client, version, operation) with one upsert, so any
//! number of instances share the table.

use sea_orm_migration::prelude::*;

/// Creates `schema_usage` and its indexes.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000001_schema_usage"
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum SchemaUsage {
    Table,
    Id,
    Coordinate,
    PeriodStart,
    ClientName,
    ClientVersion,
    OperationHash,
    OperationName,
    Uses,
    LastSeen,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SchemaUsage::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(SchemaUsage::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(SchemaUsage::Coordinate).string().not_null())
                    .col(
                        ColumnDef::new(SchemaUsage::PeriodStart)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(SchemaUsage::ClientName).string().not_null())
                    .col(
                        ColumnDef::new(SchemaUsage::ClientVersion)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SchemaUsage::OperationHash)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SchemaUsage::OperationName)
                            .string()
                            .not_null(),
                    )
                    .col(ColumnDef::new(SchemaUsage::Uses).big_integer().not_null())
                    .col(
                        ColumnDef::new(SchemaUsage::LastSeen)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        // The upsert's conflict target, and the lookup by coordinate over a window of hours.
        manager
            .create_index(
                Index::create()
                    .name("schema_usage_coordinate_period")
                    .table(SchemaUsage::Table)
                    .col(SchemaUsage::Coordinate)
                    .col(SchemaUsage::PeriodStart)
                    .col(SchemaUsage::ClientName)
                    .col(SchemaUsage::ClientVersion)
                    .col(SchemaUsage::OperationHash)
                    .col(SchemaUsage::OperationName)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // Retention deletes by hour.
        manager
            .create_index(
                Index::create()
                    .name("schema_usage_period")
                    .table(SchemaUsage::Table)
                    .col(SchemaUsage::PeriodStart)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SchemaUsage::Table).to_owned())
            .await
    }
}
