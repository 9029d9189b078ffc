//! Clients for the real-time transports, as a frontend would speak them: `graphql-transport-ws`
//! over a WebSocket, and GraphQL over Server-Sent Events.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::helpers::TestApp;

/// How long a test waits for a message it expects.
pub const WAIT: Duration = Duration::from_secs(10);

/// What a socket received next.
#[derive(Debug)]
pub enum Received {
    /// A protocol message (pings are answered and skipped).
    Message(Value),
    /// A close frame: its code and reason.
    Closed(u16, String),
    /// The connection ended without a close frame.
    Dropped,
}

/// A frame as it came, unanswered.
#[derive(Debug)]
pub enum RawFrame {
    /// The server's keep-alive ping.
    Ping,
    /// A close frame with its code.
    Close(u16),
    /// Anything else.
    Other,
}

/// A `graphql-transport-ws` connection.
pub struct Socket {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The server's pings answered so far.
    pub pings: usize,
}

/// The upgrade request for `/graphql` with the protocol, and `authorization` when given.
fn upgrade_request(
    app: &TestApp,
    authorization: Option<&str>,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut request = format!("ws://{}/graphql", app.addr)
        .into_client_request()
        .expect("a WebSocket request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    if let Some(authorization) = authorization {
        request.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(authorization).expect("a header value"),
        );
    }
    request
}

