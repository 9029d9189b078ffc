//! The Redis connection that the rate limiter and the persisted queries share: it reconnects by
//! itself, every call has a short deadline, and callers fall back to in-process state when it fails.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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
}

/// A shared, reconnecting Redis connection with a key prefix and a per-call deadline.
#[derive(Clone)]
pub struct RedisClient {
    manager: ConnectionManager,
    prefix: Arc<str>,
    timeout: Duration,
    reachable: Arc<AtomicBool>,
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
            reachable: Arc::new(AtomicBool::new(true)),
        })
    }

    /// `key` under this deployment's prefix.
    pub fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Runs `call` on the connection within the deadline; logs when Redis stops or starts answering.
    pub async fn run<T, F, Fut>(&self, call: F) -> Result<T, RedisError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let result = match tokio::time::timeout(self.timeout, call(self.manager.clone())).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(RedisError::Redis(err)),
            Err(_) => Err(RedisError::Timeout(self.timeout)),
        };
        let reachable = result.is_ok();
        if self.reachable.swap(reachable, Ordering::Relaxed) != reachable {
            match &result {
                Ok(_) => tracing::info!("redis answers again"),
                Err(err) => {
                    tracing::warn!(error = %err, "redis unavailable: using in-process state")
                }
            }
        }
        result
    }

    /// Whether Redis answers a PING.
    pub async fn ping(&self) -> bool {
        self.run(|mut connection| async move {
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
        })
        .await
        .is_ok()
    }
}
