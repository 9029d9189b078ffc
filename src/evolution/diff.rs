//! Every change between two GraphQL schemas (SDL), classified breaking, dangerous or safe with
//! GraphQL Inspector's rules, each naming the schema coordinate it affects so that the clients
//! that used the coordinate can be looked up.
//!
//! Hand-written because no maintained Rust crate classifies schema changes: GraphQL Inspector is
//! JavaScript (CI still runs it on `schema.graphql` as a cross-check), and async-graphql's parser,
//! already a dependency, reads both schemas.

use std::collections::BTreeMap;
use std::ops::Range;

use async_graphql::Positioned;
use async_graphql::parser::parse_schema;
use async_graphql::parser::types::{
    BaseType, ConstDirective, DirectiveDefinition, DirectiveLocation, EnumValueDefinition,
    FieldDefinition, InputValueDefinition, SchemaDefinition, ServiceDocument, Type, TypeDefinition,
    TypeKind, TypeSystemDefinition,
};
use async_graphql_value::{ConstValue, Name};

/// How a change affects existing clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Criticality {
    /// Existing operations can fail or get different types.
    Breaking,
    /// Existing operations still run but can behave differently.
    Dangerous,
    /// Existing operations are not affected.
    Safe,
}

/// One change between two schemas.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    /// How the change affects existing clients.
    pub criticality: Criticality,
    /// What changed, for a person (e.g. "Field 'tagList' was removed from object type 'Article'").
    pub message: String,
    /// The schema coordinate affected: `Type`, `Type.field`, `Type.field(arg:)`, `Input.field`,
    /// `Enum.VALUE`, `@directive`.
    pub coordinate: String,
}

/// Why two schemas cannot be compared.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// A schema is not valid SDL.
    #[error("the {which} schema cannot be read: {message}")]
    Parse {
        /// Which schema: `old` or `new`.
        which: &'static str,
        /// The parser's message.
        message: String,
    },
}

/// Every change from `old` to `new`, breaking first, then dangerous, then safe, each group sorted
/// by coordinate then message.
///
/// # Errors
///
/// [`DiffError::Parse`] when either schema is not valid SDL.
pub fn diff(old: &str, new: &str) -> Result<Vec<Change>, DiffError> {
    let old_document = read("old", old)?;
    let new_document = read("new", new)?;
    let old_schema = Schema::of(&old_document);
    let new_schema = Schema::of(&new_document);
    let mut changes = Vec::new();
    diff_roots(&old_schema, &new_schema, &mut changes);
    diff_types(&old_schema, &new_schema, &mut changes);
    diff_directives(&old_schema, &new_schema, &mut changes);
    changes.sort_by(|a, b| {
        a.criticality
            .cmp(&b.criticality)
            .then_with(|| a.coordinate.cmp(&b.coordinate))
            .then_with(|| a.message.cmp(&b.message))
    });
    changes.dedup();
    Ok(changes)
}

/// Parses one schema; `which` names it in the error.
fn read(which: &'static str, sdl: &str) -> Result<ServiceDocument, DiffError> {
    parse_schema(without_schema_descriptions(sdl)).map_err(|error| DiffError::Parse {
        which,
        message: error.to_string(),
    })
}

/// The operation types, in the order of `Schema::roots`.
const OPERATIONS: [&str; 3] = ["query", "mutation", "subscription"];

/// The root type names used when the schema does not name them.
const DEFAULT_ROOTS: [&str; 3] = ["Query", "Mutation", "Subscription"];

/// The reason a bare `@deprecated` gives.
const DEFAULT_DEPRECATION_REASON: &str = "No longer supported";

/// The directives every schema has, whether or not its SDL defines them.
const BUILT_IN_DIRECTIVES: [&str; 5] = ["skip", "include", "deprecated", "specifiedBy", "oneOf"];

/// One schema, read for comparison (extensions merged into the types they extend).
struct Schema<'a> {
    /// The query, mutation and subscription root type names.
    roots: [&'a str; 3],
    /// The named types, except built-in scalars and introspection types.
    types: BTreeMap<&'a str, TypeDef<'a>>,
    /// The directive definitions.
    directives: BTreeMap<&'a str, &'a DirectiveDefinition>,
}

impl<'a> Schema<'a> {
    /// Reads `document`.
    fn of(document: &'a ServiceDocument) -> Self {
        let mut schema = Self {
            roots: DEFAULT_ROOTS,
            types: BTreeMap::new(),
            directives: BTreeMap::new(),
        };
        for definition in &document.definitions {
            match definition {
                TypeSystemDefinition::Schema(definition) => schema.add_roots(&definition.node),
                TypeSystemDefinition::Type(definition) => schema.add_type(&definition.node),
                TypeSystemDefinition::Directive(definition) => {
                    let directive = &definition.node;
                    schema
                        .directives
                        .insert(directive.name.node.as_str(), directive);
                }
            }
        }
        schema
    }

    /// Takes the root type names a schema definition (or extension) gives.
    fn add_roots(&mut self, definition: &'a SchemaDefinition) {
        let named = [
            &definition.query,
            &definition.mutation,
            &definition.subscription,
        ];
        for (root, name) in self.roots.iter_mut().zip(named) {
            if let Some(name) = name {
                *root = name.node.as_str();
            }
        }
    }

    /// Adds a type definition or extension.
    fn add_type(&mut self, definition: &'a TypeDefinition) {
        let name = definition.name.node.as_str();
        if is_built_in_type(name) {
            return;
        }
        self.types
            .entry(name)
            .or_insert_with(|| TypeDef::new(Kind::of(&definition.kind)))
            .merge(definition);
    }
}

/// Whether `name` is a built-in scalar or an introspection type, which every schema has.
fn is_built_in_type(name: &str) -> bool {
    name.starts_with("__") || matches!(name, "String" | "Int" | "Float" | "Boolean" | "ID")
}

