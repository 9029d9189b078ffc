//! Signed, expiring tokens (JWT, HS256) that name a user by id.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// What a token says.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The user id, as a string (JWT convention).
    sub: String,
    /// Issued at, seconds since the epoch.
    iat: u64,
    /// Expires at, seconds since the epoch.
    exp: u64,
    /// The user's token version when it was issued: revoking moves the version on.
    #[serde(default)]
    ver: i64,
}

/// What a valid token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenClaims {
    /// The user it was issued to.
    pub user_id: i64,
    /// The user's token version when it was issued.
    pub version: i64,
    /// When it expires, seconds since the epoch.
    pub expires_at: u64,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Bad signature, malformed or expired.
    #[error("invalid token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    /// The subject is not a user id.
    #[error("invalid token subject")]
    Subject,
}

/// Issues and verifies tokens with one secret.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// Tokens signed with `secret`, valid for `ttl`.
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        super::token_crypto::install();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }

    /// A new token for `user_id`, whose tokens are at `version`.
    pub fn issue(&self, user_id: i64, version: i64) -> Result<String, TokenError> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: user_id.to_string(),
            iat: now,
            exp: now + self.ttl.as_secs(),
            ver: version,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// What a validly signed, unexpired token says (whether it was revoked is checked apart).
    pub fn verify(&self, token: &str) -> Result<TokenClaims, TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)?;
        Ok(TokenClaims {
            user_id: data.claims.sub.parse().map_err(|_| TokenError::Subject)?,
            version: data.claims.ver,
            expires_at: data.claims.exp,
        })
    }
}
