//! The Redis connection that the rate limiter, the persisted queries and the response cache share:
//! it reconnects by itself, every call has a short deadline, a circuit breaker stops calling a
//! failing Redis for a while, and callers fall back (or go uncached) when it fails.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// Why a Redis call did not answer.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// Redis did not answer within the deadline.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis answered with an error, or the connection failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis failed repeatedly and is not called for a while.
    #[error("redis circuit open: not called until {0:?} from now")]
    CircuitOpen(Duration),
}

/// Consecutive failures that open the circuit.
const FAILURES_TO_OPEN: u32 = 3;
/// How long an open circuit stops calls before one probe is let through.
const OPEN_FOR: Duration = Duration::from_secs(2);

/// A circuit breaker: closed (calls go through), open (calls fail at once for [`OPEN_FOR`]), then
/// half-open (one probe decides).
#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
    probing: bool,
}

/// What the breaker allows now.
enum Admission {
    Call,
    Probe,
    Refuse(Duration),
}

/// Frees the half-open probe slot when a probe is dropped before it finished.
struct ProbeGuard<'a> {
    client: &'a RedisClient,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        let mut breaker = self.client.breaker();
        if breaker.probing {
            breaker.probing = false;
            tracing::info!("redis probe cancelled: the next call probes again");
        }
    }
}

/// A shared, reconnecting Redis connection with a key prefix and a per-call deadline.
#[derive(Clone)]
pub struct RedisClient {
    manager: ConnectionManager,
    prefix: Arc<str>,
    timeout: Duration,
    breaker: Arc<Mutex<Breaker>>,
    recoveries: Arc<AtomicU64>,
    durations: Option<metrics::Histogram>,
}

impl RedisClient {
    /// Prepares a connection to `url`; it is established on first use, so the server starts
    /// (and serves, without Redis) even while Redis is down.
    pub fn connect(url: &str, prefix: &str, timeout: Duration) -> Result<Self, RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout.max(Duration::from_millis(250))))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let manager = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self {
            manager,
            prefix: Arc::from(prefix),
            timeout,
            breaker: Arc::new(Mutex::new(Breaker::default())),
            recoveries: Arc::new(AtomicU64::new(0)),
            durations: None,
        })
    }

    /// The same, recording the duration of each call in `durations`.
    pub fn with_durations(mut self, durations: metrics::Histogram) -> Self {
        self.durations = Some(durations);
        self
    }

    /// `key` under this deployment's prefix.
    pub fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// How often Redis came back after the circuit opened; grows by one at each recovery.
    pub fn recoveries(&self) -> u64 {
        self.recoveries.load(Ordering::Relaxed)
    }

    /// Runs `call` on the connection within the deadline, unless the circuit is open. Three
    /// failures in a row open the circuit for two seconds; then one probe call decides whether it
    /// closes again. Every change of state is logged.
    /// `operation` names the call in its span (`cache.get`, `bucket.take`, ...).
    pub async fn run<T, F, Fut>(&self, operation: &'static str, call: F) -> Result<T, RedisError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let admission = self.admit();
        if let Admission::Refuse(wait) = admission {
            return Err(RedisError::CircuitOpen(wait));
        }
        let probe = matches!(admission, Admission::Probe);
        // A probe whose caller goes away (client gone, outer timeout) must free the probe slot,
        // or no call would ever be let through again.
        let guard = probe.then(|| ProbeGuard { client: self });
        let started = Instant::now();
        let span = crate::telemetry::sampled_span(|| {
            tracing::debug_span!(
                "redis",
                otel.name = operation,
                otel.kind = "client",
                db.system.name = "redis",
                db.operation.name = operation,
            )
        });
        let call = tracing::Instrument::instrument(call(self.manager.clone()), span);
        let result = match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(RedisError::Redis(err)),
            Err(_) => Err(RedisError::Timeout(self.timeout)),
        };
        std::mem::forget(guard);
        if let Some(durations) = &self.durations {
            durations.record(started.elapsed().as_secs_f64());
        }
        self.record(probe, result.as_ref().err());
        result
    }

    /// Whether the circuit is closed (Redis is called).
    pub fn is_available(&self) -> bool {
        self.breaker().open_until.is_none()
    }

    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn admit(&self) -> Admission {
        let mut breaker = self.breaker();
        match breaker.open_until {
            None => Admission::Call,
            Some(until) => {
                let now = Instant::now();
                if now < until || breaker.probing {
                    Admission::Refuse(until.saturating_duration_since(now))
                } else {
                    breaker.probing = true;
                    tracing::info!("redis circuit half-open: probing");
                    Admission::Probe
                }
            }
        }
    }

    fn record(&self, probe: bool, error: Option<&RedisError>) {
        let mut breaker = self.breaker();
        match error {
            None => {
                if breaker.open_until.is_some() {
                    tracing::info!("redis circuit closed: redis answers again");
                    self.recoveries.fetch_add(1, Ordering::Relaxed);
                }
                *breaker = Breaker::default();
            }
            Some(err) => {
                breaker.failures += 1;
                if probe || (breaker.open_until.is_none() && breaker.failures >= FAILURES_TO_OPEN) {
                    breaker.open_until = Some(Instant::now() + OPEN_FOR);
                    breaker.probing = false;
                    tracing::warn!(error = %err, "redis circuit open: not calling redis for {OPEN_FOR:?}");
                } else if breaker.open_until.is_none() {
                    tracing::warn!(error = %err, "redis call failed");
                }
            }
        }
    }

    /// Whether Redis answers a PING.
    pub async fn ping(&self) -> bool {
        self.run("ping", |mut connection| async move {
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
        })
        .await
        .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cancelled_probe_frees_the_probe_slot() {
        let client = RedisClient::connect("redis://127.0.0.1:1", "test:", Duration::from_secs(5))
            .expect("a lazy client");
        client.breaker().open_until = Some(Instant::now() - Duration::from_millis(1));
        let probe = client.run("test", |_| std::future::pending::<redis::RedisResult<()>>());
        assert!(
            tokio::time::timeout(Duration::from_millis(20), probe)
                .await
                .is_err(),
            "the probe hangs until it is dropped"
        );
        assert!(
            !client.breaker().probing,
            "dropping the probe freed its slot"
        );
        assert!(
            matches!(client.admit(), Admission::Probe),
            "the next call probes"
        );
    }
}
