//! Which client sent an operation: the conventional `apollographql-client-name` /
//! `apollographql-client-version` headers (or `graphql-client-name` / `graphql-client-version`),
//! the same keys in a WebSocket's `connection_init` payload, or a trusted document's manifest.
//! Names and versions are bounded in length and characters; [`super::Usage`] bounds how many
//! distinct ones are kept.

use std::sync::{Arc, LazyLock};

use axum::http::HeaderMap;

/// The name of a client that did not say who it is.
pub const UNKNOWN: &str = "unknown";

/// The name (and version) clients past the bound of distinct clients are recorded under.
pub const OTHER: &str = "other";

/// The longest client name kept, in characters; longer ones are cut.
pub const MAX_NAME_CHARS: usize = 64;

/// The longest client version kept, in characters.
pub const MAX_VERSION_CHARS: usize = 32;

/// The header names a client's name is read from, in order of preference.
const NAME_KEYS: [&str; 2] = ["apollographql-client-name", "graphql-client-name"];

/// The header names a client's version is read from.
const VERSION_KEYS: [&str; 2] = ["apollographql-client-version", "graphql-client-version"];

static UNKNOWN_APP: LazyLock<ClientApp> = LazyLock::new(|| ClientApp {
    name: Arc::from(UNKNOWN),
    version: Arc::from(""),
});

/// A client application: its name and version (empty when not sent).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientApp {
    /// The name (`unknown` when none was sent).
    pub name: Arc<str>,
    /// The version (empty when none was sent).
    pub version: Arc<str>,
}

impl Default for ClientApp {
    fn default() -> Self {
        UNKNOWN_APP.clone()
    }
}

impl ClientApp {
    /// A client that did not say who it is.
    pub fn unknown() -> Self {
        Self::default()
    }

    /// The client past the bound of distinct clients.
    pub fn other() -> Self {
        Self {
            name: Arc::from(OTHER),
            version: Arc::from(OTHER),
        }
    }

    /// The client named `name` at `version`, each trimmed, cut to its bound and kept to
    /// printable ASCII; `unknown` without a name.
    pub fn new(name: Option<&str>, version: Option<&str>) -> Self {
        match name.and_then(|name| clean(name, MAX_NAME_CHARS)) {
            Some(name) => Self {
                name: Arc::from(name),
                version: Arc::from(
                    version
                        .and_then(|version| clean(version, MAX_VERSION_CHARS))
                        .unwrap_or_default(),
                ),
            },
            None => Self::unknown(),
        }
    }

    /// The client a request's headers name.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let read = |keys: [&str; 2]| {
            keys.iter()
                .find_map(|key| headers.get(*key).and_then(|value| value.to_str().ok()))
        };
        match read(NAME_KEYS) {
            None => Self::unknown(),
            name => Self::new(name, read(VERSION_KEYS)),
        }
    }

    /// The client a WebSocket's `connection_init` payload names: the same keys at its top level
    /// or in a `headers` object; `None` when it names none.
    pub fn from_payload(payload: &serde_json::Value) -> Option<Self> {
        let read = |keys: [&str; 2]| {
            keys.iter().find_map(|key| {
                payload
                    .get(*key)
                    .or_else(|| payload.get("headers").and_then(|headers| headers.get(*key)))
                    .and_then(serde_json::Value::as_str)
            })
        };
        let name = read(NAME_KEYS)?;
        Some(Self::new(Some(name), read(VERSION_KEYS)))
    }

    /// Whether it is the client that did not say who it is.
    pub fn is_unknown(&self) -> bool {
        &*self.name == UNKNOWN
    }
}

/// `value` trimmed, without control or non-ASCII characters, cut to `max` characters; `None`
/// when nothing is left.
fn clean(value: &str, max: usize) -> Option<String> {
    let kept: String = value
        .trim()
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(max)
        .collect();
    let kept = kept.trim().to_owned();
    (!kept.is_empty()).then_some(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_bounded_and_printable() {
        let app = ClientApp::new(Some(&"x".repeat(500)), Some("1.2.3\u{0}\n"));
        assert_eq!(app.name.len(), MAX_NAME_CHARS);
        assert_eq!(&*app.version, "1.2.3");
        assert!(ClientApp::new(Some("  \u{7}"), Some("1")).is_unknown());
    }

    #[test]
    fn headers_and_payloads_name_the_client() {
        let mut headers = HeaderMap::new();
        headers.insert("graphql-client-name", "web".parse().expect("header"));
        headers.insert("graphql-client-version", "2.0".parse().expect("header"));
        let app = ClientApp::from_headers(&headers);
        assert_eq!((&*app.name, &*app.version), ("web", "2.0"));
        let payload = serde_json::json!({ "headers": { "apollographql-client-name": "ios" } });
        let app = ClientApp::from_payload(&payload).expect("named");
        assert_eq!((&*app.name, &*app.version), ("ios", ""));
        assert!(ClientApp::from_payload(&serde_json::json!({})).is_none());
    }
}
