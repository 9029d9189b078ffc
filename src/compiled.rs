//! Compiled reads: a query whose every field can be served from its plan runs without
//! async-graphql's executor. The plan (each field once, its arguments resolved) compiles once per
//! document and variables into a [`Program`]; running one sends the planned statements, level by
//! level, and writes the rows straight to the response JSON in selection order: no `Value` tree,
//! no future per field.
//!
//! What compiles is declared next to each area's types (`articles/compiled.rs`,
//! `users/compiled.rs`, `comments/compiled.rs`, `tags/compiled.rs`, `node.rs`): the root fields
//! `articles`, `feed`, `article`, `user`, `viewer`, `tags`, `node` and `__typename`, the
//! connections with `edges`, `nodes`, `pageInfo` and `totalCount`, and the scalar and relation
//! fields of `Article`, `User`, `Comment` and `Tag`. Anything else does not compile, and the
//! query runs through the executor exactly as before: introspection, mutations, subscriptions, a
//! field the declarations do not name (a field added to the schema without saying how it
//! compiles falls back rather than breaks), and the error paths left to the executor (an invalid
//! cursor, the feed of an anonymous viewer, a failed statement, a response too large).
//!
//! What a compiled run produces is what the executor would: the same `data` bytes, the same
//! actual cost (the structural count, capped at the requested cost), the same cache tags read and
//! the same privacy (a private field that ran makes the answer private). A differential test
//! (`tests/api/compiled_reads.rs`) runs generated documents through both and compares them.
//!
//! Statements: one per root field, then one per nested field at each level, shared by the fields
//! that ask the same page with the same extras (`Article.comments`, `User.articles`,
//! `User.favoriteArticles`, `Comment.article`), and one per level for the counts of nested
//! connections. Relations fetched in their parent's statement (authors, counts, the viewer's
//! favorites and follows, tag names) cost none.

use std::collections::HashMap;

use sea_orm::DatabaseConnection;

use crate::articles::compiled::{ArticleRoot, ArticlesRoot, ArticlesRows, Fetched, Requests};
use crate::articles::service::{ArticleExtras, ArticleRow, UserList};
use crate::cache::CacheTag;
use crate::comments::service::CommentExtras;
use crate::graphql::compiled::{Fallback, FieldIds, Key, Selected, Writer, distinct};
use crate::node::compiled::{NodeRoot, NodeRows};
use crate::pagination::{Page, PageArgs};
use crate::tags::compiled::{TagsRoot, TagsRows};
use crate::users::compiled::{UserRoot, ViewerRoot};
use crate::users::service::ProfileRow;
use crate::{articles, comments};

/// A root field of `Query`, compiled.
#[derive(Debug, Clone, PartialEq)]
enum Root {
    Typename,
    Articles(ArticlesRoot),
    Article(ArticleRoot),
    User(UserRoot),
    Viewer(ViewerRoot),
    Tags(TagsRoot),
    Node(Box<NodeRoot>),
}

/// What a root field's statement fetched.
enum RootRows {
    None,
    Articles(ArticlesRows),
    Article(Option<ArticleRow>),
    User(Option<ProfileRow>),
    Tags(TagsRows),
    Node(Option<NodeRows>),
}

/// A query, compiled from its plan: its root fields in selection order.
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    roots: Vec<(Key, Root)>,
    /// Whether it needs a signed-in viewer to run compiled (the feed).
    needs_viewer: bool,
}

/// What a compiled run produced.
#[derive(Debug)]
pub struct Ran {
    /// The JSON of `data`.
    pub data: Vec<u8>,
    /// The actual cost of what was written (before the cap at the requested cost).
    pub cost: u64,
    /// The cache tags the response read.
    pub tags: Vec<CacheTag>,
    /// Whether a private field ran.
    pub private: bool,
    /// Whether a root field answered something other than null.
    pub produced: bool,
}

/// Compiles the root fields of a query's plan; `Err` when a field does not compile (the query
/// runs through the executor).
pub fn compile(fields: &[Selected]) -> Result<Program, Fallback> {
    let mut ids = FieldIds::default();
    let mut roots = Vec::with_capacity(fields.len());
    let mut needs_viewer = false;
    for field in fields {
        let root = match field.name.as_str() {
            "__typename" => Root::Typename,
            "articles" => Root::Articles(ArticlesRoot::compile(field, false, &mut ids)?),
            "feed" => {
                needs_viewer = true;
                Root::Articles(ArticlesRoot::compile(field, true, &mut ids)?)
            }
            "article" => Root::Article(ArticleRoot::compile(field, &mut ids)?),
            "user" => Root::User(UserRoot::compile(field, &mut ids)?),
            "viewer" => Root::Viewer(ViewerRoot::compile(field, &mut ids)?),
            "tags" => Root::Tags(TagsRoot::compile(field)?),
            "node" => Root::Node(Box::new(NodeRoot::compile(field, &mut ids)?)),
            _ => return Err(Fallback::Unsupported("a root field")),
        };
        roots.push((Key::of(&field.key), root));
    }
    Ok(Program {
        roots,
        needs_viewer,
    })
}

