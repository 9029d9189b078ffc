//! The GraphQL objects of tags.

use async_graphql::{Context, SimpleObject};

use super::service;
use crate::connection_types;
use crate::error::AppResult;
use crate::graphql::{ContextExt, TotalCount};

/// A label on articles.
#[derive(Debug, Clone, SimpleObject)]
pub struct Tag {
    /// The tag's name.
    pub name: String,
}

/// Counts the tags in use.
pub struct TagsInUse;

impl TotalCount for TagsInUse {
    async fn total_count(&self, ctx: &Context<'_>) -> AppResult<i64> {
        service::count_used(ctx.db()).await
    }
}

connection_types!(TagConnection, TagEdge, Tag, TagsInUse);
