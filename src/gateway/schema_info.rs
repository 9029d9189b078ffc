//! What the gateway knows of the schema, read from its SDL (and the introspection types of the
//! GraphQL specification): each type's kind, fields, field types and possible types.

use std::collections::HashMap;

use async_graphql::Value;
use async_graphql::parser::types::{
    BaseType, ServiceDocument, Type, TypeKind, TypeSystemDefinition,
};

/// The kind of a named type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An object type.
    Object,
    /// An interface.
    Interface,
    /// A union.
    Union,
    /// A scalar, enum or input type: no selection.
    Leaf,
}

/// One field of an object or interface.
#[derive(Debug, Clone)]
pub struct FieldInfo {
    /// The declared type, with its list and non-null wrappers.
    pub ty: Type,
    /// The named type inside the wrappers.
    pub named: String,
    /// Whether the type is a list (at any level).
    pub list: bool,
    /// The reason, when the field is deprecated.
    pub deprecation: Option<String>,
    /// The arguments that have a default value.
    pub defaults: Vec<(String, Value)>,
    /// Every argument: its name and the named type inside its wrappers.
    pub arguments: Vec<(String, String)>,
}

/// One named type.
#[derive(Debug, Clone)]
pub struct TypeInfo {
    /// Its kind.
    pub kind: Kind,
    /// Its fields (objects and interfaces).
    pub fields: HashMap<String, FieldInfo>,
    /// The object types it may be (itself for an object; implementors or members otherwise).
    pub possible: Vec<String>,
    /// The fields of an input object: name and named type.
    pub input_fields: Vec<(String, String)>,
    /// Whether it is an enum.
    pub is_enum: bool,
}

/// The schema, as far as planning and pricing need it.
#[derive(Debug, Clone)]
pub struct SchemaInfo {
    types: HashMap<String, TypeInfo>,
    /// The query root type.
    pub query: String,
    /// The mutation root type.
    pub mutation: String,
    /// The subscription root type.
    pub subscription: String,
    typename: FieldInfo,
    hints: HashMap<String, TypeHints>,
}

/// The cache hints of one type and of its fields.
#[derive(Debug, Clone, Default)]
struct TypeHints {
    own: Option<Hint>,
    fields: HashMap<String, Hint>,
}

/// A cache hint: seconds fresh (0: says nothing) and whether anyone may see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hint {
    /// Seconds fresh; 0 says nothing, -1 forbids caching.
    pub max_age: i32,
    /// Whether it may be shared between viewers.
    pub public: bool,
}

impl Hint {
    /// No hint at all.
    pub const NONE: Self = Self {
        max_age: 0,
        public: true,
    };

    /// Both hints at once: the shorter life, the narrower scope.
    pub fn merge(self, other: Self) -> Self {
        Self {
            public: self.public && other.public,
            max_age: match (self.max_age, other.max_age) {
                (-1, _) | (_, -1) => -1,
                (a, 0) => a,
                (0, b) => b,
                (a, b) => a.min(b),
            },
        }
    }
}

/// The introspection types of the GraphQL specification, as async-graphql serves them.
const INTROSPECTION_SDL: &str = r#"
type __Schema { description: String types: [__Type!]! queryType: __Type! mutationType: __Type
  subscriptionType: __Type directives: [__Directive!]! }
type __Type { kind: __TypeKind! name: String description: String
  fields(includeDeprecated: Boolean = false): [__Field!] interfaces: [__Type!]
  possibleTypes: [__Type!] enumValues(includeDeprecated: Boolean = false): [__EnumValue!]
  inputFields(includeDeprecated: Boolean = false): [__InputValue!] ofType: __Type
  specifiedByURL: String isOneOf: Boolean }
type __Field { name: String! description: String
  args(includeDeprecated: Boolean = false): [__InputValue!]! type: __Type! isDeprecated: Boolean!
  deprecationReason: String }
type __InputValue { name: String! description: String type: __Type! defaultValue: String
  isDeprecated: Boolean! deprecationReason: String }
type __EnumValue { name: String! description: String isDeprecated: Boolean!
  deprecationReason: String }
type __Directive { name: String! description: String locations: [__DirectiveLocation!]!
  args(includeDeprecated: Boolean = false): [__InputValue!]! isRepeatable: Boolean! }
