//! The kit of compiled reads: what the areas build their compiled fields from.
//!
//! A query whose every field can be served from its plan runs compiled: the planned statements
//! run, and their rows are written straight to the response JSON in selection order, with no
//! async-graphql `Value` tree and no future per field (see `crate::compiled`, which assembles the
//! areas' declarations and runs them). This module holds what every area uses:
//!
//! - [`Selected`]: a field of the plan, neutral of the gateway's plan types, with its arguments'
//!   values resolved (variables and defaults substituted);
//! - [`Key`]: a response key written out once (`"title":`), at compile time;
//! - [`FieldIds`]: the ids that tell apart the fields whose rows come from a later statement;
//! - [`ConnectionSelection`]: a connection's fields (`edges`, `nodes`, `pageInfo`, `totalCount`)
//!   over any node type, compiled and written the same way for every area;
//! - [`Writer`]: the JSON being written, with what the executor records as it runs (cache tags
//!   read, whether a private field ran) and the response's size bound;
//! - [`Fallback`]: why a query does not run compiled after all (the executor answers it).
//!
//! Everything is written exactly as async-graphql and the gateway's serializer write it: strings
//! escaped by serde_json, numbers, RFC 3339 dates with milliseconds, global ids and cursors as the
//! schema's own functions make them. A differential test holds both paths to the same bytes.

use async_graphql::Value;

use crate::cache::CacheTag;
use crate::error::AppError;
use crate::pagination::{Cursor, Page};

/// A field of a query's plan, as compiled reads see it: its response key, its name, the values
/// its arguments have when it runs, and its selection for each object type its value may be.
#[derive(Debug, Clone, PartialEq)]
pub struct Selected {
    /// The response key (alias or name).
    pub key: String,
    /// The field's name.
    pub name: String,
    /// The arguments given, with their values resolved.
    pub arguments: Vec<(String, Value)>,
    /// For each object type the value may be, its selection (empty for leaves).
    pub branches: Vec<(String, Vec<Selected>)>,
}

impl Selected {
    /// The value of argument `name`, when given (`null` counts as not given).
    pub fn argument(&self, name: &str) -> Option<&Value> {
        self.arguments
            .iter()
            .find(|(argument, _)| argument == name)
            .map(|(_, value)| value)
            .filter(|value| !matches!(value, Value::Null))
    }

    /// A string argument; `Err` when it is given but not a string.
    pub fn string(&self, name: &str) -> Result<Option<String>, Fallback> {
        match self.argument(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(Fallback::Unsupported("an argument of another type")),
        }
    }

    /// An `Int` argument; `Err` when it is given but not an `Int`.
    pub fn int(&self, name: &str) -> Result<Option<i32>, Fallback> {
        match self.argument(name) {
            None => Ok(None),
            Some(Value::Number(number)) => number
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .map(Some)
                .ok_or(Fallback::Unsupported("an Int out of range")),
            Some(_) => Err(Fallback::Unsupported("an argument of another type")),
        }
    }

    /// The selection of an object-typed field (one branch, of `type_name`).
    pub fn object(&self, type_name: &str) -> Result<&[Selected], Fallback> {
        match self.branches.as_slice() {
            [(on, fields)] if on == type_name => Ok(fields),
            _ => Err(Fallback::Unsupported("an unexpected selection")),
        }
    }
}

/// Which branch of an abstract field's selection an object is written with, given the keys the
/// object has (`has`): the branch with the most of them, then the one with the fewest fields,
/// the last of equals. The one rule for both paths: the serializer of the executor's answers and
/// compiled reads order an interface's fields by it.
pub fn choose_branch<'b, B, I>(
    branches: &'b [B],
    keys: impl Fn(&'b B) -> I,
    has: impl Fn(&str) -> bool,
) -> usize
where
    I: Iterator<Item = &'b str>,
{
    if branches.len() <= 1 {
        return 0;
    }
    (0..branches.len())
        .max_by_key(|index| {
            let (matching, total) = keys(&branches[*index])
                .fold((0usize, 0usize), |(matching, total), key| {
                    (matching + usize::from(has(key)), total + 1)
                });
            (matching, usize::MAX - total)
        })
        .unwrap_or(0)
}

/// `ids` without repeats, in first-seen order.
pub fn distinct(ids: impl Iterator<Item = i64>) -> Vec<i64> {
    let mut seen = std::collections::HashSet::new();
    ids.filter(|id| seen.insert(*id)).collect()
}

