//! `/graphql` over a WebSocket, in the `graphql-transport-ws` protocol: async-graphql-axum's
//! `GraphQLWebSocket` speaks the protocol; every operation it receives goes through the gateway's
//! stages ([`crate::gateway::Gateway::stream`]) like an HTTP request, so nothing is reachable only
//! here.
//!
//! Around the protocol, this transport adds what a public server needs:
//! - caps: connections per client and in all (checked before the upgrade: 429 or 503), and
//!   subscriptions per connection (`TOO_MANY_SUBSCRIPTIONS`);
//! - authentication from `connection_init`'s `Authorization` (or the upgrade's header); an invalid
//!   token closes with 4403, and so does the token's expiry or revocation;
//! - `connection_init` within `CONDUIT_WS_INIT_TIMEOUT_SECS` (4408 after), server pings every
//!   `CONDUIT_WS_KEEPALIVE_SECS`, and a connection silent for three times as long is closed;
//! - a queue of messages to write, bounded in messages and in bytes: a client that does not read
//!   them is dropped as a slow consumer (1013), never buffered without end;
//! - 1012 when the server stops, so clients reconnect to another instance;
//! - the protocol's 4409 for a `subscribe` whose id is running, 4400 for a malformed message, and
//!   trusted documents named by `documentId` ([`super::operation_ids`]).

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_graphql::{Data, Executor};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::FromRequestParts;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::stream::BoxStream;
use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};

use super::operation_ids::{DOCUMENT_ID_EXTENSION, OperationIds, Screened};
use super::response::HttpError;
use crate::auth::ClientAddress;
use crate::error::code;
use crate::gateway::{CloseReason, Delivery, Gateway, Subscriber, refusal};
use crate::realtime::{Cap, ConnectionSlot, Realtime};
use crate::state::AppState;
use crate::usage::ClientApp;

/// Close codes this transport uses beyond the protocol's own.
pub mod close {
    /// An invalid, expired or revoked token (graphql-ws: Forbidden).
    pub const FORBIDDEN: u16 = 4403;
    /// An operation before `connection_init` was acknowledged (graphql-ws: Unauthorized).
    pub const UNAUTHORIZED: u16 = 4401;
    /// No `connection_init` in time (graphql-ws: Connection initialisation timeout).
    pub const INIT_TIMEOUT: u16 = 4408;
    /// The client did not read its messages fast enough (RFC 6455: Try Again Later).
    pub const SLOW_CONSUMER: u16 = 1013;
    /// The server stops (RFC 6455: Service Restart): reconnect, to another instance.
    pub const SERVICE_RESTART: u16 = 1012;
    /// A message that is not a protocol message (graphql-ws: Bad request).
    pub const BAD_REQUEST: u16 = 4400;
    /// A `subscribe` with the id of a running operation (graphql-ws: Subscriber already exists).
    pub const DUPLICATE_OPERATION: u16 = 4409;
    /// A normal end.
    pub const NORMAL: u16 = 1000;
}

/// The only protocol spoken.
const PROTOCOL: &str = "graphql-transport-ws";
/// The reason async-graphql's close for a refused `connection_init` starts with.
const FORBIDDEN_PREFIX: &str = "Forbidden: ";
/// The read buffer of one socket, before a large message grows it.
const READ_BUFFER_BYTES: usize = 4096;
/// The longest time one message may take to be written before the connection is dropped.
const WRITE_DEADLINE: Duration = Duration::from_secs(10);

/// Whether the request asks for a WebSocket.
pub fn is_upgrade(parts: &Parts) -> bool {
    parts
        .headers
        .get(header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"))
}

/// `GET /graphql` with `Upgrade: websocket`: the caps, then the upgrade.
pub async fn upgrade(state: AppState, address: ClientAddress, mut parts: Parts) -> Response {
    let offers_protocol = parts
        .headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|offered| offered.trim().eq_ignore_ascii_case(PROTOCOL));
    // Only graphql-transport-ws is spoken (not the older subscriptions-transport-ws).
    parts.headers.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        axum::http::HeaderValue::from_static(PROTOCOL),
    );
    let protocol = match GraphQLProtocol::from_request_parts(&mut parts, &()).await {
        Ok(protocol) if offers_protocol => protocol,
        _ => {
            return HttpError::bad_request(
                "WebSockets on /graphql speak the graphql-transport-ws protocol (Sec-WebSocket-Protocol: graphql-transport-ws)",
            )
            .into_response();
        }
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let slot = match state.realtime.admit(&address.to_string(), "websocket") {
        Ok(slot) => slot,
        Err(cap) => return refused(cap, &state.realtime),
    };
    let authorization = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let app = ClientApp::from_headers(&parts.headers);
    let max_message = state.endpoint.max_body_bytes;
    upgrade
        .protocols([PROTOCOL])
        .max_message_size(max_message)
        .max_frame_size(max_message)
        // Most sockets sit idle: small buffers that grow when a message needs it (the defaults
        // take 128 KiB per socket up front).
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .on_upgrade(move |socket| {
            serve(
                state,
                socket,
                protocol,
                Handshake {
                    address,
                    authorization,
                    app,
                },
                slot,
            )
        })
}

