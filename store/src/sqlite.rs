//! `sqlite:PATH`: the embedded default store.
//!
//! One table of `(key BLOB PRIMARY KEY, value BLOB, version INTEGER)`, ordered by SQLite's
//! BLOB comparison (memcmp, then length: the transport's bytewise order). The database runs
//! in WAL mode with `synchronous=FULL`, so a commit that returned is on disk. A commit is one
//! `BEGIN IMMEDIATE` transaction: checks, the version counter and all writes together.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};

use super::{Check, Direction, Entry, KeyRange, Store, StoreError, Versioned, Write};
use crate::affine::AffinePool;

/// The on-disk format this build writes and reads.
pub const FORMAT_VERSION: i64 = 1;

/// How long a call waits for another connection's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle connections kept for reuse: enough for every thread that calls at once in practice
/// (opening a connection costs far more than a query).
const MAX_IDLE_CONNECTIONS: usize = 64;

/// SQLite's `cache_size` per connection: negative means KiB.
const PAGE_CACHE_KIB: i64 = -64;

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS ds_meta (
        name  TEXT PRIMARY KEY NOT NULL,
        value INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE IF NOT EXISTS ds_kv (
        key     BLOB PRIMARY KEY NOT NULL,
        value   BLOB NOT NULL,
        version INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;
    INSERT OR IGNORE INTO ds_meta (name, value) VALUES ('last_version', 0);
";

/// A store in one SQLite database file.
pub struct SqliteStore {
    path: PathBuf,
    /// Idle connections; each thread takes back the one it used last, with its statements
    /// and pages still in that core's cache.
    idle: AffinePool<Connection>,
    /// Serialises this process's commits. SQLite admits one writer at a time and its busy
    /// handler is not fair: dozens of threads polling for the lock starve some of them past
    /// any timeout. Queued here instead, they take turns; the busy timeout is left for
    /// writers in other processes.
    writer: Mutex<()>,
    /// The file's identity (device, inode) when opened: [`Store::health`] notices a file
    /// deleted or replaced under the store, which SQLite would go on writing into unseen.
    identity: Option<(u64, u64)>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, and checks its format.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        if path.is_dir() {
            return Err(StoreError::Unavailable(format!(
                "{} is a directory, not a SQLite database file",
                path.display()
            )));
        }
        let mut store = SqliteStore {
            path,
            idle: AffinePool::new(MAX_IDLE_CONNECTIONS),
            writer: Mutex::new(()),
            identity: None,
        };
        let mut conn = store.connect()?;
        store.init_schema(&mut conn)?;
        store.identity = file_identity(&store.path).ok();
        store.release(conn);
        Ok(store)
    }

    /// That the file is still the one opened, and writable (when the store is a plain file:
    /// a URI such as `file::memory:` has no identity to compare).
    fn check_file(&self) -> Result<(), StoreError> {
        if self.identity.is_none() {
            return Ok(());
        }
        let path = self.path.display();
        match file_identity(&self.path) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::Unavailable(format!(
                    "{path} was deleted after the store opened it: writes would be lost with the \
                     unlinked file; restart to reopen it"
                )));
            }
            Err(err) => return Err(StoreError::Unavailable(format!("{path}: {err}"))),
            Ok(identity) if self.identity.is_some_and(|opened| opened != identity) => {
                return Err(StoreError::Unavailable(format!(
                    "{path} was replaced by another file after the store opened it; restart to \
                     reopen it"
                )));
            }
            Ok(_) => {}
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map(drop)
            .map_err(|err| StoreError::Unavailable(format!("{path} is not writable: {err}")))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn connect(&self) -> Result<Connection, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(&self.path, flags).map_err(|err| self.error(err))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|err| self.error(err))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|err| self.error(err))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|err| self.error(err))?;
        // Each pooled connection keeps its own page cache (SQLite's default is 2 MiB): with
        // up to 64 of them that would be 128 MiB, growing with the file. 64 KiB each bounds
        // the pool at 4 MiB; other pages come from the OS page cache (a `pread`, about a
        // microsecond). The soak test holds resident memory to this bound.
        conn.pragma_update(None, "cache_size", PAGE_CACHE_KIB)
            .map_err(|err| self.error(err))?;
        Ok(conn)
    }

    /// Checks the store's format, creating the tables first if the file is new. An existing
    /// store's format is read without the write lock, so opening one (for a read, `export`,
    /// `check`) never waits for another process's writes: under WAL, readers proceed.
    fn init_schema(&self, conn: &mut Connection) -> Result<(), StoreError> {
        if let Some(found) = self.read_format(conn)? {
            return self.check_format(found);
        }
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|err| self.error(err))?;
        // Another process may have created the tables since the read above.
        match self.read_format(&tx)? {
            Some(found) => self.check_format(found)?,
            None => {
                tx.execute_batch(SCHEMA).map_err(|err| self.error(err))?;
                tx.execute(
                    "INSERT INTO ds_meta (name, value) VALUES ('format', ?1)",
                    [FORMAT_VERSION],
                )
                .map_err(|err| self.error(err))?;
            }
        }
        tx.commit().map_err(|err| self.error(err))
    }

    /// The format recorded in the file, or `None` for a new, empty database.
    fn read_format(&self, conn: &Connection) -> Result<Option<i64>, StoreError> {
        conn.query_row(
            "SELECT value FROM ds_meta WHERE name = 'format'",
            [],
            |row| row.get(0),
        )
        .optional()
        .or_else(|err| match err {
            // A new, empty database has no ds_meta table yet.
            rusqlite::Error::SqliteFailure(_, Some(ref msg)) if msg.contains("no such table") => {
                Ok(None)
            }
            err => Err(err),
        })
        .map_err(|err| self.error(err))
    }

    fn check_format(&self, found: i64) -> Result<(), StoreError> {
        if found > FORMAT_VERSION {
            return Err(StoreError::Unavailable(format!(
                "{} was written by a newer ds (store format {found}; this build reads format \
                 {FORMAT_VERSION}): upgrade ds to open it",
                self.path.display()
            )));
        }
        Ok(())
    }

    /// Runs `work` on a pooled connection (opening one if none is idle).
    fn with_conn<R>(
        &self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<R>,
    ) -> Result<R, StoreError> {
        let mut conn = match self.idle.take() {
            Some(conn) => conn,
            None => self.connect()?,
        };
        let result = work(&mut conn).map_err(|err| self.error(err));
        self.release(conn);
        result
    }

    fn release(&self, conn: Connection) {
        // A full pool hands the connection back: it closes here.
        let _ = self.idle.put(conn);
    }

    fn error(&self, err: rusqlite::Error) -> StoreError {
        let path = self.path.display();
        match err.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Unavailable(
                format!("{path}: database is locked by another writer ({err})"),
            ),
            Some(ErrorCode::NotADatabase) => StoreError::Unavailable(format!(
                "{path} is not a SQLite database, or it is damaged ({err})"
            )),
            Some(ErrorCode::DatabaseCorrupt) => {
                StoreError::Unavailable(format!("{path}: the database file is damaged ({err})"))
            }
            Some(
                ErrorCode::CannotOpen
                | ErrorCode::ReadOnly
                | ErrorCode::PermissionDenied
                | ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure,
            ) => StoreError::Unavailable(format!("{path}: {err}")),
            _ => StoreError::Internal(format!("{path}: {err}")),
        }
    }
}

