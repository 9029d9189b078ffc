//! The root query fields of users.

use async_graphql::{Context, Object};

use super::loaders::{self, UserById};
use super::service;
use super::types::{User, profile_extras};
use crate::graphql::{ContextExt, FieldResult};
use crate::graphql::{NodeKind, cache_tags};

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
        ctx.read_tag(cache_tags::entity(NodeKind::User, user_id));
        Ok(ctx.loader::<UserById>().load_one(user_id).await?.map(User))
    }

    /// The user named `username` (any case); null when there is none.
    async fn user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The username to look up, case-insensitively.")] username: String,
    ) -> FieldResult<Option<User>> {
        ctx.read_tag(cache_tags::list(NodeKind::User));
        let look = ctx.look_ahead();
        let extras = profile_extras(ctx, std::slice::from_ref(&look));
        let Some(row) = service::profile_by_username_with(ctx.db(), &username, extras).await?
        else {
            return Ok(None);
        };
        ctx.read_tag(cache_tags::entity(NodeKind::User, row.profile.id));
        loaders::feed(ctx, &[&row]).await;
        Ok(Some(User(row.profile)))
    }
}
