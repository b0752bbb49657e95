//! Typed property values, their lossless JSON mapping, and their order-preserving index
//! encoding.
//!
//! # JSON mapping
//!
//! | type | JSON |
//! |---|---|
//! | null | `null` |
//! | bool | `true`, `false` |
//! | int64 | an integer without fraction or exponent: `42` (must fit in i64) |
//! | float64 | a number with a fraction or exponent: `1.0`, `2.5e-3`; `{"$float": "NaN"}`, `{"$float": "Infinity"}`, `{"$float": "-Infinity"}` |
//! | string | a string |
//! | bytes | `{"$bytes": "<standard base64, padded>"}` |
//! | timestamp | `{"$timestamp": "2024-05-01T12:00:00.123456Z"}` (RFC 3339, microseconds, years 1–9999) |
//! | key | `{"$key": "Account:alice"}` (the key syntax of [`crate::key`]; its URL-safe form is read too) |
//! | array | an array of non-array values |
//! | embedded entity | an object whose property names do not start with `$` |
//!
//! A top-level property may also be written `{"$unindexed": <value>}`: the value is stored
//! and returned but not indexed (see [`crate::entity`]). Property names starting with `$`
//! are reserved for these forms. Writing a value and reading it back gives the same JSON,
//! in canonical form (object keys sorted, floats always with a fraction or exponent).
//!
//! (One file of about 850 lines, 150 of them tests: the mapping, the index encoding and the
//! comparison it must agree with are read side by side.)

use crate::error::quote;
use alloc::borrow::ToOwned;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cmp::Ordering;
use core::fmt::Write as _;

use base64::Engine as _;
use serde_json::{Map, Number, Value as Json};

use crate::encoding;
use crate::key::Key;

/// A property name to its value: the properties of an entity or embedded entity.
pub type Properties = BTreeMap<String, Value>;

/// Largest string or bytes value that may be indexed, in bytes (Cloud Datastore's limit).
pub const MAX_INDEXED_BYTES: usize = 1500;

/// A typed property value.
#[derive(Debug, Clone)]
pub enum Value {
    /// No value.
    Null,
    /// A boolean.
    Bool(bool),
    /// A 64-bit signed integer.
    Int(i64),
    /// A 64-bit float (NaN and infinities included).
    Float(f64),
    /// A UTF-8 string.
    String(String),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// Microseconds since 1970-01-01T00:00:00Z, within years 1–9999.
    Timestamp(i64),
    /// A reference to another entity.
    Key(Key),
    /// Several values; arrays do not nest.
    Array(Vec<Value>),
    /// An embedded entity: properties without a key. Never indexed.
    Entity(Properties),
}

/// Exact equality: floats compare by bit pattern, so NaN equals itself and `-0.0` differs
/// from `0.0`. This is the identity the lossless mapping keeps; query semantics use
/// [`compare`].
impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) | (Value::Timestamp(a), Value::Timestamp(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
            (Value::String(a), Value::String(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            (Value::Key(a), Value::Key(b)) => a == b,
            (Value::Array(a), Value::Array(b)) => a == b,
            (Value::Entity(a), Value::Entity(b)) => a == b,
            _ => false,
        }
    }
}

/// The type of a value, as a model declares it and as error messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// `null`.
    Null,
    /// `bool`.
    Bool,
    /// `int64`.
    Int,
    /// `float64`.
    Float,
    /// `string`.
    String,
    /// `bytes`.
    Bytes,
    /// `timestamp`.
    Timestamp,
    /// `key`.
    Key,
    /// `array`.
    Array,
    /// `entity` (embedded).
    Entity,
}

impl Type {
    /// The type's name in messages and documentation.
    pub fn name(self) -> &'static str {
        match self {
            Type::Null => "null",
            Type::Bool => "bool",
            Type::Int => "int64",
            Type::Float => "float64",
            Type::String => "string",
            Type::Bytes => "bytes",
            Type::Timestamp => "timestamp",
            Type::Key => "key",
            Type::Array => "array",
            Type::Entity => "entity",
        }
    }
}

