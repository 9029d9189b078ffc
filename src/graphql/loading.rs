//! Per-request DataLoaders: created with a cache (so rows a page fetched ahead can be fed to them)
//! and batching that does not depend on timing; and the two loader shapes several areas share.
//!
//! async-graphql's DataLoader starts each batch on a spawned task after a delay, and the keys it
//! takes are those registered by then: on a multi-threaded runtime another worker may run the
//! batch while the request's task is still registering keys, so one level's keys could go out in
//! one statement or in two. Here the batches are queued instead, and [`drive`] runs them on the
//! request's own task once the execution has registered every key it could: each level's keys go
//! out together, every time, and no batch waits on a timer or another thread.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};
use tracing::Instrument;

use crate::db;
use crate::error::AppError;

/// Batches queued by one request's loaders, run by [`drive`].
#[derive(Clone, Default)]
pub struct BatchQueue(Arc<Mutex<Vec<BoxFuture<'static, ()>>>>);

impl BatchQueue {
    fn push(&self, batch: BoxFuture<'static, ()>) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(batch);
    }

    fn take(&self) -> Vec<BoxFuture<'static, ()>> {
        std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

/// What one request's loaders share: the pool, the viewer, and the queue of batches.
#[derive(Clone)]
pub struct LoaderScope {
    /// The database pool.
    pub db: DatabaseConnection,
    /// The signed-in user, if any.
    pub viewer: Option<i64>,
    queue: BatchQueue,
}

impl LoaderScope {
    /// The loaders of one request, queueing their batches in `queue`.
    pub fn new(db: DatabaseConnection, viewer: Option<i64>, queue: BatchQueue) -> Self {
        Self { db, viewer, queue }
    }

    /// A DataLoader of `inner` for this request: with a cache (so rows fetched ahead can be fed
    /// to it), no delay, and its batches queued for [`drive`].
    /// Each batch runs in a `load` span, a child of the resolver that asked for its first key.
    pub fn loader<L: Send + Sync + 'static>(&self, inner: L) -> DataLoader<L, HashMapCache> {
        let queue = self.queue.clone();
        DataLoader::with_cache(
            inner,
            move |batch| {
                let span = crate::telemetry::sampled_span(|| {
                    tracing::debug_span!(
                        "load",
                        otel.name = %format_args!("load {}", loader_name::<L>()),
                    )
                });
                queue.push(Box::pin(batch.instrument(span)));
            },
            HashMapCache::default(),
        )
        .delay(Duration::ZERO)
    }
}

/// The name of the loader type `L`, without its module path or generic arguments' paths.
fn loader_name<L>() -> String {
    let full = std::any::type_name::<L>();
    let mut name = String::with_capacity(full.len());
    for part in full.split_inclusive(['<', '>', ',']) {
        name.push_str(part.rsplit("::").next().unwrap_or(part));
    }
    name
}

/// Runs `execution` to completion with the batches its loaders queue: after each poll of the
/// execution (in which it registered every key it could), the queued batches start, and run on
/// this task until the results they send wake the execution again.
pub async fn drive<F: Future>(execution: F, queue: BatchQueue) -> F::Output {
    let mut execution = std::pin::pin!(execution);
    let mut running: FuturesUnordered<BoxFuture<'static, ()>> = FuturesUnordered::new();
    std::future::poll_fn(move |cx| {
        loop {
            if let Poll::Ready(output) = execution.as_mut().poll(cx) {
                return Poll::Ready(output);
            }
            running.extend(queue.take());
            // Poll the batches until none makes progress; a finished batch sent its results to
            // the execution, which the next turn of the loop polls.
            let mut finished = false;
            while let Poll::Ready(Some(())) = Pin::new(&mut running).poll_next_unpin(cx) {
                finished = true;
            }
            if !finished {
                return Poll::Pending;
            }
        }
    })
    .await
}

/// A relation counted per key: rows of [`Self::Entity`] by [`Self::column`].
pub trait CountedRelation: Send + Sync + 'static {
    /// The table counted.
    type Entity: EntityTrait;
    /// The column holding the key.
    fn column() -> <Self::Entity as EntityTrait>::Column;
}

/// How many rows each key has in the relation `R` (0 when none), one statement per batch.
pub struct CountOf<R>(DatabaseConnection, PhantomData<R>);

impl<R> CountOf<R> {
    /// Counts over `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        Self(db, PhantomData)
    }
}

impl<R: CountedRelation> Loader<i64> for CountOf<R> {
    type Value = i64;
    type Error = AppError;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, i64>, AppError> {
        let counts = db::count_by::<R::Entity>(&self.0, R::column(), keys).await?;
        Ok(keys
            .iter()
            .map(|key| (*key, counts.get(key).copied().unwrap_or(0)))
            .collect())
    }
}

/// A relation between the viewer and keys: rows of [`Self::Entity`] with the viewer in
/// [`Self::viewer_column`] and a key in [`Self::key_column`] (a follow, a favorite).
pub trait ViewerRelation: Send + Sync + 'static {
    /// The table.
    type Entity: EntityTrait;
    /// The column holding the viewer.
    fn viewer_column() -> <Self::Entity as EntityTrait>::Column;
    /// The column holding the key.
    fn key_column() -> <Self::Entity as EntityTrait>::Column;
}

/// Whether the viewer has the relation `R` with each key; always false for an anonymous viewer.
pub struct ViewerAmong<R> {
    db: DatabaseConnection,
    viewer: Option<i64>,
    relation: PhantomData<R>,
}

impl<R> ViewerAmong<R> {
    /// For `viewer` over `db`.
    pub fn new(db: DatabaseConnection, viewer: Option<i64>) -> Self {
        Self {
            db,
            viewer,
            relation: PhantomData,
        }
    }
}

impl<R: ViewerRelation> Loader<i64> for ViewerAmong<R> {
    type Value = bool;
    type Error = AppError;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, bool>, AppError> {
        let found: HashSet<i64> = match self.viewer {
            Some(viewer) => R::Entity::find()
                .select_only()
                .column(R::key_column())
                .filter(R::viewer_column().eq(viewer))
                .filter(R::key_column().is_in(keys.iter().copied()))
                .into_tuple::<i64>()
                .all(&self.db)
                .await?
                .into_iter()
                .collect(),
            None => HashSet::new(),
        };
        Ok(keys.iter().map(|key| (*key, found.contains(key))).collect())
    }
}
