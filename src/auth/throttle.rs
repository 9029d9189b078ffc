//! Throttling of sign-in and sign-up: failed logins per account and per client address, and
//! registrations per client address, in the shared token buckets.
//!
//! Keys are bounded whatever the client sends: an account is the user found (its id) or, for an
//! unknown email, a hash of the normalised email; an address is an IPv4 address or the /64 network
//! of an IPv6 one.

use std::fmt;
use std::net::IpAddr;

use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;

use crate::buckets::{BucketPolicy, Buckets};
use crate::error::{AppError, AppResult};

/// The address a request comes from (the peer, or the trusted proxies' client), as a bucket: an
/// IPv4 address, or the /64 network of an IPv6 address (one host usually holds a whole /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddress(IpAddr);

impl ClientAddress {
    /// The bucket of `address`.
    pub fn new(address: IpAddr) -> Self {
        match address {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let network = u128::from(v6) & !((1u128 << 64) - 1);
                    Self(IpAddr::V6(network.into()))
                }
            },
        }
    }

    /// The address (for IPv6, the first address of its /64).
    pub fn ip(&self) -> IpAddr {
        self.0
    }
}

impl fmt::Display for ClientAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// The account a login attempt is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountKey {
    /// An existing user: every spelling of their email shares this one budget.
    User(i64),
    /// No user has this email: a hash of it, trimmed, NFKC-normalised and lowercased.
    Unknown(String),
}

impl AccountKey {
    /// The key of an email that matches no user.
    pub fn unknown(email: &str) -> Self {
        let normalized: String = email.trim().nfkc().collect::<String>().to_lowercase();
        let digest = Sha256::digest(normalized.as_bytes());
        Self::Unknown(digest.iter().map(|byte| format!("{byte:02x}")).collect())
    }

    fn bucket(&self) -> String {
        match self {
            Self::User(id) => format!("login:user:{id}"),
            Self::Unknown(hash) => format!("login:email:{hash}"),
        }
    }
}

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
    buckets: Buckets,
    policy: ThrottlePolicy,
}

/// A login attempt that holds one token of each of its buckets until it succeeds.
#[derive(Debug, Default)]
pub struct LoginAttempt {
    taken: Vec<(String, BucketPolicy)>,
}

fn too_many(retry_after_seconds: u64) -> AppError {
    AppError::RateLimited {
        message: "Too many failed sign-in attempts".into(),
        retry_after_seconds,
    }
}

impl AuthThrottle {
    /// Throttling with `policy` in `buckets`.
    pub fn new(buckets: Buckets, policy: ThrottlePolicy) -> Self {
        Self { buckets, policy }
    }

    /// Takes one attempt from `address`; RATE_LIMITED when it is used up. Continue with
    /// [`Self::for_account`] once the account is known.
    pub async fn begin_login(&self, address: ClientAddress) -> AppResult<LoginAttempt> {
        let mut attempt = LoginAttempt::default();
        self.take(
            &mut attempt,
            format!("login:address:{address}"),
            self.policy.login_per_address,
        )
        .await?;
        Ok(attempt)
    }

    /// Takes one attempt for `account` into `attempt`; RATE_LIMITED (giving back what the attempt
    /// took) when it is used up.
    pub async fn for_account(
        &self,
        attempt: &mut LoginAttempt,
        account: &AccountKey,
    ) -> AppResult<()> {
        self.take(attempt, account.bucket(), self.policy.login_per_account)
            .await
    }

    async fn take(
        &self,
        attempt: &mut LoginAttempt,
        key: String,
        policy: BucketPolicy,
    ) -> AppResult<()> {
        let decision = self.buckets.take(&key, 1.0, policy).await;
        if decision.allowed {
            attempt.taken.push((key, policy));
            return Ok(());
        }
        for (key, policy) in attempt.taken.drain(..) {
            self.buckets.take(&key, -1.0, policy).await;
        }
        Err(too_many(decision.retry_after_seconds(1.0)))
    }

    /// Gives the attempt back: only failed attempts count.
    pub async fn succeeded(&self, attempt: LoginAttempt) {
        for (key, policy) in &attempt.taken {
            self.buckets.take(key, -1.0, *policy).await;
        }
    }

    /// Counts one registration from `address`; RATE_LIMITED when there were too many.
    pub async fn register(&self, address: ClientAddress) -> AppResult<()> {
        let policy = self.policy.registrations_per_address;
        let decision = self
            .buckets
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_share_their_64_and_mapped_ipv4_is_ipv4() {
        let a = ClientAddress::new("2001:db8:1:2:aaaa::1".parse().expect("ip"));
        let b = ClientAddress::new("2001:db8:1:2:bbbb::2".parse().expect("ip"));
        let other = ClientAddress::new("2001:db8:1:3::1".parse().expect("ip"));
        assert_eq!(a, b);
        assert_ne!(a, other);
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        let mapped = ClientAddress::new("::ffff:10.0.0.1".parse().expect("ip"));
        assert_eq!(mapped.to_string(), "10.0.0.1");
    }

    #[test]
    fn unknown_emails_are_hashed_to_a_bounded_key() {
        let long = "x".repeat(512 * 1024);
        assert_eq!(
            AccountKey::unknown(&long).bucket().len(),
            "login:email:".len() + 64
        );
        assert_eq!(
            AccountKey::unknown(" Bob@Example.COM "),
            AccountKey::unknown("bob@example.com")
        );
    }
}
