//! Operations over streaming transports (a WebSocket, Server-Sent Events): the same stages as over
//! HTTP (persisted and trusted documents, limits, cost, budget, auth), then
//!
//! - a query or mutation settles as over HTTP and answers once (never from the response cache);
//! - a subscription that was admitted opens: its document runs once to check its arguments and
//!   say which changes interest it, then once more for each such change, with fresh loaders and
//!   the subscriber's own viewer (so `favorited` and `following` are theirs). Each event is
//!   charged its actual cost to the subscriber's budget; when the budget is spent the subscription
//!   completes with RATE_LIMITED. Before each event the token is checked again: an expired or
//!   revoked token ends the subscription, and the transport closes the connection.
//!
//! A subscriber that falls further behind than the change feed's buffer is dropped as a slow
//! consumer: what it would hold is bounded, never grown.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::Value;
use async_graphql::parser::types::OperationType;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::broadcast::{self, error::RecvError};

use super::cost::{self, CostReport};
use super::plan::Planner;
use super::serialize;
use super::settle::classify;
use super::{Answer, Caller, Exchange, Gateway, Operation, OperationState, Prepared, Transport};
use crate::auth::{ClientAddress, TokenClaims, Viewer};
use crate::cache::Recorder;
use crate::changes::Change;
use crate::error::{AppError, AppResult, code};
use crate::graphql::loading;
use crate::graphql::response_size::ResponseMeter;
use crate::graphql::subscription::{SubscriptionScope, SubscriptionStep};

/// What streaming transports allow: everything, never from the cache.
const STREAMING: Transport = Transport {
    mutations: true,
    cacheable: false,
    subscriptions: true,
};

/// Who subscribes: the caller, and the token that signed them in (checked before each event).
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// The caller.
    pub caller: Caller,
    /// The token's claims; `None` when anonymous.
    pub claims: Option<TokenClaims>,
}

/// Why the server ends a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The subscriber fell too far behind the changes.
    SlowConsumer,
    /// The token expired or was revoked.
    Unauthenticated,
}

impl CloseReason {
    /// The label of the reason, for metrics and messages.
    pub fn label(self) -> &'static str {
        match self {
            Self::SlowConsumer => "slow_consumer",
            Self::Unauthenticated => "unauthenticated",
        }
    }
}

/// What a streaming transport writes next.
#[derive(Debug)]
pub enum Delivery {
    /// An answer: a subscription's event, or the one answer of a query or mutation.
    Next(Box<async_graphql::Response>),
    /// The connection must end.
    Close(CloseReason),
}

impl Gateway {
    /// The subscriber with this `Authorization` value (or none) from `address`; UNAUTHENTICATED for
    /// a token that is not valid or was revoked.
    pub async fn subscriber(
        &self,
        authorization: Option<&str>,
        address: ClientAddress,
    ) -> AppResult<Subscriber> {
        let claims = crate::auth::credentials(authorization, &self.tokens)?;
        let viewer = match claims {
            None => Viewer::anonymous(),
            Some(claims) => self.viewer_of(claims).await?,
        };
        Ok(Subscriber {
            caller: Caller::new(viewer, address),
            claims,
        })
    }

