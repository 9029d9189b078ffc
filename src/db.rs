//! Database connection (with retry and backoff), pool settings, migrations, write transactions.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DatabaseTransaction, DbErr, EntityTrait, FromQueryResult, QueryFilter, QuerySelect,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use crate::error::AppResult;

/// How long start-up waits for the database unless told otherwise (`CONDUIT_DB_CONNECT_TIMEOUT_SECS`).
pub const DEFAULT_CONNECT_WAIT: Duration = Duration::from_secs(30);

/// How long a statement waits for a pooled connection before the request fails with
/// SERVICE_UNAVAILABLE: short, so that requests fail fast while the database is down.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Counts the SQL statements the application sends, for logs and tests, and records how long
/// each took when given a histogram.
#[derive(Clone, Default)]
pub struct StatementCounter {
    count: Arc<AtomicU64>,
    durations: Option<metrics::Histogram>,
    traced: bool,
}

impl std::fmt::Debug for StatementCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatementCounter")
            .field("count", &self.get())
            .finish_non_exhaustive()
    }
}

tokio::task_local! {
    /// The statements of the request being answered on this task.
    static REQUEST_STATEMENTS: Cell<u64>;
}

impl StatementCounter {
    /// A counter that also records each statement's duration in `durations`.
    pub fn with_durations(durations: metrics::Histogram) -> Self {
        Self {
            count: Arc::default(),
            durations: Some(durations),
            traced: false,
        }
    }

    /// The same, also recording each statement as an OpenTelemetry span when `traced`.
    pub fn traced(mut self, traced: bool) -> Self {
        self.traced = traced;
        self
    }

    /// Statements sent since start-up.
    pub fn get(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn observe(&self, info: &sea_orm::metric::Info<'_>) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let _ = REQUEST_STATEMENTS.try_with(|count| count.set(count.get() + 1));
        if let Some(durations) = &self.durations {
            durations.record(info.elapsed.as_secs_f64());
        }
        if self.traced {
            statement_span(info);
        }
    }
}

/// Runs `work` and counts the SQL statements it sends on this task (a request's loaders run
/// their batches on the request's task, so they are counted too).
pub async fn counting_statements<F: Future>(work: F) -> (F::Output, u64) {
    REQUEST_STATEMENTS
        .scope(Cell::new(0), async {
            let output = work.await;
            (output, REQUEST_STATEMENTS.with(Cell::get))
        })
        .await
}

/// `url` as the pool uses it: a PostgreSQL server on this machine (loopback) is reached without
/// TLS unless the URL asks for it (`sslmode=...`), since encrypting traffic that never leaves the
/// host only costs CPU on both ends; any other server keeps the driver's default (`prefer`).
pub fn effective_url(url: &str) -> String {
    let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    else {
        return url.to_owned();
    };
    if url.contains("sslmode=") {
        return url.to_owned();
    }
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = if let Some(bracketed) = host_port.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    if matches!(host, "localhost" | "127.0.0.1" | "::1") {
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}sslmode=disable")
    } else {
        url.to_owned()
    }
}

/// How long a pooled connection may sit idle before it is pinged when handed out.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

/// The pool settings every connection shares.
fn options(url: &str, max_connections: u32) -> ConnectOptions {
    let mut options = ConnectOptions::new(effective_url(url));
    options
        .max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(2))
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .idle_timeout(Duration::from_secs(300))
        // A connection used within the last second is not pinged again before its next statement
        // (the ping would be a round trip per statement); one idle for longer is. A statement
        // whose connection broke meanwhile is a read retried once, or a mutation answered 503.
        .test_before_acquire_if_idle_for(IDLE_BEFORE_PING)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|opts| {
            opts.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        });
    options
}

/// A pool for `url` that connects on first use (a replica that is down does not stop the start),
/// counting statements into `counter`.
pub async fn connect_lazy(
    url: &str,
    max_connections: u32,
    counter: StatementCounter,
) -> Result<DatabaseConnection, DbErr> {
    let mut options = options(url, max_connections);
    options.min_connections(0).connect_lazy(true);
    let mut db = Database::connect(options).await?;
    db.set_metric_callback(move |info| counter.observe(info));
    Ok(db)
}

