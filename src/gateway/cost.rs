//! Pricing an operation from its plan, measuring what it selects (depth, aliases, root fields,
//! introspection nesting, deprecated fields), its actual cost after it ran, and
//! `extensions.cost`.
//!
//! The cost model, applied to the plan (so each field that runs is priced once, with the arguments
//! that run, and nothing that does not run is priced):
//! - scalar and enum fields cost 0; an object costs 1 plus its selection;
//! - a connection costs 1 plus its selection, where `edges` and `nodes` are lists of `first`
//!   (default 20) items (an edge is an object like any other: 1 plus its `node`);
//! - a plain list of objects costs its longest possible length times one item (an article's tags:
//!   at most 20);
//! - a field of an interface costs what its most expensive possible object type costs;
//! - each root mutation field costs [`MUTATION_COST`] more, whether or not it succeeds;
//! - `__schema` and `__type` cost 1 (introspection is bounded by its own nesting rule instead).
//!
//! Arithmetic saturates: no document can wrap a cost around to a small number.
//!
//! Hand-written rather than async-graphql's `complexity`: that one prices each occurrence as
//! written (before merging), knows no connection sizes, and cannot be measured against the
//! response for refunds.

use std::collections::BTreeMap;

use async_graphql::{Value, Variables};

use super::limits::{LimitError, MAX_INTROSPECTION_LISTS};
use super::plan::{Plan, PlannedField};
use super::schema_info::{Hint, SchemaInfo};
use crate::buckets::Decision;
use crate::pagination;
use crate::validate;

/// The extra cost of every root mutation field: writes cost more than reads.
pub const MUTATION_COST: u64 = 10;

/// What pricing found out about a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measures {
    /// The cost points the operation may use at most.
    pub requested: u64,
    /// The longest path of fields.
    pub depth: usize,
    /// Aliased fields that run.
    pub aliases: usize,
    /// Root fields that run (`__typename` aside).
    pub root_fields: usize,
    /// Whether it selects `__schema` or `__type`.
    pub introspection: bool,
    /// The deprecated fields it selects (`Type.field`) with the reason of each.
    pub deprecated: Vec<(String, String)>,
    /// The cache hints of everything it selects, merged.
    pub hint: Hint,
}

/// Prices `plan` with `variables`; BAD_USER_INPUT for a `first` out of range, QUERY_TOO_DEEP for
/// introspection nested too deeply.
pub fn measure(
    plan: &Plan<'_>,
    variables: &Variables,
    schema: &SchemaInfo,
) -> Result<Measures, LimitError> {
    let mut pricer = Pricer {
        schema,
        variables,
        depth: 0,
        introspection: false,
        deprecated: BTreeMap::new(),
        hint: schema.type_hint(plan.root),
    };
    let mutation = plan.root == schema.mutation;
    let mut requested = 0u64;
    let mut aliases = 0usize;
    let mut root_fields = 0usize;
    for field in &plan.fields {
        let (cost, field_aliases) = pricer.field(field, 1, None, None)?;
        requested = requested.saturating_add(cost);
        aliases = aliases.saturating_add(field_aliases);
        if field.name() != "__typename" {
            root_fields += 1;
            if mutation {
                requested = requested.saturating_add(MUTATION_COST);
            }
        }
    }
    Ok(Measures {
        requested,
        depth: pricer.depth,
        aliases,
        root_fields,
        introspection: pricer.introspection,
        deprecated: pricer.deprecated.into_iter().collect(),
        hint: pricer.hint,
    })
}

/// The longest a plain list of objects can be: an article has at most 20 tags; any other list
/// is priced as a full page.
fn list_bound(parent: &str, field: &str) -> u64 {
    match (parent, field) {
        ("Article", "tags") => validate::MAX_TAGS as u64,
        _ => pagination::MAX_PAGE_SIZE,
    }
}

struct Pricer<'p> {
    schema: &'p SchemaInfo,
    variables: &'p Variables,
    depth: usize,
    introspection: bool,
    deprecated: BTreeMap<String, String>,
    hint: Hint,
}

