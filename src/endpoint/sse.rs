//! `/graphql` as Server-Sent Events: GraphQL over SSE in the `graphql-sse` library's "distinct
//! connections" mode. `POST /graphql` with `Accept: text/event-stream` carries one operation; the
//! answer is a stream of `next` events (one for a query or mutation, one per event for a
//! subscription) and a final `complete`. The operation goes through the gateway's stages like any
//! other; the connection counts against the same caps as a WebSocket.
//!
//! A task runs the operation and queues its events for the connection: at most
//! `CONDUIT_SUBSCRIPTION_BUFFER` events and `CONDUIT_SUBSCRIPTION_QUEUE_BYTES` bytes wait for a
//! client that does not read; past either, it gets a last `next` with `SLOW_CONSUMER` and the
//! stream ends (and the connection's send timeout drops it if it does not read that either). At
//! each keep-alive the token is checked again: a revoked or expired one ends an idle stream with
//! `UNAUTHENTICATED`, as on a WebSocket.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::mpsc;

use super::request::{self, ReadLimits};
use super::response::HttpError;
use super::websocket::refused;
use crate::auth::ClientAddress;
use crate::error::code;
use crate::gateway::{CloseReason, Delivery, Gateway, Subscriber, refusal};
use crate::realtime::ConnectionSlot;
use crate::state::AppState;
use crate::usage::ClientApp;

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
        Ok(mut subscriber) => {
            subscriber.caller.app = ClientApp::from_headers(&headers);
            subscriber
        }
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
        .stream(operation, subscriber.clone(), request_id)
        .await;
    let (events, body) = mpsc::channel::<Bytes>(state.realtime.buffer.max(2));
    let queued = Arc::new(AtomicUsize::new(0));
    tokio::spawn(drive(
        deliveries,
        Outgoing {
            events,
            queued: Arc::clone(&queued),
            max_bytes: state.realtime.queue_bytes,
        },
        Watch {
            gateway: Arc::clone(&state.gateway),
            subscriber,
            keepalive: state.realtime.keepalive,
            closing: Box::pin(state.realtime.closing()),
        },
        slot,
    ));
    let stream = futures::stream::unfold(body, move |mut body| {
        let queued = Arc::clone(&queued);
        async move {
            let event = body.recv().await?;
            queued.fetch_sub(event.len(), Ordering::Relaxed);
            Some((Ok::<_, Infallible>(event), body))
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies must pass events on as they come.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Where a stream's events go: a queue bounded in messages and in bytes.
struct Outgoing {
    events: mpsc::Sender<Bytes>,
    queued: Arc<AtomicUsize>,
    max_bytes: usize,
}

/// What ends a stream besides its operation: the token (checked at each keep-alive) and the
/// server stopping.
struct Watch {
    gateway: Arc<Gateway>,
    subscriber: Subscriber,
    keepalive: Duration,
    closing: Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// Why an event could not be queued.
enum Full {
    /// The client does not read: what waits for it is at its bound.
    SlowConsumer,
    /// The client went away.
    Gone,
}

impl Outgoing {
    /// Queues `event`, unless the client has not read what waits already.
    fn queue(&self, event: Bytes) -> Result<(), Full> {
        let waiting = self.queued.load(Ordering::Relaxed);
        // One event is always let through when nothing waits, however large.
        if waiting > 0 && waiting.saturating_add(event.len()) > self.max_bytes {
            return Err(Full::SlowConsumer);
        }
        let length = event.len();
        match self.events.try_send(event) {
            Ok(()) => {
                self.queued.fetch_add(length, Ordering::Relaxed);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => Err(Full::SlowConsumer),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Full::Gone),
        }
    }

    /// Queues a last event whatever the bound (the stream ends after it).
    fn last(&self, event: Bytes) {
        let _ = self.events.try_send(event);
    }
}

/// Runs one stream: the operation's deliveries as `next` events, `complete` at the end, a
/// keep-alive comment (and a check of the token) every keep-alive interval. A client that does
/// not read is dropped with a last `SLOW_CONSUMER` event once what waits for it reaches its bound.
async fn drive(
    mut deliveries: BoxStream<'static, Delivery>,
    outgoing: Outgoing,
    mut watch: Watch,
    slot: ConnectionSlot,
) {
    let mut keepalive = tokio::time::interval(watch.keepalive);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    keepalive.tick().await;
    let ended = loop {
        tokio::select! {
            delivery = deliveries.next() => {
                let event = match delivery {
                    None => break Some(complete_event()),
                    Some(Delivery::Next(response)) => next_event(&response),
                    Some(Delivery::Close(reason)) => {
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
                        outgoing.last(next_event(&refusal(message, code)));
                        break Some(complete_event());
                    }
                };
                match outgoing.queue(event) {
                    Ok(()) => {}
                    Err(Full::Gone) => break None,
                    Err(Full::SlowConsumer) => {
                        watch.gateway.metrics.subscription_ended("slow_consumer");
                        let refused = refusal(
                            "The client did not read its events: the stream ends",
                            code::SLOW_CONSUMER,
                        );
                        outgoing.last(next_event(&refused));
                        break Some(complete_event());
                    }
                }
            }
            _ = keepalive.tick() => {
                // An idle stream learns of a revoked token here, at the latest.
                if !watch.gateway.still_signed_in(&watch.subscriber).await {
                    watch.gateway.metrics.subscription_ended("unauthenticated");
                    let refused = refusal(
                        "The token expired or was revoked: the stream ends",
                        code::UNAUTHENTICATED,
                    );
                    outgoing.last(next_event(&refused));
                    break Some(complete_event());
                }
                if let Err(Full::Gone) = outgoing.queue(Bytes::from_static(b":\n\n")) {
                    break None;
                }
            }
            // The server stops: the stream ends without `complete`, so that clients reconnect.
            () = &mut watch.closing => break None,
        }
    };
    if let Some(complete) = ended {
        outgoing.last(complete);
    }
    drop(deliveries);
    drop(slot);
}

/// The `complete` event that ends a stream.
fn complete_event() -> Bytes {
    Bytes::from_static(b"event: complete\ndata:\n\n")
}

/// A `next` event carrying `response`; a request error (nothing ran) has no `data` entry, as over
/// plain HTTP.
fn next_event(response: &async_graphql::Response) -> Bytes {
    let request_error = matches!(response.data, async_graphql::Value::Null)
        && !response.errors.is_empty()
        && response.errors.iter().all(|error| error.path.is_empty());
    let json = if request_error {
        let mut object = serde_json::Map::new();
        if let Ok(errors) = serde_json::to_value(&response.errors) {
            object.insert("errors".into(), errors);
        }
        if !response.extensions.is_empty()
            && let Ok(extensions) = serde_json::to_value(&response.extensions)
        {
            object.insert("extensions".into(), extensions);
        }
        serde_json::Value::Object(object).to_string()
    } else {
        serde_json::to_string(response).unwrap_or_else(|_| "{}".to_owned())
    };
    let mut event = Vec::with_capacity(json.len() + 20);
    event.extend_from_slice(b"event: next\n");
    // JSON has no raw newlines; one data line carries it.
    event.extend_from_slice(b"data: ");
    event.extend_from_slice(json.as_bytes());
    event.extend_from_slice(b"\n\n");
    Bytes::from(event)
}
