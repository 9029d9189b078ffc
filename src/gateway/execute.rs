//! The execute stage: from the response cache when it holds the answer (stored bytes, nothing
//! parsed or serialized again), once for identical concurrent misses, and invalidating what a
//! mutation changed after it commits.

use std::sync::Arc;

use async_graphql::ServerError;
use async_graphql::parser::types::OperationType;
use bytes::Bytes;

use super::plan::Planner;
use super::{Caller, Exchange, Gateway, OperationState, Prepared, Transport, cost, serialize};
use crate::cache::{CachePolicy, CacheStatus, CachedResponse, Record, Recorder};
use crate::error;
use crate::graphql::compiled::Fallback;
use crate::graphql::loading;
use crate::graphql::response_size::ResponseMeter;
use crate::schema;

/// What one execution produced; shared with the identical requests that waited for it.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The JSON of the response's `data`.
    pub data: Bytes,
    /// Whether it failed before execution (validation): no `data` entry is written then.
    pub request_error: bool,
    /// The errors.
    pub errors: Arc<Vec<ServerError>>,
    /// How it may be cached: decided by what ran (`None`: not cacheable).
    pub policy: Option<CachePolicy>,
    /// The entity tag of `data`, when it was stored (a hit and its miss share it).
    pub etag: Option<Arc<str>>,
    /// Its actual cost.
    pub actual: u64,
    /// Where it came from.
    pub status: CacheStatus,
    /// Whether it may be stored: not read on a replica behind the latest write.
    pub storable: bool,
    /// Whether a root field answered something other than null (something ran to the end).
    pub produced: bool,
    /// The cache tags it read, sorted, when it ran to be stored (empty otherwise).
    pub tags: Vec<String>,
    /// Whether it ran compiled (see [`crate::compiled`]) rather than through the executor.
    pub compiled: bool,
}

impl Outcome {
    fn hit(response: &CachedResponse) -> Self {
        Self {
            data: response.data.clone(),
            request_error: false,
            errors: Arc::default(),
            policy: Some(response.policy),
            etag: Some(Arc::clone(&response.etag)),
            actual: response.actual_cost,
            status: CacheStatus::Hit,
            storable: false,
            produced: true,
            tags: Vec::new(),
            compiled: false,
        }
    }

    /// The answer of an operation whose response would be larger than `meter` allows, having
    /// requested `requested` and carried `carried` bytes before it stopped.
    fn too_large(meter: &ResponseMeter, requested: u64, carried: usize) -> Self {
        Self {
            data: Bytes::from_static(b"null"),
            request_error: false,
            errors: Arc::new(vec![meter.too_large().to_request_error()]),
            policy: None,
            etag: None,
            actual: requested.saturating_add(cost::byte_cost(carried)),
            status: CacheStatus::Bypass,
            storable: false,
            produced: false,
            tags: Vec::new(),
            compiled: false,
        }
    }
}

/// Whether `response` has an error with `code`.
fn has_code(response: &async_graphql::Response, code: &str) -> bool {
    response.errors.iter().any(|error| {
        matches!(
            error.extensions.as_ref().and_then(|extensions| extensions.get("code")),
            Some(async_graphql::Value::String(found)) if found == code
        )
    })
}

/// Whether an execution failed on the server's side: a statement that could not run, or a
/// database that could not be reached.
fn failed_internally(response: &async_graphql::Response) -> bool {
    use crate::error::code::{INTERNAL_SERVER_ERROR, SERVICE_UNAVAILABLE};
    response.errors.iter().any(|error| {
        matches!(
            error.extensions.as_ref().and_then(|extensions| extensions.get("code")),
            Some(async_graphql::Value::String(code))
                if code == INTERNAL_SERVER_ERROR || code == SERVICE_UNAVAILABLE
        )
    })
}

