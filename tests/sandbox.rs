//! The sandbox: a guest gets the transport and logging and nothing else. The shipped
//! component imports nothing more (tests/component_imports.rs); here a probe built with
//! `std`, whose `get` reads a file, an environment variable, a socket and the clock, is
//! refused by both hosts: they link no WASI interface, so it cannot even be instantiated.

use std::collections::BTreeSet;
use std::sync::Arc;

use host_core::runtime::{component, engine};
use host_core::store::MemoryStore;
use host_core::{ComponentSource, Error};

fn probe() -> ComponentSource {
    ComponentSource::File(env!("SANDBOX_PROBE_WASM").into())
}

fn check_refused(result: Result<(), Error>, host: &str) {
    match result {
        Err(Error::Component { reason, .. }) => {
            assert!(
                reason.contains("wasi:"),
                "{host}: the refusal names the WASI import: {reason}"
            );
        }
        other => panic!("{host}: the probe must be refused, got {other:?}"),
    }
}

#[test]
fn the_probe_asks_for_files_environment_sockets_and_clocks() {
    let component = component(&probe()).unwrap();
    let imports: BTreeSet<String> = component
        .component_type()
        .imports(engine().unwrap())
        .map(|(name, _)| name.to_string())
        .collect();
    for wanted in [
        "wasi:filesystem/",
        "wasi:cli/environment",
        "wasi:sockets/",
        "wasi:clocks/",
    ] {
        assert!(
            imports.iter().any(|i| i.starts_with(wanted)),
            "the probe imports {wanted}…: {imports:?}"
        );
    }
}

#[test]
fn both_hosts_refuse_the_probe() {
    let blocking = ds::Datastore::builder()
        .store(Arc::new(MemoryStore::new()))
        .component(probe())
        .build();
    check_refused(blocking.map(|_| ()), "ds");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let asynchronous = runtime.block_on(
        ads::Datastore::builder()
            .store(Arc::new(MemoryStore::new()))
            .component(probe())
            .build(),
    );
    check_refused(asynchronous.map(|_| ()), "ads");
}
