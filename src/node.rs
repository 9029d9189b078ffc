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

/// How `Query.node(id)` compiles (see `crate::compiled`): the object the id names, written with
/// the selection of its type. An interface's selections that give one response key an object (or
/// list) value on two types are left to the executor, whose cost and field order for them depend
/// on how the value is shaped.
pub mod compiled {
    use std::collections::HashSet;

    use sea_orm::DatabaseConnection;

    use crate::articles::compiled::{ArticleSelection, Fetched, Requests};
    use crate::articles::service::ArticleRow;
    use crate::comments::compiled::CommentSelection;
    use crate::comments::service::CommentRow;
    use crate::error::AppError;
    use crate::graphql::compiled::{Fallback, FieldIds, Selected, Writer, choose_branch};
    use crate::graphql::{GlobalId, NodeKind, cache_tags};
    use crate::users::service::ProfileRow;
    use crate::{articles, comments, users};

    /// The selection of each type a node may be, its fields in the order the response takes.
    #[derive(Debug, Clone, PartialEq)]
    pub struct NodeRoot {
        target: Option<GlobalId>,
        user: users::compiled::UserSelection,
        article: ArticleSelection,
        comment: CommentSelection,
    }

    /// The object a node names, fetched.
    pub enum NodeRows {
        /// A user.
        User(ProfileRow),
        /// An article.
        Article(ArticleRow),
        /// A comment.
        Comment(CommentRow),
    }

    /// The selection of `type_name` among `branches` (none when the type has no branch).
    fn branch<'a>(branches: &'a [(String, Vec<Selected>)], type_name: &str) -> &'a [Selected] {
        branches
            .iter()
            .find(|(on, _)| on == type_name)
            .map_or(&[], |(_, fields)| fields.as_slice())
    }

    /// The fields of `type_name`'s branch, reordered as the executor's answer is written: by the
    /// branch the object's keys choose.
    fn ordered(
        branches: &[(String, Vec<Selected>)],
        type_name: &str,
    ) -> Result<Vec<Selected>, Fallback> {
        let own = branch(branches, type_name);
        let keys: HashSet<&str> = own.iter().map(|field| field.key.as_str()).collect();
        let chosen = choose_branch(
            branches,
            |(_, fields)| fields.iter().map(|field| field.key.as_str()),
            |key| keys.contains(key),
        );
        let order = &branches[chosen].1;
        let mut fields = Vec::with_capacity(own.len());
        for field in order {
            if let Some(found) = own.iter().find(|own| own.key == field.key) {
                fields.push(found.clone());
            }
        }
        if fields.len() != own.len() {
            return Err(Fallback::Unsupported(
                "an interface selection of mixed keys",
            ));
        }
        Ok(fields)
    }

    impl NodeRoot {
        /// Compiles `node(id)`.
        pub fn compile(field: &Selected, ids: &mut FieldIds) -> Result<Self, Fallback> {
            let id = field
                .string("id")?
                .ok_or(Fallback::Unsupported("a missing id"))?;
            // A key that holds an object or a list on two types with two different selections:
            // left to the executor (the same selection costs the same on the same value).
            let mut composite = std::collections::HashMap::new();
            for (_, fields) in &field.branches {
                for selected in fields {
                    if selected.branches.is_empty() {
                        continue;
                    }
                    if let Some(seen) = composite.insert(selected.key.as_str(), selected)
                        && seen != selected
                    {
                        return Err(Fallback::Unsupported("an interface's shared composite key"));
                    }
                }
            }
            Ok(Self {
                target: GlobalId::decode(&id),
                user: users::compiled::UserSelection::compile(
                    &ordered(&field.branches, "User")?,
                    ids,
                )?,
                article: ArticleSelection::compile(&ordered(&field.branches, "Article")?, ids)?,
                comment: CommentSelection::compile(&ordered(&field.branches, "Comment")?, ids)?,
            })
        }

        /// Runs its statement (none for an id that is not one of ours).
        pub async fn fetch(
            &self,
            db: &DatabaseConnection,
            viewer: Option<i64>,
        ) -> Result<Option<NodeRows>, AppError> {
            let Some(GlobalId { kind, id }) = self.target else {
                return Ok(None);
            };
            Ok(match kind {
                NodeKind::User => {
                    let extras = self.user.fetch.extras(viewer);
                    users::service::profiles_by_ids_with(db, &[id], extras)
                        .await?
                        .pop()
                        .map(NodeRows::User)
                }
                NodeKind::Article => {
                    let extras = self.article.fetch.extras(viewer);
                    articles::service::find_by_ids_with(db, &[id], extras)
                        .await?
                        .pop()
                        .map(NodeRows::Article)
                }
                NodeKind::Comment => {
                    let extras = self.comment.fetch.extras(viewer);
                    comments::service::find_by_ids_with(db, &[id], extras)
                        .await?
                        .pop()
                        .map(NodeRows::Comment)
                }
            })
        }

        /// The later statements the node's fields need.
        pub fn needs<'p>(&'p self, rows: Option<&NodeRows>, requests: &mut Requests<'p>) {
            match rows {
                Some(NodeRows::User(row)) => self.user.needs(&[row.profile.id], requests),
                Some(NodeRows::Article(row)) => self.article.needs(&[row], requests),
                Some(NodeRows::Comment(row)) => self.comment.needs(&[row], requests),
                None => {}
            }
        }

        /// Writes the node (or null); its cost.
        pub fn write(
            &self,
            out: &mut Writer,
            rows: Option<&NodeRows>,
            fetched: &Fetched,
        ) -> Result<u64, Fallback> {
            if let Some(GlobalId { kind, id }) = self.target {
                out.read(cache_tags::entity(kind, id));
            }
            match rows {
                Some(NodeRows::User(row)) => self.user.write(out, row, fetched),
                Some(NodeRows::Article(row)) => self.article.write(out, row, fetched),
                Some(NodeRows::Comment(row)) => self.comment.write(out, row, fetched),
                None => {
                    out.null();
                    Ok(0)
                }
            }
        }
    }
}