/// Runs `program` on `db` for `viewer`, writing at most `limit` bytes of `data`.
pub async fn run(
    program: &Program,
    db: &DatabaseConnection,
    viewer: Option<i64>,
    limit: usize,
) -> Result<Ran, Fallback> {
    if program.needs_viewer && viewer.is_none() {
        return Err(Fallback::Unsupported("the feed of an anonymous viewer"));
    }
    let mut rows = Vec::with_capacity(program.roots.len());
    for (_, root) in &program.roots {
        rows.push(fetch_root(root, db, viewer).await?);
    }
    let mut fetched = Fetched::default();
    let mut requests = Requests::default();
    for ((_, root), rows) in program.roots.iter().zip(&rows) {
        needs_of_root(root, rows, &mut requests);
    }
    while !requests.is_empty() {
        requests = run_level(db, viewer, requests, &mut fetched).await?;
    }
    let mut out = Writer::new(viewer, limit, 4096);
    let mut cost = 0u64;
    let mut produced = false;
    out.byte(b'{');
    for (index, ((key, root), rows)) in program.roots.iter().zip(&rows).enumerate() {
        out.key(key, index == 0);
        let start = out.len();
        cost = cost.saturating_add(write_root(&mut out, root, rows, &fetched)?);
        produced |= !out.written_since(start, b"null");
    }
    out.byte(b'}');
    let (data, tags, private) = out.finish();
    Ok(Ran {
        data,
        cost,
        tags,
        private,
        produced,
    })
}

async fn fetch_root(
    root: &Root,
    db: &DatabaseConnection,
    viewer: Option<i64>,
) -> Result<RootRows, Fallback> {
    Ok(match root {
        Root::Typename => RootRows::None,
        Root::Articles(articles) => RootRows::Articles(articles.fetch(db, viewer).await?),
        Root::Article(article) => RootRows::Article(article.fetch(db, viewer).await?),
        Root::User(user) => RootRows::User(user.fetch(db, viewer).await?),
        Root::Viewer(user) => RootRows::User(user.fetch(db, viewer).await?),
        Root::Tags(tags) => RootRows::Tags(tags.fetch(db).await?),
        Root::Node(node) => RootRows::Node(node.fetch(db, viewer).await?),
    })
}

fn needs_of_root<'p>(root: &'p Root, rows: &'p RootRows, requests: &mut Requests<'p>) {
    match (root, rows) {
        (Root::Articles(articles), RootRows::Articles(rows)) => articles.needs(rows, requests),
        (Root::Article(article), RootRows::Article(Some(row))) => {
            article.selection().needs(&[row], requests);
        }
        (Root::User(user), RootRows::User(Some(row))) => {
            user.selection().needs(&[row.profile.id], requests);
        }
        (Root::Viewer(user), RootRows::User(Some(row))) => {
            user.selection().needs(&[row.profile.id], requests);
        }
        (Root::Node(node), RootRows::Node(rows)) => node.needs(rows.as_ref(), requests),
        _ => {}
    }
}

/// Writes one root field; its cost.
fn write_root(
    out: &mut Writer,
    root: &Root,
    rows: &RootRows,
    fetched: &Fetched,
) -> Result<u64, Fallback> {
    Ok(match (root, rows) {
        (Root::Typename, _) => {
            out.str("Query")?;
            0
        }
        (Root::Articles(articles), RootRows::Articles(rows)) => {
            articles.write(out, rows, fetched)?
        }
        (Root::Article(article), RootRows::Article(row)) => {
            article.write(out, row.as_ref(), fetched)?
        }
        (Root::User(user), RootRows::User(row)) => user.write(out, row.as_ref(), fetched)?,
        (Root::Viewer(user), RootRows::User(row)) => user.write(out, row.as_ref(), fetched)?,
        (Root::Tags(tags), RootRows::Tags(rows)) => tags.write(out, rows)?,
        (Root::Node(node), RootRows::Node(rows)) => node.write(out, rows.as_ref(), fetched)?,
        _ => return Err(Fallback::Missing("a root field's rows")),
    })
}