    /// Whether `subscriber`'s token is still good: not expired, not revoked. Streaming transports
    /// ask before each operation and event, and while a connection idles.
    pub async fn still_signed_in(&self, subscriber: &Subscriber) -> bool {
        let Some(claims) = subscriber.claims else {
            return true;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        claims.expires_at > now && self.viewer_of(claims).await.is_ok()
    }

    /// The viewer a token names, its version read on the primary; while the primary does not
    /// answer, on a replica (never remembered from there), so that signed-in reads go on in
    /// read-only mode.
    async fn viewer_of(&self, claims: TokenClaims) -> AppResult<Viewer> {
        let Some(replicas) = &self.replicas else {
            return self.revocations.viewer(claims).await;
        };
        let standby = replicas.standby();
        if !replicas.primary_answers()
            && let Some(replica) = &standby
        {
            return self.revocations.viewer_on_replica(claims, replica).await;
        }
        match (self.revocations.viewer(claims).await, standby) {
            (Err(AppError::Unavailable(_)), Some(replica)) => {
                self.revocations.viewer_on_replica(claims, &replica).await
            }
            (answer, _) => answer,
        }
    }

    /// Runs one operation sent over a streaming transport: what to write, in order; the stream
    /// ends when the operation completes.
    pub async fn stream(
        self: &Arc<Self>,
        raw: super::RawOperation,
        subscriber: Subscriber,
        request_id: String,
    ) -> BoxStream<'static, Delivery> {
        // Like an HTTP request, one operation holds one of the permits while it is prepared and
        // runs (a subscription: while it opens; each event takes one again).
        let Ok(_permit) = Arc::clone(&self.in_flight).try_acquire_owned() else {
            return busy();
        };
        let operation = match Box::pin(self.prepare(raw, STREAMING, &subscriber.caller)).await {
            Ok(operation) => operation,
            Err(rejection) => Operation::refused(
                crate::error::request_error(rejection.to_string(), code::BAD_REQUEST),
                0,
            ),
        };
        let mut exchange = Exchange::new(subscriber.caller.clone(), false, vec![operation]);
        self.admit(&mut exchange).await;
        let opens = matches!(
            exchange.operations.first().map(|operation| &operation.state),
            Some(OperationState::Ready(prepared))
                if prepared.operation_type == OperationType::Subscription
        );
        if !opens {
            let executed = tokio::time::timeout(
                self.execution_timeout,
                Box::pin(self.execute(&mut exchange, STREAMING)),
            )
            .await;
            if executed.is_err() {
                return too_long();
            }
            let settled = self.settle(exchange, &request_id).await;
            let answers: Vec<Delivery> = settled
                .answers
                .into_iter()
                .map(|answer| Delivery::Next(Box::new(response_of(answer))))
                .collect();
            return futures::stream::iter(answers).boxed();
        }
        let Some(Operation {
            requested,
            state: OperationState::Ready(mut prepared),
            ..
        }) = exchange.operations.pop()
        else {
            return futures::stream::empty().boxed();
        };
        // A persisted subscription is registered once admitted, as a query is.
        if let Some((hash, query)) = prepared.register.take() {
            self.persisted
                .register(&subscriber.caller.client, &hash, &query)
                .await;
        }
        self.metrics.cost(requested, requested);
        self.open(Arc::from(prepared), requested, subscriber, request_id)
            .await
    }

    /// Opens an admitted subscription: its events, or the errors that refused it.
    async fn open(
        self: &Arc<Self>,
        prepared: Arc<Prepared>,
        requested: u64,
        subscriber: Subscriber,
        request_id: String,
    ) -> BoxStream<'static, Delivery> {
        // Listening starts before the subscription opens: nothing committed after it opened is
        // missed.
        let changes = self.changes.subscribe();
        let scope = Arc::new(SubscriptionScope::default());
        let opened = self
            .run_step(&prepared, &subscriber.caller, &scope, None)
            .await;
        if let Some(mut refused) = opened
            .into_iter()
            .find(|response| !response.errors.is_empty())
        {
            for error in &mut refused.errors {
                let code = classify(error, &request_id);
                self.metrics.error(&code);
            }
            return futures::stream::iter([Delivery::Next(Box::new(refused))]).boxed();
        }
        // An open subscription counts once, as it opens.
        self.record_usage(&prepared, &subscriber.caller);
        let following = Following {
            gateway: Arc::clone(self),
            deadline: subscriber.claims.map(|claims| expiry(claims.expires_at)),
            prepared,
            requested,
            subscriber,
            scope,
            changes,
            pending: VecDeque::new(),
            done: false,
            request_id,
            _open: OpenSubscription::new(Arc::clone(&self.metrics)),
        };
        futures::stream::unfold(following, Following::next).boxed()
    }

    /// Runs the subscription's document once: when it opens (`change` is `None`) or for `change`.
    async fn run_step(
        &self,
        prepared: &Prepared,
        caller: &Caller,
        scope: &Arc<SubscriptionScope>,
        change: Option<Arc<Change>>,
    ) -> Vec<async_graphql::Response> {
        // Each run answers one event: bounded like one response.
        let meter = Arc::new(ResponseMeter::new(self.max_response_bytes));
        let (request, batches) = self.request_for(prepared, caller, &self.db, &meter);
        let request = request.data(Recorder::default()).data(SubscriptionStep {
            scope: Arc::clone(scope),
            change,
        });
        let responses = self.schema.execute_stream(request).collect::<Vec<_>>();
        loading::drive(responses, batches).await
    }
}

