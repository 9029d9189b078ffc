//! What an operation uses of the schema, for the usage records (see [`crate::usage`]): its
//! signature and the schema coordinates it selects, worked out once per document and variables
//! with the plan (so fields reached through fragments, aliases and `node` count, and fields
//! `@skip`ped away do not).

use std::collections::BTreeSet;

use async_graphql::{Value, Variables};
use sha2::{Digest, Sha256};

use super::plan::{Plan, PlannedField};
use super::schema_info::SchemaInfo;
use crate::usage::OperationUsage;

/// The usage of `plan` run with `variables`: `Type.field` for every field that runs,
/// `Type.field(arg:)` for every argument given, `Input.field` for every input field given and
/// `Enum.VALUE` for every enum value given, each once. `signature` is [`signature`]'s.
pub fn operation_usage(
    plan: &Plan<'_>,
    variables: &Variables,
    schema: &SchemaInfo,
    signature: &str,
) -> OperationUsage {
    let mut coordinates = BTreeSet::new();
    collect(&plan.fields, variables, schema, &mut coordinates);
    OperationUsage {
        signature: signature.to_owned(),
        name: plan.name.unwrap_or_default().to_owned(),
        coordinates: coordinates.into_iter().collect(),
    }
}

fn collect(
    fields: &[PlannedField<'_>],
    variables: &Variables,
    schema: &SchemaInfo,
    coordinates: &mut BTreeSet<String>,
) {
    for field in fields {
        let name = field.name();
        if name.starts_with("__") {
            // Introspection and `__typename` are not the schema's own coordinates.
            continue;
        }
        coordinates.insert(format!("{}.{name}", field.parent));
        if let Some(info) = field.info {
            for (argument, value) in &field.field.node.arguments {
                let value = value
                    .node
                    .clone()
                    .into_const_with(|variable| variables.get(&variable).cloned().ok_or(()));
                let Ok(value) = value else { continue };
                if value == Value::Null {
                    continue;
                }
                coordinates.insert(format!("{}.{name}({}:)", field.parent, argument.node));
                if let Some((_, ty)) = info.arguments.iter().find(|(a, _)| *a == argument.node) {
                    input_value(ty, &value, schema, coordinates, 0);
                }
            }
        }
        for branch in &field.branches {
            collect(&branch.fields, variables, schema, coordinates);
        }
    }
}

/// Input objects nest at most this deep in what is recorded.
const MAX_INPUT_DEPTH: usize = 8;

/// The input fields and enum values `value`, of the named type `ty`, uses.
fn input_value(
    ty: &str,
    value: &Value,
    schema: &SchemaInfo,
    coordinates: &mut BTreeSet<String>,
    depth: usize,
) {
    if depth > MAX_INPUT_DEPTH {
        return;
    }
    let Some(info) = schema.get(ty) else { return };
    match value {
        Value::List(items) => {
            for item in items {
                input_value(ty, item, schema, coordinates, depth + 1);
            }
        }
        Value::Enum(name) if info.is_enum => {
            coordinates.insert(format!("{ty}.{name}"));
        }
        // Variables carry enum values as strings.
        Value::String(name) if info.is_enum => {
            coordinates.insert(format!("{ty}.{name}"));
        }
        Value::Object(entries) => {
            for (name, inner) in entries {
                let Some((_, inner_ty)) =
                    info.input_fields.iter().find(|(f, _)| f == name.as_str())
                else {
                    continue;
                };
                if *inner == Value::Null {
                    continue;
                }
                coordinates.insert(format!("{ty}.{name}"));
                input_value(inner_ty, inner, schema, coordinates, depth + 1);
            }
        }
        _ => {}
    }
}

/// A stable signature of an operation: the SHA-256 (16 hex digits) of its document with
/// comments, spacing and commas normalised and every string and number literal blanked (so
/// `article(slug: "a")` and `article(slug: "b")` are one operation), and its name.
pub fn signature(query: &str, operation_name: Option<&str>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(normalise(query).as_bytes());
    hasher.update([0]);
    hasher.update(operation_name.unwrap_or_default().as_bytes());
    hasher
        .finalize()
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// `query` with comments dropped, runs of spacing and commas one space, strings `""` and
/// numbers `0`.
fn normalise(query: &str) -> String {
    let bytes = query.as_bytes();
    let mut out = String::with_capacity(query.len());
    let mut at = 0;
    // A word (name, number, string) after another word keeps one space; punctuation needs none.
    let push = |out: &mut String, text: &str| {
        if out.ends_with(|c: char| c == '_' || c == '"' || c.is_ascii_alphanumeric()) {
            out.push(' ');
        }
        out.push_str(text);
    };
    while at < bytes.len() {
        let byte = bytes[at];
        match byte {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => at += 1,
            b'#' => {
                while at < bytes.len() && bytes[at] != b'\n' {
                    at += 1;
                }
            }
            b'"' if bytes[at..].starts_with(b"\"\"\"") => {
                at += 3;
                while at < bytes.len() && !bytes[at..].starts_with(b"\"\"\"") {
                    at += if bytes[at] == b'\\' { 2 } else { 1 };
                }
                at += 3;
                push(&mut out, "\"\"");
            }
            b'"' => {
                at += 1;
                while at < bytes.len() && bytes[at] != b'"' {
                    at += if bytes[at] == b'\\' { 2 } else { 1 };
                }
                at += 1;
                push(&mut out, "\"\"");
            }
            b'-' | b'0'..=b'9' => {
                at += 1;
                while at < bytes.len()
                    && (bytes[at].is_ascii_alphanumeric()
                        || matches!(bytes[at], b'.' | b'+' | b'-'))
                {
                    at += 1;
                }
                push(&mut out, "0");
            }
            _ if byte == b'_' || byte.is_ascii_alphabetic() => {
                let start = at;
                while at < bytes.len() && (bytes[at] == b'_' || bytes[at].is_ascii_alphanumeric()) {
                    at += 1;
                }
                push(&mut out, &query[start..at]);
            }
            _ => {
                let rest = query.get(at..).unwrap_or_default();
                let width = rest.chars().next().map_or(1, char::len_utf8);
                out.push_str(rest.get(..width).unwrap_or_default());
                at += width;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spacing_comments_and_literals_do_not_change_the_signature() {
        let a = signature("query A { article(slug: \"a\") { title } }", Some("A"));
        let b = signature(
            "# a comment\nquery A{\n  article(slug:\"b\"),{ title }\n}",
            Some("A"),
        );
        assert_eq!(a, b);
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn another_field_or_name_changes_the_signature() {
        let a = signature("query A { article(slug: \"a\") { title } }", Some("A"));
        let b = signature("query A { article(slug: \"a\") { body } }", Some("A"));
        let c = signature("query A { article(slug: \"a\") { title } }", None);
        assert_ne!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn names_stay_apart() {
        assert_eq!(normalise("query  A {a b}"), "query A{a b}");
        assert_eq!(normalise("{ a(first: 10) }"), "{a(first:0)}");
    }
}
