//! The rules and data access of tags. Knows nothing of GraphQL.

use std::collections::HashMap;

use entity::{article_tag, tag};
use sea_orm::sea_query::{Asterisk, Expr, IntoColumnRef, OnConflict, Order, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, ExprTrait, FromQueryResult, JoinType, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, RelationTrait, Set,
};

use crate::error::{AppError, AppResult, FieldErrors};
use crate::pagination::{Cursor, Page, PageArgs, decode_cursor, encode_cursor, page_size};
use crate::validate;

/// Cleans a list of tag names: trimmed, without duplicates, in the given order.
/// Records a reason for `tags` in `errors` when a name is blank or too long, or there are too many.
pub fn normalize(errors: &mut FieldErrors, names: &[String]) -> Vec<String> {
    let mut cleaned: Vec<String> = Vec::new();
    for name in names {
        let name = name.trim();
        if name.is_empty() {
            errors.insert("tags".into(), "tag names must not be blank".into());
        } else if name.chars().count() > validate::MAX_TAG || name.contains('\0') {
            errors.insert(
                "tags".into(),
                format!(
                    "tag names must be at most {} characters, without NUL",
                    validate::MAX_TAG
                ),
            );
        } else if !cleaned.iter().any(|known| known == name) {
            cleaned.push(name.to_owned());
        }
    }
    if cleaned.len() > validate::MAX_TAGS {
        errors.insert(
            "tags".into(),
            format!("an article has at most {} tags", validate::MAX_TAGS),
        );
    }
    cleaned
}

/// Makes `names` (already normalized) the exact tags of `article_id`.
pub async fn replace_article_tags(
    txn: &impl ConnectionTrait,
    article_id: i64,
    names: &[String],
) -> AppResult<()> {
    article_tag::Entity::delete_many()
        .filter(article_tag::Column::ArticleId.eq(article_id))
        .exec(txn)
        .await?;
    if names.is_empty() {
        return Ok(());
    }
    tag::Entity::insert_many(names.iter().map(|name| tag::ActiveModel {
        name: Set(name.clone()),
        ..Default::default()
    }))
    .on_conflict(
        OnConflict::column(tag::Column::Name)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(txn)
    .await?;
    let ids: Vec<i64> = tag::Entity::find()
        .select_only()
        .column(tag::Column::Id)
        .filter(tag::Column::Name.is_in(names.iter().cloned()))
        .into_tuple()
        .all(txn)
        .await?;
    article_tag::Entity::insert_many(ids.into_iter().map(|tag_id| article_tag::ActiveModel {
        article_id: Set(article_id),
        tag_id: Set(tag_id),
    }))
    .exec_without_returning(txn)
    .await?;
    Ok(())
}

#[derive(Debug, FromQueryResult)]
struct ArticleTagName {
    article_id: i64,
    name: String,
}

/// The tag names of each article, in alphabetical order (absent from the map: no tags).
pub async fn names_by_article(
    db: &impl ConnectionTrait,
    article_ids: &[i64],
) -> AppResult<HashMap<i64, Vec<String>>> {
    let rows = article_tag::Entity::find()
        .select_only()
        .column(article_tag::Column::ArticleId)
        .column(tag::Column::Name)
        .join(JoinType::InnerJoin, article_tag::Relation::Tag.def())
        .filter(article_tag::Column::ArticleId.is_in(article_ids.iter().copied()))
        .order_by_asc(tag::Column::Name)
        .into_model::<ArticleTagName>()
        .all(db)
        .await?;
    let mut names: HashMap<i64, Vec<String>> = HashMap::new();
    for row in rows {
        names.entry(row.article_id).or_default().push(row.name);
    }
    Ok(names)
}

/// The tag names of the article whose id is in `article_id`, in alphabetical order, as one JSON
/// array (text), for a column of a statement over articles: PostgreSQL aggregates with
/// `json_agg`, SQLite with `json_group_array` (each with its own placeholder for the column).
/// Read it back with [`parse_names`].
pub fn names_of(backend: sea_orm::DbBackend, article_id: impl IntoColumnRef) -> Expr {
    let sql = match backend {
        sea_orm::DbBackend::Sqlite => {
            "(SELECT json_group_array(tags.name ORDER BY tags.name) FROM article_tags \
             JOIN tags ON tags.id = article_tags.tag_id WHERE article_tags.article_id = ?)"
        }
        _ => {
            "(SELECT COALESCE(json_agg(tags.name ORDER BY tags.name), '[]'::json)::text \
             FROM article_tags JOIN tags ON tags.id = article_tags.tag_id \
             WHERE article_tags.article_id = $1)"
        }
    };
    Expr::cust_with_expr(sql, Expr::col(article_id))
}

/// The names [`names_of`] selected (none for a missing or unreadable value).
pub fn parse_names(json: Option<&str>) -> Vec<String> {
    json.and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_default()
}

/// True for the rows whose `article_id` column is an article tagged `name`: an `EXISTS` condition
/// for the article filters (it lets a newest-first page stop after `first` matches).
pub fn is_tagged(article_id: impl IntoColumnRef, name: &str) -> Expr {
    let links = article_tag::Entity::find()
        .select_only()
        .column(article_tag::Column::ArticleId)
        .join(JoinType::InnerJoin, article_tag::Relation::Tag.def())
        .filter(tag::Column::Name.eq(name))
        .filter(Expr::col((article_tag::Entity, article_tag::Column::ArticleId)).equals(article_id))
        .into_query();
    Expr::exists(links)
}

/// Alias of the per-tag counts subquery in [`most_used`].
const COUNTS: &str = "tag_counts";
/// Name of the usage column in [`most_used`]; also the field of [`TagUsage`].
const USAGE: &str = "article_count";

/// A tag with the number of articles that carry it.
#[derive(Debug, Clone, FromQueryResult)]
pub struct TagUsage {
    /// The tag name.
    pub name: String,
    /// How many articles carry it.
    pub article_count: i64,
}

/// A position in the list of tags, most used first: (article count, name).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TagCursor {
    article_count: i64,
    name: String,
}

