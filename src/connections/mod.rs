//! The listeners' connections: accepted, capped, timed and closed here, before and after HTTP.
//!
//! Hand-written on hyper-util's connection builder rather than `axum::serve`: axum's server is
//! deliberately without settings, and runs hyper without a timer, so no header-read timeout ever
//! fires; it has no idle timeout, no cap on connections (overall or per client) and no deadline on
//! writing a response a client does not read. What this module adds, for every connection of a
//! listener:
//!
//! - **caps** ([`caps`]): connections open at once, in all and per client address (an IPv6
//!   client is its /64); a connection over a cap is answered with a JSON error and closed at once,
//!   and the cap in all stays below the process's file-descriptor limit, so accepting never fails
//!   and the probes keep answering;
//! - **timeouts** (the watchdog below): a request head must arrive within the header-read timeout
//!   (from the connection's start, or from the first byte of the next request on a kept-alive
//!   one), and a connection with nothing in flight is closed after the keep-alive timeout;
//! - **a send deadline** ([`io`], [`body`]): a response the client does not read for the send
//!   timeout is dropped with its connection, so unread answers are never held for ever;
//! - **JSON for the parser's own refusals** ([`io`]): the bare 400, 414 and 431 answers hyper
//!   writes itself get a GraphQL-shaped body with a code and a request id, and a log line;
//! - **HTTP/2 limits**: concurrent streams, header list size, keep-alive pings.
//!
//! Graceful shutdown is the same as before: stop accepting, let the connections finish what they
//! serve (HTTP/1 idle connections close at once, HTTP/2 ones get a GOAWAY).

pub mod body;
pub mod caps;
pub mod io;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

use self::body::TrackedBody;
use self::caps::{ConnectionCaps, Refused};
use self::io::GuardedIo;
use crate::config::HttpSettings;
use crate::metrics::Metrics;

/// How the connections of one listener are capped and timed.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// Time for a request head to arrive.
    pub header_read_timeout: Duration,
    /// Time a connection with nothing in flight stays open.
    pub keepalive_timeout: Duration,
    /// Time a response may wait for the client to read it before the connection is dropped.
    pub send_timeout: Duration,
    /// Most connections open at once on the listener.
    pub max_connections: usize,
    /// Most connections of one client address; `None`: no cap per address (behind a proxy, the
    /// peer is the proxy).
    pub max_per_client: Option<usize>,
    /// Most concurrent streams of one HTTP/2 connection.
    pub http2_max_streams: u32,
    /// Largest request head (HTTP/1 buffer, HTTP/2 header list), in bytes.
    pub max_header_bytes: usize,
}

impl ConnectionSettings {
    /// The public listener's settings: per-client caps apply unless a trusted proxy header is
    /// set (then every connection comes from the proxy, which holds the clients' connections).
    pub fn public(http: &HttpSettings) -> Self {
        Self {
            header_read_timeout: Duration::from_secs(http.header_read_timeout_secs),
            keepalive_timeout: Duration::from_secs(http.keepalive_timeout_secs),
            send_timeout: Duration::from_secs(http.send_timeout_secs),
            max_connections: within_descriptors(http.max_connections as usize),
            max_per_client: http
                .client_ip_header
                .is_none()
                .then_some(http.max_connections_per_client as usize),
            http2_max_streams: http.http2_max_concurrent_streams,
            max_header_bytes: MAX_HEADER_BYTES,
        }
    }

    /// The admin listener's settings (`/metrics` and the probes): few connections, no cap per
    /// address, the public listener's timeouts.
    pub fn admin(http: &HttpSettings) -> Self {
        Self {
            max_connections: within_descriptors(ADMIN_MAX_CONNECTIONS),
            max_per_client: None,
            ..Self::public(http)
        }
    }
}

/// The largest request head: the request line (hyper refuses URIs over 64 KiB) and the headers.
const MAX_HEADER_BYTES: usize = 128 * 1024;

/// Connections the admin listener holds at once.
const ADMIN_MAX_CONNECTIONS: usize = 64;

/// File descriptors kept free for everything but client connections: the database and Redis
/// pools, the listeners, log files, and the connections being refused.
const RESERVED_DESCRIPTORS: usize = 128;

/// `wanted`, lowered to what the process's file-descriptor limit allows (with a warning), so that
/// accepting a connection never fails for want of one.
fn within_descriptors(wanted: usize) -> usize {
    let Some(limit) = descriptor_limit() else {
        return wanted;
    };
    let allowed = limit.saturating_sub(RESERVED_DESCRIPTORS).max(16);
    if wanted > allowed {
        tracing::warn!(
            wanted,
            allowed,
            descriptor_limit = limit,
            "connection cap lowered to fit the file-descriptor limit (raise `ulimit -n` to allow more)"
        );
        return allowed;
    }
    wanted
}

