//! A test-only component of the `ds:datastore` world built with `std`, whose `get` tries to
//! read a file, an environment variable, a socket and the clock. Using them makes the
//! component import WASI interfaces, which the ds hosts do not provide: the sandbox test
//! shows both hosts refuse to run it, naming what it asked for.
#![cfg(target_arch = "wasm32")]

/// The bindings of the `model` world (generated; exempt from the docs lint).
#[allow(missing_docs)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "model",
    });
}

use bindings::ds::datastore::types as wit;
use bindings::exports::ds::datastore::datastore::Guest;

struct Probe;

bindings::export!(Probe with_types_in bindings);

fn refuse<T>() -> Result<T, wit::Error> {
    Err(wit::Error::InvalidEntity(
        "the sandbox probe only implements get".into(),
    ))
}

impl Guest for Probe {
    fn get(_: wit::Key) -> Result<Option<wit::Properties>, wit::Error> {
        let file = std::fs::read_to_string("/etc/passwd").is_ok();
        let env = std::env::var("HOME").is_ok();
        let socket = std::net::TcpStream::connect("127.0.0.1:5432").is_ok();
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .is_ok();
        Ok(Some(format!(
            r#"{{"file":{file},"env":{env},"socket":{socket},"clock":{clock}}}"#
        )))
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

    fn entities(_: Option<Vec<u8>>, _: Option<String>) -> Result<wit::EntityPage, wit::Error> {
        refuse()
    }

    fn query(_: wit::QuerySpec) -> Result<wit::QueryPage, wit::Error> {
        refuse()
    }

    fn allocate_ids(_: String, _: String, _: u64) -> Result<u64, wit::Error> {
        refuse()
    }

    fn call(_: String, _: String) -> Result<String, wit::Error> {
        refuse()
    }

    fn check(_: Option<Vec<u8>>) -> Result<wit::CheckReport, wit::Error> {
        refuse()
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

    fn schema() -> Result<String, wit::Error> {
        refuse()
    }

    fn repair(_: Option<Vec<u8>>, _: bool) -> Result<wit::RepairReport, wit::Error> {
        refuse()
    }

    fn salvage(_: Option<Vec<u8>>, _: Option<String>) -> Result<wit::SalvagePage, wit::Error> {
        refuse()
    }
}
