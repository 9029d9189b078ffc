//! The rules and data access of users and follows. Knows nothing of GraphQL.

use entity::{follow, user};
use sea_orm::prelude::DateTimeUtc;
use sea_orm::sea_query::{
    Alias, Asterisk, Expr, Func, IntoColumnRef, JoinType, Query, SelectStatement,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    ExprTrait, FromQueryResult, IdenStatic, QueryFilter, QueryResult, QuerySelect, QueryTrait, Set,
};

use crate::auth::Passwords;
use crate::db;
use crate::error::{AppError, AppResult, FieldErrors};
use crate::validate;

/// A user as the API shows them: everything but the credentials (never read outside sign-in).
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct Profile {
    /// The user id.
    pub id: i64,
    /// The unique name.
    pub username: String,
    /// The email address (shown to the user themself only).
    pub email: String,
    /// A short text about the user.
    pub bio: Option<String>,
    /// The URL of their picture.
    pub image: Option<String>,
    /// When they registered.
    pub created_at: DateTimeUtc,
}

impl From<user::Model> for Profile {
    fn from(user: user::Model) -> Self {
        Self {
            id: user.id,
            username: user.username,
            email: user.email,
            bio: user.bio,
            image: user.image,
            created_at: user.created_at,
        }
    }
}

/// The columns of a [`Profile`].
const PROFILE_COLUMNS: [user::Column; 6] = [
    user::Column::Id,
    user::Column::Username,
    user::Column::Email,
    user::Column::Bio,
    user::Column::Image,
    user::Column::CreatedAt,
];

fn profiles() -> sea_orm::Select<user::Entity> {
    user::Entity::find().select_only().columns(PROFILE_COLUMNS)
}

/// What to fetch of a user joined to another area's rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ProfileExtras {
    /// Whether this user (the viewer) follows them.
    pub following_of: Option<i64>,
    /// Their number of followers.
    pub followers_count: bool,
    /// Leave the email out (an empty string): nothing reads it. Only for rows that no other
    /// reader shares (compiled reads; the executor's loaders share what they are fed).
    pub without_email: bool,
    /// Leave the bio out (null): nothing reads it (as `without_email`).
    pub without_bio: bool,
    /// Leave the image out (null): nothing reads it (as `without_email`).
    pub without_image: bool,
}

/// A profile fetched with another area's rows, with what was asked of it.
#[derive(Debug, Clone)]
pub struct ProfileRow {
    /// The profile.
    pub profile: Profile,
    /// Whether the viewer follows them (when asked).
    pub following: Option<bool>,
    /// How many users follow them (when asked).
    pub followers_count: Option<i64>,
}

/// Joins to `query` the user whose id is in `user_id`, selecting their profile and `extras` as
/// columns named with `prefix` (read them back with [`profile_row`]).
pub fn join_profile(
    query: &mut SelectStatement,
    user_id: impl IntoColumnRef,
    prefix: &str,
    extras: ProfileExtras,
) {
    let table = Alias::new(format!("{prefix}users"));
    query.join_as(
        JoinType::InnerJoin,
        user::Entity,
        table.clone(),
        Expr::col((table.clone(), user::Column::Id)).equals(user_id),
    );
    select_profile(query, table, prefix, extras);
}

/// Selects into `query` the profile and `extras` of the users table aliased `table`, as columns
/// named with `prefix`.
fn select_profile(query: &mut SelectStatement, table: Alias, prefix: &str, extras: ProfileExtras) {
    for column in PROFILE_COLUMNS {
        let left_out = match column {
            user::Column::Email if extras.without_email => Some(Expr::val("")),
            user::Column::Bio if extras.without_bio => Some(Expr::val(None::<String>)),
            user::Column::Image if extras.without_image => Some(Expr::val(None::<String>)),
            _ => None,
        };
        let value = left_out.unwrap_or_else(|| Expr::col((table.clone(), column)));
        query.expr_as(value, Alias::new(format!("{prefix}{}", column.as_str())));
    }
    if let Some(viewer) = extras.following_of {
        let follows = Query::select()
            .expr(Expr::val(1))
            .from(follow::Entity)
            .and_where(follow::Column::FollowerId.eq(viewer))
            .and_where(
                Expr::col((follow::Entity, follow::Column::FolloweeId))
                    .equals((table.clone(), user::Column::Id)),
            )
            .to_owned();
        query.expr_as(
            Expr::exists(follows),
            Alias::new(format!("{prefix}following")),
        );
    }
    if extras.followers_count {
        let count = Query::select()
            .expr(Expr::col(Asterisk).count())
            .from(follow::Entity)
            .and_where(
                Expr::col((follow::Entity, follow::Column::FolloweeId))
                    .equals((table, user::Column::Id)),
            )
            .to_owned();
        query.expr_as(
            Expr::SubQuery(None, Box::new(count.into())),
            Alias::new(format!("{prefix}followers_count")),
        );
    }
}

