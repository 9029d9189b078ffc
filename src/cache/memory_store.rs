//! The in-process store: a `moka` cache bounded by the bytes of its entries, each expiring after
//! its own time to live, with an index from tag to the entries that read it, so an invalidation
//! removes exactly those entries.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use moka::Expiry;
use moka::notification::RemovalCause;
use moka::sync::Cache;

use super::store::{CacheStore, Hit, StoreError};
use super::{ALL, CachedResponse};

/// One stored response with what it depends on.
#[derive(Clone)]
struct Entry {
    id: u64,
    response: Arc<CachedResponse>,
    tags: Arc<[String]>,
    ttl: Duration,
}

/// Which entries (key and entry id) read each tag; and the generation.
#[derive(Default)]
struct Index {
    generation: u64,
    next_id: u64,
    by_tag: HashMap<String, HashSet<(String, u64)>>,
}

impl Index {
    fn forget(&mut self, key: &str, entry: &Entry) {
        for tag in entry.tags.iter() {
            if let Some(entries) = self.by_tag.get_mut(tag) {
                entries.remove(&(key.to_owned(), entry.id));
                if entries.is_empty() {
                    self.by_tag.remove(tag);
                }
            }
        }
    }
}

struct OwnTtl;

impl Expiry<String, Entry> for OwnTtl {
    fn expire_after_create(&self, _: &String, entry: &Entry, _: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }
}

/// The in-process store.
pub struct MemoryStore {
    entries: Cache<String, Entry>,
    index: Arc<Mutex<Index>>,
}

fn lock(index: &Mutex<Index>) -> MutexGuard<'_, Index> {
    index
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MemoryStore {
    /// A store holding at most about `max_bytes` of responses (data, tags and keys).
    pub fn new(max_bytes: u64) -> Self {
        let index: Arc<Mutex<Index>> = Arc::default();
        let listener_index = Arc::clone(&index);
        let entries = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &String, entry: &Entry| {
                let tags: usize = entry.tags.iter().map(|tag| tag.len() + 16).sum();
                u32::try_from(key.len() + entry.response.data.len() + tags + 128)
                    .unwrap_or(u32::MAX)
            })
            .expire_after(OwnTtl)
            .eviction_listener(move |key: Arc<String>, entry: Entry, _: RemovalCause| {
                lock(&listener_index).forget(&key, &entry);
            })
            .build();
        Self { entries, index }
    }
}

impl CacheStore for MemoryStore {
    fn generation(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        let generation = lock(&self.index).generation;
        Box::pin(async move { Ok(generation) })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Hit>, StoreError>> {
        let found = self.entries.get(key).map(|entry| Hit {
            response: entry.response,
            ttl: None,
        });
        Box::pin(async move { Ok(found) })
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        generation: u64,
        ttl: Duration,
        tags: &'a [String],
        response: Arc<CachedResponse>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let tags: Arc<[String]> = tags.iter().filter(|tag| *tag != ALL).cloned().collect();
        let entry = {
            let mut index = lock(&self.index);
            if index.generation != generation {
                return Box::pin(async { Ok(false) });
            }
            index.next_id += 1;
            let entry = Entry {
                id: index.next_id,
                response,
                tags,
                ttl,
            };
            for tag in entry.tags.iter() {
                index
                    .by_tag
                    .entry(tag.clone())
                    .or_default()
                    .insert((key.to_owned(), entry.id));
            }
            entry
        };
        // moka may call the eviction listener (which takes the index) while inserting, so the
        // index is not held here; an invalidation in between moved the generation: undo.
        self.entries.insert(key.to_owned(), entry);
        let stored = lock(&self.index).generation == generation;
        if !stored {
            self.entries.invalidate(key);
        }
        Box::pin(async move { Ok(stored) })
    }

    fn invalidate<'a>(&'a self, tags: &'a [String]) -> BoxFuture<'a, Result<(), StoreError>> {
        let (all, keys) = {
            let mut index = lock(&self.index);
            index.generation += 1;
            if tags.iter().any(|tag| tag == ALL) {
                index.by_tag.clear();
                (true, Vec::new())
            } else {
                let keys: Vec<String> = tags
                    .iter()
                    .filter_map(|tag| index.by_tag.remove(tag))
                    .flatten()
                    .map(|(key, _)| key)
                    .collect();
                (false, keys)
            }
        };
        if all {
            self.entries.invalidate_all();
        }
        for key in keys {
            self.entries.invalidate(&key);
        }
        Box::pin(async move { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::cache::CachePolicy;

    fn response(body: &'static [u8]) -> Arc<CachedResponse> {
        Arc::new(CachedResponse::new(
            CachePolicy {
                max_age: 60,
                public: true,
            },
            Bytes::from_static(body),
            0,
        ))
    }

    #[tokio::test]
    async fn an_entry_is_served_until_one_of_its_tags_is_invalidated() {
        let store = MemoryStore::new(1024 * 1024);
        let tags = vec!["Article:1".to_owned(), "Article:list".to_owned()];
        let generation = store.generation().await.expect("generation");
        let ttl = Duration::from_secs(60);
        assert!(
            store
                .put("k", generation, ttl, &tags, response(b"body"))
                .await
                .expect("put")
        );
        assert!(store.get("k").await.expect("get").is_some());
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
        assert!(store.get("k").await.expect("get").is_none());
        // A response computed before a write is not stored.
        assert!(
            !store
                .put("k", generation, ttl, &tags, response(b"old"))
                .await
                .expect("put")
        );
    }

    #[tokio::test]
    async fn the_store_stays_within_its_bytes_and_its_index_with_it() {
        let store = MemoryStore::new(64 * 1024);
        let ttl = Duration::from_secs(60);
        for i in 0..2_000 {
            let tags = vec![format!("Article:{i}")];
            store
                .put(&format!("key{i}"), 0, ttl, &tags, response(&[b'x'; 200]))
                .await
                .expect("put");
        }
        store.entries.run_pending_tasks();
        assert!(store.entries.weighted_size() <= 64 * 1024);
        let indexed = lock(&store.index).by_tag.len() as u64;
        assert!(indexed <= store.entries.entry_count() + 1, "{indexed}");
    }
}
