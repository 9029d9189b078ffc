//! Static analysis of an operation against the schema before it runs: depth, aliases, root fields,
//! directives, fragment nesting, `first` bounds and the cost; and the actual cost of its response.
//!
//! The cost model: scalar and enum fields cost 0; an object field costs 1 plus its selection; a
//! connection costs 1 plus its `pageInfo`, plus `first` (default 20) times one item (`edges { node }`
//! or `nodes`: 1 plus the node's selection); a plain list of objects (an article's tags, at most 20)
//! costs like one object; every root mutation field costs [`MUTATION_COST`] more; `__schema` and
//! `__type` cost 1 (introspection is bounded by its own nesting rule instead).

use std::collections::HashMap;

use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{
    BaseType, DocumentOperations, ExecutableDocument, Field, OperationDefinition, OperationType,
    Selection, SelectionSet, ServiceDocument, TypeKind, TypeSystemDefinition,
};
use async_graphql::{Name, Value, Variables};

use super::limits::{LimitError, Limits, MAX_INTROSPECTION_LISTS};
use crate::pagination;

/// The extra cost of every root mutation field: writes cost more than reads.
pub const MUTATION_COST: u64 = 10;

/// What the analysis needs to know of the schema: each type's fields and their types.
#[derive(Debug, Clone, Default)]
pub struct SchemaInfo {
    types: HashMap<String, TypeInfo>,
    query: String,
    mutation: String,
}

#[derive(Debug, Clone, Default)]
struct TypeInfo {
    /// Field name -> the named type it returns.
    fields: HashMap<String, String>,
    /// Deprecated field name -> the reason.
    deprecated: HashMap<String, String>,
}

impl SchemaInfo {
    /// Reads the schema's SDL.
    pub fn from_sdl(sdl: &str) -> Result<Self, async_graphql::parser::Error> {
        let document: ServiceDocument = async_graphql::parser::parse_schema(sdl)?;
        let mut info = Self {
            types: HashMap::new(),
            query: "Query".to_owned(),
            mutation: "Mutation".to_owned(),
        };
        for definition in document.definitions {
            match definition {
                TypeSystemDefinition::Schema(schema) => {
                    if let Some(query) = &schema.node.query {
                        info.query = query.node.to_string();
                    }
                    if let Some(mutation) = &schema.node.mutation {
                        info.mutation = mutation.node.to_string();
                    }
                }
                TypeSystemDefinition::Type(definition) => {
                    let definition = definition.node;
                    let fields = match definition.kind {
                        TypeKind::Object(object) => object.fields,
                        TypeKind::Interface(interface) => interface.fields,
                        TypeKind::Union(_) => Vec::new(),
                        _ => continue,
                    };
                    let deprecated = fields
                        .iter()
                        .filter_map(|field| {
                            let directive = field
                                .node
                                .directives
                                .iter()
                                .find(|directive| directive.node.name.node == "deprecated")?;
                            let reason = directive
                                .node
                                .get_argument("reason")
                                .and_then(|reason| match &reason.node {
                                    Value::String(reason) => Some(reason.clone()),
                                    _ => None,
                                })
                                .unwrap_or_else(|| "No longer supported".to_owned());
                            Some((field.node.name.node.to_string(), reason))
                        })
                        .collect();
                    let fields = fields
                        .into_iter()
                        .map(|field| {
                            let mut ty = &field.node.ty.node.base;
                            while let BaseType::List(inner) = ty {
                                ty = &inner.base;
                            }
                            let named = match ty {
                                BaseType::Named(name) => name.to_string(),
                                BaseType::List(_) => String::new(),
                            };
                            (field.node.name.node.to_string(), named)
                        })
                        .collect();
                    info.types.insert(
                        definition.name.node.to_string(),
                        TypeInfo { fields, deprecated },
                    );
                }
                TypeSystemDefinition::Directive(_) => {}
            }
        }
        Ok(info)
    }

    fn deprecation(&self, parent: &str, field: &str) -> Option<&str> {
        self.types
            .get(parent)?
            .deprecated
            .get(field)
            .map(String::as_str)
    }

    fn field_type(&self, parent: &str, field: &str) -> Option<&str> {
        self.types
            .get(parent)?
            .fields
            .get(field)
            .map(String::as_str)
    }

