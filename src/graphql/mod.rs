//! The GraphQL kit the areas build on: connections and cursors, scalars, global ids, context access.

pub mod cache_tags;
pub mod compiled;
pub mod connection;
pub mod context;
pub mod id;
pub mod loading;
pub mod resolver_spans;
pub mod response_size;
pub mod scalars;
pub mod subscription;

pub use connection::{CacheTagged, PageInfo, TotalCount};
pub use context::ContextExt;
pub use id::{GlobalId, NodeKind};
pub use scalars::DateTime;

use crate::error::AppError;

/// The error of a resolver: an [`AppError`] that becomes a GraphQL error with its `extensions.code`.
///
/// It deliberately does not implement `Display`, so that async-graphql's blanket conversion (which
/// would drop the code) cannot apply and the conversion below is always used.
#[derive(Debug, Clone)]
pub struct FieldError(pub AppError);

impl From<AppError> for FieldError {
    fn from(err: AppError) -> Self {
        Self(err)
    }
}

impl From<FieldError> for async_graphql::Error {
    fn from(err: FieldError) -> Self {
        async_graphql::ErrorExtensions::extend(&err.0)
    }
}

/// The result of a resolver.
pub type FieldResult<T> = Result<T, FieldError>;
