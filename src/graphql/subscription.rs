//! What a subscription's root field sees. The gateway runs a subscription's document once when it
//! opens (the root field checks its arguments, finds what it follows and says which changes
//! interest it) and once more for each change that interests it, each time with fresh loaders and
//! the subscriber's own viewer; [`SubscriptionStep`] in the request data tells the two apart, and
//! [`SubscriptionScope`] carries what the root field keeps from one run to the next.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use async_graphql::Context;
use futures::future::BoxFuture;

use super::FieldResult;
use crate::changes::Change;
use crate::error::AppError;

/// Whether a change may concern a subscription (checked before anything runs for it).
pub type Interest = Arc<dyn Fn(Arc<Change>) -> BoxFuture<'static, bool> + Send + Sync>;

/// One subscription's state across its runs.
#[derive(Default)]
pub struct SubscriptionScope {
    anchor: OnceLock<i64>,
    label: Mutex<String>,
    interest: OnceLock<Interest>,
    finished: AtomicBool,
}

impl SubscriptionScope {
    /// Follows the entity `id`, known as `label` (a slug, say).
    pub fn anchor(&self, id: i64, label: &str) {
        let _ = self.anchor.set(id);
        self.relabel(label);
    }

    /// The id of the entity followed.
    pub fn anchored(&self) -> Option<i64> {
        self.anchor.get().copied()
    }

    /// The entity followed is now known as `label`.
    pub fn relabel(&self, label: &str) {
        label.clone_into(
            &mut self
                .label
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
    }

    /// The last name of the entity followed.
    pub fn label(&self) -> String {
        self.label
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Only changes for which `interest` answers true run the subscription again.
    pub fn listen(&self, interest: Interest) {
        let _ = self.interest.set(interest);
    }

    /// Whether `change` may concern the subscription (every change, unless it said otherwise).
    pub async fn interested(&self, change: &Arc<Change>) -> bool {
        match self.interest.get() {
            Some(interest) => interest(Arc::clone(change)).await,
            None => true,
        }
    }

    /// Nothing more can come (what it followed is gone): it completes after this run.
    pub fn finish(&self) {
        self.finished.store(true, Ordering::Relaxed);
    }

    /// Whether it completes.
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Relaxed)
    }
}

/// Request data of one run of a subscription's document.
#[derive(Clone)]
pub struct SubscriptionStep {
    /// The subscription's state.
    pub scope: Arc<SubscriptionScope>,
    /// The change to deliver; `None` when the subscription opens.
    pub change: Option<Arc<Change>>,
}

/// The step a subscription's root field runs in; an internal error outside the gateway (which
/// alone runs subscriptions).
pub fn step<'a>(ctx: &'a Context<'_>) -> FieldResult<&'a SubscriptionStep> {
    ctx.data_opt::<SubscriptionStep>().ok_or_else(|| {
        AppError::internal(std::io::Error::other(
            "a subscription ran outside the gateway",
        ))
        .into()
    })
}
