//! The datastore operations: the logic both hosts share.

use alloc::string::String;
use alloc::vec::Vec;

use crate::entity::Entity;
use crate::error::Error;
use crate::key::Key;
use crate::key::describe_kv_key;
use crate::transport::{Direction, KeyRange, Level, Log, Transport, Write};

/// The datastore model over a transport and a log.
///
/// One `Model` serves one call or transaction; it holds no state of its own between calls.
pub struct Model<T, L> {
    transport: T,
    log: L,
}

impl<T: Transport, L: Log> Model<T, L> {
    /// A model reading and committing through `transport`, logging to `log`.
    pub fn new(transport: T, log: L) -> Self {
        Model { transport, log }
    }

    /// The transport, e.g. to inspect a native store after a test.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// Reads the entity at `key`: one transport `get`, then decoding and validation.
    pub fn get(&mut self, key: &Key) -> Result<Option<Entity>, Error> {
        match self.read(key)? {
            None => Ok(None),
            Some(stored) => Entity::decode(key.clone(), &stored).map(Some),
        }
    }

    /// Reads the entity at `key` as its properties' JSON text, checked but not parsed: what
    /// the component returns, since the host parses it into its own types anyway.
    pub fn get_json(&mut self, key: &Key) -> Result<Option<String>, Error> {
        match self.read(key)? {
            None => Ok(None),
            Some(stored) => crate::entity::decode_json(key, &stored).map(|json| Some(json.into())),
        }
    }

    fn read(&mut self, key: &Key) -> Result<Option<Vec<u8>>, Error> {
        self.log.log(Level::Debug, "model", "Model base _get()");
        key.validate()?;
        Ok(self
            .transport
            .get(&key.encode())?
            .map(|stored| stored.value))
    }

    /// Validates and writes `entity` in one atomic commit; returns its key.
    pub fn put(&mut self, entity: &Entity) -> Result<Key, Error> {
        self.log.log(Level::Debug, "model", "Model base _put()");
        let value = entity.encode()?;
        let write = Write {
            key: entity.key.encode(),
            value: Some(value),
        };
        self.transport.commit(&[], &[write])?;
        Ok(entity.key.clone())
    }

    /// Deletes the entity at `key` in one commit; deleting an absent entity is not an error.
    pub fn delete(&mut self, key: &Key) -> Result<(), Error> {
        self.delete_many(core::slice::from_ref(key))
    }

    /// Reads several entities with one transport `get-many`: one result per key, in order.
    pub fn get_many(&mut self, keys: &[Key]) -> Result<Vec<Option<Entity>>, Error> {
        let stored = self.read_many(keys)?;
        keys.iter()
            .zip(stored)
            .map(|(key, value)| {
                value
                    .map(|value| Entity::decode(key.clone(), &value))
                    .transpose()
            })
            .collect()
    }

    /// Like [`Model::get_many`], as JSON text checked but not parsed (see [`Model::get_json`]).
    pub fn get_many_json(&mut self, keys: &[Key]) -> Result<Vec<Option<String>>, Error> {
        let stored = self.read_many(keys)?;
        keys.iter()
            .zip(stored)
            .map(|(key, value)| {
                value
                    .map(|value| crate::entity::decode_json(key, &value).map(String::from))
                    .transpose()
            })
            .collect()
    }

