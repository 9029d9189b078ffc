//! The rules and data access of articles and favorites. Knows nothing of GraphQL.

use std::collections::HashMap;

use entity::{article, favorite};
use sea_orm::sea_query::{Alias, Asterisk, Expr, IntoColumnRef, Query, SelectStatement};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    ExprTrait, JoinType, PaginatorTrait, QueryFilter, QueryResult, QuerySelect, QueryTrait,
    RelationTrait, Select, Set,
};

use super::slug;
use crate::db;
use crate::error::{AppError, AppResult, FieldErrors};
use crate::pagination::{self, Cursor, Direction, Keyset, Page, PageArgs};
use crate::users::service::{ProfileExtras, ProfileRow};
use crate::validate;
use crate::{tags, users};

/// What to fetch with each article, in the statement that fetches the articles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ArticleExtras {
    /// The author's profile, with what is asked of it.
    pub author: Option<ProfileExtras>,
    /// How many users favorited it.
    pub favorites_count: bool,
    /// Whether this user (the viewer) favorited it.
    pub favorited_by: Option<i64>,
    /// Its tag names.
    pub tags: bool,
    /// Leave the body out (an empty string): nothing reads it.
    pub without_body: bool,
    /// Leave the description out (an empty string): nothing reads it. Only for rows that no
    /// other reader shares (compiled reads; the executor's loaders share what they are fed).
    pub without_description: bool,
}

/// An article fetched with what [`ArticleExtras`] asked for.
#[derive(Debug, Clone)]
pub struct ArticleRow {
    /// The article.
    pub article: article::Model,
    /// Its author.
    pub author: Option<ProfileRow>,
    /// How many users favorited it.
    pub favorites_count: Option<i64>,
    /// Whether the viewer favorited it.
    pub favorited: Option<bool>,
    /// Its tag names, in alphabetical order.
    pub tags: Option<Vec<String>>,
}

/// The prefix of the author's column names in a statement.
const AUTHOR: &str = "author_";

/// Adds to `query` (over `articles`) the columns that `extras` asks for.
fn add_extras(query: &mut SelectStatement, backend: sea_orm::DbBackend, extras: ArticleExtras) {
    let id = (article::Entity, article::Column::Id);
    if let Some(author) = extras.author {
        users::service::join_profile(
            query,
            (article::Entity, article::Column::AuthorId),
            AUTHOR,
            author,
        );
    }
    if extras.favorites_count {
        let count = Query::select()
            .expr(Expr::col(Asterisk).count())
            .from(favorite::Entity)
            .and_where(Expr::col((favorite::Entity, favorite::Column::ArticleId)).equals(id))
            .to_owned();
        query.expr_as(
            Expr::SubQuery(None, Box::new(count.into())),
            Alias::new("favorites_count"),
        );
    }
    if let Some(viewer) = extras.favorited_by {
        let favorited = Query::select()
            .expr(Expr::val(1))
            .from(favorite::Entity)
            .and_where(favorite::Column::UserId.eq(viewer))
            .and_where(Expr::col((favorite::Entity, favorite::Column::ArticleId)).equals(id))
            .to_owned();
        query.expr_as(Expr::exists(favorited), Alias::new("favorited"));
    }
    if extras.tags {
        query.expr_as(
            tags::service::names_of(backend, id),
            Alias::new("tag_names"),
        );
    }
}

/// The columns of an article, in the order of its model.
const ARTICLE_COLUMNS: usize = 8;

/// `articles` with the columns of its model in their order, the body and the description left
/// out (as empty strings) when `extras` says nothing reads them: a page that does not show
/// bodies does not carry them.
fn articles(extras: ArticleExtras) -> Select<article::Entity> {
    let select = article::Entity::find().select_only().columns([
        article::Column::Id,
        article::Column::Slug,
        article::Column::Title,
    ]);
    let select = if extras.without_description {
        select.expr_as(Expr::val(""), "description")
    } else {
        select.column(article::Column::Description)
    };
    let select = if extras.without_body {
        select.expr_as(Expr::val(""), "body")
    } else {
        select.column(article::Column::Body)
    };
    select.columns([
        article::Column::AuthorId,
        article::Column::CreatedAt,
        article::Column::UpdatedAt,
    ])
}

