//! The GraphQL objects of tags.

use async_graphql::{Context, SimpleObject};

use super::service;
use crate::connection_types;
use crate::error::AppResult;
use crate::graphql::{CacheTagged, ContextExt, TotalCount};

/// A label on articles.
#[derive(Debug, Clone, SimpleObject)]
#[graphql(cache_control(max_age = 60))]
pub struct Tag {
    /// The tag's name.
    pub name: String,
}

impl CacheTagged for Tag {
    const KIND: &'static str = "Tag";

    fn cache_id(&self) -> Option<i64> {
        None
    }
}

/// Counts the tags in use.
pub struct TagsInUse;

impl TotalCount for TagsInUse {
    async fn total_count(&self, ctx: &Context<'_>) -> AppResult<i64> {
        service::count_used(ctx.db()).await
    }
}

connection_types!(TagConnection, TagEdge, Tag, TagsInUse);
