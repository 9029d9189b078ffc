//! Writing GraphQL responses: media type by `Accept`, the HTTP status, rate-limit headers, and the
//! JSON errors of requests that never reach GraphQL.

use async_graphql::Value;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::cache::{CachePolicy, CacheStatus};
use crate::error::code;
use crate::persisted::sha256_hex;
use crate::rate_limit::Decision;

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

/// How the response relates to caches.
#[derive(Debug, Clone, Copy)]
pub struct Caching {
    /// Where the response came from (`X-Cache`).
    pub status: CacheStatus,
    /// Its cache policy; `None` sends `Cache-Control: no-store` (mutations, errors, batches).
    pub policy: Option<CachePolicy>,
    /// Whether to send an `ETag` and answer a matching `If-None-Match` with 304 (GET queries).
    pub etag: bool,
}

impl Default for Caching {
    fn default() -> Self {
        Self {
            status: CacheStatus::Bypass,
            policy: None,
            etag: false,
        }
    }
}

/// The HTTP response for GraphQL `responses` (an array when `batch`), negotiated by `request_headers`.
pub fn graphql(
    responses: Vec<async_graphql::Response>,
    batch: bool,
    request_headers: &HeaderMap,
    throttle: Option<Decision>,
    caching: Caching,
) -> Response {
    let accept = request_headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let official = accept.contains(GRAPHQL_RESPONSE_JSON);
    let retry_after = responses
        .iter()
        .flat_map(|response| &response.errors)
        .filter_map(|error| {
            let extensions = error.extensions.as_ref()?;
            match extensions.get("code")? {
                Value::String(code) if code == code::RATE_LIMITED => {
                    match extensions.get("retryAfterSeconds")? {
                        Value::Number(seconds) => seconds.as_u64(),
                        _ => None,
                    }
                }
                _ => None,
            }
        })
        .max();
    let request_error = responses.iter().all(is_request_error);
    let status = if retry_after.is_some() {
        StatusCode::TOO_MANY_REQUESTS
    } else if official && request_error && !batch {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let results: Vec<serde_json::Value> = responses.iter().map(result_json).collect();
    let body = if batch {
        serde_json::to_vec(&results)
    } else {
        serde_json::to_vec(&results[0])
    };
    let body = match body {
        Ok(body) => body,
        Err(err) => {
            tracing::error!(error = %err, "cannot serialize a GraphQL response");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    // The entity is the data: `extensions.cost` (the budget) changes with every request.
    let etag = (caching.etag && status == StatusCode::OK && !batch)
        .then(|| serde_json::to_vec(&responses[0].data).ok())
        .flatten()
        .map(|data| format!("\"{}\"", &sha256_hex(&data)[..32]));
    let not_modified = etag.as_deref().is_some_and(|etag| {
        request_headers
            .get(header::IF_NONE_MATCH)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|candidates| {
                candidates.split(',').any(|candidate| {
                    let candidate = candidate.trim();
                    candidate == "*" || candidate.trim_start_matches("W/") == etag
                })
            })
    });
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (status, body).into_response()
    };
    let headers = response.headers_mut();
    headers.insert("x-cache", HeaderValue::from_static(caching.status.header()));
    // The answer depends on who asks and on the media type they accept.
    headers.insert(
        header::VARY,
        HeaderValue::from_static("accept, authorization"),
    );
    let cache_control = caching
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
    if let Some(seconds) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if let Some(decision) = throttle {
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

/// Whether the request failed before execution began (parse, validation, limits, budget): all
/// its errors lie outside any field.
fn is_request_error(response: &async_graphql::Response) -> bool {
    matches!(response.data, Value::Null)
        && !response.errors.is_empty()
        && response.errors.iter().all(|error| error.path.is_empty())
}

/// The JSON of one result; a request that failed before execution has no `data` entry, as the
/// GraphQL specification asks.
fn result_json(response: &async_graphql::Response) -> serde_json::Value {
    let mut json = serde_json::to_value(response).unwrap_or_else(|err| {
        tracing::error!(error = %err, "cannot serialize a GraphQL response");
        serde_json::json!({ "errors": [{ "message": "Internal server error" }] })
    });
    if is_request_error(response)
        && let Some(object) = json.as_object_mut()
    {
        object.remove("data");
    }
    json
}
