//! The error type every layer converts into, and its GraphQL form with a stable `extensions.code`.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Arc;

use async_graphql::ErrorExtensions;
use sea_orm::{DbErr, SqlErr};

/// Stable machine-readable error codes, sent as `extensions.code`.
pub mod code {
    /// The input broke a rule; `extensions.fields` names the fields.
    pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
    /// No valid credentials where they are needed.
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    /// The viewer may not do this.
    pub const FORBIDDEN: &str = "FORBIDDEN";
    /// The target does not exist.
    pub const NOT_FOUND: &str = "NOT_FOUND";
    /// A unique value is already taken.
    pub const CONFLICT: &str = "CONFLICT";
    /// Something failed on the server; details are in its logs only.
    pub const INTERNAL_SERVER_ERROR: &str = "INTERNAL_SERVER_ERROR";
    /// The document does not parse.
    pub const GRAPHQL_PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
    /// The document is not valid against the schema.
    pub const GRAPHQL_VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";
    /// Over budget; `extensions.retryAfterSeconds` says when to try again.
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    /// The operation is too deep (`extensions.limit` names the limit).
    pub const QUERY_TOO_DEEP: &str = "QUERY_TOO_DEEP";
    /// The operation is too large or too expensive (`extensions.limit` names the limit).
    pub const QUERY_TOO_COMPLEX: &str = "QUERY_TOO_COMPLEX";
    /// The persisted query hash is unknown: send the query with it.
    pub const PERSISTED_QUERY_NOT_FOUND: &str = "PERSISTED_QUERY_NOT_FOUND";
    /// Trusted-documents mode: the operation is not in the manifest.
    pub const OPERATION_NOT_TRUSTED: &str = "OPERATION_NOT_TRUSTED";
    /// The HTTP request is malformed (not JSON, not UTF-8, missing query, ...).
    pub const BAD_REQUEST: &str = "BAD_REQUEST";
    /// The request body is larger than the limit.
    pub const PAYLOAD_TOO_LARGE: &str = "PAYLOAD_TOO_LARGE";
    /// The request body is not JSON.
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "UNSUPPORTED_MEDIA_TYPE";
    /// A mutation sent with GET.
    pub const METHOD_NOT_ALLOWED: &str = "METHOD_NOT_ALLOWED";
    /// The server is saturated, or the database unreachable; try again shortly
    /// (`extensions.retryAfterSeconds` when known; HTTP 503 with `Retry-After`).
    pub const SERVICE_UNAVAILABLE: &str = "SERVICE_UNAVAILABLE";
    /// The request body did not arrive in time.
    pub const REQUEST_TIMEOUT: &str = "REQUEST_TIMEOUT";
    /// The client holds its most connections (`CONDUIT_MAX_CONNECTIONS_PER_CLIENT`), or its most
    /// real-time connections (`CONDUIT_MAX_WS_PER_CLIENT`).
    pub const TOO_MANY_CONNECTIONS: &str = "TOO_MANY_CONNECTIONS";
    /// The request line is longer than HTTP allows here (414).
    pub const URI_TOO_LONG: &str = "URI_TOO_LONG";
    /// The request's headers are larger than the server reads (431).
    pub const REQUEST_HEADER_FIELDS_TOO_LARGE: &str = "REQUEST_HEADER_FIELDS_TOO_LARGE";
    /// The response would be larger than `CONDUIT_MAX_RESPONSE_BYTES`.
    pub const RESPONSE_TOO_LARGE: &str = "RESPONSE_TOO_LARGE";
    /// The WebSocket holds its most subscriptions (`CONDUIT_MAX_SUBSCRIPTIONS_PER_CONNECTION`).
    pub const TOO_MANY_SUBSCRIPTIONS: &str = "TOO_MANY_SUBSCRIPTIONS";
    /// An event stream fell too far behind the changes and was ended.
    pub const SLOW_CONSUMER: &str = "SLOW_CONSUMER";
}

/// Field name -> reason, for `BAD_USER_INPUT`.
pub type FieldErrors = BTreeMap<String, String>;

