//! The document a request runs, reduced to the operation it selects and the fragments that
//! operation reaches, before anything is checked, planned or validated.
//!
//! Every later stage (the document limits, *FieldsInSetCanMerge*, the plan, async-graphql's
//! validation and execution) sees this reduced document only. Operations that do not run and the
//! fragments only they use cost one linear pass here and nothing after: async-graphql's
//! validation expands fragment spreads without memoisation, so a fragment bomb hidden in an
//! operation that does not run (`query A { __typename } query B { ...F0 }`) would otherwise take
//! exponential time to validate.
//!
//! The whole document still has to be well formed: a fragment that no operation uses is refused
//! (the specification's *NoUnusedFragments*), found by one walk of the spread graph.

use std::collections::{HashMap, HashSet};

use async_graphql::Pos;
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, Selection, SelectionSet,
};

/// Why a document cannot be reduced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReduceError {
    /// No operation has the name given (or a name is needed and none was given).
    #[error("{}", match .0 { Some(name) => format!("Unknown operation named \"{name}\""), None => "Operation name required in request.".to_owned() })]
    UnknownOperation(Option<String>),
    /// A fragment no operation spreads.
    #[error("Fragment \"{0}\" is never used.")]
    UnusedFragment(String, Pos),
}

/// `document` with only the operation `operation_name` selects (the named one, or the only one)
/// and the fragments it reaches. Linear in the document's size.
pub fn reduce(
    mut document: ExecutableDocument,
    operation_name: Option<&str>,
) -> Result<ExecutableDocument, ReduceError> {
    let unknown = || ReduceError::UnknownOperation(operation_name.map(str::to_owned));
    // The spreads each definition makes directly: each selection set is walked once.
    let mut spreads_of_fragments: HashMap<&str, Vec<&str>> = HashMap::new();
    for (name, fragment) in &document.fragments {
        let mut spreads = Vec::new();
        direct_spreads(&fragment.node.selection_set.node, &mut spreads);
        spreads_of_fragments.insert(name.as_str(), spreads);
    }
    let mut used = HashSet::new();
    let mut selected = None;
    for (name, operation) in document.operations.iter() {
        let mut spreads = Vec::new();
        direct_spreads(&operation.node.selection_set.node, &mut spreads);
        let reached = reach(spreads, &spreads_of_fragments);
        let is_selected = match (&document.operations, operation_name, name) {
            (DocumentOperations::Single(_), None, _) => true,
            (DocumentOperations::Multiple(operations), None, _) => operations.len() == 1,
            (_, Some(wanted), Some(name)) => name.as_str() == wanted,
            _ => false,
        };
        used.extend(reached.iter().copied());
        if is_selected {
            selected = Some((name.map(|name| name.to_string()), reached));
        }
    }
    if let Some((name, fragment)) = document
        .fragments
        .iter()
        .find(|(name, _)| !used.contains(name.as_str()))
    {
        return Err(ReduceError::UnusedFragment(name.to_string(), fragment.pos));
    }
    let Some((selected_name, reached)) = selected else {
        return Err(unknown());
    };
    let reached: HashSet<String> = reached.into_iter().map(str::to_owned).collect();
    drop(spreads_of_fragments);
    document
        .fragments
        .retain(|name, _| reached.contains(name.as_str()));
    document.operations = match document.operations {
        DocumentOperations::Single(operation) => DocumentOperations::Single(operation),
        DocumentOperations::Multiple(mut operations) => {
            let name = selected_name.ok_or_else(unknown)?;
            let (name, operation) = operations.remove_entry(name.as_str()).ok_or_else(unknown)?;
            DocumentOperations::Multiple(HashMap::from([(name, operation)]))
        }
    };
    Ok(document)
}

