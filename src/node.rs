//! The `Node` interface and `Query.node(id)`: any object by its global id.

use async_graphql::{Context, ID, Interface, Object};

use crate::articles::loaders::ArticleById;
use crate::articles::types::Article;
use crate::comments::loaders::CommentById;
use crate::comments::types::Comment;
use crate::graphql::{ContextExt, FieldResult, GlobalId, NodeKind, cache_tags};
use crate::users::loaders::UserById;
use crate::users::types::User;

/// An object with a global id, which `Query.node` resolves.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "The global id of the object."))]
pub enum Node {
    /// A user.
    User(User),
    /// An article.
    Article(Article),
    /// A comment.
    Comment(Comment),
}

/// The `node` part of `Query`.
#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// The object with this global id; null when there is none or the id is not one of ours.
    async fn node(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A global id, as found in any `id` field.")] id: ID,
    ) -> FieldResult<Option<Node>> {
        let Some(GlobalId { kind, id }) = GlobalId::decode(&id) else {
            return Ok(None);
        };
        ctx.read_tag(cache_tags::entity(kind, id));
        Ok(match kind {
            NodeKind::User => ctx
                .loader::<UserById>()
                .load_one(id)
                .await?
                .map(|m| Node::User(User(m))),
            NodeKind::Article => ctx
                .loader::<ArticleById>()
                .load_one(id)
                .await?
                .map(|m| Node::Article(Article(m))),
            NodeKind::Comment => ctx
                .loader::<CommentById>()
                .load_one(id)
                .await?
                .map(|m| Node::Comment(Comment(m))),
        })
    }
}
