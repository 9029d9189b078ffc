//! Keyset pagination: cursors, validated page arguments, pages, and the SQL that fetches them.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeZone, Utc};

use sea_orm::sea_query::{
    Asterisk, Expr, IntoColumnRef, Order, Query, SelectStatement, WindowStatement,
};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, ExprTrait, QueryFilter, QueryOrder, QuerySelect, Select,
};

use crate::error::{AppError, AppResult};

/// Page size when `first` is not given.
pub const DEFAULT_PAGE_SIZE: u64 = 20;
/// The largest `first` accepted.
pub const MAX_PAGE_SIZE: u64 = 100;

/// Encodes a cursor's raw text as an opaque string.
pub fn encode_cursor(raw: &str) -> String {
    URL_SAFE_NO_PAD.encode(raw)
}

/// Decodes an opaque cursor back to its raw text; BAD_USER_INPUT on `after` when it is not one of ours.
pub fn decode_cursor(cursor: &str) -> AppResult<String> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .ok_or_else(invalid_cursor)
}

fn invalid_cursor() -> AppError {
    AppError::invalid("after", "is not a valid cursor")
}

/// A position in a list ordered by (creation time, id): what a keyset cursor holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Keyset {
    /// Creation time in milliseconds since the epoch (stored times are truncated to milliseconds).
    pub at_ms: i64,
    /// The row id, breaking ties between equal times.
    pub id: i64,
}

impl Keyset {
    /// The position of a row created at `at` with `id`.
    pub fn new(at: DateTime<Utc>, id: i64) -> Self {
        Self {
            at_ms: at.timestamp_millis(),
            id,
        }
    }

    /// The creation time as a timestamp.
    pub fn at(&self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.at_ms)
            .single()
            .unwrap_or_default()
    }

    /// The opaque cursor of this position.
    pub fn encode(&self) -> String {
        encode_cursor(&format!("k:{}:{}", self.at_ms, self.id))
    }

    /// Parses a cursor made by [`Keyset::encode`].
    pub fn decode(cursor: &str) -> AppResult<Self> {
        let raw = decode_cursor(cursor)?;
        let mut parts = raw.split(':');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("k"), Some(at_ms), Some(id), None) => Ok(Self {
                at_ms: at_ms.parse().map_err(|_| invalid_cursor())?,
                id: id.parse().map_err(|_| invalid_cursor())?,
            }),
            _ => Err(invalid_cursor()),
        }
    }
}

/// Validated `first` / `after` arguments of a connection field.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageArgs<C = Keyset> {
    /// How many items to return.
    pub first: u64,
    /// Return the items after this position.
    pub after: Option<C>,
}

impl PageArgs<Keyset> {
    /// Validates `first` (0 to 100, default 20) and decodes `after`.
    pub fn keyset(first: Option<i32>, after: Option<&str>) -> AppResult<Self> {
        Ok(Self {
            first: page_size(first)?,
            after: after.map(Keyset::decode).transpose()?,
        })
    }
}

/// Validates `first`: 0 to [`MAX_PAGE_SIZE`], [`DEFAULT_PAGE_SIZE`] when absent.
pub fn page_size(first: Option<i32>) -> AppResult<u64> {
    match first {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(n) if n < 0 => Err(AppError::invalid("first", "must not be negative")),
        Some(n) if n as u64 > MAX_PAGE_SIZE => Err(AppError::invalid(
            "first",
            format!("must be at most {MAX_PAGE_SIZE} (got {n})"),
        )),
        Some(n) => Ok(n as u64),
    }
}

/// The cursor of an item, written out only when a client selects it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// A position in a list ordered by (creation time, id).
    Keyset(Keyset),
    /// A cursor written out already.
    Encoded(String),
}

impl Cursor {
    /// The opaque cursor a client sees.
    pub fn encode(&self) -> String {
        match self {
            Self::Keyset(keyset) => keyset.encode(),
            Self::Encoded(cursor) => cursor.clone(),
        }
    }
}

/// One page of a list: the items with their cursors, and whether more follow.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items, each with its cursor.
    pub items: Vec<(Cursor, T)>,
    /// Whether items follow the last one.
    pub has_next_page: bool,
    /// Whether items precede the first one (true when paging `after` a cursor).
    pub has_previous_page: bool,
}

impl<T> Default for Page<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            has_next_page: false,
            has_previous_page: false,
        }
    }
}

