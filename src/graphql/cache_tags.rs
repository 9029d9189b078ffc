//! The tags the response cache tracks: resolvers record what a response read, mutations what
//! they changed. Named by [`NodeKind`], like global ids.

use super::NodeKind;
pub use crate::cache::CacheTag;

/// The tag of one entity, e.g. `Article:42`.
pub fn entity(kind: NodeKind, id: i64) -> CacheTag {
    CacheTag::Entity(kind.name(), id)
}

/// The tag of every list (and lookup by key) of a kind, e.g. `Article:list`.
pub fn list(kind: NodeKind) -> CacheTag {
    CacheTag::List(kind.name())
}

/// The tag of the lists of tags (tags are no nodes).
pub fn tags() -> CacheTag {
    CacheTag::List("Tag")
}

/// The tag of one user's feed.
pub fn feed(user_id: i64) -> CacheTag {
    CacheTag::Feed(user_id)
}
