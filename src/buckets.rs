//! Token buckets that refill continuously: in Redis when configured (one atomic script per call, so
//! every instance shares one budget), in process otherwise or while Redis does not answer.
//!
//! The in-process buckets live in a bounded `moka` cache: at most [`MEMORY_MAX_BYTES`] of keys, and
//! each bucket expires by its own policy once it would be full again (a full bucket and a missing
//! one are the same). Callers pass bounded keys (ids, addresses, hashes), never raw client input.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;

use crate::redis_client::RedisClient;

/// The size of a bucket and how fast it refills.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketPolicy {
    /// Most tokens the bucket holds (and its content when first used).
    pub capacity: f64,
    /// Tokens restored per second.
    pub restore_per_second: f64,
}

impl BucketPolicy {
    /// `count` tokens restored over `window_seconds`, at most `count` held.
    pub fn per_window(count: u32, window_seconds: u64) -> Self {
        Self {
            capacity: f64::from(count),
            restore_per_second: f64::from(count) / window_seconds.max(1) as f64,
        }
    }

    /// How long a bucket holding `tokens` takes to be full again.
    fn time_to_full(&self, tokens: f64) -> Duration {
        let missing = (self.capacity - tokens).max(0.0);
        let seconds = missing / self.restore_per_second;
        if seconds.is_finite() {
            Duration::from_secs_f64(seconds.min(86_400.0 * 30.0))
        } else {
            Duration::from_secs(86_400 * 30)
        }
    }
}

/// The answer of a bucket to a request for tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// Whether the tokens were taken.
    pub allowed: bool,
    /// Tokens left after this call.
    pub remaining: f64,
    /// The bucket's policy.
    pub policy: BucketPolicy,
}

impl Decision {
    /// Whole seconds until `cost` tokens are available (at least 1 when they are not now).
    pub fn retry_after_seconds(&self, cost: f64) -> u64 {
        let missing = cost - self.remaining;
        if missing <= 0.0 {
            return 0;
        }
        seconds(missing / self.policy.restore_per_second)
    }

    /// Whole seconds until the bucket is full again.
    pub fn reset_seconds(&self) -> u64 {
        let missing = self.policy.capacity - self.remaining;
        if missing <= 0.0 {
            return 0;
        }
        seconds(missing / self.policy.restore_per_second)
    }
}

fn seconds(value: f64) -> u64 {
    if value.is_finite() {
        value.ceil().max(1.0) as u64
    } else {
        u64::MAX
    }
}

/// Token buckets by key.
#[derive(Clone)]
pub struct Buckets {
    memory: Arc<MemoryBuckets>,
    redis: Option<RedisClient>,
}

impl Buckets {
    /// Buckets in Redis when `redis` is given (falling back to this process when it fails), in
    /// this process otherwise.
    pub fn new(redis: Option<RedisClient>) -> Self {
        Self {
            memory: Arc::new(MemoryBuckets::new(MEMORY_MAX_BYTES)),
            redis,
        }
    }

    /// Takes `cost` tokens from bucket `key` when it holds that many; a negative `cost` gives
    /// tokens back (never above capacity) and is always allowed. A `cost` of 0 reads the bucket.
    pub async fn take(&self, key: &str, cost: f64, policy: BucketPolicy) -> Decision {
        self.take_with(key, cost, policy, false).await
    }

    /// Takes `cost` tokens from bucket `key` whether or not it holds them, for work already done:
    /// the bucket may go into debt, down to minus its capacity, and refuses until it refilled.
    pub async fn debit(&self, key: &str, cost: f64, policy: BucketPolicy) -> Decision {
        self.take_with(key, cost, policy, true).await
    }

    async fn take_with(&self, key: &str, cost: f64, policy: BucketPolicy, debit: bool) -> Decision {
        if let Some(redis) = &self.redis {
            match take_in_redis(redis, key, cost, policy, debit).await {
                Ok(decision) => return decision,
                Err(err) => tracing::debug!(error = %err, "rate limit: in-process fallback"),
            }
        }
        self.memory.take(key, cost, policy, debit)
    }

    /// How many buckets this process holds (for tests and metrics).
    pub fn memory_entries(&self) -> u64 {
        self.memory.cache.run_pending_tasks();
        self.memory.cache.entry_count()
    }
}

/// Most bytes of bucket keys (plus a fixed overhead each) kept in process: about 200,000 buckets.
pub const MEMORY_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// What one bucket costs beyond its key, for the weigher.
const BUCKET_OVERHEAD: u32 = 64;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
    policy: BucketPolicy,
}

/// Each bucket expires once it would be full again.
struct UntilFull;

impl Expiry<String, Bucket> for UntilFull {
    fn expire_after_create(&self, _: &String, bucket: &Bucket, _: Instant) -> Option<Duration> {
        Some(bucket.policy.time_to_full(bucket.tokens))
    }

    fn expire_after_update(
        &self,
        _: &String,
        bucket: &Bucket,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(bucket.policy.time_to_full(bucket.tokens))
    }
}

/// Buckets of this process, bounded in bytes and expiring by their own policy.
struct MemoryBuckets {
    cache: Cache<String, Bucket>,
}

