//! Revocable tokens: each user has a token version, carried by every token issued to them;
//! changing the password or signing out everywhere moves it on, and tokens of an older version
//! are refused.
//!
//! Each instance remembers the versions it read for a while (`CONDUIT_REVOCATION_CHECK_SECS`,
//! 60 s): a revocation reaches the other instances within that time, and the instance that
//! served it at once. A user unknown to the database has no valid token.

use std::time::Duration;

use entity::user;
use moka::sync::Cache;
use sea_orm::{DatabaseConnection, EntityTrait, QuerySelect};

use super::{TokenClaims, Viewer};
use crate::error::{AppError, AppResult};

/// The token versions this instance knows, each for a limited time.
#[derive(Clone)]
pub struct Revocations {
    db: DatabaseConnection,
    versions: Cache<i64, Option<i64>>,
}

/// Most users whose version one instance remembers.
const REMEMBERED_USERS: u64 = 100_000;

impl Revocations {
    /// Versions read from `db`, each trusted for `check_every`.
    pub fn new(db: DatabaseConnection, check_every: Duration) -> Self {
        Self {
            db,
            versions: Cache::builder()
                .max_capacity(REMEMBERED_USERS)
                .time_to_live(check_every)
                .build(),
        }
    }

    /// The viewer a valid token names; UNAUTHENTICATED when it was revoked or its user is gone.
    pub async fn viewer(&self, claims: TokenClaims) -> AppResult<Viewer> {
        self.viewer_reading(claims, &self.db).await
    }

    /// The same, reading a version this instance does not remember on `db` (a replica while the
    /// primary is down: a revocation reaches it within the replica's lag).
    pub async fn viewer_reading(
        &self,
        claims: TokenClaims,
        db: &DatabaseConnection,
    ) -> AppResult<Viewer> {
        let current = match self.versions.get(&claims.user_id) {
            Some(current) => current,
            None => {
                let current: Option<i64> = user::Entity::find_by_id(claims.user_id)
                    .select_only()
                    .column(user::Column::TokenVersion)
                    .into_tuple()
                    .one(db)
                    .await?;
                self.versions.insert(claims.user_id, current);
                current
            }
        };
        match current {
            Some(version) if version == claims.version => Ok(Viewer::user(claims.user_id)),
            Some(_) => Err(AppError::Unauthenticated(
                "The token has been revoked: sign in again".into(),
            )),
            None => Err(AppError::Unauthenticated(
                "The token's user no longer exists".into(),
            )),
        }
    }

    /// Records, after the change committed, that `user_id`'s tokens are now at `version`.
    pub fn revoked(&self, user_id: i64, version: i64) {
        self.versions.insert(user_id, Some(version));
    }
}
