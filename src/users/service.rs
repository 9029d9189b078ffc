//! The rules and data access of users and follows. Knows nothing of GraphQL.

use std::collections::{HashMap, HashSet};

use entity::{follow, user};
use sea_orm::sea_query::{Expr, Func, SelectStatement};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, ExprTrait,
    QueryFilter, QuerySelect, QueryTrait, Set,
};

use crate::auth::Passwords;
use crate::db;
use crate::error::{AppError, AppResult, FieldErrors};
use crate::validate;

/// What a new user gives.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Unique, case-insensitively.
    pub username: String,
    /// Unique, case-insensitively.
    pub email: String,
    /// 8 to 64 characters.
    pub password: String,
}

/// Changes to the viewer's own account; `None` leaves a value as it is.
#[derive(Debug, Clone, Default)]
pub struct AccountChanges {
    /// A new email.
    pub email: Option<String>,
    /// A new username.
    pub username: Option<String>,
    /// A new password.
    pub password: Option<String>,
    /// A new bio; `""` removes it.
    pub bio: Option<String>,
    /// A new image URL; `""` removes it.
    pub image: Option<String>,
}

fn username_matches(username: &str) -> Expr {
    Expr::expr(Func::lower(Expr::col(user::Column::Username)))
        .eq(Func::lower(Expr::val(username.to_owned())))
}

fn email_matches(email: &str) -> Expr {
    Expr::expr(Func::lower(Expr::col(user::Column::Email)))
        .eq(Func::lower(Expr::val(email.to_owned())))
}

/// Registers a user; CONFLICT when the username or email is taken.
#[tracing::instrument(skip_all, fields(username = %registration.username))]
pub async fn register(
    db: &DatabaseConnection,
    passwords: &Passwords,
    registration: Registration,
) -> AppResult<user::Model> {
    let mut errors = FieldErrors::new();
    validate::username(&mut errors, &registration.username);
    validate::email(&mut errors, &registration.email);
    validate::password(&mut errors, &registration.password);
    validate::finish(errors)?;

    let password_hash = passwords.hash(registration.password).await?;
    let now = db::now();
    let txn = db::begin_write(db).await?;
    let created = user::ActiveModel {
        username: Set(registration.username),
        email: Set(registration.email),
        password_hash: Set(password_hash),
        bio: Set(None),
        image: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(created)
}

/// The user with `email` and `password`; UNAUTHENTICATED otherwise, the same way and in about the
/// same time whether the email is unknown or the password wrong.
#[tracing::instrument(skip_all)]
pub async fn login(
    db: &DatabaseConnection,
    passwords: &Passwords,
    email: &str,
    password: String,
) -> AppResult<user::Model> {
    let mut errors = FieldErrors::new();
    validate::required(&mut errors, "email", email, validate::MAX_EMAIL);
    validate::required(&mut errors, "password", &password, validate::MAX_PASSWORD);
    validate::finish(errors)?;

    let found = user::Entity::find()
        .filter(email_matches(email))
        .one(db)
        .await?;
    let hash = found.as_ref().map(|user| user.password_hash.clone());
    if passwords.verify(password, hash).await? {
        found.ok_or_else(wrong_credentials)
    } else {
        Err(wrong_credentials())
    }
}

fn wrong_credentials() -> AppError {
    AppError::Unauthenticated("Wrong email or password".into())
}

/// Applies `changes` to user `user_id`.
#[tracing::instrument(skip_all, fields(user_id))]
pub async fn update_account(
    db: &DatabaseConnection,
    passwords: &Passwords,
    user_id: i64,
    changes: AccountChanges,
) -> AppResult<user::Model> {
    let mut errors = FieldErrors::new();
    if let Some(username) = &changes.username {
        validate::username(&mut errors, username);
    }
    if let Some(email) = &changes.email {
        validate::email(&mut errors, email);
    }
    if let Some(password) = &changes.password {
        validate::password(&mut errors, password);
    }
    if let Some(bio) = &changes.bio {
        validate::max_chars(&mut errors, "bio", bio, validate::MAX_BIO);
    }
    if let Some(image) = &changes.image {
        validate::max_chars(&mut errors, "image", image, validate::MAX_URL);
    }
    validate::finish(errors)?;

    let password_hash = match changes.password {
        Some(password) => Some(passwords.hash(password).await?),
        None => None,
    };
    let txn = db::begin_write(db).await?;
    let current = user::Entity::find_by_id(user_id)
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::Unauthenticated("The signed-in user no longer exists".into()))?;
    let mut account: user::ActiveModel = current.into();
    if let Some(username) = changes.username {
        account.username = Set(username);
    }
    if let Some(email) = changes.email {
        account.email = Set(email);
    }
    if let Some(hash) = password_hash {
        account.password_hash = Set(hash);
    }
    if let Some(bio) = changes.bio {
        account.bio = Set(Some(bio).filter(|bio| !bio.is_empty()));
    }
    if let Some(image) = changes.image {
        account.image = Set(Some(image).filter(|image| !image.is_empty()));
    }
    account.updated_at = Set(db::now());
    let updated = account.update(&txn).await?;
    txn.commit().await?;
    Ok(updated)
}

