//! Entities: a key and a JSON object of properties, and their stored form.
//!
//! Stored value layout (format 1): one format byte `0x01`, then the properties as compact
//! JSON text. The format byte lets a later model read old values and refuse unknown ones.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use serde_json::{Map, Value};

use crate::error::Error;
use crate::key::{Key, MAX_NAME_BYTES};

/// Largest stored entity (format byte plus JSON), in bytes: Cloud Datastore's 1 MiB limit.
pub const MAX_ENTITY_BYTES: usize = 1024 * 1024 - 4;

/// The format byte of values written by this model.
pub const FORMAT_JSON_V1: u8 = 0x01;

/// An entity: its key and its properties.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    /// The entity's key.
    pub key: Key,
    /// The properties, by name.
    pub properties: Map<String, Value>,
}

impl Entity {
    /// An entity from a key and JSON properties text; the text must be a JSON object.
    pub fn from_json(key: Key, properties: &str) -> Result<Entity, Error> {
        let value: Value = serde_json::from_str(properties)
            .map_err(|err| Error::InvalidEntity(format!("properties are not valid JSON: {err}")))?;
        match value {
            Value::Object(properties) => Ok(Entity { key, properties }),
            other => Err(Error::InvalidEntity(format!(
                "properties must be a JSON object, not {}",
                json_type(&other)
            ))),
        }
    }

    /// The properties as compact JSON text.
    pub fn properties_json(&self) -> String {
        // Serialising a `Map` of `Value`s cannot fail: keys are strings, numbers are finite.
        serde_json::to_string(&self.properties).unwrap_or_default()
    }

    /// Checks the key and properties, then encodes the value to store.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        self.key.validate()?;
        for name in self.properties.keys() {
            if name.is_empty() {
                return Err(Error::InvalidEntity("a property name is empty".into()));
            }
            if name.len() > MAX_NAME_BYTES {
                return Err(Error::InvalidEntity(format!(
                    "property name of {} bytes is over the {MAX_NAME_BYTES}-byte limit",
                    name.len()
                )));
            }
            if name.starts_with("__") {
                return Err(Error::InvalidEntity(format!(
                    "property {name:?} is reserved: names starting with \"__\" are internal"
                )));
            }
        }
        let json = serde_json::to_vec(&self.properties)
            .map_err(|err| Error::InvalidEntity(format!("properties cannot be encoded: {err}")))?;
        let mut out = Vec::with_capacity(1 + json.len());
        out.push(FORMAT_JSON_V1);
        out.extend_from_slice(&json);
        if out.len() > MAX_ENTITY_BYTES {
            return Err(Error::InvalidEntity(format!(
                "entity is {} bytes encoded; at most {MAX_ENTITY_BYTES} are allowed",
                out.len()
            )));
        }
        Ok(out)
    }

    /// Decodes a stored value for `key`.
    pub fn decode(key: Key, stored: &[u8]) -> Result<Entity, Error> {
        let json = decode_json(&key, stored)?;
        match serde_json::from_str(json) {
            Ok(Value::Object(properties)) => Ok(Entity { key, properties }),
            Ok(other) => Err(Error::Corrupt(format!(
                "entity {key} holds {} instead of an object",
                json_type(&other)
            ))),
            Err(err) => Err(Error::Corrupt(format!(
                "entity {key} holds invalid JSON: {err}"
            ))),
        }
    }
}

/// The properties' JSON text of a stored value for `key`, checked for its format byte and
/// UTF-8 but not parsed: what crosses to the host, which parses it once into its own types.
pub fn decode_json<'a>(key: &Key, stored: &'a [u8]) -> Result<&'a str, Error> {
    let Some((&format, json)) = stored.split_first() else {
        return Err(Error::Corrupt(format!("entity {key} has an empty value")));
    };
    if format != FORMAT_JSON_V1 {
        return Err(Error::Corrupt(format!(
            "entity {key} has value format {format}; this model reads format {FORMAT_JSON_V1} \
             (was it written by a newer model?)"
        )));
    }
    core::str::from_utf8(json)
        .map_err(|_| Error::Corrupt(format!("entity {key} holds text that is not UTF-8")))
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key::name("Model", "k")
    }

    #[test]
    fn round_trips_through_the_stored_form() {
        let entity =
            Entity::from_json(key(), r#"{"a":1,"b":[true,null,"x"],"c":{"d":1.5}}"#).unwrap();
        let stored = entity.encode().unwrap();
        assert_eq!(stored[0], FORMAT_JSON_V1);
        assert_eq!(Entity::decode(key(), &stored).unwrap(), entity);
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
        let err = Entity::from_json(key(), r#"{"":1}"#)
            .unwrap()
            .encode()
            .unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        let err = Entity::from_json(key(), r#"{"__x":1}"#)
            .unwrap()
            .encode()
            .unwrap_err();
        assert!(err.to_string().contains("reserved"), "{err}");
        let big = format!(r#"{{"a":"{}"}}"#, "x".repeat(MAX_ENTITY_BYTES));
        let err = Entity::from_json(key(), &big)
            .unwrap()
            .encode()
            .unwrap_err();
        assert!(err.to_string().contains("at most"), "{err}");
    }

    #[test]
    fn unknown_formats_are_corrupt_not_misread() {
        assert!(matches!(Entity::decode(key(), &[]), Err(Error::Corrupt(_))));
        assert!(
            matches!(Entity::decode(key(), b"\x02{}"), Err(Error::Corrupt(m)) if m.contains("newer"))
        );
        assert!(matches!(
            Entity::decode(key(), b"\x01[]"),
            Err(Error::Corrupt(_))
        ));
    }
}
