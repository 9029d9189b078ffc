//! `extensions.cost`: what an operation asked for, what it used, and the client's budget.

use async_graphql::Value;

use crate::rate_limit::Decision;

/// The cost figures of one response.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostReport {
    /// The cost computed before execution.
    pub requested: u64,
    /// The cost of what was returned.
    pub actual: u64,
    /// The client's bucket after this request (none when rate limiting is off).
    pub throttle: Option<Decision>,
}

impl CostReport {
    /// `{ requestedQueryCost actualQueryCost throttleStatus { maximumAvailable currentlyAvailable restoreRate } }`.
    pub fn to_value(&self) -> Value {
        let throttle = self.throttle.map_or(Value::Null, |decision| {
            object([
                ("maximumAvailable", number(decision.policy.capacity)),
                ("currentlyAvailable", number(decision.remaining.floor())),
                ("restoreRate", number(decision.policy.restore_per_second)),
            ])
        });
        object([
            ("requestedQueryCost", Value::from(self.requested)),
            ("actualQueryCost", Value::from(self.actual)),
            ("throttleStatus", throttle),
        ])
    }
}

fn number(value: f64) -> Value {
    if value.fract() == 0.0 && value.abs() < 9.0e15 {
        Value::from(value as i64)
    } else {
        Value::from(value)
    }
}

fn object<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Object(
        entries
            .into_iter()
            .map(|(key, value)| (async_graphql::Name::new(key), value))
            .collect(),
    )
}