/// A named type with its extensions merged.
struct TypeDef<'a> {
    kind: Kind,
    description: Option<&'a str>,
    /// The interfaces an object or interface implements.
    implements: Vec<&'a str>,
    /// The fields of an object or interface.
    fields: Vec<&'a FieldDefinition>,
    /// The fields of an input object.
    inputs: Vec<&'a InputValueDefinition>,
    /// The values of an enum.
    values: Vec<&'a EnumValueDefinition>,
    /// The members of a union.
    members: Vec<&'a str>,
}

impl<'a> TypeDef<'a> {
    /// An empty type of `kind`.
    fn new(kind: Kind) -> Self {
        Self {
            kind,
            description: None,
            implements: Vec::new(),
            fields: Vec::new(),
            inputs: Vec::new(),
            values: Vec::new(),
            members: Vec::new(),
        }
    }

    /// Adds what a definition or extension of the type declares.
    fn merge(&mut self, definition: &'a TypeDefinition) {
        if let Some(description) = &definition.description {
            self.description = Some(description.node.as_str());
        }
        match &definition.kind {
            TypeKind::Scalar => {}
            TypeKind::Object(object) => self.add_fields(&object.implements, &object.fields),
            TypeKind::Interface(interface) => {
                self.add_fields(&interface.implements, &interface.fields);
            }
            TypeKind::Union(members) => self
                .members
                .extend(members.members.iter().map(|member| member.node.as_str())),
            TypeKind::Enum(values) => self.values.extend(nodes(&values.values)),
            TypeKind::InputObject(input) => self.inputs.extend(nodes(&input.fields)),
        }
    }

    /// Adds the interfaces and fields of an object or interface.
    fn add_fields(
        &mut self,
        implements: &'a [Positioned<Name>],
        fields: &'a [Positioned<FieldDefinition>],
    ) {
        self.implements
            .extend(implements.iter().map(|name| name.node.as_str()));
        self.fields.extend(nodes(fields));
    }
}

/// The kind of a named type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Scalar,
    Object,
    Interface,
    Union,
    Enum,
    InputObject,
}

impl Kind {
    /// The kind of a parsed type.
    fn of(kind: &TypeKind) -> Self {
        match kind {
            TypeKind::Scalar => Self::Scalar,
            TypeKind::Object(_) => Self::Object,
            TypeKind::Interface(_) => Self::Interface,
            TypeKind::Union(_) => Self::Union,
            TypeKind::Enum(_) => Self::Enum,
            TypeKind::InputObject(_) => Self::InputObject,
        }
    }

    /// The kind's GraphQL AST name, as Inspector reports kind changes.
    fn definition(self) -> &'static str {
        match self {
            Self::Scalar => "ScalarTypeDefinition",
            Self::Object => "ObjectTypeDefinition",
            Self::Interface => "InterfaceTypeDefinition",
            Self::Union => "UnionTypeDefinition",
            Self::Enum => "EnumTypeDefinition",
            Self::InputObject => "InputObjectTypeDefinition",
        }
    }

    /// How field messages name a type of this kind.
    fn field_owner(self) -> &'static str {
        match self {
            Self::Interface => "interface",
            _ => "object type",
        }
    }
}

/// A definition with a name that stays the same between schemas.
trait Named {
    /// The name.
    fn name(&self) -> &str;
}

impl Named for FieldDefinition {
    fn name(&self) -> &str {
        self.name.node.as_str()
    }
}

impl Named for InputValueDefinition {
    fn name(&self) -> &str {
        self.name.node.as_str()
    }
}

impl Named for EnumValueDefinition {
    fn name(&self) -> &str {
        self.value.node.as_str()
    }
}

/// A definition in one schema or both, matched by name.
enum Pair<'a, T> {
    Removed(&'a T),
    Added(&'a T),
    Kept(&'a T, &'a T),
}

/// The definitions of `old` and `new` matched by name: removed, kept, then added.
fn pairs<'a, T: Named>(old: &[&'a T], new: &[&'a T]) -> Vec<Pair<'a, T>> {
    let mut pairs: Vec<Pair<'a, T>> = old
        .iter()
        .map(|&old_item| match find(new, old_item.name()) {
            Some(new_item) => Pair::Kept(old_item, new_item),
            None => Pair::Removed(old_item),
        })
        .collect();
    pairs.extend(
        new.iter()
            .filter(|new_item| find(old, new_item.name()).is_none())
            .map(|&new_item| Pair::Added(new_item)),
    );
    pairs
}

/// The definition named `name`.
fn find<'a, T: Named>(items: &[&'a T], name: &str) -> Option<&'a T> {
    items.iter().copied().find(|item| item.name() == name)
}

/// The nodes of positioned items.
fn nodes<T>(items: &[Positioned<T>]) -> Vec<&T> {
    items.iter().map(|item| &item.node).collect()
}

/// The text of a description.
fn text(description: Option<&Positioned<String>>) -> Option<&str> {
    description.map(|description| description.node.as_str())
}

/// The deprecation reason when `directives` deprecate the element.
fn deprecation(directives: &[Positioned<ConstDirective>]) -> Option<&str> {
    let directive = directives
        .iter()
        .find(|directive| directive.node.name.node == "deprecated")?;
    match directive
        .node
        .get_argument("reason")
        .map(|reason| &reason.node)
    {
        Some(ConstValue::String(reason)) => Some(reason.as_str()),
        _ => Some(DEFAULT_DEPRECATION_REASON),
    }
}

/// `(deprecated) ` when `directives` deprecate the element, as removal messages mark it.
fn deprecated_mark(directives: &[Positioned<ConstDirective>]) -> &'static str {
    if deprecation(directives).is_some() {
        "(deprecated) "
    } else {
        ""
    }
}

/// `text` with its first letter in lower case.
fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A change at `coordinate`.
fn change(criticality: Criticality, coordinate: String, message: String) -> Change {
    Change {
        criticality,
        message,
        coordinate,
    }
}

/// An element compared in both schemas: how messages name it, and its coordinate.
struct Element {
    /// The element as a message's subject, e.g. `Field 'Article.slug'`.
    subject: String,
    coordinate: String,
}

