//! The response cache: stored response bytes, the runtime privacy decision, lookups shared by
//! identical concurrent misses, and invalidation by the tags that resolvers read and mutations
//! write.
//!
//! While an operation runs, its resolvers record what it read as tags (`Article:42`,
//! `Article:list`, ...) and whether anything private ran (`viewer`, `feed`, `User.email`,
//! `User.following`, `Article.favorited`): privacy is decided by what ran, not by the document's
//! static hints, so no fragment, alias or interface can hide a private field. Mutations record what
//! they changed; after a mutation commits, its tags are invalidated in the store, which makes every
//! entry that read one of them stale at once, on every instance sharing the store.

pub mod memory_store;
pub mod redis_store;
pub mod store;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::OnceCell;

use self::store::CacheStore;
use crate::redis_client::RedisClient;

/// The tag every entry depends on: invalidating it empties the cache (after a Redis outage).
pub const ALL: &str = "*";

/// What a response read or a mutation changed: an entity, every list of a kind, or a feed.
/// Recorded without allocating; written out (`Article:42`, `Article:list`, `Feed:7`) only when
/// an entry is stored or invalidated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheTag {
    /// One entity of a kind.
    Entity(&'static str, i64),
    /// Every list (and lookup by key) of a kind.
    List(&'static str),
    /// One user's feed.
    Feed(i64),
}

impl std::fmt::Display for CacheTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Entity(kind, id) => write!(f, "{kind}:{id}"),
            Self::List(kind) => write!(f, "{kind}:list"),
            Self::Feed(user_id) => write!(f, "Feed:{user_id}"),
        }
    }
}

/// A set of tags recorded while an operation runs.
#[derive(Debug, Default)]
pub struct Tags(Mutex<HashSet<CacheTag>>);

impl Tags {
    /// Records `tag`.
    pub fn add(&self, tag: CacheTag) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(tag);
    }

    /// The recorded tags, written out.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
        .into_iter()
        .map(|tag| tag.to_string())
        .collect()
    }
}

/// What one execution records for the cache: request data, shared with the resolvers.
#[derive(Debug, Default)]
pub struct Record {
    /// Tags the response read, when it may be stored.
    pub reads: Option<Tags>,
    /// Tags a mutation changed.
    pub writes: Tags,
    /// The entities a mutation created (also among `writes`): for the change feed.
    pub created: Tags,
    private: AtomicBool,
}

impl Record {
    /// A record of an execution whose response may be stored: it tracks what it reads.
    pub fn storable() -> Self {
        Self {
            reads: Some(Tags::default()),
            ..Self::default()
        }
    }

    /// Records that the response read `tag` (when it may be stored).
    pub fn read(&self, tag: CacheTag) {
        if let Some(reads) = &self.reads {
            reads.add(tag);
        }
    }

    /// The tags the response read.
    pub fn take_reads(&self) -> Vec<String> {
        self.reads.as_ref().map(Tags::take).unwrap_or_default()
    }

    /// Marks the response as depending on who asks: it is never stored under the public key.
    pub fn mark_private(&self) {
        self.private.store(true, Ordering::Relaxed);
    }

    /// Whether a private field ran.
    pub fn is_private(&self) -> bool {
        self.private.load(Ordering::Relaxed)
    }
}

/// The request data that resolvers record into.
#[derive(Debug, Default, Clone)]
pub struct Recorder(pub Arc<Record>);

/// How a response may be cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// Seconds the response stays fresh.
    pub max_age: u32,
    /// Whether anyone may see it (otherwise only the viewer it was computed for).
    pub public: bool,
}

impl CachePolicy {
    /// The policy of a query that ran: fresh for the hints' `max_age` (none: not cacheable),
    /// public only when nothing private ran and the hints allow it.
    pub fn decide(max_age: i32, hints_public: bool, private_ran: bool) -> Option<Self> {
        (max_age > 0).then(|| Self {
            max_age: max_age.unsigned_abs(),
            public: hints_public && !private_ran,
        })
    }

    /// The `Cache-Control` header value.
    pub fn header(&self) -> String {
        let scope = if self.public { "public" } else { "private" };
        format!("{scope}, max-age={}", self.max_age)
    }
}

/// A response as the cache keeps it: the serialized `data`, ready to be written as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedResponse {
    /// How it may be cached.
    pub policy: CachePolicy,
    /// The entity tag of `data`, computed once when it was stored.
    pub etag: Arc<str>,
    /// The JSON of the response's `data`.
    pub data: Bytes,
    /// The actual cost of computing it.
    pub actual_cost: u64,
}