/// An error of any layer below the GraphQL schema.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppError {
    /// The input broke a rule.
    #[error("{message}")]
    BadUserInput {
        /// Summary for people.
        message: String,
        /// Which fields are wrong, and why.
        fields: FieldErrors,
    },
    /// No (valid) credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// Authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// The target does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A unique value is already taken; `field` names it.
    #[error("{field} is already taken")]
    Conflict {
        /// The input field whose value is taken.
        field: String,
    },
    /// Too many requests or attempts.
    #[error("{message}: try again in {retry_after_seconds} s")]
    RateLimited {
        /// What was limited, for people.
        message: String,
        /// Seconds until a new attempt can succeed.
        retry_after_seconds: u64,
    },
    /// The database cannot be reached right now (it restarts, or is down): worth retrying soon.
    #[error("{0}")]
    Unavailable(String),
    /// The response would carry more than the server sends for one request.
    #[error(
        "The response would be larger than {maximum} bytes: ask for fewer items or fields, or page through them"
    )]
    ResponseTooLarge {
        /// The most bytes one response carries (`CONDUIT_MAX_RESPONSE_BYTES`).
        maximum: u64,
    },
    /// A failure the client cannot fix; logged with its cause, never shown.
    #[error("internal error: {0}")]
    Internal(Arc<dyn std::error::Error + Send + Sync>),
}

impl AppError {
    /// A `BAD_USER_INPUT` error for one field.
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        let mut fields = FieldErrors::new();
        fields.insert(field.to_owned(), reason.into());
        Self::invalid_fields(fields)
    }

    /// A `BAD_USER_INPUT` error for several fields (`fields` must not be empty).
    pub fn invalid_fields(fields: FieldErrors) -> Self {
        let message = fields
            .iter()
            .map(|(field, reason)| format!("{field}: {reason}"))
            .collect::<Vec<_>>()
            .join("; ");
        Self::BadUserInput {
            message: format!("Invalid input: {message}"),
            fields,
        }
    }

    /// An internal error from any cause.
    pub fn internal(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Arc::new(cause))
    }

    /// Whether this is a transaction that lost a race (serialization failure, deadlock): worth
    /// running the whole transaction again.
    pub fn is_transaction_conflict(&self) -> bool {
        match self {
            Self::Internal(cause) => {
                let cause: &(dyn std::error::Error + 'static) = cause.as_ref();
                cause
                    .downcast_ref::<DbErr>()
                    .is_some_and(is_transaction_conflict)
            }
            _ => false,
        }
    }

    /// The stable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadUserInput { .. } => code::BAD_USER_INPUT,
            Self::Unauthenticated(_) => code::UNAUTHENTICATED,
            Self::Forbidden(_) => code::FORBIDDEN,
            Self::NotFound(_) => code::NOT_FOUND,
            Self::Conflict { .. } => code::CONFLICT,
            Self::RateLimited { .. } => code::RATE_LIMITED,
            Self::Unavailable(_) => code::SERVICE_UNAVAILABLE,
            Self::ResponseTooLarge { .. } => code::RESPONSE_TOO_LARGE,
            Self::Internal(_) => code::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Unique indexes are named `<table>_<field>_key`; the field is what a client sent.
fn conflicting_field(message: &str) -> String {
    for (needle, field) in [
        ("username", "username"),
        ("email", "email"),
        ("slug", "slug"),
        ("tags", "tags"),
    ] {
        if message.contains(needle) {
            return field.to_owned();
        }
    }
    "id".to_owned()
}

/// Whether `err` is a serialization failure or a deadlock: the transaction lost a race and the
/// same work, tried again, may well succeed.
pub fn is_transaction_conflict(err: &DbErr) -> bool {
    use sea_orm::RuntimeErr;
    use sea_orm::sqlx::Error as Sqlx;
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(sqlx)) | DbErr::Query(RuntimeErr::SqlxError(sqlx)) => {
            matches!(sqlx.as_ref(), Sqlx::Database(database)
                if matches!(database.code().as_deref(), Some("40001" | "40P01")))
        }
        _ => false,
    }
}