impl Socket {
    /// Opens a socket without `connection_init`; the HTTP error when the upgrade is refused.
    pub async fn open(app: &TestApp) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let (ws, _) = tokio_tungstenite::connect_async(upgrade_request(app, None)).await?;
        Ok(Self { ws, pings: 0 })
    }

    /// Opens a socket over `stream` (a TCP connection set up by the test).
    pub async fn open_on(app: &TestApp, stream: TcpStream) -> Self {
        let (ws, _) = tokio_tungstenite::client_async(
            upgrade_request(app, None),
            MaybeTlsStream::Plain(stream),
        )
        .await
        .expect("the upgrade succeeds");
        Self { ws, pings: 0 }
    }

    /// Opens a socket and signs in with `token` in `connection_init`; waits for the ack.
    pub async fn connect(app: &TestApp, token: Option<&str>) -> Self {
        let mut socket = Self::open(app).await.expect("the upgrade succeeds");
        socket.init(token).await;
        match socket.receive().await {
            Received::Message(message) if message["type"] == "connection_ack" => socket,
            other => panic!("expected connection_ack, got {other:?}"),
        }
    }

    /// Sends `connection_init`, with `{"Authorization": "Bearer <token>"}` when a token is given.
    pub async fn init(&mut self, token: Option<&str>) {
        let payload = match token {
            Some(token) => json!({ "Authorization": format!("Bearer {token}") }),
            None => json!({}),
        };
        self.send(json!({ "type": "connection_init", "payload": payload }))
            .await;
    }

    /// Sends a protocol message.
    pub async fn send(&mut self, message: Value) {
        self.ws
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("message sent");
    }

    /// Sends a protocol message in a binary frame.
    pub async fn send_binary(&mut self, message: Value) {
        self.ws
            .send(Message::Binary(message.to_string().into_bytes().into()))
            .await
            .expect("message sent");
    }

    /// Starts operation `id`.
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(json!({
            "id": id,
            "type": "subscribe",
            "payload": { "query": query, "variables": variables },
        }))
        .await;
    }

    /// The next message (pings answered), a close, or the end; panics after [`WAIT`].
    pub async fn receive(&mut self) -> Received {
        self.receive_within(WAIT)
            .await
            .unwrap_or_else(|| panic!("nothing received within {WAIT:?}"))
    }

    /// Like [`Self::receive`]; `None` when nothing came within `wait`.
    pub async fn receive_within(&mut self, wait: Duration) -> Option<Received> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()?;
            match frame {
                Some(Ok(Message::Text(text))) => {
                    let message: Value = serde_json::from_str(&text).expect("JSON message");
                    if message["type"] == "ping" {
                        self.pings += 1;
                        self.send(json!({ "type": "pong" })).await;
                        continue;
                    }
                    return Some(Received::Message(message));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Some(match frame {
                        Some(frame) => {
                            Received::Closed(frame.code.into(), frame.reason.to_string())
                        }
                        None => Received::Closed(1005, String::new()),
                    });
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Some(Received::Dropped),
            }
        }
    }

    /// The next frame, unanswered; `None` when the connection ended or nothing came within
    /// [`WAIT`].
    pub async fn receive_raw(&mut self) -> Option<RawFrame> {
        let frame = tokio::time::timeout(WAIT, self.ws.next())
            .await
            .ok()??
            .ok()?;
        Some(match frame {
            Message::Text(text) if text.contains("\"ping\"") => RawFrame::Ping,
            Message::Close(Some(frame)) => RawFrame::Close(frame.code.into()),
            _ => RawFrame::Other,
        })
    }

    /// The next text message as it was written (key order kept), pings answered; `None` when
    /// nothing came within [`WAIT`].
    pub async fn receive_text(&mut self) -> Option<String> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()??
            {
                Ok(Message::Text(text)) if text.contains("\"type\":\"ping\"") => {
                    self.send(json!({ "type": "pong" })).await;
                }
                Ok(Message::Text(text)) => return Some(text.to_string()),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// The answer to operation `id`: the payload of its `next`, or `{"errors": …}` for an
    /// `error` message; panics on anything else.
    pub async fn answer_of(&mut self, id: &str) -> Value {
        match self.receive().await {
            Received::Message(message) if message["id"] == id && message["type"] == "next" => {
                message["payload"].clone()
            }
            Received::Message(message) if message["id"] == id && message["type"] == "error" => {
                json!({ "errors": message["payload"] })
            }
            other => panic!("expected an answer for {id}, got {other:?}"),
        }
    }

    /// The payload of the next `next` message of `id`; panics on anything else.
    pub async fn next_of(&mut self, id: &str) -> Value {
        match self.receive().await {
            Received::Message(message) if message["type"] == "next" && message["id"] == id => {
                message["payload"].clone()
            }
            other => panic!("expected next for {id}, got {other:?}"),
        }
    }

    /// Asserts that `id` completes next.
    pub async fn expect_complete(&mut self, id: &str) {
        match self.receive().await {
            Received::Message(message) if message["type"] == "complete" && message["id"] == id => {}
            other => panic!("expected complete for {id}, got {other:?}"),
        }
    }

    /// The close code and reason that come next (messages before it are skipped).
    pub async fn expect_close(&mut self) -> (u16, String) {
        loop {
            match self.receive().await {
                Received::Closed(code, reason) => return (code, reason),
                Received::Dropped => panic!("dropped without a close frame"),
                Received::Message(_) => continue,
            }
        }
    }

    /// Asserts that nothing arrives within `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Some(received) = self.receive_within(wait).await {
            panic!("expected nothing, got {received:?}");
        }
    }
}

/// A GraphQL-over-SSE stream ("distinct connections" mode).
pub struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

impl EventStream {
    /// POSTs `query` with `Accept: text/event-stream`, as `token`'s user when given.
    pub async fn open(
        app: &TestApp,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> reqwest::Response {
        let mut request = app
            .client
            .post(app.url("/graphql"))
            .header("accept", "text/event-stream")
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request sent")
    }

    /// Reads the events of `response` (which must be an event stream).
    pub fn of(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200);
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("text/event-stream"),
            "content type {content_type}"
        );
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (comments skipped): its name and data; `None` when the stream ended.
    pub async fn next(&mut self) -> Option<(String, String)> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim_start());
                    }
                }
                if name.is_empty() && data.is_empty() {
                    continue;
                }
                return Some((name, data));
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .unwrap_or_else(|_| panic!("no event within {WAIT:?}"))
                .expect("the stream reads");
            match chunk {
                Some(bytes) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                None => return None,
            }
        }
    }

    /// The payload of the next `next` event.
    pub async fn next_payload(&mut self) -> Value {
        match self.next().await {
            Some((name, data)) if name == "next" => serde_json::from_str(&data).expect("JSON"),
            other => panic!("expected a next event, got {other:?}"),
        }
    }
}