impl Element {
    /// A change to this element.
    fn change(&self, criticality: Criticality, message: String) -> Change {
        change(criticality, self.coordinate.clone(), message)
    }
}

/// Description changes: always safe.
fn diff_description(
    element: &Element,
    old: Option<&str>,
    new: Option<&str>,
    out: &mut Vec<Change>,
) {
    let subject = &element.subject;
    let message = match (old, new) {
        (None, Some(new)) => format!("{subject} has description '{new}'"),
        (Some(old), None) => {
            let subject = lower_first(subject);
            format!("Description '{old}' was removed from {subject}")
        }
        (Some(old), Some(new)) if old != new => {
            format!("{subject} description changed from '{old}' to '{new}'")
        }
        _ => return,
    };
    out.push(element.change(Criticality::Safe, message));
}

/// Deprecation changes (added, removed, reason changed): always safe.
fn diff_deprecation(
    element: &Element,
    old: Option<&str>,
    new: Option<&str>,
    out: &mut Vec<Change>,
) {
    let subject = &element.subject;
    let message = match (old, new) {
        (None, Some(reason)) => format!("{subject} is deprecated with reason '{reason}'"),
        (Some(_), None) => format!("{subject} is no longer deprecated"),
        (Some(old), Some(new)) if old != new => {
            let subject = lower_first(subject);
            format!("Deprecation reason on {subject} has changed from '{old}' to '{new}'")
        }
        _ => return,
    };
    out.push(element.change(Criticality::Safe, message));
}

/// Changes of the root operation types: breaking.
fn diff_roots(old: &Schema<'_>, new: &Schema<'_>, out: &mut Vec<Change>) {
    for ((operation, old_root), new_root) in OPERATIONS.into_iter().zip(old.roots).zip(new.roots) {
        if old_root != new_root {
            out.push(change(
                Criticality::Breaking,
                old_root.to_owned(),
                format!("Schema {operation} root has changed from '{old_root}' to '{new_root}'"),
            ));
        }
    }
}

/// Types removed (breaking), added (safe) and changed.
fn diff_types(old: &Schema<'_>, new: &Schema<'_>, out: &mut Vec<Change>) {
    for (&name, old_type) in &old.types {
        match new.types.get(name) {
            Some(new_type) => diff_type(name, old_type, new_type, out),
            None => out.push(change(
                Criticality::Breaking,
                name.to_owned(),
                format!("Type '{name}' was removed"),
            )),
        }
    }
    for &name in new.types.keys() {
        if !old.types.contains_key(name) {
            out.push(change(
                Criticality::Safe,
                name.to_owned(),
                format!("Type '{name}' was added"),
            ));
        }
    }
}

/// The changes of a type in both schemas.
fn diff_type(name: &str, old: &TypeDef<'_>, new: &TypeDef<'_>, out: &mut Vec<Change>) {
    let element = Element {
        subject: format!("Type '{name}'"),
        coordinate: name.to_owned(),
    };
    diff_description(&element, old.description, new.description, out);
    if old.kind != new.kind {
        let (old_kind, new_kind) = (old.kind.definition(), new.kind.definition());
        out.push(element.change(
            Criticality::Breaking,
            format!("'{name}' kind changed from '{old_kind}' to '{new_kind}'"),
        ));
        return;
    }
    match new.kind {
        Kind::Object | Kind::Interface => {
            diff_interfaces(name, &old.implements, &new.implements, out);
            diff_fields(name, new.kind, &old.fields, &new.fields, out);
        }
        Kind::InputObject => diff_input_values(Owner::Input(name), &old.inputs, &new.inputs, out),
        Kind::Enum => diff_enum_values(name, &old.values, &new.values, out),
        Kind::Union => diff_members(name, &old.members, &new.members, out),
        Kind::Scalar => {}
    }
}

/// The items of `items` that `other` does not have.
fn missing<T: Copy + PartialEq>(items: &[T], other: &[T]) -> Vec<T> {
    items
        .iter()
        .copied()
        .filter(|item| !other.contains(item))
        .collect()
}

/// Interfaces an object or interface stopped implementing (breaking) or started (dangerous).
fn diff_interfaces(name: &str, old: &[&str], new: &[&str], out: &mut Vec<Change>) {
    for interface in missing(old, new) {
        out.push(change(
            Criticality::Breaking,
            name.to_owned(),
            format!("'{name}' object type no longer implements '{interface}' interface"),
        ));
    }
    for interface in missing(new, old) {
        out.push(change(
            Criticality::Dangerous,
            name.to_owned(),
            format!("'{name}' object implements '{interface}' interface"),
        ));
    }
}

/// Union members removed (breaking) or added (dangerous).
fn diff_members(name: &str, old: &[&str], new: &[&str], out: &mut Vec<Change>) {
    for member in missing(old, new) {
        out.push(change(
            Criticality::Breaking,
            name.to_owned(),
            format!("Member '{member}' was removed from Union type '{name}'"),
        ));
    }
    for member in missing(new, old) {
        out.push(change(
            Criticality::Dangerous,
            name.to_owned(),
            format!("Member '{member}' was added to Union type '{name}'"),
        ));
    }
}

/// Fields of an object or interface removed (breaking), added (safe) and changed.
fn diff_fields(
    type_name: &str,
    kind: Kind,
    old: &[&FieldDefinition],
    new: &[&FieldDefinition],
    out: &mut Vec<Change>,
) {
    let owner = kind.field_owner();
    for pair in pairs(old, new) {
        match pair {
            Pair::Removed(field) => {
                let name = field.name();
                let mark = deprecated_mark(&field.directives);
                out.push(change(
                    Criticality::Breaking,
                    format!("{type_name}.{name}"),
                    format!("Field '{name}' {mark}was removed from {owner} '{type_name}'"),
                ));
            }
            Pair::Added(field) => {
                let name = field.name();
                out.push(change(
                    Criticality::Safe,
                    format!("{type_name}.{name}"),
                    format!("Field '{name}' was added to {owner} '{type_name}'"),
                ));
            }
            Pair::Kept(old_field, new_field) => diff_field(type_name, old_field, new_field, out),
        }
    }
}

