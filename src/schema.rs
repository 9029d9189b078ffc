//! Assembles `Query` and `Mutation` from the areas' roots and attaches per-request data.

use async_graphql::dataloader::DataLoader;
use async_graphql::{EmptySubscription, MergedObject, Request, SDLExportOptions, Schema};
use sea_orm::DatabaseConnection;
use tracing::Instrument;

use crate::articles::loaders::{
    ArticleById, FavoriteCount, FavoritedByViewer, UserArticleCount, UserArticlePages,
};
use crate::articles::{mutation::ArticlesMutation, query::ArticlesQuery};
use crate::auth::{AuthThrottle, Passwords, Tokens, Viewer};
use crate::comments::loaders::{CommentById, CommentCount, CommentPages};
use crate::comments::mutation::CommentsMutation;
use crate::graphql::logging::OperationName;
use crate::node::NodeQuery;
use crate::tags::{loaders::TagsOfArticle, query::TagsQuery};
use crate::users::loaders::{FollowedByViewer, FollowerCount, UserById};
use crate::users::{mutation::UsersMutation, query::UsersQuery};

/// Everything a client can read.
#[derive(MergedObject, Default)]
pub struct Query(UsersQuery, ArticlesQuery, TagsQuery, NodeQuery);

/// Everything a client can change. Each mutation runs in one transaction: when it fails, nothing changes.
#[derive(MergedObject, Default)]
pub struct Mutation(UsersMutation, ArticlesMutation, CommentsMutation);

/// The Conduit GraphQL schema.
pub type AppSchema = Schema<Query, Mutation, EmptySubscription>;

/// The schema with its shared data.
pub fn build(
    db: DatabaseConnection,
    passwords: Passwords,
    tokens: Tokens,
    throttle: AuthThrottle,
) -> AppSchema {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .data(db)
        .data(passwords)
        .data(tokens)
        .data(throttle)
        .extension(OperationName)
        .finish()
}

/// The schema's SDL: the API contract kept in `schema.graphql`.
pub fn sdl() -> String {
    sdl_of(&Schema::build(Query::default(), Mutation::default(), EmptySubscription).finish())
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
        "\"\"\"\n{SCHEMA_DESCRIPTION}\n\"\"\"\nschema {{\n\tquery: Query\n\tmutation: Mutation\n}}\n\n{types}\n"
    )
}

/// Attaches the viewer and this request's DataLoaders (they batch within the request only).
pub fn with_request_data(request: Request, db: &DatabaseConnection, viewer: Viewer) -> Request {
    let viewer_id = viewer.user_id();
    request
        .data(viewer)
        .data(loader(UserById(db.clone())))
        .data(loader(FollowerCount(db.clone())))
        .data(loader(FollowedByViewer {
            db: db.clone(),
            viewer: viewer_id,
        }))
        .data(loader(ArticleById(db.clone())))
        .data(loader(FavoriteCount(db.clone())))
        .data(loader(FavoritedByViewer {
            db: db.clone(),
            viewer: viewer_id,
        }))
        .data(loader(UserArticlePages(db.clone())))
        .data(loader(UserArticleCount(db.clone())))
        .data(loader(TagsOfArticle(db.clone())))
        .data(loader(CommentById(db.clone())))
        .data(loader(CommentPages(db.clone())))
        .data(loader(CommentCount(db.clone())))
}

/// How often a batch lets the other runnable tasks go first before its delay starts.
const BATCH_YIELDS: usize = 8;

/// A DataLoader whose batches wait for the rest of the current query level: the resolvers of a
/// long list register their keys over several polls, and a batch that started on a timer alone
/// could leave before the last keys arrive (then one level would cost two statements).
fn loader<L: Send + Sync + 'static>(inner: L) -> DataLoader<L> {
    DataLoader::new(inner, |batch| {
        tokio::spawn(
            async move {
                for _ in 0..BATCH_YIELDS {
                    tokio::task::yield_now().await;
                }
                batch.await;
            }
            .in_current_span(),
        )
    })
}
