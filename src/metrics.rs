//! Counters exposed at `GET /metrics` in the Prometheus text format: uses of deprecated fields and
//! how responses relate to the cache.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::cache::CacheStatus;

/// The server's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    deprecated: Mutex<BTreeMap<String, u64>>,
    cache: [AtomicU64; 3],
}

impl Metrics {
    /// Counts one operation that selected the deprecated `field` (`Type.field`).
    pub fn deprecated_field_used(&self, field: &str) {
        *self
            .deprecated
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(field.to_owned())
            .or_insert(0) += 1;
    }

    /// Counts one GraphQL response by its cache status.
    pub fn response(&self, status: CacheStatus) {
        self.cache[status as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The counters in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        text.push_str("# HELP conduit_deprecated_field_uses_total Operations that selected a deprecated field.\n");
        text.push_str("# TYPE conduit_deprecated_field_uses_total counter\n");
        for (field, count) in self
            .deprecated
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(
                text,
                "conduit_deprecated_field_uses_total{{field=\"{field}\"}} {count}"
            );
        }
        text.push_str(
            "# HELP conduit_graphql_responses_total GraphQL responses by cache status.\n",
        );
        text.push_str("# TYPE conduit_graphql_responses_total counter\n");
        for status in [CacheStatus::Hit, CacheStatus::Miss, CacheStatus::Bypass] {
            let _ = writeln!(
                text,
                "conduit_graphql_responses_total{{cache=\"{}\"}} {}",
                status.header().to_lowercase(),
                self.cache[status as usize].load(Ordering::Relaxed)
            );
        }
        text
    }
}
