//! Schema usage: which client (name and version) used which schema coordinate in which
//! operation, counted per hour in the application database (`schema_usage`), so that a schema
//! change can be weighed against real traffic (`conduit schema check`, `conduit schema usage`).
//!
//! Recording stays off the request's critical path: an executed operation adds one count to an
//! aggregate in memory (one lock, one map entry per operation, client and hour); a background
//! task writes the aggregate every `CONDUIT_USAGE_FLUSH_SECS` with one upsert per chunk of rows
//! (`uses = uses + excluded.uses`), so any number of instances share the table, and once more
//! when the server stops. A crash loses at most one flush interval. The aggregate holds at most
//! [`MAX_PENDING`] entries between two flushes; distinct clients are bounded by
//! `CONDUIT_USAGE_MAX_CLIENTS` per instance (later ones count as `other`).

pub mod client;
pub mod deprecation;
pub mod store;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sea_orm::{DatabaseConnection, DbErr};

pub use self::client::ClientApp;
pub use self::deprecation::DeprecationDates;
use crate::config::UsageSettings;

/// Most (operation, client, hour) entries aggregated between two flushes; past it, uses are
/// dropped (and logged) until the next flush.
pub const MAX_PENDING: usize = 20_000;

/// How often old records are deleted.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// What one operation uses of the schema, worked out once per document and variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationUsage {
    /// A hash of its normalised document and name.
    pub signature: String,
    /// Its name (empty when anonymous).
    pub name: String,
    /// The schema coordinates it uses, each once, sorted.
    pub coordinates: Vec<String>,
}

impl OperationUsage {
    /// Bytes it holds (for the document cache's weights).
    pub fn heap_size(&self) -> usize {
        self.signature.len()
            + self.name.len()
            + self
                .coordinates
                .iter()
                .map(|coordinate| coordinate.len() + std::mem::size_of::<String>())
                .sum::<usize>()
    }
}

/// An operation's usage, compared by identity (the same prepared operation).
#[derive(Debug, Clone)]
struct ByIdentity(Arc<OperationUsage>);

impl PartialEq for ByIdentity {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ByIdentity {}

impl std::hash::Hash for ByIdentity {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::ptr::hash(Arc::as_ptr(&self.0), state);
    }
}

/// Uses not yet written.
#[derive(Debug, Default)]
struct Aggregate {
    pending: HashMap<(i64, ByIdentity, ClientApp), (i64, i64)>,
    dropped: u64,
}

/// The usage recorder of one instance.
pub struct Usage {
    db: DatabaseConnection,
    retention_days: u32,
    max_clients: usize,
    clients: Mutex<HashSet<ClientApp>>,
    aggregate: Mutex<Aggregate>,
    last_retention: Mutex<Option<Instant>>,
}

impl Usage {
    /// A recorder writing to `db`, the clients recorded lately already counted against the bound.
    pub async fn new(db: DatabaseConnection, settings: &UsageSettings) -> Result<Self, DbErr> {
        let max_clients = settings.usage_max_clients as usize;
        let since = now_secs() - i64::from(settings.usage_retention_days) * 86_400;
        let known = store::recent_clients(&db, since, max_clients as u64).await?;
        Ok(Self {
            db,
            retention_days: settings.usage_retention_days,
            max_clients,
            clients: Mutex::new(known.into_iter().collect()),
            aggregate: Mutex::new(Aggregate::default()),
            last_retention: Mutex::new(None),
        })
    }

    /// The client as recorded: itself when known or while there is room, `other` past the bound
    /// of distinct clients. Metrics label by the same names, so they stay bounded too.
    pub fn admit(&self, app: &ClientApp) -> ClientApp {
        if app.is_unknown() {
            return app.clone();
        }
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if clients.contains(app) {
            return app.clone();
        }
        if clients.len() < self.max_clients {
            clients.insert(app.clone());
            return app.clone();
        }
        ClientApp::other()
    }

    /// Counts one execution of `operation` by `app` (already admitted).
    pub fn record(&self, operation: &Arc<OperationUsage>, app: &ClientApp) {
        let now = now_secs();
        let key = (
            now - now.rem_euclid(3600),
            ByIdentity(Arc::clone(operation)),
            app.clone(),
        );
        let mut aggregate = self
            .aggregate
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let full = aggregate.pending.len() >= MAX_PENDING;
        match aggregate.pending.get_mut(&key) {
            Some((uses, last_seen)) => {
                *uses += 1;
                *last_seen = now;
            }
            None if full => aggregate.dropped += 1,
            None => {
                aggregate.pending.insert(key, (1, now));
            }
        }
    }

    /// Writes what was aggregated (and, once an hour, deletes what is past the retention); the
    /// rows written. On failure the uses are kept for the next flush.
    pub async fn flush(&self) -> Result<usize, DbErr> {
        let (pending, dropped) = {
            let mut aggregate = self
                .aggregate
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            (
                std::mem::take(&mut aggregate.pending),
                std::mem::take(&mut aggregate.dropped),
            )
        };
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "schema usage: the aggregate was full; uses dropped until this flush"
            );
        }
        let mut rows: HashMap<store::RowKey, (i64, i64)> = HashMap::new();
        for ((period, operation, app), (uses, last_seen)) in &pending {
            for coordinate in &operation.0.coordinates {
                let key = store::RowKey {
                    coordinate: coordinate.clone(),
                    period_start: *period,
                    client_name: app.name.to_string(),
                    client_version: app.version.to_string(),
                    operation_hash: operation.0.signature.clone(),
                    operation_name: operation.0.name.clone(),
                };
                let row = rows.entry(key).or_insert((0, 0));
                row.0 += uses;
                row.1 = row.1.max(*last_seen);
            }
        }
        let written = rows.len();
        if let Err(err) = store::add(&self.db, rows).await {
            let mut aggregate = self
                .aggregate
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for (key, (uses, last_seen)) in pending {
                if aggregate.pending.len() >= MAX_PENDING {
                    break;
                }
                let entry = aggregate.pending.entry(key).or_insert((0, 0));
                entry.0 += uses;
                entry.1 = entry.1.max(last_seen);
            }
            return Err(err);
        }
        let due = {
            let mut last = self
                .last_retention
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let due = last.is_none_or(|at| at.elapsed() >= RETENTION_EVERY);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if due {
            let cutoff = now_secs() - i64::from(self.retention_days) * 86_400;
            store::delete_before(&self.db, cutoff).await?;
        }
        Ok(written)
    }

    /// Flushes every `interval` until the task is dropped, logging failures.
    pub async fn flush_every(self: Arc<Self>, interval: Duration) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            if let Err(err) = self.flush().await {
                tracing::warn!(error = %err, "schema usage not written; kept for the next flush");
            }
        }
    }
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}