/// Whether `err` says the database could not be reached (refused or dropped connections, a pool
/// that found none in time, a server shutting down or starting), rather than a fault of the
/// statement.
pub fn is_unavailable(err: &DbErr) -> bool {
    use sea_orm::RuntimeErr;
    use sea_orm::sqlx::Error as Sqlx;
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(sqlx)) | DbErr::Query(RuntimeErr::SqlxError(sqlx)) => {
            match sqlx.as_ref() {
                Sqlx::Io(_)
                | Sqlx::PoolTimedOut
                | Sqlx::PoolClosed
                | Sqlx::WorkerCrashed
                | Sqlx::Protocol(_) => true,
                // Class 08: connection exception; 57P: the server is shutting down or starting.
                Sqlx::Database(database) => database
                    .code()
                    .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
                _ => false,
            }
        }
        _ => false,
    }
}

/// Whether `err` says a connection broke while a statement used it (the server restarted, or the
/// connection was cut), as opposed to none being available in time: the same read on a new
/// connection may well succeed at once.
pub fn is_connection_lost(err: &DbErr) -> bool {
    use sea_orm::RuntimeErr;
    use sea_orm::sqlx::Error as Sqlx;
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(sqlx)) | DbErr::Query(RuntimeErr::SqlxError(sqlx)) => {
            match sqlx.as_ref() {
                Sqlx::Io(_) | Sqlx::Protocol(_) | Sqlx::WorkerCrashed => true,
                // Class 08: connection exception; 57P01/57P02: the backend was shut down.
                Sqlx::Database(database) => database.code().is_some_and(|code| {
                    code.starts_with("08") || code == "57P01" || code == "57P02"
                }),
                _ => false,
            }
        }
        _ => false,
    }
}

/// Whether `err` is PostgreSQL refusing text it cannot store (a NUL character: SQLSTATE 22021,
/// or 22P05 for an escape): input the gateway should have refused, never a server fault.
fn is_invalid_text(err: &DbErr) -> bool {
    use sea_orm::RuntimeErr;
    use sea_orm::sqlx::Error as Sqlx;
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(sqlx)) | DbErr::Query(RuntimeErr::SqlxError(sqlx)) => {
            matches!(sqlx.as_ref(), Sqlx::Database(database)
                if matches!(database.code().as_deref(), Some("22021" | "22P05")))
        }
        _ => false,
    }
}

tokio::task_local! {
    /// Whether a statement of the operation running on this task lost its connection.
    static CONNECTION_LOST: Cell<bool>;
}

/// Runs `work` and tells whether one of the statements it sent on this task lost its connection
/// (a request's loaders run their batches on the request's task, so theirs count too).
pub async fn noting_lost_connections<F: Future>(work: F) -> (F::Output, bool) {
    CONNECTION_LOST
        .scope(Cell::new(false), async {
            let output = work.await;
            (output, CONNECTION_LOST.with(Cell::get))
        })
        .await
}

impl From<DbErr> for AppError {
    fn from(err: DbErr) -> Self {
        if is_connection_lost(&err) {
            let _ = CONNECTION_LOST.try_with(|lost| lost.set(true));
        }
        if is_unavailable(&err) {
            tracing::warn!(error = %err, "database unavailable");
            return Self::Unavailable("The database is unavailable: try again shortly".into());
        }
        if is_invalid_text(&err) {
            return Self::invalid("text", "must not contain the NUL character (U+0000)");
        }
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(message)) => Self::Conflict {
                field: conflicting_field(&message),
            },
            _ => Self::internal(err),
        }
    }
}

/// The full cause chain of an error, for logs.
fn cause_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut chain = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    chain
}