    /// Objects, interfaces and unions: everything with a selection.
    fn is_composite(&self, type_name: &str) -> bool {
        self.types.contains_key(type_name)
    }

    /// A Relay connection: it has `edges` and `pageInfo`.
    fn is_connection(&self, type_name: &str) -> bool {
        self.types.get(type_name).is_some_and(|info| {
            info.fields.contains_key("edges") && info.fields.contains_key("pageInfo")
        })
    }
}

/// What the analysis found out about an operation that is within the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    /// The cost points the operation may use at most.
    pub requested_cost: u64,
    /// Query or mutation.
    pub operation_type: OperationType,
    /// The deprecated fields it selects (`Type.field`) with the reason of each.
    pub deprecated: Vec<(String, String)>,
    /// Whether it selects `__schema` or `__type`.
    pub introspection: bool,
}

/// The operation that a request runs: the named one, or the only one.
pub fn select_operation<'a>(
    document: &'a ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<&'a OperationDefinition> {
    match &document.operations {
        DocumentOperations::Single(operation) => Some(&operation.node),
        DocumentOperations::Multiple(operations) => match operation_name {
            Some(name) => operations.get(name).map(|operation| &operation.node),
            None if operations.len() == 1 => operations.values().next().map(|op| &op.node),
            None => None,
        },
    }
}

/// Checks the operation against `limits` and prices it. An operation that cannot be selected (no
/// name given among several) costs nothing here: execution refuses it.
pub fn analyze(
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    variables: &Variables,
    schema: &SchemaInfo,
    limits: &Limits,
) -> Result<Analysis, LimitError> {
    let Some(operation) = select_operation(document, operation_name) else {
        return Ok(Analysis {
            requested_cost: 0,
            operation_type: OperationType::Query,
            deprecated: Vec::new(),
            introspection: false,
        });
    };
    check_fragments(document, &operation.selection_set.node, limits)?;
    let mut walker = Walker::new(document, operation, variables, schema, limits);
    let root = walker.root_type(operation.ty).to_owned();
    walker.check_directives(operation.directives.len())?;
    let groups = walker.collect_one(&root, &operation.selection_set.node)?;
    let root_fields = groups
        .values()
        .filter(|fields| fields[0].1.name.node != "__typename")
        .count();
    let cost = walker.selection_cost(&groups, 0, None)?;
    if walker.max_depth > limits.max_depth {
        return Err(LimitError::too_deep(
            "depth",
            "The query's depth",
            limits.max_depth,
            walker.max_depth,
        ));
    }
    if root_fields > limits.max_root_fields {
        return Err(LimitError::too_complex(
            "rootFields",
            "The number of root fields",
            limits.max_root_fields as u64,
            root_fields as u64,
        ));
    }
    if cost > limits.max_cost {
        return Err(LimitError::too_complex(
            "cost",
            "The query's cost",
            limits.max_cost,
            cost,
        ));
    }
    Ok(Analysis {
        requested_cost: cost,
        operation_type: operation.ty,
        deprecated: walker.deprecated.into_iter().collect(),
        introspection: walker.introspection,
    })
}

/// The cost of what the operation returned: like the requested cost, with each connection's
/// `first` replaced by the items it returned and null objects costing nothing.
pub fn actual_cost(
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    variables: &Variables,
    schema: &SchemaInfo,
    data: &Value,
) -> u64 {
    let Some(operation) = select_operation(document, operation_name) else {
        return 0;
    };
    let limits = Limits {
        max_fields: usize::MAX,
        max_aliases: usize::MAX,
        max_directives: usize::MAX,
        max_fragment_depth: usize::MAX,
        ..Limits::default()
    };
    let mut walker = Walker::new(document, operation, variables, schema, &limits);
    let root = walker.root_type(operation.ty).to_owned();
    let Ok(groups) = walker.collect_one(&root, &operation.selection_set.node) else {
        return 0;
    };
    walker.actual_cost(&groups, data, true)
}