/// Connects to `url`, retrying with exponential backoff (each attempt logged) for at most
/// [`DEFAULT_CONNECT_WAIT`], and counts statements into `counter`.
pub async fn connect(
    url: &str,
    max_connections: u32,
    counter: StatementCounter,
) -> Result<DatabaseConnection, DbErr> {
    connect_within(url, max_connections, counter, DEFAULT_CONNECT_WAIT).await
}

/// Like [`connect`], waiting for the database for at most `wait`.
pub async fn connect_within(
    url: &str,
    max_connections: u32,
    counter: StatementCounter,
    wait: Duration,
) -> Result<DatabaseConnection, DbErr> {
    let options = options(url, max_connections);
    let deadline = tokio::time::Instant::now() + wait;
    let mut delay = Duration::from_millis(250);
    let mut attempt: u32 = 1;
    let mut db = loop {
        match Database::connect(options.clone()).await {
            Ok(db) => break db,
            Err(err) if tokio::time::Instant::now() + delay < deadline => {
                tracing::warn!(attempt, error = %err, retry_in_ms = delay.as_millis() as u64, "database not reachable yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                attempt += 1;
            }
            Err(err) => return Err(err),
        }
    };
    db.set_metric_callback(move |info| counter.observe(info));
    Ok(db)
}

/// Records one finished statement as an OpenTelemetry span under the current span, when that one
/// is sampled: its text has placeholders, never the values bound to them. The statement has run
/// by now (SeaORM reports it afterwards), so the span is dated back by its duration.
fn statement_span(info: &sea_orm::metric::Info<'_>) {
    use opentelemetry::KeyValue;
    use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _};

    // The OpenTelemetry context of the innermost traced span entered now (the tracing layer
    // activates it on entry): the resolver or loader batch that sent the statement.
    let parent = opentelemetry::Context::current();
    if !parent.span().span_context().is_sampled() {
        return;
    }
    let sql = info.statement.sql.as_str();
    let system = match info.statement.db_backend {
        sea_orm::DbBackend::Postgres => "postgresql",
        sea_orm::DbBackend::Sqlite => "sqlite",
        _ => "other_sql",
    };
    let operation = sql
        .split_whitespace()
        .next()
        .unwrap_or("SQL")
        .to_ascii_uppercase();
    let end = std::time::SystemTime::now();
    let start = end.checked_sub(info.elapsed).unwrap_or(end);
    let tracer = opentelemetry::global::tracer("conduit");
    let mut span = tracer
        .span_builder(operation.clone())
        .with_kind(SpanKind::Client)
        .with_start_time(start)
        .with_attributes([
            KeyValue::new("db.system.name", system),
            KeyValue::new("db.operation.name", operation),
            KeyValue::new("db.query.text", sql.to_owned()),
        ])
        .start_with_context(&tracer, &parent);
    if info.failed {
        span.set_status(Status::error("statement failed"));
    }
    span.end_with_timestamp(end);
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// Begins the transaction of one mutation. On SQLite it takes the write lock at once
/// (`BEGIN IMMEDIATE`), so concurrent writers queue instead of failing on a lock upgrade.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    })
    .await
}

/// Most runs of one mutation's transaction when it keeps losing races.
const TRANSACTION_ATTEMPTS: u32 = 4;

