//! AppState, the router, the `/graphql` handler, the tower layers and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{BoxError, Json, Router};
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::{Span, field};

use crate::auth::{AuthThrottle, Passwords, Tokens};
use crate::cache::ResponseCache;
use crate::cache::redis_store::RedisStore;
use crate::cache::store::{CacheStore, MemoryStore};
use crate::config::Config;
use crate::db::{self, StatementCounter};
use crate::error::AppError;
use crate::graphql::analysis::SchemaInfo;
use crate::graphql::limits::Limits;
use crate::metrics::Metrics;
use crate::persisted::PersistedQueries;
use crate::rate_limit::{BucketPolicy, RateLimiter};
use crate::redis_client::RedisClient;
use crate::schema::{self, AppSchema};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The GraphQL schema (with the pool, hasher and token issuer as data).
    pub schema: AppSchema,
    /// The database pool.
    pub db: DatabaseConnection,
    /// Issues and verifies tokens.
    pub tokens: Tokens,
    /// SQL statements sent since start-up.
    pub statements: StatementCounter,
    /// What the static analysis knows of the schema.
    pub schema_info: Arc<SchemaInfo>,
    /// The static limits on one operation.
    pub limits: Arc<Limits>,
    /// The token buckets (cost budgets, sign-in throttling).
    pub limiter: RateLimiter,
    /// Each client's cost budget; `None` when rate limiting is off.
    pub cost_bucket: Option<BucketPolicy>,
    /// Automatic persisted queries and trusted documents.
    pub persisted: PersistedQueries,
    /// Limits of the HTTP layer.
    pub http: HttpSettings,
    /// The response cache, unless turned off.
    pub cache: Option<Arc<ResponseCache>>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Whether introspection (and `/schema.graphql`) is enabled.
    pub introspection: bool,
}

