//! The static limits on an operation, checked before any resolver runs, and their errors.
//!
//! Hand-written rather than async-graphql's `limit_depth` / `limit_complexity`: those run inside
//! `Schema::execute`, after the document is parsed and the budget charged, count each field
//! occurrence by its own rules (no connection sizes, no merged fields) and answer without a
//! stable `extensions.code`. They stay on as a second line of defence (see `schema.rs`), set no
//! lower than these limits.

use std::collections::HashMap;

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ErrorExtensionValues, ServerError};

use crate::config::LimitSettings;
use crate::error::{AppError, code};

/// How large, deep and expensive one operation may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Most nested fields on one path (`{ viewer { username } }` is 2 deep).
    pub max_depth: usize,
    /// Most cost points one operation may request (see the cost model in the README).
    pub max_cost: u64,
    /// Most aliased fields in one operation (after fragments are expanded).
    pub max_aliases: usize,
    /// Most fields selected at the root of one operation.
    pub max_root_fields: usize,
    /// Most directives on one field, fragment spread or inline fragment.
    pub max_directives: usize,
    /// Most fields in one operation after fragments are expanded.
    pub max_fields: usize,
    /// Longest accepted document, in bytes.
    pub max_document_bytes: usize,
    /// Most lexical tokens in one document.
    pub max_tokens: usize,
    /// Most fragments nested inside each other (a cycle nests without end).
    pub max_fragment_depth: usize,
    /// Most operations in one batch.
    pub max_batch: usize,
}

impl From<&LimitSettings> for Limits {
    fn from(settings: &LimitSettings) -> Self {
        Self {
            max_depth: settings.max_depth as usize,
            max_cost: settings.max_cost,
            max_aliases: settings.max_aliases as usize,
            max_root_fields: settings.max_root_fields as usize,
            max_directives: settings.max_directives as usize,
            max_fields: settings.max_fields as usize,
            max_document_bytes: settings.max_document_bytes as usize,
            max_tokens: settings.max_tokens as usize,
            max_fragment_depth: settings.max_fragment_depth as usize,
            max_batch: settings.max_batch as usize,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 15,
            max_cost: 1000,
            max_aliases: 30,
            max_root_fields: 15,
            max_directives: 5,
            max_fields: 500,
            max_document_bytes: 65_536,
            max_tokens: 5_000,
            max_fragment_depth: 10,
            max_batch: 10,
        }
    }
}

/// Most `fields`/`inputFields`/`interfaces`/`possibleTypes` nested inside each other in an
/// introspection query (the rule graphql-js applies): enough for every introspection client,
/// too little for an exponential response.
pub const MAX_INTROSPECTION_LISTS: usize = 2;

/// An operation that breaks a limit.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LimitError {
    /// Nested too deeply (fields, fragments, or introspection lists).
    #[error("{what} is {actual}, more than the maximum of {maximum}")]
    TooDeep {
        /// The limit's name, as in `extensions.limit`.
        limit: &'static str,
        /// What was measured, for people.
        what: &'static str,
        /// The limit.
        maximum: u64,
        /// The measured value.
        actual: u64,
    },
    /// Too large or too expensive.
    #[error("{what} is {actual}, more than the maximum of {maximum}")]
    TooComplex {
        /// The limit's name, as in `extensions.limit`.
        limit: &'static str,
        /// What was measured, for people.
        what: &'static str,
        /// The limit.
        maximum: u64,
        /// The measured value.
        actual: u64,
    },
    /// Fragments that spread each other without end.
    #[error("Fragment cycle: {0}")]
    FragmentCycle(String),
    /// An argument out of range (`first` above 100).
    #[error("{0}")]
    BadInput(AppError),
    /// An argument whose value is not of its type (`first: 1.5`): a validation error.
    #[error("{0}")]
    Invalid(String),
}

impl LimitError {
    /// Too deep: `limit` measured `actual` against `maximum`.
    pub fn too_deep(
        limit: &'static str,
        what: &'static str,
        maximum: usize,
        actual: usize,
    ) -> Self {
        Self::TooDeep {
            limit,
            what,
            maximum: maximum as u64,
            actual: actual as u64,
        }
    }

    /// Too large: `limit` measured `actual` against `maximum`.
    pub fn too_complex(limit: &'static str, what: &'static str, maximum: u64, actual: u64) -> Self {
        Self::TooComplex {
            limit,
            what,
            maximum,
            actual,
        }
    }

