//! Entities: a key and typed properties, their JSON form and their stored form.
//!
//! Stored value layout (format 2): one format byte `0x02`, then the properties in the
//! canonical typed JSON of [`crate::value`]. Format 1 (plain JSON, written by ds 0.1 before
//! typed values) is still read. The format byte lets a later model read old values and
//! refuse unknown ones.

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use core::fmt;

use serde::Deserialize;
use serde::de::{
    DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::{Map, Value as Json};

use crate::error::Error;
use crate::key::Key;
use crate::schema::{Kind, Schema};
use crate::value::{self, MAX_INDEXED_BYTES, Properties, Value};

/// Largest stored entity (format byte plus JSON), in bytes: Cloud Datastore's 1 MiB limit.
pub const MAX_ENTITY_BYTES: usize = 1024 * 1024 - 4;

/// The format byte of values written by this model: canonical typed JSON.
pub const FORMAT_TYPED_JSON: u8 = 0x02;
/// [`FORMAT_TYPED_JSON`] as text (it is ASCII), to start the encoded buffer with.
const FORMAT_TYPED_JSON_TEXT: &str = "\u{2}";
/// The format byte of plain-JSON values written before typed values; still read.
pub const FORMAT_JSON_V1: u8 = 0x01;

/// An entity: its key and its properties.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    /// The entity's key.
    pub key: Key,
    /// The properties, by name.
    pub properties: Properties,
    /// Properties of a schemaless entity that are stored but not indexed (written in JSON
    /// as `{"$unindexed": …}`). Declared kinds take this from their declaration instead.
    pub unindexed: BTreeSet<String>,
}

impl Entity {
    /// An entity with no properties.
    pub fn new(key: Key) -> Entity {
        Entity {
            key,
            properties: Properties::new(),
            unindexed: BTreeSet::new(),
        }
    }

    /// The entity with `name` set to `value`.
    pub fn with(mut self, name: impl Into<String>, value: Value) -> Entity {
        self.properties.insert(name.into(), value);
        self
    }

    /// An entity from a key and typed-JSON properties text, which must be a JSON object.
    pub fn from_json(key: Key, properties: &str) -> Result<Entity, Error> {
        match crate::typed_json::read_properties(properties) {
            Some((properties, unindexed)) => Ok(Entity {
                key,
                properties,
                unindexed,
            }),
            None => Entity::from_json_reference(key, properties),
        }
    }

    /// [`Entity::from_json`] through a parsed `serde_json::Value`: the reference reader,
    /// whose answer, and refusal, the direct reader (`crate::typed_json`) gives wherever it
    /// reads a text, and which reads every text the direct one leaves to it.
    pub(crate) fn from_json_reference(key: Key, properties: &str) -> Result<Entity, Error> {
        let json: Json = serde_json::from_str(properties)
            .map_err(|err| Error::InvalidEntity(format!("properties are not valid JSON: {err}")))?;
        match json {
            Json::Object(object) => Entity::from_json_object(key, &object),
            other => Err(Error::InvalidEntity(format!(
                "properties must be a JSON object, not {}",
                json_type(&other)
            ))),
        }
    }

    /// Like [`Entity::from_json`], for properties written by people or other programs:
    /// also refuses integer literals that have no int64 form (`-0`, or out of range), which
    /// JSON parsing would otherwise turn into floats without a word
    /// ([`crate::json::check_integer_literals`]). Text the model wrote never holds them.
    pub fn from_json_input(key: Key, properties: &str) -> Result<Entity, Error> {
        let entity = Entity::from_json(key, properties)?;
        crate::json::check_integer_literals(properties).map_err(Error::InvalidEntity)?;
        Ok(entity)
    }

    /// An entity from a key and a typed-JSON object of properties.
    pub fn from_json_object(key: Key, object: &Map<String, Json>) -> Result<Entity, Error> {
        let mut entity = Entity::new(key);
        for (name, json) in object {
            value::check_property_name(name, name).map_err(Error::InvalidEntity)?;
            let json = match json {
                Json::Object(inner) => match value::typed_form(inner) {
                    Some(("$unindexed", wrapped)) => {
                        entity.unindexed.insert(name.clone());
                        wrapped
                    }
                    _ => json,
                },
                _ => json,
            };
            let value = Value::from_json(json, name).map_err(Error::InvalidEntity)?;
            entity.properties.insert(name.clone(), value);
        }
        Ok(entity)
    }