impl TagCursor {
    fn encode(usage: &TagUsage) -> String {
        encode_cursor(&format!("t:{}:{}", usage.article_count, usage.name))
    }

    fn decode(cursor: &str) -> AppResult<Self> {
        let raw = decode_cursor(cursor)?;
        let invalid = || AppError::invalid("after", "is not a valid cursor");
        let rest = raw.strip_prefix("t:").ok_or_else(invalid)?;
        let (count, name) = rest.split_once(':').ok_or_else(invalid)?;
        Ok(Self {
            article_count: count.parse().map_err(|_| invalid())?,
            name: name.to_owned(),
        })
    }
}

/// Validates `first` and decodes `after` for the list of tags.
pub fn page_args(first: Option<i32>, after: Option<&str>) -> AppResult<PageArgs<TagCursor>> {
    Ok(PageArgs {
        first: page_size(first)?,
        after: after.map(TagCursor::decode).transpose()?,
    })
}

/// The tags in use, most used first (ties by name).
pub async fn most_used(
    db: &impl ConnectionTrait,
    args: &PageArgs<TagCursor>,
) -> AppResult<Page<TagUsage>> {
    // Count per tag id over the covering index first, then look the names up.
    let counts = article_tag::Entity::find()
        .select_only()
        .column(article_tag::Column::TagId)
        .column_as(Expr::col(Asterisk).count(), USAGE)
        .group_by(article_tag::Column::TagId)
        .into_query();
    let usage = Expr::col((COUNTS, USAGE));
    let name = Expr::col((tag::Entity, tag::Column::Name));
    let mut query = Query::select();
    query
        .column((tag::Entity, tag::Column::Name))
        .expr_as(usage.clone(), USAGE)
        .from_subquery(counts, COUNTS)
        .inner_join(
            tag::Entity,
            Expr::col((tag::Entity, tag::Column::Id)).equals((COUNTS, article_tag::Column::TagId)),
        )
        .order_by_expr(usage.clone(), Order::Desc)
        .order_by_expr(name.clone(), Order::Asc)
        .limit(args.first + 1);
    if let Some(after) = &args.after {
        query.and_where(
            usage.clone().lt(after.article_count).or(usage
                .eq(after.article_count)
                .and(name.gt(after.name.clone()))),
        );
    }
    let rows = TagUsage::find_by_statement(db.get_database_backend().build(&query))
        .all(db)
        .await?;
    Ok(Page::from_rows(
        rows,
        args.first,
        args.after.is_some(),
        |usage| Cursor::Encoded(TagCursor::encode(usage)),
    ))
}

/// How many tags are in use.
pub async fn count_used(db: &impl ConnectionTrait) -> AppResult<i64> {
    let used = article_tag::Entity::find()
        .select_only()
        .column_as(
            Expr::col(article_tag::Column::TagId).count_distinct(),
            "count",
        )
        .into_tuple::<i64>()
        .one(db)
        .await?;
    Ok(used.unwrap_or(0))
}
