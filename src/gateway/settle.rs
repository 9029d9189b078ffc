//! The settle stage: what each operation actually cost, the refund of what was not used, the
//! `extensions` of each answer and a stable `extensions.code` on every error.

use async_graphql::{ErrorExtensionValues, Name, ServerError, Value};

use super::cost::CostReport;
use super::{Answer, Exchange, Gateway, OperationState, Settled};
use crate::error::code;

impl Gateway {
    /// Settles the exchange: refunds the unused cost and builds the answers. `request_id` goes
    /// into internal errors, so that a report can be matched with the logs.
    pub async fn settle(&self, exchange: Exchange, request_id: &str) -> Settled {
        let requested = exchange.charged();
        let actual = exchange.operations.iter().fold(0u64, |sum, operation| {
            let actual = match &operation.state {
                OperationState::Ran { outcome, .. } => outcome.actual,
                _ => 0,
            };
            sum.saturating_add(actual)
        });
        let mut throttle = exchange.throttle;
        let admitted = throttle.is_some_and(|decision| decision.allowed);
        if admitted && actual < requested {
            throttle = self
                .charge(&exchange.caller.client, -((requested - actual) as f64))
                .await;
        } else if admitted && actual > requested {
            // The answer carried more than was priced (its bytes): paid now, into debt if need be.
            throttle = self
                .debit(&exchange.caller.client, (actual - requested) as f64)
                .await;
        }
        let produced = exchange.operations.iter().any(|operation| {
            matches!(&operation.state, OperationState::Ran { outcome, .. } if outcome.produced)
        });
        let single = !exchange.batch && exchange.operations.len() == 1;
        let mut policy = None;
        let mut etag = None;
        let mut query = false;
        let mut codes = Vec::new();
        let mut retry_after = None;
        let mut unavailable = false;
        let mut answers = Vec::with_capacity(exchange.operations.len());
        let mut deprecated_used: Vec<String> = Vec::new();
        for operation in exchange.operations {
            let (data, mut errors, deprecated, actual) = match operation.state {
                OperationState::Ran {
                    outcome,
                    deprecated,
                    query: is_query,
                } => {
                    if single {
                        query = is_query;
                        policy = outcome.policy.filter(|_| outcome.errors.is_empty());
                        etag = outcome.etag.clone();
                    }
                    let data = (!outcome.request_error).then_some(outcome.data);
                    let errors = outcome.errors.as_ref().clone();
                    (data, errors, deprecated, outcome.actual)
                }
                OperationState::Refused(errors) => (None, errors, Vec::new(), 0),
                OperationState::Ready(_) => (None, Vec::new(), Vec::new(), 0),
            };
            // What preparing the document cost is part of both figures.
            let requested = operation.requested.saturating_add(operation.preparation);
            let actual = actual.saturating_add(operation.preparation);
            self.metrics.cost(requested, actual);
            for error in &mut errors {
                let code = classify(error, request_id);
                self.metrics.error(&code);
                if code == code::RATE_LIMITED
                    && let Some(Value::Number(seconds)) = error
                        .extensions
                        .as_ref()
                        .and_then(|extensions| extensions.get("retryAfterSeconds"))
                {
                    retry_after = retry_after.max(seconds.as_u64());
                }
                unavailable |= code == code::SERVICE_UNAVAILABLE;
                codes.push(code);
            }
            let mut extensions = async_graphql::indexmap::IndexMap::new();
            extensions.insert(
                Name::new("cost"),
                CostReport {
                    requested,
                    actual,
                    throttle,
                }
                .to_value(),
            );
            if !deprecated.is_empty() {
                extensions.insert(Name::new("deprecations"), self.deprecations(&deprecated));
                for (field, _) in &deprecated {
                    if !deprecated_used.contains(field) {
                        deprecated_used.push(field.clone());
                    }
                }
            }
            answers.push(Answer {
                data,
                errors,
                extensions: Value::Object(extensions),
            });
        }
        let outcome = if codes.is_empty() {
            "ok".to_owned()
        } else {
            format!("errors: {}", codes.join(","))
        };
        tracing::Span::current().record("outcome", outcome.as_str());
        Settled {
            answers,
            batch: exchange.batch,
            throttle,
            cache_status: exchange.cache_status,
            deprecated: deprecated_used,
            policy: policy.filter(|_| single),
            etag: etag.filter(|_| single),
            retry_after,
            unavailable,
            query,
            produced,
        }
    }

    /// Counts and logs the deprecated fields an operation used; `[{ field, reason }]` for the
    /// caller.
    fn deprecations(&self, deprecated: &[(String, String)]) -> Value {
        let mut list = Vec::with_capacity(deprecated.len());
        for (field, reason) in deprecated {
            self.metrics.deprecated_field_used(field);
            tracing::info!(field = %field, "deprecated field used");
            let mut entry = async_graphql::indexmap::IndexMap::new();
            entry.insert(Name::new("field"), Value::from(field.as_str()));
            entry.insert(Name::new("reason"), Value::from(reason.as_str()));
            list.push(Value::Object(entry));
        }
        Value::List(list)
    }
}

/// Gives every error a stable `extensions.code`, and internal errors the request id; the code.
pub(super) fn classify(error: &mut ServerError, request_id: &str) -> String {
    let extensions = error
        .extensions
        .get_or_insert_with(ErrorExtensionValues::default);
    let code = match extensions.get("code") {
        Some(Value::String(code)) => code.clone(),
        _ => {
            // Errors without a code come from async-graphql itself: validation or variables.
            let code = if error.path.is_empty() {
                code::GRAPHQL_VALIDATION_FAILED
            } else {
                code::BAD_USER_INPUT
            };
            extensions.set("code", code);
            code.to_owned()
        }
    };
    if code == code::INTERNAL_SERVER_ERROR {
        extensions.set("requestId", request_id);
    }
    code
}