    fn read_many(&mut self, keys: &[Key]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        self.log
            .log(Level::Debug, "model", "Model base _get_many()");
        let encoded = keys
            .iter()
            .map(|key| key.validate().map(|()| key.encode()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self
            .transport
            .get_many(&encoded)?
            .into_iter()
            .map(|v| v.map(|v| v.value))
            .collect())
    }

    /// Validates every entity, then writes them all in one atomic commit. If any entity is
    /// invalid nothing is written, and the error names the entity.
    pub fn put_many(&mut self, entities: &[Entity]) -> Result<Vec<Key>, Error> {
        self.log
            .log(Level::Debug, "model", "Model base _put_many()");
        let mut writes = Vec::with_capacity(entities.len());
        for entity in entities {
            let value = entity.encode().map_err(|err| match err {
                Error::InvalidEntity(msg) if entities.len() > 1 => {
                    Error::InvalidEntity(alloc::format!("{}: {msg}", entity.key))
                }
                other => other,
            })?;
            writes.push(Write {
                key: entity.key.encode(),
                value: Some(value),
            });
        }
        self.transport.commit(&[], &writes)?;
        Ok(entities.iter().map(|e| e.key.clone()).collect())
    }

    /// Deletes several entities in one atomic commit.
    pub fn delete_many(&mut self, keys: &[Key]) -> Result<(), Error> {
        self.log.log(Level::Debug, "model", "Model base _delete()");
        let writes = keys
            .iter()
            .map(|key| {
                key.validate().map(|()| Write {
                    key: key.encode(),
                    value: None,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.transport.commit(&[], &writes)?;
        Ok(())
    }

    /// One page of entities in key order from `start`, all kinds or only `kind` (the
    /// entity's own kind), as JSON text: at most [`CHECK_PAGE`] rows are read per page.
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
        let page = self
            .transport
            .scan(&range, CHECK_PAGE, Direction::Forward)?;
        let mut entities = Vec::new();
        for entry in &page {
            let key = Key::decode(&entry.key).map_err(|err| {
                Error::Corrupt(alloc::format!("row {}: {err}", describe_kv_key(&entry.key)))
            })?;
            if kind.is_some_and(|kind| key.leaf().is_some_and(|leaf| leaf.kind != kind)) {
                continue;
            }
            let json = crate::entity::decode_json(&key, &entry.value.value)?;
            entities.push((key, String::from(json)));
        }
        let next = (page.len() == CHECK_PAGE as usize)
            .then(|| {
                page.last().map(|last| {
                    let mut next = last.key.clone();
                    next.push(0);
                    next
                })
            })
            .flatten();
        Ok(EntityPage { entities, next })
    }

    /// Checks one page of the store from `start`: every row must be an entity whose key
    /// decodes canonically and validly and whose value decodes. Reads only.
    pub fn check(&mut self, start: Option<&[u8]>) -> Result<CheckReport, Error> {
        let range = KeyRange {
            start: start.map(<[u8]>::to_vec).unwrap_or_default(),
            end: None,
        };
        let page = self
            .transport
            .scan(&range, CHECK_PAGE, Direction::Forward)?;
        let mut report = CheckReport::default();
        for entry in &page {
            let row = describe_kv_key(&entry.key);
            if entry.key.first() != Some(&crate::key::ENTITY_PREFIX) {
                report.problems.push(alloc::format!(
                    "row {row}: not an entity row (unknown prefix)"
                ));
                continue;
            }
            report.entities += 1;
            let key = match Key::decode(&entry.key) {
                Ok(key) => key,
                Err(err) => {
                    report
                        .problems
                        .push(alloc::format!("row {row}: the key does not decode: {err}"));
                    continue;
                }
            };
            if key.encode() != entry.key {
                report.problems.push(alloc::format!(
                    "entity {key}: the stored key is not in canonical form"
                ));
            }
            if let Err(err) = key.validate() {
                report
                    .problems
                    .push(alloc::format!("entity {key}: invalid key: {err}"));
            }
            if let Err(err) = Entity::decode(key, &entry.value.value) {
                report.problems.push(alloc::format!("{err}"));
            }
        }
        if page.len() == CHECK_PAGE as usize {
            report.next = page.last().map(|last| {
                let mut next = last.key.clone();
                next.push(0);
                next
            });
        }
        Ok(report)
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

/// Rows one `check` or `entities` call reads.
pub const CHECK_PAGE: u32 = 500;

/// One page of [`Model::check`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Entity rows examined.
    pub entities: u64,
    /// Problems found, each naming the row and what is wrong.
    pub problems: Vec<String>,
    /// Where the next page starts; `None` when the check is complete.
    pub next: Option<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{MemoryTransport, NoLog};

    #[test]
    fn put_get_delete() {
        let mut model = Model::new(MemoryTransport::new(), NoLog);
        let key = Key::name("Model", "my_key");
        assert_eq!(model.get(&key).unwrap(), None);
        let entity = Entity::from_json(key.clone(), r#"{"n":1}"#).unwrap();
        assert_eq!(model.put(&entity).unwrap(), key);
        assert_eq!(model.get(&key).unwrap(), Some(entity));
        model.delete(&key).unwrap();
        assert_eq!(model.get(&key).unwrap(), None);
    }

    #[test]
    fn invalid_input_writes_nothing() {
        let mut model = Model::new(MemoryTransport::new(), NoLog);
        let bad_key = Key::id("Model", 0);
        assert!(matches!(model.get(&bad_key), Err(Error::InvalidKey(_))));
        let entity = Entity::from_json(bad_key, "{}").unwrap();
        assert!(matches!(model.put(&entity), Err(Error::InvalidKey(_))));
        let entity = Entity::from_json(Key::id("Model", 1), r#"{"__k":1}"#).unwrap();
        assert!(matches!(model.put(&entity), Err(Error::InvalidEntity(_))));
        assert_eq!(model.transport().entries().count(), 0);
    }

    #[test]
    fn batches_are_atomic() {
        let mut model = Model::new(MemoryTransport::new(), NoLog);
        let good = Entity::from_json(Key::id("Model", 1), "{}").unwrap();
        let bad = Entity::from_json(Key::id("Model", 2), r#"{"__x":1}"#).unwrap();
        let err = model.put_many(&[good.clone(), bad]).unwrap_err();
        assert!(err.to_string().contains("Model:2"), "{err}");
        assert_eq!(model.transport().entries().count(), 0);
        let other = Entity::from_json(Key::id("Model", 3), r#"{"a":1}"#).unwrap();
        model.put_many(&[good.clone(), other.clone()]).unwrap();
        let keys = [
            Key::id("Model", 3),
            Key::id("Model", 9),
            Key::id("Model", 1),
        ];
        assert_eq!(
            model.get_many(&keys).unwrap(),
            [Some(other), None, Some(good)]
        );
        model.delete_many(&keys).unwrap();
        assert_eq!(model.transport().entries().count(), 0);
    }

    #[test]
    fn check_pages_through_and_reports_problems() {
        let mut model = Model::new(MemoryTransport::new(), NoLog);
        let entities: Vec<Entity> = (1..=1200)
            .map(|i| Entity::from_json(Key::id("Item", i), "{}").unwrap())
            .collect();
        model.put_many(&entities).unwrap();
        let (mut pages, mut seen, mut start) = (0, 0, None);
        loop {
            let report = model.check(start.as_deref()).unwrap();
            assert!(report.problems.is_empty(), "{:?}", report.problems);
            pages += 1;
            seen += report.entities;
            match report.next {
                Some(next) => start = Some(next),
                None => break,
            }
        }
        assert_eq!((pages, seen), (3, 1200));

        let mut transport = MemoryTransport::new();
        transport
            .commit(
                &[],
                &[
                    Write {
                        key: Key::id("Item", 1).encode(),
                        value: Some(b"\x01[1]".to_vec()),
                    },
                    Write {
                        key: b"\x99junk".to_vec(),
                        value: Some(Vec::new()),
                    },
                    Write {
                        key: Key::id("Item", 0).encode(),
                        value: Some(b"\x01{}".to_vec()),
                    },
                ],
            )
            .unwrap();
        let report = Model::new(transport, NoLog).check(None).unwrap();
        assert_eq!(report.problems.len(), 3, "{:?}", report.problems);
    }

    #[test]
    fn entities_page_through_by_kind() {
        let mut model = Model::new(MemoryTransport::new(), NoLog);
        let mut entities: Vec<Entity> = (1..=700)
            .map(|i| Entity::from_json(Key::id("Item", i), "{}").unwrap())
            .collect();
        entities.push(
            Entity::from_json(
                Key::name("Shop", "s").child(crate::PathElement::id("Item", 1)),
                r#"{"a":1}"#,
            )
            .unwrap(),
        );
        entities.push(Entity::from_json(Key::name("Shop", "s"), "{}").unwrap());
        model.put_many(&entities).unwrap();
        let collect = |model: &mut Model<MemoryTransport, NoLog>, kind: Option<&str>| {
            let (mut all, mut start) = (Vec::new(), None);
            loop {
                let page = model.entities_json(start.as_deref(), kind).unwrap();
                all.extend(page.entities);
                match page.next {
                    Some(next) => start = Some(next),
                    None => return all,
                }
            }
        };
        assert_eq!(collect(&mut model, None).len(), 702);
        assert_eq!(collect(&mut model, Some("Item")).len(), 701);
        let shops = collect(&mut model, Some("Shop"));
        assert_eq!(shops, [(Key::name("Shop", "s"), "{}".into())]);
    }

    #[test]
    fn corrupt_values_are_reported() {
        let mut transport = MemoryTransport::new();
        let key = Key::name("Model", "x");
        transport
            .commit(
                &[],
                &[Write {
                    key: key.encode(),
                    value: Some(b"\x01nope".to_vec()),
                }],
            )
            .unwrap();
        let mut model = Model::new(transport, NoLog);
        assert!(matches!(model.get(&key), Err(Error::Corrupt(_))));
    }
}
