//! Reading GraphQL requests from HTTP: `GET` URL parameters or a `POST` JSON body (one operation,
//! or a batch as an array), with a clear 4xx for anything else.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Query;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use serde_json::{Map, Value};

use super::response::HttpError;
use crate::error::code;
use crate::gateway::RawOperation;
use crate::gateway::persisted::PersistedRequest;

/// The operations of one HTTP request.
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// One operation, or several for a batch.
    pub operations: Vec<RawOperation>,
    /// Whether the body was an array (the response is one too).
    pub batch: bool,
}

/// How much of a request is read, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// Largest body, in bytes.
    pub max_body_bytes: usize,
    /// Most operations in a batch.
    pub max_batch: usize,
    /// Longest time to receive the body (separate from the time to execute).
    pub body_deadline: Duration,
}

/// Reads the request's operations within `limits`.
pub async fn read(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
    limits: ReadLimits,
) -> Result<RawRequest, HttpError> {
    let ReadLimits {
        max_body_bytes,
        max_batch,
        body_deadline,
    } = limits;
    if *method == Method::GET {
        let Query(params) = Query::<Vec<(String, String)>>::try_from_uri(uri).map_err(|err| {
            HttpError::bad_request(format!("The URL parameters cannot be read: {err}"))
        })?;
        let mut object = Map::new();
        for (key, value) in params {
            let value = match key.as_str() {
                "variables" | "extensions" if !value.is_empty() => serde_json::from_str(&value)
                    .map_err(|err| {
                        HttpError::bad_request(format!("The `{key}` parameter is not JSON: {err}"))
                    })?,
                _ => Value::String(value),
            };
            object.insert(key, value);
        }
        return Ok(RawRequest {
            operations: vec![operation(Value::Object(object))?],
            batch: false,
        });
    }
    if *method != Method::POST {
        return Err(HttpError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            code::METHOD_NOT_ALLOWED,
            "Use GET or POST",
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence != "application/json" && !essence.ends_with("+json") {
        return Err(HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code::UNSUPPORTED_MEDIA_TYPE,
            "Send the request as JSON (Content-Type: application/json)",
        ));
    }
    let too_large = || {
        HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            code::PAYLOAD_TOO_LARGE,
            format!("The request body is larger than {max_body_bytes} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > max_body_bytes) {
        return Err(too_large());
    }
    let bytes =
        match tokio::time::timeout(body_deadline, axum::body::to_bytes(body, max_body_bytes)).await
        {
            Ok(read) => read.map_err(|_| too_large())?,
            Err(_) => {
                return Err(HttpError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    code::REQUEST_TIMEOUT,
                    format!(
                        "The request body did not arrive within {} s",
                        body_deadline.as_secs()
                    ),
                ));
            }
        };
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| HttpError::bad_request("The request body is not valid UTF-8"))?;
    let json: Value = serde_json::from_str(text).map_err(|err| {
        HttpError::bad_request(format!("The request body is not valid JSON: {err}"))
    })?;
    match json {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(HttpError::bad_request(
                    "A batch needs at least one operation",
                ));
            }
            if items.len() > max_batch {
                return Err(HttpError::new(
                    StatusCode::BAD_REQUEST,
                    code::QUERY_TOO_COMPLEX,
                    format!(
                        "The batch size is {}, more than the maximum of {max_batch}",
                        items.len()
                    ),
                )
                .with_limit("batchSize", max_batch as u64, items.len() as u64));
            }
            let operations = items.into_iter().map(operation).collect::<Result<_, _>>()?;
            Ok(RawRequest {
                operations,
                batch: true,
            })
        }
        object @ Value::Object(_) => Ok(RawRequest {
            operations: vec![operation(object)?],
            batch: false,
        }),
        _ => Err(HttpError::bad_request(
            "The request body must be a JSON object (or an array of them for a batch)",
        )),
    }
}

/// One operation from its JSON object.
pub fn operation(value: Value) -> Result<RawOperation, HttpError> {
    let Value::Object(mut object) = value else {
        return Err(HttpError::bad_request(
            "Each operation of a batch must be a JSON object",
        ));
    };
    let query = match object.remove("query") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(query)) => query,
        Some(_) => return Err(HttpError::bad_request("`query` must be a string")),
    };
    let operation_name = match object.remove("operationName") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) if name.is_empty() => None,
        Some(Value::String(name)) => Some(name),
        Some(_) => return Err(HttpError::bad_request("`operationName` must be a string")),
    };
    let variables = match object.remove("variables") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(variables)) => variables,
        Some(Value::String(text)) if text.is_empty() => Map::new(),
        Some(_) => return Err(HttpError::bad_request("`variables` must be a JSON object")),
    };
    let extensions = match object.remove("extensions") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(extensions)) => extensions,
        Some(_) => return Err(HttpError::bad_request("`extensions` must be a JSON object")),
    };
    let mut persisted = PersistedRequest::default();
    if let Some(persisted_query) = extensions.get("persistedQuery") {
        let hash = persisted_query.get("sha256Hash").and_then(Value::as_str);
        let Some(hash) = hash else {
            return Err(HttpError::bad_request(
                "`extensions.persistedQuery.sha256Hash` must be a string",
            ));
        };
        persisted.hash = Some(hash.to_owned());
        persisted.version = persisted_query.get("version").and_then(Value::as_i64);
    }
    match object.remove("documentId") {
        None | Some(Value::Null) => {}
        Some(Value::String(id)) => persisted.hash = Some(id),
        Some(_) => return Err(HttpError::bad_request("`documentId` must be a string")),
    }
    if query.is_empty() && persisted.hash.is_none() {
        return Err(HttpError::bad_request(
            "No query: send `query`, or a persisted query hash in `extensions.persistedQuery`",
        ));
    }
    Ok(RawOperation {
        query,
        operation_name,
        variables,
        persisted,
    })
}
