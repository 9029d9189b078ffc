//! The Redis store: entries, tag versions and the generation in Redis, each operation one Lua
//! script, so every instance sees the same entries and the same invalidations at once.
//! (Scripts read keys they derive from their arguments: a single Redis, not Redis Cluster.)

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use redis::Script;

use super::CachedResponse;
use super::store::{CacheStore, Hit, StoreError};
use crate::redis_client::RedisClient;

/// How long a tag's version outlives its last change (far beyond any entry's life).
const TAG_TTL_SECONDS: u64 = 7 * 24 * 3600;

/// Entry layout: `versions\ntags\npayload`, tags separated by tabs, versions by commas. The
/// script answers the payload and the entry's remaining life (ms) while every tag still has the
/// version recorded (one `MGET` for them all), nothing otherwise.
static GET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local raw = redis.call('GET', KEYS[1])
if not raw then return false end
local first = string.find(raw, '\n', 1, true)
local second = string.find(raw, '\n', first + 1, true)
local expected = {}
for version in string.gmatch(string.sub(raw, 1, first - 1), '[^,]+') do
  expected[#expected + 1] = version
end
local keys = {}
for tag in string.gmatch(string.sub(raw, first + 1, second - 1), '[^\t]+') do
  keys[#keys + 1] = ARGV[1] .. tag
end
if #keys > 0 then
  local current = redis.call('MGET', unpack(keys))
  for index = 1, #keys do
    if (current[index] or '0') ~= expected[index] then return false end
  end
end
return {string.sub(raw, second + 1), redis.call('PTTL', KEYS[1])}
",
    )
});

static PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local generation = redis.call('GET', ARGV[1] .. '#generation') or '0'
if generation ~= ARGV[2] then return 0 end
local versions = {}
local tags = {}
for index = 5, #ARGV do
  tags[#tags + 1] = ARGV[index]
  versions[#versions + 1] = redis.call('GET', ARGV[1] .. ARGV[index]) or '0'
end
local raw = table.concat(versions, ',') .. '\n' .. table.concat(tags, '\t') .. '\n' .. ARGV[4]
redis.call('SET', KEYS[1], raw, 'PX', ARGV[3])
return 1
",
    )
});

static INVALIDATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('INCR', ARGV[1] .. '#generation')
for index = 3, #ARGV do
  redis.call('INCR', ARGV[1] .. ARGV[index])
  redis.call('EXPIRE', ARGV[1] .. ARGV[index], ARGV[2])
end
return 1
",
    )
});

/// Response cache entries in Redis.
pub struct RedisStore {
    redis: RedisClient,
}

impl RedisStore {
    /// Entries under the client's prefix.
    pub fn new(redis: RedisClient) -> Self {
        Self { redis }
    }

    fn entry_key(&self, key: &str) -> String {
        self.redis.key(&format!("cache:entry:{key}"))
    }

    fn tag_prefix(&self) -> String {
        self.redis.key("cache:tag:")
    }
}

impl CacheStore for RedisStore {
    fn generation(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let key = format!("{}#generation", self.tag_prefix());
            let generation: Option<u64> = self
                .redis
                .run("cache.generation", |mut connection| async move {
                    redis::cmd("GET")
                        .arg(key)
                        .query_async(&mut connection)
                        .await
                })
                .await?;
            Ok(generation.unwrap_or(0))
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Hit>, StoreError>> {
        Box::pin(async move {
            let (entry, prefix) = (self.entry_key(key), self.tag_prefix());
            let found: Option<(Vec<u8>, i64)> = self
                .redis
                .run("cache.get", |mut connection| async move {
                    GET.key(entry)
                        .arg(prefix)
                        .invoke_async(&mut connection)
                        .await
                })
                .await?;
            Ok(found.and_then(|(payload, millis)| {
                let response = CachedResponse::decode(Bytes::from(payload))?;
                Some(Hit {
                    response: Arc::new(response),
                    ttl: u64::try_from(millis).ok().map(Duration::from_millis),
                })
            }))
        })
    }

    fn shared(&self) -> bool {
        true
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        generation: u64,
        ttl: Duration,
        tags: &'a [String],
        response: Arc<CachedResponse>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let payload = response.encode();
            let (entry, prefix) = (self.entry_key(key), self.tag_prefix());
            let millis = ttl.as_millis().max(1) as u64;
            let stored: i64 = self
                .redis
                .run("cache.put", |mut connection| async move {
                    let mut invocation = PUT.key(entry);
                    invocation
                        .arg(prefix)
                        .arg(generation.to_string())
                        .arg(millis)
                        .arg(payload);
                    invocation.arg(super::ALL);
                    for tag in tags {
                        invocation.arg(tag.as_str());
                    }
                    invocation.invoke_async(&mut connection).await
                })
                .await?;
            Ok(stored == 1)
        })
    }

    fn invalidate<'a>(&'a self, tags: &'a [String]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let prefix = self.tag_prefix();
            let _: i64 = self
                .redis
                .run("cache.invalidate", |mut connection| async move {
                    let mut invocation = INVALIDATE.prepare_invoke();
                    invocation.arg(prefix).arg(TAG_TTL_SECONDS);
                    for tag in tags {
                        invocation.arg(tag.as_str());
                    }
                    invocation.invoke_async(&mut connection).await
                })
                .await?;
            Ok(())
        })
    }
}