/// The user named `username` (case-insensitively), if any.
pub async fn find_by_username(
    db: &impl ConnectionTrait,
    username: &str,
) -> AppResult<Option<user::Model>> {
    Ok(user::Entity::find()
        .filter(username_matches(username))
        .one(db)
        .await?)
}

/// The users with these ids.
pub async fn find_by_ids(db: &impl ConnectionTrait, ids: &[i64]) -> AppResult<Vec<user::Model>> {
    Ok(user::Entity::find()
        .filter(user::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?)
}

/// The ids of the users named `username` (zero or one), as a subquery for filters of other areas.
pub fn ids_named(username: &str) -> SelectStatement {
    user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .filter(username_matches(username))
        .into_query()
}

/// The ids of the users that `follower_id` follows, as a subquery (the feed's authors).
pub fn followed_by(follower_id: i64) -> SelectStatement {
    follow::Entity::find()
        .select_only()
        .column(follow::Column::FolloweeId)
        .filter(follow::Column::FollowerId.eq(follower_id))
        .into_query()
}

/// Makes `follower_id` follow `username`; following twice is a no-op.
#[tracing::instrument(skip(db))]
pub async fn follow(
    db: &DatabaseConnection,
    follower_id: i64,
    username: &str,
) -> AppResult<user::Model> {
    let txn = db::begin_write(db).await?;
    let followee = find_by_username(&txn, username)
        .await?
        .ok_or_else(|| no_such_user(username))?;
    if followee.id == follower_id {
        return Err(AppError::invalid("username", "you cannot follow yourself"));
    }
    follow::Entity::insert(follow::ActiveModel {
        follower_id: Set(follower_id),
        followee_id: Set(followee.id),
        created_at: Set(db::now()),
    })
    .on_conflict_do_nothing_on([follow::Column::FollowerId, follow::Column::FolloweeId])
    .exec_without_returning(&txn)
    .await?;
    txn.commit().await?;
    Ok(followee)
}

/// Makes `follower_id` stop following `username`; a no-op when not following.
#[tracing::instrument(skip(db))]
pub async fn unfollow(
    db: &DatabaseConnection,
    follower_id: i64,
    username: &str,
) -> AppResult<user::Model> {
    let txn = db::begin_write(db).await?;
    let followee = find_by_username(&txn, username)
        .await?
        .ok_or_else(|| no_such_user(username))?;
    follow::Entity::delete_many()
        .filter(follow::Column::FollowerId.eq(follower_id))
        .filter(follow::Column::FolloweeId.eq(followee.id))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(followee)
}

fn no_such_user(username: &str) -> AppError {
    AppError::NotFound(format!("No user is named {username:?}"))
}

/// Of `user_ids`, those that `follower_id` follows.
pub async fn followed_among(
    db: &impl ConnectionTrait,
    follower_id: i64,
    user_ids: &[i64],
) -> AppResult<HashSet<i64>> {
    let rows: Vec<i64> = follow::Entity::find()
        .select_only()
        .column(follow::Column::FolloweeId)
        .filter(follow::Column::FollowerId.eq(follower_id))
        .filter(follow::Column::FolloweeId.is_in(user_ids.iter().copied()))
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().collect())
}

/// How many followers each of `user_ids` has (absent: none).
pub async fn follower_counts(
    db: &impl ConnectionTrait,
    user_ids: &[i64],
) -> AppResult<HashMap<i64, i64>> {
    db::count_by::<follow::Entity>(db, follow::Column::FolloweeId, user_ids).await
}
