//! The model's error type (the WIT `error` variant).

use alloc::string::String;
use core::fmt;

use crate::key::KeyError;
use crate::transport::StoreError;

/// Why a datastore operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The key is not valid; the message says which part.
    InvalidKey(String),
    /// The entity is not valid; the message names the property or limit. Nothing was written.
    InvalidEntity(String),
    /// A stored value could not be decoded.
    Corrupt(String),
    /// The query is not valid or no index serves it; the message says why, and which
    /// index would.
    InvalidQuery(String),
    /// A transaction (or a write) lost its commit race on every attempt the retry policy
    /// allowed. Nothing of it was written; trying again later may succeed.
    Conflict(String),
    /// A business rule refused the operation (e.g. insufficient funds). Nothing was written.
    FailedPrecondition(String),
    /// An entity (or operation) the call needs does not exist. Nothing was written.
    NotFound(String),
    /// An argument of an application operation is missing or of the wrong type.
    InvalidArgument(String),
    /// The transport failed.
    Store(StoreError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidKey(msg) => write!(f, "invalid key: {msg}"),
            Error::InvalidEntity(msg) => write!(f, "invalid entity: {msg}"),
            Error::Corrupt(msg) => write!(f, "corrupt data in the store: {msg}"),
            Error::InvalidQuery(msg) => write!(f, "invalid query: {msg}"),
            Error::Conflict(msg) => write!(f, "transaction conflict: {msg}"),
            Error::FailedPrecondition(msg) => write!(f, "refused: {msg}"),
            Error::NotFound(msg) => write!(f, "not found: {msg}"),
            Error::InvalidArgument(msg) => write!(f, "invalid argument: {msg}"),
            Error::Store(err) => err.fmt(f),
        }
    }
}

impl core::error::Error for Error {}

impl From<KeyError> for Error {
    fn from(err: KeyError) -> Self {
        Error::InvalidKey(err.0)
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        Error::Store(err)
    }
}

/// Most characters of a user's text an error message quotes: a 1 MB argument must not make
/// a 1 MB message (or fill a terminal or a log line).
pub const QUOTE_CHARS: usize = 64;

/// `text` quoted for an error message, as `{:?}` quotes it, but at most [`QUOTE_CHARS`]
/// characters of it, then `…` and its length in bytes.
pub fn quote(text: &str) -> Quoted<'_> {
    Quoted(text)
}

/// What [`quote`] returns: formats as a bounded, quoted prefix.
#[derive(Debug, Clone, Copy)]
pub struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(QUOTE_CHARS) {
            None => write!(f, "{:?}", self.0),
            Some((end, _)) => write!(f, "{:?}… ({} bytes)", &self.0[..end], self.0.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn quotes_are_bounded() {
        assert_eq!(quote("abc").to_string(), "\"abc\"");
        let long = "é".repeat(100_000);
        let quoted = quote(&long).to_string();
        assert!(quoted.len() < 200, "{quoted}");
        assert!(quoted.ends_with("… (200000 bytes)"), "{quoted}");
    }
}
