//! DataLoaders for the relations of comments.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use entity::comment;
use sea_orm::DatabaseConnection;

use super::service;
use crate::error::AppError;
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

/// One page of an article's comments.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CommentPageKey {
    /// Whose comments.
    pub article_id: i64,
    /// Which page.
    pub args: PageArgs,
}

/// Pages of articles' comments: one statement per distinct page arguments.
pub struct CommentPages(pub DatabaseConnection);

impl Loader<CommentPageKey> for CommentPages {
    type Value = Page<comment::Model>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[CommentPageKey],
    ) -> Result<HashMap<CommentPageKey, Self::Value>, AppError> {
        let mut groups: HashMap<&PageArgs, Vec<i64>> = HashMap::new();
        for key in keys {
            groups.entry(&key.args).or_default().push(key.article_id);
        }
        let mut pages = HashMap::new();
        for (args, article_ids) in groups {
            let mut found = service::pages_by_article(&self.0, &article_ids, args).await?;
            for article_id in article_ids {
                let page = found
                    .remove(&article_id)
                    .unwrap_or_else(|| Page::empty(args.after.is_some()));
                let key = CommentPageKey {
                    article_id,
                    args: args.clone(),
                };
                pages.insert(key, page);
            }
        }
        Ok(pages)
    }
}

/// How many comments each article has.
pub struct CommentCount(pub DatabaseConnection);

impl Loader<i64> for CommentCount {
    type Value = i64;
    type Error = AppError;

    async fn load(&self, ids: &[i64]) -> Result<HashMap<i64, i64>, AppError> {
        let counts = service::counts_by_article(&self.0, ids).await?;
        Ok(ids
            .iter()
            .map(|id| (*id, counts.get(id).copied().unwrap_or(0)))
            .collect())
    }
}
