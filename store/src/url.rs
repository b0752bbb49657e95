//! Store URLs: `memory:`, `sqlite:PATH`, `postgres://…`, `etcd://…`, and opening a store
//! from one.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use super::{AsyncStore, MemoryStore, Store, StoreError};
#[cfg(feature = "etcd")]
use super::{BlockOn, EtcdUrl};
#[cfg(feature = "postgres")]
use super::{BlockingPostgresStore, PostgresUrl};
#[cfg(feature = "sqlite")]
use super::{Offload, SqliteStore};

/// The store used when neither `--store` nor `DS_STORE` names one: `./ds.db`.
pub const DEFAULT_STORE_URL: &str = "sqlite:ds.db";

/// Where a store lives, parsed from a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `memory:` — a fresh, empty in-memory store.
    Memory,
    /// `sqlite:PATH` (also `sqlite://PATH`) — a SQLite database file. Opening it needs the
    /// `sqlite` feature.
    Sqlite(PathBuf),
    /// `postgres://…` or `postgresql://…` — a PostgreSQL (or PostgreSQL-protocol) server.
    #[cfg(feature = "postgres")]
    Postgres(PostgresUrl),
    /// `etcd://HOST:PORT[,HOST:PORT…]/PREFIX` — an etcd v3 cluster. Needs the `etcd` feature.
    #[cfg(feature = "etcd")]
    Etcd(EtcdUrl),
}

/// Why a store URL is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid store URL {:?}: {reason}", redact(url))]
pub struct StoreUrlError {
    /// The URL as given (its message shows it with any password redacted).
    pub url: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FromStr for StoreUrl {
    type Err = StoreUrlError;

    fn from_str(url: &str) -> Result<StoreUrl, StoreUrlError> {
        let error = |reason: &str| StoreUrlError {
            url: url.into(),
            reason: reason.into(),
        };
        let (scheme, rest) = url.split_once(':').ok_or_else(|| {
            error("no scheme; use sqlite:PATH (e.g. sqlite:ds.db), memory: or postgres://…")
        })?;
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
            #[cfg(feature = "postgres")]
            "postgres" | "postgresql" => PostgresUrl::parse(url)
                .map(StoreUrl::Postgres)
                .map_err(|reason| error(&reason)),
            #[cfg(not(feature = "postgres"))]
            "postgres" | "postgresql" => Err(error(
                "this build has no PostgreSQL store: build ds-store with its `postgres` feature",
            )),
            #[cfg(feature = "etcd")]
            "etcd" => EtcdUrl::parse(url)
                .map(StoreUrl::Etcd)
                .map_err(|reason| error(&reason)),
            #[cfg(not(feature = "etcd"))]
            "etcd" => Err(error(
                "this build has no etcd store: build ds-store (or ds-cli, ds-host, ads-host) with \
                 its `etcd` feature",
            )),
            other => Err(error(&format!(
                "unknown scheme {other:?}; supported: memory:, sqlite:PATH, postgres://USER@HOST/DB, \
                 etcd://HOST:PORT/PREFIX"
            ))),
        }
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Memory => f.write_str("memory:"),
            StoreUrl::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            #[cfg(feature = "postgres")]
            StoreUrl::Postgres(url) => f.write_str(&redact(&url.url)),
            #[cfg(feature = "etcd")]
            StoreUrl::Etcd(url) => url.fmt(f),
        }
    }
}

/// A URL with any password replaced by `***`, for messages: the one in the user info
/// (`postgres://user:secret@host`) and `password=` query parameters (which libpq and
/// tokio-postgres read too).
pub fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &base[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    format!("{}{user}:***{}", &base[..scheme_end + 3], &base[at..])
                }
                None => base.to_string(),
            }
        }
        _ => base.to_string(),
    };
    if let Some(query) = query {
        out.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((name, _)) if name.eq_ignore_ascii_case("password") => {
                    out.push_str(name);
                    out.push_str("=***");
                }
                _ => out.push_str(pair),
            }
        }
    }
    out
}

impl StoreUrl {
    /// This URL, for a store that must already exist: opening it creates nothing, and
    /// fails when there is no store there (what reads want: `get` on a mistyped path must
    /// not make an empty store and answer "not found"). A SQLite file is checked here; a
    /// PostgreSQL database when it is opened (no schema or no ds tables: no store). The
    /// memory store always exists; an etcd prefix is not checked (etcd has no empty store
    /// to make: the format key is written on open).
    pub fn existing(self) -> Result<StoreUrl, StoreError> {
        match self {
            // A SQLite URI (`file:…`) names no plain file to look for.
            StoreUrl::Sqlite(path) if !path.starts_with("file:") && !path.exists() => {
                Err(StoreError::Unavailable(format!(
                    "no store at sqlite:{}: {} does not exist (reading does not create a store; \
                     writing does)",
                    path.display(),
                    path.display()
                )))
            }
            #[cfg(feature = "postgres")]
            StoreUrl::Postgres(mut url) => {
                url.create = false;
                Ok(StoreUrl::Postgres(url))
            }
            other => Ok(other),
        }
    }
}

