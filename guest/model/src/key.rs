//! Entity keys: validation, the human syntax, and the order-preserving transport encoding.
//!
//! Human syntax (used by the CLI and by `Display` / `FromStr`):
//!
//! ```text
//! key     = [ namespace "@" ] element *( "/" element )
//! element = kind ":" id-or-name
//! ```
//!
//! An id is written in decimal (`Account:42`); a name is written bare when it is not all
//! digits and holds none of `/ : @ " \`, white space or control characters
//! (`Account:alice`), and in double quotes otherwise, with `\"` and `\\` escaped
//! (`Account:"42"`, `Note:"a/b"`). Kinds and namespaces follow the same quoting rule.
//! Examples: `Account:alice`, `Account:alice/Order:7`, `tenant-1@Account:alice`.

use crate::error::quote;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write as _};
use core::str::FromStr;

use crate::encoding::{self, Reader};

/// Longest kind, name or namespace, in bytes (Cloud Datastore's limit for names).
pub const MAX_NAME_BYTES: usize = 1500;
/// Deepest path, in elements.
pub const MAX_PATH_DEPTH: usize = 100;
/// Largest encoded key, in bytes.
pub const MAX_ENCODED_KEY_BYTES: usize = 6 * 1024;

/// First byte of every transport key that holds an entity.
pub const ENTITY_PREFIX: u8 = 0x10;

/// An entity's identity within its parent and kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IdOrName {
    /// A positive integer id.
    Id(u64),
    /// A non-empty string name.
    Name(String),
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PathElement {
    /// The kind, e.g. `Account`.
    pub kind: String,
    /// The id or name within the parent and kind.
    pub id: IdOrName,
}

/// An entity key: a namespace and a path from the root ancestor to the entity.
///
/// The derived order is the logical order: namespace, then path element by element, a
/// parent before its children. [`Key::encode`] preserves it bytewise.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// The namespace; empty is the default namespace.
    pub namespace: String,
    /// The path, ancestors first.
    pub path: Vec<PathElement>,
}

/// Why a key is not valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl core::error::Error for KeyError {}

fn key_error(args: fmt::Arguments<'_>) -> KeyError {
    KeyError(alloc::format!("{args}"))
}

impl Key {
    /// A root key with a string name, in the default namespace.
    pub fn name(kind: impl Into<String>, name: impl Into<String>) -> Key {
        Key {
            namespace: String::new(),
            path: alloc::vec![PathElement::name(kind, name)],
        }
    }

    /// A root key with an integer id, in the default namespace.
    pub fn id(kind: impl Into<String>, id: u64) -> Key {
        Key {
            namespace: String::new(),
            path: alloc::vec![PathElement::id(kind, id)],
        }
    }

    /// This key with a child element appended.
    pub fn child(mut self, element: PathElement) -> Key {
        self.path.push(element);
        self
    }

    /// This key in another namespace.
    pub fn in_namespace(mut self, namespace: impl Into<String>) -> Key {
        self.namespace = namespace.into();
        self
    }

    /// Whether the key is incomplete: its own id is not chosen yet (id 0, written `Kind`
    /// alone) while its ancestors are complete. The hosts' `put_completing` gives it a new
    /// id before the put; the model itself refuses id 0 everywhere.
    pub fn is_incomplete(&self) -> bool {
        matches!(self.path.split_last(), Some((leaf, parents))
            if leaf.id == IdOrName::Id(0)
                && parents.iter().all(|p| p.id != IdOrName::Id(0)))
    }

