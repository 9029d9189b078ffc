//! The root mutation fields of users.

use async_graphql::{Context, Object};

use super::service::{self, AccountChanges, Registration};
use super::types::{
    FollowUserPayload, LoginInput, LoginPayload, RegisterInput, RegisterPayload,
    UnfollowUserPayload, UpdateViewerInput, UpdateViewerPayload, User,
};
use crate::auth::{AuthThrottle, ClientAddress};
use crate::cache::{entity_tag, feed_tag, list_tag};
use crate::error::AppError;
use crate::graphql::{ContextExt, FieldResult};

/// Users' part of `Mutation`.
#[derive(Default)]
pub struct UsersMutation;

fn issue_token(ctx: &Context<'_>, user_id: i64) -> FieldResult<String> {
    ctx.tokens()
        .issue(user_id)
        .map_err(|err| AppError::internal(err).into())
}

/// The sign-in throttle and the client's address, when the server set them.
fn throttle<'a>(ctx: &Context<'a>) -> Option<(&'a AuthThrottle, std::net::IpAddr)> {
    let throttle = ctx.data_opt::<AuthThrottle>()?;
    let address = ctx.data_opt::<ClientAddress>()?;
    Some((throttle, address.0))
}

#[Object]
impl UsersMutation {
    /// Creates an account and signs in. BAD_USER_INPUT on invalid fields, CONFLICT when the
    /// username or email is taken, RATE_LIMITED after too many registrations from one address.
    async fn register(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new account.")] input: RegisterInput,
    ) -> FieldResult<RegisterPayload> {
        if let Some((throttle, address)) = throttle(ctx) {
            throttle.register(address).await?;
        }
        let registration = Registration {
            username: input.username,
            email: input.email,
            password: input.password,
        };
        let user = service::register(ctx.db(), ctx.passwords(), registration).await?;
        ctx.write_tag(list_tag("User"));
        Ok(RegisterPayload {
            token: issue_token(ctx, user.id)?,
            user: User(user),
        })
    }

    /// Signs in with email and password. UNAUTHENTICATED when they do not match an account;
    /// RATE_LIMITED after repeated failures for the account or from the client's address.
    async fn login(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The credentials.")] input: LoginInput,
    ) -> FieldResult<LoginPayload> {
        let attempt = match throttle(ctx) {
            Some((throttle, address)) => {
                Some((throttle, throttle.begin_login(&input.email, address).await?))
            }
            None => None,
        };
        let user = service::login(ctx.db(), ctx.passwords(), &input.email, input.password).await?;
        if let Some((throttle, attempt)) = attempt {
            throttle.login_succeeded(attempt).await;
        }
        Ok(LoginPayload {
            token: issue_token(ctx, user.id)?,
            user: User(user),
        })
    }

    /// Changes the viewer's own account. UNAUTHENTICATED when anonymous.
    async fn update_viewer(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The changes to make.")] input: UpdateViewerInput,
    ) -> FieldResult<UpdateViewerPayload> {
        let user_id = ctx.viewer().require()?;
        let changes = AccountChanges {
            email: input.email,
            username: input.username,
            password: input.password,
            bio: input.bio,
            image: input.image,
        };
        let user = service::update_account(ctx.db(), ctx.passwords(), user_id, changes).await?;
        ctx.write_tag(entity_tag("User", user.id));
        ctx.write_tag(list_tag("User"));
        Ok(UpdateViewerPayload {
            token: issue_token(ctx, user.id)?,
            user: User(user),
        })
    }

    /// Follows a user; following twice is a no-op. BAD_USER_INPUT for yourself, NOT_FOUND for
    /// an unknown username.
    async fn follow_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user to follow.")] username: String,
    ) -> FieldResult<FollowUserPayload> {
        let viewer = ctx.viewer().require()?;
        let user = service::follow(ctx.db(), viewer, &username).await?;
        ctx.write_tag(entity_tag("User", user.id));
        ctx.write_tag(feed_tag(viewer));
        Ok(FollowUserPayload { user: User(user) })
    }

    /// Stops following a user; a no-op when not following. NOT_FOUND for an unknown username.
    async fn unfollow_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user to stop following.")] username: String,
    ) -> FieldResult<UnfollowUserPayload> {
        let viewer = ctx.viewer().require()?;
        let user = service::unfollow(ctx.db(), viewer, &username).await?;
        ctx.write_tag(entity_tag("User", user.id));
        ctx.write_tag(feed_tag(viewer));
        Ok(UnfollowUserPayload { user: User(user) })
    }
}
