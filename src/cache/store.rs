//! Where cached responses live: the trait both stores implement.
//!
//! Invalidation is by tags: every entry records the tags its response read; invalidating a tag
//! makes every entry that recorded it stale at once, wherever it is read. A global generation,
//! moved by every invalidation, lets a response computed while a write happened be dropped instead
//! of stored.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::CachedResponse;
use crate::redis_client::RedisError;

/// A store that cannot answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis failed, timed out, or its circuit is open.
    #[error(transparent)]
    Redis(#[from] RedisError),
}

/// A stored response found, with the life it has left when the store knows it.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The response.
    pub response: Arc<CachedResponse>,
    /// How long it stays stored.
    pub ttl: Option<Duration>,
}

/// A response cache store.
pub trait CacheStore: Send + Sync {
    /// Whether other instances share it (then each instance keeps a copy of what it reads, valid
    /// while the global generation has not moved).
    fn shared(&self) -> bool {
        false
    }

    /// The current global generation.
    fn generation(&self) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// The response under `key`, when it has not expired and none of its tags changed since.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Hit>, StoreError>>;

    /// Stores `response` under `key` for `ttl`, depending on `tags`, unless the generation moved
    /// past `generation` (a write happened meanwhile); whether it was stored.
    fn put<'a>(
        &'a self,
        key: &'a str,
        generation: u64,
        ttl: Duration,
        tags: &'a [String],
        response: Arc<CachedResponse>,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Makes every entry that depends on one of `tags` stale, and moves the generation.
    fn invalidate<'a>(&'a self, tags: &'a [String]) -> BoxFuture<'a, Result<(), StoreError>>;
}
