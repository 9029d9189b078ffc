//! The `schema_usage` table: adding counts (an upsert that any number of instances may run at
//! once), retention, and the reads behind `conduit schema usage` and `conduit schema check`.

use std::collections::{BTreeMap, HashMap};

use entity::schema_usage::{self, Column, Entity};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect,
};

use super::ClientApp;

/// Rows per statement (9 values each: well under SQLite's and PostgreSQL's parameter limits).
const ROWS_PER_STATEMENT: usize = 500;

/// What identifies one row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowKey {
    /// The schema coordinate.
    pub coordinate: String,
    /// The hour (Unix seconds).
    pub period_start: i64,
    /// The client's name.
    pub client_name: String,
    /// The client's version.
    pub client_version: String,
    /// The operation's signature.
    pub operation_hash: String,
    /// The operation's name.
    pub operation_name: String,
}

/// Adds `rows` (uses, last seen) to what is stored.
pub async fn add(db: &DatabaseConnection, rows: HashMap<RowKey, (i64, i64)>) -> Result<(), DbErr> {
    let mut rows: Vec<_> = rows.into_iter().collect();
    // One order for every instance, so two concurrent upserts lock rows in the same order.
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let models = chunk
            .iter()
            .map(|(key, (uses, last_seen))| schema_usage::ActiveModel {
                id: NotSet,
                coordinate: Set(key.coordinate.clone()),
                period_start: Set(key.period_start),
                client_name: Set(key.client_name.clone()),
                client_version: Set(key.client_version.clone()),
                operation_hash: Set(key.operation_hash.clone()),
                operation_name: Set(key.operation_name.clone()),
                uses: Set(*uses),
                last_seen: Set(*last_seen),
            });
        let on_conflict = OnConflict::columns([
            Column::Coordinate,
            Column::PeriodStart,
            Column::ClientName,
            Column::ClientVersion,
            Column::OperationHash,
            Column::OperationName,
        ])
        .value(
            Column::Uses,
            Expr::cust(r#""schema_usage"."uses" + "excluded"."uses""#),
        )
        .update_column(Column::LastSeen)
        .to_owned();
        Entity::insert_many(models)
            .on_conflict(on_conflict)
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// Deletes the hours before `cutoff` (Unix seconds).
pub async fn delete_before(db: &DatabaseConnection, cutoff: i64) -> Result<u64, DbErr> {
    Ok(Entity::delete_many()
        .filter(Column::PeriodStart.lt(cutoff))
        .exec(db)
        .await?
        .rows_affected)
}

/// Up to `limit` distinct clients recorded since `since`.
pub async fn recent_clients(
    db: &DatabaseConnection,
    since: i64,
    limit: u64,
) -> Result<Vec<ClientApp>, DbErr> {
    let clients: Vec<(String, String)> = Entity::find()
        .select_only()
        .column(Column::ClientName)
        .column(Column::ClientVersion)
        .distinct()
        .filter(Column::PeriodStart.gte(since))
        .filter(Column::ClientName.ne(super::client::UNKNOWN))
        .filter(Column::ClientName.ne(super::client::OTHER))
        .limit(limit)
        .into_tuple()
        .all(db)
        .await?;
    Ok(clients
        .into_iter()
        .map(|(name, version)| ClientApp::new(Some(&name), Some(&version)))
        .collect())
}

/// How many distinct clients (name and version) are stored.
pub async fn distinct_clients(db: &DatabaseConnection) -> Result<usize, DbErr> {
    let clients: Vec<(String, String)> = Entity::find()
        .select_only()
        .column(Column::ClientName)
        .column(Column::ClientVersion)
        .distinct()
        .into_tuple()
        .all(db)
        .await?;
    Ok(clients.len())
}

/// One client's use of a coordinate in one operation, over a window.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Use {
    /// The client's name.
    pub client_name: String,
    /// The client's version.
    pub client_version: String,
    /// The operation's name (empty when anonymous).
    pub operation_name: String,
    /// The operation's signature.
    pub operation_hash: String,
    /// Operations counted.
    pub uses: i64,
    /// The last use (Unix seconds).
    pub last_seen: i64,
}

/// Client name, client version, operation name, operation signature.
type UseKey = (String, String, String, String);

/// Who used `coordinate` since `since` (Unix seconds), most uses first. A type (`Article`)
/// matches every coordinate under it; a field (`Article.tagList`) matches itself and its
/// arguments.
pub async fn uses_of(
    db: &DatabaseConnection,
    coordinate: &str,
    since: i64,
) -> Result<Vec<Use>, DbErr> {
    // LIKE narrows (`_` may match more, and SQLite's LIKE ignores case); the exact test is
    // `matches`. Text ranges are avoided: PostgreSQL compares text by the database's collation.
    let field = coordinate.contains('.');
    let scope = if field {
        Condition::any()
            .add(Column::Coordinate.eq(coordinate))
            .add(Column::Coordinate.like(format!("{coordinate}(%")))
    } else {
        Condition::all().add(Column::Coordinate.like(format!("{coordinate}.%")))
    };
    let matches = |candidate: &str| {
        if field {
            candidate == coordinate
                || candidate
                    .strip_prefix(coordinate)
                    .is_some_and(|rest| rest.starts_with('('))
        } else {
            candidate
                .strip_prefix(coordinate)
                .is_some_and(|rest| rest.starts_with('.'))
        }
    };
    let rows = Entity::find()
        .filter(scope)
        .filter(Column::PeriodStart.gte(since))
        .all(db)
        .await?
        .into_iter()
        .filter(|row| matches(&row.coordinate));
    // Each (client, operation) once: an operation that used several matching coordinates in
    // one hour counts once for that hour.
    let mut by_hour: BTreeMap<(UseKey, i64), (i64, i64)> = BTreeMap::new();
    for row in rows {
        let entry = by_hour
            .entry((
                (
                    row.client_name,
                    row.client_version,
                    row.operation_name,
                    row.operation_hash,
                ),
                row.period_start,
            ))
            .or_insert((0, 0));
        entry.0 = entry.0.max(row.uses);
        entry.1 = entry.1.max(row.last_seen);
    }
    let mut uses: BTreeMap<UseKey, (i64, i64)> = BTreeMap::new();
    for ((key, _), (count, last_seen)) in by_hour {
        let entry = uses.entry(key).or_insert((0, 0));
        entry.0 += count;
        entry.1 = entry.1.max(last_seen);
    }
    let mut uses: Vec<Use> = uses
        .into_iter()
        .map(
            |((client_name, client_version, operation_name, operation_hash), (uses, last_seen))| {
                Use {
                    client_name,
                    client_version,
                    operation_name,
                    operation_hash,
                    uses,
                    last_seen,
                }
            },
        )
        .collect();
    uses.sort_by(|a, b| {
        b.uses
            .cmp(&a.uses)
            .then_with(|| a.client_name.cmp(&b.client_name))
    });
    Ok(uses)
}
