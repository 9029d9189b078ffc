//! Assembles the application: the state, the router, the tower layers, the listeners and graceful
//! shutdown. Nothing imports this module back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::DbBackend;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::compression::{CompressionLayer, CompressionLevel};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::{Span, field};

use crate::auth::{AuthThrottle, HashMetrics, Passwords, Revocations, ThrottlePolicy, Tokens};
use crate::buckets::{BucketPolicy, Buckets};
use crate::cache::ResponseCache;
use crate::cache::memory_store::MemoryStore;
use crate::cache::redis_store::RedisStore;
use crate::cache::store::CacheStore;
use crate::changes::ChangeFeed;
use crate::config::Config;
use crate::connections::{self, ConnectionSettings};
use crate::db::{self, StatementCounter};
use crate::error::AppError;
use crate::gateway::limits::Limits;
use crate::gateway::persisted::PersistedQueries;
use crate::gateway::schema_info::SchemaInfo;
use crate::gateway::{Budget, DocumentCache, Gateway};
use crate::realtime::Realtime;
use crate::usage::{DeprecationDates, Usage};

/// Bytes of parsed and validated documents kept, so that documents sent again (as clients do)
/// are not parsed and validated again.
const DOCUMENT_CACHE_BYTES: u64 = 32 * 1024 * 1024;
use crate::metrics::{Metrics, Snapshot};
use crate::redis_client::RedisClient;
use crate::replicas::Replicas;
use crate::schema::{self, Backstop, SharedData};
use crate::state::{AppState, EndpointSettings, SharedState};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database is unreachable or a migration failed.
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// The listen address cannot be bound.
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
    /// The password hasher cannot start.
    #[error("password hashing: {0}")]
    Hashing(#[from] AppError),
    /// A setting is invalid.
    #[error("configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    /// The Redis URL cannot be used.
    #[error("{0}")]
    Redis(#[from] crate::redis_client::RedisError),
    /// The trusted documents manifest cannot be used.
    #[error("{0}")]
    Manifest(#[from] crate::gateway::persisted::ManifestError),
    /// The schema's SDL does not parse (a bug).
    #[error("schema analysis: {0}")]
    Schema(#[from] async_graphql::parser::Error),
}

/// How a stop goes: serve on for `grace` (readiness failing), then give the requests in flight
/// up to `timeout`.
#[derive(Debug, Clone, Copy)]
struct ShutdownTimes {
    grace: Duration,
    timeout: Duration,
}

/// A started application: migrated database, bound listeners, ready to serve.
pub struct App {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    state: AppState,
    shutdown: ShutdownTimes,
    connections: ConnectionSettings,
    admin_connections: ConnectionSettings,
    usage_flush: Duration,
}

impl App {
    /// Connects to the database, runs the migrations and binds the listen addresses.
    pub async fn build(config: &Config) -> Result<Self, StartError> {
        config.validate()?;
        let metrics = Arc::new(Metrics::default());
        let redis = match &config.redis.url {
            Some(url) => {
                let client =
                    RedisClient::connect(url, &config.redis.prefix, config.redis.timeout())?
                        .with_durations(metrics.redis_durations());
                if client.ping().await {
                    tracing::info!(
                        "redis connected: shared cache, rate limits and persisted queries"
                    );
                } else {
                    tracing::warn!(
                        "redis does not answer yet: state stays in this process until it does"
                    );
                }
                Some(client)
            }
            None => None,
        };
        let trusted = match &config.persisted.trusted_documents {
            Some(path) => {
                let documents = PersistedQueries::read_manifest(path)?;
                tracing::info!(path = %path.display(), documents = documents.documents.len(), "trusted documents only");
                Some(documents)
            }
            None => None,
        };
        let buckets = Buckets::new(redis.clone());
        let rate_limit = &config.rate_limit;
        let throttle = AuthThrottle::new(
            buckets.clone(),
            ThrottlePolicy {
                login_per_account: BucketPolicy::per_window(
                    rate_limit.login_attempts_per_account,
                    rate_limit.login_window_secs,
                ),
                login_per_address: BucketPolicy::per_window(
                    rate_limit.login_attempts_per_address,
                    rate_limit.login_window_secs,
                ),
                registrations_per_address: BucketPolicy::per_window(
                    rate_limit.registrations_per_hour,
                    3600,
                ),
            },
        );
        let traced = config.tracing.endpoint().is_some();
        let statements =
            StatementCounter::with_durations(metrics.statement_durations()).traced(traced);
        let db = db::connect_within(
            &config.database.url,
            config.database.max_connections,
            statements.clone(),
            Duration::from_secs(config.database.connect_timeout_secs),
        )
        .await?;
        db::migrate(&db).await?;
        let secret = match &config.auth.jwt_secret {
            Some(secret) => secret.expose().as_bytes().to_vec(),
            None => {
                tracing::warn!(
                    "CONDUIT_JWT_SECRET is not set: using a random secret, so tokens stop working at the next start"
                );
                rand::random::<[u8; 32]>().to_vec()
            }
        };
        let tokens = Tokens::new(&secret, config.auth.token_ttl());
        let revocations = Revocations::new(
            db.clone(),
            Duration::from_secs(config.auth.revocation_check_secs),
        );
        let shared = SharedData {
            db: db.clone(),
            passwords: {
                let (durations, queue) = metrics.hashing();
                Passwords::new(config.auth.hash_concurrency())?
                    .with_metrics(HashMetrics { durations, queue })
            },
            tokens: tokens.clone(),
            throttle,
            revocations: revocations.clone(),
        };
        let limits = Limits::from(&config.limits);
        let backstop = Backstop {
            max_depth: limits.max_depth.saturating_mul(2),
            max_complexity: limits.max_fields.saturating_mul(4),
            max_directives: limits.max_directives,
        };
        let replicas = if config.database.replica_urls.is_empty() {
            None
        } else {
            let replicas = Arc::new(
                Replicas::new(
                    db.clone(),
                    &config.database.replica_urls,
                    Duration::from_millis(config.database.replica_max_lag_ms),
                    config.database.max_connections,
                    statements.clone(),
                    redis.clone(),
                    Arc::clone(&metrics),
                )
                .await?,
            );
            replicas.start();
            tracing::info!(
                replicas = config.database.replica_urls.len(),
                "queries may read from replicas that replayed the viewer's writes"
            );
            Some(replicas)
        };
        let graphql_schema = schema::build(shared.clone(), backstop, traced);
        let schema_info =
            SchemaInfo::from_sdl(&graphql_schema.sdl())?.with_hints(schema::cache_hints());
        let cache = config.cache.enabled.then(|| {
            let store: Arc<dyn CacheStore> = match &redis {
                Some(redis) => Arc::new(RedisStore::new(redis.clone())),
                None => Arc::new(MemoryStore::new(config.cache.max_bytes)),
            };
            Arc::new(ResponseCache::new(
                store,
                redis.clone(),
                Duration::from_secs(config.cache.max_ttl_secs),
            ))
        });
        let usage = if config.usage.enabled {
            Some(Arc::new(Usage::new(db.clone(), &config.usage).await?))
        } else {
            None
        };
        let gateway = Gateway {
            validator: schema::validator(shared, backstop),
            schema: graphql_schema,
            schema_info,
            persisted: PersistedQueries::new(
                &config.persisted,
                redis.clone(),
                trusted,
                buckets.clone(),
            ),
            budget: Budget::new(buckets, rate_limit),
            cache,
            metrics: Arc::clone(&metrics),
            tokens,
            revocations,
            db: db.clone(),
            introspection: config.server.introspection,
            limits,
            documents: DocumentCache::new(DOCUMENT_CACHE_BYTES),
            changes: Arc::new(change_feed(config)?),
            in_flight: Arc::new(Semaphore::new(config.http.max_in_flight as usize)),
            execution_timeout: config.http.request_timeout(),
            replicas,
            max_response_bytes: usize::try_from(config.http.max_response_bytes)
                .unwrap_or(usize::MAX),
            compiled_reads: config.server.compiled_reads,
            usage,
            deprecation_dates: DeprecationDates::new(
                &schema::deprecated_since(),
                &config.usage.sunsets()?,
            ),
        };
        let listener = TcpListener::bind(config.server.listen).await?;
        let metrics_listener = match config.server.metrics_listen {
            Some(address) => Some(TcpListener::bind(address).await?),
            None => None,
        };
        let realtime = Arc::new(Realtime::new(&config.realtime, Arc::clone(&metrics)));
        let in_flight = Arc::clone(&gateway.in_flight);
        Ok(Self {
            listener,
            state: AppState::new(SharedState {
                endpoint: Arc::new(EndpointSettings::new(
                    &config.http,
                    gateway.limits.max_batch,
                )),
                gateway: Arc::new(gateway),
                db,
                statements,
                metrics,
                in_flight,
                introspection: config.server.introspection,
                public_metrics: metrics_listener.is_none(),
                draining: Arc::new(AtomicBool::new(false)),
                redis,
                pool_max: config.database.max_connections,
                traced,
                realtime,
            }),
            metrics_listener,
            connections: ConnectionSettings::public(&config.http),
            admin_connections: ConnectionSettings::admin(&config.http),
            shutdown: ShutdownTimes {
                grace: Duration::from_secs(config.server.shutdown_grace_secs),
                timeout: Duration::from_secs(config.server.shutdown_timeout_secs),
            },
            usage_flush: config.usage.flush_interval(),
        })
    }

    /// The address the server listens on (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The address `/metrics` is served on, when it has a listener of its own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    /// The shared state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then drains: readiness answers 503 at once while the
    /// server goes on serving for the grace period (so load balancers stop sending it requests),
    /// then it stops accepting connections and gives the requests in flight up to the shutdown
    /// timeout to finish.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.run_until(Box::pin(shutdown)).await
    }

    /// The body of [`App::run`], not generic: the server is compiled once, in this crate, rather
    /// than again in every crate that names its own shutdown future.
    async fn run_until(self, shutdown: connections::StopSignal) -> std::io::Result<()> {
        if let Some(listener) = self.metrics_listener {
            // The admin listener: metrics and the detailed probes, with connections of its own,
            // so they answer while the public listener is saturated.
            let admin = Router::new()
                .route("/metrics", get(metrics))
                .route("/health", get(ready_detailed))
                .route("/health/ready", get(ready_detailed))
                .route("/health/live", get(live))
                .with_state(self.state.clone());
            tokio::spawn(connections::serve(
                listener,
                admin,
                self.admin_connections,
                Arc::clone(&self.state.metrics),
                Box::pin(std::future::pending()),
            ));
        }
        let sampler = tokio::spawn(housekeeping(
            self.state.db.clone(),
            Arc::clone(&self.state.metrics),
        ));
        let usage = self.state.gateway.usage.clone();
        let usage_flusher = usage
            .clone()
            .map(|usage| tokio::spawn(usage.flush_every(self.usage_flush)));
        let draining = Arc::clone(&self.state.draining);
        let realtime = Arc::clone(&self.state.realtime);
        let realtime_after = Arc::clone(&realtime);
        let times = self.shutdown;
        let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
        let graceful = async move {
            shutdown.await;
            draining.store(true, Ordering::Relaxed);
            tracing::info!(
                grace_secs = times.grace.as_secs(),
                "draining: readiness answers 503; still serving during the grace period"
            );
            tokio::time::sleep(times.grace).await;
            tracing::info!(
                timeout_secs = times.timeout.as_secs(),
                "stopping: no new connections; finishing the requests in flight; closing WebSockets and event streams"
            );
            realtime.close_all();
            let _ = stopping.send(());
        };
        let metrics = Arc::clone(&self.state.metrics);
        let app = router(self.state);
        let server = connections::serve(
            self.listener,
            app,
            self.connections,
            metrics,
            Box::pin(graceful),
        );
        let deadline = async move {
            if stopped.await.is_err() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(times.timeout).await;
        };
        let result = tokio::select! {
            () = server => Ok(()),
            () = deadline => {
                tracing::warn!("requests still in flight after the shutdown timeout: stopping anyway");
                Ok(())
            }
        };
        // Upgraded connections are not tracked by the server's graceful shutdown: give them a
        // moment to write their close frames (1012) before the process ends.
        realtime_after.closed(Duration::from_secs(2)).await;
        sampler.abort();
        if let Some(flusher) = usage_flusher {
            flusher.abort();
        }
        // What was aggregated since the last flush is written before the process ends.
        if let Some(usage) = usage
            && let Err(err) = usage.flush().await
        {
            tracing::warn!(error = %err, "schema usage of the last interval not written");
        }
        result
    }
}

/// The change feed: in process, and shared through Redis when it is configured (on connections of
/// its own: a publisher and a listener).
fn change_feed(config: &Config) -> Result<ChangeFeed, StartError> {
    let feed = ChangeFeed::new(config.realtime.buffer as usize);
    let Some(url) = &config.redis.url else {
        return Ok(feed);
    };
    let publisher = RedisClient::connect(url, &config.redis.prefix, config.redis.timeout())?;
    Ok(feed
        .with_redis(url, &config.redis.prefix, publisher)
        .map_err(crate::redis_client::RedisError::from)?)
}

/// Once a second, times how long getting a connection from the pool takes (and gives it back at
/// once): the wait a request would see then (SeaORM reports statements only once they hold a
/// connection, so the wait is not visible otherwise). Every few seconds, folds the histograms'
/// samples into their buckets, so their memory stays bounded whether or not anyone scrapes.
async fn housekeeping(db: sea_orm::DatabaseConnection, metrics: Arc<Metrics>) {
    let waits = metrics.pool_waits();
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for tick in 0u64.. {
        ticks.tick().await;
        if tick % 5 == 4 {
            metrics.upkeep();
        }
        let started = std::time::Instant::now();
        let acquired = match db.get_database_backend() {
            DbBackend::Postgres => db.get_postgres_connection_pool().acquire().await.map(drop),
            DbBackend::Sqlite => db.get_sqlite_connection_pool().acquire().await.map(drop),
            _ => return,
        };
        if acquired.is_ok() {
            waits.record(started.elapsed().as_secs_f64());
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received");
}

/// Request ids: random UUIDs (v4) drawn from the thread's generator. tower-http's
/// `MakeRequestUuid` asks the kernel for every id (a `getrandom` system call per request).
#[derive(Clone, Copy)]
struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let mut text = uuid::Uuid::encode_buffer();
        HeaderValue::from_str(id.hyphenated().encode_lower(&mut text))
            .ok()
            .map(RequestId::new)
    }
}

/// The route a path is served by, for span names: known paths as they are, any other as one name
/// (span names must not grow with what clients send).
fn route_of(path: &str) -> &'static str {
    const ROUTES: &[&str] = &[
        "/graphql",
        "/playground",
        "/schema.graphql",
        "/metrics",
        "/health",
        "/health/live",
        "/health/ready",
    ];
    ROUTES
        .iter()
        .find(|route| **route == path)
        .copied()
        .unwrap_or("other")
}

/// The HTTP routes with their tower layers.
pub fn router(state: AppState) -> Router {
    let traced = state.traced;
    let draining = Arc::clone(&state.draining);
    let layers = ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(RandomRequestId))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(move |request: &Request| {
                    let request_id = request
                        .headers()
                        .get("x-request-id")
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or("-");
                    let span = tracing::info_span!(
                        "request",
                        otel.name = %format_args!("{} {}", request.method(), route_of(request.uri().path())),
                        otel.kind = "server",
                        request_id = %request_id,
                        method = %request.method(),
                        path = %request.uri().path(),
                        operation = field::Empty,
                        outcome = field::Empty,
                        statements = field::Empty,
                    );
                    if traced {
                        crate::telemetry::continue_trace(&span, request.headers());
                    }
                    span
                })
                .on_request(())
                .on_response(
                    |response: &axum::http::Response<_>, latency: Duration, _span: &Span| {
                        tracing::info!(
                            status = response.status().as_u16(),
                            duration_ms = latency.as_secs_f64() * 1000.0,
                            "request finished"
                        );
                    },
                )
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(CatchPanicLayer::new())
        // Keep browsers from sniffing, framing or leaking anything (a route may set its own), and
        // close connections while draining: one response map rather than a layer per header.
        .layer(tower::util::MapResponseLayer::new(
            move |mut response: axum::response::Response| {
                finish_headers(&draining, &mut response);
                response
            },
        ))
        .layer(cors(&state.endpoint.cors_origins))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            state.request_timeout(),
        ))
        // A compressed body is another representation: its ETag says which.
        .layer(tower::util::MapResponseLayer::new(etag_per_encoding))
        // The compression body holds its encoders' state inline (kilobytes): boxed once here, so
        // the layers above move a pointer rather than copy it at every step.
        .layer(tower::util::MapResponseLayer::new(
            |response: axum::http::Response<_>| response.map(axum::body::Body::new),
        ))
        .layer(
            CompressionLayer::new()
                .quality(CompressionLevel::Fastest)
                .compress_when(
                    // Event streams go out as they come, never held back by an encoder.
                    SizeAbove::new(crate::endpoint::COMPRESS_ABOVE_BYTES)
                        .and(NotForContentType::SSE),
                ),
        );

    let mut router = Router::new()
        .route(
            "/graphql",
            get(crate::endpoint::graphql).post(crate::endpoint::graphql),
        )
        .route("/playground", get(crate::playground::page))
        .route("/playground/{asset}", get(crate::playground::asset))
        .route("/schema.graphql", get(schema_sdl))
        .route("/health", get(ready))
        .route("/health/ready", get(ready))
        .route("/health/live", get(live));
    if state.public_metrics {
        router = router.route("/metrics", get(metrics));
    }
    // Every refusal is a JSON error with a code, these too.
    router = router
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found);
    router.layer(layers).with_state(state)
}