impl CachedResponse {
    /// A response for `data` (its JSON bytes), with its entity tag.
    pub fn new(policy: CachePolicy, data: Bytes, actual_cost: u64) -> Self {
        Self {
            policy,
            etag: etag_of(&data).into(),
            data,
            actual_cost,
        }
    }

    /// The bytes a shared store keeps: a header line, then `data`.
    pub fn encode(&self) -> Vec<u8> {
        let header = format!(
            "{} {} {} {}\n",
            u8::from(self.policy.public),
            self.policy.max_age,
            self.actual_cost,
            self.etag
        );
        let mut bytes = Vec::with_capacity(header.len() + self.data.len());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&self.data);
        bytes
    }

    /// The response [`Self::encode`] wrote; `None` for anything else.
    pub fn decode(bytes: Bytes) -> Option<Self> {
        let newline = bytes.iter().position(|byte| *byte == b'\n')?;
        let header = std::str::from_utf8(&bytes[..newline]).ok()?;
        let mut parts = header.split(' ');
        let public = parts.next()? == "1";
        let max_age = parts.next()?.parse().ok()?;
        let actual_cost = parts.next()?.parse().ok()?;
        let etag = parts.next()?;
        Some(Self {
            policy: CachePolicy { max_age, public },
            etag: etag.into(),
            data: bytes.slice(newline + 1..),
            actual_cost,
        })
    }
}

/// The entity tag of a response's data: a strong validator of exactly these bytes.
pub fn etag_of(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(data);
    let mut etag = String::with_capacity(34);
    etag.push('"');
    for byte in &digest[..16] {
        use std::fmt::Write;
        let _ = write!(etag, "{byte:02x}");
    }
    etag.push('"');
    etag
}

/// Where a response came from, for `X-Cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served from the cache (or from an identical request running at the same time).
    Hit = 0,
    /// Computed, and stored when its policy allows.
    Miss = 1,
    /// Not cacheable (mutation, batch, error) or the cache is unavailable.
    Bypass = 2,
}

impl CacheStatus {
    /// The `X-Cache` header value.
    pub fn header(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Bypass => "BYPASS",
        }
    }
}

/// The key of an operation in the cache, without its scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(pub String);

impl CacheKey {
    /// The key of an operation whose executed shape (with its argument values) is `canonical`.
    pub fn of(canonical: &str) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(canonical.as_bytes());
        let mut key = String::with_capacity(64);
        for byte in digest {
            use std::fmt::Write;
            let _ = write!(key, "{byte:02x}");
        }
        Self(key)
    }

    fn public(&self) -> String {
        format!("{}:public", self.0)
    }

    fn of_user(&self, user_id: i64) -> String {
        format!("{}:user:{user_id}", self.0)
    }
}

/// A copy of a shared store's entry, valid while the global generation has not moved.
#[derive(Clone)]
struct LocalCopy {
    response: Arc<CachedResponse>,
    generation: u64,
    ttl: Duration,
}

struct CopyTtl;

impl moka::Expiry<String, LocalCopy> for CopyTtl {
    fn expire_after_create(
        &self,
        _: &String,
        copy: &LocalCopy,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(copy.ttl)
    }
}

/// Bytes of copies of a shared store's entries kept in this process.
const LOCAL_COPIES_BYTES: u64 = 32 * 1024 * 1024;

/// The response cache in front of a store.
pub struct ResponseCache {
    store: Arc<dyn CacheStore>,
    /// Copies of a shared store's entries: a hit checks the global generation (one small read)
    /// instead of every tag of the entry, and serves the copy while nothing was written.
    local: Option<moka::sync::Cache<String, LocalCopy>>,
    redis: Option<RedisClient>,
    max_ttl: Duration,
    flights: Mutex<HashMap<String, Arc<dyn std::any::Any + Send + Sync>>>,
    /// An invalidation failed: everything is invalidated before the cache is used again.
    pending: AtomicBool,
    /// Redis recoveries already handled.
    recoveries: AtomicU64,
}

impl ResponseCache {
    /// A cache over `store`; `redis` is the client behind it, when it is Redis.
    pub fn new(store: Arc<dyn CacheStore>, redis: Option<RedisClient>, max_ttl: Duration) -> Self {
        let local = store.shared().then(|| {
            moka::sync::Cache::builder()
                .max_capacity(LOCAL_COPIES_BYTES)
                .weigher(|key: &String, copy: &LocalCopy| {
                    u32::try_from(key.len() + copy.response.data.len() + 64).unwrap_or(u32::MAX)
                })
                .expire_after(CopyTtl)
                .build()
        });
        Self {
            store,
            local,
            redis,
            max_ttl,
            flights: Mutex::new(HashMap::new()),
            pending: AtomicBool::new(false),
            recoveries: AtomicU64::new(0),
        }
    }

