//! The `/graphql` handler: read the request, resolve persisted operations, check the static
//! limits, charge the client's cost budget, execute, refund what was not used, and answer with
//! `extensions.cost`.

pub mod execute;
pub mod request;
pub mod response;

use std::net::{IpAddr, SocketAddr};

use async_graphql::parser::types::OperationType;
use async_graphql::{ErrorExtensionValues, ServerError, Variables};
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tracing::Span;

use self::execute::{Caller, Prepared};
use self::request::RawOperation;
use self::response::HttpError;
use crate::app::AppState;
use crate::auth::Viewer;
use crate::cache::{CachePolicy, CacheStatus};
use crate::error::{AppError, code, request_error};
use crate::graphql::analysis;
use crate::graphql::cost::CostReport;
use crate::graphql::limits;
use crate::persisted::PersistedError;
use crate::rate_limit::Decision;

/// `GET` and `POST /graphql`: one operation, or a batch of them.
pub async fn graphql(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let span = Span::current();
    let raw = match request::read(
        &method,
        &uri,
        &headers,
        body,
        state.http.max_body_bytes,
        state.http.max_batch,
    )
    .await
    {
        Ok(raw) => raw,
        Err(err) => {
            span.record("outcome", "refused: malformed request");
            return err.into_response();
        }
    };
    let names: Vec<&str> = raw
        .operations
        .iter()
        .filter_map(|operation| operation.operation_name.as_deref())
        .collect();
    if !names.is_empty() {
        span.record("operation", names.join(",").as_str());
    }
    let request_id = headers
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let address = client_address(&headers, peer, state.http.client_ip_header.as_ref());
    let viewer = match Viewer::from_authorization(authorization, &state.tokens) {
        Ok(viewer) => viewer,
        Err(err) => {
            let error = err.to_request_error();
            span.record("outcome", "errors: UNAUTHENTICATED");
            // Nothing runs, so nothing is charged; the address's budget is reported.
            let throttle = charge(&state, &format!("address:{address}"), 0.0).await;
            let responses = raw
                .operations
                .iter()
                .map(|_| refused_with_cost(error.clone(), 0, throttle))
                .collect();
            return response::graphql(
                responses,
                raw.batch,
                &headers,
                throttle,
                response::Caching::default(),
            );
        }
    };
    let client = match viewer.user_id() {
        Some(user_id) => format!("user:{user_id}"),
        None => format!("address:{address}"),
    };

    let mut prepared = Vec::with_capacity(raw.operations.len());
    for operation in raw.operations {
        match prepare(&state, operation, &method).await {
            Ok(operation) => prepared.push(Ok(operation)),
            Err(Failure::Http(err)) => {
                span.record("outcome", "refused");
                return err.into_response();
            }
            Err(Failure::GraphQl(error, requested)) => prepared.push(Err((error, requested))),
        }
    }
    let requested: u64 = prepared
        .iter()
        .map(|operation| operation.as_ref().map_or(0, |operation| operation.cost))
        .sum();
    let mut throttle = charge(&state, &client, requested as f64).await;
    if let Some(decision) = throttle.filter(|decision| !decision.allowed) {
        let error = AppError::RateLimited {
            message: format!(
                "Rate limited: this request costs {requested} points and {} are available",
                decision.remaining.floor()
            ),
            retry_after_seconds: decision.retry_after_seconds(requested as f64),
        }
        .to_request_error();
        let responses = prepared
            .iter()
            .map(|operation| {
                let requested = match operation {
                    Ok(operation) => operation.cost,
                    Err((_, requested)) => *requested,
                };
                refused_with_cost(error.clone(), requested, throttle)
            })
            .collect();
        span.record("outcome", "errors: RATE_LIMITED");
        return response::graphql(
            responses,
            raw.batch,
            &headers,
            throttle,
            response::Caching::default(),
        );
    }

    let caller = Caller { viewer, address };
    let single = prepared.len() == 1 && !raw.batch;
    let mut responses = Vec::with_capacity(prepared.len());
    let mut costs = Vec::with_capacity(prepared.len());
    let mut cache_status = CacheStatus::Bypass;
    let mut cache_control = None;
    let mut is_query = false;
    for operation in prepared {
        let (response, cost) = match operation {
            Ok(operation) => {
                let (outcome, status) = execute::run(&state, &operation, caller, single).await;
                state.metrics.response(status);
                let actual = analysis::actual_cost(
                    &operation.document,
                    operation.operation_name.as_deref(),
                    &operation.variables,
                    &state.schema_info,
                    &outcome.data,
                )
                .min(operation.cost);
                is_query = operation.operation_type == OperationType::Query;
                cache_status = status;
                if is_query && outcome.errors.is_empty() {
                    cache_control = CachePolicy::from_hints(outcome.hints);
                }
                let mut response = execute::response(outcome);
                report_deprecations(&state, &operation.deprecated, &mut response);
                (response, (operation.cost, actual))
            }
            Err((error, requested)) => (execute::refused(error), (requested, 0)),
        };
        responses.push(response);
        costs.push(cost);
    }
    let actual: u64 = costs.iter().map(|(_, actual)| actual).sum();
    if throttle.is_some() && actual < requested {
        throttle = charge(&state, &client, -((requested - actual) as f64)).await;
    }
    let mut codes = Vec::new();
    for (response, (requested, actual)) in responses.iter_mut().zip(costs) {
        for error in &mut response.errors {
            codes.push(classify(error, &request_id));
        }
        let report = CostReport {
            requested,
            actual,
            throttle,
        };
        response.extensions.insert("cost".into(), report.to_value());
    }
    let outcome = if codes.is_empty() {
        "ok".to_owned()
    } else {
        format!("errors: {}", codes.join(","))
    };
    span.record("outcome", outcome.as_str());
    let caching = response::Caching {
        status: cache_status,
        policy: cache_control.filter(|_| single),
        etag: single && is_query && method == Method::GET,
    };
    response::graphql(responses, raw.batch, &headers, throttle, caching)
}