impl ArticleRow {
    /// The row a statement with [`add_extras`] returned, read by position: the article's
    /// columns, `skip` more (e.g. the owner of a user's list), then the extras in the order
    /// [`add_extras`] added them.
    fn read(row: &QueryResult, extras: ArticleExtras, skip: usize) -> Result<Self, DbErr> {
        let article = article::Model {
            id: row.try_get_by_index(0)?,
            slug: row.try_get_by_index(1)?,
            title: row.try_get_by_index(2)?,
            description: row.try_get_by_index(3)?,
            body: row.try_get_by_index(4)?,
            author_id: row.try_get_by_index(5)?,
            created_at: row.try_get_by_index(6)?,
            updated_at: row.try_get_by_index(7)?,
        };
        let mut at = ARTICLE_COLUMNS + skip;
        let author = match extras.author {
            Some(author) => Some(users::service::profile_at(row, &mut at, author)?),
            None => None,
        };
        let mut next = || {
            at += 1;
            at - 1
        };
        let favorites_count = if extras.favorites_count {
            Some(row.try_get_by_index(next())?)
        } else {
            None
        };
        let favorited = match extras.favorited_by {
            Some(_) => Some(row.try_get_by_index(next())?),
            None => None,
        };
        let tags = if extras.tags {
            let names: Option<String> = row.try_get_by_index(next())?;
            Some(tags::service::parse_names(names.as_deref()))
        } else {
            None
        };
        Ok(Self {
            article,
            author,
            favorites_count,
            favorited,
            tags,
        })
    }
}

/// What a new article gives.
#[derive(Debug, Clone)]
pub struct NewArticle {
    /// Not blank.
    pub title: String,
    /// Not blank.
    pub description: String,
    /// Not blank.
    pub body: String,
    /// Tag names (trimmed, duplicates dropped).
    pub tags: Vec<String>,
}

/// Changes to an article; `None` leaves a value as it is.
#[derive(Debug, Clone, Default)]
pub struct ArticleChanges {
    /// A new title (the slug follows it).
    pub title: Option<String>,
    /// A new description.
    pub description: Option<String>,
    /// A new body.
    pub body: Option<String>,
    /// New tags; `Some(vec![])` removes them all.
    pub tags: Option<Vec<String>>,
}

/// Which articles a list holds; every filter given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ArticleFilter {
    /// Tagged with this name.
    pub tag: Option<String>,
    /// Written by the user with this username.
    pub author: Option<String>,
    /// Favorited by the user with this username.
    pub favorited_by: Option<String>,
    /// Written by users that this user follows (the feed).
    pub feed_of: Option<i64>,
}

/// The lists of articles that belong to one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserList {
    /// The articles the user wrote.
    Written,
    /// The articles the user favorited.
    Favorited,
}

fn check_text(errors: &mut FieldErrors, field: &str, value: &str) {
    let max = if field == "body" {
        validate::MAX_BODY
    } else {
        validate::MAX_TITLE
    };
    validate::required(errors, field, value, max);
}

/// A slug for `title` that no other article has (checked now; the unique index decides a race).
async fn free_slug(txn: &impl ConnectionTrait, title: &str) -> AppResult<String> {
    let base = slug::slugify(title);
    let taken = article::Entity::find()
        .filter(article::Column::Slug.eq(&base))
        .count(txn)
        .await?
        > 0;
    Ok(if taken {
        slug::with_suffix(&base)
    } else {
        base
    })
}

