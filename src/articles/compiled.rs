//! How the fields of articles compile (see `crate::compiled`): `Article` wherever it is reached,
//! and the root fields `articles`, `feed` and `article(slug)`. A field not declared here is not
//! compiled: a query selecting it runs through the executor.
//!
//! Also here, as the areas' compiled fields share them: [`Fetched`], the rows later statements
//! fetched for nested fields, and [`Requests`], the statements one level of the response needs.

use std::collections::HashMap;

use sea_orm::DatabaseConnection;

use crate::comments::compiled::{CommentFetch, CommentSelection};
use crate::comments::service::CommentRow;
use crate::error::AppError;
use crate::graphql::compiled::{
    ConnectionSelection, Fallback, FieldId, FieldIds, Key, Selected, Writer, distinct,
};
use crate::graphql::{GlobalId, NodeKind, cache_tags};
use crate::pagination::{Page, PageArgs};
use crate::tags::compiled::TagSelection;
use crate::users::compiled::{ProfileFetch, UserArticlesField, UserSelection};

use super::service::{self, ArticleExtras, ArticleFilter, ArticleRow};

/// The rows that later statements fetched for nested fields, by field and parent id.
#[derive(Debug, Default)]
pub struct Fetched {
    /// `Article.comments`: the page of each article.
    pub comment_pages: HashMap<(FieldId, i64), Page<CommentRow>>,
    /// `User.articles` and `User.favoriteArticles`: the page of each user.
    pub article_pages: HashMap<(FieldId, i64), Page<ArticleRow>>,
    /// `Comment.article`: each article by id.
    pub articles: HashMap<(FieldId, i64), ArticleRow>,
    /// The `totalCount` of nested connections, by parent.
    pub counts: HashMap<(FieldId, i64), i64>,
}

/// The statements one level of the response needs: each nested field with the ids of its
/// parents at that level. They run grouped (fields asking the same page share a statement).
#[derive(Debug, Default)]
pub struct Requests<'p> {
    /// Pages of comments of articles.
    pub comment_pages: Vec<(&'p CommentsField, Vec<i64>)>,
    /// Pages of users' lists of articles.
    pub user_articles: Vec<(&'p UserArticlesField, Vec<i64>)>,
    /// Articles of comments, by id.
    pub articles_by_id: Vec<(&'p crate::comments::compiled::CommentArticleField, Vec<i64>)>,
}

impl Requests<'_> {
    /// Whether nothing is needed.
    pub fn is_empty(&self) -> bool {
        self.comment_pages.is_empty()
            && self.user_articles.is_empty()
            && self.articles_by_id.is_empty()
    }
}

/// What to fetch with each article, whoever asks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ArticleFetch {
    /// The author's profile, with what is asked of it.
    pub author: Option<ProfileFetch>,
    /// `favoritesCount` is selected.
    pub favorites_count: bool,
    /// `favorited` is selected (fetched when signed in).
    pub favorited: bool,
    /// `tags` or `tagList` is selected.
    pub tags: bool,
    /// `body` is selected.
    pub body: bool,
    /// `description` is selected.
    pub description: bool,
}

impl ArticleFetch {
    /// The extras to fetch for `viewer`.
    pub fn extras(self, viewer: Option<i64>) -> ArticleExtras {
        ArticleExtras {
            author: self.author.map(|author| author.extras(viewer)),
            favorites_count: self.favorites_count,
            favorited_by: viewer.filter(|_| self.favorited),
            tags: self.tags,
            without_body: !self.body,
            without_description: !self.description,
        }
    }

    /// What every selection of `selections` asks.
    pub fn of<'a>(selections: impl Iterator<Item = &'a ArticleSelection>) -> Self {
        selections.fold(Self::default(), |fetch, selection| {
            let other = selection.fetch;
            Self {
                author: match (fetch.author, other.author) {
                    (Some(a), Some(b)) => Some(a.union(b)),
                    (a, b) => a.or(b),
                },
                favorites_count: fetch.favorites_count || other.favorites_count,
                favorited: fetch.favorited || other.favorited,
                tags: fetch.tags || other.tags,
                body: fetch.body || other.body,
                description: fetch.description || other.description,
            }
        })
    }
}

/// `Article.comments(first, after)`, compiled: a page of each article's comments, fetched for
/// every article at its level in one statement.
#[derive(Debug, Clone, PartialEq)]
pub struct CommentsField {
    /// Where its rows are kept.
    pub id: FieldId,
    /// Which page.
    pub args: PageArgs,
    /// Its selection.
    pub connection: ConnectionSelection<CommentSelection>,
    /// What to fetch with each comment (every node selection of the connection).
    pub fetch: CommentFetch,
}

