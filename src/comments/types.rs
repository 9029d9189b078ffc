//! The GraphQL objects and inputs of comments.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use entity::comment;

use super::loaders::{CommentCount, CommentPageKey, CommentPages};
use crate::articles::loaders::ArticleById;
use crate::articles::types::Article;
use crate::cache::entity_tag;
use crate::connection_types;
use crate::error::{AppError, AppResult};
use crate::graphql::CacheTagged;
use crate::graphql::{ContextExt, DateTime, FieldResult, GlobalId, NodeKind, TotalCount};
use crate::pagination::PageArgs;
use crate::users::loaders::UserById;
use crate::users::types::User;

/// A comment on an article.
#[derive(Debug, Clone)]
pub struct Comment(pub comment::Model);

impl CacheTagged for Comment {
    const KIND: &'static str = "Comment";

    fn cache_id(&self) -> Option<i64> {
        Some(self.0.id)
    }
}

/// A comment on an article.
#[Object(cache_control(max_age = 60))]
impl Comment {
    /// The global id of this comment.
    pub async fn id(&self) -> ID {
        GlobalId::encode(NodeKind::Comment, self.0.id)
    }

    /// The text of the comment.
    async fn body(&self) -> &str {
        &self.0.body
    }

    /// When the comment was written.
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }

    /// When the comment was last changed.
    async fn updated_at(&self) -> DateTime {
        self.0.updated_at.into()
    }

    /// Who wrote the comment.
    async fn author(&self, ctx: &Context<'_>) -> FieldResult<User> {
        ctx.read_tag(entity_tag("User", self.0.author_id));
        let author = ctx.loader::<UserById>().load_one(self.0.author_id).await?;
        author
            .map(User)
            .ok_or_else(|| AppError::NotFound("The author no longer exists".into()).into())
    }

    /// The article the comment is on.
    async fn article(&self, ctx: &Context<'_>) -> FieldResult<Article> {
        ctx.read_tag(entity_tag("Article", self.0.article_id));
        let article = ctx
            .loader::<ArticleById>()
            .load_one(self.0.article_id)
            .await?;
        article
            .map(Article)
            .ok_or_else(|| AppError::NotFound("The article no longer exists".into()).into())
    }
}

/// Counts the comments of one article.
pub struct CommentsOfArticle(i64);

impl TotalCount for CommentsOfArticle {
    async fn total_count(&self, ctx: &Context<'_>) -> AppResult<i64> {
        Ok(ctx
            .loader::<CommentCount>()
            .load_one(self.0)
            .await?
            .unwrap_or(0))
    }
}

connection_types!(CommentConnection, CommentEdge, Comment, CommentsOfArticle);

/// One page of an article's comments, oldest first, loaded together with the same page of the
/// other articles in the response.
pub async fn comments_of_article(
    ctx: &Context<'_>,
    article_id: i64,
    first: Option<i32>,
    after: Option<&str>,
) -> AppResult<CommentConnection> {
    let args = PageArgs::keyset(first, after)?;
    let page = ctx
        .loader::<CommentPages>()
        .load_one(CommentPageKey { article_id, args })
        .await?
        .unwrap_or_default();
    Ok(CommentConnection::new(
        page.map(Comment),
        CommentsOfArticle(article_id),
    ))
}

/// A new comment.
#[derive(Debug, InputObject)]
pub struct AddCommentInput {
    /// The text: not blank.
    pub body: String,
}

/// The result of `addComment`.
#[derive(SimpleObject)]
pub struct AddCommentPayload {
    /// The new comment.
    pub comment: Comment,
}

/// The result of `deleteComment`.
#[derive(SimpleObject)]
pub struct DeleteCommentPayload {
    /// The global id of the deleted comment.
    pub deleted_id: ID,
}
