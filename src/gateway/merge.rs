//! The GraphQL specification's *FieldsInSetCanMerge* rule: fields of one response key must be the
//! same field with the same arguments wherever they could meet on one object (through inline
//! fragments, named fragments and interfaces alike), and must have the same response shape
//! everywhere.
//!
//! async-graphql's own `OverlappingFieldsCanBeMerged` compares fields only within one fragment's
//! type condition and ignores sub-selections, which let a cheap field hide an expensive one of the
//! same key; this is the full rule, and the planner relies on it to merge fields.

use std::collections::HashSet;

use async_graphql::Pos;
use async_graphql::indexmap::IndexMap;
use async_graphql::parser::Positioned;
use async_graphql::parser::types::{
    BaseType, ExecutableDocument, Field, Selection, SelectionSet, Type,
};

use super::schema_info::SchemaInfo;

/// Two fields of one response key that cannot both be executed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct MergeConflict {
    /// For people, as graphql-js words it.
    pub message: String,
    /// Where the two fields are.
    pub positions: Vec<Pos>,
}

/// Work units a check may use before the document is judged too complex to check.
const MAX_WORK: usize = 200_000;

/// Why the check did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeError {
    /// A conflict.
    Conflict(MergeConflict),
    /// Checking would take more than [`MAX_WORK`].
    TooComplex,
}

/// Checks every selection set of the operation `selection_set` (on `root`).
pub fn check(
    document: &ExecutableDocument,
    root: &str,
    selection_set: &SelectionSet,
    schema: &SchemaInfo,
) -> Result<(), MergeError> {
    check_with_work(document, root, selection_set, schema).0
}

/// Like [`check`], with the work units it used (at most [`MAX_WORK`]).
pub fn check_with_work(
    document: &ExecutableDocument,
    root: &str,
    selection_set: &SelectionSet,
    schema: &SchemaInfo,
) -> (Result<(), MergeError>, usize) {
    let mut checker = Checker {
        document,
        schema,
        work: 0,
    };
    let checked = checker.check_sets(&[(root, selection_set)]);
    (checked, checker.work)
}

#[derive(Clone, Copy)]
struct Occurrence<'a> {
    field: &'a Positioned<Field>,
    /// The type the selection set holding the field is on.
    parent: &'a str,
}

impl Occurrence<'_> {
    fn name(&self) -> &str {
        self.field.node.name.node.as_str()
    }
}

type Groups<'a> = IndexMap<&'a str, Vec<Occurrence<'a>>>;

struct Checker<'a> {
    document: &'a ExecutableDocument,
    schema: &'a SchemaInfo,
    work: usize,
}

impl<'a> Checker<'a> {
    fn tick(&mut self) -> Result<(), MergeError> {
        self.work += 1;
        if self.work > MAX_WORK {
            return Err(MergeError::TooComplex);
        }
        Ok(())
    }

    /// The fields of `set` by response key, through every fragment (whether or not it applies).
    fn collect(
        &mut self,
        parent: &'a str,
        set: &'a SelectionSet,
        groups: &mut Groups<'a>,
        visited: &mut HashSet<&'a str>,
    ) -> Result<(), MergeError> {
        for item in &set.items {
            self.tick()?;
            match &item.node {
                Selection::Field(field) => {
                    let key = field
                        .node
                        .alias
                        .as_ref()
                        .unwrap_or(&field.node.name)
                        .node
                        .as_str();
                    groups
                        .entry(key)
                        .or_default()
                        .push(Occurrence { field, parent });
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    if !visited.insert(name) {
                        continue;
                    }
                    if let Some(fragment) = self.document.fragments.get(name) {
                        let on = fragment.node.type_condition.node.on.node.as_str();
                        self.collect(on, &fragment.node.selection_set.node, groups, visited)?;
                    }
                }
                Selection::InlineFragment(inline) => {
                    let on = inline
                        .node
                        .type_condition
                        .as_ref()
                        .map_or(parent, |condition| condition.node.on.node.as_str());
                    self.collect(on, &inline.node.selection_set.node, groups, visited)?;
                }
            }
        }
        Ok(())
    }

