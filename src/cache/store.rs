//! Where cached responses live: the trait, and the in-process store.
//!
//! Invalidation by tag versions: every entry records the version of each tag it depends on when it
//! was stored; invalidating a tag increments its version, so every entry that recorded the old one
//! stops matching at once, wherever it is read. A global generation, incremented by every
//! invalidation, lets a response computed while a write happened be dropped instead of stored.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use crate::redis_client::RedisError;

/// A store that cannot answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis failed, timed out, or its circuit is open.
    #[error(transparent)]
    Redis(#[from] RedisError),
}

/// A response cache store.
pub trait CacheStore: Send + Sync {
    /// The current global generation.
    fn generation(&self) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// The payload under `key`, when it has not expired and none of its tags changed since.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>>;

    /// Stores `payload` under `key` for `ttl`, recording the current versions of `tags`, unless the
    /// generation moved past `generation` (a write happened meanwhile); whether it was stored.
    fn put<'a>(
        &'a self,
        key: &'a str,
        generation: u64,
        ttl: Duration,
        tags: &'a [String],
        payload: Vec<u8>,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Increments the versions of `tags` and the generation.
    fn invalidate<'a>(&'a self, tags: &'a [String]) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// The in-process store: bounded by the bytes of its payloads, oldest entries evicted first.
pub struct MemoryStore {
    inner: Mutex<Memory>,
    max_bytes: usize,
}

#[derive(Default)]
struct Memory {
    entries: HashMap<String, MemoryEntry>,
    order: VecDeque<String>,
    versions: HashMap<String, u64>,
    generation: u64,
    bytes: usize,
}

struct MemoryEntry {
    versions: Vec<(String, u64)>,
    payload: Arc<Vec<u8>>,
    expires: Instant,
}

impl MemoryStore {
    /// A store holding at most `max_bytes` of payloads.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(Memory::default()),
            max_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Memory {
    fn remove(&mut self, key: &str) {
        if let Some(entry) = self.entries.remove(key) {
            self.bytes -= entry.payload.len();
        }
    }
}

impl CacheStore for MemoryStore {
    fn generation(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        let generation = self.lock().generation;
        Box::pin(async move { Ok(generation) })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        let mut memory = self.lock();
        let found = memory.entries.get(key).map(|entry| {
            let fresh = entry.expires > Instant::now()
                && entry.versions.iter().all(|(tag, version)| {
                    memory.versions.get(tag).copied().unwrap_or(0) == *version
                });
            fresh.then(|| entry.payload.as_ref().clone())
        });
        let payload = match found {
            Some(Some(payload)) => Some(payload),
            Some(None) => {
                memory.remove(key);
                None
            }
            None => None,
        };
        Box::pin(async move { Ok(payload) })
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        generation: u64,
        ttl: Duration,
        tags: &'a [String],
        payload: Vec<u8>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let mut memory = self.lock();
        let stored = memory.generation == generation && payload.len() <= self.max_bytes;
        if stored {
            let versions = tags
                .iter()
                .map(|tag| (tag.clone(), memory.versions.get(tag).copied().unwrap_or(0)))
                .collect();
            memory.remove(key);
            memory.bytes += payload.len();
            memory.entries.insert(
                key.to_owned(),
                MemoryEntry {
                    versions,
                    payload: Arc::new(payload),
                    expires: Instant::now() + ttl,
                },
            );
            memory.order.push_back(key.to_owned());
            while memory.bytes > self.max_bytes {
                let Some(oldest) = memory.order.pop_front() else {
                    break;
                };
                memory.remove(&oldest);
            }
            if memory.order.len() > memory.entries.len() * 2 + 64 {
                let Memory { order, entries, .. } = &mut *memory;
                order.retain(|key| entries.contains_key(key));
            }
        }
        Box::pin(async move { Ok(stored) })
    }

    fn invalidate<'a>(&'a self, tags: &'a [String]) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut memory = self.lock();
        memory.generation += 1;
        for tag in tags {
            *memory.versions.entry(tag.clone()).or_insert(0) += 1;
        }
        Box::pin(async move { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_entry_is_served_until_one_of_its_tags_is_invalidated() {
        let store = MemoryStore::new(1024);
        let tags = vec!["Article:1".to_owned(), "Article:list".to_owned()];
        let generation = store.generation().await.expect("generation");
        let ttl = Duration::from_secs(60);
        assert!(
            store
                .put("k", generation, ttl, &tags, b"body".to_vec())
                .await
                .expect("put")
        );
        assert_eq!(store.get("k").await.expect("get"), Some(b"body".to_vec()));
        store
            .invalidate(&["User:1".to_owned()])
            .await
            .expect("invalidate");
        assert!(
            store.get("k").await.expect("get").is_some(),
            "other tags keep it"
        );
        store
            .invalidate(&["Article:1".to_owned()])
            .await
            .expect("invalidate");
        assert_eq!(store.get("k").await.expect("get"), None);
        // A response computed before a write is not stored.
        assert!(
            !store
                .put("k", generation, ttl, &tags, b"old".to_vec())
                .await
                .expect("put")
        );
    }

    #[tokio::test]
    async fn the_store_stays_within_its_bytes() {
        let store = MemoryStore::new(10);
        let ttl = Duration::from_secs(60);
        store.put("a", 0, ttl, &[], vec![0; 6]).await.expect("put");
        store.put("b", 0, ttl, &[], vec![0; 6]).await.expect("put");
        assert_eq!(
            store.get("a").await.expect("get"),
            None,
            "the oldest was evicted"
        );
        assert!(store.get("b").await.expect("get").is_some());
    }
}