impl Gateway {
    /// Runs every ready operation of the exchange.
    pub async fn execute(&self, exchange: &mut Exchange, transport: Transport) {
        let cacheable = transport.cacheable && !exchange.batch && exchange.operations.len() == 1;
        // One bound on the bytes of the whole response, every operation of a batch included.
        let meter = Arc::new(ResponseMeter::new(self.max_response_bytes));
        for operation in &mut exchange.operations {
            let state =
                std::mem::replace(&mut operation.state, OperationState::Refused(Vec::new()));
            operation.state = match state {
                OperationState::Ready(mut prepared) => {
                    let outcome = self
                        .run(
                            &prepared,
                            &exchange.caller,
                            cacheable,
                            operation.requested,
                            &meter,
                        )
                        .await;
                    // A persisted query is registered only once it was admitted and validated.
                    if !outcome.request_error
                        && let Some((hash, query)) = prepared.register.take()
                    {
                        self.persisted
                            .register(&exchange.caller.client, &hash, &query)
                            .await;
                    }
                    self.metrics.response(outcome.status);
                    exchange.cache_status = outcome.status;
                    // Only what ran is used: an operation refused as it started ran nothing.
                    let deprecated = if outcome.request_error {
                        Vec::new()
                    } else {
                        self.record_usage(&prepared, &exchange.caller);
                        prepared.deprecated
                    };
                    OperationState::Ran {
                        outcome,
                        query: prepared.operation_type == OperationType::Query,
                        deprecated,
                    }
                }
                other => other,
            };
        }
    }

    /// Counts what an operation that ran used of the schema, for its client (the one a trusted
    /// document's manifest names, or the one the caller says it is), and its deprecated fields
    /// by client.
    pub(super) fn record_usage(&self, prepared: &Prepared, caller: &Caller) {
        let app = prepared.client.as_ref().unwrap_or(&caller.app);
        let admitted = match &self.usage {
            Some(usage) => {
                let admitted = usage.admit(app);
                if let Some(operation) = &prepared.usage {
                    usage.record(operation, &admitted);
                }
                admitted
            }
            // Without the records there is no bound on distinct names: the metric names none.
            None => crate::usage::ClientApp::unknown(),
        };
        for (field, _) in &prepared.deprecated {
            self.metrics.deprecated_field_used_by(field, &admitted.name);
        }
    }

    /// Runs one operation (or answers it from the cache), within what `meter` lets the response
    /// carry.
    async fn run(
        &self,
        prepared: &Prepared,
        caller: &Caller,
        cacheable: bool,
        requested: u64,
        meter: &Arc<ResponseMeter>,
    ) -> Outcome {
        let outcome = self
            .run_or_hit(prepared, caller, cacheable, requested, meter)
            .await;
        if outcome.errors.is_empty() && !meter.settle(outcome.data.len()) {
            return Outcome::too_large(meter, requested, outcome.data.len());
        }
        outcome
    }

    async fn run_or_hit(
        &self,
        prepared: &Prepared,
        caller: &Caller,
        cacheable: bool,
        requested: u64,
        meter: &Arc<ResponseMeter>,
    ) -> Outcome {
        let key = prepared.cache_key.as_ref().filter(|_| cacheable);
        let (Some(cache), Some(key)) = (self.cache.as_ref(), key) else {
            return self.bypass(prepared, caller, requested, meter).await;
        };
        let viewer = caller.viewer.user_id();
        match cache.lookup(key, viewer).await {
            Ok(Some(response)) => return Outcome::hit(&response),
            Ok(None) => {}
            Err(()) => return self.bypass(prepared, caller, requested, meter).await,
        }
        let flight = format!("{}:{}", key.0, viewer.map_or(-1, |id| id));
        let (mut outcome, ran) = cache
            .single_flight(&flight, async {
                // An identical flight may have finished (and stored its answer) since the lookup.
                if let Ok(Some(response)) = cache.lookup(key, viewer).await {
                    return Outcome::hit(&response);
                }
                // Read before executing: a write that commits meanwhile moves it on, and the
                // response (which may predate the write) is then not stored.
                let generation = cache.generation().await;
                let record = Recorder(Arc::new(Record::storable()));
                let mut outcome = self
                    .execute_once(prepared, caller, requested, Some(record.clone()), meter)
                    .await;
                let fits = outcome.data.len() <= self.max_response_bytes;
                let mut tags = record.0.take_reads();
                tags.sort_unstable();
                outcome.tags = tags;
                if let (Some(generation), Some(policy), true, true) =
                    (generation, outcome.policy, outcome.storable, fits)
                {
                    let response = Arc::new(CachedResponse::new(
                        policy,
                        outcome.data.clone(),
                        outcome.actual,
                    ));
                    outcome.etag = Some(Arc::clone(&response.etag));
                    self.metrics.cache_stored(response.data.len());
                    cache
                        .store(key, viewer, generation, response, outcome.tags.clone())
                        .await;
                }
                outcome
            })
            .await;
        if !ran {
            outcome.status = CacheStatus::Hit;
        }
        outcome
    }

