//! A test-only component of the `ds:datastore` world that misbehaves on request, so the
//! tests can show that both hosts contain every fault. Never shipped: only `tests/` builds it.
//!
//! `get` looks at the kind of the key's first path element (read from the key's encoding):
//! `Panic` panics, `Loop` spins forever, `Alloc` allocates until it is stopped,
//! `Scan` scans the transport, `Commit` commits three writes, and anything else does one
//! transport `get`. The other exports do nothing useful. Its world is `model`, without the
//! example's `accounts`: the hosts run such a component too.
#![cfg_attr(target_arch = "wasm32", no_std)]
#![cfg(target_arch = "wasm32")]

extern crate alloc;
extern crate ds_guest_rt;

use alloc::vec::Vec;

/// The bindings of the `model` world (generated; exempt from the docs lint).
#[allow(missing_docs)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "model",
    });
}

use bindings::ds::datastore::{logging, transport, types as wit};
use bindings::exports::ds::datastore::datastore::Guest;

struct FaultGuest;

bindings::export!(FaultGuest with_types_in bindings);

#[unsafe(no_mangle)]
fn ds_guest_panic_log(message: &str) {
    logging::log(logging::Level::Critical, "panic", message);
}

/// The kind of the key's first path element, read from its encoding (the contract's `key`):
/// the prefix byte, the namespace up to its end mark `0x00 0x01`, then the kind up to the
/// next. (Names with escaped zero bytes do not occur in these tests.)
fn first_kind(key: &[u8]) -> &[u8] {
    let rest = key.get(1..).unwrap_or_default();
    let rest = match rest.windows(2).position(|w| w == [0, 1]) {
        Some(end) => &rest[end + 2..],
        None => return &[],
    };
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    &rest[..end]
}

fn refuse<T>() -> Result<T, wit::Error> {
    Err(wit::Error::InvalidEntity(
        "the fault guest only implements get".into(),
    ))
}

impl Guest for FaultGuest {
    fn get(key: wit::Key) -> Result<Option<wit::Properties>, wit::Error> {
        match first_kind(&key) {
            b"Panic" => panic!("the fault guest panics on purpose"),
            b"Loop" => {
                let mut n: u64 = 0;
                loop {
                    n = core::hint::black_box(n.wrapping_add(1));
                }
            }
            b"Alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut chunk = Vec::with_capacity(1 << 20);
                    chunk.resize(1 << 20, 1u8);
                    hoard.push(core::hint::black_box(chunk));
                }
            }
            b"Scan" => {
                let range = wit::KeyRange {
                    start: Vec::new(),
                    end: None,
                };
                transport::scan(&range, 10, wit::Direction::Forward).map_err(wit::Error::Store)?;
                Ok(None)
            }
            b"Commit" => {
                let writes: Vec<wit::Write> = [b"commit/a", b"commit/b", b"commit/c"]
                    .iter()
                    .map(|key| wit::Write {
                        key: key.to_vec(),
                        value: Some(b"whole".to_vec()),
                    })
                    .collect();
                transport::commit(&[], &writes).map_err(wit::Error::Store)?;
                Ok(None)
            }
            _ => {
                transport::get(b"any").map_err(wit::Error::Store)?;
                Ok(None)
            }
        }
    }

    fn put(_: wit::Entity) -> Result<wit::Key, wit::Error> {
        refuse()
    }

    fn delete(_: wit::Key) -> Result<(), wit::Error> {
        refuse()
    }

    fn get_many(_: Vec<wit::Key>) -> Result<Vec<Option<wit::Properties>>, wit::Error> {
        refuse()
    }

    fn put_many(_: Vec<wit::Entity>) -> Result<Vec<wit::Key>, wit::Error> {
        refuse()
    }

    fn delete_many(_: Vec<wit::Key>) -> Result<(), wit::Error> {
        refuse()
    }

    fn entities(
        _: Option<Vec<u8>>,
        _: Option<alloc::string::String>,
    ) -> Result<wit::EntityPage, wit::Error> {
        refuse()
    }

    fn query(_: wit::QuerySpec) -> Result<wit::QueryPage, wit::Error> {
        refuse()
    }

    fn allocate_ids(
        _: alloc::string::String,
        _: alloc::string::String,
        _: u64,
    ) -> Result<u64, wit::Error> {
        refuse()
    }

    fn call(
        _: alloc::string::String,
        _: alloc::string::String,
    ) -> Result<alloc::string::String, wit::Error> {
        refuse()
    }

    fn check(_: Option<Vec<u8>>) -> Result<wit::CheckReport, wit::Error> {
        Ok(wit::CheckReport {
            entities: 0,
            index_rows: 0,
            problems: Vec::new(),
            next: None,
        })
    }

    fn get_versioned(_: Vec<wit::Key>) -> Result<Vec<Option<wit::StoredProperties>>, wit::Error> {
        refuse()
    }

    fn put_if(_: Vec<(wit::Entity, wit::Condition)>) -> Result<u64, wit::Error> {
        refuse()
    }

    fn delete_if(_: Vec<(wit::Key, wit::Condition)>) -> Result<Vec<bool>, wit::Error> {
        refuse()
    }

    fn count(_: wit::QuerySpec) -> Result<wit::CountPage, wit::Error> {
        refuse()
    }

    fn schema() -> Result<alloc::string::String, wit::Error> {
        refuse()
    }

    fn repair(_: Option<Vec<u8>>, _: bool) -> Result<wit::RepairReport, wit::Error> {
        refuse()
    }

    fn salvage(
        _: Option<Vec<u8>>,
        _: Option<alloc::string::String>,
    ) -> Result<wit::SalvagePage, wit::Error> {
        refuse()
    }
}
