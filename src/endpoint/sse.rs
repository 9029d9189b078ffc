//! `/graphql` as Server-Sent Events: GraphQL over SSE in the `graphql-sse` library's "distinct
//! connections" mode. `POST /graphql` with `Accept: text/event-stream` carries one operation; the
//! answer is a stream of `next` events (one for a query or mutation, one per event for a
//! subscription) and a final `complete`. The operation goes through the gateway's stages like any
//! other; the connection counts against the same caps as a WebSocket.
//!
//! The stream is written as the client reads it: a client that stops reading stops the
//! subscription's progress, and once it falls further behind than the change feed's buffer it gets
//! a last `next` with `SLOW_CONSUMER` and the stream ends.

use std::convert::Infallible;

use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::request::{self, ReadLimits};
use super::response::HttpError;
use super::websocket::refused;
use crate::auth::ClientAddress;
use crate::error::code;
use crate::gateway::{CloseReason, Delivery, refusal};
use crate::state::AppState;

/// Whether a `POST` asks for an event stream.
pub fn wants_events(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::POST
        && headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .any(|accept| accept.contains("text/event-stream"))
}

/// Serves one operation as an event stream.
pub async fn serve(
    state: AppState,
    address: ClientAddress,
    (method, uri, headers): (Method, Uri, HeaderMap),
    body: Body,
) -> Response {
    let settings = &state.endpoint;
    let limits = ReadLimits {
        max_body_bytes: settings.max_body_bytes,
        max_batch: 1,
        body_deadline: settings.body_deadline,
    };
    let mut raw = match request::read(&method, &uri, &headers, body, limits).await {
        Ok(raw) => raw,
        Err(err) => return err.into_response(),
    };
    let (Some(operation), false) = (raw.operations.pop(), raw.batch) else {
        return HttpError::bad_request("An event stream carries one operation, not a batch")
            .into_response();
    };
    let slot = match state.realtime.admit(&address.to_string(), "sse") {
        Ok(slot) => slot,
        Err(cap) => return refused(cap, &state.realtime),
    };
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let subscriber = match state.gateway.subscriber(authorization, address).await {
        Ok(subscriber) => subscriber,
        Err(err) => {
            return HttpError::new(
                StatusCode::UNAUTHORIZED,
                code::UNAUTHENTICATED,
                err.to_string(),
            )
            .into_response();
        }
    };
    let request_id = headers
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let deliveries = state
        .gateway
        .stream(operation, subscriber, request_id)
        .await;
    // A close ends the gateway's stream after its last event; `complete` follows either way
    // (only the server stopping ends a stream without it, so that clients reconnect).
    let events = deliveries
        .map(|delivery| match delivery {
            Delivery::Next(response) => next_event(&response),
            Delivery::Close(reason) => {
                let (message, code) = match reason {
                    CloseReason::SlowConsumer => (
                        "Fell too far behind the changes: the stream ends",
                        code::SLOW_CONSUMER,
                    ),
                    CloseReason::Unauthenticated => (
                        "The token expired or was revoked: the stream ends",
                        code::UNAUTHENTICATED,
                    ),
                };
                next_event(&refusal(message, code))
            }
        })
        .chain(futures::stream::once(async {
            Event::default().event("complete").data("")
        }))
        .take_until(state.realtime.closing())
        .map(move |event| {
            let _slot = &slot;
            Ok::<_, Infallible>(event)
        });
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(state.realtime.keepalive))
        .into_response();
    // Proxies must pass events on as they come.
    response.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    response
}

/// A `next` event carrying `response`.
fn next_event(response: &async_graphql::Response) -> Event {
    let data = serde_json::to_string(response).unwrap_or_else(|_| "{}".to_owned());
    Event::default().event("next").data(data)
}