impl core::fmt::Display for Type {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl Value {
    /// The value's type.
    pub fn ty(&self) -> Type {
        match self {
            Value::Null => Type::Null,
            Value::Bool(_) => Type::Bool,
            Value::Int(_) => Type::Int,
            Value::Float(_) => Type::Float,
            Value::String(_) => Type::String,
            Value::Bytes(_) => Type::Bytes,
            Value::Timestamp(_) => Type::Timestamp,
            Value::Key(_) => Type::Key,
            Value::Array(_) => Type::Array,
            Value::Entity(_) => Type::Entity,
        }
    }

    /// The values a query sees for a property holding this value: the elements of an
    /// array, or the value itself.
    pub fn elements(&self) -> &[Value] {
        match self {
            Value::Array(values) => values,
            other => core::slice::from_ref(other),
        }
    }

    /// Reads a value from its JSON form; `path` names the property in errors.
    pub fn from_json(json: &Json, path: &str) -> Result<Value, String> {
        Self::from_json_inner(json, path, false)
    }

    fn from_json_inner(json: &Json, path: &str, in_array: bool) -> Result<Value, String> {
        Ok(match json {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => number_from_json(n, path)?,
            Json::String(s) => Value::String(s.clone()),
            Json::Array(items) => {
                if in_array {
                    return Err(format!(
                        "property {path}: arrays cannot contain arrays (as in Cloud Datastore)"
                    ));
                }
                let values = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        // The element's path is built only for an error: reading must not
                        // format a string per element.
                        Self::from_json_inner(item, path, true).map_err(|err| {
                            let prefix = format!("property {path}");
                            match err.strip_prefix(&prefix) {
                                Some(rest) => format!("{prefix}[{i}]{rest}"),
                                None => err,
                            }
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Value::Array(values)
            }
            Json::Object(object) => match typed_form(object) {
                Some((tag, inner)) => typed_from_json(tag, inner, path)?,
                None => Value::Entity(properties_from_json(object, path)?),
            },
        })
    }

    /// The value's JSON form (canonical: reading it back gives an equal value).
    pub fn to_json(&self) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Int(i) => Json::Number((*i).into()),
            Value::Float(f) => match Number::from_f64(*f) {
                Some(n) => Json::Number(n),
                None => tagged(
                    "$float",
                    Json::String(
                        if f.is_nan() {
                            "NaN"
                        } else if *f > 0.0 {
                            "Infinity"
                        } else {
                            "-Infinity"
                        }
                        .into(),
                    ),
                ),
            },
            Value::String(s) => Json::String(s.clone()),
            Value::Bytes(b) => tagged(
                "$bytes",
                Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
            ),
            Value::Timestamp(micros) => {
                tagged("$timestamp", Json::String(format_timestamp(*micros)))
            }
            Value::Key(key) => tagged("$key", Json::String(key.to_string())),
            Value::Array(values) => Json::Array(values.iter().map(Value::to_json).collect()),
            Value::Entity(properties) => Json::Object(properties_to_json(properties)),
        }
    }

