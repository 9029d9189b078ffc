//! The root mutation fields of articles.

use async_graphql::{Context, Object};

use super::service::{self, ArticleChanges, NewArticle};
use super::types::{
    Article, CreateArticleInput, CreateArticlePayload, DeleteArticlePayload,
    FavoriteArticlePayload, UnfavoriteArticlePayload, UpdateArticleInput, UpdateArticlePayload,
};
use crate::db;
use crate::graphql::cache_tags;
use crate::graphql::{ContextExt, FieldResult, GlobalId, NodeKind};

/// Articles' part of `Mutation`.
#[derive(Default)]
pub struct ArticlesMutation;

#[Object]
impl ArticlesMutation {
    /// Publishes an article by the viewer. UNAUTHENTICATED when anonymous, BAD_USER_INPUT on
    /// blank fields.
    async fn create_article(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new article.")] input: CreateArticleInput,
    ) -> FieldResult<CreateArticlePayload> {
        let viewer = ctx.viewer().require()?;
        let new = NewArticle {
            title: input.title,
            description: input.description,
            body: input.body,
            tags: input.tags.unwrap_or_default(),
        };
        let article = db::retrying(|| service::create(ctx.db(), viewer, new.clone())).await?;
        ctx.created_tag(cache_tags::entity(NodeKind::Article, article.id));
        ctx.write_tag(cache_tags::list(NodeKind::Article));
        ctx.write_tag(cache_tags::tags());
        Ok(CreateArticlePayload {
            article: Article(article),
        })
    }

    /// Changes one of the viewer's articles. NOT_FOUND for an unknown slug, FORBIDDEN for
    /// someone else's article.
    async fn update_article(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The slug of the article to change.")] slug: String,
        #[graphql(desc = "The changes to make.")] input: UpdateArticleInput,
    ) -> FieldResult<UpdateArticlePayload> {
        let viewer = ctx.viewer().require()?;
        let changes = ArticleChanges {
            title: input.title,
            description: input.description,
            body: input.body,
            tags: input.tags,
        };
        let article =
            db::retrying(|| service::update(ctx.db(), viewer, &slug, changes.clone())).await?;
        ctx.write_tag(cache_tags::entity(NodeKind::Article, article.id));
        ctx.write_tag(cache_tags::list(NodeKind::Article));
        ctx.write_tag(cache_tags::tags());
        Ok(UpdateArticlePayload {
            article: Article(article),
        })
    }

    /// Deletes one of the viewer's articles with its comments and favorites. NOT_FOUND for an
    /// unknown slug, FORBIDDEN for someone else's article.
    async fn delete_article(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The slug of the article to delete.")] slug: String,
    ) -> FieldResult<DeleteArticlePayload> {
        let viewer = ctx.viewer().require()?;
        let id = db::retrying(|| service::delete(ctx.db(), viewer, &slug)).await?;
        for tag in [
            cache_tags::entity(NodeKind::Article, id),
            cache_tags::list(NodeKind::Article),
            cache_tags::tags(),
            cache_tags::list(NodeKind::Comment),
        ] {
            ctx.write_tag(tag);
        }
        Ok(DeleteArticlePayload {
            deleted_id: GlobalId::encode(NodeKind::Article, id),
        })
    }

    /// Adds an article to the viewer's favorites; twice is a no-op. NOT_FOUND for an unknown slug.
    async fn favorite_article(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The slug of the article to favorite.")] slug: String,
    ) -> FieldResult<FavoriteArticlePayload> {
        let viewer = ctx.viewer().require()?;
        let article = db::retrying(|| service::favorite(ctx.db(), viewer, &slug)).await?;
        ctx.write_tag(cache_tags::entity(NodeKind::Article, article.id));
        ctx.write_tag(cache_tags::list(NodeKind::Article));
        Ok(FavoriteArticlePayload {
            article: Article(article),
        })
    }

    /// Removes an article from the viewer's favorites; a no-op when it was not one. NOT_FOUND
    /// for an unknown slug.
    async fn unfavorite_article(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The slug of the article to remove from the favorites.")] slug: String,
    ) -> FieldResult<UnfavoriteArticlePayload> {
        let viewer = ctx.viewer().require()?;
        let article = db::retrying(|| service::unfavorite(ctx.db(), viewer, &slug)).await?;
        ctx.write_tag(cache_tags::entity(NodeKind::Article, article.id));
        ctx.write_tag(cache_tags::list(NodeKind::Article));
        Ok(UnfavoriteArticlePayload {
            article: Article(article),
        })
    }
}
