//! JSON text out of the model: compact, in serde_json's layout, with core's float formatting.
//!
//! Why not `serde_json::to_string`: serde_json formats floats with `zmij`, whose 17 KB
//! lookup table was the largest item in the component's data segment, and a host maps
//! every page of that segment into each instance it runs (a read fault maps the pages
//! around it too). core's shortest round-trip formatting (`{:?}`) is already linked and
//! gives the same value back; only the text of some floats differs (`1e-5` where serde_json
//! writes `0.00001`). Everything else is byte for byte what serde_json's compact writer
//! produces, which the tests below check.
//!
//! Invariant for the component: guest code turns JSON into text only through this module
//! (never `Json::to_string`, `{}` on a `Json`, or a typed `Deserialize` whose error could
//! print a float), so serde_json's float formatter is never linked.

use alloc::format;
use alloc::string::String;
use core::fmt;

use serde_json::{Number, Value as Json};

/// Checks the integer literals of JSON `text` (already parsed, so valid JSON): each must
/// have an int64 form, since serde_json would otherwise read it as a float without a word
/// and the int64 the writer meant would be lost. Refused: `-0`, and integers below
/// `i64::MIN` or above `u64::MAX`. (Those between `i64::MAX` and `u64::MAX` are refused
/// later, with the property's name, when the value is read.)
pub fn check_integer_literals(text: &str) -> Result<(), String> {
    const I64_MIN_DIGITS: &str = "9223372036854775808";
    const U64_MAX_DIGITS: &str = "18446744073709551615";
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                let negative = bytes[i] == b'-';
                if negative {
                    i += 1;
                }
                let digits_start = i;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                let digits = &text[digits_start..i];
                let is_float = i < bytes.len() && matches!(bytes[i], b'.' | b'e' | b'E');
                while i < bytes.len()
                    && matches!(bytes[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    i += 1;
                }
                if is_float {
                    continue;
                }
                // Digit strings of one length compare as their numbers (no leading zeros).
                let beyond = |limit: &str| {
                    digits.len() > limit.len() || (digits.len() == limit.len() && digits > limit)
                };
                let literal = &text[start..i];
                if negative && digits == "0" {
                    return Err(format!(
                        "the integer {literal} is not an int64 (write 0, or -0.0 for the float)"
                    ));
                }
                if (negative && beyond(I64_MIN_DIGITS)) || (!negative && beyond(U64_MAX_DIGITS)) {
                    return Err(format!(
                        "the integer {literal} is outside the int64 range (write it as a \
                         float, e.g. {literal}.0)"
                    ));
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// `value` as compact JSON text.
pub fn to_string(value: &Json) -> String {
    let mut out = String::new();
    // Writing into a `String` cannot fail.
    let _ = write_value(&mut out, value);
    out
}

/// `prefix`, then `value` as compact JSON text, in a buffer of exactly that length: a first
/// pass counts the bytes, so a large value is written once and never moved by a growing
/// buffer (which would hold it twice, and three times its size at the move).
pub fn to_string_after(prefix: &str, value: &Json) -> String {
    /// Counts what would be written.
    struct Count(usize);
    impl fmt::Write for Count {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0 += s.len();
            Ok(())
        }
    }
    let mut count = Count(prefix.len());
    // Counting and writing into a `String` cannot fail.
    let _ = write_value(&mut count, value);
    let mut out = String::with_capacity(count.0);
    out.push_str(prefix);
    let _ = write_value(&mut out, value);
    out
}

/// Displays a JSON value as compact JSON text (for `format!` and `write!`).
pub struct Text<'a>(pub &'a Json);

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_value(f, self.0)
    }
}

fn write_value(out: &mut impl fmt::Write, value: &Json) -> fmt::Result {
    match value {
        Json::Null => out.write_str("null"),
        Json::Bool(true) => out.write_str("true"),
        Json::Bool(false) => out.write_str("false"),
        Json::Number(n) => write_number(out, n),
        Json::String(s) => write_string(out, s),
        Json::Array(items) => {
            out.write_char('[')?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.write_char(',')?;
                }
                write_value(out, item)?;
            }
            out.write_char(']')
        }
        Json::Object(map) => {
            out.write_char('{')?;
            for (i, (name, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.write_char(',')?;
                }
                write_string(out, name)?;
                out.write_char(':')?;
                write_value(out, item)?;
            }
            out.write_char('}')
        }
    }
}

