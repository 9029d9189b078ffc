//! The GraphQL objects and inputs of users.

use async_graphql::{Context, ID, InputObject, Lookahead, Object, SimpleObject};

use super::loaders::{FollowedByViewer, FollowerCount};
use super::service::{Profile, ProfileExtras};
use crate::articles::service::UserList;
use crate::articles::types::{ArticleConnection, user_articles};
use crate::graphql::{CacheTagged, cache_tags};
use crate::graphql::{ContextExt, DateTime, FieldResult, GlobalId, NodeKind};

/// A person with an account: their public profile, and their email when they look at themselves.
#[derive(Debug, Clone)]
pub struct User(pub Profile);

impl CacheTagged for User {
    fn list_tag() -> cache_tags::CacheTag {
        cache_tags::list(NodeKind::User)
    }

    fn entity_tag(&self) -> Option<cache_tags::CacheTag> {
        Some(cache_tags::entity(NodeKind::User, self.0.id))
    }
}

/// A person with an account: their public profile, and their email when they look at themselves.
#[Object(cache_control(max_age = 60))]
impl User {
    /// The global id of this user.
    pub async fn id(&self) -> ID {
        GlobalId::encode(NodeKind::User, self.0.id)
    }

    /// The unique name of this user (unique case-insensitively).
    async fn username(&self) -> &str {
        &self.0.username
    }

    /// The email address: visible to the user themself only, null for everyone else.
    #[graphql(cache_control(max_age = 60, private))]
    async fn email(&self, ctx: &Context<'_>) -> Option<&str> {
        ctx.mark_private();
        (ctx.viewer().user_id() == Some(self.0.id)).then_some(self.0.email.as_str())
    }

    /// A short text about the user, if they wrote one.
    async fn bio(&self, ctx: &Context<'_>) -> FieldResult<Option<&str>> {
        ctx.carry(self.0.bio.as_deref().unwrap_or_default())?;
        Ok(self.0.bio.as_deref())
    }

    /// The URL of the user's picture, if they set one.
    async fn image(&self, ctx: &Context<'_>) -> FieldResult<Option<&str>> {
        ctx.carry(self.0.image.as_deref().unwrap_or_default())?;
        Ok(self.0.image.as_deref())
    }

    /// Whether the viewer follows this user; false when anonymous.
    #[graphql(cache_control(max_age = 60, private))]
    async fn following(&self, ctx: &Context<'_>) -> FieldResult<bool> {
        ctx.mark_private();
        if ctx.viewer().user_id().is_none() {
            return Ok(false);
        }
        let loaded = ctx.loader::<FollowedByViewer>().load_one(self.0.id).await?;
        Ok(loaded.unwrap_or(false))
    }

    /// How many users follow this user.
    async fn followers_count(&self, ctx: &Context<'_>) -> FieldResult<i64> {
        let loaded = ctx.loader::<FollowerCount>().load_one(self.0.id).await?;
        Ok(loaded.unwrap_or(0))
    }

    /// The articles this user wrote, newest first.
    async fn articles(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many articles to return: 0 to 100, default 20.")] first: Option<i32>,
        #[graphql(
            desc = "Return the articles after this cursor (an `endCursor` or edge `cursor`)."
        )]
        after: Option<String>,
    ) -> FieldResult<ArticleConnection> {
        Ok(user_articles(ctx, UserList::Written, self.0.id, first, after.as_deref()).await?)
    }

    /// The articles this user favorited, newest first.
    async fn favorite_articles(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many articles to return: 0 to 100, default 20.")] first: Option<i32>,
        #[graphql(
            desc = "Return the articles after this cursor (an `endCursor` or edge `cursor`)."
        )]
        after: Option<String>,
    ) -> FieldResult<ArticleConnection> {
        Ok(user_articles(ctx, UserList::Favorited, self.0.id, first, after.as_deref()).await?)
    }

    /// When the user registered.
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
}

/// What the selections of users ask to fetch with each user.
pub fn profile_extras(ctx: &Context<'_>, users: &[Lookahead<'_>]) -> ProfileExtras {
    let selects = |field: &str| users.iter().any(|user| user.field(field).exists());
    ProfileExtras {
        following_of: ctx.viewer().user_id().filter(|_| selects("following")),
        followers_count: selects("followersCount"),
        ..ProfileExtras::default()
    }
}

/// A new account.
#[derive(Debug, InputObject)]
pub struct RegisterInput {
    /// The unique name to sign as: not blank, at most 64 characters.
    pub username: String,
    /// A valid email address, unique.
    pub email: String,
    /// 8 to 64 characters.
    pub password: String,
}

/// Credentials to sign in with.
#[derive(Debug, InputObject)]
pub struct LoginInput {
    /// The email address the account was registered with (any case).
    pub email: String,
    /// The account's password.
    pub password: String,
}

/// Changes to the viewer's own account; leave out what stays the same.
#[derive(Debug, InputObject)]
pub struct UpdateViewerInput {
    /// A new, unique email address.
    pub email: Option<String>,
    /// A new, unique username. Tokens issued before stay valid.
    pub username: Option<String>,
    /// A new password: 8 to 64 characters.
    pub password: Option<String>,
    /// A new bio; `""` removes it.
    pub bio: Option<String>,
    /// A new image URL; `""` removes it.
    pub image: Option<String>,
    /// The current password: required to change the email or the password.
    pub current_password: Option<String>,
}

/// The result of `register`.
#[derive(SimpleObject)]
pub struct RegisterPayload {
    /// A token for the new user: send it as `Authorization: Bearer <token>`.
    pub token: String,
    /// The new user.
    pub user: User,
}

/// The result of `login`.
#[derive(SimpleObject)]
pub struct LoginPayload {
    /// A token for the user: send it as `Authorization: Bearer <token>`.
    pub token: String,
    /// The signed-in user.
    pub user: User,
}

/// The result of `updateViewer`.
#[derive(SimpleObject)]
pub struct UpdateViewerPayload {
    /// A fresh token for the user. After a password change, tokens issued before no longer work:
    /// use this one.
    pub token: String,
    /// The user after the changes.
    pub user: User,
}

/// The result of `followUser`.
#[derive(SimpleObject)]
pub struct FollowUserPayload {
    /// The followed user.
    pub user: User,
}

/// The result of `unfollowUser`.
#[derive(SimpleObject)]
pub struct UnfollowUserPayload {
    /// The user no longer followed.
    pub user: User,
}

/// The result of `signOutEverywhere`.
#[derive(SimpleObject)]
pub struct SignOutEverywherePayload {
    /// A fresh token for this client; every token issued before no longer works.
    pub token: String,
    /// The signed-out user.
    pub user: User,
}
