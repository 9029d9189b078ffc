//! The value that flows through the stages: who asks, what they asked, and where each operation
//! stands.

use std::sync::Arc;

use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{ServerError, Variables};
use bytes::Bytes;

use super::execute::Outcome;
use crate::auth::{ClientAddress, Viewer};
use crate::buckets::Decision;
use crate::cache::{CacheKey, CachePolicy, CacheStatus};
use crate::usage::{ClientApp, OperationUsage};

/// One operation as a transport read it.
#[derive(Debug, Clone, Default)]
pub struct RawOperation {
    /// The document (empty when only a persisted query hash is sent).
    pub query: String,
    /// The operation to run, when the document has several.
    pub operation_name: Option<String>,
    /// The variables (a JSON object).
    pub variables: serde_json::Map<String, serde_json::Value>,
    /// Persisted query hash and version.
    pub persisted: super::persisted::PersistedRequest,
}

/// What the transport allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transport {
    /// Whether mutations may be sent this way (not over `GET`).
    pub mutations: bool,
    /// Whether answers may come from, and go to, the response cache.
    pub cacheable: bool,
    /// Whether subscriptions may be sent this way (a WebSocket or an event stream).
    pub subscriptions: bool,
}

/// Who sends the operations.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The signed-in user, or nobody.
    pub viewer: Viewer,
    /// The client's address, as a bucket.
    pub address: ClientAddress,
    /// The client whose budget pays: the user when signed in, the address otherwise.
    pub client: String,
    /// The client application it says it is (`apollographql-client-name` and version).
    pub app: ClientApp,
}

impl Caller {
    /// The caller `viewer` at `address`.
    pub fn new(viewer: Viewer, address: ClientAddress) -> Self {
        let client = match viewer.user_id() {
            Some(user_id) => format!("user:{user_id}"),
            None => format!("address:{address}"),
        };
        Self {
            viewer,
            address,
            client,
            app: ClientApp::unknown(),
        }
    }

    /// The same caller, saying it is the client application `app`.
    pub fn with_app(mut self, app: ClientApp) -> Self {
        self.app = app;
        self
    }
}

/// An operation that passed every check, ready to run.
#[derive(Debug)]
pub struct Prepared {
    /// The document that runs (the sent one, or its rewritten form).
    pub document: Arc<ExecutableDocument>,
    /// The operation to run.
    pub operation_name: Option<String>,
    /// The variables, with the defaults of those not sent.
    pub variables: Variables,
    /// Query or mutation.
    pub operation_type: OperationType,
    /// The deprecated fields it selects, with their reasons.
    pub deprecated: Vec<(String, String)>,
    /// Its key in the response cache (queries).
    pub cache_key: Option<CacheKey>,
    /// The cache hints of everything it selects, merged.
    pub hint: super::schema_info::Hint,
    /// A persisted query to register once admitted: (hash, document).
    pub register: Option<(String, String)>,
    /// Its compiled form, when every field it selects compiles (queries only).
    pub compiled: Option<Arc<crate::compiled::Program>>,
    /// What it uses of the schema, for the usage records (when they are kept).
    pub usage: Option<Arc<OperationUsage>>,
    /// The client a trusted document's manifest names (it overrides what the caller says).
    pub client: Option<ClientApp>,
}

/// Where one operation stands.
#[derive(Debug)]
pub enum OperationState {
    /// Refused before running, with these errors.
    Refused(Vec<ServerError>),
    /// Ready to run.
    Ready(Box<Prepared>),
    /// Ran (or was answered from the cache).
    Ran {
        /// What it produced.
        outcome: Outcome,
        /// The deprecated fields it selected.
        deprecated: Vec<(String, String)>,
        /// Whether it was a query.
        query: bool,
    },
}

/// One operation of the exchange.
#[derive(Debug)]
pub struct Operation {
    /// The cost it requested (0 when it could not be priced).
    pub requested: u64,
    /// What preparing its document cost (a large document the server did not know), charged
    /// before it was parsed and never given back.
    pub preparation: u64,
    /// Where it stands.
    pub state: OperationState,
}

impl Operation {
    /// An operation refused with `error`, having requested `requested`.
    pub fn refused(error: ServerError, requested: u64) -> Self {
        Self {
            requested,
            preparation: 0,
            state: OperationState::Refused(vec![error]),
        }
    }

    /// The same operation, its preparation having cost `preparation`.
    pub fn with_preparation(mut self, preparation: u64) -> Self {
        self.preparation = preparation;
        self
    }
}

/// One request's operations on their way through the stages.
#[derive(Debug)]
pub struct Exchange {
    /// Who asks.
    pub caller: Caller,
    /// Whether the operations came as a batch (the answer is a list then).
    pub batch: bool,
    /// The operations, in the order sent.
    pub operations: Vec<Operation>,
    /// The client's budget after the last charge (none when rate limiting is off).
    pub throttle: Option<Decision>,
    /// Where the answer came from.
    pub cache_status: CacheStatus,
}

impl Exchange {
    /// A new exchange for `caller`.
    pub fn new(caller: Caller, batch: bool, operations: Vec<Operation>) -> Self {
        Self {
            caller,
            batch,
            operations,
            throttle: None,
            cache_status: CacheStatus::Bypass,
        }
    }

    /// The total cost of the operations that run (or ran): what the budget is charged. An
    /// operation refused while being prepared runs nothing and is not charged.
    pub fn charged(&self) -> u64 {
        self.operations
            .iter()
            .filter(|operation| !matches!(operation.state, OperationState::Refused(_)))
            .fold(0u64, |sum, operation| {
                sum.saturating_add(operation.requested)
            })
    }
}

/// One operation's answer, ready to be written.
#[derive(Debug)]
pub struct Answer {
    /// The JSON of `data`; `None` for a request that failed before execution (no `data` entry).
    pub data: Option<Bytes>,
    /// The errors, each with its `extensions.code`.
    pub errors: Vec<ServerError>,
    /// `extensions`: the cost report, and the deprecated fields used.
    pub extensions: async_graphql::Value,
}

/// The settled exchange: what the transport writes.
#[derive(Debug)]
pub struct Settled {
    /// The answers, in the order of the operations.
    pub answers: Vec<Answer>,
    /// Whether the answer is a list.
    pub batch: bool,
    /// The client's budget after the refund.
    pub throttle: Option<Decision>,
    /// Where the answer came from.
    pub cache_status: CacheStatus,
    /// The deprecated fields (`Type.field`) the operations that ran used.
    pub deprecated: Vec<String>,
    /// How the answer may be cached (`None`: not at all).
    pub policy: Option<CachePolicy>,
    /// The entity tag of the single answer's data, when cacheable.
    pub etag: Option<Arc<str>>,
    /// Seconds to wait, when the budget refused the request.
    pub retry_after: Option<u64>,
    /// Whether an operation failed because the database could not be reached (or the server was
    /// saturated): answered 503 with `Retry-After`.
    pub unavailable: bool,
    /// Whether the single operation was a query.
    pub query: bool,
    /// Whether any operation ran to an answer (a root field other than null): such a request
    /// is never answered 429, whatever else was refused (a client retrying would run it twice).
    pub produced: bool,
}