    /// After Redis came back or an invalidation failed, entries written before may be stale:
    /// invalidate everything first. `false` while that is not possible.
    async fn ready(&self) -> bool {
        let recoveries = self.redis.as_ref().map_or(0, RedisClient::recoveries);
        let recovered = self.recoveries.load(Ordering::Relaxed) != recoveries;
        if !recovered && !self.pending.load(Ordering::Relaxed) {
            return true;
        }
        match self.store.invalidate(&[ALL.to_owned()]).await {
            Ok(()) => {
                tracing::info!("response cache: every entry from before the outage invalidated");
                self.recoveries.store(recoveries, Ordering::Relaxed);
                self.pending.store(false, Ordering::Relaxed);
                true
            }
            Err(_) => {
                self.pending.store(true, Ordering::Relaxed);
                false
            }
        }
    }

    /// The cached response for `key` that `viewer` may see; `Err` when the cache is unavailable.
    pub async fn lookup(
        &self,
        key: &CacheKey,
        viewer: Option<i64>,
    ) -> Result<Option<Arc<CachedResponse>>, ()> {
        if !self.ready().await {
            return Err(());
        }
        // With copies, one read of the generation tells whether they are still valid.
        let generation = match &self.local {
            Some(_) => Some(self.store.generation().await.map_err(|err| {
                tracing::debug!(error = %err, "response cache unavailable");
            })?),
            None => None,
        };
        if let Some(stored) = self.get(&key.public(), generation).await? {
            // A private response stored there was computed for an anonymous viewer.
            if stored.policy.public || viewer.is_none() {
                return Ok(Some(stored));
            }
        }
        match viewer {
            Some(user_id) => self.get(&key.of_user(user_id), generation).await,
            None => Ok(None),
        }
    }

    async fn get(
        &self,
        key: &str,
        generation: Option<u64>,
    ) -> Result<Option<Arc<CachedResponse>>, ()> {
        if let (Some(local), Some(generation)) = (&self.local, generation)
            && let Some(copy) = local.get(key)
            && copy.generation == generation
        {
            return Ok(Some(copy.response));
        }
        let hit = self.store.get(key).await.map_err(|err| {
            tracing::debug!(error = %err, "response cache unavailable");
        })?;
        Ok(hit.map(|hit| {
            if let (Some(local), Some(generation), Some(ttl)) = (&self.local, generation, hit.ttl) {
                local.insert(
                    key.to_owned(),
                    LocalCopy {
                        response: Arc::clone(&hit.response),
                        generation,
                        ttl,
                    },
                );
            }
            hit.response
        }))
    }

    /// The generation to pass to [`Self::store`]; read before executing.
    pub async fn generation(&self) -> Option<u64> {
        self.store.generation().await.ok()
    }

    /// Stores `response`, computed for `viewer` and having read `tags`: under the public key when
    /// nothing private ran (or the viewer is anonymous), under the viewer's own key otherwise.
    pub async fn store(
        &self,
        key: &CacheKey,
        viewer: Option<i64>,
        generation: u64,
        response: Arc<CachedResponse>,
        tags: Vec<String>,
    ) {
        let scoped = match (response.policy.public, viewer) {
            (false, Some(user_id)) => key.of_user(user_id),
            _ => key.public(),
        };
        let ttl = Duration::from_secs(u64::from(response.policy.max_age)).min(self.max_ttl);
        match self
            .store
            .put(&scoped, generation, ttl, &tags, Arc::clone(&response))
            .await
        {
            Ok(true) => {
                if let Some(local) = &self.local {
                    local.insert(
                        scoped,
                        LocalCopy {
                            response,
                            generation,
                            ttl,
                        },
                    );
                }
            }
            Ok(false) => {}
            Err(err) => tracing::debug!(error = %err, "response not cached"),
        }
    }

    /// Invalidates `tags` after a mutation committed, to the end even when the request that
    /// committed is cancelled (its client went away). When the store cannot be reached, the whole
    /// cache is invalidated as soon as it can, and nothing is served from it until then.
    pub async fn invalidate(self: &Arc<Self>, tags: Vec<String>) {
        if tags.is_empty() {
            return;
        }
        let cache = Arc::clone(self);
        let task = tokio::spawn(async move {
            if let Err(err) = cache.store.invalidate(&tags).await {
                tracing::warn!(error = %err, "cache invalidation failed: the cache is bypassed until it can be emptied");
                cache.pending.store(true, Ordering::Relaxed);
            }
        });
        if task.await.is_err() {
            self.pending.store(true, Ordering::Relaxed);
        }
    }

