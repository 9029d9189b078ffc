//! The root query fields of tags.

use async_graphql::{Context, Object};

use super::service;
use super::types::{Tag, TagConnection, TagsInUse};
use crate::graphql::{ContextExt, FieldResult};

/// Tags' part of `Query`.
#[derive(Default)]
pub struct TagsQuery;

#[Object]
impl TagsQuery {
    /// The tags in use, most used first (ties in alphabetical order).
    async fn tags(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many tags to return: 0 to 100, default 20.")] first: Option<i32>,
        #[graphql(desc = "Return the tags after this cursor (an `endCursor` or edge `cursor`).")]
        after: Option<String>,
    ) -> FieldResult<TagConnection> {
        let args = service::page_args(first, after.as_deref())?;
        let page = service::most_used(ctx.db(), &args).await?;
        Ok(TagConnection::new(
            page.map(|usage| Tag { name: usage.name }),
            TagsInUse,
        ))
    }
}
