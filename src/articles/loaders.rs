//! The per-request DataLoaders of articles: by id, favorite counts, whether the viewer favorited
//! each article, and the article lists of users; registered by [`register`], fed by pages that
//! fetched these values ahead.

use std::collections::HashMap;

use async_graphql::Context;
use async_graphql::dataloader::Loader;
use entity::{article, favorite};
use sea_orm::DatabaseConnection;

use super::service::{self, ArticleExtras, ArticleRow, UserList};
use crate::error::AppError;
use crate::graphql::ContextExt;
use crate::graphql::loading::{CountOf, CountedRelation, LoaderScope, ViewerAmong, ViewerRelation};
use crate::pagination::{Page, PageArgs};
use crate::tags::loaders::TagsOfArticle;
use crate::users;

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

/// The favorites of each article.
pub struct FavoritesOfArticle;

impl CountedRelation for FavoritesOfArticle {
    type Entity = favorite::Entity;

    fn column() -> favorite::Column {
        favorite::Column::ArticleId
    }
}

/// How many users favorited each article.
pub type FavoriteCount = CountOf<FavoritesOfArticle>;

/// Favorites, from the user (the viewer) to the article (the key).
pub struct Favorites;

impl ViewerRelation for Favorites {
    type Entity = favorite::Entity;

    fn viewer_column() -> favorite::Column {
        favorite::Column::UserId
    }

    fn key_column() -> favorite::Column {
        favorite::Column::ArticleId
    }
}

/// Whether the viewer favorited each article; always false for an anonymous viewer.
pub type FavoritedByViewer = ViewerAmong<Favorites>;

/// One page of a user's list of articles, with what to fetch with each article.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserPageKey {
    /// Which list.
    pub list: UserList,
    /// Whose list.
    pub user_id: i64,
    /// Which page.
    pub args: PageArgs,
    /// What to fetch with each article.
    pub extras: ArticleExtras,
}

/// Pages of users' article lists: one statement per distinct (list, page, extras).
pub struct UserArticlePages(pub DatabaseConnection);

impl Loader<UserPageKey> for UserArticlePages {
    type Value = Page<ArticleRow>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[UserPageKey],
    ) -> Result<HashMap<UserPageKey, Self::Value>, AppError> {
        let mut groups: HashMap<(UserList, &PageArgs, ArticleExtras), Vec<i64>> = HashMap::new();
        for key in keys {
            groups
                .entry((key.list, &key.args, key.extras))
                .or_default()
                .push(key.user_id);
        }
        let mut pages = HashMap::new();
        for ((list, args, extras), user_ids) in groups {
            let mut found = service::user_pages(&self.0, list, &user_ids, args, extras).await?;
            for user_id in user_ids {
                let page = found
                    .remove(&user_id)
                    .unwrap_or_else(|| Page::empty(args.after.is_some()));
                let key = UserPageKey {
                    list,
                    user_id,
                    args: args.clone(),
                    extras,
                };
                pages.insert(key, page);
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

/// Attaches this area's loaders to a request.
pub fn register(request: async_graphql::Request, scope: &LoaderScope) -> async_graphql::Request {
    request
        .data(scope.loader(ArticleById(scope.db.clone())))
        .data(scope.loader(FavoriteCount::new(scope.db.clone())))
        .data(scope.loader(FavoritedByViewer::new(scope.db.clone(), scope.viewer)))
        .data(scope.loader(UserArticlePages(scope.db.clone())))
        .data(scope.loader(UserArticleCount(scope.db.clone())))
}

/// Feeds what was fetched with each article to the loaders (authors, counts, favorites, tags).
pub async fn feed(ctx: &Context<'_>, rows: &[&ArticleRow]) {
    let authors: Vec<&users::service::ProfileRow> =
        rows.iter().filter_map(|row| row.author.as_ref()).collect();
    users::loaders::feed(ctx, &authors).await;
    let mut counts = Vec::new();
    let mut favorited = Vec::new();
    let mut tags = Vec::new();
    for row in rows {
        let id = row.article.id;
        if let Some(count) = row.favorites_count {
            counts.push((id, count));
        }
        if let Some(value) = row.favorited {
            favorited.push((id, value));
        }
        if let Some(names) = &row.tags {
            tags.push((id, names.clone()));
        }
    }
    if !counts.is_empty() {
        ctx.loader::<FavoriteCount>().feed_many(counts).await;
    }
    if !favorited.is_empty() {
        ctx.loader::<FavoritedByViewer>().feed_many(favorited).await;
    }
    if !tags.is_empty() {
        ctx.loader::<TagsOfArticle>().feed_many(tags).await;
    }
}
