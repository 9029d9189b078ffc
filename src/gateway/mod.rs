//! Request admission, shared by every transport: the staged pipeline that every GraphQL operation
//! passes, whether it came over HTTP, a WebSocket or Server-Sent Events.
//!
//! ```text
//! read (transport) -> authenticate -> prepare -> admit -> execute -> settle -> respond (transport)
//! ```
//!
//! - **authenticate** ([`Gateway::authenticate`]): the viewer from the token (revoked or invalid
//!   tokens are UNAUTHENTICATED), the client whose budget pays.
//! - **prepare** ([`Gateway::prepare`]): persisted or trusted document lookup, size and token
//!   scan, parse once, document checks, *FieldsInSetCanMerge*, the plan of what will run,
//!   pricing and limits on that plan, validation of the sent document when a rewritten one runs.
//! - **admit** ([`Gateway::admit`]): the batch's requested cost taken from the client's budget;
//!   nothing is registered or run before this.
//! - **execute** ([`Gateway::execute`]): a cache hit answers stored bytes; a miss runs the
//!   resolvers, recording the tags read and whether anything private ran.
//! - **settle** ([`Gateway::settle`]): actual cost, refund, `extensions`, error codes.
//!
//! One [`Exchange`] carries the caller, the budget and the operations through the stages.
//! Streaming transports hand each operation to [`Gateway::stream`]: the same stages, then a
//! subscription opens and runs again for each change that concerns it (see `subscribe`).

mod admit;
mod authenticate;
pub mod cost;
pub mod document;
mod exchange;
mod execute;
pub mod limits;
pub mod merge;
pub mod persisted;
pub mod plan;
mod prepare;
pub mod schema_info;
mod serialize;
mod settle;
mod subscribe;
pub mod usage;

use std::sync::Arc;

pub use self::admit::Budget;
pub use self::exchange::{
    Answer, Caller, Exchange, Operation, OperationState, Prepared, RawOperation, Settled, Transport,
};
pub use self::execute::Outcome;
pub use self::prepare::{DocumentCache, Rejection};
pub use self::subscribe::{CloseReason, Delivery, Subscriber, expiry, refusal};

use crate::auth::{Revocations, Tokens};
use crate::cache::ResponseCache;
use crate::changes::ChangeFeed;
use crate::metrics::Metrics;
use crate::schema::AppSchema;
use sea_orm::DatabaseConnection;

use self::limits::Limits;
use self::persisted::PersistedQueries;
use self::schema_info::SchemaInfo;

/// Everything the pipeline needs, shared by all requests.
pub struct Gateway {
    /// The schema operations run on.
    pub schema: AppSchema,
    /// The same schema, validating only (see [`crate::schema::validator`]).
    pub validator: AppSchema,
    /// What planning knows of the schema.
    pub schema_info: SchemaInfo,
    /// The static limits on one operation.
    pub limits: Limits,
    /// Automatic persisted queries and trusted documents.
    pub persisted: PersistedQueries,
    /// Each client's cost budget; `None` when rate limiting is off.
    pub budget: Option<Budget>,
    /// The response cache, unless turned off.
    pub cache: Option<Arc<ResponseCache>>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Verifies tokens.
    pub tokens: Tokens,
    /// What this instance knows of revoked tokens.
    pub revocations: Revocations,
    /// The database pool (for the per-request loaders).
    pub db: DatabaseConnection,
    /// Whether introspection is allowed.
    pub introspection: bool,
    /// Documents already parsed, checked and validated.
    pub documents: DocumentCache,
    /// What committed mutations changed, for subscriptions.
    pub changes: Arc<ChangeFeed>,
    /// GraphQL executions running now, over every transport: one permit each (HTTP takes its
    /// own once the body is read; streaming transports take one per operation and per event).
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// The longest time one execution over a streaming transport may take (HTTP has its
    /// request timeout).
    pub execution_timeout: std::time::Duration,
    /// Read replicas, when configured: queries may read there.
    pub replicas: Option<Arc<crate::replicas::Replicas>>,
    /// The most bytes one response carries (the data of every operation of a batch).
    pub max_response_bytes: usize,
    /// Whether queries whose fields compile run compiled (see [`crate::compiled`]).
    pub compiled_reads: bool,
    /// The schema usage records, unless turned off.
    pub usage: Option<Arc<crate::usage::Usage>>,
    /// When deprecated fields were deprecated and go: the `Deprecation` and `Sunset` headers.
    pub deprecation_dates: crate::usage::DeprecationDates,
}
