//! Password hashing with argon2id, off the async runtime and with bounded concurrency.

use std::sync::Arc;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::error::{AppError, AppResult};

/// OWASP's minimum for argon2id: 19 MiB of memory, 2 iterations, 1 lane.
fn argon2() -> Argon2<'static> {
    // The constants are valid argon2 parameters, so this cannot fail.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A failure of the hashing machinery (never a wrong password).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
struct HashingError(String);

/// Where hashing reports its queue and durations.
#[derive(Clone)]
pub struct HashMetrics {
    /// Seconds per hash, queueing included.
    pub durations: metrics::Histogram,
    /// Hashes waiting for the pool.
    pub queue: metrics::Gauge,
}

/// Hashes and verifies passwords.
#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    metrics: Option<HashMetrics>,
    /// A hash of a random password, verified against when an account does not exist,
    /// so that an unknown email costs as much time as a wrong password.
    dummy_hash: Arc<str>,
}

impl Passwords {
    /// A hasher that runs at most `concurrency` hashes at once.
    pub fn new(concurrency: usize) -> AppResult<Self> {
        let random: [u8; 16] = rand::random();
        let dummy_hash = hash_blocking(&format!("{random:?}"))?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            metrics: None,
            dummy_hash: dummy_hash.into(),
        })
    }

    /// The same, reporting to `metrics`.
    pub fn with_metrics(mut self, metrics: HashMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The PHC string of a new argon2id hash of `password`.
    pub async fn hash(&self, password: String) -> AppResult<String> {
        self.run(move || hash_blocking(&password)).await?
    }

    /// Whether `password` matches `hash`; with no hash, verifies against a dummy and answers false.
    pub async fn verify(&self, password: String, hash: Option<String>) -> AppResult<bool> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.to_string());
        let matches = self
            .run(move || {
                let parsed = PasswordHash::new(&hash)
                    .map_err(|err| AppError::internal(HashingError(err.to_string())))?;
                Ok::<_, AppError>(
                    argon2()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok(),
                )
            })
            .await??;
        Ok(known && matches)
    }

    #[tracing::instrument(name = "argon2", level = "debug", skip_all)]
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> AppResult<T> {
        let started = std::time::Instant::now();
        if let Some(metrics) = &self.metrics {
            metrics.queue.increment(1.0);
        }
        let permit = self.permits.acquire().await;
        if let Some(metrics) = &self.metrics {
            metrics.queue.decrement(1.0);
        }
        let _permit = permit.map_err(|err| AppError::internal(HashingError(err.to_string())))?;
        let done = tokio::task::spawn_blocking(work)
            .await
            .map_err(|err| AppError::internal(HashingError(err.to_string())));
        if let Some(metrics) = &self.metrics {
            metrics.durations.record(started.elapsed().as_secs_f64());
        }
        done
    }
}

/// Hashes with a fresh random salt.
fn hash_blocking(password: &str) -> AppResult<String> {
    argon2()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|err| AppError::internal(HashingError(err.to_string())))
}