/// Limits and settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Most operations in one batch.
    pub max_batch: usize,
    /// Header of a trusted proxy that holds the client address.
    pub client_ip_header: Option<HeaderName>,
    /// Longest time one request may take.
    pub request_timeout: Duration,
    /// Most GraphQL requests in progress at once.
    pub max_in_flight: usize,
    /// Origins allowed by CORS (`*` for any).
    pub cors_origins: Vec<String>,
}

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
    Manifest(#[from] crate::persisted::ManifestError),
    /// The schema's SDL does not parse (a bug).
    #[error("schema analysis: {0}")]
    Schema(#[from] async_graphql::parser::Error),
}

/// A started application: migrated database, bound listener, ready to serve.
pub struct App {
    listener: TcpListener,
    state: AppState,
}

impl App {
    /// Connects to the database, runs the migrations and binds the listen address.
    pub async fn build(config: &Config) -> Result<Self, StartError> {
        config.validate()?;
        let redis = match &config.redis_url {
            Some(url) => {
                let client =
                    RedisClient::connect(url, &config.redis_prefix, config.redis_timeout())?;
                if client.ping().await {
                    tracing::info!("redis connected: shared rate limits and persisted queries");
                } else {
                    tracing::warn!(
                        "redis does not answer yet: state stays in this process until it does"
                    );
                }
                Some(client)
            }
            None => None,
        };
        let trusted = match &config.trusted_documents {
            Some(path) => {
                let documents = PersistedQueries::read_manifest(path)?;
                tracing::info!(path = %path.display(), documents = documents.len(), "trusted documents only");
                Some(documents)
            }
            None => None,
        };
        let limiter = RateLimiter::new(redis.clone());
        let throttle = AuthThrottle::new(limiter.clone(), config.throttle_policy());
        let statements = StatementCounter::default();
        let db = db::connect(
            &config.database_url,
            config.db_max_connections,
            statements.clone(),
        )
        .await?;
        db::migrate(&db).await?;
        let secret = match &config.jwt_secret {
            Some(secret) => secret.expose().as_bytes().to_vec(),
            None => {
                tracing::warn!(
                    "CONDUIT_JWT_SECRET is not set: using a random secret, so tokens stop working at the next start"
                );
                rand::random::<[u8; 32]>().to_vec()
            }
        };
        let tokens = Tokens::new(&secret, config.token_ttl());
        let passwords = Passwords::new(config.hash_concurrency())?;
        let schema = schema::build(db.clone(), passwords, tokens.clone(), throttle);
        let schema_info = SchemaInfo::from_sdl(&schema.sdl())?;
        let listener = TcpListener::bind(config.listen).await?;
        Ok(Self {
            listener,
            state: AppState {
                schema,
                db,
                tokens,
                statements,
                schema_info: Arc::new(schema_info),
                limits: Arc::new(config.limits()),
                limiter,
                cost_bucket: config.rate_limit.then(|| config.cost_bucket()),
                persisted: PersistedQueries::new(redis.clone(), trusted),
                metrics: Arc::new(Metrics::default()),
                introspection: config.introspection,
                cache: config.cache.then(|| {
                    let store: Arc<dyn CacheStore> = match &redis {
                        Some(redis) => Arc::new(RedisStore::new(redis.clone())),
                        None => Arc::new(MemoryStore::new(
                            usize::try_from(config.cache_max_bytes).unwrap_or(usize::MAX),
                        )),
                    };
                    Arc::new(ResponseCache::new(
                        store,
                        redis.clone(),
                        Duration::from_secs(config.cache_max_ttl_secs),
                    ))
                }),
                http: HttpSettings {
                    max_body_bytes: usize::try_from(config.max_body_bytes).unwrap_or(usize::MAX),
                    max_batch: config.max_batch as usize,
                    client_ip_header: config
                        .client_ip_header
                        .as_deref()
                        .and_then(|name| HeaderName::try_from(name).ok()),
                    request_timeout: Duration::from_secs(config.request_timeout_secs),
                    max_in_flight: config.max_in_flight as usize,
                    cors_origins: config.cors_origins.clone(),
                },
            },
        })
    }

    /// The address the server listens on (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The shared state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = router(self.state);
        axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
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
    tracing::info!("shutting down: finishing the requests in flight");
}

/// The HTTP routes with their tower layers.
pub fn router(state: AppState) -> Router {
    let http = state.http.clone();
    let layers = ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    let request_id = request
                        .headers()
                        .get("x-request-id")
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or("-");
                    tracing::info_span!(
                        "request",
                        request_id = %request_id,
                        method = %request.method(),
                        path = %request.uri().path(),
                        operation = field::Empty,
                        outcome = field::Empty,
                    )
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
        // Keep browsers from sniffing, framing or leaking anything; a route may set its own.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(API_CSP),
        ))
        .layer(cors(&http.cors_origins))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            http.request_timeout,
        ));
    // Past `max_in_flight` GraphQL requests, more are refused at once instead of queueing.
    let load_shedding = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|_: BoxError| async {
            crate::endpoint::response::overloaded()
        }))
        .layer(LoadShedLayer::new())
        .layer(GlobalConcurrencyLimitLayer::new(http.max_in_flight));

    Router::new()
        .route(
            "/graphql",
            get(crate::endpoint::graphql)
                .post(crate::endpoint::graphql)
                .layer(load_shedding),
        )
        .route("/playground", get(crate::playground::page))
        .route("/playground/{asset}", get(crate::playground::asset))
        .route("/schema.graphql", get(schema_sdl))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .layer(layers)
        .with_state(state)
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
        ])
        .expose_headers([
            header::RETRY_AFTER,
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("ratelimit-limit"),
            HeaderName::from_static("ratelimit-remaining"),
            HeaderName::from_static("ratelimit-reset"),
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
        schema::sdl_of(&state.schema),
    )
        .into_response()
}

/// `GET /metrics`: counters in the Prometheus text format.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// `GET /health`: 200 when the database answers, 503 otherwise.
async fn health(State(state): State<AppState>) -> impl IntoResponse {
    match state.db.ping().await {
        Ok(()) => (StatusCode::OK, Json(serde_json::json!({ "status": "ok" }))),
        Err(err) => {
            tracing::error!(error = %err, "health check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "status": "unavailable" })),
            )
        }
    }
}