/// Refuses fragment cycles (also through fields: `A { author { ...B } } B { articles { ...A } }`)
/// and fragments nested deeper than the limit, before any fragment is expanded.
fn check_fragments(
    document: &ExecutableDocument,
    operation: &SelectionSet,
    limits: &Limits,
) -> Result<(), LimitError> {
    fn spreads<'d>(set: &'d SelectionSet, found: &mut Vec<&'d str>) {
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => spreads(&field.node.selection_set.node, found),
                Selection::FragmentSpread(spread) => {
                    found.push(spread.node.fragment_name.node.as_str());
                }
                Selection::InlineFragment(inline) => {
                    spreads(&inline.node.selection_set.node, found);
                }
            }
        }
    }

    /// The longest chain of fragments starting at `name`; errors on a cycle.
    fn depth<'d>(
        document: &'d ExecutableDocument,
        name: &'d str,
        path: &mut Vec<&'d str>,
        known: &mut HashMap<&'d str, usize>,
    ) -> Result<usize, LimitError> {
        if let Some(start) = path.iter().position(|seen| *seen == name) {
            let mut cycle = path[start..].to_vec();
            cycle.push(name);
            return Err(LimitError::FragmentCycle(cycle.join(" -> ")));
        }
        if let Some(depth) = known.get(name) {
            return Ok(*depth);
        }
        let Some(fragment) = document.fragments.get(name) else {
            return Ok(0);
        };
        let mut inner = Vec::new();
        spreads(&fragment.node.selection_set.node, &mut inner);
        path.push(name);
        let mut deepest = 0;
        for spread in inner {
            deepest = deepest.max(depth(document, spread, path, known)?);
        }
        path.pop();
        known.insert(name, deepest + 1);
        Ok(deepest + 1)
    }

    let mut roots = Vec::new();
    spreads(operation, &mut roots);
    let mut known = HashMap::new();
    let mut deepest = 0;
    for name in roots {
        deepest = deepest.max(depth(document, name, &mut Vec::new(), &mut known)?);
    }
    if deepest > limits.max_fragment_depth {
        return Err(LimitError::too_deep(
            "fragmentDepth",
            "The nesting of fragments",
            limits.max_fragment_depth,
            deepest,
        ));
    }
    Ok(())
}

/// The fields of a selection merged by response key, each with the type it was selected on.
type Groups<'a> = IndexMap<&'a str, Vec<(String, &'a Field)>>;

struct Walker<'a> {
    document: &'a ExecutableDocument,
    variables: &'a Variables,
    defaults: HashMap<&'a Name, &'a Value>,
    schema: &'a SchemaInfo,
    limits: &'a Limits,
    selections: usize,
    aliases: usize,
    max_depth: usize,
    deprecated: std::collections::BTreeMap<String, String>,
    introspection: bool,
}

impl<'a> Walker<'a> {
    fn new(
        document: &'a ExecutableDocument,
        operation: &'a OperationDefinition,
        variables: &'a Variables,
        schema: &'a SchemaInfo,
        limits: &'a Limits,
    ) -> Self {
        let defaults = operation
            .variable_definitions
            .iter()
            .filter_map(|definition| {
                let default = definition.node.default_value.as_ref()?;
                Some((&definition.node.name.node, &default.node))
            })
            .collect();
        Self {
            document,
            variables,
            defaults,
            schema,
            limits,
            selections: 0,
            aliases: 0,
            max_depth: 0,
            deprecated: std::collections::BTreeMap::new(),
            introspection: false,
        }
    }

