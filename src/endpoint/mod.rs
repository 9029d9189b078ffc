//! Transports: `/graphql` over HTTP (`GET` and `POST`). Each reads the request, hands its
//! operations to the gateway's stages and writes the answer; no check lives only here.
//!
//! Hand-written rather than async-graphql-axum's `GraphQLRequest` extractor: the extractor reads
//! the whole body before the handler runs, with neither the body-read deadline nor the in-flight
//! permit taken after it, and hands over async-graphql requests after which the gateway's stages
//! (persisted lookup, pricing, budget) could no longer come first.

pub mod client_address;
pub mod request;
pub mod response;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tracing::Span;

use self::request::ReadLimits;
use self::response::HttpError;
use crate::auth::{ClientAddress, Viewer};
use crate::error::code;
use crate::gateway::{Caller, Exchange, Operation, Rejection, Transport};
use crate::state::AppState;

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
    let settings = &state.endpoint;
    let limits = ReadLimits {
        max_body_bytes: settings.max_body_bytes,
        max_batch: settings.max_batch,
        body_deadline: settings.body_deadline,
    };
    let raw = match request::read(&method, &uri, &headers, body, limits).await {
        Ok(raw) => raw,
        Err(err) => {
            span.record("outcome", "refused: malformed request");
            return err.into_response();
        }
    };
    // Only a request whose body arrived holds one of the permits: slow senders cannot starve
    // the others.
    let Ok(_permit) = state.in_flight.clone().try_acquire_owned() else {
        span.record("outcome", "refused: saturated");
        return response::overloaded();
    };
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
    };
    let gateway = &state.gateway;
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let caller = match gateway.authenticate(authorization, address).await {
        Ok(caller) => caller,
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
            let settled = gateway.settle(exchange, &request_id).await;
            return response::graphql(settled, &headers, false);
        }
    };
    let mut operations = Vec::with_capacity(raw.operations.len());
    for operation in raw.operations {
        match gateway.prepare(operation, transport).await {
            Ok(operation) => operations.push(operation),
            Err(Rejection::MutationNotAllowed) => {
                span.record("outcome", "refused: mutation over GET");
                return HttpError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    code::METHOD_NOT_ALLOWED,
                    Rejection::MutationNotAllowed.to_string(),
                )
                .into_response();
            }
        }
    }
    let mut exchange = Exchange::new(caller, raw.batch, operations);
    gateway.admit(&mut exchange).await;
    gateway.execute(&mut exchange, transport).await;
    let settled = gateway.settle(exchange, &request_id).await;
    response::graphql(settled, &headers, method == Method::GET)
}
