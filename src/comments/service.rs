//! The rules and data access of comments. Knows nothing of GraphQL.

use std::collections::HashMap;

use entity::{article, comment};
use sea_orm::sea_query::{Expr, JoinType, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryTrait, Set,
};
use sea_orm::{DbBackend, ExprTrait, QueryOrder, QuerySelect};

use crate::articles;
use crate::db;
use crate::error::{AppError, AppResult, FieldErrors};
use crate::pagination::{self, Cursor, Direction, Keyset, Page, PageArgs};
use crate::users;
use crate::users::service::{ProfileExtras, ProfileRow};
use crate::validate;

/// Adds a comment by `author_id` to the article `slug` (NOT_FOUND when there is none).
#[tracing::instrument(skip(db, body))]
pub async fn add(
    db: &DatabaseConnection,
    author_id: i64,
    slug: &str,
    body: String,
) -> AppResult<comment::Model> {
    let mut errors = FieldErrors::new();
    validate::required(&mut errors, "body", &body, validate::MAX_BODY);
    validate::finish(errors)?;

    let now = db::now();
    let txn = db::begin_write(db).await?;
    let article = articles::service::find_by_slug(&txn, slug)
        .await?
        .ok_or_else(|| articles::service::no_such_article(slug))?;
    let created = comment::ActiveModel {
        body: Set(body),
        article_id: Set(article.id),
        author_id: Set(author_id),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(created)
}

/// Deletes comment `id`, which `viewer_id` must have written (NOT_FOUND, FORBIDDEN).
#[tracing::instrument(skip(db))]
pub async fn delete(db: &DatabaseConnection, viewer_id: i64, id: i64) -> AppResult<()> {
    let txn = db::begin_write(db).await?;
    let found = comment::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::NotFound("No such comment".into()))?;
    if found.author_id != viewer_id {
        return Err(AppError::Forbidden(
            "Only the author may delete this comment".into(),
        ));
    }
    comment::Entity::delete_by_id(id).exec(&txn).await?;
    txn.commit().await?;
    Ok(())
}

/// The comments with these ids.
pub async fn find_by_ids(db: &impl ConnectionTrait, ids: &[i64]) -> AppResult<Vec<comment::Model>> {
    Ok(comment::Entity::find()
        .filter(comment::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?)
}

/// The comments with these ids with `extras`, in one statement (any order).
pub async fn find_by_ids_with(
    db: &impl ConnectionTrait,
    ids: &[i64],
    extras: CommentExtras,
) -> AppResult<Vec<CommentRow>> {
    let mut query = comment::Entity::find()
        .select_only()
        .columns(COMMENT_COLUMNS)
        .filter(comment::Column::Id.is_in(ids.iter().copied()))
        .into_query();
    if let Some(author) = extras.author {
        users::service::join_profile(
            &mut query,
            (comment::Entity, comment::Column::AuthorId),
            AUTHOR,
            author,
        );
    }
    db.query_all(&query)
        .await?
        .iter()
        .map(|row| Ok(comment_row(row, extras)?))
        .collect()
}

/// A comment read by position: its columns in the entity's order, then the author's.
fn comment_row(
    row: &sea_orm::QueryResult,
    extras: CommentExtras,
) -> Result<CommentRow, sea_orm::DbErr> {
    let comment = comment::Model {
        id: row.try_get_by_index(0)?,
        body: row.try_get_by_index(1)?,
        article_id: row.try_get_by_index(2)?,
        author_id: row.try_get_by_index(3)?,
        created_at: row.try_get_by_index(4)?,
        updated_at: row.try_get_by_index(5)?,
    };
    let author = match extras.author {
        Some(author) => Some(users::service::profile_at(row, &mut 6, author)?),
        None => None,
    };
    Ok(CommentRow { comment, author })
}

/// The cursor of a comment in an oldest-first list.
pub fn cursor_of(comment: &comment::Model) -> Cursor {
    Cursor::Keyset(Keyset::new(comment.created_at, comment.id))
}

/// What to fetch with each comment, in the statement that fetches the comments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CommentExtras {
    /// The author's profile, with what is asked of it.
    pub author: Option<ProfileExtras>,
}

