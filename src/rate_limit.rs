//! Token buckets that refill continuously: in Redis when configured (one atomic script per call, so
//! every instance shares one budget), in process otherwise or while Redis does not answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

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
pub struct RateLimiter {
    memory: Arc<MemoryBuckets>,
    redis: Option<RedisClient>,
}

impl RateLimiter {
    /// Buckets in Redis when `redis` is given (falling back to this process when it fails), in
    /// this process otherwise.
    pub fn new(redis: Option<RedisClient>) -> Self {
        Self {
            memory: Arc::new(MemoryBuckets::default()),
            redis,
        }
    }

    /// Takes `cost` tokens from bucket `key` when it holds that many; a negative `cost` gives
    /// tokens back (never above capacity) and is always allowed. A `cost` of 0 reads the bucket.
    pub async fn take(&self, key: &str, cost: f64, policy: BucketPolicy) -> Decision {
        if let Some(redis) = &self.redis {
            match take_in_redis(redis, key, cost, policy).await {
                Ok(decision) => return decision,
                Err(err) => tracing::debug!(error = %err, key, "rate limit: in-process fallback"),
            }
        }
        self.memory.take(key, cost, policy)
    }
}

/// Buckets of this process; full buckets are forgotten when the map grows large.
#[derive(Default)]
struct MemoryBuckets {
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Buckets kept before full ones are swept.
const MEMORY_SWEEP_AT: usize = 50_000;

impl MemoryBuckets {
    fn take(&self, key: &str, cost: f64, policy: BucketPolicy) -> Decision {
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MEMORY_SWEEP_AT {
            buckets.retain(|_, bucket| refilled(*bucket, now, policy) < policy.capacity);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: policy.capacity,
            updated: now,
        });
        let mut tokens = refilled(*bucket, now, policy);
        let allowed = cost <= tokens;
        if allowed {
            tokens = (tokens - cost).min(policy.capacity);
        }
        *bucket = Bucket {
            tokens,
            updated: now,
        };
        Decision {
            allowed,
            remaining: tokens,
            policy,
        }
    }
}

fn refilled(bucket: Bucket, now: Instant, policy: BucketPolicy) -> f64 {
    let elapsed = now.duration_since(bucket.updated).as_secs_f64();
    (bucket.tokens + elapsed * policy.restore_per_second).min(policy.capacity)
}

/// The bucket in Redis: refill by Redis' own clock (so instances need not agree on time), take,
/// store, and expire the key once it would be full anyway.
const TAKE_SCRIPT: &str = r"
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1]) or capacity
local updated = tonumber(state[2]) or now
if now > updated then
  tokens = math.min(capacity, tokens + (now - updated) * rate)
end
local allowed = 0
if cost <= tokens then
  tokens = math.min(capacity, tokens - cost)
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate * 1000) + 1000)
return {allowed, tostring(tokens)}
";

async fn take_in_redis(
    redis: &RedisClient,
    key: &str,
    cost: f64,
    policy: BucketPolicy,
) -> Result<Decision, crate::redis_client::RedisError> {
    static SCRIPT: std::sync::LazyLock<redis::Script> =
        std::sync::LazyLock::new(|| redis::Script::new(TAKE_SCRIPT));
    let key = redis.key(&format!("bucket:{key}"));
    let (allowed, remaining): (i64, String) = redis
        .run(|mut connection| async move {
            SCRIPT
                .key(key)
                .arg(policy.capacity)
                .arg(policy.restore_per_second)
                .arg(cost)
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
        let buckets = MemoryBuckets::default();
        assert!(buckets.take("a", 8.0, POLICY).allowed);
        let refused = buckets.take("a", 8.0, POLICY);
        assert!(!refused.allowed);
        assert!(refused.remaining < 3.0);
        assert_eq!(refused.retry_after_seconds(8.0), 6);
        assert!(
            buckets.take("b", 8.0, POLICY).allowed,
            "buckets are per key"
        );
        let refunded = buckets.take("a", -100.0, POLICY);
        assert!(refunded.allowed);
        assert!((refunded.remaining - POLICY.capacity).abs() < f64::EPSILON);
        assert_eq!(refunded.reset_seconds(), 0);
    }
}