/// Why a query does not run compiled: the executor answers it instead.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Fallback {
    /// Something the compiled fields do not declare (a new field, introspection, an error path
    /// left to the executor).
    #[error("not compiled: {0}")]
    Unsupported(&'static str),
    /// A statement failed: the executor runs the query and reports it its own way.
    #[error("a statement failed: {0}")]
    Fetch(#[from] AppError),
    /// A row the executor would have reported missing (a race with a deletion).
    #[error("a row went missing: {0}")]
    Missing(&'static str),
    /// The response would be larger than it may be: the executor refuses it its own way.
    #[error("the response would be too large")]
    TooLarge,
}

/// A response key written out as JSON once: `"key":`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key(Box<[u8]>);

impl Key {
    /// The written form of `key`.
    pub fn of(key: &str) -> Self {
        let mut bytes = Vec::with_capacity(key.len() + 3);
        if serde_json::to_writer(&mut bytes, key).is_err() {
            bytes.extend_from_slice(b"\"\"");
        }
        bytes.push(b':');
        Self(bytes.into_boxed_slice())
    }

    /// The bytes, as written.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// An id of a field whose rows come from a statement of its own (a nested connection, a
/// relation fetched by id): where its rows are kept until they are written.
pub type FieldId = usize;

/// Hands out [`FieldId`]s while a query compiles.
#[derive(Debug, Default)]
pub struct FieldIds(usize);

impl FieldIds {
    /// The next id.
    pub fn allocate(&mut self) -> FieldId {
        self.0 += 1;
        self.0
    }
}

/// The JSON of a response's `data`, being written, and what writing it records: the executor's
/// effects, by other means (cache tags read, whether a private field ran, the actual cost is
/// returned by each writer).
pub struct Writer {
    out: Vec<u8>,
    /// The most bytes `data` may take.
    limit: usize,
    /// The cache tags the response read.
    pub tags: Vec<CacheTag>,
    /// Whether a field whose answer depends on the viewer ran.
    pub private: bool,
    /// The signed-in user.
    pub viewer: Option<i64>,
}

impl Writer {
    /// A writer for `viewer`, of at most `limit` bytes.
    pub fn new(viewer: Option<i64>, limit: usize, capacity: usize) -> Self {
        Self {
            out: Vec::with_capacity(capacity),
            limit,
            tags: Vec::new(),
            private: false,
            viewer,
        }
    }

    /// The bytes written.
    pub fn finish(self) -> (Vec<u8>, Vec<CacheTag>, bool) {
        (self.out, self.tags, self.private)
    }

    /// How many bytes are written.
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// Whether nothing is written yet.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Whether what was written since `start` is exactly `bytes`.
    pub fn written_since(&self, start: usize, bytes: &[u8]) -> bool {
        self.out.get(start..) == Some(bytes)
    }

    /// Records that the response read `tag`.
    pub fn read(&mut self, tag: CacheTag) {
        self.tags.push(tag);
    }

    /// Records that a private field ran.
    pub fn private(&mut self) {
        self.private = true;
    }

    /// Raw bytes (punctuation).
    pub fn raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// One byte of punctuation.
    pub fn byte(&mut self, byte: u8) {
        self.out.push(byte);
    }

    /// A key, with a comma before it unless it is the first of its object.
    pub fn key(&mut self, key: &Key, first: bool) {
        if !first {
            self.out.push(b',');
        }
        self.out.extend_from_slice(key.bytes());
    }

    /// A string; fails once the response is larger than it may be.
    pub fn str(&mut self, text: &str) -> Result<(), Fallback> {
        if serde_json::to_writer(&mut self.out, text).is_err() {
            self.out.extend_from_slice(b"\"\"");
        }
        self.check()
    }

    /// A string or null.
    pub fn opt_str(&mut self, text: Option<&str>) -> Result<(), Fallback> {
        match text {
            Some(text) => self.str(text),
            None => {
                self.null();
                Ok(())
            }
        }
    }

    /// An integer.
    pub fn int(&mut self, value: i64) {
        let mut buffer = itoa::Buffer::new();
        self.out.extend_from_slice(buffer.format(value).as_bytes());
    }

    /// A boolean.
    pub fn bool(&mut self, value: bool) {
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    /// `null`.
    pub fn null(&mut self) {
        self.out.extend_from_slice(b"null");
    }

    /// A `DateTime`, as the scalar writes it.
    pub fn datetime(&mut self, at: chrono::DateTime<chrono::Utc>) -> Result<(), Fallback> {
        let text = crate::graphql::DateTime(at);
        match async_graphql::ScalarType::to_value(&text) {
            Value::String(text) => self.str(&text),
            _ => Err(Fallback::Unsupported("a date that is not a string")),
        }
    }

    /// Fails once the response is larger than it may be.
    fn check(&self) -> Result<(), Fallback> {
        if self.out.len() > self.limit {
            return Err(Fallback::TooLarge);
        }
        Ok(())
    }
}

/// A field of `PageInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageInfoField {
    /// `__typename`.
    Typename,
    /// `hasNextPage`.
    HasNextPage,
    /// `hasPreviousPage`.
    HasPreviousPage,
    /// `startCursor`.
    StartCursor,
    /// `endCursor`.
    EndCursor,
}

/// A field of an edge, over node selections of type `N`.
#[derive(Debug, Clone, PartialEq)]
pub enum EdgeField<N> {
    /// `__typename`.
    Typename,
    /// `cursor`.
    Cursor,
    /// `node`.
    Node(N),
}

/// A field of a connection, over node selections of type `N`.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectionField<N> {
    /// `__typename`.
    Typename,
    /// `totalCount`.
    TotalCount,
    /// `pageInfo`.
    PageInfo(Vec<(Key, PageInfoField)>),
    /// `nodes`.
    Nodes(N),
    /// `edges`.
    Edges(Vec<(Key, EdgeField<N>)>),
}

/// A connection field's selection, compiled: its fields in order, and whether it reads its list
/// (which records its cache tags, as the executor does when one of those fields resolves).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionSelection<N> {
    /// The fields, in selection order.
    pub fields: Vec<(Key, ConnectionField<N>)>,
    /// Whether `totalCount` is selected (a count runs then).
    pub total: bool,
    /// The connection type's name (`ArticleConnection`), for `__typename`.
    pub type_name: &'static str,
    /// The edge type's name (`ArticleEdge`).
    pub edge_type: &'static str,
}

impl<N> ConnectionSelection<N> {
    /// Compiles a connection field's selection (`fields`, on the type `type_name`), each node
    /// selection with `node` (given the node type's selection).
    pub fn compile(
        fields: &[Selected],
        type_name: &'static str,
        edge_type: &'static str,
        node_type: &str,
        mut node: impl FnMut(&[Selected]) -> Result<N, Fallback>,
    ) -> Result<Self, Fallback> {
        let mut compiled = Vec::with_capacity(fields.len());
        let mut total = false;
        for field in fields {
            let key = Key::of(&field.key);
            let item = match field.name.as_str() {
                "__typename" => ConnectionField::Typename,
                "totalCount" => {
                    total = true;
                    ConnectionField::TotalCount
                }
                "pageInfo" => {
                    let mut page_info = Vec::new();
                    for info in field.object("PageInfo")? {
                        let compiled = match info.name.as_str() {
                            "__typename" => PageInfoField::Typename,
                            "hasNextPage" => PageInfoField::HasNextPage,
                            "hasPreviousPage" => PageInfoField::HasPreviousPage,
                            "startCursor" => PageInfoField::StartCursor,
                            "endCursor" => PageInfoField::EndCursor,
                            _ => return Err(Fallback::Unsupported("a field of PageInfo")),
                        };
                        page_info.push((Key::of(&info.key), compiled));
                    }
                    ConnectionField::PageInfo(page_info)
                }
                "nodes" => ConnectionField::Nodes(node(field.object(node_type)?)?),
                "edges" => {
                    let mut edge = Vec::new();
                    for item in field.object(edge_type)? {
                        let compiled = match item.name.as_str() {
                            "__typename" => EdgeField::Typename,
                            "cursor" => EdgeField::Cursor,
                            "node" => EdgeField::Node(node(item.object(node_type)?)?),
                            _ => return Err(Fallback::Unsupported("a field of an edge")),
                        };
                        edge.push((Key::of(&item.key), compiled));
                    }
                    ConnectionField::Edges(edge)
                }
                _ => return Err(Fallback::Unsupported("a field of a connection")),
            };
            compiled.push((key, item));
        }
        Ok(Self {
            fields: compiled,
            total,
            type_name,
            edge_type,
        })
    }

    /// Every node selection of the connection (under `nodes` and `edges { node }`).
    pub fn nodes(&self) -> impl Iterator<Item = &N> {
        self.fields.iter().flat_map(|(_, field)| {
            let (nodes, edges) = match field {
                ConnectionField::Nodes(nodes) => (Some(nodes), None),
                ConnectionField::Edges(edge) => (None, Some(edge)),
                _ => (None, None),
            };
            nodes.into_iter().chain(edges.into_iter().flat_map(|edge| {
                edge.iter().filter_map(|(_, field)| match field {
                    EdgeField::Node(node) => Some(node),
                    _ => None,
                })
            }))
        })
    }

    /// Whether one of the fields that read the list (and record its tags) is selected.
    pub fn reads_list(&self) -> bool {
        self.fields
            .iter()
            .any(|(_, field)| !matches!(field, ConnectionField::Typename))
    }

    /// Writes the connection of `page` (with `total` when counted); `item` writes one node with
    /// its selection and returns its cost. The cost of the connection: 1, plus each edge (1 and
    /// its node), each node, and `pageInfo` (1).
    pub fn write<T>(
        &self,
        out: &mut Writer,
        page: &Page<T>,
        total: Option<i64>,
        mut item: impl FnMut(&mut Writer, &N, &T) -> Result<u64, Fallback>,
    ) -> Result<u64, Fallback> {
        // An object whose every field was skipped is null (as async-graphql answers it).
        if self.fields.is_empty() {
            out.null();
            return Ok(0);
        }
        let mut cost = 1u64;
        out.byte(b'{');
        for (index, (key, field)) in self.fields.iter().enumerate() {
            out.key(key, index == 0);
            match field {
                ConnectionField::Typename => out.str(self.type_name)?,
                ConnectionField::TotalCount => match total {
                    Some(total) => out.int(total),
                    None => return Err(Fallback::Missing("a total count")),
                },
                ConnectionField::PageInfo(fields) => {
                    if !fields.is_empty() {
                        cost = cost.saturating_add(1);
                    }
                    write_page_info(out, fields, page)?;
                }
                ConnectionField::Nodes(node) => {
                    out.byte(b'[');
                    for (index, (_, value)) in page.items.iter().enumerate() {
                        if index > 0 {
                            out.byte(b',');
                        }
                        cost = cost.saturating_add(item(out, node, value)?);
                    }
                    out.byte(b']');
                }
                ConnectionField::Edges(fields) => {
                    out.byte(b'[');
                    for (index, (cursor, value)) in page.items.iter().enumerate() {
                        if index > 0 {
                            out.byte(b',');
                        }
                        if fields.is_empty() {
                            out.null();
                            continue;
                        }
                        cost = cost.saturating_add(1);
                        out.byte(b'{');
                        for (at, (key, field)) in fields.iter().enumerate() {
                            out.key(key, at == 0);
                            match field {
                                EdgeField::Typename => out.str(self.edge_type)?,
                                EdgeField::Cursor => out.str(&cursor.encode())?,
                                EdgeField::Node(node) => {
                                    cost = cost.saturating_add(item(out, node, value)?);
                                }
                            }
                        }
                        out.byte(b'}');
                    }
                    out.byte(b']');
                }
            }
        }
        out.byte(b'}');
        Ok(cost)
    }
}

fn write_page_info<T>(
    out: &mut Writer,
    fields: &[(Key, PageInfoField)],
    page: &Page<T>,
) -> Result<(), Fallback> {
    let cursor = |at: Option<&(Cursor, T)>| at.map(|(cursor, _)| cursor.encode());
    if fields.is_empty() {
        out.null();
        return Ok(());
    }
    out.byte(b'{');
    for (index, (key, field)) in fields.iter().enumerate() {
        out.key(key, index == 0);
        match field {
            PageInfoField::Typename => out.str("PageInfo")?,
            PageInfoField::HasNextPage => out.bool(page.has_next_page),
            PageInfoField::HasPreviousPage => out.bool(page.has_previous_page),
            PageInfoField::StartCursor => out.opt_str(cursor(page.items.first()).as_deref())?,
            PageInfoField::EndCursor => out.opt_str(cursor(page.items.last()).as_deref())?,
        }
    }
    out.byte(b'}');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_strings_are_written_as_serde_json_writes_them() {
        assert_eq!(Key::of("a\"b").bytes(), b"\"a\\\"b\":");
        let mut out = Writer::new(None, 1024, 16);
        out.str("line\nbreak \u{1F600} \u{0}").expect("fits");
        out.int(-42);
        let (bytes, _, _) = out.finish();
        assert_eq!(
            String::from_utf8(bytes).expect("utf-8"),
            format!(
                "{}-42",
                serde_json::to_string("line\nbreak \u{1F600} \u{0}").expect("json")
            )
        );
        let mut small = Writer::new(None, 4, 16);
        assert!(matches!(small.str("too long"), Err(Fallback::TooLarge)));
    }
}
