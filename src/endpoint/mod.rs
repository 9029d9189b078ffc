//! Transports: `/graphql` over HTTP (`GET` and `POST`), over a WebSocket (`graphql-transport-ws`)
//! and as Server-Sent Events. Each reads the request, hands its operations to the gateway's stages
//! and writes the answer; no check lives only here.
//!
//! Hand-written rather than async-graphql-axum's `GraphQLRequest` extractor: the extractor reads
//! the whole body before the handler runs, with neither the body-read deadline nor the in-flight
//! permit taken after it, and hands over async-graphql requests after which the gateway's stages
//! (persisted lookup, pricing, budget) could no longer come first.

pub mod client_address;
mod operation_ids;
mod precompressed;
pub mod request;
pub mod response;
pub mod sse;
pub mod websocket;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tracing::{Instrument, Span};

use self::request::ReadLimits;
use self::response::HttpError;
use crate::auth::{ClientAddress, Viewer};
use crate::error::code;
use crate::gateway::{Caller, Exchange, Operation, Rejection, Transport};
use crate::metrics::{Metrics, OperationSeries};
use crate::state::AppState;
use crate::usage::{ClientApp, DeprecationDates};
use crate::{db, telemetry};

/// Bodies larger than this are compressed (when the client accepts it).
pub const COMPRESS_ABOVE_BYTES: u64 = 1024;

/// `/graphql`: a WebSocket upgrade, an event stream (`POST` with `Accept: text/event-stream`), or
/// plain HTTP.
pub async fn graphql(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let streaming =
        websocket::is_upgrade(&parts) || sse::wants_events(&parts.method, &parts.headers);
    if !streaming {
        return http(state, peer, parts.method, parts.uri, parts.headers, body).await;
    }
    let settings = &state.endpoint;
    let address = ClientAddress::new(client_address::resolve(
        &parts.headers,
        peer,
        settings.client_ip_header.as_ref(),
        settings.trusted_proxies,
    ));
    if websocket::is_upgrade(&parts) {
        websocket::upgrade(state, address, parts).await
    } else {
        sse::serve(
            state,
            address,
            (parts.method, parts.uri, parts.headers),
            body,
        )
        .await
    }
}

/// `GET` and `POST /graphql` over plain HTTP: one operation, or a batch of them.
async fn http(
    state: AppState,
    peer: SocketAddr,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = std::time::Instant::now();
    let metrics = Arc::clone(&state.metrics);
    let ((response, operation, ok), statements) =
        // Boxed: the pipeline's future is large, and request tasks should not carry it inline.
        db::counting_statements(Box::pin(serve(state, peer, method, uri, headers, body))).await;
    metrics.statements(statements);
    tracing::Span::current().record("statements", statements);
    metrics.request(&operation, ok, started.elapsed().as_secs_f64());
    response
}