/// Why an operation does not run.
enum Failure {
    /// The whole HTTP request is refused (a mutation over GET).
    Http(HttpError),
    /// This operation answers with a GraphQL error (and the cost it would have requested).
    GraphQl(ServerError, u64),
}

impl From<limits::LimitError> for Failure {
    fn from(err: limits::LimitError) -> Self {
        let requested = match &err {
            limits::LimitError::TooComplex {
                limit: "cost",
                actual,
                ..
            } => *actual,
            _ => 0,
        };
        Self::GraphQl(err.to_server_error(), requested)
    }
}

/// Resolves, parses and checks one operation.
async fn prepare(
    state: &AppState,
    operation: RawOperation,
    method: &Method,
) -> Result<Prepared, Failure> {
    let resolved = state
        .persisted
        .resolve(operation.query, &operation.persisted)
        .await
        .map_err(|err| Failure::GraphQl(persisted_error(&err), 0))?;
    limits::scan_document(&resolved.query, &state.limits)?;
    let document = async_graphql::parser::parse_query(&resolved.query).map_err(|err| {
        let mut error = ServerError::from(err);
        error.extensions = request_error("", code::GRAPHQL_PARSE_FAILED).extensions;
        Failure::GraphQl(error, 0)
    })?;
    let operation_name = operation.operation_name;
    let selected = analysis::select_operation(&document, operation_name.as_deref());
    if *method == Method::GET && selected.is_some_and(|op| op.ty == OperationType::Mutation) {
        return Err(Failure::Http(HttpError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            code::METHOD_NOT_ALLOWED,
            "Mutations must be sent with POST",
        )));
    }
    let variables_json = serde_json::Value::Object(operation.variables);
    let variables = Variables::from_json(variables_json.clone());
    let analysis = analysis::analyze(
        &document,
        operation_name.as_deref(),
        &variables,
        &state.schema_info,
        &state.limits,
    )?;
    if analysis.introspection && !state.introspection {
        let error = request_error(
            "Introspection is disabled on this server",
            code::GRAPHQL_VALIDATION_FAILED,
        );
        return Err(Failure::GraphQl(error, 0));
    }
    if let Some(hash) = &resolved.register {
        state.persisted.register(hash, &resolved.query).await;
    }
    Ok(Prepared {
        query: resolved.query,
        document,
        operation_name,
        variables,
        variables_json,
        operation_type: analysis.operation_type,
        cost: analysis.requested_cost,
        deprecated: analysis.deprecated,
    })
}

/// Counts and logs the deprecated fields an operation used, and tells the caller in
/// `extensions.deprecations: [{ field, reason }]`.
fn report_deprecations(
    state: &AppState,
    deprecated: &[(String, String)],
    response: &mut async_graphql::Response,
) {
    if deprecated.is_empty() {
        return;
    }
    let mut list = Vec::with_capacity(deprecated.len());
    for (field, reason) in deprecated {
        state.metrics.deprecated_field_used(field);
        tracing::info!(field = %field, "deprecated field used");
        let mut entry = async_graphql::indexmap::IndexMap::new();
        entry.insert(
            async_graphql::Name::new("field"),
            async_graphql::Value::from(field.as_str()),
        );
        entry.insert(
            async_graphql::Name::new("reason"),
            async_graphql::Value::from(reason.as_str()),
        );
        list.push(async_graphql::Value::Object(entry));
    }
    response
        .extensions
        .insert("deprecations".into(), async_graphql::Value::List(list));
}

fn persisted_error(err: &PersistedError) -> ServerError {
    let code = match err {
        PersistedError::NotFound => code::PERSISTED_QUERY_NOT_FOUND,
        PersistedError::NotTrusted => code::OPERATION_NOT_TRUSTED,
        PersistedError::HashMismatch | PersistedError::UnsupportedVersion => code::BAD_REQUEST,
    };
    request_error(err.to_string(), code)
}

/// Takes `cost` points (gives them back when negative) from `client`'s budget; its state after,
/// or `None` when rate limiting is off.
async fn charge(state: &AppState, client: &str, cost: f64) -> Option<Decision> {
    let policy = state.cost_bucket?;
    Some(
        state
            .limiter
            .take(&format!("cost:{client}"), cost, policy)
            .await,
    )
}

/// The response of an operation refused before it ran, with its cost report.
fn refused_with_cost(
    error: ServerError,
    requested: u64,
    throttle: Option<Decision>,
) -> async_graphql::Response {
    let mut response = async_graphql::Response::from_errors(vec![error]);
    let report = CostReport {
        requested,
        actual: 0,
        throttle,
    };
    response.extensions.insert("cost".into(), report.to_value());
    response
}

/// The client's address: from the trusted proxy header when configured and present (its last
/// entry: the one the proxy added), the peer's address otherwise.
fn client_address(headers: &HeaderMap, peer: SocketAddr, trusted: Option<&HeaderName>) -> IpAddr {
    trusted
        .and_then(|name| headers.get(name))
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.rsplit(',').next())
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| peer.ip())
}

/// Gives every error a stable `extensions.code`, and internal errors the request id; the code.
fn classify(error: &mut ServerError, request_id: &str) -> String {
    let extensions = error
        .extensions
        .get_or_insert_with(ErrorExtensionValues::default);
    let code = match extensions.get("code") {
        Some(async_graphql::Value::String(code)) => code.clone(),
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
