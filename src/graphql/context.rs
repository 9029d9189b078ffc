//! Typed access to what every resolver needs from the GraphQL context.

use async_graphql::Context;
use async_graphql::dataloader::DataLoader;
use sea_orm::DatabaseConnection;

use crate::auth::{Passwords, Tokens, Viewer};

/// Shortcuts on [`Context`]; the data is put there by the schema and the request handler.
pub trait ContextExt {
    /// The database pool.
    fn db(&self) -> &DatabaseConnection;
    /// Who sends the request.
    fn viewer(&self) -> Viewer;
    /// The password hasher.
    fn passwords(&self) -> &Passwords;
    /// The token issuer.
    fn tokens(&self) -> &Tokens;
    /// This request's DataLoader of `L`.
    fn loader<L: Send + Sync + 'static>(&self) -> &DataLoader<L>;
}

impl ContextExt for Context<'_> {
    fn db(&self) -> &DatabaseConnection {
        self.data_unchecked()
    }

    fn viewer(&self) -> Viewer {
        self.data_opt::<Viewer>().copied().unwrap_or_default()
    }

    fn passwords(&self) -> &Passwords {
        self.data_unchecked()
    }

    fn tokens(&self) -> &Tokens {
        self.data_unchecked()
    }

    fn loader<L: Send + Sync + 'static>(&self) -> &DataLoader<L> {
        self.data_unchecked()
    }
}
