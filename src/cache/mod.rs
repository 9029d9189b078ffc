//! The response cache: keys, the policy from cache hints, lookups shared by identical concurrent
//! misses, and invalidation by the tags that resolvers read and mutations write.
//!
//! Resolvers record what a response read as tags (`Article:42`, `Article:list`, ...) and mutations
//! what they changed; after a mutation commits, its tags are invalidated in the store, which makes
//! every entry that read one of them stale at once, on every instance sharing the store.

pub mod redis_store;
pub mod store;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::{CacheControl, ServerError, Value};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use self::store::CacheStore;
use crate::persisted::sha256_hex;
use crate::redis_client::RedisClient;

/// The tag every entry depends on: invalidating it empties the cache (after a Redis outage).
pub const ALL: &str = "*";

/// The tag of one entity, e.g. `Article:42`.
pub fn entity_tag(kind: &str, id: i64) -> String {
    format!("{kind}:{id}")
}

/// The tag of every list (and lookup by key) of a kind, e.g. `Article:list`.
pub fn list_tag(kind: &str) -> String {
    format!("{kind}:list")
}

/// The tag of one user's feed.
pub fn feed_tag(user_id: i64) -> String {
    format!("Feed:{user_id}")
}

/// The tags a request read (set on queries) or wrote (set on mutations).
#[derive(Debug, Default)]
pub struct Tags(Mutex<BTreeSet<String>>);

impl Tags {
    /// Records `tag`.
    pub fn add(&self, tag: String) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(tag);
    }

    /// The recorded tags.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
        .into_iter()
        .collect()
    }
}

/// Tags read by a query: request data.
#[derive(Debug, Default, Clone)]
pub struct ReadTags(pub Arc<Tags>);

/// Tags written by a mutation: request data.
#[derive(Debug, Default, Clone)]
pub struct WrittenTags(pub Arc<Tags>);

/// How a response may be cached: from the cache hints of what it selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachePolicy {
    /// Seconds the response stays fresh.
    pub max_age: u32,
    /// Whether anyone may see it (otherwise only the viewer it was computed for).
    pub public: bool,
}

impl CachePolicy {
    /// The policy of async-graphql's merged hints; `None` when not cacheable.
    pub fn from_hints(hints: CacheControl) -> Option<Self> {
        (hints.max_age > 0).then(|| Self {
            max_age: hints.max_age.unsigned_abs(),
            public: hints.public,
        })
    }

    /// The `Cache-Control` header value.
    pub fn header(&self) -> String {
        let scope = if self.public { "public" } else { "private" };
        format!("{scope}, max-age={}", self.max_age)
    }
}

/// A response as the cache keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    policy: CachePolicy,
    data: serde_json::Value,
}

/// What one execution produced; shared with the identical requests that waited for it.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The response data.
    pub data: Value,
    /// The errors.
    pub errors: Vec<ServerError>,
    /// The merged cache hints.
    pub hints: CacheControl,
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

/// One execution shared by identical concurrent requests.
type Flight = Arc<OnceCell<(Outcome, CacheStatus)>>;

/// The response cache in front of a store.
pub struct ResponseCache {
    store: Arc<dyn CacheStore>,
    redis: Option<RedisClient>,
    max_ttl: Duration,
    flights: Mutex<HashMap<String, Flight>>,
    /// An invalidation failed: everything is invalidated before the cache is used again.
    pending: AtomicBool,
    /// Redis recoveries already handled.
    recoveries: AtomicU64,
}

impl ResponseCache {
    /// A cache over `store`; `redis` is the client behind it, when it is Redis.
    pub fn new(store: Arc<dyn CacheStore>, redis: Option<RedisClient>, max_ttl: Duration) -> Self {
        Self {
            store,
            redis,
            max_ttl,
            flights: Mutex::new(HashMap::new()),
            pending: AtomicBool::new(false),
            recoveries: AtomicU64::new(0),
        }
    }

