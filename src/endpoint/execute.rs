//! Running one prepared operation: from the response cache when it holds the answer, once for
//! identical concurrent misses, and invalidating what a mutation changed after it commits.

use std::net::IpAddr;

use async_graphql::CacheControl;
use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{ServerError, Variables};

use crate::app::AppState;
use crate::auth::{ClientAddress, Viewer};
use crate::cache::{CachePolicy, CacheStatus, Outcome, ReadTags, ResponseCache, WrittenTags};
use crate::schema;

/// An operation that passed every check and is ready to run.
pub struct Prepared {
    /// The document's text.
    pub query: String,
    /// The parsed document.
    pub document: ExecutableDocument,
    /// The operation to run.
    pub operation_name: Option<String>,
    /// The variables, for execution.
    pub variables: Variables,
    /// The variables as sent (keys sorted), for the cache key.
    pub variables_json: serde_json::Value,
    /// Query or mutation.
    pub operation_type: OperationType,
    /// The requested cost.
    pub cost: u64,
    /// The deprecated fields it selects, with their reasons.
    pub deprecated: Vec<(String, String)>,
}

/// Who sends the operation.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    /// The signed-in user, or nobody.
    pub viewer: Viewer,
    /// The client's address.
    pub address: IpAddr,
}

/// Runs `operation`; `cacheable` is false for the operations of a batch.
pub async fn run(
    state: &AppState,
    operation: &Prepared,
    caller: Caller,
    cacheable: bool,
) -> (Outcome, CacheStatus) {
    let cache = state
        .cache
        .as_deref()
        .filter(|_| cacheable && operation.operation_type == OperationType::Query);
    let Some(cache) = cache else {
        return (
            execute(state, operation, caller, None).await,
            CacheStatus::Bypass,
        );
    };
    let viewer = caller.viewer.user_id();
    let key = ResponseCache::key(
        &operation.query,
        operation.operation_name.as_deref(),
        &operation.variables_json,
    );
    match cache.lookup(&key, viewer).await {
        Ok(Some((data, policy))) => return (hit(data, policy), CacheStatus::Hit),
        Ok(None) => {}
        Err(()) => {
            return (
                execute(state, operation, caller, None).await,
                CacheStatus::Bypass,
            );
        }
    }
    let flight = format!("{key}:{}", viewer.map_or(-1, |id| id));
    cache
        .single_flight(&flight, async {
            // An identical flight may have finished (and stored its answer) since the lookup.
            if let Ok(Some((data, policy))) = cache.lookup(&key, viewer).await {
                return (hit(data, policy), CacheStatus::Hit);
            }
            // Read before executing: a write that commits meanwhile moves it on, and the
            // response (which may predate the write) is then not stored.
            let generation = cache.generation().await;
            let reads = ReadTags::default();
            let outcome = execute(state, operation, caller, Some(reads.clone())).await;
            if let Some(generation) = generation {
                cache
                    .store(&key, viewer, generation, &outcome, reads.0.take())
                    .await;
            }
            (outcome, CacheStatus::Miss)
        })
        .await
}

/// The outcome of a cache hit.
fn hit(data: async_graphql::Value, policy: CachePolicy) -> Outcome {
    Outcome {
        data,
        errors: Vec::new(),
        hints: CacheControl {
            public: policy.public,
            max_age: i32::try_from(policy.max_age).unwrap_or(i32::MAX),
        },
    }
}

/// Executes `operation` with this request's data; after a mutation, invalidates what it changed.
async fn execute(
    state: &AppState,
    operation: &Prepared,
    caller: Caller,
    reads: Option<ReadTags>,
) -> Outcome {
    let mut request =
        async_graphql::Request::new(operation.query.clone()).variables(operation.variables.clone());
    if let Some(name) = &operation.operation_name {
        request = request.operation_name(name);
    }
    request.set_parsed_query(operation.document.clone());
    if !state.introspection {
        request = request.disable_introspection();
    }
    let writes = WrittenTags::default();
    let mut request = schema::with_request_data(request, &state.db, caller.viewer)
        .data(ClientAddress(caller.address))
        .data(writes.clone());
    if let Some(reads) = reads {
        request = request.data(reads);
    }
    let response = state.schema.execute(request).await;
    if let Some(cache) = &state.cache {
        cache.invalidate(&writes.0.take()).await;
    }
    Outcome {
        data: response.data,
        errors: response.errors,
        hints: response.cache_control,
    }
}

/// A response from an outcome.
pub fn response(outcome: Outcome) -> async_graphql::Response {
    let mut response = async_graphql::Response::new(outcome.data);
    response.errors = outcome.errors;
    response.cache_control = outcome.hints;
    response
}

/// A response for an operation that did not run.
pub fn refused(error: ServerError) -> async_graphql::Response {
    async_graphql::Response::from_errors(vec![error])
}