/// The changes of a field in both schemas.
fn diff_field(
    type_name: &str,
    old: &FieldDefinition,
    new: &FieldDefinition,
    out: &mut Vec<Change>,
) {
    let name = new.name();
    let element = Element {
        subject: format!("Field '{type_name}.{name}'"),
        coordinate: format!("{type_name}.{name}"),
    };
    let (old_description, new_description) = (
        text(old.description.as_ref()),
        text(new.description.as_ref()),
    );
    diff_description(&element, old_description, new_description, out);
    let (old_reason, new_reason) = (deprecation(&old.directives), deprecation(&new.directives));
    diff_deprecation(&element, old_reason, new_reason, out);
    let (old_type, new_type) = (&old.ty.node, &new.ty.node);
    if old_type != new_type {
        let criticality = if safe_for_output(old_type, new_type) {
            Criticality::Safe
        } else {
            Criticality::Breaking
        };
        let subject = &element.subject;
        out.push(element.change(
            criticality,
            format!("{subject} changed type from '{old_type}' to '{new_type}'"),
        ));
    }
    let owner = Owner::Field(type_name, name);
    diff_input_values(owner, &nodes(&old.arguments), &nodes(&new.arguments), out);
}

/// Enum values removed (breaking), added (dangerous) and changed.
fn diff_enum_values(
    enum_name: &str,
    old: &[&EnumValueDefinition],
    new: &[&EnumValueDefinition],
    out: &mut Vec<Change>,
) {
    for pair in pairs(old, new) {
        match pair {
            Pair::Removed(value) => {
                let name = value.name();
                let mark = deprecated_mark(&value.directives);
                out.push(change(
                    Criticality::Breaking,
                    format!("{enum_name}.{name}"),
                    format!("Enum value '{name}' {mark}was removed from enum '{enum_name}'"),
                ));
            }
            Pair::Added(value) => {
                let name = value.name();
                out.push(change(
                    Criticality::Dangerous,
                    format!("{enum_name}.{name}"),
                    format!("Enum value '{name}' was added to enum '{enum_name}'"),
                ));
            }
            Pair::Kept(old_value, new_value) => {
                diff_enum_value(enum_name, old_value, new_value, out);
            }
        }
    }
}

/// The changes of an enum value in both schemas: description and deprecation, all safe.
fn diff_enum_value(
    enum_name: &str,
    old: &EnumValueDefinition,
    new: &EnumValueDefinition,
    out: &mut Vec<Change>,
) {
    let name = new.name();
    let element = Element {
        subject: format!("Enum value '{enum_name}.{name}'"),
        coordinate: format!("{enum_name}.{name}"),
    };
    let (old_description, new_description) = (
        text(old.description.as_ref()),
        text(new.description.as_ref()),
    );
    diff_description(&element, old_description, new_description, out);
    let (old_reason, new_reason) = (deprecation(&old.directives), deprecation(&new.directives));
    diff_deprecation(&element, old_reason, new_reason, out);
}

/// Where input values are defined: a field's arguments, an input object's fields or a
/// directive's arguments.
#[derive(Clone, Copy)]
enum Owner<'a> {
    /// The arguments of a field: type name and field name.
    Field(&'a str, &'a str),
    /// The fields of an input object.
    Input(&'a str),
    /// The arguments of a directive.
    Directive(&'a str),
}

impl Owner<'_> {
    /// The input value `name` of this owner.
    fn element(self, name: &str) -> Element {
        match self {
            Self::Field(type_name, field) => Element {
                subject: format!("Argument '{name}' on field '{type_name}.{field}'"),
                coordinate: format!("{type_name}.{field}({name}:)"),
            },
            Self::Input(input) => Element {
                subject: format!("Input field '{input}.{name}'"),
                coordinate: format!("{input}.{name}"),
            },
            Self::Directive(directive) => Element {
                subject: format!("Argument '{name}' on directive '{directive}'"),
                coordinate: format!("@{directive}({name}:)"),
            },
        }
    }
}

/// Arguments or input fields removed, added and changed.
fn diff_input_values(
    owner: Owner<'_>,
    old: &[&InputValueDefinition],
    new: &[&InputValueDefinition],
    out: &mut Vec<Change>,
) {
    for pair in pairs(old, new) {
        match pair {
            Pair::Removed(value) => out.push(input_value_removed(owner, value)),
            Pair::Added(value) => out.push(input_value_added(owner, value)),
            Pair::Kept(old_value, new_value) => {
                diff_input_value(owner, old_value, new_value, out);
            }
        }
    }
}

/// A removed argument or input field: breaking.
fn input_value_removed(owner: Owner<'_>, value: &InputValueDefinition) -> Change {
    let name = value.name();
    let ty = &value.ty.node;
    let message = match owner {
        Owner::Field(type_name, field) => {
            format!("Argument '{name}: {ty}' was removed from field '{type_name}.{field}'")
        }
        Owner::Input(input) => {
            let mark = deprecated_mark(&value.directives);
            format!("Input field '{name}' {mark}was removed from input object type '{input}'")
        }
        Owner::Directive(directive) => {
            format!("Argument '{name}' was removed from directive '{directive}'")
        }
    };
    owner.element(name).change(Criticality::Breaking, message)
}