    /// The key of an operation (without its scope): the normalized document, the operation name
    /// and the variables with sorted keys.
    pub fn key(
        document: &str,
        operation_name: Option<&str>,
        variables: &serde_json::Value,
    ) -> String {
        let material = format!(
            "{}\u{0}{}\u{0}{variables}",
            normalize_document(document),
            operation_name.unwrap_or_default()
        );
        sha256_hex(&material)
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
        key: &str,
        viewer: Option<i64>,
    ) -> Result<Option<(Value, CachePolicy)>, ()> {
        if !self.ready().await {
            return Err(());
        }
        if let Some(stored) = self.get(&format!("{key}:public")).await? {
            // A private response stored there was computed for an anonymous viewer.
            if stored.policy.public || viewer.is_none() {
                return Ok(Some(decode(stored)));
            }
        }
        match viewer {
            Some(user_id) => Ok(self
                .get(&format!("{key}:user:{user_id}"))
                .await?
                .map(decode)),
            None => Ok(None),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Stored>, ()> {
        match self.store.get(key).await {
            Ok(Some(payload)) => Ok(serde_json::from_slice(&payload).ok()),
            Ok(None) => Ok(None),
            Err(err) => {
                tracing::debug!(error = %err, "response cache unavailable");
                Err(())
            }
        }
    }

    /// The generation to pass to [`Self::store`]; read before executing.
    pub async fn generation(&self) -> Option<u64> {
        self.store.generation().await.ok()
    }

    /// Stores a response computed for `viewer` that read `tags`, when its policy allows.
    pub async fn store(
        &self,
        key: &str,
        viewer: Option<i64>,
        generation: u64,
        outcome: &Outcome,
        mut tags: Vec<String>,
    ) {
        let Some(policy) = CachePolicy::from_hints(outcome.hints) else {
            return;
        };
        if !outcome.errors.is_empty() {
            return;
        }
        let scoped = match (policy.public, viewer) {
            (false, Some(user_id)) => format!("{key}:user:{user_id}"),
            _ => format!("{key}:public"),
        };
        let Ok(data) = outcome.data.clone().into_json() else {
            return;
        };
        let Ok(payload) = serde_json::to_vec(&Stored { policy, data }) else {
            return;
        };
        tags.push(ALL.to_owned());
        let ttl = Duration::from_secs(u64::from(policy.max_age)).min(self.max_ttl);
        if let Err(err) = self
            .store
            .put(&scoped, generation, ttl, &tags, payload)
            .await
        {
            tracing::debug!(error = %err, "response not cached");
        }
    }

    /// Invalidates `tags` after a mutation committed. When the store cannot be reached, the whole
    /// cache is invalidated as soon as it can, and nothing is served from it until then.
    pub async fn invalidate(&self, tags: &[String]) {
        if tags.is_empty() {
            return;
        }
        if let Err(err) = self.store.invalidate(tags).await {
            tracing::warn!(error = %err, "cache invalidation failed: the cache is bypassed until it can be emptied");
            self.pending.store(true, Ordering::Relaxed);
        }
    }

    /// Runs `execute` once for all the identical requests (`flight`) that arrive while it runs;
    /// the others get its outcome as a HIT.
    pub async fn single_flight<F>(&self, flight: &str, execute: F) -> (Outcome, CacheStatus)
    where
        F: Future<Output = (Outcome, CacheStatus)>,
    {
        let cell = {
            let mut flights = self
                .flights
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            flights.entry(flight.to_owned()).or_default().clone()
        };
        let mut ran = false;
        let (outcome, status) = cell
            .get_or_init(|| async {
                ran = true;
                execute.await
            })
            .await
            .clone();
        if ran {
            self.flights
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(flight);
            (outcome, status)
        } else {
            (outcome, CacheStatus::Hit)
        }
    }
}

fn decode(stored: Stored) -> (Value, CachePolicy) {
    (
        Value::from_json(stored.data).unwrap_or(Value::Null),
        stored.policy,
    )
}

/// The document with comments dropped and every run of whitespace and commas outside strings
/// made one space, so that formatting does not split the cache.
pub fn normalize_document(document: &str) -> String {
    let mut normalized = String::with_capacity(document.len());
    let mut chars = document.chars().peekable();
    let mut gap = false;
    while let Some(c) = chars.next() {
        match c {
            '#' => {
                for next in chars.by_ref() {
                    if next == '\n' || next == '\r' {
                        break;
                    }
                }
                gap = true;
            }
            ' ' | '\t' | '\n' | '\r' | ',' | '\u{feff}' => gap = true,
            '"' => {
                if gap && !normalized.is_empty() {
                    normalized.push(' ');
                }
                gap = false;
                normalized.push('"');
                let mut escaped = false;
                for next in chars.by_ref() {
                    normalized.push(next);
                    if escaped {
                        escaped = false;
                    } else if next == '\\' {
                        escaped = true;
                    } else if next == '"' {
                        break;
                    }
                }
            }
            _ => {
                if gap && !normalized.is_empty() {
                    normalized.push(' ');
                }
                gap = false;
                normalized.push(c);
            }
        }
    }
    normalized
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_and_comments_do_not_change_the_key() {
        let variables = serde_json::json!({ "b": 1, "a": 2 });
        let one = ResponseCache::key("{ articles { nodes { title } } }", None, &variables);
        let other = ResponseCache::key(
            "# the newest\n{\n  articles {\n    nodes { title }\n  }\n}",
            None,
            &serde_json::json!({ "a": 2, "b": 1 }),
        );
        assert_eq!(one, other);
        let string = ResponseCache::key("{ user(username: \"a  b\") { bio } }", None, &variables);
        let spaced = ResponseCache::key("{ user(username: \"a b\") { bio } }", None, &variables);
        assert_ne!(string, spaced, "strings keep their spaces");
    }
}
