//! A connection's socket as HTTP sees it: reads tell the watchdog a request head has begun, a
//! write the client does not take within the send timeout fails (and the connection with it),
//! and the bare error answers hyper writes itself are given a JSON body.
//!
//! The rewrite lives at the socket because hyper answers a request it cannot parse (a request
//! line over 64 KiB: 414; headers over the buffer: 431; malformed: 400) on its own, with an empty
//! body, before any service sees the request. Those answers are recognised by their shape (hyper
//! writes `connection: close` and `content-length: 0` and no `x-request-id`, which every answer of
//! the application carries) and replaced, byte for byte, by the same status with a GraphQL error.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use super::ConnectionState;
use super::caps::Slot;
use crate::error::code;

/// The bytes that start an HTTP/2 connection (RFC 9113, 3.4).
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// A client connection's socket with the server's guards around it.
pub struct GuardedIo {
    stream: TcpStream,
    state: Arc<ConnectionState>,
    send_timeout: Duration,
    /// Running while a write waits for the client to read.
    stalled: Option<Pin<Box<Sleep>>>,
    /// An answer to write instead of hyper's bare one, and how much of it is written.
    replacement: Option<(Vec<u8>, usize)>,
    first_read: bool,
    peer: SocketAddr,
    _slot: Slot,
}

impl GuardedIo {
    /// Guards `stream`, whose connection is described by `state`.
    pub fn new(
        stream: TcpStream,
        state: Arc<ConnectionState>,
        send_timeout: Duration,
        peer: SocketAddr,
        slot: Slot,
    ) -> Self {
        Self {
            stream,
            state,
            send_timeout,
            stalled: None,
            replacement: None,
            first_read: true,
            peer,
            _slot: slot,
        }
    }

    /// The outcome of a write that returned `poll`: a pending write starts (or checks) the send
    /// deadline; any progress clears it.
    fn deadline<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(result) => {
                self.stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let timeout = self.send_timeout;
                let stalled = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if stalled.as_mut().poll(cx).is_ready() {
                    self.state.send_timed_out.store(true, Ordering::Relaxed);
                    tracing::debug!(peer = %self.peer, "client did not read its response in time");
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client did not read its response within the send timeout",
                    )));
                }
                Poll::Pending
            }
        }
    }

    /// Writes what is left of a replacement answer; ready once it is all written.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = self.replacement.as_mut() {
            if *written >= bytes.len() {
                self.replacement = None;
                break;
            }
            let poll = Pin::new(&mut self.stream).poll_write(cx, &bytes[*written..]);
            let n = ready!(self.deadline(cx, poll))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if let Some((_, written)) = self.replacement.as_mut() {
                *written += n;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for GuardedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.stream).poll_read(cx, buf))?;
        let read = &buf.filled()[before..];
        if !read.is_empty() {
            if this.first_read {
                this.first_read = false;
                if read.starts_with(HTTP2_PREFACE) {
                    this.state.http2.store(true, Ordering::Relaxed);
                }
            }
            this.state.received();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        if let Some(replacement) = parser_refusal(buf, this.peer) {
            // hyper's whole answer is taken; ours goes out instead.
            this.replacement = Some((replacement, 0));
            if let Poll::Ready(Err(err)) = this.poll_replacement(cx) {
                return Poll::Ready(Err(err));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        let poll = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.deadline(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        if bufs
            .first()
            .is_some_and(|first| first.starts_with(b"HTTP/1.1 4"))
        {
            let whole: Vec<u8> = bufs.iter().flat_map(|buf| buf.iter().copied()).collect();
            if let Some(replacement) = parser_refusal(&whole, this.peer) {
                this.replacement = Some((replacement, 0));
                if let Poll::Ready(Err(err)) = this.poll_replacement(cx) {
                    return Poll::Ready(Err(err));
                }
                return Poll::Ready(Ok(whole.len()));
            }
        }
        let poll = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.deadline(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        let poll = Pin::new(&mut this.stream).poll_flush(cx);
        this.deadline(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        let poll = Pin::new(&mut this.stream).poll_shutdown(cx);
        this.deadline(cx, poll)
    }
}

/// The JSON answer for a head hyper wrote itself (`400`, `414`, `431` with an empty body);
/// `None` for anything else.
fn parser_refusal(head: &[u8], peer: SocketAddr) -> Option<Vec<u8>> {
    let (status, code, message) = if head.starts_with(b"HTTP/1.1 414 ") {
        (
            StatusCode::URI_TOO_LONG,
            code::URI_TOO_LONG,
            "The request line is longer than 65,534 bytes: send the operation with POST",
        )
    } else if head.starts_with(b"HTTP/1.1 431 ") {
        (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            code::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "The request's headers are too large",
        )
    } else if head.starts_with(b"HTTP/1.1 400 ") {
        (
            StatusCode::BAD_REQUEST,
            code::BAD_REQUEST,
            "The request is not valid HTTP",
        )
    } else {
        return None;
    };
    let text = std::str::from_utf8(head).ok()?.to_ascii_lowercase();
    let bare = text.contains("\r\ncontent-length: 0\r\n")
        && text.contains("\r\nconnection: close\r\n")
        && !text.contains("\r\nx-request-id:");
    if !bare {
        return None;
    }
    let request_id = uuid::Uuid::from_u128(rand::random()).to_string();
    tracing::info!(
        status = status.as_u16(),
        code,
        request_id = %request_id,
        %peer,
        "request refused by the HTTP parser"
    );
    Some(json_response(
        status,
        code,
        message.to_owned(),
        Some(&request_id),
    ))
}

/// A complete HTTP/1.1 answer with a GraphQL error body, closing the connection.
pub fn json_response(
    status: StatusCode,
    code: &str,
    message: String,
    request_id: Option<&str>,
) -> Vec<u8> {
    let mut extensions = serde_json::Map::new();
    extensions.insert("code".into(), code.into());
    if let Some(request_id) = request_id {
        extensions.insert("requestId".into(), request_id.into());
    }
    let body = serde_json::json!({ "errors": [{ "message": message, "extensions": extensions }] })
        .to_string();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
        head.push_str("retry-after: 5\r\n");
    }
    if let Some(request_id) = request_id {
        head.push_str("x-request-id: ");
        head.push_str(request_id);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_parsers_bare_answers_are_replaced() {
        let peer: SocketAddr = "127.0.0.1:1".parse().expect("address");
        let bare = b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\ndate: Thu, 03 Dec 2026 13:25:40 GMT\r\n\r\n";
        let replaced = parser_refusal(bare, peer).expect("replaced");
        let text = String::from_utf8(replaced).expect("utf-8");
        assert!(text.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{text}");
        assert!(text.contains("\"code\":\"URI_TOO_LONG\""), "{text}");
        let body = text.split("\r\n\r\n").nth(1).expect("a body");
        assert!(text.contains(&format!("content-length: {}\r\n", body.len())));
        let application = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nx-request-id: 1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
        assert!(parser_refusal(application, peer).is_none());
        assert!(parser_refusal(b"HTTP/1.1 200 OK\r\n\r\n", peer).is_none());
    }
}