    fn groups_of(
        &mut self,
        sets: &[(&'a str, &'a SelectionSet)],
    ) -> Result<Groups<'a>, MergeError> {
        let mut groups = Groups::new();
        for (parent, set) in sets {
            self.collect(parent, set, &mut groups, &mut HashSet::new())?;
        }
        Ok(groups)
    }

    /// The named type `occurrence` returns and its selection, when it is composite.
    fn sub_selection(&self, occurrence: &Occurrence<'a>) -> Option<(&'a str, &'a SelectionSet)> {
        let info = self.schema.field(occurrence.parent, occurrence.name())?;
        self.schema.is_composite(&info.named).then_some((
            info.named.as_str(),
            &occurrence.field.node.selection_set.node,
        ))
    }

    fn check_sets(&mut self, sets: &[(&'a str, &'a SelectionSet)]) -> Result<(), MergeError> {
        let groups = self.groups_of(sets)?;
        for (key, occurrences) in &groups {
            // Fields that may meet on one object must be the same field: all of them when one is
            // selected on an interface or union, otherwise those selected on the same object type.
            let on_abstract = occurrences
                .iter()
                .any(|occurrence| !self.schema.is_object(occurrence.parent));
            let mut classes: Vec<Vec<Occurrence<'a>>> = Vec::new();
            for occurrence in occurrences {
                let class = classes
                    .iter_mut()
                    .find(|class| on_abstract || class[0].parent == occurrence.parent);
                match class {
                    Some(class) => class.push(*occurrence),
                    None => classes.push(vec![*occurrence]),
                }
            }
            for class in &classes {
                let first = class[0];
                for other in &class[1..] {
                    self.tick()?;
                    same_field(key, &first, other)?;
                }
                let sub_sets: Vec<(&'a str, &'a SelectionSet)> =
                    class.iter().filter_map(|o| self.sub_selection(o)).collect();
                if !sub_sets.is_empty() {
                    self.check_sets(&sub_sets)?;
                }
            }
            let first = occurrences[0];
            for other in &occurrences[1..] {
                self.same_shape(key, &first, other)?;
            }
        }
        Ok(())
    }

    /// *SameResponseShape*: the two fields answer values of the same shape.
    fn same_shape(
        &mut self,
        key: &str,
        a: &Occurrence<'a>,
        b: &Occurrence<'a>,
    ) -> Result<(), MergeError> {
        self.tick()?;
        let (Some(a_info), Some(b_info)) = (
            self.schema.field(a.parent, a.name()),
            self.schema.field(b.parent, b.name()),
        ) else {
            return Ok(());
        };
        if shapes_differ(&a_info.ty, &b_info.ty, self.schema) {
            return Err(MergeError::Conflict(MergeConflict {
                message: format!(
                    "Fields \"{key}\" conflict because they return conflicting types \"{}\" and \"{}\". Use different aliases on the fields to fetch both if this was intentional.",
                    a_info.ty, b_info.ty
                ),
                positions: vec![a.field.pos, b.field.pos],
            }));
        }
        let sets: Vec<(&'a str, &'a SelectionSet)> = [a, b]
            .iter()
            .filter_map(|occurrence| self.sub_selection(occurrence))
            .collect();
        if sets.len() < 2 {
            return Ok(());
        }
        let groups = self.groups_of(&sets)?;
        for (key, occurrences) in &groups {
            let first = occurrences[0];
            for other in &occurrences[1..] {
                self.same_shape(key, &first, other)?;
            }
        }
        Ok(())
    }
}

/// Same name and same arguments (compared as written, in any order).
fn same_field(key: &str, a: &Occurrence<'_>, b: &Occurrence<'_>) -> Result<(), MergeError> {
    let conflict = |reason: String| {
        MergeError::Conflict(MergeConflict {
            message: format!(
                "Fields \"{key}\" conflict because {reason}. Use different aliases on the fields to fetch both if this was intentional."
            ),
            positions: vec![a.field.pos, b.field.pos],
        })
    };
    if a.name() != b.name() {
        return Err(conflict(format!(
            "\"{}\" and \"{}\" are different fields",
            a.name(),
            b.name()
        )));
    }
    let (a_args, b_args) = (&a.field.node.arguments, &b.field.node.arguments);
    let same = a_args.len() == b_args.len()
        && a_args.iter().all(|(name, value)| {
            b_args.iter().any(|(other, other_value)| {
                other.node == name.node && other_value.node == value.node
            })
        });
    if !same {
        return Err(conflict("they have differing arguments".to_owned()));
    }
    Ok(())
}

fn shapes_differ(a: &Type, b: &Type, schema: &SchemaInfo) -> bool {
    if a.nullable != b.nullable {
        return true;
    }
    match (&a.base, &b.base) {
        (BaseType::List(a), BaseType::List(b)) => shapes_differ(a, b, schema),
        (BaseType::Named(a), BaseType::Named(b)) => {
            (!schema.is_composite(a) || !schema.is_composite(b)) && a != b
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDL: &str = r#"
        schema { query: Query }
        interface Node { id: ID! }
        type Query { node(id: ID!): Node articles(first: Int): [Article!]! }
        type User implements Node { id: ID! username: String! count: Int! }
        type Article implements Node { id: ID! title: String! comments(first: Int): [Article!]! }
    "#;

    fn check_query(query: &str) -> Result<(), MergeError> {
        let schema = SchemaInfo::from_sdl(SDL).expect("sdl");
        let document = async_graphql::parser::parse_query(query).expect("parses");
        let (_, operation) = super::super::plan::select_operation(&document, None).expect("one");
        check(
            &document,
            "Query",
            &operation.node.selection_set.node,
            &schema,
        )
    }

    fn conflict(query: &str) -> String {
        match check_query(query) {
            Err(MergeError::Conflict(conflict)) => conflict.message,
            other => panic!("expected a conflict for {query}: {other:?}"),
        }
    }

    #[test]
    fn the_same_field_may_repeat() {
        assert!(check_query("{ articles(first: 1) { id } articles(first: 1) { title } }").is_ok());
        assert!(
            check_query(
                "{ node(id: 1) { ... on User { x: username } ... on Article { x: title } } }"
            )
            .is_ok(),
            "different object types never meet"
        );
    }

    #[test]
    fn different_arguments_conflict_across_fragments() {
        let message =
            conflict("{ articles(first: 1) { id } ... on Query { articles(first: 100) { id } } }");
        assert!(message.contains("differing arguments"), "{message}");
        conflict(
            "{ ...A articles(first: 2) { id } } fragment A on Query { articles(first: 3) { id } }",
        );
        conflict(
            "{ articles(first: 1) { comments(first: 1) { id } ... on Article { comments(first: 100) { id } } } }",
        );
        conflict(
            "{ a: articles(first: 1) { c: comments(first: 1) { id } } a: articles(first: 1) { c: comments(first: 2) { id } } }",
        );
    }

    #[test]
    fn different_fields_and_shapes_conflict() {
        let message =
            conflict("{ node(id: 1) { ... on Node { x: id } ... on User { x: username } } }");
        assert!(message.contains("different fields"), "{message}");
        let message =
            conflict("{ node(id: 1) { ... on User { x: count } ... on Article { x: title } } }");
        assert!(message.contains("conflicting types"), "{message}");
    }
}