impl ErrorExtensions for AppError {
    fn extend(&self) -> async_graphql::Error {
        let message = match self {
            Self::Internal(cause) => {
                tracing::error!(error = %cause_chain(cause.as_ref()), "internal error");
                "Internal server error".to_owned()
            }
            other => other.to_string(),
        };
        async_graphql::Error::new(message).extend_with(|_, extensions| {
            extensions.set("code", self.code());
            match self {
                Self::BadUserInput { fields, .. } => {
                    let mut map = async_graphql::indexmap::IndexMap::new();
                    for (field, reason) in fields {
                        map.insert(
                            async_graphql::Name::new(field),
                            async_graphql::Value::from(reason.as_str()),
                        );
                    }
                    extensions.set("fields", async_graphql::Value::Object(map));
                }
                Self::Conflict { field } => {
                    extensions.set("field", field.as_str());
                    let mut map = async_graphql::indexmap::IndexMap::new();
                    map.insert(
                        async_graphql::Name::new(field),
                        async_graphql::Value::from("is already taken"),
                    );
                    extensions.set("fields", async_graphql::Value::Object(map));
                }
                Self::RateLimited {
                    retry_after_seconds,
                    ..
                } => extensions.set("retryAfterSeconds", *retry_after_seconds),
                Self::Unavailable(_) => extensions.set("retryAfterSeconds", 1),
                Self::ResponseTooLarge { maximum } => {
                    extensions.set("limit", "responseBytes");
                    extensions.set("maximum", *maximum);
                }
                _ => {}
            }
        })
    }
}

impl AppError {
    /// This error as an error of the whole request (no path, no location), e.g. before execution.
    pub fn to_request_error(&self) -> async_graphql::ServerError {
        let error = ErrorExtensions::extend(self);
        let mut server_error = async_graphql::ServerError::new(error.message, None);
        server_error.extensions = error.extensions;
        server_error
    }
}

/// A request error with `message` and `extensions.code` = `code`.
pub fn request_error(message: impl Into<String>, code: &str) -> async_graphql::ServerError {
    let mut extensions = async_graphql::ErrorExtensionValues::default();
    extensions.set("code", code);
    let mut error = async_graphql::ServerError::new(message, None);
    error.extensions = Some(extensions);
    error
}

/// Results of services and loaders.
pub type AppResult<T> = Result<T, AppError>;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sea_orm::{DbErr, RuntimeErr};

    use super::{AppError, code, is_connection_lost, is_unavailable, noting_lost_connections};

    fn sqlx(err: sea_orm::sqlx::Error) -> DbErr {
        DbErr::Query(RuntimeErr::SqlxError(Arc::new(err)))
    }

    #[test]
    fn an_unreachable_database_is_unavailable_and_a_bad_statement_is_internal() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        for unreachable in [
            DbErr::Conn(RuntimeErr::Internal("refused".into())),
            sqlx(sea_orm::sqlx::Error::Io(refused)),
            sqlx(sea_orm::sqlx::Error::PoolTimedOut),
            sqlx(sea_orm::sqlx::Error::PoolClosed),
        ] {
            assert!(is_unavailable(&unreachable), "{unreachable}");
            assert_eq!(
                AppError::from(unreachable).code(),
                code::SERVICE_UNAVAILABLE
            );
        }
        for fault in [
            DbErr::RecordNotFound("row".into()),
            sqlx(sea_orm::sqlx::Error::RowNotFound),
            DbErr::Custom("bad".into()),
        ] {
            assert!(!is_unavailable(&fault), "{fault}");
            assert_eq!(AppError::from(fault).code(), code::INTERNAL_SERVER_ERROR);
        }
    }

    #[tokio::test]
    async fn a_connection_lost_mid_statement_is_told_apart_from_no_connection_in_time() {
        let dropped = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(is_connection_lost(&sqlx(sea_orm::sqlx::Error::Io(dropped))));
        assert!(is_connection_lost(&sqlx(
            sea_orm::sqlx::Error::WorkerCrashed
        )));
        for not_lost in [
            sqlx(sea_orm::sqlx::Error::PoolTimedOut),
            DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout),
            sqlx(sea_orm::sqlx::Error::RowNotFound),
            DbErr::Custom("bad".into()),
        ] {
            assert!(!is_connection_lost(&not_lost), "{not_lost}");
        }
        // Converting a lost connection's error into the request's error notes it on the task.
        let (_, lost) = noting_lost_connections(async {
            let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
            AppError::from(sqlx(sea_orm::sqlx::Error::Io(reset)))
        })
        .await;
        assert!(lost);
        let (_, lost) = noting_lost_connections(async {
            AppError::from(sqlx(sea_orm::sqlx::Error::PoolTimedOut))
        })
        .await;
        assert!(!lost);
    }
}