    /// Executes `prepared` without the cache.
    async fn bypass(
        &self,
        prepared: &Prepared,
        caller: &Caller,
        requested: u64,
        meter: &Arc<ResponseMeter>,
    ) -> Outcome {
        let mut outcome = self
            .execute_once(prepared, caller, requested, None, meter)
            .await;
        outcome.status = CacheStatus::Bypass;
        outcome
    }

    /// The async-graphql request that runs `prepared` for `caller`, with the caller's data and
    /// loaders; it must run under [`loading::drive`] with the returned queue.
    pub(super) fn request_for(
        &self,
        prepared: &Prepared,
        caller: &Caller,
        db: &sea_orm::DatabaseConnection,
        meter: &Arc<ResponseMeter>,
    ) -> (async_graphql::Request, loading::BatchQueue) {
        let mut request =
            async_graphql::Request::new(String::new()).variables(prepared.variables.clone());
        if let Some(name) = &prepared.operation_name {
            request = request.operation_name(name);
        }
        request.set_parsed_query(prepared.document.as_ref().clone());
        if !self.introspection {
            request = request.disable_introspection();
        }
        // Resolvers read `db` (the request's data comes before the schema's).
        let (request, batches) = schema::with_request_data(request, db, caller.viewer);
        (
            request
                .data(caller.address)
                .data(db.clone())
                .data(Arc::clone(meter)),
            batches,
        )
    }

    /// The outcome of a compiled run: what the executor would have recorded, recorded.
    async fn compiled_outcome(
        &self,
        prepared: &Prepared,
        recorder: &Recorder,
        route: Option<&crate::replicas::Route>,
        ran: crate::compiled::Ran,
        requested: u64,
    ) -> Outcome {
        let record: &Record = &recorder.0;
        for tag in ran.tags {
            record.read(tag);
        }
        if ran.private {
            record.mark_private();
        }
        let storable = match (&self.replicas, route) {
            (Some(replicas), Some(route)) if record.reads.is_some() => {
                replicas.storable(route).await
            }
            _ => true,
        };
        let policy = CachePolicy::decide(
            prepared.hint.max_age,
            prepared.hint.public,
            record.is_private(),
        );
        let actual = ran
            .cost
            .min(requested)
            .saturating_add(cost::byte_cost(ran.data.len()));
        Outcome {
            data: Bytes::from(ran.data),
            request_error: false,
            errors: Arc::default(),
            policy,
            etag: None,
            actual,
            status: CacheStatus::Miss,
            storable,
            produced: ran.produced,
            tags: Vec::new(),
            compiled: true,
        }
    }