    /// The properties as a typed-JSON object (canonical).
    pub fn to_json_object(&self) -> Map<String, Json> {
        self.properties
            .iter()
            .map(|(name, value)| {
                let json = value.to_json();
                let json = if self.unindexed.contains(name) {
                    let mut wrapper = Map::new();
                    wrapper.insert("$unindexed".into(), json);
                    Json::Object(wrapper)
                } else {
                    json
                };
                (name.clone(), json)
            })
            .collect()
    }

    /// The properties as canonical typed-JSON text.
    pub fn properties_json(&self) -> String {
        // Every float that JSON cannot hold is already in its `$float` form.
        crate::json::to_string(&Json::Object(self.to_json_object()))
    }

    /// Checks every property name and value as reading them from JSON would: what makes
    /// the entity's JSON form mean exactly this entity.
    pub fn check_values(&self) -> Result<(), Error> {
        for (name, value) in &self.properties {
            value::check_property_name(name, name).map_err(Error::InvalidEntity)?;
            value::check_value(value, name, false).map_err(Error::InvalidEntity)?;
        }
        Ok(())
    }

    /// True when `name` is indexed: by the kind's declaration, or, for schemaless kinds,
    /// unless it was written `{"$unindexed": …}`.
    pub fn is_indexed(&self, schema: &Schema, name: &str) -> bool {
        let kind = self.key.leaf().and_then(|leaf| schema.kind(&leaf.kind));
        match kind {
            Some(kind) => kind.property(name).is_some_and(|p| p.indexed),
            None => !self.unindexed.contains(name),
        }
    }

    /// Checks the entity against the key rules, the schema and the size limits, fills
    /// declared defaults, and encodes the value to store. The error names the property.
    pub fn prepare(&mut self, schema: &Schema) -> Result<Vec<u8>, Error> {
        self.key.validate()?;
        let kind = self.key.leaf().and_then(|leaf| schema.kind(&leaf.kind));
        if let Some(kind) = kind {
            if let Some(name) = self.unindexed.iter().next() {
                return Err(Error::InvalidEntity(format!(
                    "property {name}: kind {} declares which properties are indexed; \
                     drop the {{\"$unindexed\": …}} wrapper",
                    kind.name
                )));
            }
            kind.apply(&mut self.properties)
                .map_err(Error::InvalidEntity)?;
        }
        for (name, value) in &self.properties {
            value::check_property_name(name, name).map_err(Error::InvalidEntity)?;
            // Values built in Rust (not read from JSON) get the checks JSON reading makes.
            value::check_value(value, name, false).map_err(Error::InvalidEntity)?;
            if !self.is_indexed(schema, name) {
                continue;
            }
            for (i, element) in value.elements().iter().enumerate() {
                let size = match element {
                    Value::String(s) => s.len(),
                    Value::Bytes(b) => b.len(),
                    _ => 0,
                };
                if size > MAX_INDEXED_BYTES {
                    let at =
                        value::element_path(name, matches!(value, Value::Array(_)).then_some(i));
                    return Err(Error::InvalidEntity(format!(
                        "property {at} is an indexed {} of {size} bytes; indexed values hold at \
                         most {MAX_INDEXED_BYTES} (write it as {{\"$unindexed\": …}} or declare \
                         the property unindexed)",
                        element.ty()
                    )));
                }
            }
        }
        let out = self.encode_stored();
        if out.len() > MAX_ENTITY_BYTES {
            return Err(Error::InvalidEntity(format!(
                "entity is {} bytes encoded; at most {MAX_ENTITY_BYTES} are allowed",
                out.len()
            )));
        }
        Ok(out)
    }

    /// The stored form of the entity's properties, as they are: no check, no defaults.
    pub(crate) fn encode_stored(&self) -> Vec<u8> {
        crate::json::to_string_after(FORMAT_TYPED_JSON_TEXT, &Json::Object(self.to_json_object()))
            .into_bytes()
    }

