//! DataLoaders for the relations of tags.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use sea_orm::DatabaseConnection;

use super::service;
use crate::error::AppError;
use crate::graphql::loading::LoaderScope;

/// The tag names of each article, alphabetical.
pub struct TagsOfArticle(pub DatabaseConnection);

impl Loader<i64> for TagsOfArticle {
    type Value = Vec<String>;
    type Error = AppError;

    async fn load(&self, article_ids: &[i64]) -> Result<HashMap<i64, Vec<String>>, AppError> {
        let mut names = service::names_by_article(&self.0, article_ids).await?;
        Ok(article_ids
            .iter()
            .map(|id| (*id, names.remove(id).unwrap_or_default()))
            .collect())
    }
}

/// Attaches this area's loaders to a request.
pub fn register(request: async_graphql::Request, scope: &LoaderScope) -> async_graphql::Request {
    request.data(scope.loader(TagsOfArticle(scope.db.clone())))
}