    /// Runs `execute` once for all the identical requests (`flight`) that arrive while it runs;
    /// the others get its outcome, and `false` for "ran it". A request cancelled while it leads
    /// (its client went away) hands the lead to one that waits, and the last one out removes the
    /// flight: nothing is left behind.
    pub async fn single_flight<T, F>(&self, flight: &str, execute: F) -> (T, bool)
    where
        T: Clone + Send + Sync + 'static,
        F: Future<Output = T>,
    {
        let cell: Arc<OnceCell<T>> = {
            let mut flights = self
                .flights
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let entry = flights
                .entry(flight.to_owned())
                .or_insert_with(|| Arc::new(OnceCell::<T>::new()));
            match Arc::clone(entry).downcast::<OnceCell<T>>() {
                Ok(cell) => cell,
                Err(_) => Arc::new(OnceCell::new()),
            }
        };
        let flight = Flight {
            flights: &self.flights,
            key: flight,
            cell,
        };
        let mut ran = false;
        let outcome = flight
            .cell
            .get_or_init(|| async {
                ran = true;
                execute.await
            })
            .await
            .clone();
        (outcome, ran)
    }

    /// Flights in progress (for tests).
    pub fn flights_in_progress(&self) -> usize {
        self.flights
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}

/// One request's part in a flight: when it ends (done or cancelled), the flight is removed once
/// it has its outcome (later requests run afresh) or once nobody else waits for it.
struct Flight<'a, T> {
    flights: &'a Mutex<HashMap<String, Arc<dyn std::any::Any + Send + Sync>>>,
    key: &'a str,
    cell: Arc<OnceCell<T>>,
}

impl<T> Drop for Flight<'_, T> {
    fn drop(&mut self) {
        let mut flights = self
            .flights
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(entry) = flights.get(self.key) else {
            return;
        };
        let same = std::ptr::eq(
            Arc::as_ptr(entry).cast::<()>(),
            Arc::as_ptr(&self.cell).cast::<()>(),
        );
        // Two references when nobody else waits: the map's and this request's.
        if same && (self.cell.initialized() || Arc::strong_count(&self.cell) <= 2) {
            flights.remove(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_response_decodes_to_itself() {
        let response = CachedResponse::new(
            CachePolicy {
                max_age: 60,
                public: false,
            },
            Bytes::from_static(b"{\"b\":1,\"a\":[\"x\\ny\"]}"),
            7,
        );
        let decoded = CachedResponse::decode(Bytes::from(response.encode())).expect("decodes");
        assert_eq!(decoded, response);
        assert_eq!(response.etag.len(), 34);
    }

    #[tokio::test]
    async fn a_cancelled_leader_leaves_no_flight_behind() {
        let cache = ResponseCache::new(
            Arc::new(memory_store::MemoryStore::new(1024 * 1024)),
            None,
            Duration::from_secs(60),
        );
        // The leader's client goes away while it runs, with nobody waiting.
        let cancelled = tokio::time::timeout(
            Duration::from_millis(20),
            cache.single_flight("alone", std::future::pending::<u32>()),
        )
        .await;
        assert!(cancelled.is_err());
        assert_eq!(cache.flights_in_progress(), 0, "the flight is gone");
        // A leader cancelled while another request waits hands the flight over.
        let (led, waited) = tokio::join!(
            tokio::time::timeout(
                Duration::from_millis(20),
                cache.single_flight("shared", std::future::pending::<u32>()),
            ),
            async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                cache.single_flight("shared", async { 7 }).await
            }
        );
        assert!(led.is_err());
        assert_eq!(waited, (7, true), "the waiting request ran it");
        assert_eq!(cache.flights_in_progress(), 0);
        let (first, second) = tokio::join!(
            cache.single_flight("both", async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                1
            }),
            cache.single_flight("both", async { 2 })
        );
        assert_eq!(
            (first, second),
            ((1, true), (1, false)),
            "identical requests share one run"
        );
        assert_eq!(cache.flights_in_progress(), 0);
    }

    #[test]
    fn keys_differ_for_different_shapes() {
        assert_ne!(
            CacheKey::of("Q{user(username:\"a  b\"){bio}}"),
            CacheKey::of("Q{user(username:\"a b\"){bio}}")
        );
    }
}