    /// Decodes a stored value for `key`.
    pub fn decode(key: Key, stored: &[u8]) -> Result<Entity, Error> {
        let json = decode_json(&key, stored)?;
        if let Some((properties, unindexed)) = crate::typed_json::read_properties(json) {
            return Ok(Entity {
                key,
                properties,
                unindexed,
            });
        }
        let corrupt = |what: String| Error::Corrupt(format!("entity {key} holds {what}"));
        match serde_json::from_str(json) {
            Ok(Json::Object(object)) => Entity::from_json_object(key.clone(), &object)
                .map_err(|err| corrupt(format!("{err}"))),
            Ok(other) => Err(corrupt(format!(
                "{} instead of an object",
                json_type(&other)
            ))),
            Err(err) => Err(corrupt(format!("invalid JSON: {err}"))),
        }
    }

    /// Decodes, of a stored value for `key`, only the properties its index rows come from:
    /// those `schema` declares indexed for the key's kind, or for a kind without a
    /// declaration every property not written `{"$unindexed": …}`. An overwrite needs only
    /// the old entity's rows, and the parser steps over the other values without copying
    /// them, checking their JSON syntax only (so a skipped value that `decode` would refuse,
    /// such as bad base64, does not stop its overwrite; `check` still reports it). Its rows
    /// equal those of the whole entity ([`crate::index::rows`]) for every value
    /// [`Entity::decode`] reads.
    pub fn decode_indexed(key: Key, stored: &[u8], schema: &Schema) -> Result<Entity, Error> {
        let json = decode_json(&key, stored)?;
        let corrupt = |what: String| Error::Corrupt(format!("entity {key} holds {what}"));
        let kind = key.leaf().and_then(|leaf| schema.kind(&leaf.kind));
        let mut parser = serde_json::Deserializer::from_str(json);
        let object = IndexedProperties { kind }
            .deserialize(&mut parser)
            .and_then(|object| parser.end().map(|()| object))
            .map_err(|err| corrupt(format!("invalid JSON: {err}")))?;
        Entity::from_json_object(key.clone(), &object).map_err(|err| corrupt(format!("{err}")))
    }
}

/// Reads a stored properties object keeping only what [`Entity::decode_indexed`] needs.
struct IndexedProperties<'a> {
    /// The declaration of the entity's kind, if it has one.
    kind: Option<&'a Kind>,
}

impl<'de> DeserializeSeed<'de> for IndexedProperties<'_> {
    type Value = Map<String, Json>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        // Not `deserialize_map`, and every other visit is written out below: serde's own
        // refusal (`invalid_type`) formats an `Unexpected`, which can be a float, and that
        // links core's float formatting tables into the guest (tests/component_imports.rs).
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for IndexedProperties<'_> {
    type Value = Map<String, Json>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an object of properties")
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Err(not_an_object("a boolean"))
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Err(not_an_object("a number"))
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Err(not_an_object("a number"))
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Err(not_an_object("a number"))
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Err(not_an_object("a string"))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Err(not_an_object("null"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(not_an_object("an array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = Map::new();
        // Names whose last value is refused, kept until the end: a later repeat of the
        // name replaces it, as in a parsed `Map`.
        let mut refused: BTreeSet<String> = BTreeSet::new();
        while let Some(name) = map.next_key::<String>()? {
            // A repeated name: the last one wins, as in a parsed `Map`.
            refused.remove(&name);
            let value = match self.kind {
                // A declared kind follows its declaration, whether or not a value is wrapped
                // (a wrapper left from before the declaration is read as `decode` reads it).
                Some(kind) if kind.property(&name).is_some_and(|p| p.indexed) => {
                    Some(map.next_value::<Json>()?)
                }
                Some(_) => {
                    map.next_value::<IgnoredAny>()?;
                    None
                }
                None => match map.next_value::<Skimmed>()? {
                    Skimmed::Unindexed => None,
                    Skimmed::Parsed(json) => Some(json),
                    Skimmed::ReservedName => {
                        object.remove(&name);
                        refused.insert(name);
                        continue;
                    }
                },
            };
            match value {
                Some(json) => object.insert(name, json),
                None => object.remove(&name),
            };
        }
        if let Some(name) = refused.first() {
            return Err(A::Error::custom(format_args!(
                "property {name}: {{\"$unindexed\": …}} beside other names; property names \
                 starting with $ are reserved"
            )));
        }
        Ok(object)
    }
}

fn not_an_object<E: serde::de::Error>(found: &str) -> E {
    E::custom(format_args!("{found} instead of an object"))
}

/// One property value as [`IndexedProperties`] reads it.
enum Skimmed {
    /// `{"$unindexed": …}`: what it wraps was stepped over.
    Unindexed,
    /// Any other value, parsed as `serde_json::Value` parses it.
    Parsed(Json),
    /// An object with `$unindexed` beside other names, which `decode` refuses (a reserved
    /// property name) unless a later value of the property replaces it.
    ReservedName,
}

impl<'de> Deserialize<'de> for Skimmed {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SkimmedVisitor)
    }
}

