//! The GraphQL objects and inputs of articles.

use async_graphql::{Context, ID, InputObject, Lookahead, Object, SimpleObject};
use entity::article;

use super::loaders;
use super::loaders::{
    FavoriteCount, FavoritedByViewer, UserArticleCount, UserArticlePages, UserPageKey,
};
use super::service::{self, ArticleExtras, ArticleFilter, ArticleRow, UserList};
use crate::comments::types as comments_types;
use crate::comments::types::{CommentConnection, comments_of_article};
use crate::connection_types;
use crate::error::{AppError, AppResult};
use crate::graphql::CacheTagged;
use crate::graphql::cache_tags;
use crate::graphql::{ContextExt, DateTime, FieldResult, GlobalId, NodeKind, TotalCount};
use crate::pagination::Page;
use crate::pagination::PageArgs;
use crate::tags::loaders::TagsOfArticle;
use crate::tags::types::Tag;
use crate::users;
use crate::users::loaders::UserById;
use crate::users::types::User;

/// When this area's deprecated fields were deprecated (`Type.field`, `YYYY-MM-DD`): responses
/// that run one carry it in the `Deprecation` header.
pub const DEPRECATED_SINCE: &[(&str, &str)] = &[("Article.tagList", "2026-11-25")];

/// A published article.
#[derive(Debug, Clone)]
pub struct Article(pub article::Model);

impl CacheTagged for Article {
    fn list_tag() -> cache_tags::CacheTag {
        cache_tags::list(NodeKind::Article)
    }

    fn entity_tag(&self) -> Option<cache_tags::CacheTag> {
        Some(cache_tags::entity(NodeKind::Article, self.0.id))
    }
}

/// A published article.
#[Object(cache_control(max_age = 60))]
impl Article {
    /// The global id of this article.
    pub async fn id(&self) -> ID {
        GlobalId::encode(NodeKind::Article, self.0.id)
    }

    /// The article's unique URL name, made from its title; it changes when the title changes.
    async fn slug(&self) -> &str {
        &self.0.slug
    }

    /// The title.
    async fn title(&self, ctx: &Context<'_>) -> FieldResult<&str> {
        ctx.carry(&self.0.title)?;
        Ok(&self.0.title)
    }

    /// A short summary.
    async fn description(&self, ctx: &Context<'_>) -> FieldResult<&str> {
        ctx.carry(&self.0.description)?;
        Ok(&self.0.description)
    }

    /// The full text (Markdown, as the author wrote it).
    async fn body(&self, ctx: &Context<'_>) -> FieldResult<&str> {
        ctx.carry(&self.0.body)?;
        Ok(&self.0.body)
    }

    /// The article's tags, in alphabetical order.
    async fn tags(&self, ctx: &Context<'_>) -> FieldResult<Vec<Tag>> {
        let names = ctx.loader::<TagsOfArticle>().load_one(self.0.id).await?;
        Ok(names
            .unwrap_or_default()
            .into_iter()
            .map(|name| Tag { name })
            .collect())
    }

