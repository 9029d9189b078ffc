//! The root query fields of articles.

use async_graphql::{Context, Object};

use super::loaders;
use super::service::{self, ArticleFilter};
use super::types::{Article, ArticleConnection, article_extras, filtered_articles};
use crate::graphql::{ContextExt, FieldResult};
use crate::graphql::{NodeKind, cache_tags};

/// Articles' part of `Query`.
#[derive(Default)]
pub struct ArticlesQuery;

#[Object]
impl ArticlesQuery {
    /// The article with this slug; null when there is none.
    async fn article(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The article's slug.")] slug: String,
    ) -> FieldResult<Option<Article>> {
        ctx.read_tag(cache_tags::list(NodeKind::Article));
        let look = ctx.look_ahead();
        let extras = article_extras(ctx, std::slice::from_ref(&look));
        let Some(row) = service::find_by_slug_with(ctx.db(), &slug, extras).await? else {
            return Ok(None);
        };
        ctx.read_tag(cache_tags::entity(NodeKind::Article, row.article.id));
        loaders::feed(ctx, &[&row]).await;
        Ok(Some(Article(row.article)))
    }

    /// Articles, newest first; the filters combine (all must hold).
    async fn articles(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many articles to return: 0 to 100, default 20.")] first: Option<i32>,
        #[graphql(
            desc = "Return the articles after this cursor (an `endCursor` or edge `cursor`)."
        )]
        after: Option<String>,
        #[graphql(desc = "Only articles with this tag.")] tag: Option<String>,
        #[graphql(desc = "Only articles written by the user with this username.")] author: Option<
            String,
        >,
        #[graphql(desc = "Only articles favorited by the user with this username.")]
        favorited_by: Option<String>,
    ) -> FieldResult<ArticleConnection> {
        let filter = ArticleFilter {
            tag,
            author,
            favorited_by,
            feed_of: None,
        };
        Ok(filtered_articles(ctx, filter, first, after.as_deref()).await?)
    }

    /// The viewer's feed: articles by the users they follow, newest first. UNAUTHENTICATED when anonymous.
    #[graphql(cache_control(max_age = 60, private))]
    async fn feed(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many articles to return: 0 to 100, default 20.")] first: Option<i32>,
        #[graphql(
            desc = "Return the articles after this cursor (an `endCursor` or edge `cursor`)."
        )]
        after: Option<String>,
    ) -> FieldResult<ArticleConnection> {
        ctx.mark_private();
        let viewer = ctx.viewer().require()?;
        ctx.read_tag(cache_tags::feed(viewer));
        let filter = ArticleFilter {
            feed_of: Some(viewer),
            ..ArticleFilter::default()
        };
        Ok(filtered_articles(ctx, filter, first, after.as_deref()).await?)
    }
}