impl Pricer<'_> {
    /// The cost of `field` at `depth` and the aliases in it; `page` is the `first` of the
    /// connection it belongs to; `lists` counts nested introspection lists inside `__schema`
    /// and `__type`.
    fn field(
        &mut self,
        field: &PlannedField<'_>,
        depth: usize,
        page: Option<u64>,
        lists: Option<usize>,
    ) -> Result<(u64, usize), LimitError> {
        self.depth = self.depth.max(depth);
        let aliases = usize::from(field.is_aliased());
        let name = field.name();
        if name == "__typename" {
            return Ok((0, aliases));
        }
        if lists.is_some() || matches!(name, "__schema" | "__type") {
            return self.introspection_field(field, depth, lists.unwrap_or(0), aliases);
        }
        self.hint = self.hint.merge(self.schema.field_hint(field.parent, name));
        let Some(info) = field.info else {
            // Not in the schema (validation refuses it): nothing to price, but its depth counts.
            let mut inner_aliases = 0usize;
            for branch in &field.branches {
                for child in &branch.fields {
                    let (_, child_aliases) = self.field(child, depth + 1, None, None)?;
                    inner_aliases = inner_aliases.saturating_add(child_aliases);
                }
            }
            return Ok((0, aliases.saturating_add(inner_aliases)));
        };
        if let Some(reason) = &info.deprecation {
            self.deprecated
                .insert(format!("{}.{name}", field.parent), reason.clone());
        }
        let connection = self.schema.is_connection(&info.named);
        let first = if connection {
            Some(self.page_size(field)?)
        } else {
            None
        };
        if field.branches.is_empty() {
            return Ok((0, aliases));
        }
        let mut item = 0u64;
        let mut inner_aliases = 0usize;
        for branch in &field.branches {
            self.hint = self.hint.merge(self.schema.type_hint(branch.on));
            let mut cost = 0u64;
            let mut branch_aliases = 0usize;
            for child in &branch.fields {
                let (child_cost, child_aliases) = self.field(child, depth + 1, first, None)?;
                cost = cost.saturating_add(child_cost);
                branch_aliases = branch_aliases.saturating_add(child_aliases);
            }
            item = item.max(cost);
            inner_aliases = inner_aliases.max(branch_aliases);
        }
        let count = if info.list {
            page.unwrap_or_else(|| list_bound(field.parent, name))
        } else {
            1
        };
        Ok((
            count.saturating_mul(item.saturating_add(1)),
            aliases.saturating_add(inner_aliases),
        ))
    }

    fn introspection_field(
        &mut self,
        field: &PlannedField<'_>,
        depth: usize,
        lists: usize,
        aliases: usize,
    ) -> Result<(u64, usize), LimitError> {
        let name = field.name();
        let lists = if matches!(
            name,
            "fields" | "inputFields" | "interfaces" | "possibleTypes"
        ) {
            lists + 1
        } else {
            lists
        };
        if lists > MAX_INTROSPECTION_LISTS {
            return Err(LimitError::too_deep(
                "introspectionDepth",
                "The nesting of introspection lists",
                MAX_INTROSPECTION_LISTS,
                lists,
            ));
        }
        let root = matches!(name, "__schema" | "__type");
        self.introspection |= root;
        let mut inner_aliases = 0usize;
        for branch in &field.branches {
            let mut branch_aliases = 0usize;
            for child in &branch.fields {
                let (_, child_aliases) = self.field(child, depth + 1, None, Some(lists))?;
                branch_aliases = branch_aliases.saturating_add(child_aliases);
            }
            inner_aliases = inner_aliases.max(branch_aliases);
        }
        Ok((u64::from(root), aliases.saturating_add(inner_aliases)))
    }

    /// The page size a connection field asks for; BAD_USER_INPUT when out of range, a
    /// validation error when it is not an `Int` at all (`1.5`, `2147483648`), naming the value.
    fn page_size(&self, field: &PlannedField<'_>) -> Result<u64, LimitError> {
        let argument = field.field.node.get_argument("first");
        let value = argument.and_then(|value| {
            value
                .node
                .clone()
                .into_const_with(|variable| self.variables.get(&variable).cloned().ok_or(()))
                .ok()
        });
        let first = match value {
            Some(Value::Number(number)) => {
                let int = number.as_i64().and_then(|n| i32::try_from(n).ok());
                let Some(int) = int else {
                    let source = match argument.map(|argument| &argument.node) {
                        Some(async_graphql_value::Value::Variable(name)) => {
                            format!("Variable \"${name}\" got invalid value {number}")
                        }
                        _ => format!("Argument \"first\" has invalid value {number}"),
                    };
                    return Err(LimitError::Invalid(format!(
                        "{source}: an Int is a 32-bit whole number"
                    )));
                };
                Some(int)
            }
            _ => None,
        };
        pagination::page_size(first).map_err(LimitError::BadInput)
    }
}