fn write_number(out: &mut impl fmt::Write, n: &Number) -> fmt::Result {
    if let Some(i) = n.as_i64() {
        write!(out, "{i}")
    } else if let Some(u) = n.as_u64() {
        write!(out, "{u}")
    } else {
        // A `Number` holds only finite floats. `{:?}` is the shortest text that reads back
        // as the same `f64`, and always looks like a float (`1.0`, `1e16`, `-0.0`).
        write!(out, "{:?}", n.as_f64().unwrap_or(0.0))
    }
}

fn write_string(out: &mut impl fmt::Write, s: &str) -> fmt::Result {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.write_char('"')?;
    let mut start = 0;
    for (i, byte) in s.bytes().enumerate() {
        let escape: &str = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0C => "\\f",
            0x00..=0x1F => "",
            _ => continue,
        };
        out.write_str(&s[start..i])?;
        if escape.is_empty() {
            let hex = [
                HEX[usize::from(byte >> 4)] as char,
                HEX[usize::from(byte & 0xF)] as char,
            ];
            write!(out, "\\u00{}{}", hex[0], hex[1])?;
        } else {
            out.write_str(escape)?;
        }
        start = i + 1;
    }
    out.write_str(&s[start..])?;
    out.write_char('"')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn json() -> impl Strategy<Value = Json> {
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            any::<i64>().prop_map(Json::from),
            any::<u64>().prop_map(Json::from),
            any::<f64>().prop_map(Json::from),
            any::<String>().prop_map(Json::String),
            "[\\x00-\\x20\"\\\\\\x7f]{0,8}".prop_map(Json::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Json::Array),
                prop::collection::vec((any::<String>(), inner), 0..8)
                    .prop_map(|pairs| Json::Object(pairs.into_iter().collect())),
            ]
        })
    }

    fn has_float(value: &Json) -> bool {
        match value {
            Json::Number(n) => n.is_f64(),
            Json::Array(items) => items.iter().any(has_float),
            Json::Object(map) => map.values().any(has_float),
            _ => false,
        }
    }

    proptest! {
        /// The text reads back as the same value; without floats it is serde_json's text.
        #[test]
        fn writes_what_serde_json_reads_back(value in json()) {
            let text = to_string(&value);
            let after = to_string_after("\u{2}", &value);
            prop_assert_eq!(after.len(), after.capacity(), "counted exactly");
            prop_assert_eq!(&after[1..], &text[..]);
            let back: Json = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(&back, &value, "{}", text);
            if !has_float(&value) {
                prop_assert_eq!(text, serde_json::to_string(&value).unwrap());
            }
        }

        /// Every finite float survives the trip bit for bit (including `-0.0`).
        #[test]
        fn floats_round_trip_exactly(f in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
            let text = to_string(&Json::from(f));
            let back: f64 = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(back.to_bits(), f.to_bits(), "{}", text);
        }
    }

    #[test]
    fn integer_literals_without_an_int64_form_are_refused() {
        for ok in [
            r#"{"a": 0, "b": -9223372036854775808, "c": 18446744073709551615}"#,
            r#"{"a": -0.0, "b": 1e400, "c": 123456789012345678901234.5, "d": -1E2}"#,
            r#"{"s": "-0 and 99999999999999999999999 in a string \" -0"}"#,
            r#"[1, -2, 3]"#,
        ] {
            assert_eq!(check_integer_literals(ok), Ok(()), "{ok}");
        }
        for (bad, shown) in [
            (r#"{"a": -0}"#, "the integer -0 is not an int64"),
            (r#"[1,-0]"#, "-0 is not"),
            (
                r#"{"a": 18446744073709551616}"#,
                "18446744073709551616 is outside",
            ),
            (
                r#"{"a": -9223372036854775809}"#,
                "-9223372036854775809 is outside",
            ),
            (
                r#"{"\"": 1, "b": [123456789012345678901234]}"#,
                "123456789012345678901234.0",
            ),
        ] {
            let err = check_integer_literals(bad).unwrap_err();
            assert!(err.contains(shown), "{bad}: {err}");
        }
    }

    #[test]
    fn examples() {
        let value = serde_json::json!({"a": [1, -2, 1.5, 1e16, 1e-7, -0.0, u64::MAX], "s": "q\"\\\n\u{1}\u{7f}é"});
        assert_eq!(
            to_string(&value),
            "{\"a\":[1,-2,1.5,1e16,1e-7,-0.0,18446744073709551615],\"s\":\"q\\\"\\\\\\n\\u0001\u{7f}é\"}"
        );
        assert_eq!(Text(&value).to_string(), to_string(&value));
    }
}