/// About how many bytes `document` holds on the heap once parsed: every node, name, argument
/// and value, with an allowance for the allocator. What the document cache weighs entries by
/// (a document of tiny tokens takes many times its text).
pub fn heap_size(document: &ExecutableDocument) -> usize {
    use async_graphql::parser::types::{Directive, OperationDefinition, VariableDefinition};
    use std::mem::size_of;
    let mut bytes = size_of::<ExecutableDocument>();
    for (name, operation) in document.operations.iter() {
        bytes += size_of::<async_graphql::parser::Positioned<OperationDefinition>>()
            + name.map_or(0, |name| name_size(name.as_str()));
        let operation = &operation.node;
        bytes += operation.variable_definitions.capacity()
            * size_of::<async_graphql::parser::Positioned<VariableDefinition>>();
        for definition in &operation.variable_definitions {
            bytes += name_size(definition.node.name.node.as_str())
                + definition
                    .node
                    .default_value
                    .as_ref()
                    .map_or(0, |value| const_value_size(&value.node));
        }
        bytes += operation.directives.capacity()
            * size_of::<async_graphql::parser::Positioned<Directive>>();
        bytes += set_size(&operation.selection_set.node);
    }
    for (name, fragment) in &document.fragments {
        bytes += name_size(name.as_str())
            + size_of::<
                async_graphql::parser::Positioned<async_graphql::parser::types::FragmentDefinition>,
            >()
            + set_size(&fragment.node.selection_set.node);
    }
    bytes + bytes / 4
}

/// A name's allocation (an `Arc<str>`: two counters and the text).
fn name_size(name: &str) -> usize {
    16 + name.len()
}

fn set_size(set: &SelectionSet) -> usize {
    use async_graphql::parser::Positioned;
    use async_graphql::parser::types::Directive;
    let mut bytes = set.items.capacity() * std::mem::size_of::<Positioned<Selection>>();
    for item in &set.items {
        bytes += item.node.directives().len() * std::mem::size_of::<Positioned<Directive>>();
        for directive in item.node.directives() {
            bytes += name_size(directive.node.name.node.as_str());
            for (name, value) in &directive.node.arguments {
                bytes += name_size(name.node.as_str()) + value_size(&value.node);
            }
        }
        bytes += match &item.node {
            Selection::Field(field) => {
                let field = &field.node;
                let mut bytes = name_size(field.name.node.as_str())
                    + field
                        .alias
                        .as_ref()
                        .map_or(0, |alias| name_size(alias.node.as_str()));
                bytes += field.arguments.capacity()
                    * std::mem::size_of::<(
                        Positioned<async_graphql::Name>,
                        Positioned<async_graphql_value::Value>,
                    )>();
                for (name, value) in &field.arguments {
                    bytes += name_size(name.node.as_str()) + value_size(&value.node);
                }
                bytes + set_size(&field.selection_set.node)
            }
            Selection::FragmentSpread(spread) => name_size(spread.node.fragment_name.node.as_str()),
            Selection::InlineFragment(inline) => {
                inline
                    .node
                    .type_condition
                    .as_ref()
                    .map_or(0, |condition| name_size(condition.node.on.node.as_str()))
                    + set_size(&inline.node.selection_set.node)
            }
        };
    }
    bytes
}

fn value_size(value: &async_graphql_value::Value) -> usize {
    use async_graphql_value::Value;
    match value {
        Value::Variable(name) => name_size(name.as_str()),
        Value::String(text) => text.capacity(),
        Value::Enum(name) => name_size(name.as_str()),
        Value::Binary(bytes) => bytes.len(),
        Value::List(items) => {
            items.capacity() * std::mem::size_of::<Value>()
                + items.iter().map(value_size).sum::<usize>()
        }
        Value::Object(entries) => entries
            .iter()
            .map(|(name, value)| {
                name_size(name.as_str()) + std::mem::size_of::<Value>() + 16 + value_size(value)
            })
            .sum(),
        Value::Null | Value::Number(_) | Value::Boolean(_) => 0,
    }
}

fn const_value_size(value: &async_graphql::Value) -> usize {
    use async_graphql::Value as ConstValue;
    match value {
        ConstValue::String(text) => text.capacity(),
        ConstValue::Enum(name) => name_size(name.as_str()),
        ConstValue::Binary(bytes) => bytes.len(),
        ConstValue::List(items) => {
            items.capacity() * std::mem::size_of::<ConstValue>()
                + items.iter().map(const_value_size).sum::<usize>()
        }
        ConstValue::Object(entries) => entries
            .iter()
            .map(|(name, value)| {
                name_size(name.as_str())
                    + std::mem::size_of::<ConstValue>()
                    + 16
                    + const_value_size(value)
            })
            .sum(),
        ConstValue::Null | ConstValue::Number(_) | ConstValue::Boolean(_) => 0,
    }
}

