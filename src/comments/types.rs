//! The GraphQL objects and inputs of comments.

use async_graphql::{
    Context, ID, InputObject, Lookahead, Object, SelectionField, SimpleObject, Value,
};
use entity::comment;

use super::loaders::{CommentCount, CommentPageKey, CommentPages};
use super::service::CommentExtras;
use crate::articles::loaders::ArticleById;
use crate::articles::types::Article;
use crate::articles::types::items_of;
use crate::connection_types;
use crate::error::{AppError, AppResult};
use crate::graphql::CacheTagged;
use crate::graphql::cache_tags;
use crate::graphql::{ContextExt, DateTime, FieldResult, GlobalId, NodeKind, TotalCount};
use crate::pagination::PageArgs;
use crate::users;
use crate::users::loaders::UserById;
use crate::users::types::User;

/// A comment on an article.
#[derive(Debug, Clone)]
pub struct Comment(pub comment::Model);

impl CacheTagged for Comment {
    fn list_tag() -> cache_tags::CacheTag {
        cache_tags::list(NodeKind::Comment)
    }

    fn entity_tag(&self) -> Option<cache_tags::CacheTag> {
        Some(cache_tags::entity(NodeKind::Comment, self.0.id))
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
    async fn body(&self, ctx: &Context<'_>) -> FieldResult<&str> {
        ctx.carry(&self.0.body)?;
        Ok(&self.0.body)
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
        ctx.read_tag(cache_tags::entity(NodeKind::User, self.0.author_id));
        let author = ctx.loader::<UserById>().load_one(self.0.author_id).await?;
        author
            .map(User)
            .ok_or_else(|| AppError::NotFound("The author no longer exists".into()).into())
    }

    /// The article the comment is on.
    async fn article(&self, ctx: &Context<'_>) -> FieldResult<Article> {
        ctx.read_tag(cache_tags::entity(NodeKind::Article, self.0.article_id));
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

/// What the selections of comments ask to fetch with each comment.
pub fn comment_extras(ctx: &Context<'_>, comments: &[Lookahead<'_>]) -> CommentExtras {
    let authors: Vec<Lookahead<'_>> = comments
        .iter()
        .map(|comment| comment.field("author"))
        .collect();
    CommentExtras {
        author: authors
            .iter()
            .any(Lookahead::exists)
            .then(|| users::types::profile_extras(ctx, &authors)),
    }
}

/// The page arguments of a `comments` field as selected.
fn page_args(field: &SelectionField<'_>) -> AppResult<PageArgs> {
    let arguments = field
        .arguments()
        .map_err(|err| AppError::invalid("first", err.message))?;
    let mut first = None;
    let mut after = None;
    for (name, value) in arguments {
        match (name.as_str(), value) {
            ("first", Value::Number(number)) => {
                first = Some(
                    number
                        .as_i64()
                        .map_or(i32::MAX, |n| i32::try_from(n).unwrap_or(i32::MAX)),
                );
            }
            ("after", Value::String(cursor)) => after = Some(cursor),
            _ => {}
        }
    }
    PageArgs::keyset(first, after.as_deref())
}

/// Fetches the comments that the selections of `articles` ask for, of every article of
/// `article_ids`, in one statement (when every `comments` field there asks for the same page),
/// and feeds them to the loaders: each article's `comments` then finds its page there.
pub async fn prefetch(
    ctx: &Context<'_>,
    articles: &[Lookahead<'_>],
    article_ids: &[i64],
) -> AppResult<()> {
    let fields: Vec<SelectionField<'_>> = articles
        .iter()
        .flat_map(|article| article.field("comments").selection_fields())
        .collect();
    if fields.is_empty() || article_ids.is_empty() {
        return Ok(());
    }
    let Ok(args) = fields.iter().map(page_args).collect::<AppResult<Vec<_>>>() else {
        // The resolvers report the error.
        return Ok(());
    };
    if args.windows(2).any(|pair| pair[0] != pair[1]) {
        return Ok(());
    }
    let Ok(selection) = Lookahead::try_from(fields.as_slice()) else {
        return Ok(());
    };
    let extras = comment_extras(ctx, &items_of(&selection));
    let pages = CommentPages::pages(ctx.db(), article_ids, &args[0], extras).await?;
    let authors: Vec<&users::service::ProfileRow> = pages
        .iter()
        .flat_map(|(_, page)| page.items.iter())
        .filter_map(|(_, row)| row.author.as_ref())
        .collect();
    users::loaders::feed(ctx, &authors).await;
    ctx.loader::<CommentPages>().feed_many(pages).await;
    Ok(())
}

/// One page of an article's comments, oldest first, with what their selection needs fetched in
/// the same statement; loaded together with the same page of the other articles in the
/// response (or found fetched ahead by [`prefetch`]).
pub async fn comments_of_article(
    ctx: &Context<'_>,
    article_id: i64,
    first: Option<i32>,
    after: Option<&str>,
) -> AppResult<CommentConnection> {
    let args = PageArgs::keyset(first, after)?;
    let look = ctx.look_ahead();
    let extras = comment_extras(ctx, &items_of(&look));
    let page = ctx
        .loader::<CommentPages>()
        .load_one(CommentPageKey {
            article_id,
            args,
            extras,
        })
        .await?
        .unwrap_or_default();
    let authors: Vec<&users::service::ProfileRow> = page
        .items
        .iter()
        .filter_map(|(_, row)| row.author.as_ref())
        .collect();
    users::loaders::feed(ctx, &authors).await;
    Ok(CommentConnection::new(
        page.map(|row| Comment(row.comment)),
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
