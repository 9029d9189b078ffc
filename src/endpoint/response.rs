//! Writing GraphQL responses: media type by `Accept`, the HTTP status, cache and rate-limit
//! headers, and the JSON errors of requests that never reach GraphQL.

use async_graphql::Value;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::precompressed;
use crate::cache::etag_of;
use crate::error::code;
use crate::gateway::{Answer, Settled};

/// The official GraphQL-over-HTTP media type.
const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

/// A request refused before any GraphQL runs: an HTTP status and a GraphQL-shaped JSON error.
#[derive(Debug, Clone)]
pub struct HttpError {
    status: StatusCode,
    code: &'static str,
    message: String,
    extensions: Vec<(&'static str, Value)>,
}

impl HttpError {
    /// An error with `status`, `code` and a message for people.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            extensions: Vec::new(),
        }
    }

    /// 400 BAD_REQUEST.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code::BAD_REQUEST, message)
    }

    /// Names the limit that was exceeded, with its maximum and the actual value.
    pub fn with_limit(mut self, limit: &'static str, maximum: u64, actual: u64) -> Self {
        self.extensions.push(("limit", Value::from(limit)));
        self.extensions.push(("maximum", Value::from(maximum)));
        self.extensions.push(("actual", Value::from(actual)));
        self
    }
}

impl HttpError {
    /// The same refusal as a GraphQL response, for transports that answer in-band.
    pub fn to_graphql(&self) -> async_graphql::Response {
        crate::gateway::refusal(self.message.clone(), self.code)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut extensions = serde_json::Map::new();
        extensions.insert("code".into(), self.code.into());
        for (key, value) in self.extensions {
            extensions.insert(
                key.into(),
                value.into_json().unwrap_or(serde_json::Value::Null),
            );
        }
        let body = serde_json::json!({
            "errors": [{ "message": self.message, "extensions": extensions }]
        });
        let mut response = (
            self.status,
            [
                (header::CACHE_CONTROL, "no-store"),
                (HeaderName::from_static("x-cache"), "BYPASS"),
            ],
            axum::Json(body),
        )
            .into_response();
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
        }
        response
    }
}

