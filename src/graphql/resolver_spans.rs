//! A span per resolver of a field that does I/O (root fields, and the fields that reach a loader),
//! when traces are exported: a slow request shows which field waited on which statement.
//!
//! Fields that only read their parent's value get none, so a page of fifty articles is not fifty
//! spans per scalar. The extension is installed only with tracing on: async-graphql skips the
//! per-field extension hooks entirely when a schema has no extension.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextResolve, ResolveInfo,
};
use async_graphql::{ServerResult, Value};
use tracing::Instrument;

/// The fields below the roots whose resolvers wait on a loader or a service.
const IO_FIELDS: &[(&str, &str)] = &[
    ("User", "following"),
    ("User", "followersCount"),
    ("User", "articles"),
    ("User", "favoriteArticles"),
    ("Article", "tags"),
    ("Article", "tagList"),
    ("Article", "author"),
    ("Article", "favorited"),
    ("Article", "favoritesCount"),
    ("Article", "comments"),
    ("Comment", "author"),
    ("Comment", "article"),
];

/// Whether the field `parent.name` does I/O.
pub fn does_io(parent: &str, name: &str) -> bool {
    matches!(parent, "Query" | "Mutation")
        || (name == "totalCount" && parent.ends_with("Connection"))
        || IO_FIELDS.contains(&(parent, name))
}

/// The extension: one `resolve` span per I/O field, named after the field's coordinate.
pub struct ResolverSpans;

impl ExtensionFactory for ResolverSpans {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ResolverSpans)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ResolverSpans {
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        if info.is_for_introspection
            || !does_io(info.parent_type, info.name)
            || !crate::telemetry::sampled()
        {
            return next.run(ctx, info).await;
        }
        let span = tracing::debug_span!(
            "resolve",
            otel.name = %format_args!("{}.{}", info.parent_type, info.name),
            graphql.field.path = %info.path_node,
            graphql.field.type = info.return_type,
            otel.status_code = tracing::field::Empty,
        );
        let result = next.run(ctx, info).instrument(span.clone()).await;
        if result.is_err() {
            span.record("otel.status_code", "ERROR");
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_field_exists_in_the_schema() {
        let sdl = crate::schema::sdl();
        for (parent, name) in IO_FIELDS {
            let start = sdl
                .find(&format!("type {parent} "))
                .unwrap_or_else(|| panic!("type {parent} in the schema"));
            let body = &sdl[start..];
            let end = body.find("\n}").unwrap_or(body.len());
            let fields = &body[..end];
            assert!(
                fields.contains(&format!("\n\t{name}:"))
                    || fields.contains(&format!("\n\t{name}(")),
                "{parent}.{name} is not a field of the schema"
            );
        }
    }
}