impl MemoryBuckets {
    fn new(max_bytes: u64) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|key: &String, _: &Bucket| {
                    u32::try_from(key.len())
                        .unwrap_or(u32::MAX)
                        .saturating_add(BUCKET_OVERHEAD)
                })
                .expire_after(UntilFull)
                .build(),
        }
    }

    fn take(&self, key: &str, cost: f64, policy: BucketPolicy, debit: bool) -> Decision {
        let now = Instant::now();
        let mut decision = Decision {
            allowed: false,
            remaining: 0.0,
            policy,
        };
        self.cache.entry_by_ref(key).and_upsert_with(|existing| {
            let mut tokens = existing.map_or(policy.capacity, |entry| {
                let bucket = entry.into_value();
                refilled(bucket, now, policy)
            });
            let allowed = debit || cost <= tokens;
            if allowed {
                tokens = (tokens - cost).clamp(-policy.capacity, policy.capacity);
            }
            decision = Decision {
                allowed,
                remaining: tokens,
                policy,
            };
            Bucket {
                tokens,
                updated: now,
                policy,
            }
        });
        decision
    }
}

fn refilled(bucket: Bucket, now: Instant, policy: BucketPolicy) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
    (bucket.tokens + elapsed * policy.restore_per_second).min(policy.capacity)
}

/// The bucket in Redis: refill by Redis' own clock (so instances need not agree on time), take,
/// store, and expire the key once it would be full anyway.
static TAKE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local debit = ARGV[4] == '1'
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1]) or capacity
local updated = tonumber(state[2]) or now
if now > updated then
  tokens = math.min(capacity, tokens + (now - updated) * rate)
end
local allowed = 0
if debit or cost <= tokens then
  tokens = math.max(-capacity, math.min(capacity, tokens - cost))
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate * 1000) + 1000)
return {allowed, tostring(tokens)}
",
    )
});

async fn take_in_redis(
    redis: &RedisClient,
    key: &str,
    cost: f64,
    policy: BucketPolicy,
    debit: bool,
) -> Result<Decision, crate::redis_client::RedisError> {
    let key = redis.key(&format!("bucket:{key}"));
    let (allowed, remaining): (i64, String) = redis
        .run("bucket.take", |mut connection| async move {
            TAKE_SCRIPT
                .key(key)
                .arg(policy.capacity)
                .arg(policy.restore_per_second)
                .arg(cost)
                .arg(if debit { "1" } else { "0" })
                .invoke_async(&mut connection)
                .await
        })
        .await?;
    Ok(Decision {
        allowed: allowed == 1,
        remaining: remaining.parse().unwrap_or(0.0),
        policy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: BucketPolicy = BucketPolicy {
        capacity: 10.0,
        restore_per_second: 1.0,
    };

    #[test]
    fn a_bucket_refuses_what_it_does_not_hold_and_refunds_up_to_capacity() {
        let buckets = MemoryBuckets::new(MEMORY_MAX_BYTES);
        assert!(buckets.take("a", 8.0, POLICY, false).allowed);
        let refused = buckets.take("a", 8.0, POLICY, false);
        assert!(!refused.allowed);
        assert!(refused.remaining < 3.0);
        assert_eq!(refused.retry_after_seconds(8.0), 6);
        assert!(
            buckets.take("b", 8.0, POLICY, false).allowed,
            "buckets are per key"
        );
        let refunded = buckets.take("a", -100.0, POLICY, false);
        assert!(refunded.allowed);
        assert!((refunded.remaining - POLICY.capacity).abs() < f64::EPSILON);
        assert_eq!(refunded.reset_seconds(), 0);
    }

    #[test]
    fn a_debit_goes_into_debt_down_to_the_capacity_and_refuses_until_refilled() {
        let buckets = MemoryBuckets::new(MEMORY_MAX_BYTES);
        let debited = buckets.take("d", 15.0, POLICY, true);
        assert!(debited.allowed);
        assert!((debited.remaining + 5.0).abs() < 0.1, "{debited:?}");
        assert!(!buckets.take("d", 0.0, POLICY, false).allowed, "in debt");
        let floor = buckets.take("d", 1000.0, POLICY, true);
        assert!((floor.remaining + POLICY.capacity).abs() < 0.1, "{floor:?}");
    }

    #[test]
    fn the_buckets_stay_within_their_bytes() {
        let buckets = MemoryBuckets::new(64 * 1024);
        for i in 0..10_000 {
            buckets.take(&format!("key:{i}"), 1.0, POLICY, false);
        }
        buckets.cache.run_pending_tasks();
        assert!(
            buckets.cache.weighted_size() <= 64 * 1024,
            "{}",
            buckets.cache.weighted_size()
        );
    }

    #[test]
    fn a_bucket_expires_once_it_would_be_full() {
        let policy = BucketPolicy {
            capacity: 1.0,
            restore_per_second: 50.0,
        };
        let buckets = MemoryBuckets::new(MEMORY_MAX_BYTES);
        buckets.take("quick", 1.0, policy, false);
        assert!(buckets.cache.contains_key("quick"));
        std::thread::sleep(Duration::from_millis(60));
        assert!(
            !buckets.cache.contains_key("quick"),
            "a full bucket is forgotten"
        );
    }
}