/// Serves one request; the response, the operation label for metrics, and whether it had no
/// error.
async fn serve(
    state: AppState,
    peer: SocketAddr,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> (Response, OperationSeries, bool) {
    let span = Span::current();
    let settings = &state.endpoint;
    let limits = ReadLimits {
        max_body_bytes: settings.max_body_bytes,
        max_batch: settings.max_batch,
        body_deadline: settings.body_deadline,
    };
    let raw = match request::read(&method, &uri, &headers, body, limits)
        .instrument(telemetry::stage_span("read"))
        .await
    {
        Ok(raw) => raw,
        Err(err) => {
            span.record("outcome", "refused: malformed request");
            return (
                err.into_response(),
                state.metrics.fixed_operation("invalid"),
                false,
            );
        }
    };
    // Only a request whose body arrived holds one of the permits: slow senders cannot starve
    // the others.
    let Ok(_permit) = state.in_flight.clone().try_acquire_owned() else {
        span.record("outcome", "refused: saturated");
        return (
            response::overloaded(),
            state.metrics.fixed_operation("shed"),
            false,
        );
    };
    let _in_flight = InFlight::new(&state.metrics);
    let operation = match raw.operations.as_slice() {
        [single] => state.metrics.operation(
            single
                .operation_name
                .as_deref()
                .or_else(|| document_name(&single.query)),
        ),
        _ => state.metrics.fixed_operation("batch"),
    };
    span.record("operation", &*operation.label);
    let request_id = headers
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let address = ClientAddress::new(client_address::resolve(
        &headers,
        peer,
        settings.client_ip_header.as_ref(),
        settings.trusted_proxies,
    ));
    let transport = Transport {
        mutations: method == Method::POST,
        cacheable: true,
        subscriptions: false,
    };
    let gateway = &state.gateway;
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let caller = match gateway
        .authenticate(authorization, address)
        .instrument(telemetry::stage_span("authenticate"))
        .await
    {
        Ok(caller) => caller.with_app(ClientApp::from_headers(&headers)),
        Err(err) => {
            // Nothing runs, so nothing is charged; the address's budget is reported.
            let error = err.to_request_error();
            let operations = raw
                .operations
                .iter()
                .map(|_| Operation::refused(error.clone(), 0))
                .collect();
            let mut exchange = Exchange::new(
                Caller::new(Viewer::anonymous(), address),
                raw.batch,
                operations,
            );
            exchange.throttle = gateway.charge(&exchange.caller.client, 0.0).await;
            let settled = gateway
                .settle(exchange, &request_id)
                .instrument(telemetry::stage_span("settle"))
                .await;
            return (
                respond(settled, &headers, false, &gateway.deprecation_dates),
                operation,
                false,
            );
        }
    };
    let mut operations = Vec::with_capacity(raw.operations.len());
    for raw_operation in raw.operations {
        let prepared = Box::pin(gateway.prepare(raw_operation, transport, &caller))
            .instrument(telemetry::stage_span("prepare"))
            .await;
        match prepared {
            Ok(prepared) => operations.push(prepared),
            Err(Rejection::MutationNotAllowed) => {
                span.record("outcome", "refused: mutation over GET");
                let refusal = HttpError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    code::METHOD_NOT_ALLOWED,
                    Rejection::MutationNotAllowed.to_string(),
                );
                return (refusal.into_response(), operation, false);
            }
        }
    }
    let mut exchange = Exchange::new(caller, raw.batch, operations);
    gateway
        .admit(&mut exchange)
        .instrument(telemetry::stage_span("admit"))
        .await;
    Box::pin(gateway.execute(&mut exchange, transport))
        .instrument(telemetry::stage_span("execute"))
        .await;
    let settled = gateway
        .settle(exchange, &request_id)
        .instrument(telemetry::stage_span("settle"))
        .await;
    let ok = settled
        .answers
        .iter()
        .all(|answer| answer.errors.is_empty());
    (
        respond(
            settled,
            &headers,
            method == Method::GET,
            &gateway.deprecation_dates,
        ),
        operation,
        ok,
    )
}

/// Writes the answers, in a `respond` span; when a deprecated field ran, with `Deprecation`
/// (and `Sunset` when its removal date is configured).
fn respond(
    settled: crate::gateway::Settled,
    headers: &HeaderMap,
    get: bool,
    dates: &DeprecationDates,
) -> Response {
    let deprecation = dates.deprecation(&settled.deprecated);
    let sunset = dates.sunset(&settled.deprecated);
    let mut response =
        telemetry::stage_span("respond").in_scope(|| response::graphql(settled, headers, get));
    for (name, value) in [("deprecation", deprecation), ("sunset", sunset)] {
        if let Some(value) = value.and_then(|value| HeaderValue::from_str(&value).ok()) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// Counts a request in flight while it lives.
struct InFlight<'a>(&'a Metrics);

impl<'a> InFlight<'a> {
    fn new(metrics: &'a Metrics) -> Self {
        metrics.in_flight(1);
        Self(metrics)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight(-1);
    }
}

/// The name a document gives its only operation (`query Name { ... }`), read without parsing:
/// for logs and metrics only.
fn document_name(query: &str) -> Option<&str> {
    let rest = query.trim_start();
    let rest = rest
        .strip_prefix("query")
        .or_else(|| rest.strip_prefix("mutation"))
        .or_else(|| rest.strip_prefix("subscription"))?;
    let rest = rest.trim_start();
    let end = rest
        .find(|c: char| !(c == '_' || c.is_ascii_alphanumeric()))
        .unwrap_or(rest.len());
    let name = &rest[..end];
    (!name.is_empty()).then_some(name)
}