struct SkimmedVisitor;

impl<'de> Visitor<'de> for SkimmedVisitor {
    type Value = Skimmed;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Skimmed, E> {
        Ok(Skimmed::Parsed(Json::Bool(value)))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Skimmed, E> {
        Ok(Skimmed::Parsed(Json::Number(value.into())))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Skimmed, E> {
        Ok(Skimmed::Parsed(Json::Number(value.into())))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Skimmed, E> {
        Ok(Skimmed::Parsed(
            serde_json::Number::from_f64(value).map_or(Json::Null, Json::Number),
        ))
    }

    fn visit_str<E>(self, value: &str) -> Result<Skimmed, E> {
        Ok(Skimmed::Parsed(Json::String(value.into())))
    }

    fn visit_string<E>(self, value: String) -> Result<Skimmed, E> {
        Ok(Skimmed::Parsed(Json::String(value)))
    }

    fn visit_unit<E>(self) -> Result<Skimmed, E> {
        Ok(Skimmed::Parsed(Json::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skimmed, A::Error> {
        let mut values = Vec::new();
        while let Some(value) = seq.next_element::<Json>()? {
            values.push(value);
        }
        Ok(Skimmed::Parsed(Json::Array(values)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skimmed, A::Error> {
        let Some(first) = map.next_key::<String>()? else {
            return Ok(Skimmed::Parsed(Json::Object(Map::new())));
        };
        if first == "$unindexed" {
            map.next_value::<IgnoredAny>()?;
            // A wrapper holds that one name (repeated, it is still one); beside others it is
            // a reserved property name, which `decode` refuses too.
            let mut alone = true;
            while let Some(name) = map.next_key::<String>()? {
                alone &= name == "$unindexed";
                map.next_value::<IgnoredAny>()?;
            }
            return Ok(if alone {
                Skimmed::Unindexed
            } else {
                Skimmed::ReservedName
            });
        }
        let mut object = Map::new();
        object.insert(first, map.next_value::<Json>()?);
        while let Some((name, value)) = map.next_entry::<String, Json>()? {
            object.insert(name, value);
        }
        Ok(Skimmed::Parsed(Json::Object(object)))
    }
}

/// The properties' JSON text of a stored value for `key`, checked for its format byte and
/// UTF-8 but not parsed: what crosses to the host, which parses it once into its own types.
pub fn decode_json<'a>(key: &Key, stored: &'a [u8]) -> Result<&'a str, Error> {
    check_format(key, stored)?;
    core::str::from_utf8(&stored[1..]).map_err(|_| not_utf8(key))
}

/// Like [`decode_json`], but keeps the stored bytes: the format byte is removed in place
/// instead of the text being copied into a new string. `key` only names the entity in an
/// error (a [`Key`], or a [`crate::key::EncodedKey`] that is decoded only then).
pub fn into_json<K: fmt::Display + ?Sized>(key: &K, mut stored: Vec<u8>) -> Result<String, Error> {
    check_format(key, &stored)?;
    stored.remove(0);
    String::from_utf8(stored).map_err(|_| not_utf8(key))
}

fn check_format<K: fmt::Display + ?Sized>(key: &K, stored: &[u8]) -> Result<(), Error> {
    let Some(&format) = stored.first() else {
        return Err(Error::Corrupt(format!("entity {key} has an empty value")));
    };
    if format != FORMAT_TYPED_JSON && format != FORMAT_JSON_V1 {
        return Err(Error::Corrupt(format!(
            "entity {key} has value format {format}; this model reads formats \
             {FORMAT_JSON_V1} and {FORMAT_TYPED_JSON} (was it written by a newer model?)"
        )));
    }
    Ok(())
}

fn not_utf8<K: fmt::Display + ?Sized>(key: &K) -> Error {
    Error::Corrupt(format!("entity {key} holds text that is not UTF-8"))
}

fn json_type(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Property;
    use crate::value::Type;

    fn key() -> Key {
        Key::name("Model", "k")
    }

    static DECLARED: Schema = Schema::new(&[Kind::new(
        "Decl",
        &[
            Property::new("i", Type::Int),
            Property::new("u", Type::String).unindexed(),
        ],
    )]);

    /// `decode_indexed` of `json` (stored as typed JSON) for `key`, for cases it must read
    /// as `decode` does (it may accept more, in values it skips): an error exactly when
    /// `decode` errs, else the same rows and no property that is not indexed.
    fn skims_alike(key: &Key, json: &str) {
        let mut stored = alloc::vec![FORMAT_TYPED_JSON];
        stored.extend_from_slice(json.as_bytes());
        let whole = Entity::decode(key.clone(), &stored);
        let indexed = Entity::decode_indexed(key.clone(), &stored, &DECLARED);
        match (whole, indexed) {
            (Ok(whole), Ok(indexed)) => {
                assert_eq!(
                    crate::index::rows(&DECLARED, &indexed).unwrap(),
                    crate::index::rows(&DECLARED, &whole).unwrap(),
                    "{json}"
                );
                for name in indexed.properties.keys() {
                    assert!(whole.is_indexed(&DECLARED, name), "{json}: kept {name}");
                }
            }
            (Err(_), Err(_)) => {}
            (whole, indexed) => panic!("{json}: decode {whole:?}, decode_indexed {indexed:?}"),
        }
    }

    #[test]
    fn decode_indexed_reads_what_decode_reads_for_the_rows() {
        let schemaless = key();
        let declared = Key::name("Decl", "k");
        for json in [
            r#"{"a":1,"b":{"$unindexed":"big"},"c":[1,"x"]}"#,
            // A repeated name: the last one wins, wrapped or not.
            r#"{"a":{"$unindexed":1},"a":2}"#,
            r#"{"a":2,"a":{"$unindexed":1}}"#,
            r#"{"a":{"$unindexed":1,"$unindexed":2}}"#,
            // Not a wrapper: refused by both.
            r#"{"a":{"$unindexed":1,"b":2}}"#,
            r#"{"a":{"b":2,"$unindexed":1}}"#,
            // ... unless a later value replaces it.
            r#"{"a":{"$unindexed":1,"b":2},"a":3}"#,
            r#"{"a":3,"a":{"$unindexed":1,"b":2}}"#,
            // Numbers and strings as serde_json reads them.
            r#"{"a":-0,"b":18446744073709551615,"c":1e-7,"d":"é
"","e":[-0.0,1.5e300]}"#,
            // Typed forms and embedded entities, wrapped and not.
            r#"{"a":{"$bytes":"AA=="},"b":{"$unindexed":{"$bytes":"AA=="}},"c":{"d":1.5}}"#,
            r#"{"a":{"$float":"NaN"},"eA":-0.5,"f":null,"g":true}"#,
            // Refused by both: bad base64 in an indexed property, a reserved name.
            r#"{"a":{"$bytes":"!"}}"#,
            r#"{"$a":1}"#,
            // Not an object, trailing text, invalid JSON.
            "[1]",
            r#"{"a":1} x"#,
            r#"{"a":"#,
        ] {
            skims_alike(&schemaless, json);
        }
        for json in [
            r#"{"i":1,"u":"skipped"}"#,
            // A wrapper left from before the kind was declared follows the declaration.
            r#"{"i":{"$unindexed":3},"u":{"$unindexed":"x"}}"#,
            r#"{"i":1,"i":2}"#,
        ] {
            skims_alike(&declared, json);
        }
    }

    #[test]
    fn round_trips_through_the_stored_form() {
        let mut entity = Entity::from_json(
            key(),
            r#"{"a":1,"b":[true,null,"x"],"c":{"d":1.5},"e":{"$unindexed":{"$bytes":"AA=="}}}"#,
        )
        .unwrap();
        assert!(entity.unindexed.contains("e"));
        let stored = entity.prepare(&Schema::EMPTY).unwrap();
        assert_eq!(stored[0], FORMAT_TYPED_JSON);
        assert_eq!(FORMAT_TYPED_JSON_TEXT.as_bytes(), [FORMAT_TYPED_JSON]);
        assert_eq!(Entity::decode(key(), &stored).unwrap(), entity);
        assert_eq!(
            decode_json(&key(), &stored).unwrap(),
            r#"{"a":1,"b":[true,null,"x"],"c":{"d":1.5},"e":{"$unindexed":{"$bytes":"AA=="}}}"#
        );
        // Values written before typed values still read.
        assert_eq!(
            Entity::decode(key(), b"\x01{\"a\":1}").unwrap(),
            Entity::new(key()).with("a", Value::Int(1))
        );
    }

    #[test]
    fn the_json_text_is_the_same_borrowed_or_kept() {
        for stored in [
            &b"\x02{\"a\":1}"[..],
            b"\x01{}",
            b"",
            b"\x07{}",
            b"\x02\xff",
        ] {
            let borrowed = decode_json(&key(), stored).map(String::from);
            let kept = into_json(&key(), stored.to_vec());
            assert_eq!(format!("{borrowed:?}"), format!("{kept:?}"), "{stored:?}");
        }
        assert_eq!(into_json(&key(), b"\x02{}".to_vec()).unwrap(), "{}");
        assert!(into_json(&key(), b"\x02\xff".to_vec()).is_err());
    }

    #[test]
    fn refuses_what_is_not_an_object() {
        for (input, want) in [
            ("[1]", "not an array"),
            ("3", "not a number"),
            ("{", "not valid JSON"),
            ("", "not valid JSON"),
        ] {
            let err = Entity::from_json(key(), input).unwrap_err();
            assert!(err.to_string().contains(want), "{input}: {err}");
        }
    }

    #[test]
    fn refuses_bad_property_names_and_sizes() {
        for (json, want) in [
            (r#"{"":1}"#, "empty"),
            (r#"{"__x":1}"#, "reserved"),
            (r#"{"$x":1}"#, "reserved"),
        ] {
            let err = Entity::from_json(key(), json).unwrap_err();
            assert!(err.to_string().contains(want), "{json}: {err}");
        }
        let big = format!(
            r#"{{"a":{{"$unindexed":"{}"}}}}"#,
            "x".repeat(MAX_ENTITY_BYTES)
        );
        let err = Entity::from_json(key(), &big)
            .unwrap()
            .prepare(&Schema::EMPTY)
            .unwrap_err();
        assert!(err.to_string().contains("at most"), "{err}");
        let long = format!(r#"{{"a":["x","{}"]}}"#, "x".repeat(MAX_INDEXED_BYTES + 1));
        let err = Entity::from_json(key(), &long)
            .unwrap()
            .prepare(&Schema::EMPTY)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("property a[1] is an indexed string"),
            "{err}"
        );
    }

    #[test]
    fn values_built_in_rust_get_the_checks_json_gets() {
        use crate::value::MAX_TIMESTAMP;
        let nested = Value::Array(alloc::vec![Value::Array(alloc::vec![Value::Int(1)])]);
        let mut embedded = crate::value::Properties::new();
        embedded.insert("$bytes".into(), Value::String("AA==".into()));
        for (value, want) in [
            (nested, "arrays cannot contain arrays"),
            (Value::Timestamp(MAX_TIMESTAMP + 1), "outside years"),
            (Value::Key(Key::id("A", 0)), "not a valid key"),
            (Value::Entity(embedded), "reserved for typed values"),
        ] {
            let err = Entity::new(key())
                .with("p", value)
                .prepare(&Schema::EMPTY)
                .unwrap_err();
            assert!(err.to_string().contains(want), "{err}");
        }
    }

    #[test]
    fn unknown_formats_are_corrupt_not_misread() {
        assert!(matches!(Entity::decode(key(), &[]), Err(Error::Corrupt(_))));
        assert!(
            matches!(Entity::decode(key(), b"\x03{}"), Err(Error::Corrupt(m)) if m.contains("newer"))
        );
        assert!(matches!(
            Entity::decode(key(), b"\x02[]"),
            Err(Error::Corrupt(_))
        ));
        assert!(matches!(
            Entity::decode(key(), b"\x02{\"a\":[[1]]}"),
            Err(Error::Corrupt(_))
        ));
    }
}