/// A field of `Article`.
#[derive(Debug, Clone, PartialEq)]
pub enum ArticleField {
    /// `__typename`.
    Typename,
    /// `id`.
    Id,
    /// `slug`.
    Slug,
    /// `title`.
    Title,
    /// `description`.
    Description,
    /// `body`.
    Body,
    /// `tags`.
    Tags(TagSelection),
    /// `tagList` (deprecated).
    TagList,
    /// `createdAt`.
    CreatedAt,
    /// `updatedAt`.
    UpdatedAt,
    /// `author`.
    Author(UserSelection),
    /// `favorited` (private).
    Favorited,
    /// `favoritesCount`.
    FavoritesCount,
    /// `comments(first, after)`.
    Comments(Box<CommentsField>),
}

/// A selection of `Article`, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct ArticleSelection {
    /// The fields, in selection order.
    pub fields: Vec<(Key, ArticleField)>,
    /// What to fetch with each article.
    pub fetch: ArticleFetch,
}

impl ArticleSelection {
    /// Compiles the selection `fields` of `Article`.
    pub fn compile(fields: &[Selected], ids: &mut FieldIds) -> Result<Self, Fallback> {
        let mut compiled = Vec::with_capacity(fields.len());
        let mut fetch = ArticleFetch::default();
        for field in fields {
            let item = match field.name.as_str() {
                "__typename" => ArticleField::Typename,
                "id" => ArticleField::Id,
                "slug" => ArticleField::Slug,
                "title" => ArticleField::Title,
                "description" => {
                    fetch.description = true;
                    ArticleField::Description
                }
                "body" => {
                    fetch.body = true;
                    ArticleField::Body
                }
                "tags" => {
                    fetch.tags = true;
                    ArticleField::Tags(TagSelection::compile(field.object("Tag")?)?)
                }
                "tagList" => {
                    fetch.tags = true;
                    ArticleField::TagList
                }
                "createdAt" => ArticleField::CreatedAt,
                "updatedAt" => ArticleField::UpdatedAt,
                "author" => {
                    ArticleField::Author(UserSelection::compile(field.object("User")?, ids)?)
                }
                "favorited" => {
                    fetch.favorited = true;
                    ArticleField::Favorited
                }
                "favoritesCount" => {
                    fetch.favorites_count = true;
                    ArticleField::FavoritesCount
                }
                "comments" => {
                    let args =
                        PageArgs::keyset(field.int("first")?, field.string("after")?.as_deref())
                            .map_err(|_| Fallback::Unsupported("invalid page arguments"))?;
                    let connection = ConnectionSelection::compile(
                        field.object("CommentConnection")?,
                        "CommentConnection",
                        "CommentEdge",
                        "Comment",
                        |fields| CommentSelection::compile(fields, ids),
                    )?;
                    let fetch = CommentFetch::of(connection.nodes());
                    ArticleField::Comments(Box::new(CommentsField {
                        id: ids.allocate(),
                        args,
                        connection,
                        fetch,
                    }))
                }
                _ => return Err(Fallback::Unsupported("a field of Article")),
            };
            compiled.push((Key::of(&field.key), item));
        }
        let authors = compiled.iter().filter_map(|(_, field)| match field {
            ArticleField::Author(author) => Some(author),
            _ => None,
        });
        fetch.author = UserSelection::fetch_of(authors);
        Ok(Self {
            fields: compiled,
            fetch,
        })
    }

