//! The per-request DataLoaders of users: profiles by id, whether the viewer follows each user,
//! follower counts; registered by [`register`], fed by pages that fetched users ahead.

use std::collections::HashMap;

use async_graphql::Context;
use async_graphql::dataloader::Loader;
use entity::follow;
use sea_orm::DatabaseConnection;

use super::service::{self, Profile, ProfileRow};
use crate::error::AppError;
use crate::graphql::ContextExt;
use crate::graphql::loading::{CountOf, CountedRelation, LoaderScope, ViewerAmong, ViewerRelation};

/// Profiles by user id.
pub struct UserById(pub DatabaseConnection);

impl Loader<i64> for UserById {
    type Value = Profile;
    type Error = AppError;

    async fn load(&self, ids: &[i64]) -> Result<HashMap<i64, Profile>, AppError> {
        let users = service::find_by_ids(&self.0, ids).await?;
        Ok(users.into_iter().map(|user| (user.id, user)).collect())
    }
}

/// Follows, from the follower (the viewer) to the followed user (the key).
pub struct Follows;

impl ViewerRelation for Follows {
    type Entity = follow::Entity;

    fn viewer_column() -> follow::Column {
        follow::Column::FollowerId
    }

    fn key_column() -> follow::Column {
        follow::Column::FolloweeId
    }
}

/// Whether the viewer follows each user; always false for an anonymous viewer.
pub type FollowedByViewer = ViewerAmong<Follows>;

/// The followers of each user.
pub struct Followers;

impl CountedRelation for Followers {
    type Entity = follow::Entity;

    fn column() -> follow::Column {
        follow::Column::FolloweeId
    }
}

/// How many users follow each user.
pub type FollowerCount = CountOf<Followers>;

/// Attaches this area's loaders to a request.
pub fn register(request: async_graphql::Request, scope: &LoaderScope) -> async_graphql::Request {
    request
        .data(scope.loader(UserById(scope.db.clone())))
        .data(scope.loader(FollowedByViewer::new(scope.db.clone(), scope.viewer)))
        .data(scope.loader(FollowerCount::new(scope.db.clone())))
}

/// Feeds profiles fetched with another area's rows to the loaders, with what was fetched of them.
pub async fn feed(ctx: &Context<'_>, rows: &[&ProfileRow]) {
    let mut profiles = Vec::new();
    let mut following = Vec::new();
    let mut followers = Vec::new();
    for row in rows {
        profiles.push((row.profile.id, row.profile.clone()));
        if let Some(value) = row.following {
            following.push((row.profile.id, value));
        }
        if let Some(count) = row.followers_count {
            followers.push((row.profile.id, count));
        }
    }
    ctx.loader::<UserById>().feed_many(profiles).await;
    if !following.is_empty() {
        ctx.loader::<FollowedByViewer>().feed_many(following).await;
    }
    if !followers.is_empty() {
        ctx.loader::<FollowerCount>().feed_many(followers).await;
    }
}
