//! Opaque global ids (`Node.id`): the type and the database id, base64-encoded.

use async_graphql::ID;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{AppError, AppResult};

/// The kinds of object that have a global id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// A `User`.
    User,
    /// An `Article`.
    Article,
    /// A `Comment`.
    Comment,
}

impl NodeKind {
    /// The kind's name: the GraphQL type, the prefix of its global ids and cache tags.
    pub fn name(self) -> &'static str {
        match self {
            Self::User => "User",
            Self::Article => "Article",
            Self::Comment => "Comment",
        }
    }

    fn from_prefix(prefix: &str) -> Option<Self> {
        [Self::User, Self::Article, Self::Comment]
            .into_iter()
            .find(|kind| kind.name() == prefix)
    }
}

/// A decoded global id.
///
/// ```
/// use conduit::graphql::{GlobalId, NodeKind};
///
/// let id = GlobalId::encode(NodeKind::Article, 42);
/// assert_eq!(GlobalId::decode(&id), Some(GlobalId { kind: NodeKind::Article, id: 42 }));
/// assert_eq!(GlobalId::decode("not-an-id"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlobalId {
    /// What it identifies.
    pub kind: NodeKind,
    /// The database id.
    pub id: i64,
}

impl GlobalId {
    /// The opaque id of `kind` number `id`.
    pub fn encode(kind: NodeKind, id: i64) -> ID {
        ID(URL_SAFE_NO_PAD.encode(format!("{}:{id}", kind.name())))
    }

    /// Decodes an id; `None` when it is not one of ours.
    pub fn decode(id: &str) -> Option<Self> {
        let raw = URL_SAFE_NO_PAD.decode(id).ok()?;
        let raw = std::str::from_utf8(&raw).ok()?;
        let (prefix, id) = raw.split_once(':')?;
        Some(Self {
            kind: NodeKind::from_prefix(prefix)?,
            id: id.parse().ok()?,
        })
    }

    /// The database id of an id that must be of `kind`; BAD_USER_INPUT naming `field` otherwise.
    pub fn expect(id: &str, kind: NodeKind, field: &str) -> AppResult<i64> {
        match Self::decode(id) {
            Some(decoded) if decoded.kind == kind => Ok(decoded.id),
            _ => Err(AppError::invalid(
                field,
                format!("is not a valid {} id", kind.name()),
            )),
        }
    }
}