    /// Reads a key as [`Key::parse_any`] does, or an incomplete one: a kind alone as the
    /// last element (`Account`, `Account:alice/Order`, `tenant@Account`), to be completed
    /// with a new id before a put. What the command line's `put` takes.
    pub fn parse_allowing_incomplete(text: &str) -> Result<Key, KeyError> {
        let err = match Key::parse_any(text) {
            Ok(key) => return Ok(key),
            Err(err) => err,
        };
        let (head, separator, kind) = match text.rfind(['/', '@']) {
            Some(at) => (&text[..at], text.as_bytes()[at], &text[at + 1..]),
            None => ("", b'/', text),
        };
        let plain = !kind.is_empty()
            && !kind.contains([':', '"', '/', '@'])
            && !kind.contains(char::is_whitespace);
        if !plain || check_kind(kind).is_err() {
            return Err(err);
        }
        let leaf = PathElement {
            kind: kind.into(),
            id: IdOrName::Id(0),
        };
        let key = match (separator, head) {
            (_, "") => Key {
                namespace: String::new(),
                path: alloc::vec![leaf],
            },
            (b'@', namespace) => {
                check_namespace(namespace)?;
                Key {
                    namespace: namespace.into(),
                    path: alloc::vec![leaf],
                }
            }
            (_, parent) => {
                let mut key: Key = parent.parse()?;
                key.path.push(leaf);
                key
            }
        };
        Ok(key)
    }

    /// The last element of the path: the entity's own kind and id or name.
    pub fn leaf(&self) -> Option<&PathElement> {
        self.path.last()
    }

    /// Checks every rule a stored key must follow; the error names the part that breaks one.
    pub fn validate(&self) -> Result<(), KeyError> {
        self.validate_with(false)
    }

    /// [`Key::validate`], but with `metadata` also accepting the kinds of metadata queries
    /// (`__kind__:Account`, as a `__property__` query's ancestor): keys that can be named,
    /// never written.
    fn validate_with(&self, metadata: bool) -> Result<(), KeyError> {
        check_name("namespace", &self.namespace, true)?;
        if self.path.is_empty() {
            return Err(KeyError("key path is empty".into()));
        }
        if self.path.len() > MAX_PATH_DEPTH {
            return Err(key_error(format_args!(
                "key path has {} elements; at most {MAX_PATH_DEPTH} are allowed",
                self.path.len()
            )));
        }
        for element in &self.path {
            if !(metadata && crate::query::is_metadata_kind(&element.kind)) {
                check_kind(&element.kind)?;
            }
            match &element.id {
                IdOrName::Id(0) => return Err(KeyError("id 0 is not a valid id".into())),
                IdOrName::Id(_) => {}
                IdOrName::Name(name) => check_name("name", name, false)?,
            }
        }
        let size = self.encoded_len();
        if size > MAX_ENCODED_KEY_BYTES {
            return Err(key_error(format_args!(
                "key encodes to {size} bytes; at most {MAX_ENCODED_KEY_BYTES} are allowed"
            )));
        }
        Ok(())
    }

    /// The exact length of [`Key::encode`]'s output, computed without encoding.
    pub fn encoded_len(&self) -> usize {
        let bytes = |s: &str| s.len() + s.bytes().filter(|&b| b == 0).count() + 2;
        1 + bytes(&self.namespace)
            + self
                .path
                .iter()
                .map(|e| {
                    bytes(&e.kind)
                        + 1
                        + match &e.id {
                            IdOrName::Id(_) => 8,
                            IdOrName::Name(name) => bytes(name),
                        }
                })
                .sum::<usize>()
    }

    /// The transport key of the entity row: order-preserving and prefix-free per element.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.path.len() * 16);
        out.push(ENTITY_PREFIX);
        encoding::put_bytes(&mut out, self.namespace.as_bytes());
        for element in &self.path {
            encoding::put_bytes(&mut out, element.kind.as_bytes());
            match &element.id {
                IdOrName::Id(id) => {
                    out.push(0x01);
                    encoding::put_u64(&mut out, *id);
                }
                IdOrName::Name(name) => {
                    out.push(0x02);
                    encoding::put_bytes(&mut out, name.as_bytes());
                }
            }
        }
        out
    }

    /// Decodes a transport key written by [`Key::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Key, encoding::DecodeError> {
        let key = Key::decode_any_path(bytes)?;
        if key.path.is_empty() {
            return Err(encoding::DecodeError("entity key has an empty path"));
        }
        Ok(key)
    }

    /// Reads a key as it crosses the component boundary (the WIT `key`, its transport
    /// encoding), without validating it: that is the operation's part, as for a key built in
    /// Rust (a query's ancestor may name a metadata kind no entity has). An empty path is
    /// read as such, for validation to refuse with its own message.
    pub fn from_encoded(bytes: &[u8]) -> Result<Key, KeyError> {
        Key::decode_any_path(bytes)
            .map_err(|err| key_error(format_args!("the key's encoding does not decode: {err}")))
    }

    fn decode_any_path(bytes: &[u8]) -> Result<Key, encoding::DecodeError> {
        let mut reader = Reader::new(bytes);
        if reader.byte()? != ENTITY_PREFIX {
            return Err(encoding::DecodeError("not an entity key"));
        }
        let namespace = reader.string()?;
        let mut path = Vec::new();
        while !reader.is_empty() {
            let kind = reader.string()?;
            let id = match reader.byte()? {
                0x01 => IdOrName::Id(reader.u64()?),
                0x02 => IdOrName::Name(reader.string()?),
                _ => return Err(encoding::DecodeError("bad id-or-name tag")),
            };
            path.push(PathElement { kind, id });
        }
        Ok(Key { namespace, path })
    }
}

