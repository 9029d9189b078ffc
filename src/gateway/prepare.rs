//! The prepare stage: from what a client sent to an operation that is known to run within the
//! limits, priced as it will execute, before any resolver runs or any budget is charged.

use std::sync::Arc;

use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{ServerError, Variables};
use moka::sync::Cache;

use super::document::{self, ReduceError};
use super::limits::{self, LimitError};
use super::merge::{self, MergeError};
use super::persisted::PersistedError;
use super::plan::{self, Planner};
use super::{Caller, Gateway, Operation, OperationState, Prepared, RawOperation, Transport, cost};
use crate::cache::CacheKey;
use crate::error::{AppError, code, request_error};

/// The longest variables (as JSON) whose validation is remembered.
const MAX_REMEMBERED_VARIABLES: usize = 1024;

/// A document parsed, reduced to its operation and checked for one operation name.
pub struct CheckedDocument {
    key: String,
    /// The operation's signature for the usage records.
    signature: String,
    document: Arc<ExecutableDocument>,
    operation_type: OperationType,
    /// Bytes it holds (its key and its parsed form).
    weight: u32,
}

/// Documents already parsed, checked and validated, and (document, variables) pairs already
/// planned, priced and validated: the work a document sent again (as clients do) is spared. Both
/// bounded in bytes, each entry weighed by what it holds; only documents that passed validation
/// are kept (a refused one is never sent again by a well-behaved client).
pub struct DocumentCache {
    checked: Cache<String, Arc<CheckedDocument>>,
    planned: Cache<String, Arc<Planned>>,
}

impl DocumentCache {
    /// Caches holding about `max_bytes` of documents in all.
    pub fn new(max_bytes: u64) -> Self {
        Self {
            checked: Cache::builder()
                .max_capacity(max_bytes / 2)
                .weigher(|_: &String, checked: &Arc<CheckedDocument>| checked.weight)
                .build(),
            planned: Cache::builder()
                .max_capacity(max_bytes / 2)
                .weigher(|_: &String, planned: &Arc<Planned>| planned.weight)
                .build(),
        }
    }

    /// The bytes the cached documents hold, by the cache's weights (for tests and metrics).
    pub fn weighted_size(&self) -> u64 {
        self.checked.run_pending_tasks();
        self.planned.run_pending_tasks();
        self.checked.weighted_size() + self.planned.weighted_size()
    }
}

fn unknown_operation(operation_name: Option<&str>) -> Operation {
    let error = ReduceError::UnknownOperation(operation_name.map(str::to_owned));
    Operation::refused(
        request_error(error.to_string(), code::GRAPHQL_VALIDATION_FAILED),
        0,
    )
}

/// A request the transport must refuse as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// A mutation sent over a transport that does not carry them (`GET`).
    #[error("Mutations must be sent with POST")]
    MutationNotAllowed,
}

impl From<LimitError> for Operation {
    fn from(err: LimitError) -> Self {
        let requested = match &err {
            LimitError::TooComplex {
                limit: "cost",
                actual,
                ..
            } => *actual,
            _ => 0,
        };
        Operation::refused(err.to_server_error(), requested)
    }
}

fn persisted_error(err: &PersistedError) -> ServerError {
    let code = match err {
        PersistedError::NotFound => code::PERSISTED_QUERY_NOT_FOUND,
        PersistedError::NotTrusted => code::OPERATION_NOT_TRUSTED,
        PersistedError::HashMismatch | PersistedError::UnsupportedVersion => code::BAD_REQUEST,
    };
    request_error(err.to_string(), code)
}

