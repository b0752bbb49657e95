//! Declared kinds: what a guest author writes in Rust to give a kind a schema.
//!
//! ```
//! use ds_model::schema::{CompositeIndex, Direction::*, Kind, Property, Schema};
//! use ds_model::value::{Type, Value};
//!
//! fn not_negative(value: &Value) -> Result<(), String> {
//!     match value {
//!         Value::Int(n) if *n < 0 => Err(format!("must not be negative, is {n}")),
//!         _ => Ok(()),
//!     }
//! }
//!
//! static SCHEMA: Schema = Schema::new(&[Kind::new(
//!     "Account",
//!     &[
//!         Property::new("owner", Type::String).required(),
//!         Property::new("balance", Type::Int).default_int(0).validate(not_negative),
//!         Property::new("tags", Type::String).repeated(),
//!         Property::new("notes", Type::String).unindexed(),
//!     ],
//! )
//! .indexes(&[CompositeIndex::new(&[("owner", Ascending), ("balance", Descending)])])]);
//! ```
//!
//! A put of a declared kind is checked against its declaration: unknown properties, missing
//! required ones, wrong types and failed validations are refused with an error naming the
//! property, and nothing is written. Missing properties with a default get it. Kinds that
//! are not declared are schemaless (like NDB's `Expando`): any properties, all indexed
//! unless written as `{"$unindexed": …}`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::value::{Properties, Type, Value};

/// A validation function: `Err(reason)` refuses the value.
pub type Validator = fn(&Value) -> Result<(), String>;

/// A default a declared property takes when a put leaves it out.
#[derive(Debug, Clone, Copy)]
pub enum Default {
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(&'static str),
    /// An empty array (for repeated properties).
    Empty,
}

impl Default {
    fn value(self) -> Value {
        match self {
            Default::Null => Value::Null,
            Default::Bool(b) => Value::Bool(b),
            Default::Int(i) => Value::Int(i),
            Default::Float(f) => Value::Float(f),
            Default::Str(s) => Value::String(s.into()),
            Default::Empty => Value::Array(Vec::new()),
        }
    }
}

/// A declared property.
#[derive(Debug, Clone, Copy)]
pub struct Property {
    /// The property's name.
    pub name: &'static str,
    /// The type of its value (of each element, when repeated).
    pub ty: Type,
    /// A put must give a non-null value (after defaults).
    pub required: bool,
    /// The value is an array of `ty` (possibly empty).
    pub repeated: bool,
    /// The property is indexed (queries can filter and sort on it).
    pub indexed: bool,
    /// The value a put that leaves the property out gets.
    pub default: Option<Default>,
    /// Extra checks on the value (on each element, when repeated).
    pub validate: Option<Validator>,
}

impl Property {
    /// An optional, single, indexed property of type `ty`.
    pub const fn new(name: &'static str, ty: Type) -> Property {
        Property {
            name,
            ty,
            required: false,
            repeated: false,
            indexed: true,
            default: None,
            validate: None,
        }
    }

    /// Makes the property required.
    pub const fn required(mut self) -> Property {
        self.required = true;
        self
    }

    /// Makes the property an array of its type.
    pub const fn repeated(mut self) -> Property {
        self.repeated = true;
        self
    }

    /// Excludes the property from indexes.
    pub const fn unindexed(mut self) -> Property {
        self.indexed = false;
        self
    }

    /// Gives the property a default.
    pub const fn default(mut self, default: Default) -> Property {
        self.default = Some(default);
        self
    }

    /// Gives the property an integer default.
    pub const fn default_int(self, value: i64) -> Property {
        self.default(Default::Int(value))
    }

    /// Adds a validation function.
    pub const fn validate(mut self, validator: Validator) -> Property {
        self.validate = Some(validator);
        self
    }
}

/// The direction of a sort order or of an index column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Smallest first.
    Ascending,
    /// Largest first.
    Descending,
}

impl Direction {
    /// The other direction.
    pub fn flip(self) -> Direction {
        match self {
            Direction::Ascending => Direction::Descending,
            Direction::Descending => Direction::Ascending,
        }
    }
}

