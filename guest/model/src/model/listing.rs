//! The whole store in pages: `entities` (what export reads) and `check` (every entity
//! readable, with exactly its index rows, and no index row without its entity).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::entity::Entity;
use crate::error::Error;
use crate::index;
use crate::key::{Key, describe_kv_key};
use crate::transport::{Check, Direction, KeyRange, Log, StoreError, Transport, Write};

use super::Model;

impl<T: Transport, L: Log> Model<T, L> {
    /// One page of entities in key order from `start`, all kinds or only `kind` (the
    /// entity's own kind), as JSON text: a page reads at most [`CHECK_PAGE`] rows, and
    /// ends early once they hold [`PAGE_BYTES`], so a page of the largest entities still
    /// fits the component's memory.
    pub fn entities_json(
        &mut self,
        start: Option<&[u8]>,
        kind: Option<&str>,
    ) -> Result<EntityPage, Error> {
        self.entities_page(start, kind, None)
    }

    /// [`Model::entities_json`], but an entity row that does not decode (its key or its
    /// value) is described in the second result and skipped instead of failing the page:
    /// what `export --skip-corrupt` reads, to save what can be saved.
    pub fn salvage_json(
        &mut self,
        start: Option<&[u8]>,
        kind: Option<&str>,
    ) -> Result<(EntityPage, Vec<String>), Error> {
        let mut skipped = Vec::new();
        let page = self.entities_page(start, kind, Some(&mut skipped))?;
        Ok((page, skipped))
    }

    fn entities_page(
        &mut self,
        start: Option<&[u8]>,
        kind: Option<&str>,
        mut skipped: Option<&mut Vec<String>>,
    ) -> Result<EntityPage, Error> {
        let begin = alloc::vec![crate::key::ENTITY_PREFIX];
        let range = KeyRange {
            start: start
                .map(<[u8]>::to_vec)
                .filter(|s| *s > begin)
                .unwrap_or(begin),
            end: Some(alloc::vec![crate::key::ENTITY_PREFIX + 1]),
        };
        let page = self.read_page(range)?;
        let next = page.next();
        let mut entities = Vec::new();
        for entry in page.entries {
            match decode_entry(entry, kind) {
                Ok(Some(entity)) => entities.push(entity),
                Ok(None) => {}
                Err(err) if skipped.is_some() => {
                    if let Some(skipped) = skipped.as_deref_mut() {
                        skipped.push(err.to_string());
                    }
                }
                Err(err) => return Err(err),
            }
        }
        Ok(EntityPage { entities, next })
    }

    /// One page of rows from `range`'s start: [`CHECK_PAGE`] rows, or fewer once they hold
    /// [`PAGE_BYTES`], read [`SCAN_ROWS`] at a time. A scan's result is copied whole into
    /// the component's memory, and one entity may be 1 MiB: 500 rows in one scan could need
    /// 500 MiB, past any instance's memory, where this bounds a page by its bytes.
    fn read_page(&mut self, mut range: KeyRange) -> Result<Page, Error> {
        let mut page = Page {
            entries: Vec::new(),
            exhausted: false,
        };
        let mut bytes = 0;
        while page.entries.len() < CHECK_PAGE as usize && bytes < PAGE_BYTES {
            let want = SCAN_ROWS.min(CHECK_PAGE - page.entries.len() as u32);
            let batch = self.transport.scan(&range, want, Direction::Forward)?;
            page.exhausted = batch.len() < want as usize;
            bytes += batch
                .iter()
                .map(|entry| entry.key.len() + entry.value.value.len())
                .sum::<usize>();
            if let Some(last) = batch.last() {
                range.start = last.key.clone();
                range.start.push(0);
            }
            page.entries.extend(batch);
            if page.exhausted {
                break;
            }
        }
        Ok(page)
    }

    /// Checks one page of the store from `start`: every entity row must decode canonically
    /// and validly and have exactly its index rows; every index row must point at an entity
    /// that has it. Reads only.
    pub fn check(&mut self, start: Option<&[u8]>) -> Result<CheckReport, Error> {
        self.check_page(start, None)
    }

    /// Checks one page as [`Model::check`] does and repairs what is certain: an index row
    /// an entity lacks (or holds with the wrong value) is written back; an index row whose
    /// entity is absent, or present without it, and one that names no entity, is deleted.
    /// An entity that does not decode is left alone (its rows are unknown), and so are
    /// index rows that point at it. The repairs of a page are one commit, with checks on
    /// the versions the check read, so nothing written meanwhile is undone: a page that
    /// changed is reported, repaired by nothing, for a second run. With `apply` false,
    /// nothing is written and the counts say what would be.
    pub fn repair(&mut self, start: Option<&[u8]>, apply: bool) -> Result<RepairReport, Error> {
        let mut repairs = Repairs::default();
        let mut check = self.check_page(start, Some(&mut repairs))?;
        let (written, deleted) = repairs.counts();
        if apply && !repairs.writes.is_empty() {
            let checks: Vec<Check> = repairs
                .checks
                .into_iter()
                .map(|(key, version)| Check { key, version })
                .collect();
            let writes: Vec<Write> = repairs
                .writes
                .into_iter()
                .map(|(key, value)| Write { key, value })
                .collect();
            match self.transport.commit(&checks, &writes) {
                Ok(_) => {}
                Err(StoreError::Conflict(_)) => {
                    check.problems.push(
                        "this page changed while it was checked: nothing in it was repaired; \
                         run the repair again"
                            .into(),
                    );
                    return Ok(RepairReport {
                        check,
                        written: 0,
                        deleted: 0,
                    });
                }
                Err(err) => return Err(err.into()),
            }
        }
        Ok(RepairReport {
            check,
            written,
            deleted,
        })
    }