    /// Bytes this value takes in the size accounting of an entity (about its stored size).
    pub fn size(&self) -> usize {
        match self {
            Value::Null | Value::Bool(_) => 1,
            Value::Int(_) | Value::Float(_) | Value::Timestamp(_) => 8,
            Value::String(s) => s.len(),
            Value::Bytes(b) => b.len(),
            Value::Key(k) => k.encoded_len(),
            Value::Array(values) => values.iter().map(Value::size).sum::<usize>() + 1,
            Value::Entity(properties) => properties
                .iter()
                .map(|(name, value)| name.len() + value.size())
                .sum::<usize>(),
        }
    }
}

fn tagged(tag: &str, inner: Json) -> Json {
    let mut object = Map::new();
    object.insert(tag.into(), inner);
    Json::Object(object)
}

/// `Some((tag, inner))` when `object` is a one-member object whose name starts with `$`.
pub(crate) fn typed_form(object: &Map<String, Json>) -> Option<(&str, &Json)> {
    if object.len() != 1 {
        return None;
    }
    let (name, inner) = object.iter().next()?;
    name.starts_with('$').then_some((name.as_str(), inner))
}

fn number_from_json(n: &Number, path: &str) -> Result<Value, String> {
    if let Some(i) = n.as_i64() {
        return Ok(Value::Int(i));
    }
    // Numbers are formatted by hand, not with `Number`'s `Display`: see `crate::json`.
    if let Some(u) = n.as_u64() {
        return Err(format!(
            "property {path}: integer {u} is outside the int64 range (write it as a float, e.g. {u}.0)"
        ));
    }
    n.as_f64()
        .map(Value::Float)
        .ok_or_else(|| format!("property {path}: the number is not representable"))
}

pub(crate) fn typed_from_json(tag: &str, inner: &Json, path: &str) -> Result<Value, String> {
    let text = |what: &str| {
        inner
            .as_str()
            .ok_or_else(|| format!("property {path}: {{\"{tag}\": …}} takes a string ({what})"))
    };
    match tag {
        "$bytes" => base64::engine::general_purpose::STANDARD
            .decode(text("standard base64")?)
            .map(Value::Bytes)
            .map_err(|err| format!("property {path}: $bytes is not standard base64: {err}")),
        "$timestamp" => parse_timestamp(text("an RFC 3339 timestamp")?)
            .map(Value::Timestamp)
            .map_err(|err| format!("property {path}: {err}")),
        "$key" => {
            let key = Key::parse_any(text("a key such as Account:alice")?)
                .map_err(|err| format!("property {path}: $key is not a key: {err}"))?;
            key.validate()
                .map_err(|err| format!("property {path}: $key is not a valid key: {err}"))?;
            Ok(Value::Key(key))
        }
        "$float" => match text("NaN, Infinity or -Infinity")? {
            "NaN" => Ok(Value::Float(f64::NAN)),
            "Infinity" => Ok(Value::Float(f64::INFINITY)),
            "-Infinity" => Ok(Value::Float(f64::NEG_INFINITY)),
            other => Err(format!(
                "property {path}: $float takes \"NaN\", \"Infinity\" or \"-Infinity\", not {other:?} \
                 (write finite floats as JSON numbers)"
            )),
        },
        "$unindexed" => Err(format!(
            "property {path}: {{\"$unindexed\": …}} may only wrap a top-level property's value"
        )),
        other => Err(format!(
            "property {path}: unknown typed value {other:?} (known: $bytes, $timestamp, $key, \
             $float, $unindexed); property names starting with $ are reserved"
        )),
    }
}

/// Reads the properties of an (embedded) entity; `path` prefixes property names in errors.
pub(crate) fn properties_from_json(
    object: &Map<String, Json>,
    path: &str,
) -> Result<Properties, String> {
    let mut properties = Properties::new();
    for (name, json) in object {
        let full = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        check_property_name(name, &full)?;
        properties.insert(name.clone(), Value::from_json(json, &full)?);
    }
    Ok(properties)
}

/// Checks what reading a value from JSON guarantees, for values built in Rust: arrays do not
/// nest, timestamps are within years 1–9999, keys are valid, and embedded entities have
/// valid property names (so the value's JSON form reads back as the same value).
pub(crate) fn check_value(value: &Value, path: &str, in_array: bool) -> Result<(), String> {
    match value {
        Value::Array(values) => {
            if in_array {
                return Err(format!(
                    "property {path}: arrays cannot contain arrays (as in Cloud Datastore)"
                ));
            }
            for (i, element) in values.iter().enumerate() {
                check_value(element, &format!("{path}[{i}]"), true)?;
            }
            Ok(())
        }
        Value::Timestamp(micros) if !(MIN_TIMESTAMP..=MAX_TIMESTAMP).contains(micros) => Err(
            format!("property {path}: timestamp {micros} µs is outside years 1 to 9999"),
        ),
        Value::Key(key) => key
            .validate()
            .map_err(|err| format!("property {path}: not a valid key: {err}")),
        Value::Entity(properties) => {
            for (name, inner) in properties {
                let full = format!("{path}.{name}");
                check_property_name(name, &full)?;
                check_value(inner, &full, false)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Checks one property name; `full` is its dotted path for the message.
pub(crate) fn check_property_name(name: &str, full: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(match full.strip_suffix('.') {
            Some(parent) if !parent.is_empty() => {
                format!("a property name is empty (inside property {parent})")
            }
            _ => "a property name is empty".into(),
        });
    }
    if name.len() > crate::key::MAX_NAME_BYTES {
        return Err(format!(
            "property name of {} bytes is over the {}-byte limit",
            name.len(),
            crate::key::MAX_NAME_BYTES
        ));
    }
    if name.starts_with('$') {
        return Err(format!(
            "property {full}: names starting with $ are reserved for typed values"
        ));
    }
    if name.starts_with("__") {
        return Err(format!(
            "property {full}: names starting with \"__\" are reserved for the datastore"
        ));
    }
    Ok(())
}

pub(crate) fn properties_to_json(properties: &Properties) -> Map<String, Json> {
    properties
        .iter()
        .map(|(name, value)| (name.clone(), value.to_json()))
        .collect()
}

// ---- Timestamps ----

const MICROS_PER_SECOND: i64 = 1_000_000;
/// 0001-01-01T00:00:00Z in microseconds since the epoch.
pub const MIN_TIMESTAMP: i64 = -62_135_596_800 * MICROS_PER_SECOND;
/// 9999-12-31T23:59:59.999999Z in microseconds since the epoch.
pub const MAX_TIMESTAMP: i64 = 253_402_300_799 * MICROS_PER_SECOND + 999_999;

/// Formats microseconds since the epoch as RFC 3339 in UTC: no fraction when it is zero,
/// six digits otherwise.
pub fn format_timestamp(micros: i64) -> String {
    let seconds = micros.div_euclid(MICROS_PER_SECOND);
    let fraction = micros.rem_euclid(MICROS_PER_SECOND);
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    );
    if fraction != 0 {
        let _ = write!(out, ".{fraction:06}");
    }
    out.push('Z');
    out
}

/// Parses an RFC 3339 timestamp (`Z` or a `±HH:MM` offset; at most microsecond precision;
/// years 1–9999) into microseconds since the epoch.
pub fn parse_timestamp(text: &str) -> Result<i64, String> {
    let bad = || {
        format!(
            "{} is not an RFC 3339 timestamp such as \"2024-05-01T12:00:00.5Z\"",
            quote(text)
        )
    };
    let b = text.as_bytes();
    let digits = |range: core::ops::Range<usize>| -> Result<i64, String> {
        let part = b.get(range).ok_or_else(bad)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        Ok(part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let sep = |at: usize, want: &[u8]| -> Result<(), String> {
        match b.get(at) {
            Some(c) if want.contains(c) => Ok(()),
            _ => Err(bad()),
        }
    };
    let year = digits(0..4)?;
    sep(4, b"-")?;
    let month = digits(5..7)?;
    sep(7, b"-")?;
    let day = digits(8..10)?;
    sep(10, b"Tt ")?;
    let hour = digits(11..13)?;
    sep(13, b":")?;
    let minute = digits(14..16)?;
    sep(16, b":")?;
    let second = digits(17..19)?;
    let mut at = 19;
    let mut micros = 0i64;
    if b.get(at) == Some(&b'.') {
        let start = at + 1;
        let mut end = start;
        while b.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
        if end == start {
            return Err(bad());
        }
        for (i, d) in b[start..end].iter().enumerate() {
            let d = i64::from(d - b'0');
            if i < 6 {
                micros += d * 10i64.pow(5 - i as u32);
            } else if d != 0 {
                return Err(format!(
                    "{} has sub-microsecond digits; timestamps have microsecond precision",
                    quote(text)
                ));
            }
        }
        at = end;
    }
    let offset_seconds = match b.get(at) {
        Some(b'Z' | b'z') if b.len() == at + 1 => 0,
        Some(&sign @ (b'+' | b'-')) if b.len() == at + 6 => {
            let hours = digits(at + 1..at + 3)?;
            sep(at + 3, b":")?;
            let minutes = digits(at + 4..at + 6)?;
            if hours > 23 || minutes > 59 {
                return Err(bad());
            }
            let offset = hours * 3600 + minutes * 60;
            if sign == b'+' { offset } else { -offset }
        }
        _ => return Err(bad()),
    };
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(format!("{} is not a valid date and time", quote(text)));
    }
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    let total = seconds * MICROS_PER_SECOND + micros;
    if !(MIN_TIMESTAMP..=MAX_TIMESTAMP).contains(&total) {
        return Err(format!(
            "{} is outside the supported range (years 1 to 9999 in UTC)",
            quote(text)
        ));
    }
    Ok(total)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

// ---- Index order ----

/// Index tags: the first byte of an indexed value's encoding; their order is the order of
/// types in indexes and queries (as in Cloud Datastore, types never interleave).
mod tag {
    pub const NULL: u8 = 0x10;
    pub const FALSE: u8 = 0x20;
    pub const TRUE: u8 = 0x21;
    pub const INT: u8 = 0x30;
    pub const TIMESTAMP: u8 = 0x38;
    pub const FLOAT: u8 = 0x40;
    pub const STRING: u8 = 0x50;
    pub const BYTES: u8 = 0x58;
    pub const KEY: u8 = 0x60;
}

/// True for the values an index can hold: everything but arrays (indexed per element) and
/// embedded entities (never indexed).
pub fn is_indexable(value: &Value) -> bool {
    !matches!(value, Value::Array(_) | Value::Entity(_))
}

/// Appends the order-preserving, prefix-free encoding of an indexable value.
///
/// Bytewise order of encodings equals [`compare`]. Floats are normalised so that `-0.0`
/// and `0.0` encode alike and every NaN encodes alike, below `-Infinity`.
///
/// # Panics
///
/// Never for indexable values; arrays and embedded entities encode as nothing (callers
/// check [`is_indexable`] first).
pub fn encode_index_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(tag::NULL),
        Value::Bool(false) => out.push(tag::FALSE),
        Value::Bool(true) => out.push(tag::TRUE),
        Value::Int(i) => {
            out.push(tag::INT);
            encoding::put_u64(out, (*i as u64) ^ (1 << 63));
        }
        Value::Timestamp(t) => {
            out.push(tag::TIMESTAMP);
            encoding::put_u64(out, (*t as u64) ^ (1 << 63));
        }
        Value::Float(f) => {
            out.push(tag::FLOAT);
            let bits = if f.is_nan() {
                0
            } else {
                let bits = if *f == 0.0 { 0 } else { f.to_bits() };
                if bits >> 63 == 1 {
                    !bits
                } else {
                    bits ^ (1 << 63)
                }
            };
            encoding::put_u64(out, bits);
        }
        Value::String(s) => {
            out.push(tag::STRING);
            encoding::put_bytes(out, s.as_bytes());
        }
        Value::Bytes(b) => {
            out.push(tag::BYTES);
            encoding::put_bytes(out, b);
        }
        Value::Key(key) => {
            out.push(tag::KEY);
            encoding::put_bytes(out, &key.encode());
        }
        Value::Array(_) | Value::Entity(_) => {}
    }
}

/// The encoded-byte range `[start, end)` holding every value of `value`'s type group:
/// what a range filter with only one bound is limited to (ranges never cross types).
pub fn type_group(value: &Value) -> (u8, u8) {
    match value {
        Value::Null => (tag::NULL, tag::NULL + 1),
        Value::Bool(_) => (tag::FALSE, tag::TRUE + 1),
        Value::Int(_) => (tag::INT, tag::INT + 1),
        Value::Timestamp(_) => (tag::TIMESTAMP, tag::TIMESTAMP + 1),
        Value::Float(_) => (tag::FLOAT, tag::FLOAT + 1),
        Value::String(_) => (tag::STRING, tag::STRING + 1),
        Value::Bytes(_) => (tag::BYTES, tag::BYTES + 1),
        Value::Key(_) => (tag::KEY, tag::KEY + 1),
        Value::Array(_) | Value::Entity(_) => (0, 0),
    }
}

/// The query order of two indexable values, written independently of the encoding (the
/// property tests check that the encoding agrees): by type (null, bool, int64, timestamp,
/// float64, string, bytes, key), then by value; floats order NaN first and treat `-0.0`
/// as `0.0`.
pub fn compare(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Int(_) => 2,
            Value::Timestamp(_) => 3,
            Value::Float(_) => 4,
            Value::String(_) => 5,
            Value::Bytes(_) => 6,
            Value::Key(_) => 7,
            Value::Array(_) => 8,
            Value::Entity(_) => 9,
        }
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Int(x), Value::Int(y)) | (Value::Timestamp(x), Value::Timestamp(y)) => x.cmp(y),
        (Value::Float(x), Value::Float(y)) => match (x.is_nan(), y.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        },
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Bytes(x), Value::Bytes(y)) => x.cmp(y),
        (Value::Key(x), Value::Key(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// True when `a` and `b` are in the same type group (a range filter compares only those).
pub fn same_type_group(a: &Value, b: &Value) -> bool {
    type_group(a) == type_group(b)
}

/// A property path for messages: the name, or `name[i]` for an array element.
pub(crate) fn element_path(name: &str, index: Option<usize>) -> String {
    match index {
        Some(i) => format!("{name}[{i}]"),
        None => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(json: &str) -> String {
        let parsed: Json = serde_json::from_str(json).unwrap();
        let value = Value::from_json(&parsed, "p").unwrap();
        let out = serde_json::to_string(&value.to_json()).unwrap();
        let again: Json = serde_json::from_str(&out).unwrap();
        assert_eq!(Value::from_json(&again, "p").unwrap(), value, "{json}");
        out
    }

    #[test]
    fn json_mapping_is_lossless_and_canonical() {
        assert_eq!(round_trip("1"), "1");
        assert_eq!(round_trip("-9223372036854775808"), "-9223372036854775808");
        assert_eq!(round_trip("1.0"), "1.0");
        assert_eq!(round_trip("1e2"), "100.0");
        assert_eq!(round_trip("-0.0"), "-0.0");
        assert_eq!(round_trip(r#"{"$float":"NaN"}"#), r#"{"$float":"NaN"}"#);
        assert_eq!(
            round_trip(r#"{"$float":"-Infinity"}"#),
            r#"{"$float":"-Infinity"}"#
        );
        assert_eq!(round_trip(r#"{"$bytes":"AP8="}"#), r#"{"$bytes":"AP8="}"#);
        assert_eq!(
            round_trip(r#"{"$timestamp":"2024-02-29T23:59:59.000001+01:00"}"#),
            r#"{"$timestamp":"2024-02-29T22:59:59.000001Z"}"#
        );
        assert_eq!(
            round_trip(r#"{"$key":"ns@Account:alice/Order:7"}"#),
            r#"{"$key":"ns@Account:alice/Order:7"}"#
        );
        // The URL-safe form is read too, and written back in the key syntax.
        let urlsafe = "ns@Account:alice/Order:7"
            .parse::<Key>()
            .unwrap()
            .to_urlsafe();
        assert_eq!(
            round_trip(&format!(r#"{{"$key":"{urlsafe}"}}"#)),
            r#"{"$key":"ns@Account:alice/Order:7"}"#
        );
        assert_eq!(
            round_trip(r#"{"b":[1,"x",null],"a":{"c":true}}"#),
            r#"{"a":{"c":true},"b":[1,"x",null]}"#
        );
    }

    #[test]
    fn bad_json_values_name_the_property() {
        for (json, want) in [
            ("18446744073709551615", "int64 range"),
            ("[[1]]", "arrays cannot contain arrays"),
            ("[[1]]", "property prop[0]:"),
            (r#"[1, {"a": {"$bytes": 1}}]"#, "property prop[1].a:"),
            (r#"{"$bytes":"!!"}"#, "base64"),
            (r#"{"$bytes":1}"#, "takes a string"),
            (
                r#"{"$timestamp":"2023-02-29T00:00:00Z"}"#,
                "not a valid date",
            ),
            (
                r#"{"$timestamp":"2024-01-01T00:00:00.0000001Z"}"#,
                "microsecond",
            ),
            (r#"{"$timestamp":"10000-01-01T00:00:00Z"}"#, "RFC 3339"),
            (r#"{"$timestamp":"0000-12-31T23:59:59Z"}"#, "range"),
            (r#"{"$key":"Account:0"}"#, "id 0"),
            (r#"{"$key":"nope"}"#, "not a key"),
            (r#"{"$float":"1.5"}"#, "JSON numbers"),
            (r#"{"$what":1}"#, "unknown typed value"),
            (r#"{"$unindexed":1}"#, "top-level"),
            (r#"{"a":1,"$b":2}"#, "reserved"),
            (r#"{"__b":2}"#, "reserved"),
        ] {
            let parsed: Json = serde_json::from_str(json).unwrap();
            let err = Value::from_json(&parsed, "prop").unwrap_err();
            assert!(err.contains(want), "{json}: {err}");
            assert!(err.contains("prop"), "{json}: {err}");
        }
    }

    #[test]
    fn timestamps_cover_the_whole_range() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_timestamp(-1), "1969-12-31T23:59:59.999999Z");
        assert_eq!(format_timestamp(MIN_TIMESTAMP), "0001-01-01T00:00:00Z");
        assert_eq!(
            format_timestamp(MAX_TIMESTAMP),
            "9999-12-31T23:59:59.999999Z"
        );
        assert_eq!(parse_timestamp("0001-01-01T00:00:00Z"), Ok(MIN_TIMESTAMP));
        assert_eq!(
            parse_timestamp("9999-12-31T23:59:59.999999Z"),
            Ok(MAX_TIMESTAMP)
        );
    }

    pub(crate) fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            prop_oneof![
                any::<f64>(),
                Just(f64::NAN),
                Just(-0.0),
                Just(0.0),
                Just(f64::INFINITY),
                Just(f64::NEG_INFINITY)
            ]
            .prop_map(Value::Float),
            ".{0,6}".prop_map(Value::String),
            proptest::collection::vec(any::<u8>(), 0..6).prop_map(Value::Bytes),
            (MIN_TIMESTAMP..=MAX_TIMESTAMP).prop_map(Value::Timestamp),
            (1u64..4, "[a-c\0]{1,3}").prop_map(|(id, name)| Value::Key(
                Key::name("K", name).child(crate::PathElement::id("C", id))
            )),
        ]
    }

    proptest! {
        #[test]
        fn timestamps_round_trip(micros in MIN_TIMESTAMP..=MAX_TIMESTAMP) {
            prop_assert_eq!(parse_timestamp(&format_timestamp(micros)), Ok(micros));
        }

        #[test]
        fn index_encoding_preserves_query_order(a in scalar(), b in scalar()) {
            let (mut ea, mut eb) = (Vec::new(), Vec::new());
            encode_index_value(&a, &mut ea);
            encode_index_value(&b, &mut eb);
            prop_assert_eq!(ea.cmp(&eb), compare(&a, &b), "{:?} vs {:?}", a, b);
            // Prefix-free: a value's encoding never starts another's.
            if ea != eb {
                prop_assert!(!eb.starts_with(&ea) && !ea.starts_with(&eb));
            }
            let (start, end) = type_group(&a);
            prop_assert!(ea[0] >= start && ea[0] < end);
        }

        #[test]
        fn scalars_round_trip_through_json(v in scalar()) {
            let json = v.to_json();
            prop_assert_eq!(Value::from_json(&json, "p").unwrap(), v);
        }
    }
}
