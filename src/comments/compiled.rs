//! How the fields of comments compile (see `crate::compiled`): `Comment` wherever it is
//! reached. A field not declared here is not compiled: a query selecting it runs through the
//! executor.

use crate::articles::compiled::{ArticleSelection, Fetched, Requests};
use crate::graphql::compiled::{Fallback, FieldId, FieldIds, Key, Selected, Writer, distinct};
use crate::graphql::{GlobalId, NodeKind, cache_tags};
use crate::users::compiled::{ProfileFetch, UserSelection};

use super::service::{CommentExtras, CommentRow};

/// What to fetch with each comment, whoever asks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CommentFetch {
    /// The author's profile, with what is asked of it.
    pub author: Option<ProfileFetch>,
}

impl CommentFetch {
    /// The extras to fetch for `viewer`.
    pub fn extras(self, viewer: Option<i64>) -> CommentExtras {
        CommentExtras {
            author: self.author.map(|author| author.extras(viewer)),
        }
    }

    /// What every selection of `selections` asks.
    pub fn of<'a>(selections: impl Iterator<Item = &'a CommentSelection>) -> Self {
        let mut fetch = Self::default();
        for selection in selections {
            fetch.author = match (fetch.author, selection.fetch.author) {
                (Some(a), Some(b)) => Some(a.union(b)),
                (a, b) => a.or(b),
            };
        }
        fetch
    }
}

/// `Comment.article`, compiled: the articles of every comment at its level, in one statement.
#[derive(Debug, Clone, PartialEq)]
pub struct CommentArticleField {
    /// Where its rows are kept.
    pub id: FieldId,
    /// Its selection.
    pub selection: ArticleSelection,
}

/// A field of `Comment`.
#[derive(Debug, Clone, PartialEq)]
pub enum CommentField {
    /// `__typename`.
    Typename,
    /// `id`.
    Id,
    /// `body`.
    Body,
    /// `createdAt`.
    CreatedAt,
    /// `updatedAt`.
    UpdatedAt,
    /// `author`.
    Author(UserSelection),
    /// `article`.
    Article(Box<CommentArticleField>),
}

/// A selection of `Comment`, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct CommentSelection {
    /// The fields, in selection order.
    pub fields: Vec<(Key, CommentField)>,
    /// What to fetch with each comment.
    pub fetch: CommentFetch,
}

impl CommentSelection {
    /// Compiles the selection `fields` of `Comment`.
    pub fn compile(fields: &[Selected], ids: &mut FieldIds) -> Result<Self, Fallback> {
        let mut compiled = Vec::with_capacity(fields.len());
        for field in fields {
            let item = match field.name.as_str() {
                "__typename" => CommentField::Typename,
                "id" => CommentField::Id,
                "body" => CommentField::Body,
                "createdAt" => CommentField::CreatedAt,
                "updatedAt" => CommentField::UpdatedAt,
                "author" => {
                    CommentField::Author(UserSelection::compile(field.object("User")?, ids)?)
                }
                "article" => CommentField::Article(Box::new(CommentArticleField {
                    selection: ArticleSelection::compile(field.object("Article")?, ids)?,
                    id: ids.allocate(),
                })),
                _ => return Err(Fallback::Unsupported("a field of Comment")),
            };
            compiled.push((Key::of(&field.key), item));
        }
        let authors = compiled.iter().filter_map(|(_, field)| match field {
            CommentField::Author(author) => Some(author),
            _ => None,
        });
        let fetch = CommentFetch {
            author: UserSelection::fetch_of(authors),
        };
        Ok(Self {
            fields: compiled,
            fetch,
        })
    }

    /// The later statements its fields need, for the comments `rows` at this level.
    pub fn needs<'p>(&'p self, rows: &[&CommentRow], requests: &mut Requests<'p>) {
        for (_, field) in &self.fields {
            match field {
                CommentField::Author(author) => {
                    let ids = distinct(rows.iter().map(|row| row.comment.author_id));
                    author.needs(&ids, requests);
                }
                CommentField::Article(article) => {
                    let ids = distinct(rows.iter().map(|row| row.comment.article_id));
                    requests.articles_by_id.push((article, ids));
                }
                _ => {}
            }
        }
    }

    /// Writes the comment of `row`; its cost (an object: 1, with its relations).
    pub fn write(
        &self,
        out: &mut Writer,
        row: &CommentRow,
        fetched: &Fetched,
    ) -> Result<u64, Fallback> {
        // Every field skipped: null, as async-graphql answers it.
        if self.fields.is_empty() {
            out.null();
            return Ok(0);
        }
        let comment = &row.comment;
        let mut cost = 1u64;
        out.byte(b'{');
        for (index, (key, field)) in self.fields.iter().enumerate() {
            out.key(key, index == 0);
            match field {
                CommentField::Typename => out.str("Comment")?,
                CommentField::Id => out.str(&GlobalId::encode(NodeKind::Comment, comment.id))?,
                CommentField::Body => out.str(&comment.body)?,
                CommentField::CreatedAt => out.datetime(comment.created_at)?,
                CommentField::UpdatedAt => out.datetime(comment.updated_at)?,
                CommentField::Author(author) => {
                    out.read(cache_tags::entity(NodeKind::User, comment.author_id));
                    let profile = row
                        .author
                        .as_ref()
                        .ok_or(Fallback::Missing("a comment's author"))?;
                    cost = cost.saturating_add(author.write(out, profile, fetched)?);
                }
                CommentField::Article(article) => {
                    out.read(cache_tags::entity(NodeKind::Article, comment.article_id));
                    let found = fetched
                        .articles
                        .get(&(article.id, comment.article_id))
                        .ok_or(Fallback::Missing("a comment's article"))?;
                    cost = cost.saturating_add(article.selection.write(out, found, fetched)?);
                }
            }
        }
        out.byte(b'}');
        Ok(cost)
    }
}