/// The fragments reachable from `start` through the spread graph (each visited once).
fn reach<'d>(
    start: Vec<&'d str>,
    spreads_of_fragments: &HashMap<&'d str, Vec<&'d str>>,
) -> HashSet<&'d str> {
    let mut reached = HashSet::new();
    let mut pending = start;
    while let Some(name) = pending.pop() {
        if !reached.insert(name) {
            continue;
        }
        if let Some(spreads) = spreads_of_fragments.get(name) {
            pending.extend(spreads.iter().copied());
        }
    }
    reached
}

/// The fragment names `set` spreads itself (not through other fragments).
fn direct_spreads<'d>(set: &'d SelectionSet, out: &mut Vec<&'d str>) {
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => direct_spreads(&field.node.selection_set.node, out),
            Selection::InlineFragment(inline) => {
                direct_spreads(&inline.node.selection_set.node, out);
            }
            Selection::FragmentSpread(spread) => out.push(spread.node.fragment_name.node.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reduced(query: &str, name: Option<&str>) -> Result<ExecutableDocument, ReduceError> {
        reduce(
            async_graphql::parser::parse_query(query).expect("parses"),
            name,
        )
    }

    #[test]
    fn only_the_selected_operation_and_its_fragments_remain() {
        let document = reduced(
            "query A { ...X } query B { ...Y } fragment X on Query { ...Z } fragment Y on Query { __typename } fragment Z on Query { __typename }",
            Some("A"),
        )
        .expect("reduces");
        let mut fragments: Vec<&str> = document
            .fragments
            .keys()
            .map(|name| name.as_str())
            .collect();
        fragments.sort_unstable();
        assert_eq!(fragments, ["X", "Z"]);
        assert_eq!(document.operations.iter().count(), 1);
        assert!(matches!(
            reduced("query A { __typename }", Some("B")),
            Err(ReduceError::UnknownOperation(Some(_)))
        ));
        assert!(matches!(
            reduced("query A { __typename } query B { __typename }", None),
            Err(ReduceError::UnknownOperation(None))
        ));
        assert!(
            reduced("query A { __typename }", None).is_ok(),
            "the only one"
        );
    }

    use proptest::prelude::*;

    use super::super::limits::{self, Limits};
    use super::super::merge;
    use super::super::schema_info::SchemaInfo;

    /// One selection of a generated document.
    #[derive(Debug, Clone)]
    enum Item {
        /// `__typename`.
        Typename,
        /// `viewer { id }`.
        Viewer,
        /// `...F<n>` written `times` times.
        Spread(usize, usize),
    }

    /// A generated document: operations and fragments (fragment `i` spreads only fragments after
    /// it: no cycles, but expansions up to 10^depth), the operation to run.
    #[derive(Debug, Clone)]
    struct Generated {
        operations: Vec<Vec<Item>>,
        fragments: Vec<Vec<Item>>,
        selected: usize,
    }

    fn item(fragments: usize) -> impl Strategy<Value = Item> {
        prop_oneof![
            Just(Item::Typename),
            Just(Item::Viewer),
            (0..fragments.max(1), 1..=10usize).prop_map(|(to, times)| Item::Spread(to, times)),
        ]
    }

    fn generated() -> impl Strategy<Value = Generated> {
        (1..=12usize, 1..=4usize)
            .prop_flat_map(|(fragments, operations)| {
                (
                    proptest::collection::vec(
                        proptest::collection::vec(item(fragments), 1..6),
                        operations,
                    ),
                    proptest::collection::vec(
                        proptest::collection::vec(item(fragments), 1..6),
                        fragments,
                    ),
                    0..operations,
                )
            })
            .prop_map(|(operations, mut fragments, selected)| {
                // Fragment `i` spreads only fragments after it; the last spreads none.
                let count = fragments.len();
                for (index, items) in fragments.iter_mut().enumerate() {
                    for item in items.iter_mut() {
                        if let Item::Spread(to, times) = *item {
                            *item = if index + 1 < count {
                                Item::Spread(index + 1 + to % (count - index - 1), times)
                            } else {
                                Item::Typename
                            };
                        }
                    }
                }
                Generated {
                    operations,
                    fragments,
                    selected,
                }
            })
    }

    fn render(items: &[Item], out: &mut String) -> usize {
        let mut written = 0;
        for item in items {
            match item {
                Item::Typename => out.push_str(" __typename"),
                Item::Viewer => {
                    out.push_str(" viewer { id }");
                    written += 1;
                }
                Item::Spread(to, times) => {
                    for _ in 0..*times {
                        out.push_str(&format!(" ...F{to}"));
                        written += 1;
                    }
                    continue;
                }
            }
            written += 1;
        }
        written
    }

    /// The document's text and the number of selections it writes.
    fn text_of(generated: &Generated) -> (String, usize) {
        let mut text = String::new();
        let mut selections = 0;
        for (index, items) in generated.operations.iter().enumerate() {
            text.push_str(&format!("query O{index} {{"));
            selections += render(items, &mut text);
            text.push_str(" } ");
        }
        for (index, items) in generated.fragments.iter().enumerate() {
            text.push_str(&format!("fragment F{index} on Query {{"));
            selections += render(items, &mut text);
            text.push_str(" } ");
        }
        (text, selections)
    }

    /// The selections of `set` with every fragment expanded, counted without memory (as a naive
    /// validator walks them), stopping past `cap`.
    fn expanded(document: &ExecutableDocument, set: &SelectionSet, cap: usize) -> usize {
        let mut count = 0;
        for item in &set.items {
            count += 1;
            count += match &item.node {
                Selection::Field(field) => expanded(document, &field.node.selection_set.node, cap),
                Selection::InlineFragment(inline) => {
                    expanded(document, &inline.node.selection_set.node, cap)
                }
                Selection::FragmentSpread(spread) => document
                    .fragments
                    .get(&spread.node.fragment_name.node)
                    .map_or(0, |fragment| {
                        expanded(document, &fragment.node.selection_set.node, cap)
                    }),
            };
            if count > cap {
                return count;
            }
        }
        count
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// A document of `n` written selections is refused or prepared with work that grows with
        /// `n` only: reducing it, checking its limits and *FieldsInSetCanMerge*; and what reaches
        /// async-graphql's validation (which expands fragments without memory) expands to no more
        /// than the fields limit, whatever the operations that do not run hold.
        #[test]
        fn documents_are_refused_or_prepared_in_linear_work(generated in generated()) {
            let (text, selections) = text_of(&generated);
            let document = async_graphql::parser::parse_query(&text).expect("parses");
            let name = format!("O{}", generated.selected);
            let Ok(reduced) = reduce(document, Some(&name)) else {
                // Refused (a fragment nobody uses) after one linear walk.
                return Ok(());
            };
            let operation = match &reduced.operations {
                DocumentOperations::Multiple(operations) => operations.values().next().expect("one"),
                DocumentOperations::Single(operation) => operation,
            };
            let set = &operation.node.selection_set.node;
            let definitions = generated.operations.len() + generated.fragments.len();
            let limits = Limits::default();
            let (checked, visits) = limits::measure_document(&reduced, set, &limits);
            prop_assert!(
                visits <= 2 * selections + definitions,
                "{visits} visits for {selections} written selections: {text}"
            );
            if checked.is_err() {
                return Ok(());
            }
            let cap = limits.max_fields;
            // Every operation the validator sees (the reduced document holds one).
            let seen: usize = reduced
                .operations
                .iter()
                .map(|(_, operation)| expanded(&reduced, &operation.node.selection_set.node, cap))
                .sum();
            prop_assert!(
                seen <= cap,
                "validation would expand {seen} selections, more than {cap}: {text}"
            );
            let schema = SchemaInfo::from_sdl(
                "schema { query: Query } type Query { viewer: User } type User { id: ID }",
            )
            .expect("sdl");
            let (_, work) = merge::check_with_work(&reduced, "Query", set, &schema);
            prop_assert!(work <= 4 * cap * cap, "merging took {work} units");
        }
    }

    #[test]
    fn a_fragment_no_operation_uses_is_refused() {
        let refused = reduced(
            "query A { __typename } fragment Lost on Query { __typename }",
            Some("A"),
        );
        assert!(
            matches!(&refused, Err(ReduceError::UnusedFragment(name, _)) if name == "Lost"),
            "{refused:?}"
        );
        // Used by another operation: not an error, and gone from the reduced document.
        let document = reduced(
            "query A { __typename } query B { ...Used } fragment Used on Query { __typename }",
            Some("A"),
        )
        .expect("reduces");
        assert!(document.fragments.is_empty());
    }
}
