//! Assembles `Query`, `Mutation` and `Subscription` from the areas' roots and attaches per-request data.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute};
use async_graphql::{
    MergedObject, MergedSubscription, Request, Response, SDLExportOptions, Schema, SchemaBuilder,
};
use sea_orm::DatabaseConnection;

use crate::articles::{
    mutation::ArticlesMutation, query::ArticlesQuery, subscription::ArticlesSubscription,
};
use crate::auth::{AuthThrottle, Passwords, Revocations, Tokens, Viewer};
use crate::comments::{mutation::CommentsMutation, subscription::CommentsSubscription};
use crate::graphql::loading::{BatchQueue, LoaderScope};
use crate::node::NodeQuery;
use crate::tags::query::TagsQuery;
use crate::users::{mutation::UsersMutation, query::UsersQuery};
use crate::{articles, comments, tags, users};

/// Everything a client can read.
#[derive(MergedObject, Default)]
pub struct Query(UsersQuery, ArticlesQuery, TagsQuery, NodeQuery);

/// Everything a client can change. Each mutation runs in one transaction: when it fails, nothing changes.
#[derive(MergedObject, Default)]
pub struct Mutation(UsersMutation, ArticlesMutation, CommentsMutation);

/// Everything a client can follow as it happens: over a WebSocket (`graphql-transport-ws`) or
/// Server-Sent Events on `/graphql`. Events come after the change commits.
#[derive(MergedSubscription, Default)]
pub struct Subscription(ArticlesSubscription, CommentsSubscription);

/// The Conduit GraphQL schema.
pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// What every resolver may reach, shared by all requests.
#[derive(Clone)]
pub struct SharedData {
    /// The database pool.
    pub db: DatabaseConnection,
    /// The password hasher.
    pub passwords: Passwords,
    /// The token issuer.
    pub tokens: Tokens,
    /// Sign-in and sign-up throttling.
    pub throttle: AuthThrottle,
    /// What this instance knows of revoked tokens.
    pub revocations: Revocations,
}

/// A second line of defence behind the gateway's own limits (which refuse first, with their
/// codes): async-graphql's depth, complexity and directive limits, set no lower than ours.
#[derive(Debug, Clone, Copy)]
pub struct Backstop {
    /// Most nested fields.
    pub max_depth: usize,
    /// Most fields, as async-graphql counts them.
    pub max_complexity: usize,
    /// Most directives on one selection.
    pub max_directives: usize,
}

/// The schema with its shared data, ready for extensions to be added.
pub fn builder(
    shared: SharedData,
    backstop: Backstop,
) -> SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .data(shared.db)
    .data(shared.passwords)
    .data(shared.tokens)
    .data(shared.throttle)
    .data(shared.revocations)
    .limit_depth(backstop.max_depth)
    .limit_complexity(backstop.max_complexity)
    .limit_directives(backstop.max_directives)
}

/// The schema operations run on. It validates in async-graphql's fast mode: the gateway has had
/// every document validated in full by [`validator`] before it runs.
/// With `resolver_spans` (traces exported), each resolver that does I/O runs in a span.
pub fn build(shared: SharedData, backstop: Backstop, resolver_spans: bool) -> AppSchema {
    let builder = builder(shared, backstop).validation_mode(async_graphql::ValidationMode::Fast);
    if resolver_spans {
        builder
            .extension(crate::graphql::resolver_spans::ResolverSpans)
            .finish()
    } else {
        builder.finish()
    }
}

/// The same schema, which only validates, in full: its executions stop after validation and
/// answer no data, or the validation errors. The gateway runs every document the client sent
/// through it once (per variables), before the document or its rewritten form runs.
pub fn validator(shared: SharedData, backstop: Backstop) -> AppSchema {
    builder(shared, backstop)
        .extension(StopBeforeExecution)
        .finish()
}

struct StopBeforeExecution;