impl<T> Page<T> {
    /// A page with no items, after a cursor when `paged`.
    pub fn empty(paged: bool) -> Self {
        Self {
            has_previous_page: paged,
            ..Self::default()
        }
    }

    /// A page from up to `first + 1` rows fetched in order: the extra row only tells that more follow.
    pub fn from_rows(
        mut rows: Vec<T>,
        first: u64,
        paged: bool,
        cursor: impl Fn(&T) -> Cursor,
    ) -> Self {
        let has_next_page = rows.len() as u64 > first;
        rows.truncate(first as usize);
        Self {
            items: rows.into_iter().map(|row| (cursor(&row), row)).collect(),
            has_next_page,
            has_previous_page: paged,
        }
    }

    /// The same page with every item converted.
    pub fn map<U>(self, f: impl Fn(T) -> U) -> Page<U> {
        Page {
            items: self
                .items
                .into_iter()
                .map(|(cursor, item)| (cursor, f(item)))
                .collect(),
            has_next_page: self.has_next_page,
            has_previous_page: self.has_previous_page,
        }
    }
}

/// Turns the rows fetched for many parents (up to `args.first + 1` each, in order) into one page
/// per parent.
pub fn pages_by_parent<T>(
    rows: HashMap<i64, Vec<T>>,
    args: &PageArgs,
    cursor: impl Fn(&T) -> Cursor,
) -> HashMap<i64, Page<T>> {
    rows.into_iter()
        .map(|(parent, rows)| {
            let page = Page::from_rows(rows, args.first, args.after.is_some(), &cursor);
            (parent, page)
        })
        .collect()
}

/// Sort direction of a keyset list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Newest first.
    NewestFirst,
    /// Oldest first.
    OldestFirst,
}

impl Direction {
    fn order(self) -> Order {
        match self {
            Self::NewestFirst => Order::Desc,
            Self::OldestFirst => Order::Asc,
        }
    }
}

/// The rows that come after `after` in a list ordered by (`time`, `id`) in `direction`: a row
/// comparison, `(time, id) < (at, id)`, which an index on (`time`, `id`) answers by seeking to the
/// cursor, so a deep page costs what the first page costs.
pub fn after_condition<C: ColumnTrait>(
    time: C,
    id: C,
    after: &Keyset,
    direction: Direction,
) -> Condition {
    let columns = Expr::tuple([
        Expr::col((time.entity_name(), time)),
        Expr::col((id.entity_name(), id)),
    ]);
    let cursor = Expr::tuple([Expr::val(after.at()), Expr::val(after.id)]);
    Condition::all().add(match direction {
        Direction::NewestFirst => columns.lt(cursor),
        Direction::OldestFirst => columns.gt(cursor),
    })
}

/// Orders `select` by (`time`, `id`) in `direction`, starts after `args.after` and fetches one row more
/// than `args.first` (the extra row tells whether a next page exists).
pub fn keyset_page<E: EntityTrait, C: ColumnTrait>(
    select: Select<E>,
    time: C,
    id: C,
    args: &PageArgs,
    direction: Direction,
) -> Select<E> {
    let select = match &args.after {
        Some(after) => select.filter(after_condition(time, id, after, direction)),
        None => select,
    };
    select
        .order_by(time, direction.order())
        .order_by(id, direction.order())
        .limit(args.first + 1)
}

/// Name of the row-number column that [`first_rows_per_partition`] adds.
const ROW_NUMBER: &str = "row_number_in_partition";

/// Wraps `inner` so that it returns only the first `limit` rows of each `partition`, ordered by
/// (`time`, `id`) in `direction`: one statement for the pages of many parents (a window function).
pub fn first_rows_per_partition(
    mut inner: SelectStatement,
    partition: impl IntoColumnRef,
    time: impl IntoColumnRef,
    id: impl IntoColumnRef,
    direction: Direction,
    limit: u64,
) -> SelectStatement {
    let mut window = WindowStatement::partition_by(partition);
    window
        .order_by(time, direction.order())
        .order_by(id, direction.order());
    inner.expr_window_as(Expr::cust("ROW_NUMBER()"), window, ROW_NUMBER);
    Query::select()
        .column(Asterisk)
        .from_subquery(inner, "ranked")
        .and_where(Expr::col(ROW_NUMBER).lte(limit))
        .order_by(ROW_NUMBER, Order::Asc)
        .to_owned()
}