    /// Executes `prepared` with this request's data; after a mutation, invalidates what it
    /// changed (to the end, even if the client goes away).
    async fn execute_once(
        &self,
        prepared: &Prepared,
        caller: &Caller,
        requested: u64,
        recorder: Option<Recorder>,
        meter: &Arc<ResponseMeter>,
    ) -> Outcome {
        let recorder = recorder.unwrap_or_default();
        // A query may read on a replica that has replayed the viewer's writes.
        let route = match (&self.replicas, prepared.operation_type) {
            (Some(replicas), OperationType::Query) => {
                Some(replicas.route(caller.viewer.user_id()).await)
            }
            _ => None,
        };
        let mut db = route.as_ref().map_or(&self.db, |route| &route.db);
        let on_replica = route.as_ref().is_some_and(|route| route.on_replica());
        // Whether the read already ran once more on the primary after a lost connection.
        let mut retried = false;
        // Compiled when it compiles; a sampled trace runs through the executor, so that it shows
        // each resolver.
        if let Some(program) = prepared
            .compiled
            .as_ref()
            .filter(|_| !crate::telemetry::sampled())
        {
            let viewer = caller.viewer.user_id();
            // Boxed, like the executor below: each path's future is large, and the request's own
            // future stays small when neither lives in it (one allocation instead of copying
            // tens of kilobytes at every await).
            let (ran, connection_lost) = error::noting_lost_connections(Box::pin(
                crate::compiled::run(program, db, viewer, meter.remaining()),
            ))
            .await;
            match ran {
                Ok(ran) => {
                    self.metrics.execution("compiled");
                    return self
                        .compiled_outcome(prepared, &recorder, route.as_ref(), ran, requested)
                        .await;
                }
                Err(Fallback::Fetch(_)) if on_replica || connection_lost => {
                    // The executor runs it once more, on the primary (as it would retry itself).
                    match (&self.replicas, &route) {
                        (Some(replicas), Some(route)) if on_replica => replicas.failed(route),
                        _ => self.metrics.read_retried(),
                    }
                    db = &self.db;
                    retried = true;
                }
                Err(fallback) => {
                    tracing::debug!(reason = %fallback, "the query runs through the executor");
                }
            }
        }
        self.metrics.execution("executor");
        let (request, batches) = self.request_for(prepared, caller, db, meter);
        let request = request.data(recorder.clone());
        let (mut response, connection_lost) = error::noting_lost_connections(Box::pin(
            loading::drive(self.schema.execute(request), batches),
        ))
        .await;
        let on_replica = on_replica && !retried;
        if prepared.operation_type == OperationType::Query
            && !retried
            && (on_replica || connection_lost)
            && failed_internally(&response)
        {
            // Once more, on the primary: the replica went away since the last poll, or a
            // statement's connection broke under it (a restarted server, a cut connection).
            match (&self.replicas, &route) {
                (Some(replicas), Some(route)) if on_replica => replicas.failed(route),
                _ => self.metrics.read_retried(),
            }
            let (request, batches) = self.request_for(prepared, caller, &self.db, meter);
            let request = request.data(recorder.clone());
            response = Box::pin(loading::drive(self.schema.execute(request), batches)).await;
        }
        let storable = match (&self.replicas, &route) {
            (Some(replicas), Some(route)) if recorder.0.reads.is_some() => {
                replicas.storable(route).await
            }
            _ => true,
        };
        // What the mutation wrote after it committed: stale cache entries, and news for
        // subscribers.
        // Published first: it does not wait, so a request cancelled during the invalidation
        // cannot lose it.
        let written = recorder.0.writes.take();
        if !written.is_empty() {
            // The write's position is known before its invalidation: no answer read on a replica
            // that has not replayed it is stored after.
            if let Some(replicas) = &self.replicas {
                replicas.written(caller.viewer.user_id()).await;
            }
            self.changes
                .publish(written.clone(), recorder.0.created.take());
            if let Some(cache) = &self.cache {
                cache.invalidate(written).await;
            }
        }
        if has_code(&response, error::code::RESPONSE_TOO_LARGE) {
            // Stopped as it crossed the bound: what it resolved is dropped unserialized.
            return Outcome::too_large(meter, requested, meter.resolving());
        }
        let record: &Record = &recorder.0;
        let request_error = matches!(response.data, async_graphql::Value::Null)
            && !response.errors.is_empty()
            && response.errors.iter().all(|error| error.path.is_empty());
        let field_errors = response.errors.iter().any(|error| !error.path.is_empty());
        let policy = (prepared.operation_type == OperationType::Query
            && response.errors.is_empty())
        .then(|| {
            CachePolicy::decide(
                prepared.hint.max_age,
                prepared.hint.public,
                record.is_private(),
            )
        })
        .flatten();
        // The plan of what ran orders the data and measures what it cost.
        let (data, actual) =
            match Planner::new(&prepared.document, &prepared.variables, &self.schema_info)
                .plan(prepared.operation_name.as_deref())
            {
                Ok(plan) => {
                    let actual = if request_error {
                        0
                    } else if field_errors {
                        // Work may have been done before the failure that the response no longer
                        // shows.
                        requested
                    } else {
                        cost::actual_cost(&plan, &self.schema_info, &response.data, requested)
                    };
                    (serialize::data_json(&plan, &response.data), actual)
                }
                Err(_) => (
                    serde_json::to_vec(&response.data).unwrap_or_else(|_| b"null".to_vec()),
                    if request_error { 0 } else { requested },
                ),
            };
        let produced = matches!(&response.data, async_graphql::Value::Object(fields)
            if fields.values().any(|value| !matches!(value, async_graphql::Value::Null)));
        // What the answer carries is paid for too.
        let actual = if request_error {
            actual
        } else {
            actual.saturating_add(cost::byte_cost(data.len()))
        };
        let data = Bytes::from(data);
        Outcome {
            data,
            request_error,
            errors: Arc::new(response.errors),
            policy,
            etag: None,
            actual,
            status: CacheStatus::Miss,
            storable,
            produced,
            tags: Vec::new(),
            compiled: false,
        }
    }
}
