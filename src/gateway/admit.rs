//! The admit stage: the exchange's requested cost is taken from the client's budget before
//! anything runs or is registered; what was not used is given back when it settles.

use super::{Exchange, Gateway, OperationState};
use crate::buckets::{BucketPolicy, Buckets, Decision};
use crate::config::RateLimitSettings;
use crate::error::AppError;

/// Each client's bucket of cost points.
#[derive(Clone)]
pub struct Budget {
    buckets: Buckets,
    policy: BucketPolicy,
}

impl Budget {
    /// The budget the settings describe; `None` when rate limiting is off.
    pub fn new(buckets: Buckets, settings: &RateLimitSettings) -> Option<Self> {
        settings.enabled.then(|| Self {
            buckets,
            policy: BucketPolicy {
                capacity: f64::from(settings.capacity),
                restore_per_second: f64::from(settings.restore_rate),
            },
        })
    }
}

impl Gateway {
    /// Takes `cost` points (gives them back when negative) from `client`'s budget; its state
    /// after, or `None` when rate limiting is off.
    pub async fn charge(&self, client: &str, cost: f64) -> Option<Decision> {
        let budget = self.budget.as_ref()?;
        Some(
            budget
                .buckets
                .take(&format!("cost:{client}"), cost, budget.policy)
                .await,
        )
    }

    /// Takes `cost` points from `client`'s budget for work already done, into debt if need be;
    /// its state after, or `None` when rate limiting is off.
    pub async fn debit(&self, client: &str, cost: f64) -> Option<Decision> {
        let budget = self.budget.as_ref()?;
        Some(
            budget
                .buckets
                .debit(&format!("cost:{client}"), cost, budget.policy)
                .await,
        )
    }

    /// Charges the exchange's requested cost; over budget, every operation is refused with
    /// RATE_LIMITED.
    pub async fn admit(&self, exchange: &mut Exchange) {
        let requested = exchange.charged();
        exchange.throttle = self.charge(&exchange.caller.client, requested as f64).await;
        if let Some(decision) = exchange.throttle.filter(|decision| !decision.allowed) {
            self.metrics.rate_limited();
            let error = AppError::RateLimited {
                message: format!(
                    "Rate limited: this request costs {requested} points and {} are available",
                    decision.remaining.max(0.0).floor()
                ),
                retry_after_seconds: decision.retry_after_seconds(requested as f64),
            }
            .to_request_error();
            for operation in &mut exchange.operations {
                operation.state = OperationState::Refused(vec![error.clone()]);
            }
        }
    }
}
