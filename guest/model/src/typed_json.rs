//! Reads typed-JSON properties straight from their text into model values, for the texts
//! that are plain valid objects: what the model writes and nearly everything people send.
//!
//! The reference reader parses the text into a `serde_json::Value` tree and converts that
//! ([`crate::Entity::from_json`] falls back to it). The tree costs about half of reading a
//! small entity: a map node and a string per member, copied again into the entity, then
//! freed. Every `get` pays it in the host that receives the model's text, and every native
//! read of a stored value.
//!
//! This reader never decides a refusal. At anything that is not certainly valid (a repeated
//! name, a reserved name, a typed value it cannot read, a nested array, an integer outside
//! int64, a non-object text) it stops with [`Fallback`], and the caller reads the text again
//! through the tree, whose refusals are the reference. So on every text it reads, it gives
//! what the reference gives; the unit cases below and the `entity_json` fuzz target check
//! that on arbitrary text.
//!
//! Every `visit_*` serde_json can call is written out: serde's default refusal formats an
//! `Unexpected`, which can be a float, and that links core's float formatting tables into
//! the guest (`tests/component_imports.rs` bounds its data).

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value as Json;

use crate::value::{self, Properties, Value};

/// Reads `text`, a JSON object of typed-JSON properties: the properties, and the names of
/// those wrapped `{"$unindexed": …}`. `None` when the text is anything but a plain valid
/// object: the caller must then read it with the reference reader.
pub(crate) fn read_properties(text: &str) -> Option<(Properties, BTreeSet<String>)> {
    let mut parser = serde_json::Deserializer::from_str(text);
    let read = TopLevel.deserialize(&mut parser).ok()?;
    parser.end().ok()?;
    Some(read)
}

/// Why the reader stopped: the text may be valid, but reading it is left to the reference.
#[derive(Debug)]
struct Fallback;

impl fmt::Display for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("left to the reference reader")
    }
}

fn fallback<T, E: de::Error>() -> Result<T, E> {
    Err(E::custom(Fallback))
}

/// Refuses, as a fallback, every kind of JSON value a visitor does not take.
macro_rules! fall_back_on_others {
    ($($method:ident($($arg:ty)?)),* $(,)?) => {
        $(
            fn $method<E: de::Error>(self $(, _: $arg)?) -> Result<Self::Value, E> {
                fallback()
            }
        )*
    };
}

/// The top-level object of an entity's properties.
struct TopLevel;

impl<'de> DeserializeSeed<'de> for TopLevel {
    type Value = (Properties, BTreeSet<String>);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopLevel {
    type Value = (Properties, BTreeSet<String>);

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an object of properties")
    }

    fall_back_on_others!(
        visit_bool(bool),
        visit_i64(i64),
        visit_u64(u64),
        visit_f64(f64),
        visit_str(&str),
        visit_unit(),
    );

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        fallback()
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut properties = Properties::new();
        let mut unindexed = BTreeSet::new();
        while let Some(name) = map.next_key::<String>()? {
            if value::check_property_name(&name, &name).is_err() {
                return fallback();
            }
            let (value, wrapped) = map.next_value_seed(AnyValue {
                in_array: false,
                top_level: true,
            })?;
            if wrapped {
                unindexed.insert(name.clone());
            }
            if properties.insert(name, value).is_some() {
                // A repeated name: the reference keeps the last one, whatever came before.
                return fallback();
            }
        }
        Ok((properties, unindexed))
    }
}

/// One value. A top-level property's value may be wrapped `{"$unindexed": …}`, which the
/// second element of the result reports.
#[derive(Clone, Copy)]
struct AnyValue {
    in_array: bool,
    top_level: bool,
}