    /// The later statements its fields need, for the article `rows` at this level.
    pub fn needs<'p>(&'p self, rows: &[&ArticleRow], requests: &mut Requests<'p>) {
        if rows.is_empty() {
            return;
        }
        for (_, field) in &self.fields {
            match field {
                ArticleField::Comments(comments) => {
                    let ids = distinct(rows.iter().map(|row| row.article.id));
                    requests.comment_pages.push((comments, ids));
                }
                ArticleField::Author(author) => {
                    let ids = distinct(rows.iter().map(|row| row.article.author_id));
                    author.needs(&ids, requests);
                }
                _ => {}
            }
        }
    }

    /// Writes the article of `row`; its cost (an object: 1, with its relations and lists).
    pub fn write(
        &self,
        out: &mut Writer,
        row: &ArticleRow,
        fetched: &Fetched,
    ) -> Result<u64, Fallback> {
        // Every field skipped: null, as async-graphql answers it.
        if self.fields.is_empty() {
            out.null();
            return Ok(0);
        }
        let article = &row.article;
        let mut cost = 1u64;
        out.byte(b'{');
        for (index, (key, field)) in self.fields.iter().enumerate() {
            out.key(key, index == 0);
            match field {
                ArticleField::Typename => out.str("Article")?,
                ArticleField::Id => out.str(&GlobalId::encode(NodeKind::Article, article.id))?,
                ArticleField::Slug => out.str(&article.slug)?,
                ArticleField::Title => out.str(&article.title)?,
                ArticleField::Description => out.str(&article.description)?,
                ArticleField::Body => out.str(&article.body)?,
                ArticleField::Tags(tag) => {
                    let names = row.tags.as_ref().ok_or(Fallback::Missing("tag names"))?;
                    out.byte(b'[');
                    for (at, name) in names.iter().enumerate() {
                        if at > 0 {
                            out.byte(b',');
                        }
                        cost = cost.saturating_add(tag.write(out, name)?);
                    }
                    out.byte(b']');
                }
                ArticleField::TagList => {
                    let names = row.tags.as_ref().ok_or(Fallback::Missing("tag names"))?;
                    out.byte(b'[');
                    for (at, name) in names.iter().enumerate() {
                        if at > 0 {
                            out.byte(b',');
                        }
                        out.str(name)?;
                    }
                    out.byte(b']');
                }
                ArticleField::CreatedAt => out.datetime(article.created_at)?,
                ArticleField::UpdatedAt => out.datetime(article.updated_at)?,
                ArticleField::Author(author) => {
                    out.read(cache_tags::entity(NodeKind::User, article.author_id));
                    let profile = row
                        .author
                        .as_ref()
                        .ok_or(Fallback::Missing("an article's author"))?;
                    cost = cost.saturating_add(author.write(out, profile, fetched)?);
                }
                ArticleField::Favorited => {
                    out.private();
                    let favorited = match out.viewer {
                        None => false,
                        Some(_) => row
                            .favorited
                            .ok_or(Fallback::Missing("whether the viewer favorited"))?,
                    };
                    out.bool(favorited);
                }
                ArticleField::FavoritesCount => out.int(
                    row.favorites_count
                        .ok_or(Fallback::Missing("a favorite count"))?,
                ),
                ArticleField::Comments(comments) => {
                    cost = cost.saturating_add(write_comments(out, comments, article.id, fetched)?);
                }
            }
        }
        out.byte(b'}');
        Ok(cost)
    }
}

/// Writes one article's page of comments; its cost.
fn write_comments(
    out: &mut Writer,
    field: &CommentsField,
    article_id: i64,
    fetched: &Fetched,
) -> Result<u64, Fallback> {
    let empty = Page::empty(field.args.after.is_some());
    let page = fetched
        .comment_pages
        .get(&(field.id, article_id))
        .unwrap_or(&empty);
    let total = field.connection.total.then(|| {
        fetched
            .counts
            .get(&(field.id, article_id))
            .copied()
            .unwrap_or(0)
    });
    if field.connection.reads_list() {
        out.read(cache_tags::list(NodeKind::Comment));
        for (_, row) in &page.items {
            out.read(cache_tags::entity(NodeKind::Comment, row.comment.id));
        }
    }
    field
        .connection
        .write(out, page, total, |out, selection, row| {
            selection.write(out, row, fetched)
        })
}

/// Writes a page of articles as `connection`, recording what it read; its cost.
pub fn write_articles(
    out: &mut Writer,
    connection: &ConnectionSelection<ArticleSelection>,
    page: &Page<ArticleRow>,
    total: Option<i64>,
    fetched: &Fetched,
) -> Result<u64, Fallback> {
    if connection.reads_list() {
        out.read(cache_tags::list(NodeKind::Article));
        for (_, row) in &page.items {
            out.read(cache_tags::entity(NodeKind::Article, row.article.id));
        }
    }
    connection.write(out, page, total, |out, selection, row| {
        selection.write(out, row, fetched)
    })
}

/// `Query.articles(...)` or `Query.feed(...)`, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct ArticlesRoot {
    /// The filter; `feed_of` is the viewer's, filled when it runs.
    filter: ArticleFilter,
    /// Whether this is the feed (private, needs a signed-in viewer).
    feed: bool,
    args: PageArgs,
    connection: ConnectionSelection<ArticleSelection>,
    fetch: ArticleFetch,
}