// ---- The key as it crosses the component boundary ----

/// Checks that `bytes` encode a valid key, exactly as [`Key::from_encoded`] then
/// [`Key::validate`] would, with the same error. The common key (no zero byte in its
/// strings, nothing wrong) is checked in place, building nothing: what lets a `get` use the
/// key it was given as the transport key it is. Anything else is decoded to find the error.
pub fn check_encoded(bytes: &[u8]) -> Result<(), KeyError> {
    if is_plainly_valid_encoding(bytes) {
        return Ok(());
    }
    Key::from_encoded(bytes)?.validate()
}

/// Whether `bytes` certainly encode a valid key: true only when one walk over them, without
/// allocating, confirms every rule [`Key::validate`] checks. False for whatever it cannot
/// confirm so cheaply (an escaped zero byte), not only for what is wrong.
fn is_plainly_valid_encoding(bytes: &[u8]) -> bool {
    /// One string written by [`encoding::put_bytes`] with no zero byte in it, at most
    /// [`MAX_NAME_BYTES`] long, and UTF-8; `rest` moves past it.
    fn plain_string<'a>(rest: &mut &'a [u8]) -> Option<&'a str> {
        let end = rest.iter().position(|&b| b == 0)?;
        let (text, tail) = rest.split_at(end);
        // 0x00 0x01 ends the string; 0x00 0xFF is an escaped zero byte, left to the decoder.
        if tail.get(1) != Some(&0x01) {
            return None;
        }
        *rest = &tail[2..];
        let text = core::str::from_utf8(text).ok()?;
        (text.len() <= MAX_NAME_BYTES).then_some(text)
    }
    if bytes.len() > MAX_ENCODED_KEY_BYTES {
        return false;
    }
    let Some((&ENTITY_PREFIX, mut rest)) = bytes.split_first() else {
        return false;
    };
    if plain_string(&mut rest).is_none() {
        return false;
    }
    let mut depth = 0;
    while !rest.is_empty() {
        depth += 1;
        if depth > MAX_PATH_DEPTH {
            return false;
        }
        match plain_string(&mut rest) {
            Some(kind) if !kind.is_empty() && !kind.starts_with("__") => {}
            _ => return false,
        }
        match rest.split_first() {
            Some((0x01, tail)) => match tail.split_first_chunk::<8>() {
                Some((id, tail)) if u64::from_be_bytes(*id) != 0 => rest = tail,
                _ => return false,
            },
            Some((0x02, tail)) => {
                rest = tail;
                match plain_string(&mut rest) {
                    Some(name) if !name.is_empty() => {}
                    _ => return false,
                }
            }
            _ => return false,
        }
    }
    depth > 0
}

/// A key in its transport encoding, shown as [`describe_kv_key`] shows it: how an error
/// names a key that was never decoded (decoding it only if the error is made).
pub struct EncodedKey<'a>(pub &'a [u8]);

impl fmt::Display for EncodedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&describe_kv_key(self.0))
    }
}

