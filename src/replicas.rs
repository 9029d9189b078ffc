//! Read replicas: a pool per PostgreSQL streaming replica, each one's replay position polled in
//! the background, and the rule that sends a query to a replica only when that is safe:
//!
//! - the replica answers, and lags at most `CONDUIT_REPLICA_MAX_LAG_MS` behind the primary;
//! - it has replayed every write of the viewer (read-your-writes): after a mutation commits, the
//!   instance records the primary's WAL position (`pg_current_wal_lsn()`) for that viewer, in Redis
//!   when configured (so every instance knows it) or in process;
//! - otherwise the query goes to the primary (a fallback, counted).
//!
//! The response cache stays correct: the position of the latest write anywhere is recorded before
//! its invalidation, and an answer read from a replica that had not replayed it is not stored.
//!
//! Hand-written: SeaORM and sqlx have no notion of replicas or replay positions.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement};

use crate::db::{self, StatementCounter};
use crate::metrics::Metrics;
use crate::redis_client::RedisClient;

/// How often the replay positions are read.
const POLL_EVERY: Duration = Duration::from_millis(100);
/// How long one position read may take before the replica counts as down.
const POLL_DEADLINE: Duration = Duration::from_millis(500);
/// How long a viewer's write position is kept: far longer than any replica allowed to serve lags.
const WRITE_POSITION_TTL: Duration = Duration::from_secs(60);

/// A WAL position (`16/B374D848`) as a number.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (high, low) = text.trim().split_once('/')?;
    Some((u64::from_str_radix(high, 16).ok()? << 32) | u64::from_str_radix(low, 16).ok()?)
}

/// One replica and what the last poll found.
struct Replica {
    label: String,
    db: DatabaseConnection,
    replayed: AtomicU64,
    lag_ms: AtomicU64,
    healthy: AtomicBool,
}

/// Where one query reads.
#[derive(Clone)]
pub struct Route {
    /// The connection to read on.
    pub db: DatabaseConnection,
    /// The replica chosen (its index), or `None` for the primary.
    replica: Option<usize>,
    /// The replica's replay position when it was chosen.
    replayed: u64,
}

impl Route {
    /// Whether the read goes to a replica.
    pub fn on_replica(&self) -> bool {
        self.replica.is_some()
    }
}

/// The viewers' write positions and the latest write's: in Redis (shared by the instances) or in
/// process.
enum WritePositions {
    Local {
        viewers: moka::sync::Cache<i64, u64>,
        last: AtomicU64,
    },
    Shared {
        redis: RedisClient,
        local_last: AtomicU64,
    },
}

/// Raises a key to a position, never lowers it.
const RAISE: &str = r"
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return 1";

/// The position stored in Redis under `key` (0 when none); `Err` when Redis did not answer.
async fn shared_position(redis: &RedisClient, key: &str) -> Result<u64, ()> {
    let key = redis.key(key);
    redis
        .run("lsn", |mut connection| async move {
            redis::cmd("GET")
                .arg(&key)
                .query_async::<Option<u64>>(&mut connection)
                .await
        })
        .await
        .map(Option::unwrap_or_default)
        .map_err(|_| ())
}

impl WritePositions {
    async fn viewer(&self, user_id: i64) -> Result<u64, ()> {
        match self {
            Self::Local { viewers, .. } => Ok(viewers.get(&user_id).unwrap_or(0)),
            Self::Shared { redis, .. } => {
                shared_position(redis, &format!("lsn:user:{user_id}")).await
            }
        }
    }

    async fn last(&self) -> Result<u64, ()> {
        match self {
            Self::Local { last, .. } => Ok(last.load(Ordering::Acquire)),
            Self::Shared { redis, local_last } => Ok(shared_position(redis, "lsn:last")
                .await?
                .max(local_last.load(Ordering::Acquire))),
        }
    }