/// The refusal of an operation while every permit is taken.
fn busy() -> BoxStream<'static, Delivery> {
    let refused = refusal(
        "The server is busy: try again shortly",
        code::SERVICE_UNAVAILABLE,
    );
    futures::stream::iter([Delivery::Next(Box::new(refused))]).boxed()
}

/// The answer of an operation that ran past the execution timeout.
fn too_long() -> BoxStream<'static, Delivery> {
    futures::stream::iter([Delivery::Next(Box::new(timed_out()))]).boxed()
}

fn timed_out() -> async_graphql::Response {
    refusal(
        "The operation took too long and was stopped",
        code::SERVICE_UNAVAILABLE,
    )
}

/// The instant a token expiring at `expires_at` (seconds since the epoch) expires.
pub fn expiry(expires_at: u64) -> tokio::time::Instant {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    tokio::time::Instant::now() + Duration::from_secs(expires_at.saturating_sub(now))
}

/// An answer as a GraphQL response.
fn response_of(answer: Answer) -> async_graphql::Response {
    let data = answer
        .data
        .and_then(|data| serde_json::from_slice::<Value>(&data).ok())
        .unwrap_or(Value::Null);
    let mut response = async_graphql::Response::new(data);
    response.errors = answer.errors;
    if let Value::Object(extensions) = answer.extensions {
        response.extensions = extensions
            .into_iter()
            .map(|(name, value)| (name.to_string(), value))
            .collect();
    }
    response
}

/// Counts an open subscription while it lives.
struct OpenSubscription(Arc<crate::metrics::Metrics>);

impl OpenSubscription {
    fn new(metrics: Arc<crate::metrics::Metrics>) -> Self {
        metrics.subscriptions(1.0);
        Self(metrics)
    }
}

impl Drop for OpenSubscription {
    fn drop(&mut self) {
        self.0.subscriptions(-1.0);
    }
}

/// An open subscription, following the changes.
struct Following {
    gateway: Arc<Gateway>,
    prepared: Arc<Prepared>,
    requested: u64,
    subscriber: Subscriber,
    deadline: Option<tokio::time::Instant>,
    scope: Arc<SubscriptionScope>,
    changes: broadcast::Receiver<Arc<Change>>,
    pending: VecDeque<Delivery>,
    done: bool,
    request_id: String,
    _open: OpenSubscription,
}

