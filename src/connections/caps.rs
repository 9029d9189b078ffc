//! Caps on the connections a listener holds: in all, and per client address (an IPv6 client is
//! its /64, as for the budgets). Each admitted connection holds a [`Slot`] for as long as its
//! socket lives (an upgraded WebSocket included).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;

use crate::auth::ClientAddress;
use crate::error::code;
use crate::metrics::Metrics;

/// The connections open on one listener.
pub struct ConnectionCaps {
    max_total: usize,
    max_per_client: Option<usize>,
    open: Mutex<Open>,
    metrics: Arc<Metrics>,
}

#[derive(Default)]
struct Open {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The client address holds its most connections.
    PerClient(usize),
    /// The listener holds its most connections.
    Total,
}

impl Refused {
    /// The HTTP status of the refusal: 429 for the client's cap, 503 for the listener's.
    pub fn status(self) -> StatusCode {
        match self {
            Self::PerClient(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Total => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `extensions.code` of the refusal.
    pub fn code(self) -> &'static str {
        match self {
            Self::PerClient(_) => code::TOO_MANY_CONNECTIONS,
            Self::Total => code::SERVICE_UNAVAILABLE,
        }
    }

    /// The message of the refusal.
    pub fn message(self) -> String {
        match self {
            Self::PerClient(maximum) => format!(
                "This client holds its {maximum} connections: reuse them (keep-alive) or close one first"
            ),
            Self::Total => "The server holds its most connections: try again shortly".to_owned(),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::PerClient(_) => "per_client",
            Self::Total => "total",
        }
    }
}

impl ConnectionCaps {
    /// Caps of `max_total` connections, and `max_per_client` per address when given.
    pub fn new(max_total: usize, max_per_client: Option<usize>, metrics: Arc<Metrics>) -> Self {
        Self {
            max_total,
            max_per_client,
            open: Mutex::default(),
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a connection from `peer`, unless a cap refuses it.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Slot, Refused> {
        let client = ClientAddress::new(peer).ip();
        let mut open = self.lock();
        let refused = if open.total >= self.max_total {
            Some(Refused::Total)
        } else {
            self.max_per_client
                .filter(|max| open.per_client.get(&client).copied().unwrap_or(0) >= *max)
                .map(Refused::PerClient)
        };
        if let Some(refused) = refused {
            drop(open);
            self.metrics.connection_refused(refused.label());
            return Err(refused);
        }
        open.total += 1;
        if self.max_per_client.is_some() {
            *open.per_client.entry(client).or_default() += 1;
        }
        drop(open);
        self.metrics.connections(1.0);
        Ok(Slot {
            caps: Arc::clone(self),
            client,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().total
    }
}

/// One admitted connection; dropping it frees its place.
pub struct Slot {
    caps: Arc<ConnectionCaps>,
    client: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.caps.lock();
        open.total = open.total.saturating_sub(1);
        if self.caps.max_per_client.is_some()
            && let Some(count) = open.per_client.get_mut(&self.client)
        {
            *count -= 1;
            if *count == 0 {
                open.per_client.remove(&self.client);
            }
        }
        drop(open);
        self.caps.metrics.connections(-1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_per_address_and_in_all_and_free_on_drop() {
        let caps = Arc::new(ConnectionCaps::new(
            3,
            Some(2),
            Arc::new(Metrics::default()),
        ));
        let a: IpAddr = "10.0.0.1".parse().expect("address");
        let b: IpAddr = "10.0.0.2".parse().expect("address");
        let first = caps.admit(a).expect("first");
        let _second = caps.admit(a).expect("second");
        assert_eq!(caps.admit(a).err(), Some(Refused::PerClient(2)));
        let _third = caps.admit(b).expect("another address");
        assert_eq!(caps.admit(b).err(), Some(Refused::Total));
        drop(first);
        assert_eq!(caps.open(), 2);
        assert!(caps.admit(a).is_ok(), "a freed slot admits again");
        let v6a: IpAddr = "2001:db8::1".parse().expect("address");
        let v6b: IpAddr = "2001:db8::2".parse().expect("address");
        let caps = Arc::new(ConnectionCaps::new(
            10,
            Some(1),
            Arc::new(Metrics::default()),
        ));
        let _one = caps.admit(v6a).expect("first of the /64");
        assert!(caps.admit(v6b).is_err(), "one /64 is one client");
    }
}