    async fn record(&self, user_id: Option<i64>, position: u64) -> Result<(), ()> {
        match self {
            Self::Local { viewers, last } => {
                last.fetch_max(position, Ordering::AcqRel);
                if let Some(user_id) = user_id {
                    let current = viewers.get(&user_id).unwrap_or(0);
                    viewers.insert(user_id, current.max(position));
                }
                Ok(())
            }
            Self::Shared { redis, local_last } => {
                local_last.fetch_max(position, Ordering::AcqRel);
                let mut keys = vec![redis.key("lsn:last")];
                if let Some(user_id) = user_id {
                    keys.push(redis.key(&format!("lsn:user:{user_id}")));
                }
                for key in keys {
                    redis
                        .run("lsn", |mut connection| async move {
                            redis::Script::new(RAISE)
                                .key(key)
                                .arg(position)
                                .arg(WRITE_POSITION_TTL.as_secs())
                                .invoke_async::<i64>(&mut connection)
                                .await
                        })
                        .await
                        .map_err(|_| ())?;
                }
                Ok(())
            }
        }
    }
}

/// The replicas, and the rule that picks one.
pub struct Replicas {
    primary: DatabaseConnection,
    replicas: Vec<Replica>,
    max_lag_ms: u64,
    next: AtomicUsize,
    primary_position: AtomicU64,
    /// Whether the primary answered the last poll.
    primary_up: AtomicBool,
    writes: WritePositions,
    metrics: Arc<Metrics>,
}