    /// The names of the article's tags, in alphabetical order, as RealWorld frontends know them.
    #[graphql(
        deprecation = "Use `tags { name }`: tags are objects, with room for more than a name."
    )]
    async fn tag_list(&self, ctx: &Context<'_>) -> FieldResult<Vec<String>> {
        let names = ctx.loader::<TagsOfArticle>().load_one(self.0.id).await?;
        Ok(names.unwrap_or_default())
    }

    /// When the article was published; never changes.
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }

    /// When the article was last changed.
    async fn updated_at(&self) -> DateTime {
        self.0.updated_at.into()
    }

    /// Who wrote the article.
    async fn author(&self, ctx: &Context<'_>) -> FieldResult<User> {
        ctx.read_tag(cache_tags::entity(NodeKind::User, self.0.author_id));
        let author = ctx.loader::<UserById>().load_one(self.0.author_id).await?;
        author
            .map(User)
            .ok_or_else(|| AppError::NotFound("The author no longer exists".into()).into())
    }

    /// Whether the viewer favorited the article; false when anonymous.
    #[graphql(cache_control(max_age = 60, private))]
    async fn favorited(&self, ctx: &Context<'_>) -> FieldResult<bool> {
        ctx.mark_private();
        if ctx.viewer().user_id().is_none() {
            return Ok(false);
        }
        let loaded = ctx
            .loader::<FavoritedByViewer>()
            .load_one(self.0.id)
            .await?;
        Ok(loaded.unwrap_or(false))
    }

    /// How many users favorited the article.
    async fn favorites_count(&self, ctx: &Context<'_>) -> FieldResult<i64> {
        let loaded = ctx.loader::<FavoriteCount>().load_one(self.0.id).await?;
        Ok(loaded.unwrap_or(0))
    }

    /// The comments on the article, oldest first.
    async fn comments(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many comments to return: 0 to 100, default 20.")] first: Option<i32>,
        #[graphql(
            desc = "Return the comments after this cursor (an `endCursor` or edge `cursor`)."
        )]
        after: Option<String>,
    ) -> FieldResult<CommentConnection> {
        Ok(comments_of_article(ctx, self.0.id, first, after.as_deref()).await?)
    }
}

/// Which list of articles a connection counts.
pub enum ArticleCount {
    /// The articles matching a filter.
    Filtered(ArticleFilter),
    /// One user's list.
    OfUser(UserList, i64),
}

impl TotalCount for ArticleCount {
    async fn total_count(&self, ctx: &Context<'_>) -> AppResult<i64> {
        match self {
            Self::Filtered(filter) => service::count(ctx.db(), filter).await,
            Self::OfUser(list, user_id) => Ok(ctx
                .loader::<UserArticleCount>()
                .load_one((*list, *user_id))
                .await?
                .unwrap_or(0)),
        }
    }
}

connection_types!(ArticleConnection, ArticleEdge, Article, ArticleCount);

/// The selections of a connection's items: under `nodes` and under `edges { node }`.
pub fn items_of<'a>(connection: &Lookahead<'a>) -> [Lookahead<'a>; 2] {
    [
        connection.field("nodes"),
        connection.field("edges").field("node"),
    ]
}

/// Whether any of `selections` selects `field`.
pub fn selects(selections: &[Lookahead<'_>], field: &str) -> bool {
    selections
        .iter()
        .any(|selection| selection.field(field).exists())
}

/// What the selections of articles ask to fetch with each article.
pub fn article_extras(ctx: &Context<'_>, articles: &[Lookahead<'_>]) -> ArticleExtras {
    let authors: Vec<Lookahead<'_>> = articles
        .iter()
        .map(|article| article.field("author"))
        .collect();
    ArticleExtras {
        author: authors
            .iter()
            .any(Lookahead::exists)
            .then(|| users::types::profile_extras(ctx, &authors)),
        favorites_count: selects(articles, "favoritesCount"),
        favorited_by: ctx
            .viewer()
            .user_id()
            .filter(|_| selects(articles, "favorited")),
        tags: selects(articles, "tags") || selects(articles, "tagList"),
        without_body: !selects(articles, "body"),
        // Loaders share what a page fed them: every other column stays.
        without_description: false,
    }
}

