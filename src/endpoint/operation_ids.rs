//! What async-graphql's `graphql-transport-ws` implementation leaves out, checked on the messages
//! around it: a `subscribe` whose id is already running closes the socket with 4409 (it would
//! silently replace the running operation), and a `subscribe` may name a trusted document by its
//! top-level `documentId` (async-graphql's request has no such field, so it travels to the gateway
//! in `extensions`). Kept here rather than in a fork of the protocol's stream.

use std::collections::HashSet;
use std::sync::Mutex;

use serde::Deserialize;

/// Where a `subscribe`'s `documentId` travels through async-graphql's request.
pub const DOCUMENT_ID_EXTENSION: &str = "documentId";

/// The start of a `complete` or `error` message the server writes for one operation (serde writes
/// the tag first).
const SERVER_ENDS: [&str; 2] = [r#"{"type":"complete""#, r#"{"type":"error""#];

/// The fields of a protocol message that decide its fate.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    id: Option<std::borrow::Cow<'a, str>>,
}

/// What to do with a message the client sent.
#[derive(Debug, PartialEq, Eq)]
pub enum Screened {
    /// Pass it on, as it was.
    Forward,
    /// Pass this instead (the same operation, `documentId` moved into `extensions`).
    Rewritten(String),
    /// Close the socket with 4409: this id is already running.
    Duplicate(String),
}

/// The ids of the operations running on one socket.
#[derive(Debug, Default)]
pub struct OperationIds {
    running: Mutex<HashSet<String>>,
}

impl OperationIds {
    /// Screens a text message from the client: a `subscribe` registers its id (a duplicate is
    /// refused), a `complete` releases it. Anything else, malformed included, goes on unchanged
    /// for the protocol to judge.
    pub fn screen_client_message(&self, text: &str) -> Screened {
        let Ok(envelope) = serde_json::from_str::<Envelope<'_>>(text) else {
            return Screened::Forward;
        };
        let Some(id) = envelope.id else {
            return Screened::Forward;
        };
        let mut running = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // async-graphql also takes the older protocol's names for the same messages.
        match envelope.kind.as_ref() {
            "subscribe" | "start" => {
                if !running.insert(id.to_string()) {
                    return Screened::Duplicate(id.to_string());
                }
                with_document_id_in_extensions(text).map_or(Screened::Forward, Screened::Rewritten)
            }
            "complete" | "stop" => {
                running.remove(id.as_ref());
                Screened::Forward
            }
            _ => Screened::Forward,
        }
    }

    /// Notes a text message the server writes: a `complete` or `error` ends its operation, and
    /// its id may be used again.
    pub fn note_server_message(&self, text: &str) {
        if !SERVER_ENDS.iter().any(|start| text.starts_with(start)) {
            return;
        }
        if let Ok(Envelope { id: Some(id), .. }) = serde_json::from_str::<Envelope<'_>>(text) {
            self.running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(id.as_ref());
        }
    }
}

/// The `subscribe` message with `payload.documentId` moved to `payload.extensions.documentId`;
/// `None` when it has none.
fn with_document_id_in_extensions(text: &str) -> Option<String> {
    if !text.contains("\"documentId\"") {
        return None;
    }
    let mut message: serde_json::Value = serde_json::from_str(text).ok()?;
    let payload = message.get_mut("payload")?.as_object_mut()?;
    let document_id = payload.remove("documentId")?;
    let extensions = payload
        .entry("extensions")
        .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
    match extensions {
        serde_json::Value::Null => {
            *extensions = serde_json::json!({ DOCUMENT_ID_EXTENSION: document_id });
        }
        serde_json::Value::Object(extensions) => {
            extensions.insert(DOCUMENT_ID_EXTENSION.to_owned(), document_id);
        }
        // Not an object: left for the request's own check to refuse.
        _ => return None,
    }
    Some(message.to_string())
}

#[cfg(test)]
mod tests {
    use super::{OperationIds, Screened};

    #[test]
    fn a_running_id_is_refused_until_its_operation_ends() {
        let ids = OperationIds::default();
        let subscribe = r#"{"type":"subscribe","id":"1","payload":{"query":"subscription { x }"}}"#;
        assert_eq!(ids.screen_client_message(subscribe), Screened::Forward);
        assert_eq!(
            ids.screen_client_message(subscribe),
            Screened::Duplicate("1".into())
        );
        // The client completes it: the id is free again.
        assert_eq!(
            ids.screen_client_message(r#"{"type":"complete","id":"1"}"#),
            Screened::Forward
        );
        assert_eq!(ids.screen_client_message(subscribe), Screened::Forward);
        // The server ends it (complete or error): free again.
        ids.note_server_message(r#"{"type":"next","id":"1","payload":{"data":{}}}"#);
        assert_eq!(
            ids.screen_client_message(subscribe),
            Screened::Duplicate("1".into())
        );
        ids.note_server_message(r#"{"type":"error","id":"1","payload":[]}"#);
        assert_eq!(ids.screen_client_message(subscribe), Screened::Forward);
        ids.note_server_message(r#"{"type":"complete","id":"1"}"#);
        assert_eq!(ids.screen_client_message(subscribe), Screened::Forward);
        // The older names and escaped ones are the same messages.
        assert_eq!(
            ids.screen_client_message(r#"{"type":"st\u0061rt","id":"1","payload":{}}"#),
            Screened::Duplicate("1".into())
        );
        assert_eq!(
            ids.screen_client_message(r#"{"type":"stop","id":"1"}"#),
            Screened::Forward
        );
        assert_eq!(
            ids.screen_client_message(r#"{"type":"start","id":"1","payload":{}}"#),
            Screened::Forward
        );
        // Other ids, pings and malformed text pass.
        assert_eq!(
            ids.screen_client_message(
                r#"{"type":"subscribe","id":"2","payload":{"query":"{ a }"}}"#
            ),
            Screened::Forward
        );
        assert_eq!(
            ids.screen_client_message(r#"{"type":"ping"}"#),
            Screened::Forward
        );
        assert_eq!(ids.screen_client_message("not json"), Screened::Forward);
    }

    #[test]
    fn a_document_id_travels_in_the_extensions() {
        let ids = OperationIds::default();
        let Screened::Rewritten(text) = ids.screen_client_message(
            r#"{"type":"subscribe","id":"1","payload":{"documentId":"sha256:ab","extensions":{"a":1}}}"#,
        ) else {
            panic!("rewritten");
        };
        let message: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(message["payload"]["extensions"]["documentId"], "sha256:ab");
        assert_eq!(message["payload"]["extensions"]["a"], 1);
        assert!(message["payload"].get("documentId").is_none());
        assert_eq!(message["id"], "1");
    }
}