/// Tokens of a document the server does not know yet that it prepares for free.
pub const FREE_PREPARATION_TOKENS: usize = 2_000;

/// Tokens beyond the free ones that cost one point to prepare.
pub const TOKENS_PER_POINT: usize = 20;

/// What preparing (parsing, checking, validating) a document of `tokens` costs, whether or not
/// it is then refused: nothing up to [`FREE_PREPARATION_TOKENS`], then a point per
/// [`TOKENS_PER_POINT`] tokens.
pub fn preparation_cost(tokens: usize) -> u64 {
    (tokens.saturating_sub(FREE_PREPARATION_TOKENS) / TOKENS_PER_POINT) as u64
}

/// Bytes of one operation's response data that its fields pay for.
pub const FREE_RESPONSE_BYTES: usize = 16 * 1024;

/// Bytes of response data beyond the free ones that cost one point.
pub const BYTES_PER_POINT: usize = 1024;

/// What carrying `bytes` of response data costs beyond its fields: nothing up to
/// [`FREE_RESPONSE_BYTES`], then a point per whole KiB.
pub fn byte_cost(bytes: usize) -> u64 {
    (bytes.saturating_sub(FREE_RESPONSE_BYTES) / BYTES_PER_POINT) as u64
}

/// The cost of what the operation returned: like the requested cost, with each list counting the
/// items it returned and null objects costing nothing; root mutation fields always cost
/// [`MUTATION_COST`]. Never more than `requested`.
pub fn actual_cost(plan: &Plan<'_>, schema: &SchemaInfo, data: &Value, requested: u64) -> u64 {
    let mut cost = match data {
        Value::Object(object) => actual_fields(&plan.fields, object, schema),
        _ => 0,
    };
    if plan.root == schema.mutation {
        let fields = plan
            .fields
            .iter()
            .filter(|field| field.name() != "__typename")
            .count() as u64;
        cost = cost.saturating_add(fields.saturating_mul(MUTATION_COST));
    }
    cost.min(requested)
}

fn actual_fields(
    fields: &[PlannedField<'_>],
    object: &async_graphql::indexmap::IndexMap<async_graphql::Name, Value>,
    schema: &SchemaInfo,
) -> u64 {
    let mut cost = 0u64;
    for field in fields {
        let Some(value) = object.get(field.key) else {
            continue;
        };
        let name = field.name();
        if name == "__typename" {
            continue;
        }
        if matches!(name, "__schema" | "__type") {
            cost = cost.saturating_add(u64::from(!matches!(value, Value::Null)));
            continue;
        }
        if field.info.is_none() || field.branches.is_empty() {
            continue;
        }
        cost = cost.saturating_add(actual_items(field, value, schema));
    }
    cost
}

/// The cost of `value` (an object, or a list of them at any depth) for `field`.
fn actual_items(field: &PlannedField<'_>, value: &Value, schema: &SchemaInfo) -> u64 {
    match value {
        Value::Object(object) => {
            // The concrete type is not in the response: price the most expensive it may be.
            let inner = field
                .branches
                .iter()
                .map(|branch| actual_fields(&branch.fields, object, schema))
                .max()
                .unwrap_or(0);
            inner.saturating_add(1)
        }
        Value::List(items) => items.iter().fold(0u64, |sum, item| {
            sum.saturating_add(actual_items(field, item, schema))
        }),
        _ => 0,
    }
}

/// The cost figures of one response.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostReport {
    /// The cost computed before execution.
    pub requested: u64,
    /// The cost of what was returned.
    pub actual: u64,
    /// The client's bucket after this request (none when rate limiting is off).
    pub throttle: Option<Decision>,
}