fn versioned(value: Vec<u8>, version: i64) -> Versioned {
    Versioned {
        value,
        version: version as u64,
    }
}

impl Store for SqliteStore {
    fn get(&self, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        self.with_conn(|conn| {
            conn.prepare_cached("SELECT value, version FROM ds_kv WHERE key = ?1")?
                .query_row([key], |row| Ok(versioned(row.get(0)?, row.get(1)?)))
                .optional()
        })
    }

    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Versioned>>, StoreError> {
        self.with_conn(|conn| {
            // One read transaction, so the batch is a consistent snapshot.
            let tx = conn.transaction()?;
            let mut values = Vec::with_capacity(keys.len());
            {
                let mut stmt =
                    tx.prepare_cached("SELECT value, version FROM ds_kv WHERE key = ?1")?;
                for key in keys {
                    values.push(
                        stmt.query_row([key], |row| Ok(versioned(row.get(0)?, row.get(1)?)))
                            .optional()?,
                    );
                }
            }
            tx.commit()?;
            Ok(values)
        })
    }

    fn scan(
        &self,
        range: &KeyRange,
        limit: u32,
        direction: Direction,
    ) -> Result<Vec<Entry>, StoreError> {
        let limit = limit.min(super::MAX_SCAN_LIMIT);
        let order = match direction {
            Direction::Forward => "ASC",
            Direction::Reverse => "DESC",
        };
        self.with_conn(|conn| {
            let map = |row: &rusqlite::Row<'_>| {
                Ok(Entry { key: row.get(0)?, value: versioned(row.get(1)?, row.get(2)?) })
            };
            match &range.end {
                Some(end) => {
                    let sql = format!(
                        "SELECT key, value, version FROM ds_kv WHERE key >= ?1 AND key < ?2 \
                         ORDER BY key {order} LIMIT ?3"
                    );
                    let mut stmt = conn.prepare_cached(&sql)?;
                    stmt.query_map(params![range.start, end, limit], map)?.collect()
                }
                None => {
                    let sql = format!(
                        "SELECT key, value, version FROM ds_kv WHERE key >= ?1 ORDER BY key {order} LIMIT ?2"
                    );
                    let mut stmt = conn.prepare_cached(&sql)?;
                    stmt.query_map(params![range.start, limit], map)?.collect()
                }
            }
        })
    }

    fn health(&self) -> Result<(), StoreError> {
        self.check_file()?;
        self.get(&[]).map(|_| ())
    }

    fn commit(&self, checks: &[Check], writes: &[Write]) -> Result<u64, StoreError> {
        let _turn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut conflict = None;
        let version = self.with_conn(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut read = tx.prepare_cached("SELECT version FROM ds_kv WHERE key = ?1")?;
                for check in checks {
                    let current: Option<i64> = read.query_row([&check.key], |row| row.get(0)).optional()?;
                    if current.map(|v| v as u64) != check.version {
                        conflict = Some(check.key.clone());
                        // Dropping the transaction rolls it back: nothing is written.
                        return Ok(0);
                    }
                }
            }
            let version: i64 = tx.query_row(
                "UPDATE ds_meta SET value = value + 1 WHERE name = 'last_version' RETURNING value",
                [],
                |row| row.get(0),
            )?;
            {
                let mut put = tx.prepare_cached(
                    "INSERT INTO ds_kv (key, value, version) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version",
                )?;
                let mut delete = tx.prepare_cached("DELETE FROM ds_kv WHERE key = ?1")?;
                for write in writes {
                    match &write.value {
                        Some(value) => put.execute(params![write.key, value, version])?,
                        None => delete.execute([&write.key])?,
                    };
                }
            }
            tx.commit()?;
            Ok(version as u64)
        })?;
        match conflict {
            Some(key) => Err(StoreError::Conflict(key)),
            None => Ok(version),
        }
    }
}

