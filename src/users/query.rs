//! The root query fields of users.

use async_graphql::{Context, Object};

use super::loaders::UserById;
use super::service;
use super::types::User;
use crate::graphql::{ContextExt, FieldResult};

/// Users' part of `Query`.
#[derive(Default)]
pub struct UsersQuery;

#[Object]
impl UsersQuery {
    /// The signed-in user; null when anonymous.
    async fn viewer(&self, ctx: &Context<'_>) -> FieldResult<Option<User>> {
        let Some(user_id) = ctx.viewer().user_id() else {
            return Ok(None);
        };
        Ok(ctx.loader::<UserById>().load_one(user_id).await?.map(User))
    }

    /// The user named `username` (any case); null when there is none.
    async fn user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The username to look up, case-insensitively.")] username: String,
    ) -> FieldResult<Option<User>> {
        Ok(service::find_by_username(ctx.db(), &username)
            .await?
            .map(User))
    }
}