/// A method the path does not serve: 405 with the methods it does.
async fn method_not_allowed(request: Request) -> axum::response::Response {
    let allow = if request.uri().path() == "/graphql" {
        "GET, POST"
    } else {
        "GET"
    };
    let mut response = crate::endpoint::response::HttpError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        crate::error::code::METHOD_NOT_ALLOWED,
        format!("{} is not served here: use {allow}", request.method()),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// A path the server does not serve: 404.
async fn not_found(request: Request) -> axum::response::Response {
    crate::endpoint::response::HttpError::new(
        StatusCode::NOT_FOUND,
        crate::error::code::NOT_FOUND,
        format!(
            "Nothing is served at {}: the API is at /graphql",
            request.uri().path()
        ),
    )
    .into_response()
}

/// While the server drains, responses say `Connection: close`: HTTP/1.1 clients and proxies stop
/// reusing their kept-alive connections during the grace period, so none is still picked for a
/// new request when the listener closes. (hyper leaves the header out of HTTP/2 responses, whose
/// connections get a GOAWAY at shutdown instead.)
fn close_while_draining(draining: &AtomicBool, response: &mut axum::response::Response) {
    if draining.load(Ordering::Relaxed) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}

/// The headers every response carries unless its route set its own, and the drain marker.
fn finish_headers(draining: &AtomicBool, response: &mut axum::response::Response) {
    const SECURITY: [(header::HeaderName, &str); 4] = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CONTENT_SECURITY_POLICY, API_CSP),
    ];
    let headers = response.headers_mut();
    for (name, value) in SECURITY {
        if let header::Entry::Vacant(entry) = headers.entry(name) {
            entry.insert(HeaderValue::from_static(value));
        }
    }
    close_while_draining(draining, response);
}

