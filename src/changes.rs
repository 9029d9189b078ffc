//! The change feed: what committed mutations changed, for subscriptions. A change is the set of
//! tags a mutation wrote (the same tags that invalidate the response cache: one source of truth for
//! "what changed"), plus the entities it created.
//!
//! Changes go to this instance's subscribers through an in-process broadcast, and, with Redis, to
//! every other instance through Redis pub/sub: each instance publishes on a connection of its own
//! and listens on another, reconnecting by itself (logged). While Redis is down, local changes
//! still reach local subscribers; subscribers on other instances miss what was published
//! meanwhile.
//!
//! Hand-written around `tokio::sync::broadcast` and redis-rs' `PubSub`: the broadcast bounds how far
//! one subscriber may fall behind (a slow consumer is detected, not buffered without end), and no
//! crate offers a Redis-backed broadcast with that property.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tokio::sync::{OnceCell, broadcast};

/// A memo of one change: looked up once, shared by every subscriber.
type Memo = Arc<OnceCell<Arc<dyn Any + Send + Sync>>>;

/// What one committed mutation changed.
#[derive(Default)]
pub struct Change {
    /// The tags it wrote (`Article:42`, `Comment:list`, ...).
    pub written: Vec<String>,
    /// The entities it created (`Comment:7`).
    pub created: Vec<String>,
    memos: Mutex<HashMap<String, Memo>>,
}

impl std::fmt::Debug for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Change")
            .field("written", &self.written)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// Ids of the entity tags of `kind` among `tags`.
fn ids<'a>(tags: &'a [String], kind: &'a str) -> impl Iterator<Item = i64> + 'a {
    tags.iter().filter_map(move |tag| {
        let (tag_kind, id) = tag.split_once(':')?;
        (tag_kind == kind).then(|| id.parse().ok()).flatten()
    })
}

impl Change {
    /// A change that wrote `written` and created `created`.
    pub fn new(written: Vec<String>, created: Vec<String>) -> Self {
        Self {
            written,
            created,
            memos: Mutex::default(),
        }
    }

    /// The ids of the entities of `kind` it created.
    pub fn created(&self, kind: &str) -> Vec<i64> {
        ids(&self.created, kind).collect()
    }

    /// The ids of the entities of `kind` it changed (created, updated or deleted).
    pub fn changed(&self, kind: &str) -> Vec<i64> {
        ids(&self.written, kind).collect()
    }

    /// `load`'s value for `key`, loaded once for every subscriber of this change: a change fanned
    /// out to a thousand subscribers reads its rows once.
    pub async fn shared<T, F>(&self, key: &str, load: F) -> T
    where
        T: Clone + Default + Send + Sync + 'static,
        F: Future<Output = T>,
    {
        // Keyed by type too, so a memo always holds the type it is read as (the default is never
        // reached).
        let memo = Arc::clone(
            self.memos
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(format!("{}\u{0}{key}", std::any::type_name::<T>()))
                .or_default(),
        );
        memo.get_or_init(|| async { Arc::new(load.await) as Arc<dyn Any + Send + Sync> })
            .await
            .downcast_ref::<T>()
            .cloned()
            .unwrap_or_default()
    }
}

/// A change as it travels through Redis.
#[derive(Serialize, Deserialize)]
struct WireChange {
    /// The instance that published it (it delivered it locally already).
    origin: String,
    written: Vec<String>,
    created: Vec<String>,
}

/// The change feed of this instance.
pub struct ChangeFeed {
    local: broadcast::Sender<Arc<Change>>,
    redis: Option<RedisFeed>,
    origin: String,
}

struct RedisFeed {
    publisher: crate::redis_client::RedisClient,
    channel: String,
}

/// How often the listening connection is checked with a ping.
const LIVENESS_PING: Duration = Duration::from_secs(15);
/// How long that ping may take before the connection is given up and made again.
const LIVENESS_DEADLINE: Duration = Duration::from_secs(5);
/// How long to wait before listening again after Redis failed, at most.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);

impl ChangeFeed {
    /// A feed that lets each subscriber fall at most `buffer` changes behind.
    pub fn new(buffer: usize) -> Self {
        let (local, _) = broadcast::channel(buffer.max(1));
        Self {
            local,
            redis: None,
            origin: format!("{:032x}", rand::random::<u128>()),
        }
    }

