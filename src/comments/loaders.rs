//! The per-request DataLoaders of comments: by id, pages of each article's comments, comment
//! counts; registered by [`register`].

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use entity::comment;
use sea_orm::DatabaseConnection;

use super::service::{self, CommentExtras, CommentRow};
use crate::error::AppError;
use crate::graphql::loading::{CountOf, CountedRelation, LoaderScope};
use crate::pagination::{Page, PageArgs};

/// Comments by id.
pub struct CommentById(pub DatabaseConnection);

impl Loader<i64> for CommentById {
    type Value = comment::Model;
    type Error = AppError;

    async fn load(&self, ids: &[i64]) -> Result<HashMap<i64, comment::Model>, AppError> {
        let comments = service::find_by_ids(&self.0, ids).await?;
        Ok(comments
            .into_iter()
            .map(|comment| (comment.id, comment))
            .collect())
    }
}

/// One page of an article's comments, with what to fetch with each comment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CommentPageKey {
    /// Whose comments.
    pub article_id: i64,
    /// Which page.
    pub args: PageArgs,
    /// What to fetch with each comment.
    pub extras: CommentExtras,
}

/// Pages of articles' comments: one statement per distinct (page, extras).
pub struct CommentPages(pub DatabaseConnection);

impl CommentPages {
    /// The pages of `article_ids` (one statement), as loader entries.
    pub async fn pages(
        db: &DatabaseConnection,
        article_ids: &[i64],
        args: &PageArgs,
        extras: CommentExtras,
    ) -> Result<Vec<(CommentPageKey, Page<CommentRow>)>, AppError> {
        let mut found = service::pages_by_article(db, article_ids, args, extras).await?;
        Ok(article_ids
            .iter()
            .map(|article_id| {
                let page = found
                    .remove(article_id)
                    .unwrap_or_else(|| Page::empty(args.after.is_some()));
                let key = CommentPageKey {
                    article_id: *article_id,
                    args: args.clone(),
                    extras,
                };
                (key, page)
            })
            .collect())
    }
}

impl Loader<CommentPageKey> for CommentPages {
    type Value = Page<CommentRow>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[CommentPageKey],
    ) -> Result<HashMap<CommentPageKey, Self::Value>, AppError> {
        let mut groups: HashMap<(&PageArgs, CommentExtras), Vec<i64>> = HashMap::new();
        for key in keys {
            groups
                .entry((&key.args, key.extras))
                .or_default()
                .push(key.article_id);
        }
        let mut pages = HashMap::new();
        for ((args, extras), article_ids) in groups {
            pages.extend(Self::pages(&self.0, &article_ids, args, extras).await?);
        }
        Ok(pages)
    }
}

/// The comments of each article.
pub struct ArticleComments;

impl CountedRelation for ArticleComments {
    type Entity = comment::Entity;

    fn column() -> comment::Column {
        comment::Column::ArticleId
    }
}

/// How many comments each article has.
pub type CommentCount = CountOf<ArticleComments>;

/// Attaches this area's loaders to a request.
pub fn register(request: async_graphql::Request, scope: &LoaderScope) -> async_graphql::Request {
    request
        .data(scope.loader(CommentById(scope.db.clone())))
        .data(scope.loader(CommentPages(scope.db.clone())))
        .data(scope.loader(CommentCount::new(scope.db.clone())))
}
