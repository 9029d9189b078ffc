//! Authentication: password hashing, signed tokens and the per-request viewer.

mod password;
mod throttle;
mod token;

pub use password::Passwords;
pub use throttle::{AuthThrottle, ClientAddress, LoginAttempt, ThrottlePolicy};
pub use token::Tokens;

use crate::error::{AppError, AppResult};

/// Who sends the request: a signed-in user or nobody.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Viewer {
    user_id: Option<i64>,
}

impl Viewer {
    /// An anonymous viewer.
    pub fn anonymous() -> Self {
        Self { user_id: None }
    }

    /// The signed-in user `user_id`.
    pub fn user(user_id: i64) -> Self {
        Self {
            user_id: Some(user_id),
        }
    }

    /// The signed-in user's id, if any.
    pub fn user_id(&self) -> Option<i64> {
        self.user_id
    }

    /// The signed-in user's id, or UNAUTHENTICATED.
    pub fn require(&self) -> AppResult<i64> {
        self.user_id
            .ok_or_else(|| AppError::Unauthenticated("You must be signed in to do this".into()))
    }

    /// The viewer named by an `Authorization` header value (`Bearer <token>` or `Token <token>`).
    /// No header means anonymous; a header that is present but not a valid token is UNAUTHENTICATED.
    pub fn from_authorization(header: Option<&str>, tokens: &Tokens) -> AppResult<Self> {
        let Some(header) = header else {
            return Ok(Self::anonymous());
        };
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("Token "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                AppError::Unauthenticated(
                    "The Authorization header must be `Bearer <token>` or `Token <token>`".into(),
                )
            })?;
        let user_id = tokens
            .verify(token)
            .map_err(|_| AppError::Unauthenticated("The token is invalid or has expired".into()))?;
        Ok(Self::user(user_id))
    }
}
