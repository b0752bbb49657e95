//! Store URLs: `memory:`, `sqlite:PATH`, and opening a store from one.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use super::{AsyncStore, MemoryStore, Offload, SqliteStore, Store, StoreError};

/// The store used when neither `--store` nor `DS_STORE` names one: `./ds.db`.
pub const DEFAULT_STORE_URL: &str = "sqlite:ds.db";

/// Where a store lives, parsed from a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `memory:` — a fresh, empty in-memory store.
    Memory,
    /// `sqlite:PATH` (also `sqlite://PATH`) — a SQLite database file.
    Sqlite(PathBuf),
}

/// Why a store URL is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid store URL {url:?}: {reason}")]
pub struct StoreUrlError {
    /// The URL as given.
    pub url: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FromStr for StoreUrl {
    type Err = StoreUrlError;

    fn from_str(url: &str) -> Result<StoreUrl, StoreUrlError> {
        let error = |reason: &str| StoreUrlError { url: url.into(), reason: reason.into() };
        let (scheme, rest) = url
            .split_once(':')
            .ok_or_else(|| error("no scheme; use memory: or sqlite:PATH (e.g. sqlite:ds.db)"))?;
        match scheme.to_ascii_lowercase().as_str() {
            "memory" if rest.is_empty() => Ok(StoreUrl::Memory),
            "memory" => Err(error("memory: takes nothing after the colon")),
            "sqlite" => {
                let path = rest.strip_prefix("//").unwrap_or(rest);
                if path.is_empty() {
                    return Err(error("sqlite: needs a file path, e.g. sqlite:ds.db"));
                }
                Ok(StoreUrl::Sqlite(PathBuf::from(path)))
            }
            "postgres" | "postgresql" => Err(error("the PostgreSQL store is not available in this build")),
            other => Err(error(&format!("unknown scheme {other:?}; supported: memory:, sqlite:PATH"))),
        }
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Memory => f.write_str("memory:"),
            StoreUrl::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
        }
    }
}

/// Opens the store at `url` for the blocking host.
pub fn open_blocking(url: &StoreUrl) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match url {
        StoreUrl::Memory => Arc::new(MemoryStore::new()),
        StoreUrl::Sqlite(path) => Arc::new(SqliteStore::open(path)?),
    })
}

/// Opens the store at `url` for the async host. Blocking stores run on the blocking pool.
pub fn open_async(url: &StoreUrl) -> Result<Arc<dyn AsyncStore>, StoreError> {
    Ok(match url {
        StoreUrl::Memory => Arc::new(MemoryStore::new()),
        StoreUrl::Sqlite(path) => Arc::new(Offload(Arc::new(SqliteStore::open(path)?))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_supported_urls() {
        assert_eq!("memory:".parse(), Ok(StoreUrl::Memory));
        assert_eq!("sqlite:ds.db".parse(), Ok(StoreUrl::Sqlite("ds.db".into())));
        assert_eq!("sqlite:///tmp/x.db".parse(), Ok(StoreUrl::Sqlite("/tmp/x.db".into())));
        assert_eq!("SQLite:a".parse(), Ok(StoreUrl::Sqlite("a".into())));
    }

    #[test]
    fn refuses_others_with_a_reason() {
        for (url, reason) in [
            ("ds.db", "no scheme"),
            ("redis://x", "unknown scheme"),
            ("sqlite:", "needs a file path"),
            ("memory:x", "nothing after"),
        ] {
            let err = url.parse::<StoreUrl>().unwrap_err();
            assert!(err.to_string().contains(reason), "{url}: {err}");
        }
    }
}
