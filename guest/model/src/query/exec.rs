//! Execution: index scans and the zig-zag merge join, page by page.

use alloc::collections::VecDeque;
use alloc::format;
use alloc::vec::Vec;

use super::Hit;
use super::plan::{Join, Scan};
use crate::entity::Entity;
use crate::error::Error;
use crate::index::{self, prefix_end};
use crate::key::Key;
use crate::schema::Schema;
use crate::transport::{Direction as ScanDirection, KeyRange, Transport, Versioned};

/// Rows read per scan call, and the smallest batch worth a round trip.
const MAX_BATCH: u32 = 500;
const MIN_BATCH: u32 = 16;

pub(super) struct Run<'a, T> {
    pub(super) transport: &'a mut T,
    pub(super) schema: &'a Schema,
    pub(super) fetch: bool,
    pub(super) offset: usize,
    pub(super) want: usize,
    pub(super) hits: Vec<Hit>,
    /// Count results instead of keeping them (`count`).
    pub(super) count_only: bool,
    /// Results counted, when `count_only`.
    pub(super) counted: usize,
    /// The position after the last result or skipped result.
    pub(super) position: Option<Vec<u8>>,
}

/// A candidate row: its position, the entity key, and what the row says.
pub(super) struct Candidate {
    position: Vec<u8>,
    key: Key,
    stored: Option<Versioned>,
    multi: bool,
}

impl<T: Transport> Run<'_, T> {
    fn batch(&self) -> u32 {
        let remaining = (self.want - self.taken() + self.offset) as u32;
        remaining.saturating_add(1).clamp(MIN_BATCH, MAX_BATCH)
    }

    /// Results taken so far (kept or counted).
    fn taken(&self) -> usize {
        self.hits.len() + self.counted
    }

    /// Takes one result; true when the page is full.
    fn take(&mut self, position: Vec<u8>, key: Key, stored: Option<Versioned>) -> bool {
        self.position = Some(position);
        if self.offset > 0 {
            self.offset -= 1;
            return false;
        }
        if self.count_only {
            self.counted += 1;
        } else {
            self.hits.push(Hit { key, stored });
        }
        self.taken() >= self.want
    }

    /// Scans the plan's ranges from `start` (exclusive) to `end` (inclusive); true when the
    /// page filled up.
    pub(super) fn scan(
        &mut self,
        plan: &Scan,
        start: Option<Vec<u8>>,
        end: Option<&[u8]>,
    ) -> Result<bool, Error> {
        let order: Vec<&(Vec<u8>, Option<Vec<u8>>)> = if plan.reverse {
            plan.ranges.iter().rev().collect()
        } else {
            plan.ranges.iter().collect()
        };
        for (range_start, range_end) in order {
            let (mut lo, mut hi) = (range_start.clone(), range_end.clone());
            if plan.reverse {
                if let Some(start) = &start
                    && hi.as_ref().is_none_or(|hi| start < hi)
                {
                    hi = Some(start.clone());
                }
                if let Some(end) = end
                    && lo.as_slice() < end
                {
                    lo = end.to_vec();
                }
            } else {
                if let Some(start) = &start {
                    let after = [start.as_slice(), &[0]].concat();
                    if after > lo {
                        lo = after;
                    }
                }
                if let Some(end) = end {
                    let after = [end, &[0]].concat();
                    if hi.as_ref().is_none_or(|hi| after < *hi) {
                        hi = Some(after);
                    }
                }
            }
            loop {
                if hi.as_ref().is_some_and(|hi| *hi <= lo) {
                    break;
                }
                let limit = self.batch();
                let range = KeyRange {
                    start: lo.clone(),
                    end: hi.clone(),
                };
                let direction = if plan.reverse {
                    ScanDirection::Reverse
                } else {
                    ScanDirection::Forward
                };
                let rows = self.transport.scan(&range, limit, direction)?;
                let exhausted = rows.len() < limit as usize;
                if let Some(last) = rows.last() {
                    if plan.reverse {
                        hi = Some(last.key.clone());
                    } else {
                        lo = [last.key.as_slice(), &[0]].concat();
                    }
                }
                let mut candidates = Vec::with_capacity(rows.len());
                for row in rows {
                    let candidate = match &plan.index {
                        None => Candidate {
                            key: Key::decode(&row.key).map_err(|err| {
                                Error::Corrupt(format!(
                                    "row {}: {err}",
                                    crate::key::describe_kv_key(&row.key)
                                ))
                            })?,
                            position: row.key,
                            stored: Some(row.value),
                            multi: false,
                        },
                        Some(_) => Candidate {
                            key: index::row_entity_key(&row.value.value)?,
                            multi: index::row_is_multi(&row.value.value),
                            position: row.key,
                            stored: None,
                        },
                    };
                    if let Some(ancestor) = &plan.ancestor
                        && !candidate.key.encode().starts_with(ancestor)
                    {
                        continue;
                    }
                    candidates.push(candidate);
                }
                self.fetch_for(&mut candidates)?;
                for candidate in candidates {
                    if candidate.multi && !self.first_row_of_entity(plan, &candidate)? {
                        continue;
                    }
                    if self.fetch && candidate.stored.is_none() {
                        // Deleted between the index scan and the read.
                        continue;
                    }
                    let stored = if self.fetch { candidate.stored } else { None };
                    if self.take(candidate.position, candidate.key, stored) {
                        return Ok(true);
                    }
                }
                if exhausted {
                    break;
                }
            }
        }
        Ok(false)
    }

    /// Reads the entities of index candidates that need them, in one `get-many`.
    fn fetch_for(&mut self, candidates: &mut [Candidate]) -> Result<(), Error> {
        let needed: Vec<usize> = candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| c.stored.is_none() && (self.fetch || c.multi))
            .map(|(i, _)| i)
            .collect();
        if needed.is_empty() {
            return Ok(());
        }
        let keys: Vec<Vec<u8>> = needed.iter().map(|&i| candidates[i].key.encode()).collect();
        let values = self.transport.get_many(&keys)?;
        for (i, value) in needed.into_iter().zip(values) {
            candidates[i].stored = value;
        }
        Ok(())
    }

    /// For an entity with several rows in the index: true when `candidate` is its first row
    /// within the plan's ranges, in scan order (so it is returned once).
    fn first_row_of_entity(&self, plan: &Scan, candidate: &Candidate) -> Result<bool, Error> {
        let (Some(prefix), Some(stored)) = (&plan.index, &candidate.stored) else {
            return Ok(false);
        };
        let entity = Entity::decode(candidate.key.clone(), &stored.value)?;
        let rows = index::rows_with_prefix(self.schema, &entity, prefix)?;
        let in_ranges = rows.into_iter().filter(|row| {
            plan.ranges
                .iter()
                .any(|(start, end)| row >= start && end.as_ref().is_none_or(|end| row < end))
        });
        let first = if plan.reverse {
            in_ranges.max()
        } else {
            in_ranges.min()
        };
        Ok(first.as_deref() == Some(candidate.position.as_slice()))
    }

    /// Runs a merge join from `start` (exclusive) to `end` (inclusive); true when the page
    /// filled up.
    pub(super) fn join(
        &mut self,
        plan: &Join,
        start: Option<Vec<u8>>,
        end: Option<&[u8]>,
    ) -> Result<bool, Error> {
        let batch = self.batch();
        let mut streams: Vec<Vec<Stream>> = plan
            .streams
            .iter()
            .map(|prefixes| {
                prefixes
                    .iter()
                    .map(|prefix| Stream {
                        prefix: prefix.clone(),
                        buffer: VecDeque::new(),
                        from: plan.lo.clone(),
                        exhausted: false,
                    })
                    .collect()
            })
            .collect();
        let mut candidate = match start {
            Some(start) if start >= plan.lo => [start.as_slice(), &[0]].concat(),
            _ => plan.lo.clone(),
        };
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let mut full = false;
        let (count, mut agreed, mut i) = (streams.len(), 0, 0);
        'join: loop {
            let mut head: Option<Vec<u8>> = None;
            for stream in &mut streams[i] {
                let found = stream.seek(self.transport, &candidate, plan.hi.as_deref(), batch)?;
                if let Some(k) = found
                    && head.as_ref().is_none_or(|h| k < *h)
                {
                    head = Some(k);
                }
            }
            let Some(head) = head else { break };
            if head == candidate {
                agreed += 1;
            } else {
                candidate = head;
                agreed = 1;
            }
            if agreed == count {
                if end.is_some_and(|end| candidate.as_slice() > end) {
                    break 'join;
                }
                self.position = Some(candidate.clone());
                if self.offset > 0 {
                    self.offset -= 1;
                } else {
                    if self.count_only {
                        self.counted += 1;
                    } else {
                        keys.push(candidate.clone());
                    }
                    if keys.len() + self.counted >= self.want {
                        full = true;
                        break 'join;
                    }
                }
                candidate.push(0);
                agreed = 0;
            }
            i = (i + 1) % count;
        }
        let stored = if self.fetch && !keys.is_empty() {
            self.transport.get_many(&keys)?
        } else {
            alloc::vec![None; keys.len()]
        };
        for (encoded, stored) in keys.into_iter().zip(stored) {
            if self.fetch && stored.is_none() {
                continue;
            }
            let key = Key::decode(&encoded)
                .map_err(|err| Error::Corrupt(format!("an index row holds a bad key: {err}")))?;
            self.hits.push(Hit { key, stored });
        }
        Ok(full)
    }
}