impl CostReport {
    /// `{ requestedQueryCost actualQueryCost throttleStatus { maximumAvailable currentlyAvailable restoreRate } }`.
    pub fn to_value(&self) -> Value {
        let throttle = self.throttle.map_or(Value::Null, |decision| {
            object([
                ("maximumAvailable", number(decision.policy.capacity)),
                (
                    "currentlyAvailable",
                    number(decision.remaining.max(0.0).floor()),
                ),
                ("restoreRate", number(decision.policy.restore_per_second)),
            ])
        });
        object([
            ("requestedQueryCost", Value::from(self.requested)),
            ("actualQueryCost", Value::from(self.actual)),
            ("throttleStatus", throttle),
        ])
    }
}

fn number(value: f64) -> Value {
    if value.fract() == 0.0 && value.abs() < 9.0e15 {
        Value::from(value as i64)
    } else {
        Value::from(value)
    }
}

fn object<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Object(
        entries
            .into_iter()
            .map(|(key, value)| (async_graphql::Name::new(key), value))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::plan::Planner;

    const SDL: &str = r#"
        schema { query: Query mutation: Mutation }
        type Query { articles(first: Int): ArticleConnection! }
        type Mutation { act: Boolean }
        type Article { title: String! tags: [Tag!]! comments(first: Int): ArticleConnection! }
        type Tag { name: String! }
        type ArticleConnection { edges: [ArticleEdge!]! nodes: [Article!]! pageInfo: PageInfo! totalCount: Int! }
        type ArticleEdge { cursor: String! node: Article! }
        type PageInfo { hasNextPage: Boolean! }
    "#;

    fn requested(query: &str) -> u64 {
        let schema = SchemaInfo::from_sdl(SDL).expect("sdl");
        let document = async_graphql::parser::parse_query(query).expect("parses");
        let variables = Variables::default();
        let plan = Planner::new(&document, &variables, &schema)
            .plan(None)
            .expect("plan");
        measure(&plan, &variables, &schema)
            .expect("measures")
            .requested
    }

    #[test]
    fn connections_lists_and_edges_are_priced_by_their_size() {
        assert_eq!(requested("{ articles(first: 10) { nodes { title } } }"), 11);
        assert_eq!(
            requested("{ articles(first: 10) { edges { cursor node { title } } } }"),
            21
        );
        assert_eq!(
            requested("{ articles(first: 10) { pageInfo { hasNextPage } } }"),
            2
        );
        assert_eq!(
            requested("{ articles(first: 1) { nodes { tags { name } } } }"),
            1 + 21
        );
        assert_eq!(requested("mutation { act }"), MUTATION_COST);
    }

    #[test]
    fn repeated_fields_are_priced_once_and_costs_saturate() {
        let one = requested("{ articles(first: 100) { totalCount nodes { title } } }");
        let many = "{ articles(first: 100) { totalCount nodes { title } } } ".repeat(50);
        assert_eq!(requested(&many.replace("} } } {", "} } ")), one);
        let mut deep = String::from("{ title }");
        for _ in 0..12 {
            deep = format!("{{ comments(first: 100) {{ nodes {deep} }} }}");
        }
        let deep = format!("{{ articles(first: 100) {{ nodes {deep} }} }}");
        assert_eq!(requested(&deep), u64::MAX);
    }
}