    /// The GraphQL error, with `extensions.code`, `limit`, `maximum` and `actual`.
    pub fn to_server_error(&self) -> ServerError {
        if let Self::BadInput(err) = self {
            return err.to_request_error();
        }
        if let Self::Invalid(message) = self {
            return crate::error::request_error(message.clone(), code::GRAPHQL_VALIDATION_FAILED);
        }
        let mut extensions = ErrorExtensionValues::default();
        match self {
            Self::TooDeep {
                limit,
                maximum,
                actual,
                ..
            }
            | Self::TooComplex {
                limit,
                maximum,
                actual,
                ..
            } => {
                let code = if matches!(self, Self::TooDeep { .. }) {
                    code::QUERY_TOO_DEEP
                } else {
                    code::QUERY_TOO_COMPLEX
                };
                extensions.set("code", code);
                extensions.set("limit", *limit);
                extensions.set("maximum", *maximum);
                extensions.set("actual", *actual);
            }
            Self::FragmentCycle(_) => {
                extensions.set("code", code::QUERY_TOO_DEEP);
                extensions.set("limit", "fragmentDepth");
            }
            Self::BadInput(_) | Self::Invalid(_) => {}
        }
        let mut error = ServerError::new(self.to_string(), None);
        error.extensions = Some(extensions);
        error
    }
}

/// Checks the document's size, token count and bracket nesting without parsing it, so that a
/// hostile document never reaches the (recursive) parser; its number of tokens.
pub fn scan_document(query: &str, limits: &Limits) -> Result<usize, LimitError> {
    if query.len() > limits.max_document_bytes {
        return Err(LimitError::too_complex(
            "documentBytes",
            "The document's size in bytes",
            limits.max_document_bytes as u64,
            query.len() as u64,
        ));
    }
    // Each level of fields needs one `{`; arguments, lists and objects add a few more.
    let max_nesting = limits.max_depth * 2 + 8;
    let bytes = query.as_bytes();
    let (mut at, mut tokens, mut nesting) = (0, 0usize, 0usize);
    while at < bytes.len() {
        let byte = bytes[at];
        match byte {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => {
                at += 1;
                continue;
            }
            b'#' => {
                while at < bytes.len() && bytes[at] != b'\n' && bytes[at] != b'\r' {
                    at += 1;
                }
                continue;
            }
            b'"' => at = skip_string(bytes, at),
            b'{' | b'(' | b'[' => {
                nesting += 1;
                if nesting > max_nesting {
                    return Err(LimitError::too_deep(
                        "depth",
                        "The document's nesting",
                        limits.max_depth,
                        nesting,
                    ));
                }
                at += 1;
            }
            b'}' | b')' | b']' => {
                nesting = nesting.saturating_sub(1);
                at += 1;
            }
            b'.' if bytes[at..].starts_with(b"...") => at += 3,
            _ if byte == b'_' || byte == b'-' || byte.is_ascii_alphanumeric() => {
                at += 1;
                while at < bytes.len()
                    && (bytes[at] == b'_' || bytes[at] == b'.' || bytes[at].is_ascii_alphanumeric())
                {
                    at += 1;
                }
            }
            _ => at += 1,
        }
        tokens += 1;
        if tokens > limits.max_tokens {
            return Err(LimitError::too_complex(
                "tokens",
                "The document's number of tokens",
                limits.max_tokens as u64,
                tokens as u64,
            ));
        }
    }
    Ok(tokens)
}

/// Checks what the document's text says before any fragment is expanded: directives per
/// selection, fragment cycles (also through fields: `A { author { ...B } } B { articles { ...A } }`),
/// fragments nested deeper than the limit, and the number of selections once every fragment is
/// expanded (computed once per fragment, so a fragment bomb costs linear time to refuse).
pub fn check_document(
    document: &ExecutableDocument,
    operation: &SelectionSet,
    limits: &Limits,
) -> Result<(), LimitError> {
    measure_document(document, operation, limits).0
}

/// Like [`check_document`], with the number of selections the check visited: its work, which
/// grows with the document's text, never with its expansion.
pub fn measure_document(
    document: &ExecutableDocument,
    operation: &SelectionSet,
    limits: &Limits,
) -> (Result<(), LimitError>, usize) {
    let mut walk = DocumentWalk {
        document,
        limits,
        known: HashMap::new(),
        path: Vec::new(),
        visits: 0,
    };
    let checked = walk.check(operation);
    (checked, walk.visits)
}

impl<'d> DocumentWalk<'d> {
    fn check(&mut self, operation: &'d SelectionSet) -> Result<(), LimitError> {
        let document = self.document;
        let limits = self.limits;
        let (selections, depth) = self.set(operation)?;
        for fragment in document.fragments.values() {
            self.set(&fragment.node.selection_set.node)?;
        }
        if depth > limits.max_fragment_depth {
            return Err(LimitError::too_deep(
                "fragmentDepth",
                "The nesting of fragments",
                limits.max_fragment_depth,
                depth,
            ));
        }
        if selections > limits.max_fields as u64 {
            return Err(LimitError::too_complex(
                "fields",
                "The number of selections after fragment expansion",
                limits.max_fields as u64,
                selections,
            ));
        }
        Ok(())
    }
}