impl PathElement {
    /// An element with a string name.
    pub fn name(kind: impl Into<String>, name: impl Into<String>) -> PathElement {
        PathElement {
            kind: kind.into(),
            id: IdOrName::Name(name.into()),
        }
    }

    /// An element with an integer id.
    pub fn id(kind: impl Into<String>, id: u64) -> PathElement {
        PathElement {
            kind: kind.into(),
            id: IdOrName::Id(id),
        }
    }
}

/// Checks a namespace name (as in keys): at most [`MAX_NAME_BYTES`].
pub fn check_namespace(namespace: &str) -> Result<(), KeyError> {
    check_name("namespace", namespace, true)
}

/// Checks a kind name (as in keys): non-empty, at most [`MAX_NAME_BYTES`], not reserved.
pub fn check_kind(kind: &str) -> Result<(), KeyError> {
    check_name("kind", kind, false)?;
    if kind.starts_with("__") {
        return Err(key_error(format_args!(
            "kind {kind:?} is reserved: kinds starting with \"__\" are internal"
        )));
    }
    Ok(())
}

fn check_name(what: &str, value: &str, may_be_empty: bool) -> Result<(), KeyError> {
    if value.is_empty() && !may_be_empty {
        return Err(key_error(format_args!("{what} is empty")));
    }
    if value.len() > MAX_NAME_BYTES {
        return Err(key_error(format_args!(
            "{what} is {} bytes long; at most {MAX_NAME_BYTES} are allowed",
            value.len()
        )));
    }
    Ok(())
}

/// Renders a transport key for people: an entity key in the human syntax, any other key as
/// its bytes with non-printable ones escaped (`\xNN`). Used in traces and error messages.
pub fn describe_kv_key(bytes: &[u8]) -> String {
    if let Ok(key) = Key::decode(bytes) {
        return alloc::format!("{key}");
    }
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_graphic() && b != b'\\' {
            out.push(b as char);
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

// ---- Human syntax ----

fn is_special(c: char) -> bool {
    matches!(c, '/' | ':' | '@' | '"' | '\\') || c.is_whitespace() || c.is_control()
}

/// Writes a kind, name or namespace, quoting it when the bare form would be ambiguous.
fn write_token(f: &mut fmt::Formatter<'_>, token: &str, quote_digits: bool) -> fmt::Result {
    let all_digits = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
    if !(token.is_empty() || token.chars().any(is_special) || quote_digits && all_digits) {
        return f.write_str(token);
    }
    f.write_char('"')?;
    for c in token.chars() {
        if c == '"' || c == '\\' {
            f.write_char('\\')?;
        }
        f.write_char(c)?;
    }
    f.write_char('"')
}

impl fmt::Display for IdOrName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdOrName::Id(id) => write!(f, "{id}"),
            IdOrName::Name(name) => write_token(f, name, true),
        }
    }
}

// ---- URL-safe form ----

impl Key {
    /// The key as an opaque URL-safe string (base64url of its transport encoding, no
    /// padding): for URLs and web forms, like NDB's `Key.urlsafe()`. It is not meant to be
    /// read by people; the human syntax is.
    pub fn to_urlsafe(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.encode())
    }

    /// Reads a key in either form: the human syntax (`Account:alice`), or the URL-safe form
    /// of [`Key::to_urlsafe`], which has no `:` where every human-syntax key has one. What
    /// every place that takes a key from people or programs accepts.
    pub fn parse_any(text: &str) -> Result<Key, KeyError> {
        match text.parse::<Key>() {
            Ok(key) => Ok(key),
            Err(err) if !text.contains(':') => Key::from_urlsafe(text).map_err(|_| {
                key_error(format_args!("{err} (and it is not a URL-safe key either)"))
            }),
            Err(err) => Err(err),
        }
    }

    /// Reads a key written by [`Key::to_urlsafe`]; it must be valid and canonical.
    pub fn from_urlsafe(text: &str) -> Result<Key, KeyError> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.trim())
            .map_err(|_| {
                key_error(format_args!(
                    "{} is not a URL-safe key (bad base64url)",
                    quote(text)
                ))
            })?;
        let key = Key::decode(&bytes).map_err(|err| {
            key_error(format_args!("{} is not a URL-safe key: {err}", quote(text)))
        })?;
        if key.encode() != bytes {
            return Err(key_error(format_args!(
                "{} is not a URL-safe key: not in canonical form",
                quote(text)
            )));
        }
        key.validate()?;
        Ok(key)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.namespace.is_empty() {
            write_token(f, &self.namespace, false)?;
            f.write_char('@')?;
        }
        for (i, element) in self.path.iter().enumerate() {
            if i > 0 {
                f.write_char('/')?;
            }
            write_token(f, &element.kind, false)?;
            f.write_char(':')?;
            write!(f, "{}", element.id)?;
        }
        Ok(())
    }
}