/// The answer when a cap refuses a connection: 429 for the client's cap, 503 for the instance's.
pub fn refused(cap: Cap, realtime: &Realtime) -> Response {
    let error = match cap {
        Cap::PerClient => HttpError::new(
            StatusCode::TOO_MANY_REQUESTS,
            code::TOO_MANY_CONNECTIONS,
            format!(
                "This client holds its {} real-time connections: close one first",
                realtime.max_per_client
            ),
        ),
        Cap::Total => HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code::SERVICE_UNAVAILABLE,
            "The server holds its most real-time connections: try again shortly",
        ),
    };
    let mut response = error.into_response();
    response.headers_mut().insert(
        header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("5"),
    );
    response
}

/// What the upgrade request said.
struct Handshake {
    address: ClientAddress,
    authorization: Option<String>,
    /// The client the upgrade request's headers name (`connection_init` may name another).
    app: ClientApp,
}

/// One WebSocket's state, shared by its parts.
struct Connection {
    /// Messages waiting to be written (bounded).
    outgoing: mpsc::Sender<Message>,
    /// Bytes of the messages waiting to be written.
    queued_bytes: Arc<AtomicUsize>,
    /// The most bytes that may wait.
    max_queued_bytes: usize,
    /// The close frame to end with; the first one set wins.
    close: watch::Sender<Option<(u16, String)>>,
    /// Who signed in with `connection_init`.
    subscriber: OnceLock<Subscriber>,
    /// Set once `connection_init` was acknowledged.
    initialised: watch::Sender<bool>,
    /// Subscriptions open now.
    subscriptions: AtomicU32,
    /// The ids of the operations running now.
    ids: OperationIds,
}

impl Connection {
    /// Ends the connection with `code` (unless an end was already decided).
    fn close(&self, code: u16, reason: impl Into<String>) {
        let reason = reason.into();
        let reason = within_close_frame(&reason).to_owned();
        self.close.send_if_modified(|close| {
            if close.is_some() {
                return false;
            }
            *close = Some((code, reason));
            true
        });
    }

