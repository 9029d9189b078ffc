//! Records the name of each operation on the request's log span, once the document is parsed.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument};
use async_graphql::{ServerResult, Variables};

/// Adds `operation` to the current tracing span: the operation's name, or `anonymous`.
pub struct OperationName;

impl ExtensionFactory for OperationName {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(OperationNameExtension)
    }
}

struct OperationNameExtension;

#[async_graphql::async_trait::async_trait]
impl Extension for OperationNameExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        // With several operations the request names one, and the handler records that name.
        let name = match &document.operations {
            DocumentOperations::Single(_) => Some("anonymous".to_owned()),
            DocumentOperations::Multiple(operations) if operations.len() == 1 => {
                operations.keys().next().map(ToString::to_string)
            }
            DocumentOperations::Multiple(_) => None,
        };
        if let Some(name) = name {
            tracing::Span::current().record("operation", name.as_str());
        }
        Ok(document)
    }
}