/// A token as parsed: its text and whether it was quoted.
struct Token {
    text: String,
    quoted: bool,
}

struct Parser<'a> {
    input: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.input[self.pos..].chars().next()
    }

    fn token(&mut self, what: &str) -> Result<Token, KeyError> {
        if self.peek() == Some('"') {
            self.pos += 1;
            let mut text = String::new();
            loop {
                let c = self.peek().ok_or_else(|| {
                    key_error(format_args!(
                        "unterminated quoted string ({what}) in {:?}",
                        self.input
                    ))
                })?;
                self.pos += c.len_utf8();
                match c {
                    '"' => return Ok(Token { text, quoted: true }),
                    '\\' => {
                        let escaped = self.peek().ok_or_else(|| {
                            key_error(format_args!("dangling '\\' in {:?}", self.input))
                        })?;
                        if escaped != '"' && escaped != '\\' {
                            return Err(key_error(format_args!(
                                "unknown escape '\\{escaped}' in {:?}: only \\\" and \\\\ exist",
                                self.input
                            )));
                        }
                        self.pos += escaped.len_utf8();
                        text.push(escaped);
                    }
                    c => text.push(c),
                }
            }
        }
        let start = self.pos;
        while let Some(c) = self.peek() {
            if is_special(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
        if start == self.pos {
            let found = match self.peek() {
                Some(c) => alloc::format!("{c:?}"),
                None => "the end".into(),
            };
            return Err(key_error(format_args!(
                "expected {what} at byte {start} of {:?}, found {found} (quote names with special characters)",
                self.input
            )));
        }
        Ok(Token {
            text: self.input[start..self.pos].into(),
            quoted: false,
        })
    }

    fn expect(&mut self, wanted: char) -> Result<(), KeyError> {
        match self.peek() {
            Some(c) if c == wanted => {
                self.pos += 1;
                Ok(())
            }
            other => Err(key_error(format_args!(
                "expected '{wanted}' at byte {} of {:?}, found {}",
                self.pos,
                self.input,
                other.map_or_else(|| "the end".into(), |c| alloc::format!("{c:?}"))
            ))),
        }
    }
}

fn id_or_name(token: Token) -> Result<IdOrName, KeyError> {
    if token.quoted || !token.text.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(IdOrName::Name(token.text));
    }
    if token.text.len() > 1 && token.text.starts_with('0') {
        return Err(key_error(format_args!(
            "id {} has a leading zero; write a name made of digits in quotes: \"{}\"",
            token.text, token.text
        )));
    }
    token.text.parse::<u64>().map(IdOrName::Id).map_err(|_| {
        key_error(format_args!(
            "id {} is out of range (at most {})",
            token.text,
            u64::MAX
        ))
    })
}

impl FromStr for Key {
    type Err = KeyError;