enum __TypeKind { SCALAR OBJECT INTERFACE UNION ENUM INPUT_OBJECT LIST NON_NULL }
enum __DirectiveLocation { QUERY MUTATION SUBSCRIPTION FIELD FRAGMENT_DEFINITION FRAGMENT_SPREAD
  INLINE_FRAGMENT VARIABLE_DEFINITION SCHEMA SCALAR OBJECT FIELD_DEFINITION ARGUMENT_DEFINITION
  INTERFACE UNION ENUM ENUM_VALUE INPUT_OBJECT INPUT_FIELD_DEFINITION }
"#;

impl SchemaInfo {
    /// Reads the schema's SDL.
    pub fn from_sdl(sdl: &str) -> Result<Self, async_graphql::parser::Error> {
        let mut info = Self {
            types: HashMap::new(),
            query: "Query".to_owned(),
            mutation: "Mutation".to_owned(),
            subscription: "Subscription".to_owned(),
            hints: HashMap::new(),
            typename: field_info(
                Type::new("String!").unwrap_or(Type {
                    base: BaseType::Named(async_graphql::Name::new("String")),
                    nullable: false,
                }),
                None,
                Vec::new(),
            ),
        };
        let mut implementors: HashMap<String, Vec<String>> = HashMap::new();
        for document in [
            async_graphql::parser::parse_schema(sdl)?,
            async_graphql::parser::parse_schema(INTROSPECTION_SDL)?,
        ] {
            info.read(document, &mut implementors);
        }
        info.types.entry(info.query.clone()).and_modify(|query| {
            let schema = Type::new("__Schema!");
            let ty = Type::new("__Type");
            if let (Some(schema), Some(ty)) = (schema, ty) {
                query
                    .fields
                    .insert("__schema".into(), field_info(schema, None, Vec::new()));
                query
                    .fields
                    .insert("__type".into(), field_info(ty, None, Vec::new()));
            }
        });
        for (interface, objects) in implementors {
            if let Some(info) = info.types.get_mut(&interface) {
                info.possible = objects;
            }
        }
        Ok(info)
    }

    fn read(&mut self, document: ServiceDocument, implementors: &mut HashMap<String, Vec<String>>) {
        for definition in document.definitions {
            match definition {
                TypeSystemDefinition::Schema(schema) => {
                    if let Some(query) = &schema.node.query {
                        self.query = query.node.to_string();
                    }
                    if let Some(mutation) = &schema.node.mutation {
                        self.mutation = mutation.node.to_string();
                    }
                    if let Some(subscription) = &schema.node.subscription {
                        self.subscription = subscription.node.to_string();
                    }
                }
                TypeSystemDefinition::Type(definition) => {
                    let definition = definition.node;
                    let name = definition.name.node.to_string();
                    let is_enum = matches!(definition.kind, TypeKind::Enum(_));
                    let input_fields = match &definition.kind {
                        TypeKind::InputObject(input) => input
                            .fields
                            .iter()
                            .map(|field| {
                                (
                                    field.node.name.node.to_string(),
                                    named_type(&field.node.ty.node),
                                )
                            })
                            .collect(),
                        _ => Vec::new(),
                    };
                    let (kind, fields, possible) = match definition.kind {
                        TypeKind::Object(object) => {
                            for interface in &object.implements {
                                implementors
                                    .entry(interface.node.to_string())
                                    .or_default()
                                    .push(name.clone());
                            }
                            (Kind::Object, object.fields, vec![name.clone()])
                        }
                        TypeKind::Interface(interface) => {
                            (Kind::Interface, interface.fields, Vec::new())
                        }
                        TypeKind::Union(union) => (
                            Kind::Union,
                            Vec::new(),
                            union
                                .members
                                .iter()
                                .map(|member| member.node.to_string())
                                .collect(),
                        ),
                        _ => (Kind::Leaf, Vec::new(), Vec::new()),
                    };
                    let fields = fields
                        .into_iter()
                        .map(|field| {
                            let field = field.node;
                            let deprecation = field
                                .directives
                                .iter()
                                .find(|directive| directive.node.name.node == "deprecated")
                                .map(|directive| {
                                    directive
                                        .node
                                        .get_argument("reason")
                                        .and_then(|reason| match &reason.node {
                                            Value::String(reason) => Some(reason.clone()),
                                            _ => None,
                                        })
                                        .unwrap_or_else(|| "No longer supported".to_owned())
                                });
                            let defaults = field
                                .arguments
                                .iter()
                                .filter_map(|argument| {
                                    let default = argument.node.default_value.as_ref()?;
                                    Some((
                                        argument.node.name.node.to_string(),
                                        default.node.clone(),
                                    ))
                                })
                                .collect();
                            let arguments = field
                                .arguments
                                .iter()
                                .map(|argument| {
                                    (
                                        argument.node.name.node.to_string(),
                                        named_type(&argument.node.ty.node),
                                    )
                                })
                                .collect();
                            let mut info = field_info(field.ty.node, deprecation, defaults);
                            info.arguments = arguments;
                            (field.name.node.to_string(), info)
                        })
                        .collect();
                    self.types.insert(
                        name,
                        TypeInfo {
                            kind,
                            fields,
                            possible,
                            input_fields,
                            is_enum,
                        },
                    );
                }
                TypeSystemDefinition::Directive(_) => {}
            }
        }
    }

