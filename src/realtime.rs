//! What the real-time transports (WebSocket, Server-Sent Events) share, kept in the state that
//! every handler shares: the caps on connections
//! (per client and in all), counted while each connection lives, and the signal that closes them
//! all when the server stops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::config::RealtimeSettings;
use crate::metrics::Metrics;

/// The real-time settings and the connections open on this instance.
pub struct Realtime {
    /// Most connections of one client.
    pub max_per_client: u32,
    /// Most connections in all.
    pub max_connections: u32,
    /// Most subscriptions on one WebSocket.
    pub max_subscriptions_per_connection: u32,
    /// Messages that may wait to be written to one connection.
    pub buffer: usize,
    /// Bytes of messages that may wait to be written to one connection.
    pub queue_bytes: usize,
    /// Between keep-alive pings.
    pub keepalive: Duration,
    /// How long a WebSocket may wait for `connection_init`.
    pub init_timeout: Duration,
    open: Mutex<Open>,
    closing: watch::Sender<bool>,
    metrics: Arc<Metrics>,
}

#[derive(Default)]
struct Open {
    total: u32,
    per_client: HashMap<String, u32>,
}

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    /// The client holds its most connections.
    PerClient,
    /// The instance holds its most connections.
    Total,
}

impl Realtime {
    /// The transports' state from `settings`.
    pub fn new(settings: &RealtimeSettings, metrics: Arc<Metrics>) -> Self {
        Self {
            max_per_client: settings.max_ws_per_client,
            max_connections: settings.max_connections,
            max_subscriptions_per_connection: settings.max_subscriptions_per_connection,
            buffer: settings.buffer as usize,
            queue_bytes: usize::try_from(settings.queue_bytes).unwrap_or(usize::MAX),
            keepalive: Duration::from_secs(settings.keepalive_secs),
            init_timeout: Duration::from_secs(settings.init_timeout_secs),
            open: Mutex::default(),
            closing: watch::Sender::new(false),
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a new connection of `client` over `transport`, unless a cap refuses it.
    pub fn admit(
        self: &Arc<Self>,
        client: &str,
        transport: &'static str,
    ) -> Result<ConnectionSlot, Cap> {
        let mut open = self.lock();
        if open.total >= self.max_connections {
            self.metrics.realtime_refused("total");
            return Err(Cap::Total);
        }
        let held = open.per_client.get(client).copied().unwrap_or(0);
        if held >= self.max_per_client {
            self.metrics.realtime_refused("per_client");
            return Err(Cap::PerClient);
        }
        open.total += 1;
        open.per_client.insert(client.to_owned(), held + 1);
        drop(open);
        self.metrics.realtime_connections(transport, 1.0);
        Ok(ConnectionSlot {
            realtime: Arc::clone(self),
            client: client.to_owned(),
            transport,
        })
    }

    /// Closes every real-time connection (the server stops).
    pub fn close_all(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves once the server closes every connection.
    pub fn closing(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut closing = self.closing.subscribe();
        async move {
            let _ = closing.wait_for(|closing| *closing).await;
        }
    }

    /// Waits, at most `within`, until every connection has closed (their close frames written).
    pub async fn closed(&self, within: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.lock().total > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

/// One counted connection; counted off when dropped.
pub struct ConnectionSlot {
    realtime: Arc<Realtime>,
    client: String,
    transport: &'static str,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.realtime.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(held) = open.per_client.get_mut(&self.client) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                open.per_client.remove(&self.client);
            }
        }
        drop(open);
        self.realtime
            .metrics
            .realtime_connections(self.transport, -1.0);
    }
}
