//! The authenticate stage: the viewer from the token, and the client whose budget pays.

use super::{Caller, Gateway};
use crate::auth::ClientAddress;
use crate::error::AppResult;

impl Gateway {
    /// The caller of a request with this `Authorization` header from `address`. No header is an
    /// anonymous caller; a header that is not a valid, unrevoked token is UNAUTHENTICATED, never
    /// silently anonymous.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        address: ClientAddress,
    ) -> AppResult<Caller> {
        Ok(self.subscriber(authorization, address).await?.caller)
    }
}