impl<'de> DeserializeSeed<'de> for AnyValue {
    type Value = (Value, bool);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AnyValue {
    type Value = (Value, bool);

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a typed-JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok((Value::Null, false))
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Self::Value, E> {
        Ok((Value::Bool(b), false))
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Self::Value, E> {
        Ok((Value::Int(i), false))
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Self::Value, E> {
        match i64::try_from(u) {
            Ok(i) => Ok((Value::Int(i), false)),
            // The reference refuses it (an integer outside int64).
            Err(_) => fallback(),
        }
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Self::Value, E> {
        // serde_json's tree holds no number for a non-finite float.
        if f.is_finite() {
            Ok((Value::Float(f), false))
        } else {
            fallback()
        }
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok((Value::String(s.into()), false))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
        Ok((Value::String(s), false))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        if self.in_array {
            // Arrays do not nest: the reference refuses it.
            return fallback();
        }
        let element = AnyValue {
            in_array: true,
            top_level: false,
        };
        let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some((value, _)) = seq.next_element_seed(element)? {
            values.push(value);
        }
        Ok((Value::Array(values), false))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let Some(first) = map.next_key::<String>()? else {
            return Ok((Value::Entity(Properties::new()), false));
        };
        if first.starts_with('$') {
            // A typed value: a one-member object whose name starts with `$`.
            let read = if first == "$unindexed" {
                if !self.top_level {
                    return fallback();
                }
                let (inner, _) = map.next_value_seed(AnyValue {
                    in_array: false,
                    top_level: false,
                })?;
                (inner, true)
            } else {
                let text = map.next_value_seed(Text)?;
                match value::typed_from_json(&first, &Json::String(text), "") {
                    Ok(typed) => (typed, false),
                    Err(_) => return fallback(),
                }
            };
            if map.next_key::<de::IgnoredAny>()?.is_some() {
                // More members: an embedded entity with a reserved name, which the reference
                // refuses.
                return fallback();
            }
            return Ok(read);
        }
        // An embedded entity.
        let member = AnyValue {
            in_array: false,
            top_level: false,
        };
        let mut properties = Properties::new();
        let mut name = first;
        loop {
            if value::check_property_name(&name, &name).is_err() {
                return fallback();
            }
            let (value, _) = map.next_value_seed(member)?;
            if properties.insert(name, value).is_some() {
                return fallback();
            }
            match map.next_key::<String>()? {
                Some(next) => name = next,
                None => return Ok((Value::Entity(properties), false)),
            }
        }
    }
}

/// The string inside a typed value (`{"$bytes": "…"}`).
struct Text;

impl<'de> DeserializeSeed<'de> for Text {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Text {
    type Value = String;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(s.into())
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
        Ok(s)
    }

    fall_back_on_others!(
        visit_bool(bool),
        visit_i64(i64),
        visit_u64(u64),
        visit_f64(f64),
        visit_unit(),
    );

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        fallback()
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        fallback()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use alloc::format;
    use alloc::string::ToString;
    use alloc::vec;

    use proptest::prelude::*;

    use super::*;
    use crate::{Entity, Key};

    fn key() -> Key {
        Key::name("Item", "k")
    }

    /// What the reference reader gives for `text`, as the direct reader's result type.
    fn reference(text: &str) -> Result<(Properties, BTreeSet<String>), String> {
        Entity::from_json_reference(key(), text)
            .map(|entity| (entity.properties, entity.unindexed))
            .map_err(|err| err.to_string())
    }

    /// The property every reading must keep: where the direct reader reads, it gives what
    /// the reference gives.
    fn agrees(text: &str) -> Option<(Properties, BTreeSet<String>)> {
        let direct = read_properties(text);
        if let Some(read) = &direct {
            assert_eq!(Ok(read), reference(text).as_ref(), "{text}");
        }
        direct
    }

    #[test]
    fn reads_plain_valid_objects_as_the_reference_does() {
        for text in [
            "{}",
            " { } ",
            r#"{"a":null,"b":true,"c":false,"d":-7,"e":9223372036854775807,"f":1.5}"#,
            r#"{"min":-9223372036854775808,"neg_zero":-0.0,"exp":1e-7,"big":1.5e300}"#,
            r#"{"huge_int":100000000000000000000000000000}"#,
            r#"{"s":"é\n\"\\","t":["a",1,null,{"x":[2]}],"e":{"n":{"m":[]}}}"#,
            r#"{"u":{"$unindexed":"long text"},"w":{"$unindexed":{"in":[1,2]}}}"#,
            r#"{"b":{"$bytes":"AAEC"},"t":{"$timestamp":"2024-05-06T07:08:09.123456Z"}}"#,
            r#"{"k":{"$key":"Account:alice/Transfer:3"},"f":{"$float":"NaN"}}"#,
            r#"{"i":{"$float":"-Infinity"},"arr":[{"$bytes":""},{"$key":"A:1"}]}"#,
            r#"{"e":{}, "a":[]}"#,
        ] {
            assert!(agrees(text).is_some(), "left to the reference: {text}");
        }
    }

    #[test]
    fn leaves_to_the_reference_whatever_it_cannot_be_sure_of() {
        for text in [
            "",
            "[1]",
            "3",
            "null",
            r#""text""#,
            "{",
            r#"{"a":1} x"#,
            r#"{"a":1,"a":2}"#,
            r#"{"a":{"$unindexed":1},"a":2}"#,
            r#"{"e":{"x":1,"x":2}}"#,
            r#"{"":1}"#,
            r#"{"__x":1}"#,
            r#"{"$x":1}"#,
            r#"{"e":{"$bytes":"AA==","y":1}}"#,
            r#"{"e":{"y":1,"$bytes":"AA=="}}"#,
            r#"{"e":{"$bytes":"AA==","$bytes":"AA=="}}"#,
            r#"{"b":{"$bytes":"not base64!"}}"#,
            r#"{"b":{"$bytes":1}}"#,
            r#"{"t":{"$timestamp":"yesterday"}}"#,
            r#"{"k":{"$key":""}}"#,
            r#"{"f":{"$float":"1.5"}}"#,
            r#"{"x":{"$other":"1"}}"#,
            r#"{"n":{"$unindexed":{"$unindexed":1}}}"#,
            r#"{"a":[{"$unindexed":1}]}"#,
            r#"{"a":[[1]]}"#,
            r#"{"a":18446744073709551615}"#,
            r#"{"a":9223372036854775808}"#,
            r#"{"a":1e400}"#,
            r#"{"$serde_json::private::RawValue":"-0"}"#,
            r#"{"p":{"$serde_json::private::RawValue":"-0"}}"#,
        ] {
            assert!(agrees(text).is_none(), "read directly: {text}");
        }
    }

    #[test]
    fn entity_from_json_and_decode_answer_as_the_reference_does() {
        let long_name = "n".repeat(crate::key::MAX_NAME_BYTES + 1);
        for text in [
            r#"{"a":1,"a":{"$bytes":"%%"}}"#.to_string(),
            r#"{"a":{"$bytes":"%%"},"a":1}"#.to_string(),
            r#"{"b":[[1]],"a":{"$x":1}}"#.to_string(),
            format!(r#"{{"{long_name}":1}}"#),
            r#"{"ok":{"$timestamp":"0001-01-01T00:00:00Z"}}"#.to_string(),
        ] {
            let via_reference = Entity::from_json_reference(key(), &text);
            assert_eq!(Entity::from_json(key(), &text), via_reference, "{text}");
            let mut stored = vec![crate::entity::FORMAT_TYPED_JSON];
            stored.extend_from_slice(text.as_bytes());
            let decoded = Entity::decode(key(), &stored);
            assert_eq!(decoded.is_ok(), via_reference.is_ok(), "{text}");
            if let Ok(entity) = via_reference {
                assert_eq!(decoded, Ok(entity));
            }
        }
    }

    /// JSON text with what makes typed JSON interesting: typed forms (valid and not),
    /// reserved, escaped, overlong and repeated names, arrays in arrays, numbers at the
    /// int64 edges and beyond, space between tokens. Mostly valid pieces, so that most texts
    /// are valid but for one thing.
    fn json_text() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            3 => Just("null".to_string()),
            3 => any::<bool>().prop_map(|b| b.to_string()),
            6 => any::<i64>().prop_map(|i| i.to_string()),
            2 => any::<u64>().prop_map(|u| u.to_string()),
            1 => "-?[1-9][0-9]{19,22}",
            1 => Just("-0".to_string()),
            1 => Just("-0.0".to_string()),
            1 => Just("1e400".to_string()),
            4 => (-1e6f64..1e6).prop_map(|f| format!("{f:?}")),
            2 => proptest::num::f64::NORMAL.prop_map(|f| format!("{f:e}")),
            6 => "[a-z\\\\\"é]{0,6}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
            2 => Just(r#"{"$bytes":"AAEC"}"#.to_string()),
            1 => Just(r#"{"$bytes":"A"}"#.to_string()),
            1 => Just(r#"{"$bytes":"AA==","$bytes":"AQ=="}"#.to_string()),
            2 => Just(r#"{"$timestamp":"2024-05-06T07:08:09Z"}"#.to_string()),
            2 => Just(r#"{"$key":"A:b/C:1"}"#.to_string()),
            1 => Just(r#"{"$key":"A:0"}"#.to_string()),
            1 => Just(r#"{"\u0024key":"A:1"}"#.to_string()),
            2 => Just(r#"{"$float":"Infinity"}"#.to_string()),
            1 => Just(r#"{"$float":3}"#.to_string()),
            1 => Just(r#"{"$mystery":"x"}"#.to_string()),
            2 => Just(r#"{"$unindexed":"w"}"#.to_string()),
            1 => Just(r#"{"$unindexed":1,"$unindexed":2}"#.to_string()),
        ];
        // Names as JSON string literals.
        let literal = |name: String| serde_json::to_string(&name).unwrap_or_default();
        let name = prop_oneof![
            24 => "[a-c]".prop_map(literal),
            1 => Just(literal(String::new())),
            1 => Just(literal("$bytes".into())),
            2 => Just(literal("$unindexed".into())),
            1 => Just(literal("__x".into())),
            1 => Just(r#""\u0024bytes""#.to_string()),
            1 => Just(literal("n".repeat(crate::key::MAX_NAME_BYTES + 1))),
        ];
        let top_name = prop_oneof![
            12 => "[a-f]{1,2}".prop_map(literal),
            1 => Just(literal("$unindexed".into())),
            1 => Just(literal("__y".into())),
            1 => Just(r#""\u005f_y""#.to_string()),
        ];
        let object = |members: Vec<(String, String)>, space: &str| {
            let members: Vec<String> = members
                .into_iter()
                .map(|(name, value)| format!("{name}{space}:{space}{value}"))
                .collect();
            format!("{{{space}{}{space}}}", members.join(&format!(",{space}")))
        };
        let value = leaf.prop_recursive(6, 32, 4, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                proptest::collection::vec((name.clone(), inner), 0..4)
                    .prop_map(move |members| object(members, "")),
            ]
        });
        let space = prop_oneof![4 => Just(""), 1 => Just(" \n\t")];
        prop_oneof![
            1 => value.clone(),
            4 => (proptest::collection::vec((top_name, value), 0..6), space)
                .prop_map(move |(members, space)| object(members, space)),
        ]
    }

    proptest! {
        #[test]
        fn the_direct_reader_agrees_with_the_reference(text in json_text()) {
            agrees(&text);
            let via_reference = Entity::from_json_reference(key(), &text);
            prop_assert_eq!(Entity::from_json(key(), &text), via_reference);
        }

        #[test]
        fn what_the_model_writes_is_read_directly(text in json_text()) {
            // The canonical text of any entity the reference reads.
            if let Ok(entity) = Entity::from_json_reference(key(), &text) {
                let canonical = entity.properties_json();
                let direct = agrees(&canonical);
                prop_assert!(direct.is_some(), "left to the reference: {}", canonical);
            }
        }
    }
}