/// An added argument or input field: breaking when required (non-null without a default),
/// otherwise dangerous (safe for a directive's argument).
fn input_value_added(owner: Owner<'_>, value: &InputValueDefinition) -> Change {
    let name = value.name();
    let ty = &value.ty.node;
    let required = !ty.nullable && value.default_value.is_none();
    let optional = if matches!(owner, Owner::Directive(_)) {
        Criticality::Safe
    } else {
        Criticality::Dangerous
    };
    let criticality = if required {
        Criticality::Breaking
    } else {
        optional
    };
    let default = value.default_value.as_ref().map(|default| &default.node);
    let message = match owner {
        Owner::Field(type_name, field) => {
            let with_default = if default.is_some() {
                " (with default value)"
            } else {
                ""
            };
            format!("Argument '{name}: {ty}'{with_default} added to field '{type_name}.{field}'")
        }
        Owner::Input(input) => {
            let with_default = default
                .map(|default| format!(" with default value '{default}'"))
                .unwrap_or_default();
            format!(
                "Input field '{name}' of type '{ty}'{with_default} was added to input object type \
                 '{input}'"
            )
        }
        Owner::Directive(directive) => {
            format!("Argument '{name}' was added to directive '{directive}'")
        }
    };
    owner.element(name).change(criticality, message)
}

/// The changes of an argument or input field in both schemas.
fn diff_input_value(
    owner: Owner<'_>,
    old: &InputValueDefinition,
    new: &InputValueDefinition,
    out: &mut Vec<Change>,
) {
    let element = owner.element(new.name());
    let (old_description, new_description) = (
        text(old.description.as_ref()),
        text(new.description.as_ref()),
    );
    diff_description(&element, old_description, new_description, out);
    let (old_reason, new_reason) = (deprecation(&old.directives), deprecation(&new.directives));
    diff_deprecation(&element, old_reason, new_reason, out);
    diff_input_type(owner, &element, &old.ty.node, &new.ty.node, out);
    let (old_default, new_default) = (default_of(old), default_of(new));
    diff_default(&element, old_default, new_default, out);
}

/// A changed type of an argument or input field: safe when only made nullable, else breaking.
fn diff_input_type(
    owner: Owner<'_>,
    element: &Element,
    old: &Type,
    new: &Type,
    out: &mut Vec<Change>,
) {
    if old == new {
        return;
    }
    let criticality = if safe_for_input(old, new) {
        Criticality::Safe
    } else {
        Criticality::Breaking
    };
    let message = match owner {
        Owner::Input(_) => {
            let subject = &element.subject;
            format!("{subject} changed type from '{old}' to '{new}'")
        }
        Owner::Field(..) | Owner::Directive(_) => {
            let subject = lower_first(&element.subject);
            format!("Type for {subject} changed from '{old}' to '{new}'")
        }
    };
    out.push(element.change(criticality, message));
}

/// The default value of an argument or input field, as SDL.
fn default_of(value: &InputValueDefinition) -> Option<String> {
    value
        .default_value
        .as_ref()
        .map(|default| default.node.to_string())
}

/// A default value added, removed or changed: dangerous.
fn diff_default(
    element: &Element,
    old: Option<String>,
    new: Option<String>,
    out: &mut Vec<Change>,
) {
    let subject = lower_first(&element.subject);
    let message = match (old, new) {
        (None, Some(new)) => format!("Default value '{new}' was added to {subject}"),
        (Some(old), None) => format!("Default value '{old}' was removed from {subject}"),
        (Some(old), Some(new)) if old != new => {
            format!("Default value for {subject} changed from '{old}' to '{new}'")
        }
        _ => return,
    };
    out.push(element.change(Criticality::Dangerous, message));
}

/// Whether clients reading a field of type `old` can read `new`: the same named type, made
/// non-null at any level (`String` to `String!`, `[String]` to `[String!]`).
fn safe_for_output(old: &Type, new: &Type) -> bool {
    (old.nullable || !new.nullable) && same_shape(&old.base, &new.base, safe_for_output)
}

/// Whether values clients send as `old` are accepted as `new`: the same named type, made
/// nullable at any level (`String!` to `String`).
fn safe_for_input(old: &Type, new: &Type) -> bool {
    (new.nullable || !old.nullable) && same_shape(&old.base, &new.base, safe_for_input)
}

/// Whether two base types are the same named type, or lists whose items pass `items`.
fn same_shape(old: &BaseType, new: &BaseType, items: fn(&Type, &Type) -> bool) -> bool {
    match (old, new) {
        (BaseType::Named(old), BaseType::Named(new)) => old == new,
        (BaseType::List(old), BaseType::List(new)) => items(old, new),
        _ => false,
    }
}

/// Directives removed (breaking), added (safe) and changed. A built-in directive that only one
/// SDL spells out is in both schemas.
fn diff_directives(old: &Schema<'_>, new: &Schema<'_>, out: &mut Vec<Change>) {
    for (&name, old_directive) in &old.directives {
        match new.directives.get(name) {
            Some(new_directive) => diff_directive(old_directive, new_directive, out),
            None if BUILT_IN_DIRECTIVES.contains(&name) => {}
            None => out.push(change(
                Criticality::Breaking,
                format!("@{name}"),
                format!("Directive '{name}' was removed"),
            )),
        }
    }
    for &name in new.directives.keys() {
        if !old.directives.contains_key(name) && !BUILT_IN_DIRECTIVES.contains(&name) {
            out.push(change(
                Criticality::Safe,
                format!("@{name}"),
                format!("Directive '{name}' was added"),
            ));
        }
    }
}

/// The changes of a directive in both schemas.
fn diff_directive(old: &DirectiveDefinition, new: &DirectiveDefinition, out: &mut Vec<Change>) {
    let name = new.name.node.as_str();
    let element = Element {
        subject: format!("Directive '{name}'"),
        coordinate: format!("@{name}"),
    };
    let (old_description, new_description) = (
        text(old.description.as_ref()),
        text(new.description.as_ref()),
    );
    diff_description(&element, old_description, new_description, out);
    if old.is_repeatable != new.is_repeatable {
        let (criticality, message) = if new.is_repeatable {
            (
                Criticality::Safe,
                format!("Directive '{name}' added repeatable."),
            )
        } else {
            (
                Criticality::Dangerous,
                format!("Directive '{name}' removed repeatable."),
            )
        };
        out.push(element.change(criticality, message));
    }
    diff_locations(&element, name, old, new, out);
    let owner = Owner::Directive(name);
    diff_input_values(owner, &nodes(&old.arguments), &nodes(&new.arguments), out);
}