/// A composite index a kind declares: what serves queries that combine equality filters
/// with sort orders on other properties, or that sort on several properties.
#[derive(Debug, Clone, Copy)]
pub struct CompositeIndex {
    /// The columns, in order: property and direction.
    pub columns: &'static [(&'static str, Direction)],
}

impl CompositeIndex {
    /// An index over `columns`.
    pub const fn new(columns: &'static [(&'static str, Direction)]) -> CompositeIndex {
        CompositeIndex { columns }
    }

    /// The index's name in index rows and messages, e.g. `owner,-balance`.
    pub fn name(&self) -> String {
        describe_columns(self.columns.iter().map(|(p, d)| (*p, *d)))
    }
}

/// Columns as `a,-b` (`-` for descending): how indexes are named and suggested.
pub fn describe_columns<'a>(columns: impl Iterator<Item = (&'a str, Direction)>) -> String {
    let mut out = String::new();
    for (i, (property, direction)) in columns.enumerate() {
        if i > 0 {
            out.push(',');
        }
        if direction == Direction::Descending {
            out.push('-');
        }
        out.push_str(property);
    }
    out
}

/// A declared kind.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    /// The kind's name.
    pub name: &'static str,
    /// Its properties; no others are allowed.
    pub properties: &'static [Property],
    /// Its composite indexes.
    pub indexes: &'static [CompositeIndex],
}

impl Kind {
    /// A kind with these properties and no composite index.
    pub const fn new(name: &'static str, properties: &'static [Property]) -> Kind {
        Kind {
            name,
            properties,
            indexes: &[],
        }
    }

    /// The kind with these composite indexes.
    pub const fn indexes(mut self, indexes: &'static [CompositeIndex]) -> Kind {
        self.indexes = indexes;
        self
    }

    /// The declaration of `property`, if declared.
    pub fn property(&self, property: &str) -> Option<&Property> {
        self.properties.iter().find(|p| p.name == property)
    }

