//! The prepare stage: from what a client sent to an operation that is known to run within the
//! limits, priced as it will execute, before any resolver runs or any budget is charged.

use std::sync::Arc;

use async_graphql::parser::types::OperationType;
use async_graphql::{ServerError, Variables};

use super::limits::{self, LimitError};
use super::merge::{self, MergeError};
use super::persisted::PersistedError;
use super::plan::{self, Planner};
use super::{Gateway, Operation, OperationState, Prepared, RawOperation, Transport, cost};
use crate::cache::CacheKey;
use crate::error::{code, request_error};

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
    /// Prepares one operation: an operation ready to run, or refused with its error; or a
    /// rejection of the whole request by the transport's rules.
    pub async fn prepare(
        &self,
        raw: RawOperation,
        transport: Transport,
    ) -> Result<Operation, Rejection> {
        let resolved = match self.persisted.resolve(raw.query, &raw.persisted).await {
            Ok(resolved) => resolved,
            Err(err) => return Ok(Operation::refused(persisted_error(&err), 0)),
        };
        if let Err(err) = limits::scan_document(&resolved.query, &self.limits) {
            return Ok(err.into());
        }
        let document = match async_graphql::parser::parse_query(&resolved.query) {
            Ok(document) => document,
            Err(err) => {
                let mut error = ServerError::from(err);
                error.extensions = request_error("", code::GRAPHQL_PARSE_FAILED).extensions;
                return Ok(Operation::refused(error, 0));
            }
        };
        let operation_name = raw.operation_name;
        let Some((_, operation)) = plan::select_operation(&document, operation_name.as_deref())
        else {
            let message = match &operation_name {
                Some(name) => format!("Unknown operation named \"{name}\""),
                None => "Operation name required in request.".to_owned(),
            };
            return Ok(Operation::refused(
                request_error(message, code::GRAPHQL_VALIDATION_FAILED),
                0,
            ));
        };
        let operation_type = operation.node.ty;
        if operation_type == OperationType::Mutation && !transport.mutations {
            return Err(Rejection::MutationNotAllowed);
        }
        let selection_set = &operation.node.selection_set.node;
        if let Err(err) = limits::check_document(&document, selection_set, &self.limits) {
            return Ok(err.into());
        }
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
                return Ok(Operation::refused(error, 0));
            }
            Err(MergeError::TooComplex) => {
                return Ok(LimitError::too_complex(
                    "fields",
                    "The work to check the document",
                    self.limits.max_fields as u64,
                    self.limits.max_fields as u64 + 1,
                )
                .into());
            }
        }
        let variables = plan::coerce_variables(
            &operation.node,
            Variables::from_json(serde_json::Value::Object(raw.variables)),
        );

        let planned = match self.plan_and_price(&document, &variables, operation_name.as_deref()) {
            Ok(planned) => planned,
            Err(operation) => return Ok(*operation),
        };
        let document = match planned.rewritten {
            Some(rewritten) => {
                // The rewritten document runs; the one the client sent is the one validated.
                let errors = self
                    .validate(document, &variables, operation_name.as_deref())
                    .await;
                if !errors.is_empty() {
                    return Ok(Operation {
                        requested: 0,
                        state: OperationState::Refused(errors),
                    });
                }
                rewritten
            }
            None => document,
        };
        let register = resolved.register.map(|hash| (hash, resolved.query));
        Ok(Operation {
            requested: planned.requested,
            state: OperationState::Ready(Box::new(Prepared {
                document: Arc::new(document),
                operation_name,
                variables,
                operation_type,
                deprecated: planned.deprecated,
                cache_key: planned.cache_key,
                hint: planned.hint,
                register,
            })),
        })
    }

    /// Plans the operation, prices it and checks the limits on what will run.
    fn plan_and_price(
        &self,
        document: &async_graphql::parser::types::ExecutableDocument,
        variables: &Variables,
        operation_name: Option<&str>,
    ) -> Result<Planned, Box<Operation>> {
        let plan = Planner::new(document, variables, &self.schema_info)
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
        let measures = cost::measure(&plan, variables, &self.schema_info)
            .map_err(|err| Box::new(Operation::from(err)))?;
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
        let cache_key = (plan.operation.ty == OperationType::Query)
            .then(|| CacheKey::of(&plan.canonical(variables)));
        Ok(Planned {
            hint: measures.hint,
            requested: measures.requested,
            deprecated: measures.deprecated,
            cache_key,
            rewritten: plan.needs_rewrite().then(|| plan.rewrite()),
        })
    }

    /// The validation errors of `document` as sent (none when it is valid).
    async fn validate(
        &self,
        document: async_graphql::parser::types::ExecutableDocument,
        variables: &Variables,
        operation_name: Option<&str>,
    ) -> Vec<ServerError> {
        let mut request = async_graphql::Request::new(String::new()).variables(variables.clone());
        if let Some(name) = operation_name {
            request = request.operation_name(name);
        }
        request.set_parsed_query(document);
        self.validator.execute(request).await.errors
    }
}

/// What planning found out, owned (the plan itself borrows the document).
struct Planned {
    hint: super::schema_info::Hint,
    requested: u64,
    deprecated: Vec<(String, String)>,
    cache_key: Option<CacheKey>,
    rewritten: Option<async_graphql::parser::types::ExecutableDocument>,
}