/// A file's (device, inode): what stays the same while the file is the same file.
fn file_identity(path: &Path) -> std::io::Result<(u64, u64)> {
    let metadata = std::fs::metadata(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Ok((metadata.dev(), metadata.ino()))
    }
    #[cfg(not(unix))]
    {
        // No inode to compare: only the file's presence is checked.
        let _ = metadata;
        Ok((0, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_notices_a_deleted_or_replaced_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ds.db");
        let store = SqliteStore::open(&path).unwrap();
        store.health().unwrap();
        std::fs::remove_file(&path).unwrap();
        let err = store.health().unwrap_err().to_string();
        assert!(err.contains("deleted"), "{err}");
        std::fs::write(&path, b"").unwrap();
        let err = store.health().unwrap_err().to_string();
        assert!(err.contains("replaced"), "{err}");
    }

    /// Opening an existing store reads its format without the write lock: it proceeds while
    /// another connection holds a write transaction open (before, it waited for the lock
    /// and failed with "locked" after the busy timeout).
    #[test]
    fn opening_an_existing_store_does_not_wait_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ds.db");
        let store = SqliteStore::open(&path).unwrap();
        store
            .commit(
                &[],
                &[Write {
                    key: b"k".to_vec(),
                    value: Some(b"v".to_vec()),
                }],
            )
            .unwrap();
        let mut writer = Connection::open(&path).unwrap();
        let tx = writer
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        tx.execute("UPDATE ds_meta SET value = value WHERE name = 'format'", [])
            .unwrap();
        let reader = SqliteStore::open(&path).expect("opens while another connection writes");
        assert_eq!(
            reader.get(b"k").unwrap().map(|v| v.value),
            Some(b"v".to_vec())
        );
        drop(tx);
    }
}