/// Publishes an article by `author_id`.
#[tracing::instrument(skip_all, fields(author_id))]
pub async fn create(
    db: &DatabaseConnection,
    author_id: i64,
    new: NewArticle,
) -> AppResult<article::Model> {
    let mut errors = FieldErrors::new();
    check_text(&mut errors, "title", &new.title);
    check_text(&mut errors, "description", &new.description);
    check_text(&mut errors, "body", &new.body);
    let tag_names = tags::service::normalize(&mut errors, &new.tags);
    validate::finish(errors)?;

    let now = db::now();
    let txn = db::begin_write(db).await?;
    let slug = free_slug(&txn, &new.title).await?;
    let created = article::ActiveModel {
        slug: Set(slug),
        title: Set(new.title),
        description: Set(new.description),
        body: Set(new.body),
        author_id: Set(author_id),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    tags::service::replace_article_tags(&txn, created.id, &tag_names).await?;
    txn.commit().await?;
    Ok(created)
}

/// The article `slug`, which `viewer_id` must have written (NOT_FOUND, FORBIDDEN).
async fn own_article(
    txn: &impl ConnectionTrait,
    viewer_id: i64,
    slug: &str,
) -> AppResult<article::Model> {
    let found = find_by_slug(txn, slug)
        .await?
        .ok_or_else(|| no_such_article(slug))?;
    if found.author_id != viewer_id {
        return Err(AppError::Forbidden(
            "Only the author may change or delete this article".into(),
        ));
    }
    Ok(found)
}

/// Applies `changes` to the article `slug` of `viewer_id`.
#[tracing::instrument(skip(db, changes))]
pub async fn update(
    db: &DatabaseConnection,
    viewer_id: i64,
    slug: &str,
    changes: ArticleChanges,
) -> AppResult<article::Model> {
    let mut errors = FieldErrors::new();
    for (field, value) in [
        ("title", &changes.title),
        ("description", &changes.description),
        ("body", &changes.body),
    ] {
        if let Some(value) = value {
            check_text(&mut errors, field, value);
        }
    }
    let tag_names = changes
        .tags
        .as_ref()
        .map(|names| tags::service::normalize(&mut errors, names));
    validate::finish(errors)?;

    let txn = db::begin_write(db).await?;
    let current = own_article(&txn, viewer_id, slug).await?;
    let id = current.id;
    let old_title = current.title.clone();
    let old_slug = current.slug.clone();
    let mut article: article::ActiveModel = current.into();
    if let Some(title) = changes.title {
        // The slug follows the title, unless the title still makes the current slug.
        if title != old_title && slug::slugify(&title) != old_slug {
            article.slug = Set(free_slug(&txn, &title).await?);
        }
        article.title = Set(title);
    }
    if let Some(description) = changes.description {
        article.description = Set(description);
    }
    if let Some(body) = changes.body {
        article.body = Set(body);
    }
    article.updated_at = Set(db::now());
    let updated = article.update(&txn).await?;
    if let Some(names) = tag_names {
        tags::service::replace_article_tags(&txn, id, &names).await?;
    }
    txn.commit().await?;
    Ok(updated)
}

/// Deletes the article `slug` of `viewer_id` with its comments, favorites and tag links; its id.
#[tracing::instrument(skip(db))]
pub async fn delete(db: &DatabaseConnection, viewer_id: i64, slug: &str) -> AppResult<i64> {
    let txn = db::begin_write(db).await?;
    let article = own_article(&txn, viewer_id, slug).await?;
    article::Entity::delete_by_id(article.id).exec(&txn).await?;
    txn.commit().await?;
    Ok(article.id)
}

/// Marks the article `slug` as a favorite of `user_id`; twice is a no-op.
#[tracing::instrument(skip(db))]
pub async fn favorite(
    db: &DatabaseConnection,
    user_id: i64,
    slug: &str,
) -> AppResult<article::Model> {
    let txn = db::begin_write(db).await?;
    let article = find_by_slug(&txn, slug)
        .await?
        .ok_or_else(|| no_such_article(slug))?;
    favorite::Entity::insert(favorite::ActiveModel {
        user_id: Set(user_id),
        article_id: Set(article.id),
        created_at: Set(db::now()),
    })
    .on_conflict_do_nothing_on([favorite::Column::UserId, favorite::Column::ArticleId])
    .exec_without_returning(&txn)
    .await?;
    txn.commit().await?;
    Ok(article)
}

/// Removes the article `slug` from the favorites of `user_id`; a no-op when it was not one.
#[tracing::instrument(skip(db))]
pub async fn unfavorite(
    db: &DatabaseConnection,
    user_id: i64,
    slug: &str,
) -> AppResult<article::Model> {
    let txn = db::begin_write(db).await?;
    let article = find_by_slug(&txn, slug)
        .await?
        .ok_or_else(|| no_such_article(slug))?;
    favorite::Entity::delete_many()
        .filter(favorite::Column::UserId.eq(user_id))
        .filter(favorite::Column::ArticleId.eq(article.id))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(article)
}

/// NOT_FOUND for the article `slug`.
pub fn no_such_article(slug: &str) -> AppError {
    AppError::NotFound(format!("No article has the slug {slug:?}"))
}

/// The article `slug`, if any.
pub async fn find_by_slug(
    db: &impl ConnectionTrait,
    slug: &str,
) -> AppResult<Option<article::Model>> {
    Ok(article::Entity::find()
        .filter(article::Column::Slug.eq(slug))
        .one(db)
        .await?)
}

/// The article `slug` with `extras`, in one statement.
pub async fn find_by_slug_with(
    db: &impl ConnectionTrait,
    slug: &str,
    extras: ArticleExtras,
) -> AppResult<Option<ArticleRow>> {
    let mut query = articles(extras)
        .filter(article::Column::Slug.eq(slug))
        .into_query();
    let backend = db.get_database_backend();
    add_extras(&mut query, backend, extras);
    let row = db.query_one(&query).await?;
    Ok(row
        .map(|row| ArticleRow::read(&row, extras, 0))
        .transpose()?)
}

/// The articles with these ids with `extras`, in one statement (any order).
pub async fn find_by_ids_with(
    db: &impl ConnectionTrait,
    ids: &[i64],
    extras: ArticleExtras,
) -> AppResult<Vec<ArticleRow>> {
    let mut query = articles(extras)
        .filter(article::Column::Id.is_in(ids.iter().copied()))
        .into_query();
    let backend = db.get_database_backend();
    add_extras(&mut query, backend, extras);
    db.query_all(&query)
        .await?
        .iter()
        .map(|row| Ok(ArticleRow::read(row, extras, 0)?))
        .collect()
}

/// The articles with these ids.
pub async fn find_by_ids(db: &impl ConnectionTrait, ids: &[i64]) -> AppResult<Vec<article::Model>> {
    Ok(article::Entity::find()
        .filter(article::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?)
}

fn filtered(filter: &ArticleFilter, extras: ArticleExtras) -> Select<article::Entity> {
    let mut select = articles(extras);
    if let Some(tag) = &filter.tag {
        select = select.filter(tags::service::is_tagged(
            (article::Entity, article::Column::Id),
            tag,
        ));
    }
    if let Some(author) = &filter.author {
        select =
            select.filter(article::Column::AuthorId.in_subquery(users::service::ids_named(author)));
    }
    if let Some(username) = &filter.favorited_by {
        let favorited = favorite::Entity::find()
            .select_only()
            .column(favorite::Column::ArticleId)
            .filter(favorite::Column::UserId.in_subquery(users::service::ids_named(username)))
            .into_query();
        select = select.filter(article::Column::Id.in_subquery(favorited));
    }
    if let Some(follower) = filter.feed_of {
        select = select
            .filter(article::Column::AuthorId.in_subquery(users::service::followed_by(follower)));
    }
    select
}

/// The cursor of an article in a newest-first list.
pub fn cursor_of(article: &article::Model) -> Cursor {
    Cursor::Keyset(Keyset::new(article.created_at, article.id))
}

/// One page of the articles that match `filter`, newest first, with `extras`, in one statement.
pub async fn list(
    db: &impl ConnectionTrait,
    filter: &ArticleFilter,
    args: &PageArgs,
    extras: ArticleExtras,
) -> AppResult<Page<ArticleRow>> {
    let mut query = pagination::keyset_page(
        filtered(filter, extras),
        article::Column::CreatedAt,
        article::Column::Id,
        args,
        Direction::NewestFirst,
    )
    .into_query();
    let backend = db.get_database_backend();
    add_extras(&mut query, backend, extras);
    let rows = db
        .query_all(&query)
        .await?
        .iter()
        .map(|row| ArticleRow::read(row, extras, 0))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page::from_rows(
        rows,
        args.first,
        args.after.is_some(),
        |row| cursor_of(&row.article),
    ))
}

/// How many articles match `filter`.
pub async fn count(db: &impl ConnectionTrait, filter: &ArticleFilter) -> AppResult<i64> {
    let nothing = ArticleExtras {
        without_body: true,
        without_description: true,
        ..ArticleExtras::default()
    };
    Ok(filtered(filter, nothing).count(db).await? as i64)
}

/// The name of the column that holds the owning user in [`user_pages`].
const OWNER: &str = "list_owner_id";

/// One page of `list` for each of `user_ids`, newest first, with `extras`, in one statement.
pub async fn user_pages(
    db: &impl ConnectionTrait,
    list: UserList,
    user_ids: &[i64],
    args: &PageArgs,
    extras: ArticleExtras,
) -> AppResult<HashMap<i64, Page<ArticleRow>>> {
    let (mut select, partition) = match list {
        UserList::Written => (
            articles(extras)
                .column_as(article::Column::AuthorId, OWNER)
                .filter(article::Column::AuthorId.is_in(user_ids.iter().copied())),
            (article::Entity, article::Column::AuthorId).into_column_ref(),
        ),
        UserList::Favorited => (
            articles(extras)
                .column_as(favorite::Column::UserId, OWNER)
                .join(JoinType::InnerJoin, favorite::Relation::Article.def().rev())
                .filter(favorite::Column::UserId.is_in(user_ids.iter().copied())),
            (favorite::Entity, favorite::Column::UserId).into_column_ref(),
        ),
    };
    if let Some(after) = &args.after {
        select = select.filter(pagination::after_condition(
            article::Column::CreatedAt,
            article::Column::Id,
            after,
            Direction::NewestFirst,
        ));
    }
    let backend = db.get_database_backend();
    let mut inner = select.into_query();
    add_extras(&mut inner, backend, extras);
    let statement = pagination::first_rows_per_partition(
        inner,
        partition,
        (article::Entity, article::Column::CreatedAt),
        (article::Entity, article::Column::Id),
        Direction::NewestFirst,
        args.first + 1,
    );
    let mut rows: HashMap<i64, Vec<ArticleRow>> = HashMap::new();
    for row in db.query_all(&statement).await? {
        let owner: i64 = row.try_get("", OWNER)?;
        rows.entry(owner)
            .or_default()
            .push(ArticleRow::read(&row, extras, 1)?);
    }
    Ok(pagination::pages_by_parent(rows, args, |row| {
        cursor_of(&row.article)
    }))
}

/// How many articles each of `user_ids` has in `list` (absent: none).
pub async fn user_counts(
    db: &impl ConnectionTrait,
    list: UserList,
    user_ids: &[i64],
) -> AppResult<HashMap<i64, i64>> {
    match list {
        UserList::Written => {
            db::count_by::<article::Entity>(db, article::Column::AuthorId, user_ids).await
        }
        UserList::Favorited => {
            db::count_by::<favorite::Entity>(db, favorite::Column::UserId, user_ids).await
        }
    }
}