    fn check_page(
        &mut self,
        start: Option<&[u8]>,
        mut repairs: Option<&mut Repairs>,
    ) -> Result<CheckReport, Error> {
        let range = KeyRange {
            start: start.map(<[u8]>::to_vec).unwrap_or_default(),
            end: None,
        };
        let page = self.read_page(range)?;
        let mut report = CheckReport::default();
        // Rows each entity must have, and the entities index rows point at.
        let mut expected: Vec<(Key, index::Row, u64)> = Vec::new();
        let mut pointed: Vec<IndexRow> = Vec::new();
        for entry in &page.entries {
            let row = describe_kv_key(&entry.key);
            match entry.key.first() {
                Some(&crate::key::ENTITY_PREFIX) => {}
                Some(&(index::KIND_INDEX | index::PROPERTY_INDEX | index::COMPOSITE_INDEX)) => {
                    report.index_rows += 1;
                    match index::row_entity_key(&entry.value.value) {
                        Ok(key) => pointed.push(IndexRow {
                            row: entry.key.clone(),
                            value: entry.value.value.clone(),
                            version: entry.value.version,
                            encoded: key.encode(),
                            entity: key,
                        }),
                        Err(err) => {
                            report.problems.push(format!("index row {row}: {err}"));
                            if let Some(repairs) = repairs.as_deref_mut() {
                                repairs.delete(&entry.key, entry.value.version);
                            }
                        }
                    }
                    continue;
                }
                Some(&(index::GROUP | index::ID_ALLOCATOR)) => continue,
                _ => {
                    report
                        .problems
                        .push(format!("row {row}: not an entity row (unknown prefix)"));
                    continue;
                }
            }
            report.entities += 1;
            let key = match Key::decode(&entry.key) {
                Ok(key) => key,
                Err(err) => {
                    report
                        .problems
                        .push(format!("row {row}: the key does not decode: {err}"));
                    continue;
                }
            };
            if key.encode() != entry.key {
                report.problems.push(format!(
                    "entity {key}: the stored key is not in canonical form"
                ));
            }
            if let Err(err) = key.validate() {
                report
                    .problems
                    .push(format!("entity {key}: invalid key: {err}"));
            }
            match Entity::decode(key.clone(), &entry.value.value) {
                Err(err) => report.problems.push(format!("{err}")),
                Ok(entity) => match index::rows(self.schema, &entity) {
                    Ok(rows) => expected.extend(
                        rows.into_iter()
                            .map(|r| (key.clone(), r, entry.value.version)),
                    ),
                    Err(err) => report.problems.push(format!("entity {key}: {err}")),
                },
            }
        }
        // Every expected index row is there, with its value.
        let row_keys: Vec<Vec<u8>> = expected
            .iter()
            .map(|(_, (row, _), _)| row.clone())
            .collect();
        if !row_keys.is_empty() {
            let found = self.transport.get_many(&row_keys)?;
            for ((key, (row, value), version), found) in expected.iter().zip(found) {
                let problem = match &found {
                    None => "is missing",
                    Some(found) if found.value != *value => "has the wrong value",
                    Some(_) => continue,
                };
                report.problems.push(format!(
                    "entity {key}: index row {} {problem}",
                    describe_kv_key(row)
                ));
                if let Some(repairs) = repairs.as_deref_mut() {
                    repairs.check(&key.encode(), Some(*version));
                    repairs.check(row, found.as_ref().map(|f| f.version));
                    repairs.writes.insert(row.clone(), Some(value.clone()));
                }
            }
        }
        // Every index row belongs to an entity that has it. The entities are read
        // [`SCAN_ROWS`] at a time (each may be 1 MiB), each once for all its index rows.
        // Encoded entity key → the key, and the index rows the stored entity has (`None`: it
        // is absent or unreadable).
        // Each entity: its key, what was read of it (`None`: absent, else its version and
        // its index rows if it decodes).
        type Read<'k> = (&'k Key, Option<(u64, Option<Vec<index::Row>>)>);
        let mut entities: BTreeMap<Vec<u8>, Read<'_>> = BTreeMap::new();
        for pointer in &pointed {
            entities
                .entry(pointer.encoded.clone())
                .or_insert((&pointer.entity, None));
        }
        let entity_keys: Vec<Vec<u8>> = entities.keys().cloned().collect();
        for chunk in entity_keys.chunks(SCAN_ROWS as usize) {
            let found = self.transport.get_many(chunk)?;
            for (encoded, found) in chunk.iter().zip(found) {
                if let (Some(stored), Some((key, read))) = (found, entities.get_mut(encoded)) {
                    let rows = Entity::decode((*key).clone(), &stored.value)
                        .and_then(|entity| index::rows(self.schema, &entity))
                        .ok();
                    *read = Some((stored.version, rows));
                }
            }
        }
        for IndexRow {
            row,
            value,
            version,
            entity: key,
            encoded,
        } in &pointed
        {
            let read = entities.get(encoded).and_then(|(_, read)| read.as_ref());
            let has_it = read
                .and_then(|(_, rows)| rows.as_ref())
                .is_some_and(|rows| rows.iter().any(|(r, v)| r == row && v == value));
            if has_it {
                continue;
            }
            report.problems.push(format!(
                "index row {} points at {key}, which does not have it (stale index row)",
                describe_kv_key(row)
            ));
            // Certain only when the entity is absent, or decodes without this row.
            let certain = match read {
                None => Some(None),
                Some((entity_version, Some(_))) => Some(Some(*entity_version)),
                Some((_, None)) => None,
            };
            if let (Some(repairs), Some(entity_version)) = (repairs.as_deref_mut(), certain) {
                repairs.check(encoded, entity_version);
                repairs.delete(row, *version);
            }
        }
        report.next = page.next();
        Ok(report)
    }
}

