//! Prometheus metrics, through the `metrics` facade and `metrics-exporter-prometheus`: each app
//! has a registry of its own (several can run in one process, as the tests do), rendered at
//! `GET /metrics` in the Prometheus text format.
//!
//! Label values are bounded: operation names come from the trusted documents or are the first
//! [`MAX_OPERATION_NAMES`] names seen (the rest are `other`), error codes and cache statuses are
//! fixed sets, and deprecated fields are those of the schema.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{Counter, Gauge, Histogram, Key, Label, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::cache::CacheStatus;

/// Most distinct operation names used as label values; the others are `other`.
pub const MAX_OPERATION_NAMES: usize = 200;

const METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// Seconds: 1 ms to 10 s.
const SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Short durations (SQL statements, Redis calls): 0.1 ms to 1 s.
const SHORT_SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];
/// Cost points, up to the largest limit one would set.
const POINTS: &[f64] = &[
    0.0, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0,
];
/// Statements per request.
const STATEMENTS: &[f64] = &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 8.0, 13.0, 21.0, 50.0];

/// The state of what a scrape reads at that moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    /// Connections in the database pool, and how many are idle.
    pub pool: Option<(u32, usize)>,
    /// The pool's most connections.
    pub pool_max: u32,
    /// Whether Redis is configured and its circuit is closed.
    pub redis: Option<bool>,
    /// Whether the server is draining (shutting down).
    pub draining: bool,
}

/// The server's metrics.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    operations: Mutex<Operations>,
    in_flight: AtomicI64,
    /// Handles of the series every request touches, registered once: a lookup in the registry
    /// (hashing the key) per record would cost more than the record.
    hot: HotSeries,
}

/// The request-duration series of one operation label.
#[derive(Clone)]
pub struct OperationSeries {
    /// The label value.
    pub label: Arc<str>,
    ok: Histogram,
    error: Histogram,
}

/// The operation labels in use and their series.
#[derive(Default)]
struct Operations {
    series: HashMap<String, OperationSeries>,
    /// Labels that are client-chosen names (bounded by [`MAX_OPERATION_NAMES`]).
    named: usize,
}

struct HotSeries {
    requested_cost: Histogram,
    actual_cost: Histogram,
    statements: Histogram,
    responses: [Counter; 3],
    cache_stored: Counter,
    rate_limited: Counter,
    in_flight: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(std::iter::empty())
    }
}

