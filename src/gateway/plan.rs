//! The plan of an operation: its selection exactly as the GraphQL specification executes it.
//!
//! `CollectFields` per concrete object type: `@skip`/`@include` evaluated with the variables (their
//! defaults included), fragments applied by type condition, each fragment spread once per
//! selection set, and the fields of one response key merged into one field whose sub-selections
//! are merged in turn. Pricing, limits and the cache key all read this one plan, so what is priced
//! is what runs.
//!
//! async-graphql resolves every occurrence of a field and merges the results afterwards, so a
//! document that repeats a field (`{ a: articles { .. } a: articles { .. } }`, or through
//! fragments) would run it once per occurrence. Such a document is rewritten from the plan before
//! it runs ([`Plan::rewrite`]): one field per response key, no fragments left, the executor doing
//! exactly what was priced. Documents without repetition run as they are.

use std::collections::HashSet;

use async_graphql::indexmap::IndexMap;
use async_graphql::parser::Positioned;
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, Field, FragmentDefinition, InlineFragment,
    OperationDefinition, OperationType, Selection, SelectionSet, TypeCondition, VariableDefinition,
};
use async_graphql::{Name, Pos, Value, Variables};

use super::schema_info::{FieldInfo, SchemaInfo};

/// One field of the plan: every occurrence of one response key on one object type, merged.
#[derive(Debug)]
pub struct PlannedField<'a> {
    /// The response key (alias or name).
    pub key: &'a str,
    /// The first occurrence: name, alias, arguments and position.
    pub field: &'a Positioned<Field>,
    /// The object type it is selected on.
    pub parent: &'a str,
    /// What the schema says of it; `None` for a field the schema does not have (validation
    /// refuses it).
    pub info: Option<&'a FieldInfo>,
    /// How many occurrences were merged into it.
    pub occurrences: usize,
    /// The merged sub-selection for each object type the value may be; empty for leaves.
    pub branches: Vec<Branch<'a>>,
}

/// The sub-selection of a composite field for one concrete object type.
#[derive(Debug)]
pub struct Branch<'a> {
    /// The object type.
    pub on: &'a str,
    /// Its fields, in response order.
    pub fields: Vec<PlannedField<'a>>,
}

impl PlannedField<'_> {
    /// The field's name.
    pub fn name(&self) -> &str {
        self.field.node.name.node.as_str()
    }

    /// Whether the response key is an alias.
    pub fn is_aliased(&self) -> bool {
        self.field.node.alias.is_some()
    }
}

/// The executed shape of one operation.
#[derive(Debug)]
pub struct Plan<'a> {
    /// The planned operation.
    pub operation: &'a OperationDefinition,
    /// Its name, when the document names it.
    pub name: Option<&'a str>,
    /// The root object type.
    pub root: &'a str,
    /// The root fields, in response order.
    pub fields: Vec<PlannedField<'a>>,
    /// The document repeats a field or a fragment: it must run rewritten to run as planned.
    pub repeats: bool,
    /// It selects a field the schema does not have (validation will refuse it).
    pub unknown_fields: bool,
}

/// Why a plan cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// No operation matches (execution reports it).
    NoOperation,
}

/// The operation a request runs: the named one, or the only one.
pub fn select_operation<'a>(
    document: &'a ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<(Option<&'a str>, &'a Positioned<OperationDefinition>)> {
    match &document.operations {
        DocumentOperations::Single(operation) => {
            operation_name.is_none().then_some((None, operation))
        }
        DocumentOperations::Multiple(operations) => match operation_name {
            Some(name) => operations
                .get_key_value(name)
                .map(|(name, operation)| (Some(name.as_str()), operation)),
            None if operations.len() == 1 => operations
                .iter()
                .next()
                .map(|(name, operation)| (Some(name.as_str()), operation)),
            None => None,
        },
    }
}