impl Replicas {
    /// Pools for `urls` (connected lazily: a replica that is down does not stop the start), read
    /// beside `primary`; write positions in `redis` when given.
    pub async fn new(
        primary: DatabaseConnection,
        urls: &[String],
        max_lag: Duration,
        max_connections: u32,
        counter: StatementCounter,
        redis: Option<RedisClient>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, DbErr> {
        let mut replicas = Vec::with_capacity(urls.len());
        for url in urls {
            replicas.push(Replica {
                label: label_of(url),
                db: db::connect_lazy(url, max_connections, counter.clone()).await?,
                replayed: AtomicU64::new(0),
                lag_ms: AtomicU64::new(u64::MAX),
                healthy: AtomicBool::new(false),
            });
        }
        let writes = match redis {
            Some(redis) => WritePositions::Shared {
                redis,
                local_last: AtomicU64::new(0),
            },
            None => WritePositions::Local {
                viewers: moka::sync::Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(WRITE_POSITION_TTL)
                    .build(),
                last: AtomicU64::new(0),
            },
        };
        Ok(Self {
            primary,
            replicas,
            max_lag_ms: u64::try_from(max_lag.as_millis()).unwrap_or(u64::MAX),
            next: AtomicUsize::new(0),
            primary_position: AtomicU64::new(0),
            primary_up: AtomicBool::new(true),
            writes,
            metrics,
        })
    }

    /// Starts polling the positions in the background; it stops with the last reference.
    pub fn start(self: &Arc<Self>) {
        let replicas = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(POLL_EVERY);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(replicas) = replicas.upgrade() else {
                    return;
                };
                replicas.poll().await;
            }
        });
    }

    /// Reads the primary's position and each replica's replay position and lag.
    async fn poll(&self) {
        let primary_read = tokio::time::timeout(
            POLL_DEADLINE,
            position(&self.primary, "pg_current_wal_lsn()"),
        )
        .await;
        if let Ok(Ok(Some(position))) = primary_read {
            self.primary_position.store(position, Ordering::Release);
            self.primary_up.store(true, Ordering::Release);
            self.metrics.primary_up(true);
        } else {
            // Read-only: reads go on to the replicas, measured against the last known position.
            self.primary_up.store(false, Ordering::Release);
            self.metrics.primary_up(false);
        }
        let primary = self.primary_position.load(Ordering::Acquire);
        for replica in &self.replicas {
            let read = tokio::time::timeout(POLL_DEADLINE, replay_state(&replica.db)).await;
            match read {
                Ok(Ok((replayed, idle_ms))) => {
                    let was_healthy = replica.healthy.swap(true, Ordering::AcqRel);
                    if !was_healthy {
                        tracing::info!(replica = %replica.label, "replica answers: reads may go to it");
                    }
                    replica.replayed.store(replayed, Ordering::Release);
                    // Caught up with the primary: no lag, however long ago its last write was.
                    let lag = if replayed >= primary { 0 } else { idle_ms };
                    replica.lag_ms.store(lag, Ordering::Release);
                    self.metrics
                        .replica_lag(&replica.label, lag as f64 / 1000.0);
                }
                _ => {
                    if replica.healthy.swap(false, Ordering::AcqRel) {
                        tracing::warn!(replica = %replica.label, "replica does not answer: reads go elsewhere");
                    }
                }
            }
        }
    }

    /// Where a query of `viewer` reads: a healthy replica, within the lag, that has replayed the
    /// viewer's writes; the primary otherwise.
    pub async fn route(&self, viewer: Option<i64>) -> Route {
        let needed = match viewer {
            None => Ok(0),
            Some(user_id) => self.writes.viewer(user_id).await,
        };
        let primary = Route {
            db: self.primary.clone(),
            replica: None,
            replayed: 0,
        };
        let Ok(needed) = needed else {
            self.metrics
                .replica_read("primary", Some("positions_unknown"));
            return primary;
        };
        let seen: Vec<Seen> = self
            .replicas
            .iter()
            .map(|replica| Seen {
                healthy: replica.healthy.load(Ordering::Acquire),
                lag_ms: replica.lag_ms.load(Ordering::Acquire),
                replayed: replica.replayed.load(Ordering::Acquire),
            })
            .collect();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        match choose(&seen, needed, self.max_lag_ms, start) {
            Ok(index) => {
                self.metrics.replica_read("replica", None);
                Route {
                    db: self.replicas[index].db.clone(),
                    replica: Some(index),
                    replayed: seen[index].replayed,
                }
            }
            Err(reason) => {
                self.metrics.replica_read("primary", Some(reason));
                primary
            }
        }
    }

    /// Whether the primary answered the last poll (every 100 ms or so).
    pub fn primary_answers(&self) -> bool {
        self.primary_up.load(Ordering::Acquire)
    }

    /// A replica that answered the last poll, for reads that cannot wait for the primary; the
    /// least lagging one.
    pub fn standby(&self) -> Option<DatabaseConnection> {
        self.replicas
            .iter()
            .filter(|replica| replica.healthy.load(Ordering::Acquire))
            .min_by_key(|replica| replica.lag_ms.load(Ordering::Acquire))
            .map(|replica| replica.db.clone())
    }

    /// A read on `route` failed: its replica counts as down until the next poll finds it.
    pub fn failed(&self, route: &Route) {
        if let Some(replica) = route.replica.and_then(|index| self.replicas.get(index)) {
            replica.healthy.store(false, Ordering::Release);
            self.metrics.replica_read("primary", Some("read_failed"));
        }
    }

    /// Records, after a mutation of `viewer` committed, the primary's position: the viewer's
    /// next reads wait for it, and answers read before it are not cached. Called before the
    /// mutation's cache invalidation.
    pub async fn written(&self, viewer: Option<i64>) {
        match position(&self.primary, "pg_current_wal_lsn()").await {
            Ok(Some(position)) => {
                if self.writes.record(viewer, position).await.is_err() {
                    tracing::warn!(
                        "write position not recorded: reads stay on the primary for a while"
                    );
                }
            }
            _ => tracing::warn!("the primary's write position could not be read"),
        }
    }

    /// Whether an answer read on `route` may be stored in the response cache: read on the
    /// primary, or on a replica that had replayed the latest write anywhere.
    pub async fn storable(&self, route: &Route) -> bool {
        if !route.on_replica() {
            return true;
        }
        match self.writes.last().await {
            Ok(last) => route.replayed >= last,
            Err(()) => false,
        }
    }

    /// Each replica's label, whether it answers and its lag in milliseconds (for readiness).
    pub fn states(&self) -> Vec<(String, bool, u64)> {
        self.replicas
            .iter()
            .map(|replica| {
                (
                    replica.label.clone(),
                    replica.healthy.load(Ordering::Acquire),
                    replica.lag_ms.load(Ordering::Acquire),
                )
            })
            .collect()
    }
}