impl Gateway {
    /// Prepares one operation sent by `caller`: an operation ready to run, or refused with its
    /// error; or a rejection of the whole request by the transport's rules. A large document the
    /// server does not know yet costs its preparation before it is parsed (see
    /// [`cost::preparation_cost`]).
    pub async fn prepare(
        &self,
        raw: RawOperation,
        transport: Transport,
        caller: &Caller,
    ) -> Result<Operation, Rejection> {
        let resolved = match self.persisted.resolve(raw.query, &raw.persisted).await {
            Ok(resolved) => resolved,
            Err(err) => return Ok(Operation::refused(persisted_error(&err), 0)),
        };
        let operation_name = raw.operation_name;
        let key = format!(
            "{}\u{0}{}",
            operation_name.as_deref().unwrap_or_default(),
            resolved.query
        );
        let mut preparation = 0;
        let (checked, fresh) = match self.documents.checked.get(&key) {
            Some(checked) => (checked, false),
            None => {
                let tokens = match limits::scan_document(&resolved.query, &self.limits) {
                    Ok(tokens) => tokens,
                    Err(err) => return Ok(err.into()),
                };
                preparation = cost::preparation_cost(tokens);
                if let Some(refused) = self.charge_preparation(caller, preparation).await {
                    return Ok(refused);
                }
                match self.check(&resolved.query, key, operation_name.as_deref()) {
                    Ok(checked) => (Arc::new(checked), true),
                    Err(refused) => return Ok(refused.with_preparation(preparation)),
                }
            }
        };
        if checked.operation_type == OperationType::Mutation && !transport.mutations {
            return Err(Rejection::MutationNotAllowed);
        }
        if checked.operation_type == OperationType::Subscription && !transport.subscriptions {
            return Ok(Operation::refused(
                request_error(
                    "Subscriptions are served over a WebSocket (graphql-transport-ws) or as Server-Sent Events (POST with Accept: text/event-stream) on /graphql",
                    code::BAD_REQUEST,
                ),
                0,
            )
            .with_preparation(preparation));
        }
        let variables_json = serde_json::Value::Object(raw.variables);
        let variables_text = variables_json.to_string();
        // What depends on the variables too is remembered for small variable sets (large ones,
        // a body being written, rarely repeat and would only fill the cache).
        let remembered = (checked.operation_type == OperationType::Query
            && variables_text.len() <= MAX_REMEMBERED_VARIABLES)
            .then(|| format!("{}\u{0}{variables_text}", checked.key));
        let planned = match remembered
            .as_ref()
            .and_then(|key| self.documents.planned.get(key))
        {
            Some(planned) => planned,
            None => {
                let mut planned = match self
                    .plan_validated(&checked, variables_json, operation_name.as_deref())
                    .await
                {
                    Ok(planned) => planned,
                    Err(refused) => return Ok(refused.with_preparation(preparation)),
                };
                // Only a document that passed validation is remembered.
                if fresh {
                    self.documents
                        .checked
                        .insert(checked.key.clone(), Arc::clone(&checked));
                }
                if let Some(key) = &remembered {
                    planned.weight = planned.weight.saturating_add(weight_of(key.len()));
                }
                let planned = Arc::new(planned);
                if let Some(key) = remembered {
                    self.documents.planned.insert(key, Arc::clone(&planned));
                }
                planned
            }
        };
        let register = resolved.register.map(|hash| (hash, resolved.query));
        let client = resolved.client;
        Ok(Operation {
            requested: planned.requested,
            preparation,
            state: OperationState::Ready(Box::new(Prepared {
                document: Arc::clone(&planned.document),
                operation_name,
                variables: planned.variables.clone(),
                operation_type: checked.operation_type,
                deprecated: planned.deprecated.clone(),
                cache_key: planned.cache_key.clone(),
                hint: planned.hint,
                register,
                compiled: planned.compiled.clone(),
                usage: planned.usage.clone(),
                client,
            })),
        })
    }

    /// Takes `preparation` points from `caller`'s budget before a document is parsed; the
    /// refusal when the budget does not hold them.
    async fn charge_preparation(&self, caller: &Caller, preparation: u64) -> Option<Operation> {
        if preparation == 0 {
            return None;
        }
        let decision = self.charge(&caller.client, preparation as f64).await?;
        if decision.allowed {
            return None;
        }
        self.metrics.rate_limited();
        let error = AppError::RateLimited {
            message: format!(
                "Rate limited: preparing this document costs {preparation} points and {} are available",
                decision.remaining.max(0.0).floor()
            ),
            retry_after_seconds: decision.retry_after_seconds(preparation as f64),
        }
        .to_request_error();
        Some(Operation::refused(error, 0))
    }

    /// Plans and prices the checked document with `variables`, checks the limits on what will
    /// run, and validates the document (the executing schema then skips what this validation
    /// did).
    async fn plan_validated(
        &self,
        checked: &CheckedDocument,
        variables: serde_json::Value,
        operation_name: Option<&str>,
    ) -> Result<Planned, Box<Operation>> {
        let document = &checked.document;
        let Some((_, operation)) = plan::select_operation(document, operation_name) else {
            return Err(Box::new(unknown_operation(operation_name)));
        };
        let variables = plan::coerce_variables(&operation.node, Variables::from_json(variables));
        if let Err(message) = plan::required_variables(&operation.node, &variables) {
            return Err(Box::new(Operation::refused(
                request_error(message, code::GRAPHQL_VALIDATION_FAILED),
                0,
            )));
        }
        let planned =
            self.plan_and_price(document, variables, operation_name, &checked.signature)?;
        let errors = self
            .validate(
                document.as_ref().clone(),
                &planned.variables,
                operation_name,
            )
            .await;
        if !errors.is_empty() {
            return Err(Box::new(Operation {
                requested: 0,
                preparation: 0,
                state: OperationState::Refused(errors),
            }));
        }
        Ok(planned)
    }