/// The variables as execution coerces them: those sent, plus the defaults of those not sent.
pub fn coerce_variables(operation: &OperationDefinition, mut variables: Variables) -> Variables {
    for definition in &operation.variable_definitions {
        let name = &definition.node.name.node;
        if !variables.contains_key(name)
            && let Some(default) = &definition.node.default_value
        {
            variables.insert(name.clone(), default.node.clone());
        }
    }
    variables
}

/// *CoerceVariableValues*' rule for non-null variables: each must be given (or have a default)
/// and must not be null. The message of the first one broken, as graphql-js words it.
pub fn required_variables(
    operation: &OperationDefinition,
    variables: &Variables,
) -> Result<(), String> {
    for definition in &operation.variable_definitions {
        let definition = &definition.node;
        if definition.var_type.node.nullable {
            continue;
        }
        let name = &definition.name.node;
        match variables.get(name) {
            None => {
                return Err(format!(
                    "Variable \"${name}\" of required type \"{}\" was not provided.",
                    definition.var_type.node
                ));
            }
            Some(Value::Null) => {
                return Err(format!(
                    "Variable \"${name}\" of non-null type \"{}\" must not be null.",
                    definition.var_type.node
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The first argument of a field that runs whose text (at any depth: a list, an input object)
/// holds a NUL character, which no database column may store: its name (`input.title` for a
/// field of an input object).
pub fn text_with_nul(plan: &Plan<'_>, variables: &Variables) -> Option<String> {
    fn in_fields(fields: &[PlannedField<'_>], variables: &Variables) -> Option<String> {
        for field in fields {
            for (name, value) in &field.field.node.arguments {
                let value = value
                    .node
                    .clone()
                    .into_const_with(|variable| variables.get(&variable).cloned().ok_or(()));
                if let Ok(value) = value
                    && let Some(path) = nul_in(&value)
                {
                    return Some(match path {
                        Some(inner) => format!("{}.{inner}", name.node),
                        None => name.node.to_string(),
                    });
                }
            }
            for branch in &field.branches {
                if let Some(found) = in_fields(&branch.fields, variables) {
                    return Some(found);
                }
            }
        }
        None
    }
    /// `Some(None)`: the value itself; `Some(Some(path))`: the entry of an input object.
    fn nul_in(value: &Value) -> Option<Option<String>> {
        match value {
            Value::String(text) => text.contains('\0').then_some(None),
            Value::List(items) => items.iter().find_map(nul_in),
            Value::Object(entries) => entries.iter().find_map(|(name, value)| {
                nul_in(value).map(|inner| {
                    Some(match inner {
                        Some(inner) => format!("{name}.{inner}"),
                        None => name.to_string(),
                    })
                })
            }),
            _ => None,
        }
    }
    in_fields(&plan.fields, variables)
}

/// Builds plans.
pub struct Planner<'a> {
    document: &'a ExecutableDocument,
    variables: &'a Variables,
    schema: &'a SchemaInfo,
    repeats: bool,
    unknown_fields: bool,
}

impl<'a> Planner<'a> {
    /// A planner for `document` with the coerced `variables`.
    pub fn new(
        document: &'a ExecutableDocument,
        variables: &'a Variables,
        schema: &'a SchemaInfo,
    ) -> Self {
        Self {
            document,
            variables,
            schema,
            repeats: false,
            unknown_fields: false,
        }
    }

    /// The plan of the operation `operation_name` selects.
    pub fn plan(mut self, operation_name: Option<&str>) -> Result<Plan<'a>, PlanError> {
        let (name, operation) =
            select_operation(self.document, operation_name).ok_or(PlanError::NoOperation)?;
        let root = match operation.node.ty {
            OperationType::Query => self.schema.query.as_str(),
            OperationType::Mutation => self.schema.mutation.as_str(),
            OperationType::Subscription => self.schema.subscription.as_str(),
        };
        let fields = self.plan_fields(root, &[&operation.node.selection_set.node]);
        Ok(Plan {
            operation: &operation.node,
            name,
            root,
            fields,
            repeats: self.repeats,
            unknown_fields: self.unknown_fields,
        })
    }

    /// Whether `@skip` or `@include` leaves this selection out.
    fn skipped(&self, directives: &[Positioned<async_graphql::parser::types::Directive>]) -> bool {
        directives.iter().any(|directive| {
            let include = match directive.node.name.node.as_str() {
                "skip" => false,
                "include" => true,
                _ => return false,
            };
            let condition = directive.node.get_argument("if").and_then(|value| {
                value
                    .node
                    .clone()
                    .into_const_with(|name| self.variables.get(&name).cloned().ok_or(()))
                    .ok()
            });
            let condition = matches!(condition, Some(Value::Boolean(true)));
            condition != include
        })
    }

    /// `CollectFields(object, set)` for each set, into `groups`.
    fn collect(
        &mut self,
        object: &'a str,
        set: &'a SelectionSet,
        groups: &mut IndexMap<&'a str, Vec<&'a Positioned<Field>>>,
        visited: &mut HashSet<&'a str>,
    ) {
        for item in &set.items {
            if self.skipped(item.node.directives()) {
                continue;
            }
            match &item.node {
                Selection::Field(field) => {
                    let key = field
                        .node
                        .alias
                        .as_ref()
                        .unwrap_or(&field.node.name)
                        .node
                        .as_str();
                    groups.entry(key).or_default().push(field);
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    if !visited.insert(name) {
                        // The executor would run the fragment again.
                        self.repeats = true;
                        continue;
                    }
                    let Some(fragment) = self.document.fragments.get(name) else {
                        continue;
                    };
                    if self.applies(&fragment.node, object) {
                        self.collect(object, &fragment.node.selection_set.node, groups, visited);
                    }
                }
                Selection::InlineFragment(inline) => {
                    let applies = inline.node.type_condition.as_ref().is_none_or(|condition| {
                        self.schema.applies(condition.node.on.node.as_str(), object)
                    });
                    if applies {
                        self.collect(object, &inline.node.selection_set.node, groups, visited);
                    }
                }
            }
        }
    }

    fn applies(&self, fragment: &FragmentDefinition, object: &str) -> bool {
        self.schema
            .applies(fragment.type_condition.node.on.node.as_str(), object)
    }

    /// The merged fields of `sets` selected on the object type `object`.
    fn plan_fields(&mut self, object: &'a str, sets: &[&'a SelectionSet]) -> Vec<PlannedField<'a>> {
        let mut groups = IndexMap::new();
        for set in sets {
            self.collect(object, set, &mut groups, &mut HashSet::new());
        }
        let schema = self.schema;
        groups
            .into_iter()
            .map(|(key, occurrences)| {
                let field = occurrences[0];
                if occurrences.len() > 1 {
                    self.repeats = true;
                }
                let info = schema.field(object, field.node.name.node.as_str());
                let mut branches = Vec::new();
                match info {
                    None => {
                        // Validation refuses it; its selection is still walked, for the limits.
                        self.unknown_fields = true;
                        let sub_sets: Vec<&'a SelectionSet> = occurrences
                            .iter()
                            .map(|occurrence| &occurrence.node.selection_set.node)
                            .filter(|set| !set.items.is_empty())
                            .collect();
                        if !sub_sets.is_empty() {
                            branches.push(Branch {
                                on: "",
                                fields: self.plan_fields("", &sub_sets),
                            });
                        }
                    }
                    Some(info) if schema.is_composite(&info.named) => {
                        let sub_sets: Vec<&'a SelectionSet> = occurrences
                            .iter()
                            .map(|occurrence| &occurrence.node.selection_set.node)
                            .collect();
                        for possible in schema.possible_types(&info.named) {
                            branches.push(Branch {
                                on: possible.as_str(),
                                fields: self.plan_fields(possible.as_str(), &sub_sets),
                            });
                        }
                    }
                    Some(_) => {}
                }
                PlannedField {
                    key,
                    field,
                    parent: object,
                    info,
                    occurrences: occurrences.len(),
                    branches,
                }
            })
            .collect()
    }
}

impl Plan<'_> {
    /// Whether the document must run rewritten ([`Self::rewrite`]) to run as planned.
    pub fn needs_rewrite(&self) -> bool {
        self.repeats && !self.unknown_fields
    }

    /// A document with this operation alone, one field per response key, `@skip`/`@include`
    /// applied and fragments inlined: it executes exactly as planned, and keeps the positions
    /// of the original fields for error locations.
    pub fn rewrite(&self) -> ExecutableDocument {
        let selection_set = Positioned::new(
            SelectionSet {
                items: rewrite_fields(&self.fields),
            },
            self.operation_position(),
        );
        let mut used = HashSet::new();
        variables_in_set(&selection_set.node, &mut used);
        for directive in &self.operation.directives {
            for (_, value) in &directive.node.arguments {
                variables_in(&value.node, &mut used);
            }
        }
        let variable_definitions: Vec<Positioned<VariableDefinition>> = self
            .operation
            .variable_definitions
            .iter()
            .filter(|definition| used.contains(definition.node.name.node.as_str()))
            .cloned()
            .collect();
        let operation = Positioned::new(
            OperationDefinition {
                ty: self.operation.ty,
                variable_definitions,
                directives: self.operation.directives.clone(),
                selection_set,
            },
            self.operation_position(),
        );
        let operations = match self.name {
            Some(name) => {
                let mut operations = std::collections::HashMap::new();
                operations.insert(Name::new(name), operation);
                DocumentOperations::Multiple(operations)
            }
            None => DocumentOperations::Single(operation),
        };
        ExecutableDocument {
            operations,
            fragments: Default::default(),
        }
    }

    /// The fields of the plan as compiled reads take them: each field with its arguments'
    /// values resolved with `variables` (an argument whose variable was not given is left out,
    /// as execution leaves it out).
    pub fn selected(&self, variables: &Variables) -> Vec<crate::graphql::compiled::Selected> {
        selected_fields(&self.fields, variables)
    }

    fn operation_position(&self) -> Pos {
        self.operation.selection_set.pos
    }

    /// A canonical text of what runs, with every argument's value resolved: equal for documents
    /// that execute alike, different for documents that may answer differently.
    pub fn canonical(&self, variables: &Variables) -> String {
        let mut out = String::with_capacity(256);
        out.push(match self.operation.ty {
            OperationType::Query => 'Q',
            OperationType::Mutation => 'M',
            OperationType::Subscription => 'S',
        });
        print_fields(&self.fields, variables, &mut out);
        out
    }
}

fn selected_fields(
    fields: &[PlannedField<'_>],
    variables: &Variables,
) -> Vec<crate::graphql::compiled::Selected> {
    fields
        .iter()
        .map(|planned| {
            let arguments = planned
                .field
                .node
                .arguments
                .iter()
                .filter_map(|(name, value)| {
                    let value = value
                        .node
                        .clone()
                        .into_const_with(|variable| variables.get(&variable).cloned().ok_or(()))
                        .ok()?;
                    Some((name.node.to_string(), value))
                })
                .collect();
            crate::graphql::compiled::Selected {
                key: planned.key.to_owned(),
                name: planned.name().to_owned(),
                arguments,
                branches: planned
                    .branches
                    .iter()
                    .map(|branch| {
                        (
                            branch.on.to_owned(),
                            selected_fields(&branch.fields, variables),
                        )
                    })
                    .collect(),
            }
        })
        .collect()
}

fn rewrite_fields(fields: &[PlannedField<'_>]) -> Vec<Positioned<Selection>> {
    fields
        .iter()
        .map(|planned| {
            let original = &planned.field.node;
            let items = match planned.branches.as_slice() {
                [] => Vec::new(),
                [only] if planned.info.is_some_and(|info| info.named == only.on) => {
                    rewrite_fields(&only.fields)
                }
                branches => branches
                    .iter()
                    .filter(|branch| !branch.fields.is_empty())
                    .map(|branch| {
                        let pos = planned.field.pos;
                        Positioned::new(
                            Selection::InlineFragment(Positioned::new(
                                InlineFragment {
                                    type_condition: Some(Positioned::new(
                                        TypeCondition {
                                            on: Positioned::new(Name::new(branch.on), pos),
                                        },
                                        pos,
                                    )),
                                    directives: Vec::new(),
                                    selection_set: Positioned::new(
                                        SelectionSet {
                                            items: rewrite_fields(&branch.fields),
                                        },
                                        pos,
                                    ),
                                },
                                pos,
                            )),
                            pos,
                        )
                    })
                    .collect(),
            };
            let field = Field {
                alias: original.alias.clone(),
                name: original.name.clone(),
                arguments: original.arguments.clone(),
                directives: original
                    .directives
                    .iter()
                    .filter(|directive| {
                        !matches!(directive.node.name.node.as_str(), "skip" | "include")
                    })
                    .cloned()
                    .collect(),
                selection_set: Positioned::new(SelectionSet { items }, original.selection_set.pos),
            };
            Positioned::new(
                Selection::Field(Positioned::new(field, planned.field.pos)),
                planned.field.pos,
            )
        })
        .collect()
}

/// Every variable `document` uses, in its operations and fragments: in field arguments and in
/// directives (on any field, `__typename` included).
pub fn variables_used(document: &ExecutableDocument) -> HashSet<&str> {
    let mut used = HashSet::new();
    for (_, operation) in document.operations.iter() {
        for directive in &operation.node.directives {
            for (_, value) in &directive.node.arguments {
                variables_in(&value.node, &mut used);
            }
        }
        variables_in_set(&operation.node.selection_set.node, &mut used);
    }
    for fragment in document.fragments.values() {
        for directive in &fragment.node.directives {
            for (_, value) in &directive.node.arguments {
                variables_in(&value.node, &mut used);
            }
        }
        variables_in_set(&fragment.node.selection_set.node, &mut used);
    }
    used
}

fn variables_in_set<'a>(set: &'a SelectionSet, used: &mut HashSet<&'a str>) {
    for item in &set.items {
        for directive in item.node.directives() {
            for (_, value) in &directive.node.arguments {
                variables_in(&value.node, used);
            }
        }
        match &item.node {
            Selection::Field(field) => {
                for (_, value) in &field.node.arguments {
                    variables_in(&value.node, used);
                }
                variables_in_set(&field.node.selection_set.node, used);
            }
            Selection::InlineFragment(inline) => {
                variables_in_set(&inline.node.selection_set.node, used);
            }
            Selection::FragmentSpread(_) => {}
        }
    }
}

fn variables_in<'a>(value: &'a async_graphql_value::Value, used: &mut HashSet<&'a str>) {
    use async_graphql_value::Value as AstValue;
    match value {
        AstValue::Variable(name) => {
            used.insert(name.as_str());
        }
        AstValue::List(items) => {
            for item in items {
                variables_in(item, used);
            }
        }
        AstValue::Object(fields) => {
            for item in fields.values() {
                variables_in(item, used);
            }
        }
        _ => {}
    }
}

fn print_fields(fields: &[PlannedField<'_>], variables: &Variables, out: &mut String) {
    use std::fmt::Write;
    out.push('{');
    for (index, planned) in fields.iter().enumerate() {
        if index > 0 {
            out.push(' ');
        }
        if planned.is_aliased() {
            out.push_str(planned.key);
            out.push(':');
        }
        out.push_str(planned.name());
        let mut arguments: Vec<(&str, Value)> = planned
            .field
            .node
            .arguments
            .iter()
            .map(|(name, value)| {
                let value = value
                    .node
                    .clone()
                    .into_const_with(|variable| variables.get(&variable).cloned().ok_or(()))
                    .unwrap_or(Value::Null);
                (name.node.as_str(), value)
            })
            .collect();
        if !arguments.is_empty() {
            arguments.sort_by(|a, b| a.0.cmp(b.0));
            out.push('(');
            for (index, (name, value)) in arguments.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{name}:{value}");
            }
            out.push(')');
        }
        match planned.branches.as_slice() {
            [] => {}
            [only] => print_fields(&only.fields, variables, out),
            branches => {
                out.push('{');
                for branch in branches {
                    let _ = write!(out, "on {}", branch.on);
                    print_fields(&branch.fields, variables, out);
                }
                out.push('}');
            }
        }
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDL: &str = r#"
        schema { query: Query mutation: Mutation }
        interface Node { id: ID! }
        type Query { node(id: ID!): Node articles(first: Int): ArticleConnection! viewer: User }
        type Mutation { noop: Boolean }
        type User implements Node { id: ID! username: String! email: String }
        type Article implements Node { id: ID! title: String! author: User! }
        type ArticleConnection { edges: [ArticleEdge!]! nodes: [Article!]! pageInfo: PageInfo! totalCount: Int! }
        type ArticleEdge { cursor: String! node: Article! }
        type PageInfo { hasNextPage: Boolean! }
    "#;

    fn plan_of(query: &str, variables: serde_json::Value) -> (String, bool) {
        let schema = SchemaInfo::from_sdl(SDL).expect("sdl");
        let document = async_graphql::parser::parse_query(query).expect("parses");
        let (_, operation) = select_operation(&document, None).expect("one operation");
        let variables = coerce_variables(&operation.node, Variables::from_json(variables));
        let plan = Planner::new(&document, &variables, &schema)
            .plan(None)
            .expect("plan");
        (plan.canonical(&variables), plan.needs_rewrite())
    }

    #[test]
    fn repeated_fields_merge_into_one() {
        let (one, repeats) = plan_of(
            "{ articles(first: 3) { totalCount } }",
            serde_json::json!({}),
        );
        assert!(!repeats);
        let (many, repeats) = plan_of(
            "{ articles(first: 3) { totalCount } articles(first: 3) { totalCount } ... on Query { articles(first: 3) { totalCount } } }",
            serde_json::json!({}),
        );
        assert!(repeats);
        assert_eq!(one, many);
    }

    #[test]
    fn fragments_apply_by_type_and_skip_include_follow_the_variables() {
        let (plan, _) = plan_of(
            "query($x: Boolean = true) { node(id: \"1\") { id ... on User { username } ...A email: id @include(if: $x) } } fragment A on Article { title }",
            serde_json::json!({}),
        );
        assert_eq!(
            plan,
            "Q{node(id:\"1\"){on User{id username email:id}on Article{id title email:id}}}"
        );
        let (skipped, _) = plan_of(
            "query($x: Boolean = true) { viewer { id @include(if: $x) username } }",
            serde_json::json!({ "x": false }),
        );
        assert_eq!(skipped, "Q{viewer{username}}");
    }

    #[test]
    fn a_rewritten_document_has_one_field_per_key_and_no_fragments() {
        let schema = SchemaInfo::from_sdl(SDL).expect("sdl");
        let document = async_graphql::parser::parse_query(
            "query Q($n: Int, $unused: Boolean = true) { articles(first: $n) { nodes { title } } ...F } fragment F on Query { articles(first: $n) { nodes { author { id } } } }",
        )
        .expect("parses");
        let variables = Variables::from_json(serde_json::json!({ "n": 2 }));
        let plan = Planner::new(&document, &variables, &schema)
            .plan(None)
            .expect("plan");
        assert!(plan.needs_rewrite());
        let rewritten = plan.rewrite();
        assert!(rewritten.fragments.is_empty());
        let again = Planner::new(&rewritten, &variables, &schema)
            .plan(None)
            .expect("plan");
        assert!(!again.needs_rewrite());
        assert_eq!(again.canonical(&variables), plan.canonical(&variables));
        assert_eq!(
            again.operation.variable_definitions.len(),
            1,
            "$unused is dropped"
        );
    }
}
