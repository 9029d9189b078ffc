//! The root mutation fields of users.

use async_graphql::{Context, Object};

use entity::user;

use super::service::{self, AccountChanges, Registration};
use super::types::{
    FollowUserPayload, LoginInput, LoginPayload, RegisterInput, RegisterPayload,
    SignOutEverywherePayload, UnfollowUserPayload, UpdateViewerInput, UpdateViewerPayload, User,
};
use crate::auth::{AccountKey, AuthThrottle, ClientAddress, Revocations};
use crate::error::AppError;
use crate::graphql::{ContextExt, FieldResult};
use crate::graphql::{NodeKind, cache_tags};

/// Users' part of `Mutation`.
#[derive(Default)]
pub struct UsersMutation;

fn issue_token(ctx: &Context<'_>, user: &user::Model) -> FieldResult<String> {
    ctx.tokens()
        .issue(user.id, user.token_version)
        .map_err(|err| AppError::internal(err).into())
}

/// The sign-in throttle and the client's address, when the server set them.
fn throttle<'a>(ctx: &Context<'a>) -> Option<(&'a AuthThrottle, ClientAddress)> {
    let throttle = ctx.data_opt::<AuthThrottle>()?;
    let address = ctx.data_opt::<ClientAddress>()?;
    Some((throttle, *address))
}

/// Tells this instance at once that `user`'s older tokens are revoked (the others learn it
/// within `CONDUIT_REVOCATION_CHECK_SECS`).
fn revoked(ctx: &Context<'_>, user: &user::Model) {
    if let Some(revocations) = ctx.data_opt::<Revocations>() {
        revocations.revoked(user.id, user.token_version);
    }
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
        ctx.write_tag(cache_tags::list(NodeKind::User));
        Ok(RegisterPayload {
            token: issue_token(ctx, &user)?,
            user: User(user.into()),
        })
    }

    /// Signs in with email and password. UNAUTHENTICATED when they do not match an account;
    /// RATE_LIMITED after repeated failures for the account or from the client's address.
    async fn login(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The credentials.")] input: LoginInput,
    ) -> FieldResult<LoginPayload> {
        // Input first, so that no throttling key or lookup is made of what is not an email.
        service::check_login_input(&input.email, &input.password)?;
        let throttling = throttle(ctx);
        let mut attempt = match throttling {
            Some((throttle, address)) => Some(throttle.begin_login(address).await?),
            None => None,
        };
        let found = service::find_by_email(ctx.db(), &input.email).await?;
        if let (Some((throttle, _)), Some(attempt)) = (throttling, attempt.as_mut()) {
            // The account found, so that every spelling of one email shares one budget.
            let account = found.as_ref().map_or_else(
                || AccountKey::unknown(&input.email),
                |user| AccountKey::User(user.id),
            );
            throttle.for_account(attempt, &account).await?;
        }
        let user = service::verify_login(ctx.passwords(), found, input.password).await?;
        if let (Some((throttle, _)), Some(attempt)) = (throttling, attempt) {
            throttle.succeeded(attempt).await;
        }
        Ok(LoginPayload {
            token: issue_token(ctx, &user)?,
            user: User(user.into()),
        })
    }

    /// Changes the viewer's own account. UNAUTHENTICATED when anonymous. Changing the email or
    /// the password needs `currentPassword` (BAD_USER_INPUT naming it when missing or wrong);
    /// changing the password signs out every other session: tokens issued before stop working.
    async fn update_viewer(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The changes to make.")] input: UpdateViewerInput,
    ) -> FieldResult<UpdateViewerPayload> {
        let user_id = ctx.viewer().require()?;
        let changes_password = input.password.is_some();
        // Guessing the current password with a stolen token counts like failed sign-ins.
        let attempt = match (throttle(ctx), &input.current_password) {
            (Some((throttle, _)), Some(_)) => {
                let mut attempt = crate::auth::LoginAttempt::default();
                throttle
                    .for_account(&mut attempt, &AccountKey::User(user_id))
                    .await?;
                Some((throttle, attempt))
            }
            _ => None,
        };
        let changes = AccountChanges {
            email: input.email,
            username: input.username,
            password: input.password,
            bio: input.bio,
            image: input.image,
            current_password: input.current_password,
        };
        let updated = service::update_account(ctx.db(), ctx.passwords(), user_id, changes).await;
        if let Some((throttle, attempt)) = attempt {
            let wrong_password = matches!(&updated, Err(AppError::BadUserInput { fields, .. })
                if fields.get("currentPassword").map(String::as_str) == Some(service::WRONG_CURRENT_PASSWORD));
            if !wrong_password {
                throttle.succeeded(attempt).await;
            }
        }
        let user = updated?;
        if changes_password {
            revoked(ctx, &user);
        }
        ctx.write_tag(cache_tags::entity(NodeKind::User, user.id));
        ctx.write_tag(cache_tags::list(NodeKind::User));
        Ok(UpdateViewerPayload {
            token: issue_token(ctx, &user)?,
            user: User(user.into()),
        })
    }

    /// Signs the viewer out everywhere: every token issued so far, this request's included, stops
    /// working on every instance (at once on this one, within a minute on the others). The
    /// answer holds a fresh token for this client, to keep it signed in if it wants.
    /// UNAUTHENTICATED when anonymous.
    async fn sign_out_everywhere(
        &self,
        ctx: &Context<'_>,
    ) -> FieldResult<SignOutEverywherePayload> {
        let user_id = ctx.viewer().require()?;
        let user = crate::db::retrying(|| service::revoke_tokens(ctx.db(), user_id)).await?;
        revoked(ctx, &user);
        Ok(SignOutEverywherePayload {
            token: issue_token(ctx, &user)?,
            user: User(user.into()),
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
        let user = crate::db::retrying(|| service::follow(ctx.db(), viewer, &username)).await?;
        ctx.write_tag(cache_tags::entity(NodeKind::User, user.id));
        ctx.write_tag(cache_tags::feed(viewer));
        Ok(FollowUserPayload { user: User(user) })
    }

    /// Stops following a user; a no-op when not following. NOT_FOUND for an unknown username.
    async fn unfollow_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user to stop following.")] username: String,
    ) -> FieldResult<UnfollowUserPayload> {
        let viewer = ctx.viewer().require()?;
        let user = crate::db::retrying(|| service::unfollow(ctx.db(), viewer, &username)).await?;
        ctx.write_tag(cache_tags::entity(NodeKind::User, user.id));
        ctx.write_tag(cache_tags::feed(viewer));
        Ok(UnfollowUserPayload { user: User(user) })
    }
}
