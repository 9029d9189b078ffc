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
        let current = match self.versions.get(&claims.user_id) {
            Some(current) => current,
            None => {
                let current = version_on(&self.db, claims.user_id).await?;
                self.versions.insert(claims.user_id, current);
                current
            }
        };
        match current {
            Some(version) if version == claims.version => Ok(Viewer::user(claims.user_id)),
            Some(_) => Err(revoked()),
            None => Err(AppError::Unauthenticated(
                "The token's user no longer exists".into(),
            )),
        }
    }

    /// The same while the primary cannot answer, with `replica` to read a version this instance
    /// does not remember. A replica may lag: what it says is not remembered, a newer version
    /// there proves a revocation, and a user or version it has not replayed yet (a new account, a
    /// token issued since) is SERVICE_UNAVAILABLE rather than a verdict.
    pub async fn viewer_on_replica(
        &self,
        claims: TokenClaims,
        replica: &DatabaseConnection,
    ) -> AppResult<Viewer> {
        if self.versions.contains_key(&claims.user_id) {
            return self.viewer(claims).await;
        }
        match version_on(replica, claims.user_id).await? {
            Some(version) if version == claims.version => Ok(Viewer::user(claims.user_id)),
            Some(version) if version > claims.version => Err(revoked()),
            _ => Err(AppError::Unavailable(
                "The database is unavailable: try again shortly".into(),
            )),
        }
    }

    /// Records, after the change committed, that `user_id`'s tokens are now at `version`.
    pub fn revoked(&self, user_id: i64, version: i64) {
        self.versions.insert(user_id, Some(version));
    }
}

/// The refusal of a token whose version was moved on.
fn revoked() -> AppError {
    AppError::Unauthenticated("The token has been revoked: sign in again".into())
}

/// `user_id`'s token version on `db`; `None` when there is no such user.
async fn version_on(db: &DatabaseConnection, user_id: i64) -> AppResult<Option<i64>> {
    Ok(user::Entity::find_by_id(user_id)
        .select_only()
        .column(user::Column::TokenVersion)
        .into_tuple()
        .one(db)
        .await?)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

    use super::Revocations;
    use crate::auth::TokenClaims;
    use crate::error::{AppError, code};

    /// A database holding `users` with these (id, token version) rows.
    async fn with_users(rows: &[(i64, i64)]) -> DatabaseConnection {
        let db = Database::connect("sqlite::memory:").await.expect("sqlite");
        db.execute_unprepared(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, token_version INTEGER NOT NULL)",
        )
        .await
        .expect("table");
        for (id, version) in rows {
            db.execute_unprepared(&format!("INSERT INTO users VALUES ({id}, {version})"))
                .await
                .expect("row");
        }
        db
    }

    fn claims(user_id: i64, version: i64) -> TokenClaims {
        TokenClaims {
            user_id,
            version,
            expires_at: u64::MAX,
        }
    }

    #[tokio::test]
    async fn a_replica_proves_a_revocation_but_not_what_it_has_not_replayed() {
        let primary = with_users(&[(1, 2)]).await;
        // The replica is behind: user 1 is at version 1 there, user 2 not there yet.
        let replica = with_users(&[(1, 1), (3, 5)]).await;
        let revocations = Revocations::new(primary, Duration::from_secs(60));

        // Version 1 there, token at 2: the replica is behind, no verdict.
        let behind = revocations.viewer_on_replica(claims(1, 2), &replica).await;
        assert!(matches!(behind, Err(AppError::Unavailable(_))));
        // A user it has not replayed yet: no verdict either.
        let unknown = revocations.viewer_on_replica(claims(2, 0), &replica).await;
        assert!(matches!(unknown, Err(AppError::Unavailable(_))));
        // Version 5 there, token at 4: revoked for sure.
        let revoked = revocations.viewer_on_replica(claims(3, 4), &replica).await;
        assert_eq!(
            revoked.map(|_| ()).map_err(|err| err.code()),
            Err(code::UNAUTHENTICATED)
        );
        // Equal: signed in.
        assert!(
            revocations
                .viewer_on_replica(claims(3, 5), &replica)
                .await
                .is_ok()
        );

        // Nothing read on the replica is remembered: the primary decides once it answers.
        assert!(revocations.viewer(claims(1, 2)).await.is_ok());
        // What this instance remembers wins over the replica.
        assert!(
            revocations
                .viewer_on_replica(claims(1, 2), &replica)
                .await
                .is_ok()
        );
    }
}