/// A connection of fetched articles: what was fetched with them goes to the loaders, and their
/// comments, when every `comments` field under them asks for one page, are fetched for all of
/// them in one statement.
async fn connection(
    ctx: &Context<'_>,
    articles: &[Lookahead<'_>],
    page: Page<ArticleRow>,
    count: ArticleCount,
) -> AppResult<ArticleConnection> {
    let rows: Vec<&ArticleRow> = page.items.iter().map(|(_, row)| row).collect();
    loaders::feed(ctx, &rows).await;
    let ids: Vec<i64> = page.items.iter().map(|(_, row)| row.article.id).collect();
    comments_types::prefetch(ctx, articles, &ids).await?;
    Ok(ArticleConnection::new(
        page.map(|row| Article(row.article)),
        count,
    ))
}

/// One page of the articles matching `filter`, newest first, with what their selection needs
/// fetched in the same statement.
pub async fn filtered_articles(
    ctx: &Context<'_>,
    filter: ArticleFilter,
    first: Option<i32>,
    after: Option<&str>,
) -> AppResult<ArticleConnection> {
    let args = PageArgs::keyset(first, after)?;
    if filter.author.is_some() || filter.favorited_by.is_some() {
        // The filter finds users by name: renaming one changes which articles match.
        ctx.read_tag(cache_tags::list(NodeKind::User));
    }
    let look = ctx.look_ahead();
    let articles = items_of(&look);
    let extras = article_extras(ctx, &articles);
    let page = service::list(ctx.db(), &filter, &args, extras).await?;
    connection(ctx, &articles, page, ArticleCount::Filtered(filter)).await
}

/// One page of a user's list of articles, newest first, loaded together with the same page of
/// the other users in the response.
pub async fn user_articles(
    ctx: &Context<'_>,
    list: UserList,
    user_id: i64,
    first: Option<i32>,
    after: Option<&str>,
) -> AppResult<ArticleConnection> {
    let args = PageArgs::keyset(first, after)?;
    let look = ctx.look_ahead();
    let articles = items_of(&look);
    let key = UserPageKey {
        list,
        user_id,
        args,
        extras: article_extras(ctx, &articles),
    };
    let page = ctx
        .loader::<UserArticlePages>()
        .load_one(key)
        .await?
        .unwrap_or_default();
    connection(ctx, &articles, page, ArticleCount::OfUser(list, user_id)).await
}

/// A new article.
#[derive(Debug, InputObject)]
pub struct CreateArticleInput {
    /// The title: not blank. The slug is made from it.
    pub title: String,
    /// A short summary: not blank.
    pub description: String,
    /// The full text: not blank.
    pub body: String,
    /// Tag names (trimmed; duplicates are dropped). Default: none.
    pub tags: Option<Vec<String>>,
}

/// Changes to an article; leave out what stays the same.
#[derive(Debug, InputObject)]
pub struct UpdateArticleInput {
    /// A new title (the slug changes with it).
    pub title: Option<String>,
    /// A new summary.
    pub description: Option<String>,
    /// A new full text.
    pub body: Option<String>,
    /// New tags: they replace the old ones; `[]` removes them all; leaving it out keeps them.
    pub tags: Option<Vec<String>>,
}

/// The result of `createArticle`.
#[derive(SimpleObject)]
pub struct CreateArticlePayload {
    /// The new article.
    pub article: Article,
}

/// The result of `updateArticle`.
#[derive(SimpleObject)]
pub struct UpdateArticlePayload {
    /// The article after the changes.
    pub article: Article,
}

/// The result of `favoriteArticle`.
#[derive(SimpleObject)]
pub struct FavoriteArticlePayload {
    /// The favorited article.
    pub article: Article,
}

/// The result of `unfavoriteArticle`.
#[derive(SimpleObject)]
pub struct UnfavoriteArticlePayload {
    /// The article, no longer a favorite.
    pub article: Article,
}

/// The result of `deleteArticle`.
#[derive(SimpleObject)]
pub struct DeleteArticlePayload {
    /// The global id of the deleted article.
    pub deleted_id: ID,
}

/// A change to an article, as `articleChanged` delivers it.
#[derive(SimpleObject)]
pub struct ArticleChange {
    /// The article's slug: its new one when the title changed, its last one once deleted.
    pub slug: String,
    /// Whether the article was deleted (`article` is null then).
    pub deleted: bool,
    /// The article's new state; null once deleted.
    pub article: Option<Article>,
}
