//! How the fields of tags compile (see `crate::compiled`): `Tag` under an article and the root
//! `tags` connection. A field not declared here is not compiled: a query selecting it runs
//! through the executor.

use crate::error::AppError;
use crate::graphql::cache_tags;
use crate::graphql::compiled::{ConnectionSelection, Fallback, Key, Selected, Writer};
use crate::pagination::{Page, PageArgs};

use super::service::{self, TagCursor, TagUsage};

/// A field of `Tag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagField {
    /// `__typename`.
    Typename,
    /// `name`.
    Name,
}

/// A selection of `Tag`, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct TagSelection(Vec<(Key, TagField)>);

impl TagSelection {
    /// Compiles the selection `fields` of `Tag`.
    pub fn compile(fields: &[Selected]) -> Result<Self, Fallback> {
        fields
            .iter()
            .map(|field| {
                let compiled = match field.name.as_str() {
                    "__typename" => TagField::Typename,
                    "name" => TagField::Name,
                    _ => return Err(Fallback::Unsupported("a field of Tag")),
                };
                Ok((Key::of(&field.key), compiled))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Writes the tag `name`; its cost (an object: 1).
    pub fn write(&self, out: &mut Writer, name: &str) -> Result<u64, Fallback> {
        // Every field skipped: null, as async-graphql answers it.
        if self.0.is_empty() {
            out.null();
            return Ok(0);
        }
        out.byte(b'{');
        for (index, (key, field)) in self.0.iter().enumerate() {
            out.key(key, index == 0);
            match field {
                TagField::Typename => out.str("Tag")?,
                TagField::Name => out.str(name)?,
            }
        }
        out.byte(b'}');
        Ok(1)
    }
}

/// `Query.tags(first, after)`, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct TagsRoot {
    args: PageArgs<TagCursor>,
    connection: ConnectionSelection<TagSelection>,
}

/// The rows of `Query.tags`.
pub struct TagsRows {
    page: Page<TagUsage>,
    total: Option<i64>,
}

impl TagsRoot {
    /// Compiles `tags` (an invalid `after` is the executor's to report).
    pub fn compile(field: &Selected) -> Result<Self, Fallback> {
        let args = service::page_args(field.int("first")?, field.string("after")?.as_deref())
            .map_err(|_| Fallback::Unsupported("invalid page arguments"))?;
        let connection = ConnectionSelection::compile(
            field.object("TagConnection")?,
            "TagConnection",
            "TagEdge",
            "Tag",
            TagSelection::compile,
        )?;
        Ok(Self { args, connection })
    }

    /// Runs its statements: the page, and the count when selected.
    pub async fn fetch(&self, db: &sea_orm::DatabaseConnection) -> Result<TagsRows, AppError> {
        let page = service::most_used(db, &self.args).await?;
        let total = if self.connection.total {
            Some(service::count_used(db).await?)
        } else {
            None
        };
        Ok(TagsRows { page, total })
    }

    /// Writes the connection; its cost.
    pub fn write(&self, out: &mut Writer, rows: &TagsRows) -> Result<u64, Fallback> {
        if self.connection.reads_list() {
            out.read(cache_tags::tags());
        }
        self.connection
            .write(out, &rows.page, rows.total, |out, selection, usage| {
                selection.write(out, &usage.name)
            })
    }
}