/// The user named `username` (case-insensitively) with `extras`, in one statement.
pub async fn profile_by_username_with(
    db: &impl ConnectionTrait,
    username: &str,
    extras: ProfileExtras,
) -> AppResult<Option<ProfileRow>> {
    let table = Alias::new("profile");
    let mut query = Query::select();
    query.from_as(user::Entity, table.clone()).and_where(
        Expr::expr(Func::lower(Expr::col((
            table.clone(),
            user::Column::Username,
        ))))
        .eq(Func::lower(Expr::val(validate::normalize_username(
            username,
        )))),
    );
    select_profile(&mut query, table, "", extras);
    let row = db.query_one(&query).await?;
    Ok(row
        .map(|row| profile_at(&row, &mut 0, extras))
        .transpose()?)
}

/// The users with these ids with `extras`, in one statement (any order).
pub async fn profiles_by_ids_with(
    db: &impl ConnectionTrait,
    ids: &[i64],
    extras: ProfileExtras,
) -> AppResult<Vec<ProfileRow>> {
    let table = Alias::new("profile");
    let mut query = Query::select();
    query
        .from_as(user::Entity, table.clone())
        .and_where(Expr::col((table.clone(), user::Column::Id)).is_in(ids.iter().copied()));
    select_profile(&mut query, table, "", extras);
    db.query_all(&query)
        .await?
        .iter()
        .map(|row| Ok(profile_at(row, &mut 0, extras)?))
        .collect()
}

/// The profile [`join_profile`] (or [`profile_by_username_with`]) selected into `row`, read by
/// position from column `at` on (moved past it): positions spare a name lookup per column and
/// row, which hot pages of many rows feel.
pub fn profile_at(
    row: &QueryResult,
    at: &mut usize,
    extras: ProfileExtras,
) -> Result<ProfileRow, DbErr> {
    let mut next = || {
        *at += 1;
        *at - 1
    };
    let profile = Profile {
        id: row.try_get_by_index(next())?,
        username: row.try_get_by_index(next())?,
        email: row.try_get_by_index(next())?,
        bio: row.try_get_by_index(next())?,
        image: row.try_get_by_index(next())?,
        created_at: row.try_get_by_index(next())?,
    };
    let following = match extras.following_of {
        Some(_) => Some(row.try_get_by_index::<bool>(next())?),
        None => None,
    };
    let followers_count = if extras.followers_count {
        Some(row.try_get_by_index::<i64>(next())?)
    } else {
        None
    };
    Ok(ProfileRow {
        profile,
        following,
        followers_count,
    })
}

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
    /// The current password: required to change the email or the password.
    pub current_password: Option<String>,
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
    let username = validate::username(&mut errors, &registration.username);
    validate::email(&mut errors, &registration.email);
    validate::password(&mut errors, &registration.password);
    validate::finish(errors)?;
    // Cheap checks first: a taken name is refused before any password is hashed (the unique
    // indexes still decide a race).
    ensure_free(db, Some(&username), Some(&registration.email), None).await?;

    let password_hash = passwords.hash(registration.password).await?;
    let now = db::now();
    let txn = db::begin_write(db).await?;
    let created = user::ActiveModel {
        username: Set(username),
        email: Set(registration.email),
        password_hash: Set(password_hash),
        bio: Set(None),
        image: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        token_version: Set(0),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(created)
}

/// Checks the shape of sign-in input before anything else (lookups, throttling keys, hashing).
pub fn check_login_input(email: &str, password: &str) -> AppResult<()> {
    let mut errors = FieldErrors::new();
    validate::required(&mut errors, "email", email, validate::MAX_EMAIL);
    validate::required(&mut errors, "password", password, validate::MAX_PASSWORD);
    validate::finish(errors)
}

/// The user registered with `email` (any case), if any.
pub async fn find_by_email(
    db: &impl ConnectionTrait,
    email: &str,
) -> AppResult<Option<user::Model>> {
    Ok(user::Entity::find()
        .filter(email_matches(email.trim()))
        .one(db)
        .await?)
}

/// `user` when `password` is theirs; UNAUTHENTICATED otherwise, the same way and in about the
/// same time whether there is no such user or the password is wrong.
#[tracing::instrument(skip_all)]
pub async fn verify_login(
    passwords: &Passwords,
    user: Option<user::Model>,
    password: String,
) -> AppResult<user::Model> {
    let hash = user.as_ref().map(|user| user.password_hash.clone());
    if passwords.verify(password, hash).await? {
        user.ok_or_else(wrong_credentials)
    } else {
        Err(wrong_credentials())
    }
}

fn wrong_credentials() -> AppError {
    AppError::Unauthenticated("Wrong email or password".into())
}

