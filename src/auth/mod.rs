//! Authentication: password hashing, signed and revocable tokens, the per-request viewer, and
//! sign-in throttling.

mod password;
mod revocation;
mod throttle;
mod token;
mod token_crypto;

pub use password::{HashMetrics, Passwords};
pub use revocation::Revocations;
pub use throttle::{AccountKey, AuthThrottle, ClientAddress, LoginAttempt, ThrottlePolicy};
pub use token::{TokenClaims, TokenError, Tokens};

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
}

/// What an `Authorization` header value (`Bearer <token>` or `Token <token>`) says: nothing when
/// there is no header, the token's claims when it is validly signed and unexpired, and
/// UNAUTHENTICATED for a header that is present but not such a token. Whether the token was
/// revoked is [`Revocations::viewer`]'s question.
pub fn credentials(header: Option<&str>, tokens: &Tokens) -> AppResult<Option<TokenClaims>> {
    let Some(header) = header else {
        return Ok(None);
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
    tokens
        .verify(token)
        .map(Some)
        .map_err(|_| AppError::Unauthenticated("The token is invalid or has expired".into()))
}
