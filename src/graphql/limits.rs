//! The static limits on an operation, checked before any resolver runs, and their errors.

use async_graphql::{ErrorExtensionValues, ServerError};

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
            Self::BadInput(_) => {}
        }
        let mut error = ServerError::new(self.to_string(), None);
        error.extensions = Some(extensions);
        error
    }
}

/// Checks the document's size, token count and bracket nesting without parsing it, so that a
/// hostile document never reaches the (recursive) parser.
pub fn scan_document(query: &str, limits: &Limits) -> Result<(), LimitError> {
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
    Ok(())
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

    fn tokens_of(query: &str) -> Result<(), LimitError> {
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
        assert!(tokens_of("{ a(x: \"}}\") }").is_ok());
        assert!(tokens_of("# {{{{{{{{{{\n{ a, b, c }").is_ok());
        assert!(tokens_of("{ a(x: \"\"\"b { c } d\"\"\") ...F }").is_err());
        assert!(tokens_of("{ a ...F }").is_ok());
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
