//! DataLoaders for the relations of articles: by id, favorites, the article lists of users.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use entity::article;
use sea_orm::DatabaseConnection;

use super::service::{self, UserList};
use crate::error::AppError;
use crate::pagination::{Page, PageArgs};

/// Articles by id.
pub struct ArticleById(pub DatabaseConnection);

impl Loader<i64> for ArticleById {
    type Value = article::Model;
    type Error = AppError;

    async fn load(&self, ids: &[i64]) -> Result<HashMap<i64, article::Model>, AppError> {
        let articles = service::find_by_ids(&self.0, ids).await?;
        Ok(articles
            .into_iter()
            .map(|article| (article.id, article))
            .collect())
    }
}

/// How many users favorited each article.
pub struct FavoriteCount(pub DatabaseConnection);

impl Loader<i64> for FavoriteCount {
    type Value = i64;
    type Error = AppError;

    async fn load(&self, ids: &[i64]) -> Result<HashMap<i64, i64>, AppError> {
        let counts = service::favorite_counts(&self.0, ids).await?;
        Ok(ids
            .iter()
            .map(|id| (*id, counts.get(id).copied().unwrap_or(0)))
            .collect())
    }
}

/// Whether the viewer favorited each article; always false for an anonymous viewer.
pub struct FavoritedByViewer {
    /// The pool.
    pub db: DatabaseConnection,
    /// The viewer's user id.
    pub viewer: Option<i64>,
}

impl Loader<i64> for FavoritedByViewer {
    type Value = bool;
    type Error = AppError;

    async fn load(&self, ids: &[i64]) -> Result<HashMap<i64, bool>, AppError> {
        let favorited = match self.viewer {
            Some(viewer) => service::favorited_among(&self.db, viewer, ids).await?,
            None => Default::default(),
        };
        Ok(ids.iter().map(|id| (*id, favorited.contains(id))).collect())
    }
}

/// One page of a user's list of articles.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserPageKey {
    /// Which list.
    pub list: UserList,
    /// Whose list.
    pub user_id: i64,
    /// Which page.
    pub args: PageArgs,
}

/// Pages of users' article lists: one statement per distinct (list, page arguments).
pub struct UserArticlePages(pub DatabaseConnection);

impl Loader<UserPageKey> for UserArticlePages {
    type Value = Page<article::Model>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[UserPageKey],
    ) -> Result<HashMap<UserPageKey, Self::Value>, AppError> {
        let mut groups: HashMap<(UserList, &PageArgs), Vec<i64>> = HashMap::new();
        for key in keys {
            groups
                .entry((key.list, &key.args))
                .or_default()
                .push(key.user_id);
        }
        let mut pages = HashMap::new();
        for ((list, args), user_ids) in groups {
            let mut found = service::user_pages(&self.0, list, &user_ids, args).await?;
            for user_id in user_ids {
                let page = found
                    .remove(&user_id)
                    .unwrap_or_else(|| Page::empty(args.after.is_some()));
                pages.insert(
                    UserPageKey {
                        list,
                        user_id,
                        args: args.clone(),
                    },
                    page,
                );
            }
        }
        Ok(pages)
    }
}

/// How many articles each user has in one of their lists.
pub struct UserArticleCount(pub DatabaseConnection);

impl Loader<(UserList, i64)> for UserArticleCount {
    type Value = i64;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[(UserList, i64)],
    ) -> Result<HashMap<(UserList, i64), i64>, AppError> {
        let mut counts = HashMap::new();
        for list in [UserList::Written, UserList::Favorited] {
            let user_ids: Vec<i64> = keys
                .iter()
                .filter(|(l, _)| *l == list)
                .map(|(_, id)| *id)
                .collect();
            if user_ids.is_empty() {
                continue;
            }
            let found = service::user_counts(&self.0, list, &user_ids).await?;
            for user_id in user_ids {
                counts.insert((list, user_id), found.get(&user_id).copied().unwrap_or(0));
            }
        }
        Ok(counts)
    }
}
