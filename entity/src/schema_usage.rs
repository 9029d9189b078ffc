//! How often one client used one schema coordinate in one operation during one hour.

use sea_orm::entity::prelude::*;

/// A row of `schema_usage`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "schema_usage")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// `Type.field`, `Type.field(arg:)`, `Input.field` or `Enum.VALUE`.
    pub coordinate: String,
    /// The hour the uses fell in (Unix seconds, a multiple of 3600).
    pub period_start: i64,
    /// The client's name (`unknown` when it sent none, `other` past the bound).
    pub client_name: String,
    /// The client's version.
    pub client_version: String,
    /// The operation's signature: a hash of its normalised document.
    pub operation_hash: String,
    /// The operation's name (empty when anonymous).
    pub operation_name: String,
    /// Operations that used the coordinate in that hour.
    pub uses: i64,
    /// The last use (Unix seconds).
    pub last_seen: i64,
}

/// `schema_usage` relates to nothing.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