impl ExtensionFactory for StopBeforeExecution {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(StopBeforeExecution)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for StopBeforeExecution {
    async fn execute(
        &self,
        _ctx: &ExtensionContext<'_>,
        _operation_name: Option<&str>,
        _next: NextExecute<'_>,
    ) -> Response {
        Response::new(async_graphql::Value::Null)
    }
}

/// When each deprecated field was deprecated (`Type.field`, `YYYY-MM-DD`), as the areas declare
/// it next to their types; a test keeps every `@deprecated` field of the schema dated.
pub fn deprecated_since() -> Vec<(&'static str, &'static str)> {
    crate::articles::types::DEPRECATED_SINCE.to_vec()
}

/// The cache hints the types and fields declare (`#[graphql(cache_control(..))]`): `Type` and
/// `Type.field` to (max age in seconds, public). The gateway merges them over the plan of each
/// operation, so a hint reached through any fragment counts.
pub fn cache_hints() -> std::collections::HashMap<String, (i32, bool)> {
    use async_graphql::OutputType;
    use async_graphql::registry::{MetaType, Registry};
    let mut registry = Registry::default();
    Query::create_type_info(&mut registry);
    Mutation::create_type_info(&mut registry);
    let mut hints = std::collections::HashMap::new();
    for (name, ty) in registry.types {
        if let MetaType::Object {
            cache_control,
            fields,
            ..
        } = ty
        {
            hints.insert(name.clone(), (cache_control.max_age, cache_control.public));
            for (field, meta) in fields {
                hints.insert(
                    format!("{name}.{field}"),
                    (meta.cache_control.max_age, meta.cache_control.public),
                );
            }
        }
    }
    hints
}

/// The schema's SDL: the API contract kept in `schema.graphql`.
pub fn sdl() -> String {
    sdl_of(
        &Schema::build(
            Query::default(),
            Mutation::default(),
            Subscription::default(),
        )
        .finish(),
    )
}

/// The description that introspection gives the schema (async-graphql answers it for every schema).
const SCHEMA_DESCRIPTION: &str = "A GraphQL Schema defines the capabilities of a GraphQL server. It exposes all available types and directives on the server, as well as the entry points for query, mutation, and subscription operations.";

/// The SDL of `schema` exactly as introspection shows it: with the schema's description and the
/// `@specifiedBy` URLs of custom scalars, so that a schema built from introspection equals it.
pub fn sdl_of(schema: &AppSchema) -> String {
    let types = schema.sdl_with_options(SDLExportOptions::new().include_specified_by());
    // The export ends with the schema definition; it moves to the top, with its description.
    let types = match types.rfind("schema {") {
        Some(start) => types[..start].trim_end(),
        None => types.trim_end(),
    };
    format!(
        "\"\"\"\n{SCHEMA_DESCRIPTION}\n\"\"\"\nschema {{\n\tquery: Query\n\tmutation: Mutation\n\tsubscription: Subscription\n}}\n\n{types}\n"
    )
}

/// Attaches the viewer and this request's DataLoaders (each area registers its own); the
/// request's execution must run under [`crate::graphql::loading::drive`] with the returned queue, which runs
/// the loaders' batches.
pub fn with_request_data(
    request: Request,
    db: &DatabaseConnection,
    viewer: Viewer,
) -> (Request, BatchQueue) {
    let queue = BatchQueue::default();
    let scope = LoaderScope::new(db.clone(), viewer.user_id(), queue.clone());
    let request = request.data(viewer);
    let request = users::loaders::register(request, &scope);
    let request = articles::loaders::register(request, &scope);
    let request = comments::loaders::register(request, &scope);
    let request = tags::loaders::register(request, &scope);
    (request, queue)
}

#[cfg(test)]
mod tests {
    /// Every `@deprecated` field of the printed schema has a deprecation date.
    #[test]
    fn every_deprecated_field_is_dated() {
        let dated = super::deprecated_since();
        let sdl = super::sdl();
        let mut ty = "";
        let mut found = 0;
        for line in sdl.lines() {
            let line = line.trim();
            if let Some(rest) = line
                .strip_prefix("type ")
                .or_else(|| line.strip_prefix("interface "))
            {
                ty = rest.split([' ', '{']).next().unwrap_or_default();
            }
            if line.contains("@deprecated") && !line.starts_with("directive ") {
                let field = line.split(['(', ':']).next().unwrap_or_default().trim();
                let coordinate = format!("{ty}.{field}");
                assert!(
                    dated.iter().any(|(name, _)| *name == coordinate),
                    "{coordinate} is deprecated without a date in DEPRECATED_SINCE"
                );
                found += 1;
            }
        }
        assert!(found >= 1, "the schema has deprecated fields");
    }
}
