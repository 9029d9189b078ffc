//! The root query fields of users.

use async_graphql::{Context, Object};

use super::loaders::UserById;
use super::service;
use super::types::User;
use crate::cache::{entity_tag, list_tag};
use crate::graphql::{ContextExt, FieldResult};

/// Users' part of `Query`.
#[derive(Default)]
pub struct UsersQuery;

#[Object]
impl UsersQuery {
    /// The signed-in user; null when anonymous.
    #[graphql(cache_control(max_age = 60, private))]
    async fn viewer(&self, ctx: &Context<'_>) -> FieldResult<Option<User>> {
        ctx.mark_private();
        let Some(user_id) = ctx.viewer().user_id() else {
            return Ok(None);
        };
        ctx.read_tag(entity_tag("User", user_id));
        Ok(ctx.loader::<UserById>().load_one(user_id).await?.map(User))
    }

    /// The user named `username` (any case); null when there is none.
    async fn user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The username to look up, case-insensitively.")] username: String,
    ) -> FieldResult<Option<User>> {
        ctx.read_tag(list_tag("User"));
        let user = service::find_by_username(ctx.db(), &username).await?;
        if let Some(user) = &user {
            ctx.read_tag(entity_tag("User", user.id));
        }
        Ok(user.map(User))
    }
}