    /// Parses the human syntax and validates the key (a metadata key such as
    /// `__kind__:Account` parses, to name a metadata query's ancestor; writes refuse it).
    fn from_str(input: &str) -> Result<Key, KeyError> {
        let mut parser = Parser { input, pos: 0 };
        let mut namespace = String::new();
        let mut path = Vec::new();
        let mut first = parser.token("a kind or namespace")?;
        if parser.peek() == Some('@') {
            parser.pos += 1;
            namespace = first.text;
            first = parser.token("a kind")?;
        }
        loop {
            parser.expect(':')?;
            let id = id_or_name(parser.token("an id or name")?)?;
            path.push(PathElement {
                kind: first.text,
                id,
            });
            match parser.peek() {
                None => break,
                Some('/') => {
                    parser.pos += 1;
                    first = parser.token("a kind")?;
                }
                Some(c) => {
                    return Err(key_error(format_args!(
                        "unexpected {c:?} at byte {} of {}",
                        parser.pos,
                        quote(input)
                    )));
                }
            }
        }
        let key = Key { namespace, path };
        key.validate_with(true)?;
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use proptest::prelude::*;

    fn arbitrary_key() -> impl Strategy<Value = Key> {
        // Names from a small alphabet with the zero byte and "_", so that escapes, empty
        // strings, reserved kinds and id 0 all occur.
        let name = || proptest::string::string_regex("[a_\\x00é]{0,4}").expect("regex");
        let id = prop_oneof![
            (0u64..3).prop_map(IdOrName::Id),
            any::<u64>().prop_map(IdOrName::Id),
            name().prop_map(IdOrName::Name),
        ];
        let element = (name(), id).prop_map(|(kind, id)| PathElement { kind, id });
        (name(), proptest::collection::vec(element, 0..4))
            .prop_map(|(namespace, path)| Key { namespace, path })
    }

    proptest! {
        #[test]
        fn an_encoded_key_is_checked_as_the_decoded_key_is(key in arbitrary_key()) {
            let bytes = key.encode();
            prop_assert_eq!(Key::from_encoded(&bytes), Ok(key.clone()));
            prop_assert_eq!(check_encoded(&bytes), key.validate());
        }

        #[test]
        fn the_quick_check_confirms_only_valid_keys(
            bytes in proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(2),
                Just(0x10), Just(0xFF), Just(b'_'), any::<u8>()], 0..24),
        ) {
            if is_plainly_valid_encoding(&bytes) {
                let key = Key::from_encoded(&bytes).expect("decodes");
                prop_assert_eq!(key.validate(), Ok(()));
                prop_assert_eq!(key.encode(), bytes);
            }
        }
    }

    #[test]
    fn the_quick_check_takes_the_common_keys_and_the_limits() {
        let plain = Key::name("Account", "alice").child(PathElement::id("Order", 7));
        assert!(is_plainly_valid_encoding(&plain.encode()));
        assert!(is_plainly_valid_encoding(
            &Key::id("A", 1).in_namespace("t").encode()
        ));
        let longest = "n".repeat(MAX_NAME_BYTES);
        assert!(is_plainly_valid_encoding(
            &Key::name("A", longest.as_str()).encode()
        ));
        // Each broken rule, and the escape it leaves to the decoder, with the decoder's error.
        let too_long = Key::name("A", longest + "n");
        let deep = Key {
            namespace: String::new(),
            path: alloc::vec![PathElement::id("A", 1); MAX_PATH_DEPTH + 1],
        };
        for key in [
            too_long,
            deep,
            Key::id("A", 0),
            Key::name("__A", "x"),
            Key::name("", "x"),
            Key::name("A", ""),
            Key::name("A", "zero\0byte"),
            Key {
                namespace: "ns".into(),
                path: Vec::new(),
            },
        ] {
            assert!(!is_plainly_valid_encoding(&key.encode()), "{key:?}");
            assert_eq!(check_encoded(&key.encode()), key.validate(), "{key:?}");
        }
        let err = check_encoded(&[ENTITY_PREFIX, 0, 0]).unwrap_err();
        assert!(err.0.contains("does not decode"), "{err}");
        let err = check_encoded(
            &Key {
                namespace: "".into(),
                path: Vec::new(),
            }
            .encode(),
        );
        assert_eq!(err, Err(KeyError("key path is empty".into())));
    }

    #[test]
    fn urlsafe_form_round_trips_and_refuses_garbage() {
        let key = Key::name("Account", "a/b \u{0}é").child(PathElement::id("Order", u64::MAX));
        let text = key.to_urlsafe();
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(Key::from_urlsafe(&text), Ok(key.clone()));
        for bad in ["", "!!", "AAAA", "EAAB"] {
            assert!(Key::from_urlsafe(bad).is_err(), "{bad}");
        }
        assert!(Key::from_urlsafe(&Key::id("A", 0).to_urlsafe()).is_err());
        // Either form, wherever a key is read.
        assert_eq!(Key::parse_any(&text), Ok(key.clone()));
        assert_eq!(Key::parse_any(&key.to_string()), Ok(key));
        let err = Key::parse_any("nocolon").unwrap_err();
        assert!(err.0.contains("not a URL-safe key either"), "{err}");
    }

    fn check(input: &str, expect: Result<Key, &str>) {
        match (input.parse::<Key>(), expect) {
            (Ok(got), Ok(want)) => {
                assert_eq!(got, want, "{input}");
                assert_eq!(got.to_string().parse::<Key>().unwrap(), got);
            }
            (Err(got), Err(want)) => assert!(got.0.contains(want), "{input}: {got}"),
            (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn human_syntax() {
        check("Account:alice", Ok(Key::name("Account", "alice")));
        check("Account:42", Ok(Key::id("Account", 42)));
        check("Account:\"42\"", Ok(Key::name("Account", "42")));
        check(
            "Account:alice/Order:7",
            Ok(Key::name("Account", "alice").child(PathElement::id("Order", 7))),
        );
        check(
            "t1@Account:a",
            Ok(Key::name("Account", "a").in_namespace("t1")),
        );
        check(
            "\"a b\"@\"K:1\":\"x/\\\"y\\\\\"",
            Ok(Key::name("K:1", "x/\"y\\").in_namespace("a b")),
        );
        check("Model:my_key", Ok(Key::name("Model", "my_key")));
        check(
            "Account:18446744073709551615",
            Ok(Key::id("Account", u64::MAX)),
        );
    }

    #[test]
    fn human_syntax_errors() {
        check("", Err("expected a kind"));
        check("Account", Err("expected ':'"));
        check("Account:", Err("expected an id or name"));
        check("Account:0", Err("id 0 is not a valid id"));
        check("Account:007", Err("leading zero"));
        check("Account:18446744073709551616", Err("out of range"));
        check("Account:a/", Err("expected a kind"));
        check("Account:a b", Err("unexpected ' '"));
        check("\"\":a", Err("kind is empty"));
        check("A:\"\"", Err("name is empty"));
        check("A:\"x", Err("unterminated"));
        check("A:\"\\n\"", Err("unknown escape"));
        check("__Stat:x", Err("reserved"));
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        check(&alloc::format!("A:{long}"), Err("at most 1500"));
    }

    fn arb_text() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just("\0".into()),
            Just("\u{FF}".into()),
            "[a-c0-9/:@\"\\\\ \\x00\\u{FF}é😀]{0,6}",
        ]
    }

    fn arb_key() -> impl Strategy<Value = Key> {
        let id = prop_oneof![
            prop_oneof![Just(0u64), Just(1), Just(u64::MAX), any::<u64>()].prop_map(IdOrName::Id),
            arb_text().prop_map(IdOrName::Name),
        ];
        let element = (arb_text(), id).prop_map(|(kind, id)| PathElement { kind, id });
        (arb_text(), proptest::collection::vec(element, 1..4))
            .prop_map(|(namespace, path)| Key { namespace, path })
    }

    proptest! {
        #[test]
        fn encoding_preserves_order(a in arb_key(), b in arb_key()) {
            prop_assert_eq!(a.cmp(&b), a.encode().cmp(&b.encode()));
        }

        #[test]
        fn encoding_round_trips(key in arb_key()) {
            prop_assert_eq!(key.encoded_len(), key.encode().len());
            prop_assert_eq!(Key::decode(&key.encode()).unwrap(), key);
        }

        #[test]
        fn valid_keys_round_trip_through_text(key in arb_key()) {
            if key.validate().is_ok() {
                prop_assert_eq!(key.to_string().parse::<Key>().unwrap(), key);
            }
        }

        #[test]
        fn parsing_never_panics(text in "\\PC{0,24}") {
            let _ = text.parse::<Key>();
        }
    }
}