/// What the last poll found of one replica.
#[derive(Debug, Clone, Copy)]
struct Seen {
    healthy: bool,
    lag_ms: u64,
    replayed: u64,
}

/// The replica a read that needs position `needed` goes to, trying them in turn from `start`; or
/// why none may serve it.
fn choose(
    seen: &[Seen],
    needed: u64,
    max_lag_ms: u64,
    start: usize,
) -> Result<usize, &'static str> {
    let mut reason = "no_replica";
    for offset in 0..seen.len() {
        let index = (start + offset) % seen.len();
        let replica = seen[index];
        if !replica.healthy {
            reason = "replica_down";
        } else if replica.lag_ms > max_lag_ms {
            reason = "lagging";
        } else if replica.replayed < needed {
            reason = "behind_viewer";
        } else {
            return Ok(index);
        }
    }
    Err(reason)
}

/// `host:port/db` of a URL, without credentials.
fn label_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit('@').next().unwrap_or(rest);
    rest.split('?').next().unwrap_or(rest).to_owned()
}

/// The WAL position `expression` gives on `db`.
async fn position(db: &DatabaseConnection, expression: &str) -> Result<Option<u64>, DbErr> {
    let statement = Statement::from_string(
        db.get_database_backend(),
        format!("SELECT {expression}::text AS position"),
    );
    let row = db.query_one_raw(statement).await?;
    Ok(row
        .and_then(|row| row.try_get::<Option<String>>("", "position").ok().flatten())
        .and_then(|text| parse_lsn(&text)))
}

/// A replica's replay position and the milliseconds since it last replayed a transaction.
async fn replay_state(db: &DatabaseConnection) -> Result<(u64, u64), DbErr> {
    let statement = Statement::from_string(
        db.get_database_backend(),
        "SELECT pg_last_wal_replay_lsn()::text AS position, \
         COALESCE(EXTRACT(EPOCH FROM (now() - pg_last_xact_replay_timestamp())) * 1000, 0)::float8 AS idle_ms",
    );
    let row = db
        .query_one_raw(statement)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("replay position".into()))?;
    let position: Option<String> = row.try_get("", "position")?;
    let idle_ms: f64 = row.try_get("", "idle_ms")?;
    let position = position
        .as_deref()
        .and_then(parse_lsn)
        .ok_or_else(|| DbErr::Custom("not a replica".into()))?;
    Ok((position, idle_ms.max(0.0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_read_as_numbers_in_order() {
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("16/B374D848"), Some((0x16 << 32) | 0xB374_D848));
        assert!(parse_lsn("1/FFFFFFFF") < parse_lsn("2/0"));
        assert_eq!(parse_lsn("nonsense"), None);
    }

    const UP: Seen = Seen {
        healthy: true,
        lag_ms: 0,
        replayed: 100,
    };

    #[test]
    fn a_read_goes_to_a_replica_only_when_it_is_up_near_and_has_the_viewers_writes() {
        assert_eq!(choose(&[UP], 100, 1000, 0), Ok(0));
        assert_eq!(choose(&[UP], 101, 1000, 0), Err("behind_viewer"));
        let down = Seen {
            healthy: false,
            ..UP
        };
        assert_eq!(choose(&[down], 0, 1000, 0), Err("replica_down"));
        let lagging = Seen { lag_ms: 1500, ..UP };
        assert_eq!(choose(&[lagging], 0, 1000, 0), Err("lagging"));
        // The first suitable one from where the turn starts; the others are skipped.
        assert_eq!(choose(&[down, UP, lagging], 50, 1000, 0), Ok(1));
        assert_eq!(choose(&[UP, UP], 0, 1000, 1), Ok(1));
        assert_eq!(choose(&[UP, UP], 0, 1000, 2), Ok(0));
        assert_eq!(choose(&[], 0, 1000, 0), Err("no_replica"));
    }

    #[test]
    fn labels_carry_no_credentials() {
        assert_eq!(
            label_of("postgres://user:secret@10.0.0.2:5432/app?sslmode=require"),
            "10.0.0.2:5432/app"
        );
    }
}