/// The Content-Security-Policy of everything but the playground: an API loads nothing.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// CORS for the configured origins (none: browsers keep to the same origin).
fn cors(origins: &[String]) -> CorsLayer {
    let allow_origin = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("apollographql-client-name"),
            HeaderName::from_static("apollographql-client-version"),
            HeaderName::from_static("graphql-client-name"),
            HeaderName::from_static("graphql-client-version"),
        ])
        .expose_headers([
            header::RETRY_AFTER,
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("ratelimit-limit"),
            HeaderName::from_static("ratelimit-remaining"),
            HeaderName::from_static("ratelimit-reset"),
            HeaderName::from_static("deprecation"),
            HeaderName::from_static("sunset"),
        ])
        .max_age(Duration::from_secs(3600))
}

/// `GET /schema.graphql`: the schema in SDL, for tools and code generators (404 when
/// introspection is off).
async fn schema_sdl(State(state): State<AppState>) -> axum::response::Response {
    if !state.introspection {
        return StatusCode::NOT_FOUND.into_response();
    }
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        schema::sdl_of(&state.gateway.schema),
    )
        .into_response()
}

/// Gives a compressed response's ETag the encoding (`"abc"` becomes `"abc-gzip"`), so that caches
/// never take one representation for another; `If-None-Match` matches either.
fn etag_per_encoding<B>(mut response: axum::http::Response<B>) -> axum::http::Response<B> {
    let encoding = response
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    if let Some(encoding) = encoding
        && let Some(etag) = response
            .headers()
            .get(header::ETAG)
            .and_then(|value| value.to_str().ok())
        && let Some(opaque) = etag.strip_suffix('"')
        && let Ok(value) = HeaderValue::from_str(&format!("{opaque}-{encoding}\""))
    {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// `GET /metrics`: the metrics in the Prometheus text format.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let pool = match state.db.get_database_backend() {
        DbBackend::Postgres => {
            let pool = state.db.get_postgres_connection_pool();
            Some((pool.size(), pool.num_idle()))
        }
        DbBackend::Sqlite => {
            let pool = state.db.get_sqlite_connection_pool();
            Some((pool.size(), pool.num_idle()))
        }
        _ => None,
    };
    let snapshot = Snapshot {
        pool,
        pool_max: state.pool_max,
        redis: state.redis.as_ref().map(RedisClient::is_available),
        draining: state.draining.load(Ordering::Relaxed),
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(snapshot),
    )
}

