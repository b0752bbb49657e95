//! The shipped component imports the project's own interfaces and nothing else: no WASI,
//! so it can reach no file, socket, clock or environment.

use std::collections::BTreeSet;

use host_core::runtime::{ComponentSource, component, engine};

#[test]
fn component_imports_only_transport_and_logging() {
    let engine = engine().unwrap();
    let component = component(&ComponentSource::Embedded).unwrap();
    let ty = component.component_type();
    let imports: BTreeSet<String> = ty
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let expected: BTreeSet<String> = [
        "ds:datastore/types@0.1.0",
        "ds:datastore/transport@0.1.0",
        "ds:datastore/logging@0.1.0",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(
        imports, expected,
        "the component imports something it must not"
    );

    let exports: BTreeSet<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    assert_eq!(
        exports,
        BTreeSet::from([
            "ds:datastore/accounts@0.1.0".to_string(),
            "ds:datastore/datastore@0.1.0".to_string()
        ])
    );
}