impl Metrics {
    /// A registry of its own; `operations` are names known ahead (those of trusted documents).
    pub fn new(operations: impl IntoIterator<Item = String>) -> Self {
        let builder = PrometheusBuilder::new();
        let builder = [
            ("conduit_http_request_duration_seconds", SECONDS),
            ("conduit_db_statement_duration_seconds", SHORT_SECONDS),
            ("conduit_db_pool_wait_seconds", SHORT_SECONDS),
            ("conduit_redis_call_duration_seconds", SHORT_SECONDS),
            ("conduit_password_hash_duration_seconds", SECONDS),
            ("conduit_graphql_requested_cost_points", POINTS),
            ("conduit_graphql_actual_cost_points", POINTS),
            ("conduit_db_statements_per_request", STATEMENTS),
        ]
        .into_iter()
        .fold(builder, |builder, (name, buckets)| {
            builder
                .set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
                .unwrap_or_else(|_| PrometheusBuilder::new())
        });
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let histogram =
            |name: &'static str| recorder.register_histogram(&Key::from_name(name), &METADATA);
        let counter = |name: &'static str, labels: Vec<Label>| {
            recorder.register_counter(&Key::from_parts(name, labels), &METADATA)
        };
        let response = |status: CacheStatus| {
            counter(
                "conduit_graphql_responses_total",
                vec![Label::new("cache", status.header().to_ascii_lowercase())],
            )
        };
        let hot = HotSeries {
            requested_cost: histogram("conduit_graphql_requested_cost_points"),
            actual_cost: histogram("conduit_graphql_actual_cost_points"),
            statements: histogram("conduit_db_statements_per_request"),
            responses: [
                response(CacheStatus::Hit),
                response(CacheStatus::Miss),
                response(CacheStatus::Bypass),
            ],
            cache_stored: counter("conduit_cache_stored_bytes_total", Vec::new()),
            rate_limited: counter("conduit_rate_limited_total", Vec::new()),
            in_flight: recorder.register_gauge(
                &Key::from_name("conduit_http_requests_in_flight"),
                &METADATA,
            ),
        };
        let metrics = Self {
            recorder,
            handle,
            operations: Mutex::new(Operations::default()),
            in_flight: AtomicI64::new(0),
            hot,
        };
        {
            let mut known = metrics.lock_operations();
            for name in operations {
                let series = metrics.operation_series(&name);
                known.series.insert(name, series);
            }
        }
        metrics.describe();
        metrics
    }

    fn lock_operations(&self) -> std::sync::MutexGuard<'_, Operations> {
        self.operations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn operation_series(&self, label: &str) -> OperationSeries {
        let duration = |outcome: &'static str| {
            self.histogram(
                "conduit_http_request_duration_seconds",
                vec![
                    Label::new("operation", label.to_owned()),
                    Label::new("outcome", outcome),
                ],
            )
        };
        OperationSeries {
            label: Arc::from(label),
            ok: duration("ok"),
            error: duration("error"),
        }
    }

    /// Drains the histograms' recorded samples into their buckets. The exporter keeps samples
    /// until then, so without a scrape memory would grow with every request: the server calls
    /// this every few seconds.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    fn describe(&self) {
        let counter = |name: &'static str, unit: Unit, help: &'static str| {
            self.recorder
                .describe_counter(name.into(), Some(unit), SharedString::from(help));
        };
        counter(
            "conduit_graphql_errors_total",
            Unit::Count,
            "GraphQL errors by extensions.code.",
        );
        counter(
            "conduit_rate_limited_total",
            Unit::Count,
            "Requests refused because the client's cost budget was spent.",
        );
        counter(
            "conduit_graphql_responses_total",
            Unit::Count,
            "GraphQL responses by response cache status (hit, miss, bypass).",
        );
        counter(
            "conduit_cache_stored_bytes_total",
            Unit::Bytes,
            "Bytes of responses stored in the response cache.",
        );
        counter(
            "conduit_deprecated_field_uses_total",
            Unit::Count,
            "Operations that selected a deprecated field.",
        );
        counter(
            "conduit_deprecated_field_uses_by_client_total",
            Unit::Count,
            "Operations that ran a deprecated field, by client name (bounded by CONDUIT_USAGE_MAX_CLIENTS).",
        );
        counter(
            "conduit_db_routed_reads_total",
            Unit::Count,
            "Queries read on a replica or on the primary (with replicas configured).",
        );
        counter(
            "conduit_db_replica_fallbacks_total",
            Unit::Count,
            "Queries sent to the primary although replicas are configured, by reason (replica_down, lagging, behind_viewer, read_failed, positions_unknown, no_replica).",
        );
        counter(
            "conduit_db_read_retries_total",
            Unit::Count,
            "Queries run once more on the primary because a statement lost its connection.",
        );
        counter(
            "conduit_subscription_events_total",
            Unit::Count,
            "Subscription events delivered.",
        );
        counter(
            "conduit_subscriptions_ended_total",
            Unit::Count,
            "Subscriptions and real-time connections the server ended, by reason (slow_consumer, unauthenticated, rate_limited, shutdown).",
        );
        counter(
            "conduit_graphql_executions_total",
            Unit::Count,
            "Operations executed (not answered from the cache), by path: compiled (from the plan) or executor.",
        );
        counter(
            "conduit_http_connections_refused_total",
            Unit::Count,
            "Connections refused by a cap, by cap (per_client, total).",
        );
        counter(
            "conduit_http_connections_closed_total",
            Unit::Count,
            "Connections the server closed, by reason (header_timeout, idle, send_timeout).",
        );
        counter(
            "conduit_realtime_refused_total",
            Unit::Count,
            "Real-time connections and subscriptions refused by a cap, by cap (per_client, total, per_connection).",
        );
        let histogram = |name: &'static str, unit: Unit, help: &'static str| {
            self.recorder
                .describe_histogram(name.into(), Some(unit), SharedString::from(help));
        };
        histogram(
            "conduit_http_request_duration_seconds",
            Unit::Seconds,
            "Duration of /graphql requests, by operation name and outcome (ok or error).",
        );
        histogram(
            "conduit_graphql_requested_cost_points",
            Unit::Count,
            "Cost points operations requested.",
        );
        histogram(
            "conduit_graphql_actual_cost_points",
            Unit::Count,
            "Cost points operations used.",
        );
        histogram(
            "conduit_db_statements_per_request",
            Unit::Count,
            "SQL statements sent for one /graphql request.",
        );
        histogram(
            "conduit_db_statement_duration_seconds",
            Unit::Seconds,
            "Duration of SQL statements on their connection (the wait for one is conduit_db_pool_wait_seconds).",
        );
        histogram(
            "conduit_db_pool_wait_seconds",
            Unit::Seconds,
            "Time to get a connection from the database pool, sampled once a second.",
        );
        histogram(
            "conduit_redis_call_duration_seconds",
            Unit::Seconds,
            "Duration of Redis calls.",
        );
        histogram(
            "conduit_password_hash_duration_seconds",
            Unit::Seconds,
            "Duration of password hashes and verifications (argon2id), queueing included.",
        );
        let gauge = |name: &'static str, unit: Unit, help: &'static str| {
            self.recorder
                .describe_gauge(name.into(), Some(unit), SharedString::from(help));
        };
        gauge(
            "conduit_http_requests_in_flight",
            Unit::Count,
            "/graphql requests being executed.",
        );
        gauge(
            "conduit_password_hash_queue_depth",
            Unit::Count,
            "Password hashes waiting for the hashing pool.",
        );
        gauge(
            "conduit_db_pool_connections",
            Unit::Count,
            "Connections of the database pool.",
        );
        gauge(
            "conduit_db_pool_idle_connections",
            Unit::Count,
            "Idle connections of the pool.",
        );
        gauge(
            "conduit_db_pool_max_connections",
            Unit::Count,
            "Most connections of the pool.",
        );
        gauge(
            "conduit_redis_up",
            Unit::Count,
            "1 while Redis answers (its circuit is closed), 0 while it is open.",
        );
        gauge(
            "conduit_db_primary_up",
            Unit::Count,
            "1 while the primary answers, 0 while it does not (read-only: queries on replicas, mutations refused), with replicas configured.",
        );
        gauge(
            "conduit_db_replica_lag_seconds",
            Unit::Seconds,
            "Each replica's replay lag behind the primary (0 when caught up).",
        );
        gauge(
            "conduit_subscriptions_active",
            Unit::Count,
            "Subscriptions open now (WebSocket and SSE).",
        );
        gauge(
            "conduit_realtime_connections",
            Unit::Count,
            "Open real-time connections, by transport (websocket, sse).",
        );
        gauge(
            "conduit_http_connections",
            Unit::Count,
            "Connections open on the listeners (upgraded WebSockets included).",
        );
        gauge(
            "conduit_draining",
            Unit::Count,
            "1 while the server drains before it stops.",
        );
    }

    fn counter(&self, name: &'static str, labels: Vec<Label>) -> Counter {
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &METADATA)
    }

    fn histogram(&self, name: &'static str, labels: Vec<Label>) -> Histogram {
        self.recorder
            .register_histogram(&Key::from_parts(name, labels), &METADATA)
    }

    fn gauge(&self, name: &'static str) -> Gauge {
        self.recorder
            .register_gauge(&Key::from_name(name), &METADATA)
    }

    /// The series of an operation name: its own when known (or among the first names seen),
    /// `other`'s otherwise; `anonymous`'s for none.
    pub fn operation(&self, name: Option<&str>) -> OperationSeries {
        match name {
            Some(name) => self.series_of(name, true),
            None => self.series_of("anonymous", false),
        }
    }

    /// The series of a label the server chose (`batch`, `invalid`, `shed`).
    pub fn fixed_operation(&self, label: &'static str) -> OperationSeries {
        self.series_of(label, false)
    }

    fn series_of(&self, label: &str, named: bool) -> OperationSeries {
        let mut known = self.lock_operations();
        if let Some(series) = known.series.get(label) {
            return series.clone();
        }
        let label = if named && known.named >= MAX_OPERATION_NAMES {
            "other"
        } else {
            label
        };
        if let Some(series) = known.series.get(label) {
            return series.clone();
        }
        if named && label != "other" {
            known.named += 1;
        }
        let series = self.operation_series(label);
        known.series.insert(label.to_owned(), series.clone());
        series
    }

    /// One /graphql request: its duration, by operation and outcome.
    pub fn request(&self, operation: &OperationSeries, ok: bool, seconds: f64) {
        if ok {
            operation.ok.record(seconds);
        } else {
            operation.error.record(seconds);
        }
    }

    /// One GraphQL error with `code`.
    pub fn error(&self, code: &str) {
        self.counter(
            "conduit_graphql_errors_total",
            vec![Label::new("code", code.to_owned())],
        )
        .increment(1);
    }

    /// The cost one operation requested and used.
    pub fn cost(&self, requested: u64, actual: u64) {
        self.hot.requested_cost.record(requested as f64);
        self.hot.actual_cost.record(actual as f64);
    }

    /// A request refused because its client's budget was spent.
    pub fn rate_limited(&self) {
        self.hot.rate_limited.increment(1);
    }

    /// One GraphQL response by its cache status.
    pub fn response(&self, status: CacheStatus) {
        self.hot.responses[status as usize].increment(1);
    }

    /// `bytes` of a response stored in the cache.
    pub fn cache_stored(&self, bytes: usize) {
        self.hot.cache_stored.increment(bytes as u64);
    }

    /// The SQL statements one request sent.
    pub fn statements(&self, count: u64) {
        self.hot.statements.record(count as f64);
    }

    /// The histogram of SQL statement durations (for the pool's callback).
    pub fn statement_durations(&self) -> Histogram {
        self.histogram("conduit_db_statement_duration_seconds", Vec::new())
    }

    /// The histogram of waits for a pooled connection (sampled).
    pub fn pool_waits(&self) -> Histogram {
        self.histogram("conduit_db_pool_wait_seconds", Vec::new())
    }

    /// The histogram of Redis call durations.
    pub fn redis_durations(&self) -> Histogram {
        self.histogram("conduit_redis_call_duration_seconds", Vec::new())
    }

    /// The histogram of password hash durations and the gauge of hashes waiting.
    pub fn hashing(&self) -> (Histogram, Gauge) {
        (
            self.histogram("conduit_password_hash_duration_seconds", Vec::new()),
            self.gauge("conduit_password_hash_queue_depth"),
        )
    }

    /// One operation that selected the deprecated `field` (`Type.field`).
    pub fn deprecated_field_used(&self, field: &str) {
        self.counter(
            "conduit_deprecated_field_uses_total",
            vec![Label::new("field", field.to_owned())],
        )
        .increment(1);
    }

    /// One operation that ran the deprecated `field` for the client named `client` (a name the
    /// usage records admitted, so the label's values stay bounded).
    pub fn deprecated_field_used_by(&self, field: &str, client: &str) {
        self.counter(
            "conduit_deprecated_field_uses_by_client_total",
            vec![
                Label::new("field", field.to_owned()),
                Label::new("client", client.to_owned()),
            ],
        )
        .increment(1);
    }

    /// One more (or, with a negative `delta`, fewer) request executing.
    pub fn in_flight(&self, delta: i64) {
        let now = self.in_flight.fetch_add(delta, Ordering::Relaxed) + delta;
        self.hot.in_flight.set(now as f64);
    }

    /// One subscription more (or, with a negative `delta`, fewer).
    pub fn subscriptions(&self, delta: f64) {
        self.gauge("conduit_subscriptions_active").increment(delta);
    }

    /// One real-time connection over `transport` more (or fewer).
    pub fn realtime_connections(&self, transport: &'static str, delta: f64) {
        self.recorder
            .register_gauge(
                &Key::from_parts(
                    "conduit_realtime_connections",
                    vec![Label::new("transport", transport)],
                ),
                &METADATA,
            )
            .increment(delta);
    }

    /// One operation executed on `path` (`compiled` or `executor`).
    pub fn execution(&self, path: &'static str) {
        self.counter(
            "conduit_graphql_executions_total",
            vec![Label::new("path", path)],
        )
        .increment(1);
    }

    /// One connection more (or, with a negative `delta`, fewer).
    pub fn connections(&self, delta: f64) {
        self.gauge("conduit_http_connections").increment(delta);
    }

    /// A connection refused by `cap`.
    pub fn connection_refused(&self, cap: &'static str) {
        self.counter(
            "conduit_http_connections_refused_total",
            vec![Label::new("cap", cap)],
        )
        .increment(1);
    }

    /// A connection the server closed for `reason`.
    pub fn connection_closed(&self, reason: &'static str) {
        self.counter(
            "conduit_http_connections_closed_total",
            vec![Label::new("reason", reason)],
        )
        .increment(1);
    }

    /// One subscription event delivered.
    pub fn subscription_event(&self) {
        self.counter("conduit_subscription_events_total", Vec::new())
            .increment(1);
    }

    /// A subscription or connection the server ended for `reason`.
    pub fn subscription_ended(&self, reason: &'static str) {
        self.counter(
            "conduit_subscriptions_ended_total",
            vec![Label::new("reason", reason)],
        )
        .increment(1);
    }

    /// A connection or subscription refused by `cap`.
    pub fn realtime_refused(&self, cap: &'static str) {
        self.counter(
            "conduit_realtime_refused_total",
            vec![Label::new("cap", cap)],
        )
        .increment(1);
    }

    /// Whether the primary answers (read-only while it does not), with replicas configured.
    pub fn primary_up(&self, up: bool) {
        self.gauge("conduit_db_primary_up")
            .set(if up { 1.0 } else { 0.0 });
    }

    /// A replica's lag behind the primary, in seconds.
    pub fn replica_lag(&self, replica: &str, seconds: f64) {
        self.recorder
            .register_gauge(
                &Key::from_parts(
                    "conduit_db_replica_lag_seconds",
                    vec![Label::new("replica", replica.to_owned())],
                ),
                &METADATA,
            )
            .set(seconds);
    }

    /// A query routed to `target` (`replica` or `primary`); `fallback` says why a query that could
    /// have gone to a replica did not.
    pub fn replica_read(&self, target: &'static str, fallback: Option<&'static str>) {
        self.counter(
            "conduit_db_routed_reads_total",
            vec![Label::new("target", target)],
        )
        .increment(1);
        if let Some(reason) = fallback {
            self.counter(
                "conduit_db_replica_fallbacks_total",
                vec![Label::new("reason", reason)],
            )
            .increment(1);
        }
    }

    /// A query run once more on the primary after a statement lost its connection.
    pub fn read_retried(&self) {
        self.counter("conduit_db_read_retries_total", Vec::new())
            .increment(1);
    }

    /// The metrics in the Prometheus text format, with the gauges read from `snapshot`.
    pub fn render(&self, snapshot: Snapshot) -> String {
        if let Some((size, idle)) = snapshot.pool {
            self.gauge("conduit_db_pool_connections")
                .set(f64::from(size));
            self.gauge("conduit_db_pool_idle_connections")
                .set(idle as f64);
        }
        self.gauge("conduit_db_pool_max_connections")
            .set(f64::from(snapshot.pool_max));
        if let Some(up) = snapshot.redis {
            self.gauge("conduit_redis_up").set(f64::from(u8::from(up)));
        }
        self.gauge("conduit_draining")
            .set(f64::from(u8::from(snapshot.draining)));
        self.hot
            .in_flight
            .set(self.in_flight.load(Ordering::Relaxed) as f64);
        self.handle.render()
    }
}