/// 503 for a request shed because the server is saturated.
pub fn overloaded() -> Response {
    let mut response = HttpError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        code::SERVICE_UNAVAILABLE,
        "The server is busy: try again shortly",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// The HTTP response for a settled exchange, negotiated by `request_headers`; `get` answers a
/// matching `If-None-Match` with 304 and sends an `ETag`.
pub fn graphql(settled: Settled, request_headers: &HeaderMap, get: bool) -> Response {
    let accept = request_headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let official = accept.contains(GRAPHQL_RESPONSE_JSON);
    let request_error = settled.answers.iter().all(is_request_error);
    let status = if settled.retry_after.is_some() && !settled.produced {
        StatusCode::TOO_MANY_REQUESTS
    } else if settled.unavailable && !settled.produced {
        StatusCode::SERVICE_UNAVAILABLE
    } else if official && request_error && !settled.batch {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let single = !settled.batch && settled.answers.len() == 1;
    // The entity is the data: `extensions.cost` (the budget) changes with every request.
    let etag = (get && single && settled.query && status == StatusCode::OK)
        .then(|| match (&settled.etag, settled.answers[0].data.as_ref()) {
            (Some(etag), _) => Some(etag.to_string()),
            (None, Some(data)) => Some(etag_of(data)),
            (None, None) => None,
        })
        .flatten();
    let not_modified = etag.as_deref().is_some_and(|etag| {
        request_headers
            .get(header::IF_NONE_MATCH)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|candidates| {
                candidates.split(',').any(|candidate| {
                    let candidate = candidate.trim();
                    candidate == "*" || same_entity(candidate.trim_start_matches("W/"), etag)
                })
            })
    });
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut chunks = body(&settled);
        let mut length: usize = chunks.iter().map(Bytes::len).sum();
        // A remembered entity, compressed once: only this request's extensions are new.
        let precompressed = match (&settled.etag, chunks.as_slice()) {
            (Some(etag), [start @ .., rest])
                if single
                    && start.len() == 2
                    && length as u64 > super::COMPRESS_ABOVE_BYTES
                    && precompressed::gzip_preferred(request_headers) =>
            {
                chunks = precompressed::gzip(etag, start, rest);
                length = chunks.iter().map(Bytes::len).sum();
                true
            }
            _ => false,
        };
        let stream =
            futures::stream::iter(chunks.into_iter().map(Ok::<_, std::convert::Infallible>));
        let mut response = (status, Body::from_stream(stream)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        if precompressed {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    };
    let headers = response.headers_mut();
    headers.insert(
        "x-cache",
        HeaderValue::from_static(settled.cache_status.header()),
    );
    // The answer depends on who asks and on the media type they accept.
    headers.insert(
        header::VARY,
        HeaderValue::from_static("accept, accept-encoding, authorization"),
    );
    let cache_control = settled
        .policy
        .map_or_else(|| "no-store".to_owned(), |policy| policy.header());
    if let Ok(value) = HeaderValue::from_str(&cache_control) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    if let Some(etag) = etag.and_then(|etag| HeaderValue::from_str(&etag).ok()) {
        headers.insert(header::ETAG, etag);
    }
    if not_modified {
        return response;
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(if official {
            "application/graphql-response+json; charset=utf-8"
        } else {
            "application/json; charset=utf-8"
        }),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    if let (Some(seconds), StatusCode::TOO_MANY_REQUESTS) = (settled.retry_after, status) {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if let Some(decision) = settled.throttle {
        headers.insert(
            "ratelimit-limit",
            HeaderValue::from(decision.policy.capacity as u64),
        );
        headers.insert(
            "ratelimit-remaining",
            HeaderValue::from(decision.remaining.max(0.0).floor() as u64),
        );
        headers.insert(
            "ratelimit-reset",
            HeaderValue::from(decision.reset_seconds()),
        );
    }
    response
}

/// Whether `candidate` names the entity `etag`, in any of its encodings (`"abc-gzip"` is `"abc"`
/// compressed).
fn same_entity(candidate: &str, etag: &str) -> bool {
    if candidate == etag {
        return true;
    }
    ["-gzip\"", "-br\"", "-zstd\""].iter().any(|suffix| {
        candidate
            .strip_suffix(suffix)
            .is_some_and(|opaque| etag.strip_suffix('"') == Some(opaque))
    })
}

/// Whether the request failed before execution began (parse, validation, limits, budget): no
/// data, and errors outside any field.
fn is_request_error(answer: &Answer) -> bool {
    answer.data.is_none()
        && !answer.errors.is_empty()
        && answer.errors.iter().all(|error| error.path.is_empty())
}

/// The body: one result object, or a list of them for a batch, as chunks: the data goes out as
/// the bytes it was serialized to (or stored as), shared, not copied; the small parts around it
/// are written here.
fn body(settled: &Settled) -> Vec<Bytes> {
    let mut chunks = Vec::with_capacity(settled.answers.len() * 2 + 1);
    let mut text: Vec<u8> = Vec::with_capacity(256);
    if settled.batch {
        text.push(b'[');
    }
    for (index, answer) in settled.answers.iter().enumerate() {
        if index > 0 {
            text.push(b',');
        }
        text.push(b'{');
        let mut first = true;
        if let Some(data) = &answer.data {
            text.extend_from_slice(b"\"data\":");
            chunks.push(Bytes::from(std::mem::take(&mut text)));
            chunks.push(data.clone());
            first = false;
        }
        if !answer.errors.is_empty() {
            if !first {
                text.push(b',');
            }
            text.extend_from_slice(b"\"errors\":");
            if serde_json::to_writer(&mut text, &answer.errors).is_err() {
                text.extend_from_slice(b"[]");
            }
            first = false;
        }
        if !first {
            text.push(b',');
        }
        text.extend_from_slice(b"\"extensions\":");
        if serde_json::to_writer(&mut text, &answer.extensions).is_err() {
            text.extend_from_slice(b"{}");
        }
        text.push(b'}');
    }
    if settled.batch {
        text.push(b']');
    }
    chunks.push(Bytes::from(text));
    chunks
}
