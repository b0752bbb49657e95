//! The datastore operations: the logic both hosts share.

use alloc::string::String;
use alloc::vec::Vec;

use crate::entity::Entity;
use crate::error::Error;
use crate::key::Key;
use crate::transport::{Level, Log, Transport, Write};

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
        Ok(self.transport.get(&key.encode())?.map(|stored| stored.value))
    }

    /// Validates and writes `entity` in one atomic commit; returns its key.
    pub fn put(&mut self, entity: &Entity) -> Result<Key, Error> {
        self.log.log(Level::Debug, "model", "Model base _put()");
        let value = entity.encode()?;
        let write = Write { key: entity.key.encode(), value: Some(value) };
        self.transport.commit(&[], &[write])?;
        Ok(entity.key.clone())
    }

    /// Deletes the entity at `key` in one commit; deleting an absent entity is not an error.
    pub fn delete(&mut self, key: &Key) -> Result<(), Error> {
        self.log.log(Level::Debug, "model", "Model base _delete()");
        key.validate()?;
        self.transport.commit(&[], &[Write { key: key.encode(), value: None }])?;
        Ok(())
    }
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
    fn corrupt_values_are_reported() {
        let mut transport = MemoryTransport::new();
        let key = Key::name("Model", "x");
        transport.commit(&[], &[Write { key: key.encode(), value: Some(b"\x01nope".to_vec()) }]).unwrap();
        let mut model = Model::new(transport, NoLog);
        assert!(matches!(model.get(&key), Err(Error::Corrupt(_))));
    }
}
