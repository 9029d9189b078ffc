//! Throttling of sign-in and sign-up: failed logins per account and per client address, and
//! registrations per client address, in the shared token buckets.

use std::net::IpAddr;

use crate::error::{AppError, AppResult};
use crate::rate_limit::{BucketPolicy, RateLimiter};

/// The address a request comes from (the peer, or the trusted proxy header's client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// How many attempts are allowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThrottlePolicy {
    /// Failed logins per account.
    pub login_per_account: BucketPolicy,
    /// Failed logins per client address.
    pub login_per_address: BucketPolicy,
    /// Registrations per client address.
    pub registrations_per_address: BucketPolicy,
}

/// Sign-in and sign-up throttling.
#[derive(Clone)]
pub struct AuthThrottle {
    limiter: RateLimiter,
    policy: ThrottlePolicy,
}

/// A login attempt that holds one token of each of its buckets until it succeeds.
#[derive(Debug)]
pub struct LoginAttempt {
    keys: [(String, BucketPolicy); 2],
}

impl AuthThrottle {
    /// Throttling with `policy` in `limiter`'s buckets.
    pub fn new(limiter: RateLimiter, policy: ThrottlePolicy) -> Self {
        Self { limiter, policy }
    }

    /// Takes one attempt for `email` from `address`; RATE_LIMITED when either is used up.
    /// Pass the attempt to [`Self::login_succeeded`] when the password was right.
    pub async fn begin_login(&self, email: &str, address: IpAddr) -> AppResult<LoginAttempt> {
        let keys = [
            (
                format!("login:account:{}", email.trim().to_lowercase()),
                self.policy.login_per_account,
            ),
            (
                format!("login:address:{address}"),
                self.policy.login_per_address,
            ),
        ];
        let mut taken: Vec<&(String, BucketPolicy)> = Vec::new();
        for entry in &keys {
            let decision = self.limiter.take(&entry.0, 1.0, entry.1).await;
            if !decision.allowed {
                for (key, policy) in taken {
                    self.limiter.take(key, -1.0, *policy).await;
                }
                return Err(AppError::RateLimited {
                    message: "Too many failed sign-in attempts".into(),
                    retry_after_seconds: decision.retry_after_seconds(1.0),
                });
            }
            taken.push(entry);
        }
        Ok(LoginAttempt { keys })
    }

    /// Gives the attempt back: only failed logins count.
    pub async fn login_succeeded(&self, attempt: LoginAttempt) {
        for (key, policy) in &attempt.keys {
            self.limiter.take(key, -1.0, *policy).await;
        }
    }

    /// Counts one registration from `address`; RATE_LIMITED when there were too many.
    pub async fn register(&self, address: IpAddr) -> AppResult<()> {
        let policy = self.policy.registrations_per_address;
        let decision = self
            .limiter
            .take(&format!("register:address:{address}"), 1.0, policy)
            .await;
        if decision.allowed {
            Ok(())
        } else {
            Err(AppError::RateLimited {
                message: "Too many registrations from this address".into(),
                retry_after_seconds: decision.retry_after_seconds(1.0),
            })
        }
    }
}
