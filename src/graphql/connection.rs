//! Relay cursor connections: page info, lazy total counts, and the macro that declares the types.

use async_graphql::{Context, SimpleObject};

use crate::error::AppResult;
use crate::pagination::Page;

/// Information to aid in pagination.
#[derive(Debug, Clone, SimpleObject)]
#[graphql(cache_control(max_age = 60))]
pub struct PageInfo {
    /// Whether more items follow this page: ask again with `after: endCursor`.
    pub has_next_page: bool,
    /// Whether items precede this page.
    pub has_previous_page: bool,
    /// The cursor of the first item of this page.
    pub start_cursor: Option<String>,
    /// The cursor of the last item of this page: pass it as `after` to get the next page.
    pub end_cursor: Option<String>,
}

impl PageInfo {
    /// The page info of `page`.
    pub fn of<T>(page: &Page<T>) -> Self {
        Self {
            has_next_page: page.has_next_page,
            has_previous_page: page.has_previous_page,
            start_cursor: page.items.first().map(|(cursor, _)| cursor.encode()),
            end_cursor: page.items.last().map(|(cursor, _)| cursor.encode()),
        }
    }
}

/// Counts the whole list behind a connection, only when `totalCount` is selected.
pub trait TotalCount: Send + Sync {
    /// The number of items across all pages.
    fn total_count(&self, ctx: &Context<'_>) -> impl Future<Output = AppResult<i64>> + Send;
}

/// Declares a connection type and its edge type for one node type.
///
/// ```text
/// connection_types!(ArticleConnection, ArticleEdge, Article, ArticleCount);
/// ```
/// A node type of a connection, for the response cache's tags.
pub trait CacheTagged {
    /// The tag of every list of this type.
    fn list_tag() -> crate::cache::CacheTag;
    /// The tag of this entity, when it is one.
    fn entity_tag(&self) -> Option<crate::cache::CacheTag>;
}

/// Records that the response read the list of `T` and each of `items`.
pub fn record_list<'a, T: CacheTagged + 'a>(
    ctx: &async_graphql::Context<'_>,
    items: impl Iterator<Item = &'a T>,
) {
    use crate::graphql::ContextExt;
    ctx.read_tag(T::list_tag());
    for item in items {
        if let Some(tag) = item.entity_tag() {
            ctx.read_tag(tag);
        }
    }
}

#[macro_export]
macro_rules! connection_types {
    ($connection:ident, $edge:ident, $node:ty, $count:ty) => {
        #[doc = "An item of a connection with its cursor."]
        pub struct $edge {
            cursor: $crate::pagination::Cursor,
            node: $node,
        }

        #[doc = "An item of a connection with its cursor."]
        #[async_graphql::Object(cache_control(max_age = 60))]
        impl $edge {
            /// A cursor for use in pagination: pass it as `after` to get the items that follow this one.
            async fn cursor(&self) -> String {
                self.cursor.encode()
            }

            /// The item.
            async fn node(&self) -> &$node {
                &self.node
            }
        }

        #[doc = "A page of a list, with Relay-style edges, the nodes alone, page info and the total count."]
        pub struct $connection {
            edges: Vec<$edge>,
            page_info: $crate::graphql::PageInfo,
            count: $count,
            recorded: std::sync::atomic::AtomicBool,
        }

        impl $connection {
            /// The connection of `page`, counting the whole list with `count`.
            pub fn new(page: $crate::pagination::Page<$node>, count: $count) -> Self {
                Self {
                    page_info: $crate::graphql::PageInfo::of(&page),
                    edges: page
                        .items
                        .into_iter()
                        .map(|(cursor, node)| $edge { cursor, node })
                        .collect(),
                    count,
                    recorded: std::sync::atomic::AtomicBool::new(false),
                }
            }
        }

        #[doc = "A page of a list, with Relay-style edges, the nodes alone, page info and the total count."]
        #[async_graphql::Object(cache_control(max_age = 60))]
        impl $connection {
            /// The items of this page, each with its cursor.
            async fn edges(&self, ctx: &async_graphql::Context<'_>) -> &[$edge] {
                self.record(ctx);
                &self.edges
            }

            /// The items of this page, without cursors.
            async fn nodes(&self, ctx: &async_graphql::Context<'_>) -> Vec<&$node> {
                self.record(ctx);
                self.edges.iter().map(|edge| &edge.node).collect()
            }

            /// Information to aid in pagination.
            async fn page_info(&self, ctx: &async_graphql::Context<'_>) -> &$crate::graphql::PageInfo {
                self.record(ctx);
                &self.page_info
            }

            /// How many items the whole list holds, across all pages.
            async fn total_count(&self, ctx: &async_graphql::Context<'_>) -> $crate::graphql::FieldResult<i64> {
                self.record(ctx);
                Ok($crate::graphql::TotalCount::total_count(&self.count, ctx).await?)
            }
        }

        impl $connection {
            /// Records the tags of this page for the response cache, once.
            fn record(&self, ctx: &async_graphql::Context<'_>) {
                if !self.recorded.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    $crate::graphql::connection::record_list(ctx, self.edges.iter().map(|edge| &edge.node));
                }
            }
        }
    };
}