/// Opens the store at `url` for the blocking host.
pub fn open_blocking(url: &StoreUrl) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match url {
        StoreUrl::Memory => Arc::new(MemoryStore::new()),
        #[cfg(feature = "sqlite")]
        StoreUrl::Sqlite(path) => Arc::new(SqliteStore::open(path)?),
        #[cfg(not(feature = "sqlite"))]
        StoreUrl::Sqlite(_) => return Err(no_sqlite()),
        #[cfg(feature = "postgres")]
        StoreUrl::Postgres(url) => Arc::new(BlockingPostgresStore::open(url)?),
        // The async store, driven by a private runtime's one thread.
        #[cfg(feature = "etcd")]
        StoreUrl::Etcd(url) => {
            let runtime = BlockOn::<super::EtcdStore>::runtime()?;
            let store = super::etcd::open_on(runtime.handle(), url)?;
            Arc::new(BlockOn::new(runtime, store))
        }
    })
}

/// Opens the store at `url` for the async host. Blocking stores run on the blocking pool;
/// call it from a thread of the tokio runtime that will run the store (a worker or a
/// `spawn_blocking` thread).
pub fn open_async(url: &StoreUrl) -> Result<Arc<dyn AsyncStore>, StoreError> {
    Ok(match url {
        StoreUrl::Memory => Arc::new(MemoryStore::new()),
        #[cfg(feature = "sqlite")]
        StoreUrl::Sqlite(path) => Arc::new(Offload(Arc::new(SqliteStore::open(path)?))),
        #[cfg(not(feature = "sqlite"))]
        StoreUrl::Sqlite(_) => return Err(no_sqlite()),
        #[cfg(feature = "postgres")]
        StoreUrl::Postgres(url) => {
            let handle = tokio::runtime::Handle::try_current().map_err(|_| {
                StoreError::Unavailable(
                    "the async PostgreSQL store must be opened inside a tokio runtime".into(),
                )
            })?;
            super::postgres::open_on(&handle, url)?
        }
        #[cfg(feature = "etcd")]
        StoreUrl::Etcd(url) => {
            let handle = tokio::runtime::Handle::try_current().map_err(|_| {
                StoreError::Unavailable(
                    "the async etcd store must be opened inside a tokio runtime".into(),
                )
            })?;
            super::etcd::open_on(&handle, url)?
        }
    })
}

/// Why a `sqlite:` URL cannot be opened by a build without SQLite.
#[cfg(not(feature = "sqlite"))]
fn no_sqlite() -> StoreError {
    StoreError::Unavailable(
        "this build has no SQLite store: build ds-store with its `sqlite` feature".into(),
    )
}

#[cfg(all(test, feature = "sqlite", feature = "postgres"))]
mod tests {
    use super::*;

    #[test]
    fn parses_supported_urls() {
        assert_eq!("memory:".parse(), Ok(StoreUrl::Memory));
        assert_eq!("sqlite:ds.db".parse(), Ok(StoreUrl::Sqlite("ds.db".into())));
        assert_eq!(
            "sqlite:///tmp/x.db".parse(),
            Ok(StoreUrl::Sqlite("/tmp/x.db".into()))
        );
        assert_eq!("SQLite:a".parse(), Ok(StoreUrl::Sqlite("a".into())));
        let pg: StoreUrl = "postgres://u:secret@localhost:5432/db?schema=Run_1&connect_timeout=5"
            .parse()
            .unwrap();
        assert_eq!(
            pg,
            StoreUrl::Postgres(PostgresUrl {
                url: "postgres://u:secret@localhost:5432/db?connect_timeout=5".into(),
                schema: Some("run_1".into()),
                max_connections: crate::postgres::DEFAULT_MAX_CONNECTIONS,
                tls: Default::default(),
                create: true,
            })
        );
        assert_eq!(
            "postgres://localhost/db?max_connections=64&schema=s".parse(),
            Ok(StoreUrl::Postgres(PostgresUrl {
                url: "postgres://localhost/db".into(),
                schema: Some("s".into()),
                max_connections: 64,
                tls: Default::default(),
                create: true,
            }))
        );
        assert_eq!(
            pg.to_string(),
            "postgres://u:***@localhost:5432/db?connect_timeout=5"
        );
        assert!(matches!(
            "postgresql://localhost/db".parse(),
            Ok(StoreUrl::Postgres(_))
        ));
    }

    #[test]
    fn messages_never_show_a_password() {
        for (url, shown) in [
            (
                "postgres://u:hunter2@h:1/db?password=hunter2&Password=hunter2&sslmode=disable",
                "postgres://u:***@h:1/db?password=***&Password=***&sslmode=disable",
            ),
            ("postgres://u@h/db?x=1", "postgres://u@h/db?x=1"),
            ("postgres://h/db", "postgres://h/db"),
            ("sqlite:a@b:c.db", "sqlite:a@b:c.db"),
        ] {
            assert_eq!(redact(url), shown);
        }
        let err = "postgres://u:hunter2@h/db?max_connections=0&password=hunter2"
            .parse::<StoreUrl>()
            .unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn refuses_others_with_a_reason() {
        for (url, reason) in [
            ("ds.db", "no scheme"),
            ("redis://x", "unknown scheme"),
            ("sqlite:", "needs a file path"),
            ("memory:x", "nothing after"),
            ("postgres://localhost/db?schema=a;drop", "schema"),
            (
                "postgres://localhost/db?max_connections=0",
                "from 1 to 10000",
            ),
            (
                "postgres://localhost/db?max_connections=ten",
                "from 1 to 10000",
            ),
            (
                "postgres://localhost/db?max_connections=10001",
                "from 1 to 10000",
            ),
            (
                "postgres://localhost/db?bogus_option=1",
                "not a valid PostgreSQL URL",
            ),
        ] {
            let err = url.parse::<StoreUrl>().unwrap_err();
            assert!(err.to_string().contains(reason), "{url}: {err}");
        }
    }
}
