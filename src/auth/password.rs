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

/// Hashes and verifies passwords.
#[derive(Debug, Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
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
            dummy_hash: dummy_hash.into(),
        })
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

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> AppResult<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|err| AppError::internal(HashingError(err.to_string())))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|err| AppError::internal(HashingError(err.to_string())))
    }
}

/// Hashes with a fresh random salt.
fn hash_blocking(password: &str) -> AppResult<String> {
    argon2()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|err| AppError::internal(HashingError(err.to_string())))
}