/// The rows of a root list of articles.
pub struct ArticlesRows {
    page: Page<ArticleRow>,
    total: Option<i64>,
}

impl ArticlesRoot {
    /// Compiles `articles(...)` (or `feed(...)` when `feed`).
    pub fn compile(field: &Selected, feed: bool, ids: &mut FieldIds) -> Result<Self, Fallback> {
        let args = PageArgs::keyset(field.int("first")?, field.string("after")?.as_deref())
            .map_err(|_| Fallback::Unsupported("invalid page arguments"))?;
        let filter = if feed {
            ArticleFilter::default()
        } else {
            ArticleFilter {
                tag: field.string("tag")?,
                author: field.string("author")?,
                favorited_by: field.string("favoritedBy")?,
                feed_of: None,
            }
        };
        let connection = ConnectionSelection::compile(
            field.object("ArticleConnection")?,
            "ArticleConnection",
            "ArticleEdge",
            "Article",
            |fields| ArticleSelection::compile(fields, ids),
        )?;
        let fetch = ArticleFetch::of(connection.nodes());
        Ok(Self {
            filter,
            feed,
            args,
            connection,
            fetch,
        })
    }

    /// Whether it needs a signed-in viewer (the feed: anonymous callers get the executor's
    /// UNAUTHENTICATED).
    pub fn needs_viewer(&self) -> bool {
        self.feed
    }

    fn filter_for(&self, viewer: Option<i64>) -> ArticleFilter {
        let mut filter = self.filter.clone();
        if self.feed {
            filter.feed_of = viewer;
        }
        filter
    }

    /// Runs its statements: the page, and the count when selected.
    pub async fn fetch(
        &self,
        db: &DatabaseConnection,
        viewer: Option<i64>,
    ) -> Result<ArticlesRows, AppError> {
        let filter = self.filter_for(viewer);
        let page = service::list(db, &filter, &self.args, self.fetch.extras(viewer)).await?;
        let total = if self.connection.total {
            Some(service::count(db, &filter).await?)
        } else {
            None
        };
        Ok(ArticlesRows { page, total })
    }

    /// The later statements its articles need.
    pub fn needs<'p>(&'p self, rows: &'p ArticlesRows, requests: &mut Requests<'p>) {
        let articles: Vec<&ArticleRow> = rows.page.items.iter().map(|(_, row)| row).collect();
        for selection in self.connection.nodes() {
            selection.needs(&articles, requests);
        }
    }

    /// Writes the connection; its cost.
    pub fn write(
        &self,
        out: &mut Writer,
        rows: &ArticlesRows,
        fetched: &Fetched,
    ) -> Result<u64, Fallback> {
        if self.feed {
            out.private();
            if let Some(viewer) = out.viewer {
                out.read(cache_tags::feed(viewer));
            }
        } else if self.filter.author.is_some() || self.filter.favorited_by.is_some() {
            // The filter finds users by name: renaming one changes which articles match.
            out.read(cache_tags::list(NodeKind::User));
        }
        write_articles(out, &self.connection, &rows.page, rows.total, fetched)
    }
}

/// `Query.article(slug)`, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct ArticleRoot {
    slug: String,
    selection: ArticleSelection,
}

impl ArticleRoot {
    /// Compiles `article(slug)`.
    pub fn compile(field: &Selected, ids: &mut FieldIds) -> Result<Self, Fallback> {
        let slug = field
            .string("slug")?
            .ok_or(Fallback::Unsupported("a missing slug"))?;
        Ok(Self {
            slug,
            selection: ArticleSelection::compile(field.object("Article")?, ids)?,
        })
    }

    /// Runs its statement.
    pub async fn fetch(
        &self,
        db: &DatabaseConnection,
        viewer: Option<i64>,
    ) -> Result<Option<ArticleRow>, AppError> {
        service::find_by_slug_with(db, &self.slug, self.selection.fetch.extras(viewer)).await
    }

    /// Its selection.
    pub fn selection(&self) -> &ArticleSelection {
        &self.selection
    }

    /// Writes the article (or null); its cost.
    pub fn write(
        &self,
        out: &mut Writer,
        row: Option<&ArticleRow>,
        fetched: &Fetched,
    ) -> Result<u64, Fallback> {
        out.read(cache_tags::list(NodeKind::Article));
        match row {
            Some(row) => {
                out.read(cache_tags::entity(NodeKind::Article, row.article.id));
                self.selection.write(out, row, fetched)
            }
            None => {
                out.null();
                Ok(0)
            }
        }
    }
}