/// Directive locations removed (breaking) or added (safe).
fn diff_locations(
    element: &Element,
    name: &str,
    old: &DirectiveDefinition,
    new: &DirectiveDefinition,
    out: &mut Vec<Change>,
) {
    let old_locations: Vec<DirectiveLocation> = old.locations.iter().map(|l| l.node).collect();
    let new_locations: Vec<DirectiveLocation> = new.locations.iter().map(|l| l.node).collect();
    for location in missing(&old_locations, &new_locations) {
        let location = location_name(location);
        out.push(element.change(
            Criticality::Breaking,
            format!("Location '{location}' was removed from directive '{name}'"),
        ));
    }
    for location in missing(&new_locations, &old_locations) {
        let location = location_name(location);
        out.push(element.change(
            Criticality::Safe,
            format!("Location '{location}' was added to directive '{name}'"),
        ));
    }
}

/// A directive location as SDL spells it.
fn location_name(location: DirectiveLocation) -> &'static str {
    match location {
        DirectiveLocation::Query => "QUERY",
        DirectiveLocation::Mutation => "MUTATION",
        DirectiveLocation::Subscription => "SUBSCRIPTION",
        DirectiveLocation::Field => "FIELD",
        DirectiveLocation::FragmentDefinition => "FRAGMENT_DEFINITION",
        DirectiveLocation::FragmentSpread => "FRAGMENT_SPREAD",
        DirectiveLocation::InlineFragment => "INLINE_FRAGMENT",
        DirectiveLocation::VariableDefinition => "VARIABLE_DEFINITION",
        DirectiveLocation::Schema => "SCHEMA",
        DirectiveLocation::Scalar => "SCALAR",
        DirectiveLocation::Object => "OBJECT",
        DirectiveLocation::FieldDefinition => "FIELD_DEFINITION",
        DirectiveLocation::ArgumentDefinition => "ARGUMENT_DEFINITION",
        DirectiveLocation::Interface => "INTERFACE",
        DirectiveLocation::Union => "UNION",
        DirectiveLocation::Enum => "ENUM",
        DirectiveLocation::EnumValue => "ENUM_VALUE",
        DirectiveLocation::InputObject => "INPUT_OBJECT",
        DirectiveLocation::InputFieldDefinition => "INPUT_FIELD_DEFINITION",
    }
}

/// `sdl` with the descriptions of schema definitions blanked out (line breaks kept, so parse
/// errors point at the right lines): the GraphQL specification allows them, async-graphql's
/// parser does not, and Inspector does not compare them.
fn without_schema_descriptions(sdl: &str) -> String {
    let mut out = String::with_capacity(sdl.len());
    let mut copied = 0;
    for range in schema_descriptions(sdl.as_bytes()) {
        out.push_str(&sdl[copied..range.start]);
        out.extend(sdl[range.start..range.end].chars().map(|c| match c {
            '\n' | '\r' => c,
            _ => ' ',
        }));
        copied = range.end;
    }
    out.push_str(&sdl[copied..]);
    out
}

/// The byte ranges of the strings that describe a schema definition: top-level strings followed
/// by the `schema` keyword and then `{` or `@`.
fn schema_descriptions(bytes: &[u8]) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut depth = 0_usize;
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'#' => at = line_end(bytes, at),
            b'"' => {
                let end = string_end(bytes, at);
                if depth == 0 && starts_schema_definition(bytes, end) {
                    ranges.push(at..end);
                }
                at = end;
            }
            b'{' | b'(' | b'[' => {
                depth += 1;
                at += 1;
            }
            b'}' | b')' | b']' => {
                depth = depth.saturating_sub(1);
                at += 1;
            }
            _ => at += 1,
        }
    }
    ranges
}

/// The end of the line (or comment) starting at `from`.
fn line_end(bytes: &[u8], from: usize) -> usize {
    bytes[from..]
        .iter()
        .position(|&b| b == b'\n' || b == b'\r')
        .map_or(bytes.len(), |offset| from + offset)
}

/// The index just past the string (block or quoted) starting at `start`; an unterminated string
/// ends at the end of its line or of the input, for the parser to report.
fn string_end(bytes: &[u8], start: usize) -> usize {
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
        return bytes.len();
    }
    let mut at = start + 1;
    while at < bytes.len() {
        match bytes[at] {
            b'\\' => at += 2,
            b'"' => return at + 1,
            b'\n' | b'\r' => return at,
            _ => at += 1,
        }
    }
    bytes.len()
}

/// Whether a schema definition (`schema {` or `schema @`) starts at `from`, after ignored tokens.
fn starts_schema_definition(bytes: &[u8], from: usize) -> bool {
    let start = skip_ignored(bytes, from);
    if !bytes
        .get(start..)
        .is_some_and(|rest| rest.starts_with(b"schema"))
    {
        return false;
    }
    let after = start + b"schema".len();
    if bytes
        .get(after)
        .is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return false;
    }
    matches!(bytes.get(skip_ignored(bytes, after)), Some(b'{' | b'@'))
}

