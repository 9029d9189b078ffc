//! What every handler shares.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::http::HeaderName;
use sea_orm::DatabaseConnection;
use tokio::sync::Semaphore;

use crate::config::HttpSettings;
use crate::db::StatementCounter;
use crate::gateway::Gateway;
use crate::metrics::Metrics;
use crate::realtime::Realtime;
use crate::redis_client::RedisClient;

/// How `/graphql` reads requests and finds the client's address.
#[derive(Debug, Clone)]
pub struct EndpointSettings {
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Most operations in one batch.
    pub max_batch: usize,
    /// Longest time to receive a body.
    pub body_deadline: Duration,
    /// Longest time one request may take.
    pub request_timeout: Duration,
    /// The header trusted proxies set with the client's address.
    pub client_ip_header: Option<HeaderName>,
    /// How many trusted proxies append to that header.
    pub trusted_proxies: usize,
    /// Origins allowed by CORS.
    pub cors_origins: Vec<String>,
}

impl EndpointSettings {
    /// The settings of `http`; a batch holds at most `max_batch` operations.
    pub fn new(http: &HttpSettings, max_batch: usize) -> Self {
        let client_ip_header = http
            .client_ip_header
            .as_deref()
            .and_then(|name| HeaderName::try_from(name).ok());
        Self {
            max_body_bytes: usize::try_from(http.max_body_bytes).unwrap_or(usize::MAX),
            max_batch,
            body_deadline: http.body_read_timeout(),
            request_timeout: http.request_timeout(),
            trusted_proxies: http.trusted_proxies.map_or(1, |hops| hops as usize),
            client_ip_header,
            cors_origins: http.cors_origins.clone(),
        }
    }
}

/// The application state handed to every handler: one reference count to clone (axum clones it
/// for every request).
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

impl AppState {
    /// The state of `shared`.
    pub fn new(shared: SharedState) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

/// What every handler shares.
pub struct SharedState {
    /// The GraphQL pipeline.
    pub gateway: Arc<Gateway>,
    /// The database pool.
    pub db: DatabaseConnection,
    /// SQL statements sent since start-up.
    pub statements: StatementCounter,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// How `/graphql` reads requests and finds the client's address.
    pub endpoint: Arc<EndpointSettings>,
    /// GraphQL requests executing now: one permit each, taken once the body is read.
    pub in_flight: Arc<Semaphore>,
    /// Whether introspection (and `/schema.graphql`) is enabled.
    pub introspection: bool,
    /// Whether `/metrics` is served on the public listener.
    pub public_metrics: bool,
    /// Set on SIGTERM: readiness answers 503 while the server drains.
    pub draining: Arc<AtomicBool>,
    /// The shared Redis, when configured (its state is reported by the probes and metrics).
    pub redis: Option<RedisClient>,
    /// The database pool's most connections.
    pub pool_max: u32,
    /// Whether traces are exported (requests continue the caller's `traceparent`).
    pub traced: bool,
    /// The real-time transports' caps and open connections.
    pub realtime: Arc<Realtime>,
}

impl SharedState {
    /// The longest time one request may take.
    pub fn request_timeout(&self) -> Duration {
        self.endpoint.request_timeout
    }
}