/// The soft limit on open files, read from `/proc/self/limits` (Linux); `None` elsewhere or when
/// unlimited.
fn descriptor_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Milliseconds on a clock of the process, for the connections' timestamps.
fn now_ms() -> u64 {
    static START: LazyLock<Instant> = LazyLock::new(Instant::now);
    u64::try_from(START.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// What one connection is doing, shared by its I/O, its requests' bodies and its watchdog.
#[derive(Debug, Default)]
pub struct ConnectionState {
    /// When the current phase began (see [`now_ms`]).
    since: AtomicU64,
    /// Requests whose response is not completely handed over.
    in_flight: AtomicU32,
    /// A request head is expected: the connection is new, or bytes arrived while it was idle.
    awaiting_head: AtomicBool,
    /// The connection speaks HTTP/2 (its first bytes were the preface).
    http2: AtomicBool,
    /// A write waited for the client longer than the send timeout.
    send_timed_out: AtomicBool,
    /// HTTP/2 response bodies that handed a frame the connection has not taken yet: when each did.
    waiting_bodies: Mutex<Vec<Weak<AtomicU64>>>,
}

impl ConnectionState {
    fn new() -> Self {
        Self {
            since: AtomicU64::new(now_ms()),
            awaiting_head: AtomicBool::new(true),
            ..Self::default()
        }
    }

    /// Bytes arrived: on an idle HTTP/1 connection they start a request head.
    fn received(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && !self.awaiting_head.load(Ordering::Relaxed)
            && !self.http2.load(Ordering::Relaxed)
        {
            self.since.store(now_ms(), Ordering::Relaxed);
            self.awaiting_head.store(true, Ordering::Relaxed);
        }
    }

    /// A request's head arrived: it is being served.
    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.awaiting_head.store(false, Ordering::Relaxed);
        self.since.store(now_ms(), Ordering::Relaxed);
    }

    /// A response was handed over completely (or dropped).
    fn request_finished(&self) {
        if self.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.since.store(now_ms(), Ordering::Relaxed);
        }
    }

    /// Tracks an HTTP/2 body's frames waiting for the connection.
    fn watch_body(&self, waiting: &Arc<AtomicU64>) {
        let mut bodies = self
            .waiting_bodies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        bodies.retain(|body| body.strong_count() > 0);
        bodies.push(Arc::downgrade(waiting));
    }

    /// What the watchdog does now.
    fn verdict(&self, settings: &ConnectionSettings) -> Verdict {
        let now = now_ms();
        let http2 = self.http2.load(Ordering::Relaxed);
        if http2 {
            let bodies = self
                .waiting_bodies
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let oldest = bodies
                .iter()
                .filter_map(Weak::upgrade)
                .map(|since| since.load(Ordering::Relaxed))
                .filter(|since| *since > 0)
                .min();
            if oldest.is_some_and(|since| now.saturating_sub(since) > millis(settings.send_timeout))
            {
                return Verdict::Drop(Closed::SendTimeout);
            }
        }
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Verdict::Serve;
        }
        let quiet = now.saturating_sub(self.since.load(Ordering::Relaxed));
        if !http2
            && self.awaiting_head.load(Ordering::Relaxed)
            && quiet > millis(settings.header_read_timeout)
        {
            return Verdict::Drop(Closed::HeaderTimeout);
        }
        if quiet > millis(settings.keepalive_timeout) {
            return Verdict::Close;
        }
        Verdict::Serve
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// What the watchdog decides for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Nothing to do.
    Serve,
    /// Idle past the keep-alive timeout: close it gracefully.
    Close,
    /// Drop it at once.
    Drop(Closed),
}

/// Why the server closed a connection, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The request head did not arrive in time.
    HeaderTimeout,
    /// Nothing in flight for the keep-alive timeout.
    Idle,
    /// The client did not read its response in time.
    SendTimeout,
}

impl Closed {
    /// The label of the reason.
    pub fn label(self) -> &'static str {
        match self {
            Self::HeaderTimeout => "header_timeout",
            Self::Idle => "idle",
            Self::SendTimeout => "send_timeout",
        }
    }
}

/// How often each connection's watchdog looks at it.
const WATCHDOG_PERIOD: Duration = Duration::from_secs(1);

/// What stops a listener: boxed, so [`serve`] is compiled once rather than per caller's future.
pub type StopSignal = std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// One listener's connections: serves `router` on `listener` until `stop` completes, then lets
/// the open connections finish gracefully (the caller bounds how long).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ConnectionSettings,
    metrics: Arc<Metrics>,
    mut stop: StopSignal,
) {
    let caps = Arc::new(ConnectionCaps::new(
        settings.max_connections,
        settings.max_per_client,
        Arc::clone(&metrics),
    ));
    let builder = Arc::new(builder(&settings));
    let settings = Arc::new(settings);
    // Dropped when the listener stops: every connection then shuts down gracefully.
    let (stopping, stopped) = watch::channel(());
    // Each connection holds a receiver: the listener waits until the last one is gone.
    let (open, all_closed) = watch::channel(());
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of descriptors or memory for a moment: back off instead of spinning.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let slot = match caps.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(refused) => {
                tokio::spawn(refuse(stream, refused, settings.send_timeout));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            router: router.clone(),
            builder: Arc::clone(&builder),
            settings: Arc::clone(&settings),
            metrics: Arc::clone(&metrics),
            stopped: stopped.clone(),
            open: all_closed.clone(),
        };
        tokio::spawn(connection.serve(stream, peer, slot));
    }
    drop(listener);
    drop(stopped);
    drop(stopping);
    drop(all_closed);
    open.closed().await;
}

