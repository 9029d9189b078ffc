//! AppState, the router, the `/graphql` handler, the tower layers and graceful shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use async_graphql::http::GraphiQLSource;
use async_graphql::parser::types::{DocumentOperations, OperationType};
use async_graphql::{ErrorExtensionValues, ErrorExtensions, Pos, ServerError};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::{Span, field};

use crate::auth::{Passwords, Tokens, Viewer};
use crate::config::Config;
use crate::db::{self, StatementCounter};
use crate::error::{AppError, code};
use crate::schema::{self, AppSchema};

/// Largest accepted request body.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Longest time a request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

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
}

/// A started application: migrated database, bound listener, ready to serve.
pub struct App {
    listener: TcpListener,
    state: AppState,
}

impl App {
    /// Connects to the database, runs the migrations and binds the listen address.
    pub async fn build(config: &Config) -> Result<Self, StartError> {
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
        let schema = schema::build(db.clone(), passwords, tokens.clone());
        let listener = TcpListener::bind(config.listen).await?;
        Ok(Self {
            listener,
            state: AppState {
                schema,
                db,
                tokens,
                statements,
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
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ));

    Router::new()
        .route("/graphql", get(graphql).post(graphql))
        .route("/playground", get(playground))
        .route("/schema.graphql", get(schema_sdl))
        .route("/health", get(health))
        .layer(layers)
        .with_state(state)
}

/// `GET` and `POST /graphql`: one GraphQL operation.
async fn graphql(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> Response {
    let request = request.into_inner();
    let span = Span::current();
    if let Some(name) = &request.operation_name {
        span.record("operation", name.as_str());
    }
    if method == Method::GET && is_mutation(&request) {
        span.record("outcome", "refused: mutation over GET");
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "POST")],
            "Mutations must be sent with POST",
        )
            .into_response();
    }
    let request_id = headers
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let mut response = match Viewer::from_authorization(authorization, &state.tokens) {
        Ok(viewer) => {
            let request = schema::with_request_data(request, &state.db, viewer);
            state.schema.execute(request).await
        }
        Err(err) => {
            let mut error = ErrorExtensions::extend(&err).into_server_error(Pos::default());
            error.locations.clear();
            async_graphql::Response::from_errors(vec![error])
        }
    };
    for error in &mut response.errors {
        classify(error, &request_id);
    }
    let outcome = if response.errors.is_empty() {
        "ok".to_owned()
    } else {
        let codes: Vec<String> = response
            .errors
            .iter()
            .filter_map(|error| match error.extensions.as_ref()?.get("code")? {
                async_graphql::Value::String(code) => Some(code.clone()),
                _ => None,
            })
            .collect();
        format!("errors: {}", codes.join(","))
    };
    span.record("outcome", outcome.as_str());
    GraphQLResponse::from(response).into_response()
}

/// Whether the operation the request would run is a mutation.
fn is_mutation(request: &async_graphql::Request) -> bool {
    let Ok(document) = async_graphql::parser::parse_query(&request.query) else {
        return false;
    };
    match &document.operations {
        DocumentOperations::Single(operation) => operation.node.ty == OperationType::Mutation,
        DocumentOperations::Multiple(operations) => {
            let chosen = match &request.operation_name {
                Some(name) => operations.get(name.as_str()),
                None if operations.len() == 1 => operations.values().next(),
                None => None,
            };
            chosen.is_some_and(|operation| operation.node.ty == OperationType::Mutation)
        }
    }
}

/// Gives every error a stable `extensions.code`, and internal errors the request id.
fn classify(error: &mut ServerError, request_id: &str) {
    let extensions = error
        .extensions
        .get_or_insert_with(ErrorExtensionValues::default);
    let code = match extensions.get("code") {
        Some(async_graphql::Value::String(code)) => code.clone(),
        _ => {
            // Errors without a code come from async-graphql itself: the document or its variables.
            let code = if error.message.starts_with(" --> ") {
                code::GRAPHQL_PARSE_FAILED
            } else if error.path.is_empty() {
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
}

/// `GET /playground`: GraphiQL, to explore the API in a browser.
async fn playground() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .title("Conduit GraphQL")
            .finish(),
    )
}

/// `GET /schema.graphql`: the schema in SDL, for tools and code generators.
async fn schema_sdl(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        state.schema.sdl(),
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