    /// The document `query` parsed, reduced to the operation `operation_name` selects and
    /// checked (document limits, *FieldsInSetCanMerge*); none of it depends on the variables.
    /// The size, tokens and nesting were scanned before.
    fn check(
        &self,
        query: &str,
        key: String,
        operation_name: Option<&str>,
    ) -> Result<CheckedDocument, Box<Operation>> {
        let document = async_graphql::parser::parse_query(query).map_err(|err| {
            let mut error = ServerError::from(err);
            error.extensions = request_error("", code::GRAPHQL_PARSE_FAILED).extensions;
            Box::new(Operation::refused(error, 0))
        })?;
        let document = document::reduce(document, operation_name).map_err(|err| {
            let mut error = request_error(err.to_string(), code::GRAPHQL_VALIDATION_FAILED);
            if let ReduceError::UnusedFragment(_, position) = err {
                error.locations = vec![position];
            }
            Box::new(Operation::refused(error, 0))
        })?;
        let Some((_, operation)) = plan::select_operation(&document, operation_name) else {
            return Err(Box::new(unknown_operation(operation_name)));
        };
        let operation_type = operation.node.ty;
        let selection_set = &operation.node.selection_set.node;
        limits::check_document(&document, selection_set, &self.limits)
            .map_err(|err| Box::new(Operation::from(err)))?;
        let root = match operation_type {
            OperationType::Query => &self.schema_info.query,
            OperationType::Mutation => &self.schema_info.mutation,
            OperationType::Subscription => &self.schema_info.subscription,
        };
        match merge::check(&document, root, selection_set, &self.schema_info) {
            Ok(()) => {}
            Err(MergeError::Conflict(conflict)) => {
                let mut error = request_error(conflict.message, code::GRAPHQL_VALIDATION_FAILED);
                error.locations = conflict.positions;
                return Err(Box::new(Operation::refused(error, 0)));
            }
            Err(MergeError::TooComplex) => {
                return Err(Box::new(
                    LimitError::too_complex(
                        "fields",
                        "The work to check the document",
                        self.limits.max_fields as u64,
                        self.limits.max_fields as u64 + 1,
                    )
                    .into(),
                ));
            }
        }
        let weight = weight_of(key.len().saturating_add(document::heap_size(&document)));
        let signature = super::usage::signature(query, operation_name);
        Ok(CheckedDocument {
            key,
            signature,
            document: Arc::new(document),
            operation_type,
            weight,
        })
    }

