//! The shipped component imports the project's own interfaces and nothing else: no WASI,
//! so it can reach no file, socket, clock or environment. And it is byte for byte what its
//! sources build (`host-core/component/ds_guest.wasm` is shipped prebuilt).

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
        "ds:datastore/types@0.2.0",
        "ds:datastore/transport@0.2.0",
        "ds:datastore/logging@0.2.0",
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
            "ds:datastore/accounts@0.2.0".to_string(),
            "ds:datastore/datastore@0.2.0".to_string()
        ])
    );
}

/// The bytes of the data segments of every core module in a component (binary format:
/// a component's section 1 holds a core module; a module's section 11 its data).
fn data_segment_bytes(component: &[u8]) -> usize {
    fn leb(bytes: &[u8], at: &mut usize) -> usize {
        let (mut value, mut shift) = (0usize, 0);
        loop {
            let byte = bytes[*at];
            *at += 1;
            value |= usize::from(byte & 0x7F) << shift;
            shift += 7;
            if byte < 0x80 {
                return value;
            }
        }
    }
    fn sections(binary: &[u8]) -> Vec<(u8, &[u8])> {
        let (mut at, mut out) = (8, Vec::new());
        while at < binary.len() {
            let id = binary[at];
            at += 1;
            let len = leb(binary, &mut at);
            out.push((id, &binary[at..at + len]));
            at += len;
        }
        out
    }
    let mut total = 0;
    for (_, module) in sections(component).into_iter().filter(|(id, _)| *id == 1) {
        for (_, data) in sections(module).into_iter().filter(|(id, _)| *id == 11) {
            let mut at = 0;
            for _ in 0..leb(data, &mut at) {
                match leb(data, &mut at) {
                    // Active segment of memory 0: an `i32.const N; end` offset expression.
                    0 => {
                        at += 1;
                        leb(data, &mut at);
                        at += 1;
                    }
                    1 => {}
                    // Active segment with an explicit memory index.
                    _ => {
                        leb(data, &mut at);
                        at += 1;
                        leb(data, &mut at);
                        at += 1;
                    }
                }
                let len = leb(data, &mut at);
                total += len;
                at += len;
            }
        }
    }
    total
}

/// Every page of the data segment is mapped into each instance the hosts run, so its size
/// is resident memory per in-flight call (BENCHMARKS.md (e)). It was 43.6 KB while
/// serde_json's float formatter (a 17 KB table) was linked; see guest/model/src/json.rs.
#[test]
fn component_data_segment_stays_small() {
    let bytes = data_segment_bytes(host_core::runtime::EMBEDDED_COMPONENT);
    assert!(bytes > 0, "no data segment found: the parser is wrong");
    assert!(
        bytes <= 32 << 10,
        "the component's data segments hold {bytes} bytes (at most 32 KiB); look for a new \
         large table in the guest (e.g. a float formatter: JSON text must go through ds_model::json)"
    );
}

/// Nobody changed the model without refreshing the shipped component, and the build is
/// reproducible: a clean clone anywhere (CI is one) builds the same bytes.
#[test]
fn the_shipped_component_is_a_fresh_build_of_the_sources() {
    let fresh = std::fs::read(env!("FRESH_GUEST_WASM")).expect("the build script built it");
    let shipped = host_core::runtime::EMBEDDED_COMPONENT;
    assert!(
        fresh == shipped,
        "host-core/component/ds_guest.wasm ({} bytes) differs from a fresh build of guest/ \
         ({} bytes): run `cargo run -p ds-build-support -- refresh` and commit the result",
        shipped.len(),
        fresh.len()
    );
}