/// The index of the first token at or after `from` that is not white space, a comma or a comment.
fn skip_ignored(bytes: &[u8], from: usize) -> usize {
    let mut at = from;
    while at < bytes.len() {
        match bytes[at] {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => at += 1,
            b'#' => at = line_end(bytes, at),
            _ => break,
        }
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The changes from `old` to `new`, which must both parse.
    fn changes(old: &str, new: &str) -> Vec<Change> {
        diff(old, new).expect("both schemas parse")
    }

    fn change_at(criticality: Criticality, coordinate: &str, message: &str) -> Change {
        Change {
            criticality,
            message: message.to_owned(),
            coordinate: coordinate.to_owned(),
        }
    }

    const ARTICLE: &str = "type Query { article: Article }
        type Article { title: String! tagList: [String!]! }";

    #[test]
    fn a_removed_field_is_breaking() {
        let new = "type Query { article: Article } type Article { title: String! }";
        assert_eq!(
            changes(ARTICLE, new),
            vec![change_at(
                Criticality::Breaking,
                "Article.tagList",
                "Field 'tagList' was removed from object type 'Article'",
            )]
        );
    }

    #[test]
    fn a_removed_deprecated_field_is_marked() {
        let old = "type Query { a: Int @deprecated(reason: \"Use b.\") b: Int }";
        let new = "type Query { b: Int }";
        assert_eq!(
            changes(old, new),
            vec![change_at(
                Criticality::Breaking,
                "Query.a",
                "Field 'a' (deprecated) was removed from object type 'Query'",
            )]
        );
    }

    #[test]
    fn an_added_field_is_safe() {
        let new = "type Query { article: Article }
            type Article { title: String! tagList: [String!]! slug: String! }";
        assert_eq!(
            changes(ARTICLE, new),
            vec![change_at(
                Criticality::Safe,
                "Article.slug",
                "Field 'slug' was added to object type 'Article'",
            )]
        );
    }

    #[test]
    fn an_argument_type_changed_to_another_type_is_breaking() {
        let old = "type Query { articles(first: Int): [String] }";
        let new = "type Query { articles(first: String): [String] }";
        assert_eq!(
            changes(old, new),
            vec![change_at(
                Criticality::Breaking,
                "Query.articles(first:)",
                concat!(
                    "Type for argument 'first' on field 'Query.articles' ",
                    "changed from 'Int' to 'String'"
                ),
            )]
        );
    }

    #[test]
    fn an_argument_made_nullable_is_safe() {
        let old = "type Query { articles(first: Int!): [String] }";
        let new = "type Query { articles(first: Int): [String] }";
        assert_eq!(
            changes(old, new),
            vec![change_at(
                Criticality::Safe,
                "Query.articles(first:)",
                "Type for argument 'first' on field 'Query.articles' changed from 'Int!' to 'Int'",
            )]
        );
        assert_eq!(changes(new, old)[0].criticality, Criticality::Breaking);
    }

    #[test]
    fn a_new_required_argument_is_breaking() {
        let old = "type Query { a: Int }";
        let new = "type Query { a(x: Int!): Int }";
        assert_eq!(
            changes(old, new),
            vec![change_at(
                Criticality::Breaking,
                "Query.a(x:)",
                "Argument 'x: Int!' added to field 'Query.a'",
            )]
        );
    }

    #[test]
    fn a_new_optional_argument_is_dangerous() {
        let old = "type Query { a: Int }";
        assert_eq!(
            changes(old, "type Query { a(x: Int): Int }"),
            vec![change_at(
                Criticality::Dangerous,
                "Query.a(x:)",
                "Argument 'x: Int' added to field 'Query.a'",
            )]
        );
        assert_eq!(
            changes(old, "type Query { a(x: Int! = 1): Int }"),
            vec![change_at(
                Criticality::Dangerous,
                "Query.a(x:)",
                "Argument 'x: Int!' (with default value) added to field 'Query.a'",
            )]
        );
    }

    #[test]
    fn a_removed_argument_is_breaking() {
        let old = "type Query { a(x: Int): Int }";
        let new = "type Query { a: Int }";
        assert_eq!(
            changes(old, new),
            vec![change_at(
                Criticality::Breaking,
                "Query.a(x:)",
                "Argument 'x: Int' was removed from field 'Query.a'",
            )]
        );
    }

    #[test]
    fn a_changed_default_value_is_dangerous() {
        let old = "type Query { a(x: Int = 10): Int }";
        let new = "type Query { a(x: Int = 20): Int }";
        assert_eq!(
            changes(old, new),
            vec![change_at(
                Criticality::Dangerous,
                "Query.a(x:)",
                "Default value for argument 'x' on field 'Query.a' changed from '10' to '20'",
            )]
        );
    }

    const STATUS: &str = "type Query { status: Status } enum Status { DRAFT PUBLISHED }";

    #[test]
    fn a_removed_enum_value_is_breaking() {
        let new = "type Query { status: Status } enum Status { PUBLISHED }";
        assert_eq!(
            changes(STATUS, new),
            vec![change_at(
                Criticality::Breaking,
                "Status.DRAFT",
                "Enum value 'DRAFT' was removed from enum 'Status'",
            )]
        );
    }

    #[test]
    fn an_added_enum_value_is_dangerous() {
        let new = "type Query { status: Status } enum Status { DRAFT PUBLISHED ARCHIVED }";
        assert_eq!(
            changes(STATUS, new),
            vec![change_at(
                Criticality::Dangerous,
                "Status.ARCHIVED",
                "Enum value 'ARCHIVED' was added to enum 'Status'",
            )]
        );
    }

    #[test]
    fn a_field_made_non_null_is_safe_and_made_nullable_is_breaking() {
        let nullable = "type Query { a: String }";
        let non_null = "type Query { a: String! }";
        assert_eq!(
            changes(nullable, non_null),
            vec![change_at(
                Criticality::Safe,
                "Query.a",
                "Field 'Query.a' changed type from 'String' to 'String!'",
            )]
        );
        assert_eq!(
            changes(non_null, nullable),
            vec![change_at(
                Criticality::Breaking,
                "Query.a",
                "Field 'Query.a' changed type from 'String!' to 'String'",
            )]
        );
    }

    #[test]
    fn list_items_follow_the_output_rule() {
        let criticality = |old: &str, new: &str| {
            let old = format!("type Query {{ a: {old} }}");
            let new = format!("type Query {{ a: {new} }}");
            changes(&old, &new)[0].criticality
        };
        assert_eq!(criticality("[String]", "[String!]"), Criticality::Safe);
        assert_eq!(criticality("[String]", "[String!]!"), Criticality::Safe);
        assert_eq!(criticality("[String!]", "[String]"), Criticality::Breaking);
        assert_eq!(criticality("[String]", "String"), Criticality::Breaking);
        assert_eq!(criticality("String", "Int"), Criticality::Breaking);
    }

    #[test]
    fn a_removed_type_is_breaking() {
        let old = "type Query { a: Int } type Tag { name: String }";
        let new = "type Query { a: Int }";
        assert_eq!(
            changes(old, new),
            vec![change_at(
                Criticality::Breaking,
                "Tag",
                "Type 'Tag' was removed"
            )]
        );
        assert_eq!(
            changes(new, old),
            vec![change_at(Criticality::Safe, "Tag", "Type 'Tag' was added")]
        );
    }

    #[test]
    fn a_changed_kind_is_breaking() {
        let old = "type Query { a: Node } type Node { id: ID! }";
        let new = "type Query { a: Node } interface Node { id: ID! }";
        assert_eq!(
            changes(old, new),
            vec![change_at(
                Criticality::Breaking,
                "Node",
                "'Node' kind changed from 'ObjectTypeDefinition' to 'InterfaceTypeDefinition'",
            )]
        );
    }

    #[test]
    fn input_fields_follow_the_input_rules() {
        let old = "type Query { a(i: I): Int } input I { a: Int = 1 }";
        let new = "type Query { a(i: I): Int } input I { a: Int = 2 b: Int! c: String }";
        assert_eq!(
            changes(old, new),
            vec![
                change_at(
                    Criticality::Breaking,
                    "I.b",
                    "Input field 'b' of type 'Int!' was added to input object type 'I'",
                ),
                change_at(
                    Criticality::Dangerous,
                    "I.a",
                    "Default value for input field 'I.a' changed from '1' to '2'",
                ),
                change_at(
                    Criticality::Dangerous,
                    "I.c",
                    "Input field 'c' of type 'String' was added to input object type 'I'",
                ),
            ]
        );
    }

    #[test]
    fn union_members_and_interfaces() {
        let old = "type Query { s: S } union S = A | B interface N { id: ID }
            type A implements N { id: ID } type B { id: ID }";
        let new = "type Query { s: S } union S = A | C interface N { id: ID }
            type A { id: ID } type B implements N { id: ID } type C { id: ID }";
        assert_eq!(
            changes(old, new),
            vec![
                change_at(
                    Criticality::Breaking,
                    "A",
                    "'A' object type no longer implements 'N' interface",
                ),
                change_at(
                    Criticality::Breaking,
                    "S",
                    "Member 'B' was removed from Union type 'S'",
                ),
                change_at(
                    Criticality::Dangerous,
                    "B",
                    "'B' object implements 'N' interface"
                ),
                change_at(
                    Criticality::Dangerous,
                    "S",
                    "Member 'C' was added to Union type 'S'",
                ),
                change_at(Criticality::Safe, "C", "Type 'C' was added"),
            ]
        );
    }

    #[test]
    fn directive_changes() {
        let old = "type Query { a: Int } directive @d(a: Int) on FIELD | QUERY";
        let new = "type Query { a: Int } directive @d(b: Int!) on FIELD | MUTATION
            directive @e on FIELD";
        assert_eq!(
            changes(old, new),
            vec![
                change_at(
                    Criticality::Breaking,
                    "@d",
                    "Location 'QUERY' was removed from directive 'd'",
                ),
                change_at(
                    Criticality::Breaking,
                    "@d(a:)",
                    "Argument 'a' was removed from directive 'd'",
                ),
                change_at(
                    Criticality::Breaking,
                    "@d(b:)",
                    "Argument 'b' was added to directive 'd'",
                ),
                change_at(
                    Criticality::Safe,
                    "@d",
                    "Location 'MUTATION' was added to directive 'd'",
                ),
                change_at(Criticality::Safe, "@e", "Directive 'e' was added"),
            ]
        );
    }

    #[test]
    fn deprecations_are_safe() {
        let old = "type Query { a: Int }";
        let new = "type Query { a: Int @deprecated(reason: \"Use b.\") }";
        assert_eq!(
            changes(old, new),
            vec![change_at(
                Criticality::Safe,
                "Query.a",
                "Field 'Query.a' is deprecated with reason 'Use b.'",
            )]
        );
        assert_eq!(
            changes(new, old),
            vec![change_at(
                Criticality::Safe,
                "Query.a",
                "Field 'Query.a' is no longer deprecated",
            )]
        );
    }

    #[test]
    fn a_changed_root_is_breaking_and_a_schema_description_is_ignored() {
        let old = "\"\"\"\nThe schema.\n\"\"\"\nschema { query: Root } type Root { a: Int }";
        let new = "type Query { a: Int }";
        assert_eq!(
            changes(old, new),
            vec![
                change_at(
                    Criticality::Breaking,
                    "Root",
                    "Schema query root has changed from 'Root' to 'Query'",
                ),
                change_at(Criticality::Breaking, "Root", "Type 'Root' was removed"),
                change_at(Criticality::Safe, "Query", "Type 'Query' was added"),
            ]
        );
    }

    #[test]
    fn schema_descriptions_are_blanked_and_other_strings_kept() {
        let rest = "schema { query: Q }\n\"\"\"t\"\"\" type Q { a(x: String = \"schema\"): Int }";
        assert_eq!(
            without_schema_descriptions(&format!("\"d\" {rest}")),
            format!("    {rest}")
        );
    }

    #[test]
    fn an_unreadable_schema_is_an_error() {
        let valid = "type Query { a: Int }";
        assert!(matches!(
            diff("type Query {", valid),
            Err(DiffError::Parse { which: "old", .. })
        ));
        assert!(matches!(
            diff(valid, "type Query { a: }"),
            Err(DiffError::Parse { which: "new", .. })
        ));
    }

    #[test]
    fn identical_schemas_have_no_changes() {
        assert_eq!(changes(ARTICLE, ARTICLE), Vec::new());
        let committed = include_str!("../../schema.graphql");
        assert_eq!(changes(committed, committed), Vec::new());
    }

    #[test]
    fn the_released_schema_can_be_compared_with_the_committed_one() {
        let released = include_str!("../../tests/contract/released.graphql");
        let committed = include_str!("../../schema.graphql");
        assert!(diff(released, committed).is_ok());
    }
}