struct DocumentWalk<'d> {
    document: &'d ExecutableDocument,
    limits: &'d Limits,
    /// Fragment name -> (selections once expanded, fragments nested in it, itself included).
    known: HashMap<&'d str, (u64, usize)>,
    path: Vec<&'d str>,
    /// Selections visited so far.
    visits: usize,
}

impl<'d> DocumentWalk<'d> {
    /// The selections of `set` once expanded, and the deepest fragment nesting in it.
    fn set(&mut self, set: &'d SelectionSet) -> Result<(u64, usize), LimitError> {
        let mut selections = 0u64;
        let mut depth = 0;
        for item in &set.items {
            self.visits += 1;
            let directives = item.node.directives().len();
            if directives > self.limits.max_directives {
                return Err(LimitError::too_complex(
                    "directives",
                    "The number of directives on one selection",
                    self.limits.max_directives as u64,
                    directives as u64,
                ));
            }
            let (inner, inner_depth) = match &item.node {
                Selection::Field(field) => self.set(&field.node.selection_set.node)?,
                Selection::InlineFragment(inline) => self.set(&inline.node.selection_set.node)?,
                Selection::FragmentSpread(spread) => {
                    self.fragment(spread.node.fragment_name.node.as_str())?
                }
            };
            selections = selections.saturating_add(1).saturating_add(inner);
            depth = depth.max(inner_depth);
        }
        Ok((selections, depth))
    }

    fn fragment(&mut self, name: &'d str) -> Result<(u64, usize), LimitError> {
        if let Some(start) = self.path.iter().position(|seen| *seen == name) {
            let mut cycle = self.path[start..].to_vec();
            cycle.push(name);
            return Err(LimitError::FragmentCycle(cycle.join(" -> ")));
        }
        if let Some(known) = self.known.get(name) {
            return Ok(*known);
        }
        let Some(fragment) = self.document.fragments.get(name) else {
            return Ok((0, 0));
        };
        self.path.push(name);
        let (selections, depth) = self.set(&fragment.node.selection_set.node)?;
        self.path.pop();
        let found = (selections, depth + 1);
        self.known.insert(name, found);
        Ok(found)
    }
}

/// The index after the string (or block string) starting at `start`.
fn skip_string(bytes: &[u8], start: usize) -> usize {
    if bytes[start..].starts_with(b"\"\"\"") {
        let mut at = start + 3;
        while at < bytes.len() {
            if bytes[at..].starts_with(b"\\\"\"\"") {
                at += 4;
            } else if bytes[at..].starts_with(b"\"\"\"") {
                return at + 3;
            } else {
                at += 1;
            }
        }
        return at;
    }
    let mut at = start + 1;
    while at < bytes.len() {
        match bytes[at] {
            b'\\' => at += 2,
            b'"' | b'\n' | b'\r' => return at + 1,
            _ => at += 1,
        }
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens_of(query: &str) -> Result<usize, LimitError> {
        scan_document(
            query,
            &Limits {
                max_tokens: 8,
                ..Limits::default()
            },
        )
    }

    #[test]
    fn strings_comments_and_spreads_count_as_the_parser_sees_them() {
        // `{ a(x: "}}") }` is 8 tokens; comments and commas count for nothing; braces in strings
        // do not nest.
        assert_eq!(tokens_of("{ a(x: \"}}\") }").ok(), Some(8));
        assert!(tokens_of("# {{{{{{{{{{\n{ a, b, c }").is_ok());
        assert!(tokens_of("{ a(x: \"\"\"b { c } d\"\"\") ...F }").is_err());
        assert!(tokens_of("{ a ...F }").is_ok());
    }

    #[test]
    fn a_fragment_bomb_is_measured_without_expanding_it() {
        let mut query = String::from("{ ...F0 }");
        for level in 0..9 {
            let next = format!("...F{} ", level + 1).repeat(10);
            query.push_str(&format!(" fragment F{level} on Query {{ {next} }}"));
        }
        query.push_str(" fragment F9 on Query { __typename }");
        let document = async_graphql::parser::parse_query(&query).expect("parses");
        let operation = match &document.operations {
            async_graphql::parser::types::DocumentOperations::Single(operation) => operation,
            _ => panic!("one operation"),
        };
        let refused = check_document(
            &document,
            &operation.node.selection_set.node,
            &Limits::default(),
        );
        assert!(
            matches!(refused, Err(LimitError::TooComplex { limit: "fields", actual, .. }) if actual > 1_000_000_000),
            "{refused:?}"
        );
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let deep = format!("{}{}", "{a".repeat(100), "}".repeat(100));
        assert!(matches!(
            scan_document(&deep, &Limits::default()),
            Err(LimitError::TooDeep { limit: "depth", .. })
        ));
    }
}
