//! Typed access to what every resolver needs from the GraphQL context.

use async_graphql::Context;
use async_graphql::dataloader::{DataLoader, HashMapCache};
use sea_orm::DatabaseConnection;

use crate::auth::{Passwords, Tokens, Viewer};
use crate::cache::{CacheTag, Recorder};

use super::response_size::ResponseMeter;
use super::{FieldError, FieldResult};
use std::sync::Arc;

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
    fn loader<L: Send + Sync + 'static>(&self) -> &DataLoader<L, HashMapCache>;
    /// Records that the response depends on `tag` (for the response cache).
    fn read_tag(&self, tag: CacheTag);
    /// Records that this mutation changed what `tag` stands for (invalidated after it commits).
    fn write_tag(&self, tag: CacheTag);
    /// Records that this mutation created the entity `tag` stands for: a change to it, and news
    /// for the subscriptions to new entities.
    fn created_tag(&self, tag: CacheTag);
    /// Records that the response depends on who asks: every resolver of a private field calls it
    /// as it runs, so the response is never stored under the public key.
    fn mark_private(&self);
    /// Counts `text` against the response's size bound (large text fields call it): the error
    /// once the response would be too large.
    fn carry(&self, text: &str) -> FieldResult<()>;
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

    fn loader<L: Send + Sync + 'static>(&self) -> &DataLoader<L, HashMapCache> {
        self.data_unchecked()
    }

    fn read_tag(&self, tag: CacheTag) {
        if let Some(recorder) = self.data_opt::<Recorder>() {
            recorder.0.read(tag);
        }
    }

    fn write_tag(&self, tag: CacheTag) {
        if let Some(recorder) = self.data_opt::<Recorder>() {
            recorder.0.writes.add(tag);
        }
    }

    fn created_tag(&self, tag: CacheTag) {
        if let Some(recorder) = self.data_opt::<Recorder>() {
            recorder.0.writes.add(tag);
            recorder.0.created.add(tag);
        }
    }

    fn mark_private(&self) {
        if let Some(recorder) = self.data_opt::<Recorder>() {
            recorder.0.mark_private();
        }
    }

    fn carry(&self, text: &str) -> FieldResult<()> {
        match self.data_opt::<Arc<ResponseMeter>>() {
            Some(meter) => meter.carry(text.len()).map_err(FieldError::from),
            None => Ok(()),
        }
    }
}