/// Runs `transaction` (which begins, does and commits one transaction) again when it fails with a
/// serialization failure or a deadlock, at most [`TRANSACTION_ATTEMPTS`] times in all, after a
/// short random pause that grows with each attempt (so that the racers do not meet again).
/// Any other outcome is returned as it is.
pub async fn retrying<T, F, Fut>(mut transaction: F) -> AppResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = AppResult<T>>,
{
    let mut attempt = 1;
    loop {
        match transaction().await {
            Err(err) if err.is_transaction_conflict() && attempt < TRANSACTION_ATTEMPTS => {
                let pause = retry_pause(attempt);
                tracing::info!(
                    attempt,
                    pause_ms = pause.as_millis() as u64,
                    "transaction lost a race: running it again"
                );
                tokio::time::sleep(pause).await;
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

/// A random pause before attempt `attempt + 1`: up to 10 ms, 20 ms, 40 ms, ...
fn retry_pause(attempt: u32) -> Duration {
    let ceiling_ms = 10u64 << (attempt - 1).min(6);
    Duration::from_millis(rand::random_range(1..=ceiling_ms))
}

/// The current time, truncated to milliseconds: the precision the API shows and cursors hold.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    let now = chrono::Utc::now();
    chrono::DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

#[derive(Debug, FromQueryResult)]
struct KeyCount {
    key: i64,
    count: i64,
}

/// How many rows of `E` have each of `keys` in `column` (absent from the map: none), in one statement.
pub async fn count_by<E: EntityTrait>(
    db: &impl ConnectionTrait,
    column: E::Column,
    keys: &[i64],
) -> AppResult<HashMap<i64, i64>> {
    let rows = E::find()
        .select_only()
        .column_as(column, "key")
        .column_as(column.count(), "count")
        .filter(column.is_in(keys.iter().copied()))
        .group_by(column)
        .into_model::<KeyCount>()
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|row| (row.key, row.count)).collect())
}

#[cfg(test)]
mod tests {
    use super::{TRANSACTION_ATTEMPTS, effective_url, retrying};
    use crate::error::AppError;

    /// A serialization failure as PostgreSQL reports it.
    fn serialization_failure() -> AppError {
        #[derive(Debug)]
        struct Serialization;
        impl std::fmt::Display for Serialization {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("could not serialize access")
            }
        }
        impl std::error::Error for Serialization {}
        impl sea_orm::sqlx::error::DatabaseError for Serialization {
            fn message(&self) -> &str {
                "could not serialize access due to concurrent update"
            }
            fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
                Some("40001".into())
            }
            fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
                self
            }
            fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
                self
            }
            fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
                self
            }
            fn kind(&self) -> sea_orm::sqlx::error::ErrorKind {
                sea_orm::sqlx::error::ErrorKind::Other
            }
        }
        AppError::from(sea_orm::DbErr::Exec(sea_orm::RuntimeErr::SqlxError(
            std::sync::Arc::new(sea_orm::sqlx::Error::Database(Box::new(Serialization))),
        )))
    }

    #[tokio::test]
    async fn a_transaction_that_lost_a_race_runs_again_a_bounded_number_of_times() {
        let mut runs = 0;
        let outcome = retrying(|| {
            runs += 1;
            let result = if runs < 3 {
                Err(serialization_failure())
            } else {
                Ok(runs)
            };
            async move { result }
        })
        .await;
        assert_eq!(outcome.ok(), Some(3));

        let mut runs = 0;
        let outcome: Result<(), AppError> = retrying(|| {
            runs += 1;
            async { Err(serialization_failure()) }
        })
        .await;
        assert!(outcome.is_err_and(|err| err.is_transaction_conflict()));
        assert_eq!(runs, TRANSACTION_ATTEMPTS);

        // Other errors are not run again.
        let mut runs = 0;
        let outcome: Result<(), AppError> = retrying(|| {
            runs += 1;
            async { Err(AppError::NotFound("gone".into())) }
        })
        .await;
        assert!(outcome.is_err());
        assert_eq!(runs, 1);
    }

    #[test]
    fn loopback_postgres_goes_without_tls_unless_asked() {
        assert_eq!(
            effective_url("postgres://root@127.0.0.1:5432/db"),
            "postgres://root@127.0.0.1:5432/db?sslmode=disable"
        );
        assert_eq!(
            effective_url("postgresql://u:p@localhost/db?application_name=x"),
            "postgresql://u:p@localhost/db?application_name=x&sslmode=disable"
        );
        assert_eq!(
            effective_url("postgres://[::1]:5432/db"),
            "postgres://[::1]:5432/db?sslmode=disable"
        );
        for kept in [
            "postgres://db.internal:5432/db",
            "postgres://127.0.0.1/db?sslmode=require",
            "sqlite://conduit.db",
        ] {
            assert_eq!(effective_url(kept), kept);
        }
    }
}