    fn root_type(&self, operation_type: OperationType) -> &'a str {
        match operation_type {
            OperationType::Mutation => &self.schema.mutation,
            _ => &self.schema.query,
        }
    }

    fn check_directives(&self, count: usize) -> Result<(), LimitError> {
        if count > self.limits.max_directives {
            return Err(LimitError::too_complex(
                "directives",
                "The number of directives on one selection",
                self.limits.max_directives as u64,
                count as u64,
            ));
        }
        Ok(())
    }

    /// Counts one more selection after fragment expansion.
    fn count_selection(&mut self) -> Result<(), LimitError> {
        self.selections += 1;
        if self.selections > self.limits.max_fields {
            return Err(LimitError::too_complex(
                "fields",
                "The number of selections after fragment expansion",
                self.limits.max_fields as u64,
                self.selections as u64,
            ));
        }
        Ok(())
    }

    fn collect_one(
        &mut self,
        parent: &str,
        set: &'a SelectionSet,
    ) -> Result<Groups<'a>, LimitError> {
        let mut groups = Groups::new();
        self.collect(parent, set, &mut groups)?;
        Ok(groups)
    }

    /// Merges the fields of `set` (selected on `parent`) into `groups`, expanding fragments.
    fn collect(
        &mut self,
        parent: &str,
        set: &'a SelectionSet,
        groups: &mut Groups<'a>,
    ) -> Result<(), LimitError> {
        for item in &set.items {
            self.count_selection()?;
            match &item.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    self.check_directives(field.directives.len())?;
                    if field.alias.is_some() {
                        self.aliases += 1;
                        if self.aliases > self.limits.max_aliases {
                            return Err(LimitError::too_complex(
                                "aliases",
                                "The number of aliases",
                                self.limits.max_aliases as u64,
                                self.aliases as u64,
                            ));
                        }
                    }
                    let key = field.alias.as_ref().unwrap_or(&field.name).node.as_str();
                    groups
                        .entry(key)
                        .or_default()
                        .push((parent.to_owned(), field));
                }
                Selection::FragmentSpread(spread) => {
                    self.check_directives(spread.node.directives.len())?;
                    let name = spread.node.fragment_name.node.as_str();
                    let Some(fragment) = self.document.fragments.get(name) else {
                        continue;
                    };
                    let on = fragment.node.type_condition.node.on.node.as_str();
                    self.collect(on, &fragment.node.selection_set.node, groups)?;
                }
                Selection::InlineFragment(inline) => {
                    self.check_directives(inline.node.directives.len())?;
                    let on = inline
                        .node
                        .type_condition
                        .as_ref()
                        .map_or(parent, |condition| condition.node.on.node.as_str())
                        .to_owned();
                    self.collect(&on, &inline.node.selection_set.node, groups)?;
                }
            }
        }
        Ok(())
    }

    /// The merged sub-selections of a group of fields, selected on `type_name`.
    fn children(
        &mut self,
        type_name: &str,
        fields: &[(String, &'a Field)],
    ) -> Result<Groups<'a>, LimitError> {
        let mut groups = Groups::new();
        for (_, field) in fields {
            self.collect(type_name, &field.selection_set.node, &mut groups)?;
        }
        Ok(groups)
    }

    /// The requested cost of `groups` at `depth`; tracks the depth.
    /// `introspection` is `Some(nested lists)` inside `__schema` and `__type`.
    fn selection_cost(
        &mut self,
        groups: &Groups<'a>,
        depth: usize,
        introspection: Option<usize>,
    ) -> Result<u64, LimitError> {
        let mut cost = 0;
        for fields in groups.values() {
            cost += self.field_cost(fields, depth + 1, introspection)?;
        }
        Ok(cost)
    }

    fn field_cost(
        &mut self,
        fields: &[(String, &'a Field)],
        depth: usize,
        introspection: Option<usize>,
    ) -> Result<u64, LimitError> {
        self.max_depth = self.max_depth.max(depth);
        let (selected_on, field) = &fields[0];
        let name = field.name.node.as_str();
        if name == "__typename" {
            return Ok(0);
        }
        let Some(type_name) = self.schema.field_type(selected_on, name).map(str::to_owned) else {
            // Introspection, or a field that validation will refuse: check its nesting, price
            // `__schema` and `__type` at 1.
            let mut lists = introspection.unwrap_or(0);
            if introspection.is_some()
                && matches!(
                    name,
                    "fields" | "inputFields" | "interfaces" | "possibleTypes"
                )
            {
                lists += 1;
                if lists > MAX_INTROSPECTION_LISTS {
                    return Err(LimitError::too_deep(
                        "introspectionDepth",
                        "The nesting of introspection lists",
                        MAX_INTROSPECTION_LISTS,
                        lists,
                    ));
                }
            }
            self.introspection |= matches!(name, "__schema" | "__type");
            let children = self.children("", fields)?;
            self.selection_cost(&children, depth, Some(lists))?;
            return Ok(u64::from(matches!(name, "__schema" | "__type")));
        };
        if let Some(reason) = self.schema.deprecation(selected_on, name) {
            self.deprecated
                .insert(format!("{selected_on}.{name}"), reason.to_owned());
        }
        let mutation_cost = if depth == 1 && *selected_on == self.schema.mutation {
            MUTATION_COST
        } else {
            0
        };
        if !self.schema.is_composite(&type_name) {
            return Ok(mutation_cost);
        }
        let children = self.children(&type_name, fields)?;
        if !self.schema.is_connection(&type_name) {
            let inner = self.selection_cost(&children, depth, None)?;
            return Ok(mutation_cost + 1 + inner);
        }
        let first = self.page_size(field)?;
        let mut cost = mutation_cost + 1;
        for child_fields in children.values() {
            let child_depth = depth + 1;
            match child_fields[0].1.name.node.as_str() {
                "edges" => {
                    self.max_depth = self.max_depth.max(child_depth);
                    let edge_type = self
                        .schema
                        .field_type(&type_name, "edges")
                        .unwrap_or_default()
                        .to_owned();
                    let edge = self.children(&edge_type, child_fields)?;
                    cost += first * self.selection_cost(&edge, child_depth, None)?;
                }
                "nodes" => {
                    cost += first * self.field_cost(child_fields, child_depth, None)?;
                }
                _ => cost += self.field_cost(child_fields, child_depth, None)?,
            }
        }
        Ok(cost)
    }

    /// The page size a connection field asks for; BAD_USER_INPUT when out of range.
    fn page_size(&self, field: &Field) -> Result<u64, LimitError> {
        let value = field
            .arguments
            .iter()
            .find(|(name, _)| name.node == "first")
            .and_then(|(_, value)| {
                value
                    .node
                    .clone()
                    .into_const_with(|variable| {
                        self.variables
                            .get(&variable)
                            .or_else(|| self.defaults.get(&variable).copied())
                            .cloned()
                            .ok_or(())
                    })
                    .ok()
            });
        let first = match value {
            Some(Value::Number(number)) => Some(
                number
                    .as_i64()
                    .map_or(i32::MAX, |n| i32::try_from(n).unwrap_or(i32::MAX)),
            ),
            _ => None,
        };
        pagination::page_size(first).map_err(LimitError::BadInput)
    }

    /// The actual cost of `data`, the response to `groups` selected on `parent`.
    fn actual_cost(&mut self, groups: &Groups<'a>, data: &Value, root: bool) -> u64 {
        let Value::Object(object) = data else {
            return 0;
        };
        let mut cost = 0;
        for (key, fields) in groups {
            let Some(value) = object.get(*key) else {
                continue;
            };
            let (selected_on, field) = &fields[0];
            let name = field.name.node.as_str();
            if name == "__typename" {
                continue;
            }
            if root && *selected_on == self.schema.mutation {
                cost += MUTATION_COST;
            }
            if matches!(name, "__schema" | "__type") {
                cost += u64::from(!matches!(value, Value::Null));
                continue;
            }
            let Some(type_name) = self.schema.field_type(selected_on, name).map(str::to_owned)
            else {
                continue;
            };
            if !self.schema.is_composite(&type_name) {
                continue;
            }
            let Ok(children) = self.children(&type_name, fields) else {
                continue;
            };
            cost += self.actual_object_cost(&type_name, &children, value);
        }
        cost
    }

    fn actual_object_cost(&mut self, type_name: &str, children: &Groups<'a>, value: &Value) -> u64 {
        match value {
            Value::Null => 0,
            Value::List(items) => {
                // A plain list costs like one object: the most expensive of its items.
                items
                    .iter()
                    .map(|item| self.actual_object_cost(type_name, children, item))
                    .max()
                    .unwrap_or(1)
            }
            Value::Object(object) if self.schema.is_connection(type_name) => {
                let mut cost = 1;
                for (key, fields) in children {
                    let Some(child) = object.get(*key) else {
                        continue;
                    };
                    let child_name = fields[0].1.name.node.as_str();
                    let Some(child_type) = self.schema.field_type(type_name, child_name) else {
                        continue;
                    };
                    let child_type = child_type.to_owned();
                    let Ok(grandchildren) = self.children(&child_type, fields) else {
                        continue;
                    };
                    let items = match child {
                        Value::List(items) if matches!(child_name, "edges" | "nodes") => items,
                        other => {
                            if self.schema.is_composite(&child_type) {
                                cost += self.actual_object_cost(&child_type, &grandchildren, other);
                            }
                            continue;
                        }
                    };
                    for item in items {
                        cost += if child_name == "edges" {
                            self.actual_cost(&grandchildren, item, false)
                        } else {
                            self.actual_object_cost(&child_type, &grandchildren, item)
                        };
                    }
                }
                cost
            }
            Value::Object(_) => 1 + self.actual_cost(children, value, false),
            _ => 0,
        }
    }
}