    /// Plans the operation, prices it and checks the limits on what will run.
    fn plan_and_price(
        &self,
        document: &Arc<ExecutableDocument>,
        variables: Variables,
        operation_name: Option<&str>,
        signature: &str,
    ) -> Result<Planned, Box<Operation>> {
        let plan = Planner::new(document, &variables, &self.schema_info)
            .plan(operation_name)
            .map_err(|_| {
                Box::new(Operation::refused(
                    request_error(
                        "The operation cannot be selected",
                        code::GRAPHQL_VALIDATION_FAILED,
                    ),
                    0,
                ))
            })?;
        if let Some(argument) = plan::text_with_nul(&plan, &variables) {
            return Err(Box::new(Operation::refused(
                AppError::invalid(&argument, "must not contain the NUL character (U+0000)")
                    .to_request_error(),
                0,
            )));
        }
        let measures = cost::measure(&plan, &variables, &self.schema_info)
            .map_err(|err| Box::new(Operation::from(err)))?;
        if plan.operation.ty == OperationType::Subscription && measures.root_fields != 1 {
            return Err(Box::new(Operation::refused(
                request_error(
                    "A subscription selects exactly one root field",
                    code::GRAPHQL_VALIDATION_FAILED,
                ),
                0,
            )));
        }
        let limits = &self.limits;
        let exceeded = if measures.depth > limits.max_depth {
            Some(LimitError::too_deep(
                "depth",
                "The query's depth",
                limits.max_depth,
                measures.depth,
            ))
        } else if measures.root_fields > limits.max_root_fields {
            Some(LimitError::too_complex(
                "rootFields",
                "The number of root fields",
                limits.max_root_fields as u64,
                measures.root_fields as u64,
            ))
        } else if measures.aliases > limits.max_aliases {
            Some(LimitError::too_complex(
                "aliases",
                "The number of aliases",
                limits.max_aliases as u64,
                measures.aliases as u64,
            ))
        } else if measures.requested > limits.max_cost {
            Some(LimitError::too_complex(
                "cost",
                "The query's cost",
                limits.max_cost,
                measures.requested,
            ))
        } else {
            None
        };
        if let Some(err) = exceeded {
            return Err(Box::new(err.into()));
        }
        if measures.introspection && !self.introspection {
            return Err(Box::new(Operation::refused(
                request_error(
                    "Introspection is disabled on this server",
                    code::GRAPHQL_VALIDATION_FAILED,
                ),
                0,
            )));
        }
        // Nothing to cache without a hint: no key, no lookup.
        let cache_key = (plan.operation.ty == OperationType::Query && measures.hint.max_age > 0)
            .then(|| CacheKey::of(&plan.canonical(&variables)));
        let rewritten = plan.needs_rewrite().then(|| plan.rewrite());
        // Compiled once per document and variables, when every field compiles.
        let compiled = (self.compiled_reads && plan.operation.ty == OperationType::Query)
            .then(|| crate::compiled::compile(&plan.selected(&variables)).ok())
            .flatten()
            .map(Arc::new);
        let usage = self.usage.as_ref().map(|_| {
            Arc::new(super::usage::operation_usage(
                &plan,
                &variables,
                &self.schema_info,
                signature,
            ))
        });
        drop(plan);
        let weight = weight_of(
            rewritten
                .as_ref()
                .map_or(0, document::heap_size)
                .saturating_add(PLANNED_OVERHEAD)
                .saturating_add(usage.as_ref().map_or(0, |usage| usage.heap_size())),
        );
        Ok(Planned {
            hint: measures.hint,
            requested: measures.requested,
            deprecated: measures.deprecated,
            cache_key,
            document: rewritten.map_or_else(|| Arc::clone(document), Arc::new),
            variables,
            weight,
            compiled,
            usage,
        })
    }

    /// The validation errors of `document` (none when it is valid), in the order of their
    /// locations in the document (async-graphql's rules report some in hash order).
    ///
    /// async-graphql's *NoUnusedVariables* does not see a variable used only in a directive on
    /// `__typename`; such a variable is used, and its error is dropped.
    async fn validate(
        &self,
        document: async_graphql::parser::types::ExecutableDocument,
        variables: &Variables,
        operation_name: Option<&str>,
    ) -> Vec<ServerError> {
        let used: std::collections::HashSet<String> = plan::variables_used(&document)
            .into_iter()
            .map(str::to_owned)
            .collect();
        let mut request = async_graphql::Request::new(String::new()).variables(variables.clone());
        if let Some(name) = operation_name {
            request = request.operation_name(name);
        }
        request.set_parsed_query(document);
        let mut errors = self.validator.execute(request).await.errors;
        errors.retain(|error| {
            !unused_variable(&error.message).is_some_and(|name| used.contains(name))
        });
        errors.sort_by(|a, b| {
            let at =
                |error: &ServerError| error.locations.first().map(|pos| (pos.line, pos.column));
            at(a).cmp(&at(b)).then_with(|| a.message.cmp(&b.message))
        });
        errors
    }
}

/// The variable named by async-graphql's "Variable \"$name\" is not used by operation ..."
fn unused_variable(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("Variable \"$")?;
    let (name, rest) = rest.split_once('"')?;
    rest.starts_with(" is not used by operation")
        .then_some(name)
}

/// What a remembered plan holds beyond a rewritten document: the variables, the cache key, the
/// deprecations (an estimate, in bytes).
const PLANNED_OVERHEAD: usize = 1024;

/// A weight for the caches, in bytes.
fn weight_of(bytes: usize) -> u32 {
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

/// What planning found out for a document and its variables, owned (the plan itself borrows
/// the document): remembered for the next request that sends the same.
pub struct Planned {
    hint: super::schema_info::Hint,
    requested: u64,
    deprecated: Vec<(String, String)>,
    cache_key: Option<CacheKey>,
    /// The document that runs: the one sent, or its rewritten form.
    document: Arc<ExecutableDocument>,
    variables: Variables,
    /// Bytes it holds, for the cache.
    weight: u32,
    /// Its compiled form, when it compiles.
    compiled: Option<Arc<crate::compiled::Program>>,
    /// What it uses of the schema (when usage is recorded).
    usage: Option<Arc<crate::usage::OperationUsage>>,
}
