//! The GraphQL objects of tags.

use async_graphql::{Context, SimpleObject};

use super::service;
use crate::connection_types;
use crate::error::AppResult;
use crate::graphql::{CacheTagged, ContextExt, TotalCount, cache_tags};

/// A label on articles.
#[derive(Debug, Clone, SimpleObject)]
#[graphql(cache_control(max_age = 60))]
pub struct Tag {
    /// The tag's name.
    pub name: String,
}

impl CacheTagged for Tag {
    fn list_tag() -> cache_tags::CacheTag {
        cache_tags::tags()
    }

    fn entity_tag(&self) -> Option<cache_tags::CacheTag> {
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
