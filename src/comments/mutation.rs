//! The root mutation fields of comments.

use async_graphql::{Context, ID, Object};

use super::service;
use super::types::{AddCommentInput, AddCommentPayload, Comment, DeleteCommentPayload};
use crate::db;
use crate::graphql::cache_tags;
use crate::graphql::{ContextExt, FieldResult, GlobalId, NodeKind};

/// Comments' part of `Mutation`.
#[derive(Default)]
pub struct CommentsMutation;

#[Object]
impl CommentsMutation {
    /// Comments on an article as the viewer. NOT_FOUND for an unknown slug, BAD_USER_INPUT for a
    /// blank body.
    async fn add_comment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The slug of the article to comment on.")] slug: String,
        #[graphql(desc = "The new comment.")] input: AddCommentInput,
    ) -> FieldResult<AddCommentPayload> {
        let viewer = ctx.viewer().require()?;
        let comment =
            db::retrying(|| service::add(ctx.db(), viewer, &slug, input.body.clone())).await?;
        ctx.created_tag(cache_tags::entity(NodeKind::Comment, comment.id));
        ctx.write_tag(cache_tags::list(NodeKind::Comment));
        Ok(AddCommentPayload {
            comment: Comment(comment),
        })
    }

    /// Deletes one of the viewer's comments. NOT_FOUND for an unknown id, FORBIDDEN for someone
    /// else's comment.
    async fn delete_comment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The global id of the comment to delete.")] id: ID,
    ) -> FieldResult<DeleteCommentPayload> {
        let viewer = ctx.viewer().require()?;
        let comment_id = GlobalId::expect(&id, NodeKind::Comment, "id")?;
        db::retrying(|| service::delete(ctx.db(), viewer, comment_id)).await?;
        ctx.write_tag(cache_tags::entity(NodeKind::Comment, comment_id));
        ctx.write_tag(cache_tags::list(NodeKind::Comment));
        Ok(DeleteCommentPayload {
            deleted_id: GlobalId::encode(NodeKind::Comment, comment_id),
        })
    }
}
