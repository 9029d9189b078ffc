//! Writing a response's `data` as JSON in the order the operation selected its fields (the
//! GraphQL specification's *Serialized Map Ordering*).
//!
//! async-graphql resolves the fields of an object concurrently and records them in the order
//! they finish, so its `data` is not in selection order; the plan is, and the writer follows it.

use async_graphql::indexmap::IndexMap;
use async_graphql::{Name, Value};

use super::plan::{Branch, Plan, PlannedField};
use crate::graphql::compiled::choose_branch;

/// The JSON of `data`, each object's entries in the plan's order.
pub fn data_json(plan: &Plan<'_>, data: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    match data {
        Value::Object(object) => write_object(&plan.fields, object, &mut out),
        other => write_value(other, &mut out),
    }
    out
}

fn write_object(fields: &[PlannedField<'_>], object: &IndexMap<Name, Value>, out: &mut Vec<u8>) {
    out.push(b'{');
    let mut written = 0;
    for field in fields {
        let Some(value) = object.get(field.key) else {
            continue;
        };
        if written > 0 {
            out.push(b',');
        }
        written += 1;
        write_key(field.key, out);
        write_field(field, value, out);
    }
    if written < object.len() {
        // Entries the plan does not know (none are expected): after the planned ones.
        for (key, value) in object {
            if fields.iter().any(|field| field.key == key.as_str()) {
                continue;
            }
            if written > 0 {
                out.push(b',');
            }
            written += 1;
            write_key(key.as_str(), out);
            write_value(value, out);
        }
    }
    out.push(b'}');
}

fn write_field(field: &PlannedField<'_>, value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(object) if !field.branches.is_empty() => {
            write_object(&branch_of(&field.branches, object).fields, object, out);
        }
        Value::List(items) if !field.branches.is_empty() => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_field(field, item, out);
            }
            out.push(b']');
        }
        other => write_value(other, out),
    }
}

/// The branch an object was resolved with: the one whose fields it has (the only one, for an
/// object type).
fn branch_of<'p, 'a>(branches: &'p [Branch<'a>], object: &IndexMap<Name, Value>) -> &'p Branch<'a> {
    let chosen = choose_branch(
        branches,
        |branch| branch.fields.iter().map(|field| field.key),
        |key| object.contains_key(key),
    );
    &branches[chosen]
}

fn write_key(key: &str, out: &mut Vec<u8>) {
    if serde_json::to_writer(&mut *out, key).is_err() {
        out.extend_from_slice(b"\"\"");
    }
    out.push(b':');
}

fn write_value(value: &Value, out: &mut Vec<u8>) {
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.extend_from_slice(b"null");
    }
}