    /// The same, with the cache hints of types and fields (`Type` or `Type.field` to max age
    /// and public).
    pub fn with_hints(mut self, hints: HashMap<String, (i32, bool)>) -> Self {
        for (name, (max_age, public)) in hints {
            let hint = Hint { max_age, public };
            match name.split_once('.') {
                Some((ty, field)) => {
                    self.hints
                        .entry(ty.to_owned())
                        .or_default()
                        .fields
                        .insert(field.to_owned(), hint);
                }
                None => self.hints.entry(name).or_default().own = Some(hint),
            }
        }
        self
    }

    /// The cache hint of the type `name`.
    pub fn type_hint(&self, name: &str) -> Hint {
        self.hints
            .get(name)
            .and_then(|hints| hints.own)
            .unwrap_or(Hint::NONE)
    }

    /// The cache hint of the field `field` of `parent`.
    pub fn field_hint(&self, parent: &str, field: &str) -> Hint {
        self.hints
            .get(parent)
            .and_then(|hints| hints.fields.get(field))
            .copied()
            .unwrap_or(Hint::NONE)
    }

    /// The named type `name`.
    pub fn get(&self, name: &str) -> Option<&TypeInfo> {
        self.types.get(name)
    }

    /// The field `field` of type `parent` (`__typename` on every composite type).
    pub fn field(&self, parent: &str, field: &str) -> Option<&FieldInfo> {
        if field == "__typename" {
            return self.is_composite(parent).then_some(&self.typename);
        }
        self.types.get(parent)?.fields.get(field)
    }

    /// Objects, interfaces and unions: everything with a selection.
    pub fn is_composite(&self, name: &str) -> bool {
        self.types
            .get(name)
            .is_some_and(|info| info.kind != Kind::Leaf)
    }

    /// Whether `name` is an object type.
    pub fn is_object(&self, name: &str) -> bool {
        self.types
            .get(name)
            .is_some_and(|info| info.kind == Kind::Object)
    }

    /// The object types a value of `name` may be.
    pub fn possible_types(&self, name: &str) -> &[String] {
        self.types
            .get(name)
            .map_or(&[], |info| info.possible.as_slice())
    }

    /// Whether a fragment on `condition` applies to an object of type `object`.
    pub fn applies(&self, condition: &str, object: &str) -> bool {
        condition == object || self.possible_types(condition).iter().any(|o| o == object)
    }

    /// A Relay connection: it has `edges` and `pageInfo`.
    pub fn is_connection(&self, name: &str) -> bool {
        self.types.get(name).is_some_and(|info| {
            info.fields.contains_key("edges") && info.fields.contains_key("pageInfo")
        })
    }
}

fn field_info(ty: Type, deprecation: Option<String>, defaults: Vec<(String, Value)>) -> FieldInfo {
    let mut base = &ty.base;
    let mut list = false;
    while let BaseType::List(inner) = base {
        list = true;
        base = &inner.base;
    }
    let named = match base {
        BaseType::Named(name) => name.to_string(),
        BaseType::List(_) => String::new(),
    };
    FieldInfo {
        ty,
        named,
        list,
        deprecation,
        defaults,
        arguments: Vec::new(),
    }
}

/// The named type inside `ty`'s list and non-null wrappers.
fn named_type(ty: &Type) -> String {
    let mut base = &ty.base;
    while let BaseType::List(inner) = base {
        base = &inner.base;
    }
    match base {
        BaseType::Named(name) => name.to_string(),
        BaseType::List(_) => String::new(),
    }
}