    /// Queues `message`; a full queue (in messages or in bytes) means the client does not read:
    /// it is dropped. One message is let through when nothing waits, however large.
    fn queue(&self, message: Message) -> bool {
        let length = message_bytes(&message);
        let waiting = self.queued_bytes.load(Ordering::Relaxed);
        if waiting > 0 && waiting.saturating_add(length) > self.max_queued_bytes {
            self.close(
                close::SLOW_CONSUMER,
                "slow consumer: too many bytes waiting to be read",
            );
            return false;
        }
        match self.outgoing.try_send(message) {
            Ok(()) => {
                self.queued_bytes.fetch_add(length, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close(
                    close::SLOW_CONSUMER,
                    "slow consumer: too many messages waiting to be read",
                );
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// The bytes a message takes while it waits.
fn message_bytes(message: &Message) -> usize {
    match message {
        Message::Text(text) => text.len(),
        Message::Binary(bytes) | Message::Ping(bytes) | Message::Pong(bytes) => bytes.len(),
        Message::Close(frame) => frame.as_ref().map_or(0, |frame| frame.reason.len()),
    }
}

/// Serves one upgraded WebSocket until it ends.
async fn serve(
    state: AppState,
    socket: WebSocket,
    protocol: GraphQLProtocol,
    handshake: Handshake,
    slot: ConnectionSlot,
) {
    let realtime = Arc::clone(&state.realtime);
    let (outgoing, queued) = mpsc::channel(realtime.buffer.max(2));
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    let connection = Arc::new(Connection {
        outgoing,
        queued_bytes: Arc::clone(&queued_bytes),
        max_queued_bytes: realtime.queue_bytes,
        close: watch::Sender::new(None),
        subscriber: OnceLock::new(),
        initialised: watch::Sender::new(false),
        subscriptions: AtomicU32::new(0),
        ids: OperationIds::default(),
    });
    let (sink, stream) = socket.split();
    let writer = tokio::spawn(write(
        sink,
        queued,
        queued_bytes,
        connection.close.subscribe(),
    ));

    let executor = SocketExecutor {
        gateway: Arc::clone(&state.gateway),
        connection: Arc::clone(&connection),
        max_subscriptions: realtime.max_subscriptions_per_connection,
    };
    // async-graphql writes its messages here: into the bounded queue, with the protocol's close
    // codes made precise.
    let protocol_sink = futures::sink::unfold(
        Arc::clone(&connection),
        |connection, message: Message| async move {
            if let Message::Text(text) = &message {
                connection.ids.note_server_message(text.as_str());
            }
            let message = adjust(message, &connection);
            if connection.queue(message) {
                Ok(connection)
            } else {
                Err(axum::Error::new(std::io::Error::other(
                    "connection closing",
                )))
            }
        },
    );
    let init = {
        let connection = Arc::clone(&connection);
        let gateway = Arc::clone(&state.gateway);
        move |payload: serde_json::Value| async move {
            let authorization = authorization_of(&payload).or(handshake.authorization);
            let app = ClientApp::from_payload(&payload).unwrap_or(handshake.app);
            match gateway
                .subscriber(authorization.as_deref(), handshake.address)
                .await
            {
                Ok(mut subscriber) => {
                    subscriber.caller.app = app;
                    let _ = connection.subscriber.set(subscriber);
                    connection.initialised.send_replace(true);
                    Ok(Data::default())
                }
                Err(err) => Err(async_graphql::Error::new(format!(
                    "{FORBIDDEN_PREFIX}{}",
                    err
                ))),
            }
        }
    };
    // Watched from before the protocol runs: an init that completes at once is not missed.
    let initialised = connection.initialised.subscribe();
    let closed = connection.close.subscribe();
    // What the client sends, screened for what the protocol's implementation leaves out.
    let incoming = stream.filter_map({
        let connection = Arc::clone(&connection);
        move |message| {
            // async-graphql reads binary frames as text too.
            let text = match &message {
                Ok(Message::Text(text)) => Some(text.as_str()),
                Ok(Message::Binary(bytes)) => std::str::from_utf8(bytes).ok(),
                _ => None,
            };
            let screened = text.map(|text| connection.ids.screen_client_message(text));
            let message = match screened {
                None | Some(Screened::Forward) => Some(message),
                Some(Screened::Rewritten(text)) => Some(Ok(Message::Text(text.into()))),
                Some(Screened::Duplicate(id)) => {
                    connection.close(
                        close::DUPLICATE_OPERATION,
                        format!("Subscriber for {id} already exists"),
                    );
                    None
                }
            };
            futures::future::ready(message)
        }
    });
    let protocol_served =
        GraphQLWebSocket::new_with_pair(protocol_sink, incoming, executor, protocol)
            .on_connection_init(init)
            .keepalive_timeout(realtime.keepalive * 3)
            .serve();
    tokio::select! {
        () = protocol_served => connection.close(close::NORMAL, ""),
        (code, reason) = supervise(&connection, &realtime, &state.gateway, initialised, closed) => {
            connection.close(code, reason);
        }
    }
    let _ = writer.await;
    drop(slot);
}

/// Watches the connection: `connection_init` in time, keep-alive pings, the token's expiry, the
/// server stopping, an end decided elsewhere. The close frame to end with.
async fn supervise(
    connection: &Connection,
    realtime: &Realtime,
    gateway: &Gateway,
    mut initialised: watch::Receiver<bool>,
    mut closed: watch::Receiver<Option<(u16, String)>>,
) -> (u16, String) {
    let stopping = realtime.closing();
    tokio::pin!(stopping);
    let init_deadline = tokio::time::Instant::now() + realtime.init_timeout;
    let mut pings = tokio::time::interval(realtime.keepalive);
    pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    pings.tick().await;
    let mut expiry: Option<tokio::time::Instant> = None;
    let mut is_initialised = false;
    loop {
        let expires = async {
            match expiry {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let init_due = async {
            if is_initialised {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep_until(init_deadline).await;
        };
        tokio::select! {
            () = init_due => {
                return (close::INIT_TIMEOUT, "Connection initialisation timeout".to_owned());
            }
            changed = initialised.changed() => {
                if changed.is_err() {
                    return (close::NORMAL, String::new());
                }
                is_initialised = *initialised.borrow_and_update();
                expiry = connection
                    .subscriber
                    .get()
                    .and_then(|subscriber| subscriber.claims)
                    .map(|claims| crate::gateway::expiry(claims.expires_at));
            }
            () = expires => {
                realtime.metrics().subscription_ended("unauthenticated");
                return (close::FORBIDDEN, format!("{FORBIDDEN_PREFIX}the token expired"));
            }
            _ = pings.tick() => {
                // An idle connection learns of a revoked token here, at the latest.
                if let Some(subscriber) = connection.subscriber.get()
                    && !gateway.still_signed_in(subscriber).await
                {
                    realtime.metrics().subscription_ended("unauthenticated");
                    return (close::FORBIDDEN, format!("{FORBIDDEN_PREFIX}the token was revoked"));
                }
                connection.queue(Message::Text(r#"{"type":"ping"}"#.into()));
            }
            () = &mut stopping => {
                realtime.metrics().subscription_ended("shutdown");
                return (close::SERVICE_RESTART, "The server is restarting".to_owned());
            }
            () = decided(&mut closed) => {
                let frame = closed.borrow().clone();
                return frame.unwrap_or((close::NORMAL, String::new()));
            }
        }
    }
}

/// Writes the queued messages until the end is decided, then the close frame. A message that
/// cannot be written within [`WRITE_DEADLINE`] drops the connection.
async fn write(
    mut sink: futures::stream::SplitSink<WebSocket, Message>,
    mut queued: mpsc::Receiver<Message>,
    queued_bytes: Arc<AtomicUsize>,
    mut close: watch::Receiver<Option<(u16, String)>>,
) {
    loop {
        tokio::select! {
            biased;
            () = decided(&mut close) => break,
            message = queued.recv() => {
                let Some(message) = message else { break };
                queued_bytes.fetch_sub(message_bytes(&message), Ordering::Relaxed);
                let closing = matches!(message, Message::Close(_));
                match tokio::time::timeout(WRITE_DEADLINE, sink.send(message)).await {
                    Ok(Ok(())) if !closing => {}
                    _ => return,
                }
            }
        }
    }
    let frame = close.borrow().clone();
    if let Some((code, reason)) = frame {
        let frame = Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }));
        let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(frame)).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
}

/// Resolves once the end of the connection is decided.
async fn decided(close: &mut watch::Receiver<Option<(u16, String)>>) {
    let _ = close.wait_for(Option::is_some).await.map(|_| ());
}

/// async-graphql's close frames with the codes of graphql-ws: 4403 for a refused
/// `connection_init`, 4401 for an operation before it.
fn adjust(message: Message, connection: &Connection) -> Message {
    let Message::Close(Some(frame)) = message else {
        return message;
    };
    let code = match frame.code {
        1002 if frame.reason.starts_with(FORBIDDEN_PREFIX) => close::FORBIDDEN,
        // async-graphql's close for a message it could not read.
        1002 => close::BAD_REQUEST,
        1011 => close::UNAUTHORIZED,
        code => code,
    };
    let reason = within_close_frame(frame.reason.as_str());
    // The writer ends with this frame: no other end may be decided after it.
    connection.close(code, reason);
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// `reason` cut to what a close frame carries (123 bytes, at a character boundary): a longer one
/// (a parse error that lists the protocol's message types) fails the frame, and the client would
/// see the connection dropped without a code.
fn within_close_frame(reason: &str) -> &str {
    const MAX_REASON_BYTES: usize = 123;
    if reason.len() <= MAX_REASON_BYTES {
        return reason;
    }
    let mut end = MAX_REASON_BYTES;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// The `Authorization` value of a `connection_init` payload (`{"Authorization": "Bearer …"}`,
/// any case of the key).
fn authorization_of(payload: &serde_json::Value) -> Option<String> {
    payload.as_object()?.iter().find_map(|(key, value)| {
        key.eq_ignore_ascii_case("authorization")
            .then(|| value.as_str().map(str::to_owned))
            .flatten()
    })
}

/// Runs the operations of one WebSocket through the gateway.
#[derive(Clone)]
struct SocketExecutor {
    gateway: Arc<Gateway>,
    connection: Arc<Connection>,
    max_subscriptions: u32,
}

/// Counts an operation open on the connection while it lives.
struct OpenOperation(Arc<Connection>);

impl Drop for OpenOperation {
    fn drop(&mut self) {
        self.0.subscriptions.fetch_sub(1, Ordering::Relaxed);
    }
}

impl SocketExecutor {
    async fn run(
        self,
        request: async_graphql::Request,
    ) -> BoxStream<'static, async_graphql::Response> {
        let Some(subscriber) = self.connection.subscriber.get().cloned() else {
            return futures::stream::once(async {
                refusal("Send connection_init first", code::UNAUTHENTICATED)
            })
            .boxed();
        };
        if !self.gateway.still_signed_in(&subscriber).await {
            self.connection.close(
                close::FORBIDDEN,
                format!("{FORBIDDEN_PREFIX}the token expired or was revoked"),
            );
            return futures::stream::once(async {
                refusal(
                    "The token expired or was revoked: sign in again",
                    code::UNAUTHENTICATED,
                )
            })
            .boxed();
        }
        if self
            .connection
            .subscriptions
            .fetch_add(1, Ordering::Relaxed)
            >= self.max_subscriptions
        {
            self.connection
                .subscriptions
                .fetch_sub(1, Ordering::Relaxed);
            self.gateway.metrics.realtime_refused("per_connection");
            let message = format!(
                "This connection holds its {} subscriptions: complete one first",
                self.max_subscriptions
            );
            return futures::stream::once(
                async move { refusal(message, code::TOO_MANY_SUBSCRIPTIONS) },
            )
            .boxed();
        }
        let open = OpenOperation(Arc::clone(&self.connection));
        let raw = match super::request::operation(json_of(request)) {
            Ok(raw) => raw,
            Err(err) => return futures::stream::once(async move { err.to_graphql() }).boxed(),
        };
        let request_id = uuid::Uuid::from_u128(rand::random()).to_string();
        let deliveries = self.gateway.stream(raw, subscriber, request_id).await;
        let connection = Arc::clone(&self.connection);
        deliveries
            .take_while(move |delivery| {
                let go_on = match delivery {
                    Delivery::Next(_) => true,
                    Delivery::Close(reason) => {
                        let (code, message) = match reason {
                            CloseReason::SlowConsumer => (
                                close::SLOW_CONSUMER,
                                "slow consumer: fell too far behind the changes".to_owned(),
                            ),
                            CloseReason::Unauthenticated => (
                                close::FORBIDDEN,
                                format!("{FORBIDDEN_PREFIX}the token expired or was revoked"),
                            ),
                        };
                        connection.close(code, message);
                        false
                    }
                };
                futures::future::ready(go_on)
            })
            .filter_map(move |delivery| {
                let _open = &open;
                futures::future::ready(match delivery {
                    Delivery::Next(response) => Some(*response),
                    Delivery::Close(_) => None,
                })
            })
            .boxed()
    }
}

/// The operation of an async-graphql request as the JSON a client posts.
fn json_of(request: async_graphql::Request) -> serde_json::Value {
    let mut object = serde_json::Map::new();
    object.insert("query".into(), request.query.into());
    if let Some(name) = request.operation_name {
        object.insert("operationName".into(), name.into());
    }
    if let Ok(variables) = serde_json::to_value(&request.variables) {
        object.insert("variables".into(), variables);
    }
    if let Ok(mut extensions) = serde_json::to_value(&request.extensions) {
        // A `documentId` that travelled here in the extensions goes back where HTTP has it.
        if let Some(document_id) = extensions
            .as_object_mut()
            .and_then(|extensions| extensions.remove(DOCUMENT_ID_EXTENSION))
        {
            object.insert("documentId".into(), document_id);
        }
        object.insert("extensions".into(), extensions);
    }
    serde_json::Value::Object(object)
}

impl Executor for SocketExecutor {
    async fn execute(&self, request: async_graphql::Request) -> async_graphql::Response {
        self.clone()
            .run(request)
            .await
            .next()
            .await
            .unwrap_or_default()
    }

    fn execute_stream(
        &self,
        request: async_graphql::Request,
        _session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, async_graphql::Response> {
        futures::stream::once(self.clone().run(request))
            .flatten()
            .boxed()
    }
}