/// Decodes an entity row for a listing: `None` when it is of another kind than `kind`.
fn decode_entry(
    entry: crate::transport::Entry,
    kind: Option<&str>,
) -> Result<Option<(Key, String)>, Error> {
    let key = Key::decode(&entry.key)
        .map_err(|err| Error::Corrupt(format!("row {}: {err}", describe_kv_key(&entry.key))))?;
    if kind.is_some_and(|kind| key.leaf().is_some_and(|leaf| leaf.kind != kind)) {
        return Ok(None);
    }
    // The stored bytes become the text: one copy of each value in memory, not two.
    let json = crate::entity::into_json(&key, entry.value.value)?;
    Ok(Some((key, json)))
}

/// What a repair of one page writes, and the versions its commit checks.
#[derive(Default)]
struct Repairs {
    /// Transport key → the version it must still have (`None`: absent).
    checks: BTreeMap<Vec<u8>, Option<u64>>,
    /// Transport key → its new value (`None`: delete it).
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Repairs {
    fn check(&mut self, key: &[u8], version: Option<u64>) {
        self.checks.insert(key.to_vec(), version);
    }

    fn delete(&mut self, row: &[u8], version: u64) {
        self.check(row, Some(version));
        self.writes.insert(row.to_vec(), None);
    }

    /// Rows written and rows deleted.
    fn counts(&self) -> (u64, u64) {
        let deleted = self.writes.values().filter(|v| v.is_none()).count() as u64;
        (self.writes.len() as u64 - deleted, deleted)
    }
}

/// One page of [`Model::repair`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// What the check of the page found (as [`Model::check`]), and where the next page
    /// starts.
    pub check: CheckReport,
    /// Index rows written back (missing, or with the wrong value); with `apply` false,
    /// that would be.
    pub written: u64,
    /// Index rows deleted (stale, or naming no entity); with `apply` false, that would be.
    pub deleted: u64,
}

/// An index row `check` read, and the entity it points at.
struct IndexRow {
    row: Vec<u8>,
    value: Vec<u8>,
    /// The row's version.
    version: u64,
    entity: Key,
    /// `entity`, encoded: the transport key of its row.
    encoded: Vec<u8>,
}

/// Rows of one `entities` or `check` page.
struct Page {
    entries: Vec<crate::transport::Entry>,
    /// The range holds nothing after these.
    exhausted: bool,
}

impl Page {
    /// Where the next page starts, unless this one was the last.
    fn next(&self) -> Option<Vec<u8>> {
        if self.exhausted {
            return None;
        }
        self.entries.last().map(|last| {
            let mut next = last.key.clone();
            next.push(0);
            next
        })
    }
}

/// One page of [`Model::entities_json`]: keys with their properties' JSON text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntityPage {
    /// The entities, in key order.
    pub entities: Vec<(Key, String)>,
    /// Where the next page starts; `None` after the last page.
    pub next: Option<Vec<u8>>,
}

/// Most rows one `check` or `entities` call reads.
pub const CHECK_PAGE: u32 = 500;

/// Bytes of keys and values past which a `check` or `entities` page ends early (it may
/// exceed this by one scan of [`SCAN_ROWS`] rows).
pub const PAGE_BYTES: usize = 8 << 20;

/// Rows one transport `scan` or `get_many` of `check` and `entities` asks for: at most
/// 16 MiB of entities even when each is as large as allowed (1 MiB).
pub const SCAN_ROWS: u32 = 16;

/// One page of [`Model::check`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Entity rows examined.
    pub entities: u64,
    /// Index rows examined.
    pub index_rows: u64,
    /// Problems found, each naming the row and what is wrong.
    pub problems: Vec<String>,
    /// Where the next page starts; `None` when the check is complete.
    pub next: Option<Vec<u8>>,
}