/// CONFLICT when `username` or `email` belongs to a user other than `except`.
async fn ensure_free(
    db: &impl ConnectionTrait,
    username: Option<&str>,
    email: Option<&str>,
    except: Option<i64>,
) -> AppResult<()> {
    let others = |found: Option<Profile>| found.filter(|user| Some(user.id) != except);
    if let Some(username) = username
        && others(profile_by_username(db, username).await?).is_some()
    {
        return Err(AppError::Conflict {
            field: "username".into(),
        });
    }
    if let Some(email) = email
        && others(
            profiles()
                .filter(email_matches(email.trim()))
                .into_model::<Profile>()
                .one(db)
                .await?,
        )
        .is_some()
    {
        return Err(AppError::Conflict {
            field: "email".into(),
        });
    }
    Ok(())
}

/// The reason given when `currentPassword` does not match.
pub const WRONG_CURRENT_PASSWORD: &str = "is not the current password";

/// Applies `changes` to user `user_id`. Changing the email or the password needs the current
/// password; changing the password revokes every token issued before (the user's token version
/// moves on). Cheap checks (input, uniqueness) run before any password is hashed.
#[tracing::instrument(skip_all, fields(user_id))]
pub async fn update_account(
    db: &DatabaseConnection,
    passwords: &Passwords,
    user_id: i64,
    changes: AccountChanges,
) -> AppResult<user::Model> {
    let mut errors = FieldErrors::new();
    let username = changes
        .username
        .as_deref()
        .map(|username| validate::username(&mut errors, username));
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
    let sensitive = changes.email.is_some() || changes.password.is_some();
    match &changes.current_password {
        None if sensitive => {
            errors.insert(
                "currentPassword".into(),
                "is required to change the email or the password".into(),
            );
        }
        Some(current) => {
            validate::max_chars(
                &mut errors,
                "currentPassword",
                current,
                validate::MAX_PASSWORD,
            );
        }
        None => {}
    }
    validate::finish(errors)?;
    ensure_free(
        db,
        username.as_deref(),
        changes.email.as_deref(),
        Some(user_id),
    )
    .await?;

    let current = user::Entity::find_by_id(user_id)
        .one(db)
        .await?
        .ok_or_else(|| AppError::Unauthenticated("The signed-in user no longer exists".into()))?;
    if let Some(password) = changes.current_password
        && !passwords
            .verify(password, Some(current.password_hash.clone()))
            .await?
    {
        return Err(AppError::invalid("currentPassword", WRONG_CURRENT_PASSWORD));
    }
    let password_hash = match changes.password {
        Some(password) => Some(passwords.hash(password).await?),
        None => None,
    };
    let txn = db::begin_write(db).await?;
    let current = user::Entity::find_by_id(user_id)
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::Unauthenticated("The signed-in user no longer exists".into()))?;
    let version = current.token_version;
    let mut account: user::ActiveModel = current.into();
    if let Some(username) = username {
        account.username = Set(username);
    }
    if let Some(email) = changes.email {
        account.email = Set(email);
    }
    if let Some(hash) = password_hash {
        account.password_hash = Set(hash);
        account.token_version = Set(version + 1);
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

/// Revokes every token of `user_id`: their token version moves on.
#[tracing::instrument(skip(db))]
pub async fn revoke_tokens(db: &DatabaseConnection, user_id: i64) -> AppResult<user::Model> {
    let txn = db::begin_write(db).await?;
    let current = user::Entity::find_by_id(user_id)
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::Unauthenticated("The signed-in user no longer exists".into()))?;
    let version = current.token_version;
    let mut account: user::ActiveModel = current.into();
    account.token_version = Set(version + 1);
    let updated = account.update(&txn).await?;
    txn.commit().await?;
    Ok(updated)
}

/// The profile of the user named `username` (case-insensitively), if any.
pub async fn profile_by_username(
    db: &impl ConnectionTrait,
    username: &str,
) -> AppResult<Option<Profile>> {
    Ok(profiles()
        .filter(username_matches(&validate::normalize_username(username)))
        .into_model::<Profile>()
        .one(db)
        .await?)
}

/// The profiles of the users with these ids.
pub async fn find_by_ids(db: &impl ConnectionTrait, ids: &[i64]) -> AppResult<Vec<Profile>> {
    Ok(profiles()
        .filter(user::Column::Id.is_in(ids.iter().copied()))
        .into_model::<Profile>()
        .all(db)
        .await?)
}

/// The ids of the users named `username` (zero or one), as a subquery for filters of other areas.
pub fn ids_named(username: &str) -> SelectStatement {
    user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .filter(username_matches(&validate::normalize_username(username)))
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
) -> AppResult<Profile> {
    let txn = db::begin_write(db).await?;
    let followee = profile_by_username(&txn, username)
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
) -> AppResult<Profile> {
    let txn = db::begin_write(db).await?;
    let followee = profile_by_username(&txn, username)
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