/// One index range `prefix + entity key`, read ahead in batches, for the merge join.
pub(super) struct Stream {
    prefix: Vec<u8>,
    buffer: VecDeque<Vec<u8>>,
    /// Where the next scan starts (an entity key).
    from: Vec<u8>,
    exhausted: bool,
}

impl Stream {
    /// The first entity key `>= target` in this range, if any.
    fn seek<T: Transport>(
        &mut self,
        transport: &mut T,
        target: &[u8],
        hi: Option<&[u8]>,
        batch: u32,
    ) -> Result<Option<Vec<u8>>, Error> {
        while self.buffer.front().is_some_and(|k| k.as_slice() < target) {
            self.buffer.pop_front();
        }
        if self.buffer.is_empty() && !self.exhausted {
            let from = if target > self.from.as_slice() {
                target
            } else {
                &self.from
            };
            let range = KeyRange {
                start: [self.prefix.as_slice(), from].concat(),
                end: match hi {
                    Some(hi) => Some([self.prefix.as_slice(), hi].concat()),
                    None => prefix_end(&self.prefix),
                },
            };
            let rows = transport.scan(&range, batch, ScanDirection::Forward)?;
            self.exhausted = rows.len() < batch as usize;
            for row in rows {
                if let Some(key) = row.key.get(self.prefix.len()..) {
                    self.buffer.push_back(key.to_vec());
                }
            }
            if let Some(last) = self.buffer.back() {
                self.from = [last.as_slice(), &[0]].concat();
            }
        }
        Ok(self.buffer.front().cloned())
    }
}
