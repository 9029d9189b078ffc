//! Prometheus metrics, through the `metrics` facade and `metrics-exporter-prometheus`: each app
//! has a registry of its own (several can run in one process, as the tests do), rendered at
//! `GET /metrics` in the Prometheus text format.
//!
//! Label values are bounded: operation names come from the trusted documents or are the first
//! [`MAX_OPERATION_NAMES`] names seen (the rest are `other`), error codes and cache statuses are
//! fixed sets, and deprecated fields are those of the schema.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

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
    operations: Mutex<HashSet<String>>,
    in_flight: AtomicI64,
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
        let metrics = Self {
            recorder,
            handle,
            operations: Mutex::new(operations.into_iter().collect()),
            in_flight: AtomicI64::new(0),
        };
        metrics.describe();
        metrics
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

    /// The label value of an operation name: itself when known (or among the first names seen),
    /// `other` otherwise; `anonymous` for none.
    pub fn operation_label(&self, name: Option<&str>) -> String {
        let Some(name) = name else {
            return "anonymous".to_owned();
        };
        let mut known = self
            .operations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if known.contains(name) {
            return name.to_owned();
        }
        if known.len() < MAX_OPERATION_NAMES {
            known.insert(name.to_owned());
            return name.to_owned();
        }
        "other".to_owned()
    }

    /// One /graphql request: its duration, by operation and outcome.
    pub fn request(&self, operation: String, ok: bool, seconds: f64) {
        let outcome = if ok { "ok" } else { "error" };
        self.histogram(
            "conduit_http_request_duration_seconds",
            vec![
                Label::new("operation", operation),
                Label::new("outcome", outcome),
            ],
        )
        .record(seconds);
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
        self.histogram("conduit_graphql_requested_cost_points", Vec::new())
            .record(requested as f64);
        self.histogram("conduit_graphql_actual_cost_points", Vec::new())
            .record(actual as f64);
    }

    /// A request refused because its client's budget was spent.
    pub fn rate_limited(&self) {
        self.counter("conduit_rate_limited_total", Vec::new())
            .increment(1);
    }

    /// One GraphQL response by its cache status.
    pub fn response(&self, status: CacheStatus) {
        let status = status.header().to_ascii_lowercase();
        self.counter(
            "conduit_graphql_responses_total",
            vec![Label::new("cache", status)],
        )
        .increment(1);
    }

    /// `bytes` of a response stored in the cache.
    pub fn cache_stored(&self, bytes: usize) {
        self.counter("conduit_cache_stored_bytes_total", Vec::new())
            .increment(bytes as u64);
    }

    /// The SQL statements one request sent.
    pub fn statements(&self, count: u64) {
        self.histogram("conduit_db_statements_per_request", Vec::new())
            .record(count as f64);
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

    /// One more (or, with a negative `delta`, fewer) request executing.
    pub fn in_flight(&self, delta: i64) {
        let now = self.in_flight.fetch_add(delta, Ordering::Relaxed) + delta;
        self.gauge("conduit_http_requests_in_flight")
            .set(now as f64);
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
        self.gauge("conduit_http_requests_in_flight")
            .set(self.in_flight.load(Ordering::Relaxed) as f64);
        self.handle.render()
    }
}
