//! The whole store in pages: `entities` (what export reads) and `check` (every entity
//! readable, with exactly its index rows, and no index row without its entity).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::entity::Entity;
use crate::error::Error;
use crate::index;
use crate::key::{Key, describe_kv_key};
use crate::transport::{Direction, KeyRange, Log, Transport};

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
            let key = Key::decode(&entry.key).map_err(|err| {
                Error::Corrupt(format!("row {}: {err}", describe_kv_key(&entry.key)))
            })?;
            if kind.is_some_and(|kind| key.leaf().is_some_and(|leaf| leaf.kind != kind)) {
                continue;
            }
            // The stored bytes become the text: one copy of each value in memory, not two.
            let json = crate::entity::into_json(&key, entry.value.value)?;
            entities.push((key, json));
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
        let range = KeyRange {
            start: start.map(<[u8]>::to_vec).unwrap_or_default(),
            end: None,
        };
        let page = self.read_page(range)?;
        let mut report = CheckReport::default();
        // Rows each entity must have, and the entities index rows point at.
        let mut expected: Vec<(Key, index::Row)> = Vec::new();
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
                            encoded: key.encode(),
                            entity: key,
                        }),
                        Err(err) => report.problems.push(format!("index row {row}: {err}")),
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
                    Ok(rows) => expected.extend(rows.into_iter().map(|r| (key.clone(), r))),
                    Err(err) => report.problems.push(format!("entity {key}: {err}")),
                },
            }
        }
        // Every expected index row is there, with its value.
        let row_keys: Vec<Vec<u8>> = expected.iter().map(|(_, (row, _))| row.clone()).collect();
        if !row_keys.is_empty() {
            let found = self.transport.get_many(&row_keys)?;
            for ((key, (row, value)), found) in expected.iter().zip(found) {
                match found {
                    None => report.problems.push(format!(
                        "entity {key}: index row {} is missing",
                        describe_kv_key(row)
                    )),
                    Some(found) if found.value != *value => report.problems.push(format!(
                        "entity {key}: index row {} has the wrong value",
                        describe_kv_key(row)
                    )),
                    Some(_) => {}
                }
            }
        }
        // Every index row belongs to an entity that has it. The entities are read
        // [`SCAN_ROWS`] at a time (each may be 1 MiB), each once for all its index rows.
        // Encoded entity key → the key, and the index rows the stored entity has (`None`: it
        // is absent or unreadable).
        let mut entities: BTreeMap<Vec<u8>, (&Key, Option<Vec<index::Row>>)> = BTreeMap::new();
        for pointer in &pointed {
            entities
                .entry(pointer.encoded.clone())
                .or_insert((&pointer.entity, None));
        }
        let entity_keys: Vec<Vec<u8>> = entities.keys().cloned().collect();
        for chunk in entity_keys.chunks(SCAN_ROWS as usize) {
            let found = self.transport.get_many(chunk)?;
            for (encoded, found) in chunk.iter().zip(found) {
                if let (Some(stored), Some((key, rows))) = (found, entities.get_mut(encoded)) {
                    *rows = Entity::decode((*key).clone(), &stored.value)
                        .and_then(|entity| index::rows(self.schema, &entity))
                        .ok();
                }
            }
        }
        for IndexRow {
            row,
            value,
            entity: key,
            encoded,
        } in &pointed
        {
            let has_it = entities
                .get(encoded)
                .and_then(|(_, rows)| rows.as_ref())
                .is_some_and(|rows| rows.iter().any(|(r, v)| r == row && v == value));
            if !has_it {
                report.problems.push(format!(
                    "index row {} points at {key}, which does not have it (stale index row)",
                    describe_kv_key(row)
                ));
            }
        }
        report.next = page.next();
        Ok(report)
    }
}

/// An index row `check` read, and the entity it points at.
struct IndexRow {
    row: Vec<u8>,
    value: Vec<u8>,
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
