//! DataLoaders for the relations of users: by id, followed by the viewer, follower counts.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use entity::user;
use sea_orm::DatabaseConnection;

use super::service;
use crate::error::AppError;

/// Users by id.
pub struct UserById(pub DatabaseConnection);

impl Loader<i64> for UserById {
    type Value = user::Model;
    type Error = AppError;

    async fn load(&self, ids: &[i64]) -> Result<HashMap<i64, user::Model>, AppError> {
        let users = service::find_by_ids(&self.0, ids).await?;
        Ok(users.into_iter().map(|user| (user.id, user)).collect())
    }
}

/// Whether the viewer follows each user; always false for an anonymous viewer.
pub struct FollowedByViewer {
    /// The pool.
    pub db: DatabaseConnection,
    /// The viewer's user id.
    pub viewer: Option<i64>,
}

impl Loader<i64> for FollowedByViewer {
    type Value = bool;
    type Error = AppError;

    async fn load(&self, ids: &[i64]) -> Result<HashMap<i64, bool>, AppError> {
        let followed = match self.viewer {
            Some(viewer) => service::followed_among(&self.db, viewer, ids).await?,
            None => Default::default(),
        };
        Ok(ids.iter().map(|id| (*id, followed.contains(id))).collect())
    }
}

/// How many followers each user has.
pub struct FollowerCount(pub DatabaseConnection);

impl Loader<i64> for FollowerCount {
    type Value = i64;
    type Error = AppError;

    async fn load(&self, ids: &[i64]) -> Result<HashMap<i64, i64>, AppError> {
        let counts = service::follower_counts(&self.0, ids).await?;
        Ok(ids
            .iter()
            .map(|id| (*id, counts.get(id).copied().unwrap_or(0)))
            .collect())
    }
}