/// Runs the statements of one level, keeps their rows in `fetched`, and returns what the next
/// level needs. Fields that ask the same page with the same extras share one statement.
async fn run_level<'p>(
    db: &DatabaseConnection,
    viewer: Option<i64>,
    requests: Requests<'p>,
    fetched: &mut Fetched,
) -> Result<Requests<'p>, Fallback> {
    let mut next = Requests::default();

    // Pages of comments, by (page, extras).
    let mut comment_groups: HashMap<(&PageArgs, CommentExtras), Vec<usize>> = HashMap::new();
    for (index, (field, _)) in requests.comment_pages.iter().enumerate() {
        comment_groups
            .entry((&field.args, field.fetch.extras(viewer)))
            .or_default()
            .push(index);
    }
    for ((args, extras), members) in sorted(comment_groups) {
        let ids = union(
            members
                .iter()
                .map(|index| &requests.comment_pages[*index].1),
        );
        let mut pages = comments::service::pages_by_article(db, &ids, args, extras).await?;
        for index in members {
            let (field, parents) = &requests.comment_pages[index];
            let empty = Page::empty(field.args.after.is_some());
            let rows: Vec<_> = distinct(parents.iter().copied())
                .into_iter()
                .flat_map(|parent| pages.get(&parent).unwrap_or(&empty).items.iter())
                .map(|(_, row)| row)
                .collect();
            for selection in field.connection.nodes() {
                selection.needs(&rows, &mut next);
            }
            for parent in parents {
                let page = pages
                    .get(parent)
                    .cloned()
                    .unwrap_or_else(|| Page::empty(field.args.after.is_some()));
                fetched.comment_pages.insert((field.id, *parent), page);
            }
        }
        pages.clear();
    }
    let counted: Vec<_> = requests
        .comment_pages
        .iter()
        .filter(|(field, _)| field.connection.total)
        .collect();
    if !counted.is_empty() {
        let ids = union(counted.iter().map(|(_, parents)| parents));
        let counts = comments::service::counts_by_article(db, &ids).await?;
        for (field, parents) in counted {
            for parent in parents {
                let count = counts.get(parent).copied().unwrap_or(0);
                fetched.counts.insert((field.id, *parent), count);
            }
        }
    }

    // Pages of users' lists of articles, by (list, page, extras).
    let mut list_groups: HashMap<(UserList, &PageArgs, ArticleExtras), Vec<usize>> = HashMap::new();
    for (index, (field, _)) in requests.user_articles.iter().enumerate() {
        list_groups
            .entry((field.list, &field.args, field.fetch.extras(viewer)))
            .or_default()
            .push(index);
    }
    for ((list, args, extras), members) in sorted(list_groups) {
        let ids = union(
            members
                .iter()
                .map(|index| &requests.user_articles[*index].1),
        );
        let pages = articles::service::user_pages(db, list, &ids, args, extras).await?;
        for index in members {
            let (field, parents) = &requests.user_articles[index];
            let empty = Page::empty(field.args.after.is_some());
            let rows: Vec<&ArticleRow> = distinct(parents.iter().copied())
                .into_iter()
                .flat_map(|parent| pages.get(&parent).unwrap_or(&empty).items.iter())
                .map(|(_, row)| row)
                .collect();
            for selection in field.connection.nodes() {
                selection.needs(&rows, &mut next);
            }
            for parent in parents {
                let page = pages
                    .get(parent)
                    .cloned()
                    .unwrap_or_else(|| Page::empty(field.args.after.is_some()));
                fetched.article_pages.insert((field.id, *parent), page);
            }
        }
    }
    for list in [UserList::Written, UserList::Favorited] {
        let counted: Vec<_> = requests
            .user_articles
            .iter()
            .filter(|(field, _)| field.list == list && field.connection.total)
            .collect();
        if counted.is_empty() {
            continue;
        }
        let ids = union(counted.iter().map(|(_, parents)| parents));
        let counts = articles::service::user_counts(db, list, &ids).await?;
        for (field, parents) in counted {
            for parent in parents {
                let count = counts.get(parent).copied().unwrap_or(0);
                fetched.counts.insert((field.id, *parent), count);
            }
        }
    }

    // Articles of comments, by extras.
    let mut article_groups: HashMap<ArticleExtras, Vec<usize>> = HashMap::new();
    for (index, (field, _)) in requests.articles_by_id.iter().enumerate() {
        article_groups
            .entry(field.selection.fetch.extras(viewer))
            .or_default()
            .push(index);
    }
    for (extras, members) in sorted(article_groups) {
        let ids = union(
            members
                .iter()
                .map(|index| &requests.articles_by_id[*index].1),
        );
        let found: HashMap<i64, ArticleRow> = articles::service::find_by_ids_with(db, &ids, extras)
            .await?
            .into_iter()
            .map(|row| (row.article.id, row))
            .collect();
        for index in members {
            let (field, parents) = &requests.articles_by_id[index];
            let rows: Vec<&ArticleRow> = distinct(parents.iter().copied())
                .iter()
                .filter_map(|parent| found.get(parent))
                .collect();
            field.selection.needs(&rows, &mut next);
            for parent in parents {
                if let Some(row) = found.get(parent) {
                    fetched.articles.insert((field.id, *parent), row.clone());
                }
            }
        }
    }
    Ok(next)
}

/// The groups of a level in a stable order (so that a query sends its statements in the same
/// order every run).
fn sorted<K>(groups: HashMap<K, Vec<usize>>) -> Vec<(K, Vec<usize>)> {
    let mut groups: Vec<(K, Vec<usize>)> = groups.into_iter().collect();
    groups.sort_by_key(|(_, members)| members.first().copied());
    groups
}

/// The distinct ids of every list, in first-seen order.
fn union<'a>(lists: impl Iterator<Item = &'a Vec<i64>>) -> Vec<i64> {
    distinct(lists.flat_map(|list| list.iter().copied()))
}