    /// The same feed, shared with every instance through Redis at `url` (channel
    /// `<prefix>changes`): `publisher` publishes; a connection of its own listens, reconnecting
    /// after failures.
    pub fn with_redis(
        mut self,
        url: &str,
        prefix: &str,
        publisher: crate::redis_client::RedisClient,
    ) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let channel = format!("{prefix}changes");
        tokio::spawn(listen(
            client,
            channel.clone(),
            self.origin.clone(),
            self.local.clone(),
        ));
        self.redis = Some(RedisFeed { publisher, channel });
        Ok(self)
    }

    /// A new subscriber: it receives the changes published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.local.subscribe()
    }

    /// Publishes what a mutation changed, after it committed: to this instance's subscribers at
    /// once, and to the other instances through Redis (in the background; a failure is logged).
    pub fn publish(&self, written: Vec<String>, created: Vec<String>) {
        if written.is_empty() {
            return;
        }
        if let Some(redis) = &self.redis {
            let wire = WireChange {
                origin: self.origin.clone(),
                written: written.clone(),
                created: created.clone(),
            };
            let publisher = redis.publisher.clone();
            let channel = redis.channel.clone();
            tokio::spawn(async move {
                let Ok(message) = serde_json::to_string(&wire) else {
                    return;
                };
                let published = publisher
                    .run("publish", |mut connection| async move {
                        connection.publish::<_, _, i64>(&channel, message).await
                    })
                    .await;
                if let Err(err) = published {
                    tracing::warn!(error = %err, "change not published to the other instances");
                }
            });
        }
        // No receiver is not an error: nobody subscribes right now.
        let _ = self.local.send(Arc::new(Change::new(written, created)));
    }
}

/// A change from another instance, delivered to this instance's subscribers.
fn deliver(message: &redis::Msg, origin: &str, local: &broadcast::Sender<Arc<Change>>) {
    let Ok(payload) = message.get_payload::<String>() else {
        return;
    };
    let Ok(wire) = serde_json::from_str::<WireChange>(&payload) else {
        tracing::warn!("change feed: unreadable message ignored");
        return;
    };
    if wire.origin != origin {
        let _ = local.send(Arc::new(Change::new(wire.written, wire.created)));
    }
}

/// Listens to the other instances' changes on `channel` and delivers them locally, reconnecting
/// with backoff whenever the connection fails.
async fn listen(
    client: redis::Client,
    channel: String,
    origin: String,
    local: broadcast::Sender<Arc<Change>>,
) {
    let mut delay = Duration::from_millis(100);
    let mut failing = false;
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    if failing {
                        tracing::info!(%channel, "change feed: listening to Redis again");
                    } else {
                        tracing::debug!(%channel, "change feed: listening to Redis");
                    }
                    delay = Duration::from_millis(100);
                    let (mut sink, mut messages) = pubsub.split();
                    // A connection that went half-open (a dropped NAT entry, a failover without
                    // a reset) never ends the stream: a ping that goes unanswered does.
                    let mut pings = tokio::time::interval(LIVENESS_PING);
                    pings.tick().await;
                    loop {
                        tokio::select! {
                            message = messages.next() => {
                                let Some(message) = message else { break };
                                deliver(&message, &origin, &local);
                            }
                            _ = pings.tick() => {
                                let answered = tokio::time::timeout(
                                    LIVENESS_DEADLINE,
                                    // Subscribed, Redis answers a PING with an array: any answer will do.
                                    sink.ping::<redis::Value>(),
                                )
                                .await;
                                if !matches!(answered, Ok(Ok(_))) {
                                    break;
                                }
                            }
                        }
                    }
                    tracing::warn!(
                        %channel,
                        "change feed: lost the Redis connection; other instances' changes are missed until it is back"
                    );
                    failing = true;
                }
                Err(err) => {
                    if !failing {
                        tracing::warn!(error = %err, "change feed: cannot subscribe in Redis; retrying");
                    }
                    failing = true;
                }
            },
            Err(err) => {
                if !failing {
                    tracing::warn!(error = %err, "change feed: cannot reach Redis; retrying");
                }
                failing = true;
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RECONNECT_DELAY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_read_from_the_tags_of_their_kind() {
        let change = Change::new(
            vec![
                "Article:4".into(),
                "Article:list".into(),
                "Comment:9".into(),
            ],
            vec!["Comment:9".into()],
        );
        assert_eq!(change.changed("Article"), vec![4]);
        assert_eq!(change.created("Comment"), vec![9]);
        assert!(change.created("Article").is_empty());
    }

    #[tokio::test]
    async fn a_shared_value_is_loaded_once() {
        let change = Change::new(vec!["Article:1".into()], Vec::new());
        let loads = std::sync::atomic::AtomicUsize::new(0);
        for _ in 0..3 {
            let value = change
                .shared("Article:1", async {
                    loads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    7_i64
                })
                .await;
            assert_eq!(value, 7);
        }
        assert_eq!(loads.load(std::sync::atomic::Ordering::Relaxed), 1);
    }
}