/// The HTTP/1 and HTTP/2 settings of every connection.
fn builder(settings: &ConnectionSettings) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // The watchdog times request heads (hyper's own timer would also close kept-alive
        // connections after the header timeout).
        .header_read_timeout(None)
        .max_buf_size(settings.max_header_bytes)
        .max_headers(100);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(settings.http2_max_streams)
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// One accepted connection on its way.
struct Connection {
    router: Router,
    builder: Arc<Builder<TokioExecutor>>,
    settings: Arc<ConnectionSettings>,
    metrics: Arc<Metrics>,
    stopped: watch::Receiver<()>,
    open: watch::Receiver<()>,
}

impl Connection {
    async fn serve(mut self, stream: TcpStream, peer: SocketAddr, slot: caps::Slot) {
        let state = Arc::new(ConnectionState::new());
        // The slot lives as long as the socket: an upgraded WebSocket keeps it.
        let io = TokioIo::new(GuardedIo::new(
            stream,
            Arc::clone(&state),
            self.settings.send_timeout,
            peer,
            slot,
        ));
        let service = {
            let state = Arc::clone(&state);
            let router = self.router.clone();
            hyper::service::service_fn(move |mut request: axum::http::Request<Incoming>| {
                state.request_started();
                request.extensions_mut().insert(ConnectInfo(peer));
                let http2 = request.version() == axum::http::Version::HTTP_2;
                let state = Arc::clone(&state);
                let served = router.clone().oneshot(request.map(axum::body::Body::new));
                async move {
                    let response = match served.await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    };
                    let tracked = TrackedBody::new(response.into_parts(), state, http2);
                    Ok::<_, Infallible>(tracked)
                }
            })
        };
        let connection = self.builder.serve_connection_with_upgrades(io, service);
        tokio::pin!(connection);
        let mut watchdog = tokio::time::interval(WATCHDOG_PERIOD);
        watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut closing = false;
        loop {
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(err) = served {
                        tracing::debug!(error = %err, %peer, "connection ended with an error");
                    }
                    break;
                }
                changed = self.stopped.changed(), if !closing => {
                    let _ = changed;
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
                _ = watchdog.tick() => match state.verdict(&self.settings) {
                    Verdict::Serve => {}
                    Verdict::Close => {
                        if !closing {
                            closing = true;
                            self.metrics.connection_closed(Closed::Idle.label());
                            connection.as_mut().graceful_shutdown();
                        }
                    }
                    Verdict::Drop(reason) => {
                        self.metrics.connection_closed(reason.label());
                        tracing::debug!(%peer, reason = reason.label(), "connection dropped");
                        break;
                    }
                }
            }
        }
        if state.send_timed_out.load(Ordering::Relaxed) {
            self.metrics.connection_closed(Closed::SendTimeout.label());
        }
        drop(self.open);
    }
}

/// Answers a connection over a cap with a JSON error (HTTP/1.1), then closes it.
async fn refuse(mut stream: TcpStream, refused: Refused, deadline: Duration) {
    use tokio::io::AsyncWriteExt;
    let response = io::json_response(refused.status(), refused.code(), refused.message(), None);
    let written = async {
        stream.write_all(&response).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(deadline.min(Duration::from_secs(2)), written).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ConnectionSettings {
        ConnectionSettings {
            header_read_timeout: Duration::from_millis(0),
            keepalive_timeout: Duration::from_secs(3600),
            send_timeout: Duration::from_secs(3600),
            max_connections: 10,
            max_per_client: None,
            http2_max_streams: 10,
            max_header_bytes: 1024,
        }
    }

    #[test]
    fn a_connection_waiting_for_a_head_is_dropped_and_a_busy_one_is_not() {
        let state = ConnectionState::new();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(
            state.verdict(&settings()),
            Verdict::Drop(Closed::HeaderTimeout)
        );
        state.request_started();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(state.verdict(&settings()), Verdict::Serve);
        state.request_finished();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(state.verdict(&settings()), Verdict::Serve, "idle, not late");
        state.received();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(
            state.verdict(&settings()),
            Verdict::Drop(Closed::HeaderTimeout),
            "the next head is timed from its first byte"
        );
    }

    #[test]
    fn an_idle_connection_is_closed_after_the_keepalive_timeout() {
        let state = ConnectionState::new();
        state.request_started();
        state.request_finished();
        let mut settings = settings();
        settings.keepalive_timeout = Duration::from_millis(1);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(state.verdict(&settings), Verdict::Close);
    }
}