    /// Checks `properties` against the declaration and fills defaults; the error names the
    /// property.
    pub fn apply(&self, properties: &mut Properties) -> Result<(), String> {
        if let Some(unknown) = properties.keys().find(|name| self.property(name).is_none()) {
            return Err(format!(
                "property {unknown} is not declared for kind {} (declared: {})",
                self.name,
                self.properties
                    .iter()
                    .map(|p| p.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for declared in self.properties {
            let name = declared.name;
            if !properties.contains_key(name)
                && let Some(default) = declared.default
            {
                properties.insert(name.into(), default.value());
            }
            let value = properties.get(name).unwrap_or(&Value::Null);
            if matches!(value, Value::Null) {
                if declared.required {
                    return Err(format!("property {name} is required"));
                }
                continue;
            }
            let elements: &[Value] = if declared.repeated {
                match value {
                    Value::Array(elements) => elements,
                    other => {
                        return Err(format!(
                            "property {name} is a repeated {}: give an array, not a {}",
                            declared.ty,
                            other.ty()
                        ));
                    }
                }
            } else {
                core::slice::from_ref(value)
            };
            for (i, element) in elements.iter().enumerate() {
                let at = if declared.repeated {
                    format!("{name}[{i}]")
                } else {
                    String::from(name)
                };
                if element.ty() != declared.ty {
                    return Err(format!(
                        "property {at} must be {} {}, not {}",
                        article(declared.ty),
                        declared.ty,
                        element.ty()
                    ));
                }
                if let Some(validate) = declared.validate {
                    validate(element).map_err(|reason| format!("property {at}: {reason}"))?;
                }
            }
        }
        Ok(())
    }
}

fn article(ty: Type) -> &'static str {
    match ty {
        Type::Int | Type::Array | Type::Entity => "an",
        _ => "a",
    }
}

/// The kinds a model declares.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// The declared kinds; every other kind is schemaless.
    pub kinds: &'static [Kind],
}

impl Schema {
    /// A schema of these kinds.
    pub const fn new(kinds: &'static [Kind]) -> Schema {
        Schema { kinds }
    }

    /// No declared kinds: everything is schemaless.
    pub const EMPTY: Schema = Schema { kinds: &[] };

    /// The declaration of `kind`, if declared.
    pub fn kind(&self, kind: &str) -> Option<&Kind> {
        self.kinds.iter().find(|k| k.name == kind)
    }

    /// The declared kinds as JSON text (what `datastore.schema` returns):
    /// `{"kinds": [{"kind", "properties": [{"name", "type", "required", "repeated",
    /// "indexed", "default"?, "validated"}], "indexes": [{"name", "columns": [{"property",
    /// "direction"}]}]}]}`, in declaration order.
    pub fn to_json_text(&self) -> String {
        use serde_json::{Map, Value as Json};
        let kinds = self
            .kinds
            .iter()
            .map(|kind| {
                let properties = kind
                    .properties
                    .iter()
                    .map(|p| {
                        let mut out = Map::new();
                        out.insert("name".into(), p.name.into());
                        out.insert("type".into(), p.ty.name().into());
                        out.insert("required".into(), p.required.into());
                        out.insert("repeated".into(), p.repeated.into());
                        out.insert("indexed".into(), p.indexed.into());
                        if let Some(default) = p.default {
                            out.insert("default".into(), default.value().to_json());
                        }
                        out.insert("validated".into(), p.validate.is_some().into());
                        Json::Object(out)
                    })
                    .collect();
                let indexes = kind
                    .indexes
                    .iter()
                    .map(|index| {
                        let columns = index
                            .columns
                            .iter()
                            .map(|(property, direction)| {
                                let mut column = Map::new();
                                column.insert("property".into(), (*property).into());
                                let direction = match direction {
                                    Direction::Ascending => "asc",
                                    Direction::Descending => "desc",
                                };
                                column.insert("direction".into(), direction.into());
                                Json::Object(column)
                            })
                            .collect();
                        let mut out = Map::new();
                        out.insert("name".into(), index.name().into());
                        out.insert("columns".into(), Json::Array(columns));
                        Json::Object(out)
                    })
                    .collect();
                let mut out = Map::new();
                out.insert("kind".into(), kind.name.into());
                out.insert("properties".into(), Json::Array(properties));
                out.insert("indexes".into(), Json::Array(indexes));
                Json::Object(out)
            })
            .collect();
        let mut out = Map::new();
        out.insert("kinds".into(), Json::Array(kinds));
        crate::json::to_string(&Json::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn positive(value: &Value) -> Result<(), String> {
        match value {
            Value::Int(n) if *n <= 0 => Err("must be positive".to_string()),
            _ => Ok(()),
        }
    }

    static KIND: Kind = Kind::new(
        "Item",
        &[
            Property::new("name", Type::String).required(),
            Property::new("count", Type::Int)
                .default_int(1)
                .validate(positive),
            Property::new("tags", Type::String)
                .repeated()
                .default(Default::Empty),
        ],
    );

    fn props(pairs: &[(&str, Value)]) -> Properties {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn defaults_fill_and_rules_name_the_property() {
        let mut ok = props(&[("name", Value::String("x".into()))]);
        KIND.apply(&mut ok).unwrap();
        assert_eq!(ok["count"], Value::Int(1));
        assert_eq!(ok["tags"], Value::Array(Vec::new()));

        for (bad, want) in [
            (props(&[]), "name is required"),
            (props(&[("name", Value::Null)]), "name is required"),
            (
                props(&[("name", Value::Int(1))]),
                "name must be a string, not int64",
            ),
            (
                props(&[
                    ("name", Value::String("x".into())),
                    ("count", Value::Int(0)),
                ]),
                "count: must be positive",
            ),
            (
                props(&[("name", Value::String("x".into())), ("tags", Value::Int(0))]),
                "give an array",
            ),
            (
                props(&[
                    ("name", Value::String("x".into())),
                    ("tags", Value::Array(alloc::vec![Value::Bool(true)])),
                ]),
                "tags[0] must be a string",
            ),
            (
                props(&[("name", Value::String("x".into())), ("colour", Value::Null)]),
                "colour is not declared",
            ),
        ] {
            let mut bad = bad;
            let err = KIND.apply(&mut bad).unwrap_err();
            assert!(err.contains(want), "{err}");
        }
    }
}