impl Following {
    /// The next delivery, and the subscription to follow after it; `None` once it completed.
    async fn next(mut self) -> Option<(Delivery, Self)> {
        loop {
            if let Some(delivery) = self.pending.pop_front() {
                return Some((delivery, self));
            }
            if self.done {
                return None;
            }
            let received = match self.deadline {
                Some(deadline) => tokio::select! {
                    received = self.changes.recv() => received,
                    () = tokio::time::sleep_until(deadline) => {
                        return Some(self.close(CloseReason::Unauthenticated));
                    }
                },
                None => self.changes.recv().await,
            };
            match received {
                Ok(change) => self.deliver(change).await,
                Err(RecvError::Lagged(missed)) => {
                    tracing::info!(
                        missed,
                        client = %self.subscriber.caller.client,
                        "subscriber dropped: too slow to take the changes"
                    );
                    return Some(self.close(CloseReason::SlowConsumer));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }

    fn close(mut self, reason: CloseReason) -> (Delivery, Self) {
        self.done = true;
        self.gateway.metrics.subscription_ended(reason.label());
        (Delivery::Close(reason), self)
    }

    /// Runs the subscription for `change` when it may concern it, queueing its events.
    async fn deliver(&mut self, change: Arc<Change>) {
        if !self.scope.interested(&change).await {
            return;
        }
        if !self.gateway.still_signed_in(&self.subscriber).await {
            self.done = true;
            self.gateway
                .metrics
                .subscription_ended(CloseReason::Unauthenticated.label());
            self.pending
                .push_back(Delivery::Close(CloseReason::Unauthenticated));
            return;
        }
        let gateway = Arc::clone(&self.gateway);
        // Events wait for a permit rather than being refused: they queue behind the requests.
        let Ok(_permit) = Arc::clone(&gateway.in_flight).acquire_owned().await else {
            return;
        };
        let run = gateway.run_step(
            &self.prepared,
            &self.subscriber.caller,
            &self.scope,
            Some(change),
        );
        let responses = match tokio::time::timeout(gateway.execution_timeout, run).await {
            Ok(responses) => responses,
            Err(_) => vec![timed_out()],
        };
        for response in responses {
            if self.done {
                break;
            }
            self.settle_event(response).await;
        }
        if self.scope.is_finished() {
            self.done = true;
        }
    }

    /// Charges one event its actual cost (what it resolved and the bytes it carries) and queues
    /// it, its fields in the order the subscription selected them; over budget, queues
    /// RATE_LIMITED instead and completes.
    async fn settle_event(&mut self, mut response: async_graphql::Response) {
        let gateway = &self.gateway;
        let prepared = &self.prepared;
        let actual = match Planner::new(
            &prepared.document,
            &prepared.variables,
            &gateway.schema_info,
        )
        .plan(prepared.operation_name.as_deref())
        {
            Ok(plan) => {
                let json = serialize::data_json(&plan, &response.data);
                let structural = if response.errors.is_empty() {
                    cost::actual_cost(&plan, &gateway.schema_info, &response.data, self.requested)
                } else {
                    self.requested
                };
                if let Ok(ordered) = serde_json::from_slice::<Value>(&json) {
                    response.data = ordered;
                }
                structural.saturating_add(cost::byte_cost(json.len()))
            }
            Err(_) => self.requested,
        };
        let client = &self.subscriber.caller.client;
        let throttle = gateway.charge(client, actual as f64).await;
        if let Some(decision) = throttle.filter(|decision| !decision.allowed) {
            gateway.metrics.rate_limited();
            gateway.metrics.subscription_ended("rate_limited");
            let mut error = AppError::RateLimited {
                message: format!(
                    "Rate limited: this event costs {actual} points and {} are available; the subscription completes",
                    decision.remaining.floor()
                ),
                retry_after_seconds: decision.retry_after_seconds(actual as f64),
            }
            .to_request_error();
            let code = classify(&mut error, &self.request_id);
            gateway.metrics.error(&code);
            let mut refused = async_graphql::Response::from_errors(vec![error]);
            refused.extensions.insert(
                "cost".to_owned(),
                CostReport {
                    requested: self.requested,
                    actual: 0,
                    throttle: Some(decision),
                }
                .to_value(),
            );
            self.pending.push_back(Delivery::Next(Box::new(refused)));
            self.done = true;
            return;
        }
        for error in &mut response.errors {
            let code = classify(error, &self.request_id);
            gateway.metrics.error(&code);
        }
        gateway.metrics.cost(self.requested, actual);
        gateway.metrics.subscription_event();
        response.extensions.insert(
            "cost".to_owned(),
            CostReport {
                requested: self.requested,
                actual,
                throttle,
            }
            .to_value(),
        );
        self.pending.push_back(Delivery::Next(Box::new(response)));
    }
}

/// A response refusing with `code`, for refusals a transport makes itself (its caps).
pub fn refusal(message: impl Into<String>, code: &'static str) -> async_graphql::Response {
    async_graphql::Response::from_errors(vec![crate::error::request_error(message.into(), code)])
}