/// `GET /health/live`: the process answers (nothing else is checked: restarting a process whose
/// database is down would not help).
async fn live() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

/// How long one readiness check may take before it counts as failed.
const READINESS_CHECK_TIMEOUT: Duration = Duration::from_millis(800);

/// `GET /health/ready` (and `/health`): 200 when this instance should get traffic: the database
/// answers, its migrations are current, and the server is not draining; 503 otherwise. Redis is
/// reported but never fails readiness: without it the server degrades (uncached, in-process
/// limits) instead of failing. The public answer is the status alone; the checks are on the
/// admin listener ([`ready_detailed`]).
async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let (status, readiness) = readiness(&state).await;
    (
        status,
        Json(serde_json::json!({ "status": readiness["status"] })),
    )
}

/// `GET /health/ready` (and `/health`) on the admin listener: the same answer with every check
/// named, replicas included (kept off the public listener: it names hosts and databases).
async fn ready_detailed(State(state): State<AppState>) -> impl IntoResponse {
    let (status, readiness) = readiness(&state).await;
    (status, Json(readiness))
}

/// The readiness status and its report.
async fn readiness(state: &AppState) -> (StatusCode, serde_json::Value) {
    let mut ready = true;
    // Probes have deadlines of their own (often 1 s): the checks answer within one.
    let within = |check| tokio::time::timeout(READINESS_CHECK_TIMEOUT, check);
    let database = match within(state.db.ping()).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(err)) => {
            tracing::error!(error = %err, "readiness: database unreachable");
            ready = false;
            "unreachable".to_owned()
        }
        Err(_) => {
            tracing::error!("readiness: the database did not answer in time");
            ready = false;
            "unreachable".to_owned()
        }
    };
    let migrations = match tokio::time::timeout(
        READINESS_CHECK_TIMEOUT,
        Migrator::get_pending_migrations(&state.db),
    )
    .await
    {
        Ok(Ok(pending)) if pending.is_empty() => "ok".to_owned(),
        Ok(Ok(pending)) => {
            ready = false;
            format!("{} pending", pending.len())
        }
        _ => {
            ready = false;
            "unknown".to_owned()
        }
    };
    let draining = state.draining.load(Ordering::Relaxed);
    ready &= !draining;
    // A PING within the Redis deadline (refused at once while the circuit is open).
    let redis = match &state.redis {
        None => "not configured",
        Some(redis) if redis.ping().await => "ok",
        Some(_) => "unavailable (degraded: uncached, limits in process)",
    };
    let replica_states = state
        .gateway
        .replicas
        .as_ref()
        .map(|replicas| replicas.states())
        .unwrap_or_default();
    // The primary is down but a replica answers: queries are served, mutations refused with
    // SERVICE_UNAVAILABLE; the instance stays in the load balancer, read-only.
    let read_only = database != "ok" && replica_states.iter().any(|(_, up, _)| *up) && !draining;
    let (status, word) = if ready {
        (StatusCode::OK, "ok")
    } else if read_only {
        (
            StatusCode::OK,
            "degraded: read-only (the primary is unreachable; queries read on replicas)",
        )
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    // Replicas are reported, never failing readiness: reads fall back to the primary.
    let replicas: Vec<serde_json::Value> = replica_states
        .into_iter()
        .map(|(replica, up, lag_ms)| {
            serde_json::json!({ "replica": replica, "up": up, "lagMs": if up { Some(lag_ms) } else { None } })
        })
        .collect();
    (
        status,
        serde_json::json!({
            "status": word,
            "checks": {
                "database": database,
                "migrations": migrations,
                "draining": draining,
                "redis": redis,
                "replicas": replicas,
            }
        }),
    )
}