/// A comment fetched with what [`CommentExtras`] asked for.
#[derive(Debug, Clone)]
pub struct CommentRow {
    /// The comment.
    pub comment: comment::Model,
    /// Its author.
    pub author: Option<ProfileRow>,
}

/// The prefix of the author's column names in a statement.
const AUTHOR: &str = "author_";

/// The alias of the articles whose comments a statement pages.
const PARENT: &str = "parent";

/// The columns of a comment, in the order of its model.
const COMMENT_COLUMNS: [comment::Column; 6] = [
    comment::Column::Id,
    comment::Column::Body,
    comment::Column::ArticleId,
    comment::Column::AuthorId,
    comment::Column::CreatedAt,
    comment::Column::UpdatedAt,
];

/// One page of comments, oldest first, for each of `article_ids`, with `extras`, in one statement.
pub async fn pages_by_article(
    db: &impl ConnectionTrait,
    article_ids: &[i64],
    args: &PageArgs,
    extras: CommentExtras,
) -> AppResult<HashMap<i64, Page<CommentRow>>> {
    let statement = match db.get_database_backend() {
        // PostgreSQL: for each article, its first rows by the (article, time, id) index, then
        // their authors by primary key (LATERAL).
        DbBackend::Postgres => {
            let mut page = comment::Entity::find()
                .filter(
                    Expr::col((comment::Entity, comment::Column::ArticleId))
                        .equals((PARENT, article::Column::Id)),
                )
                .order_by_asc(comment::Column::CreatedAt)
                .order_by_asc(comment::Column::Id)
                .limit(args.first + 1);
            if let Some(after) = &args.after {
                page = page.filter(pagination::after_condition(
                    comment::Column::CreatedAt,
                    comment::Column::Id,
                    after,
                    Direction::OldestFirst,
                ));
            }
            let mut query = Query::select();
            query
                .columns(COMMENT_COLUMNS.map(|column| (comment::Entity, column)))
                .from_as(article::Entity, PARENT)
                .join_lateral(
                    JoinType::InnerJoin,
                    page.into_query(),
                    comment::Entity,
                    Expr::val(true),
                )
                .and_where(
                    Expr::col((PARENT, article::Column::Id)).is_in(article_ids.iter().copied()),
                );
            if let Some(author) = extras.author {
                users::service::join_profile(
                    &mut query,
                    (comment::Entity, comment::Column::AuthorId),
                    AUTHOR,
                    author,
                );
            }
            // Each article's rows come in order from its LATERAL page; they are put in order
            // below rather than sorted together here.
            query
        }
        // SQLite has no LATERAL: number the rows of each article (a window) and keep the first.
        _ => {
            let mut select = comment::Entity::find()
                .filter(comment::Column::ArticleId.is_in(article_ids.iter().copied()));
            if let Some(after) = &args.after {
                select = select.filter(pagination::after_condition(
                    comment::Column::CreatedAt,
                    comment::Column::Id,
                    after,
                    Direction::OldestFirst,
                ));
            }
            let mut inner = select.into_query();
            if let Some(author) = extras.author {
                users::service::join_profile(
                    &mut inner,
                    (comment::Entity, comment::Column::AuthorId),
                    AUTHOR,
                    author,
                );
            }
            pagination::first_rows_per_partition(
                inner,
                (comment::Entity, comment::Column::ArticleId),
                (comment::Entity, comment::Column::CreatedAt),
                (comment::Entity, comment::Column::Id),
                Direction::OldestFirst,
                args.first + 1,
            )
        }
    };
    let mut rows: HashMap<i64, Vec<CommentRow>> = HashMap::new();
    for row in db.query_all(&statement).await? {
        let row = comment_row(&row, extras)?;
        rows.entry(row.comment.article_id).or_default().push(row);
    }
    for page in rows.values_mut() {
        page.sort_by_key(|row| (row.comment.created_at, row.comment.id));
    }
    Ok(pagination::pages_by_parent(rows, args, |row| {
        cursor_of(&row.comment)
    }))
}

/// How many comments each article has (absent: none).
pub async fn counts_by_article(
    db: &impl ConnectionTrait,
    article_ids: &[i64],
) -> AppResult<HashMap<i64, i64>> {
    db::count_by::<comment::Entity>(db, comment::Column::ArticleId, article_ids).await
}
