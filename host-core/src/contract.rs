//! The version of the WIT contract these hosts run, and the clear refusal of a component
//! built against another.
//!
//! wasmtime alone would refuse such a component with "a matching implementation was not
//! found in the linker" for its first import; a user needs to hear which contract the
//! component was built against and what to do about it.

use wasmtime::Engine;
use wasmtime::component::Component;

/// The package and version of the contract: `ds:datastore@0.2.0`.
pub const CONTRACT: &str = "ds:datastore@0.2.0";

/// The exported interface every model component has.
pub const DATASTORE: &str = "ds:datastore/datastore@0.2.0";

/// The example application's interface (world `bank`), which a component may lack.
pub const ACCOUNTS: &str = "ds:datastore/accounts@0.2.0";

/// The package's interfaces are named `ds:datastore/NAME@VERSION`.
const PACKAGE_PREFIX: &str = "ds:datastore/";

/// `Err` naming the contract when `component` imports or exports a `ds:datastore`
/// interface of a version other than [`CONTRACT`]'s (a component built with an older SDK).
pub fn check(engine: &Engine, component: &Component) -> Result<(), String> {
    let ty = component.component_type();
    let imports = ty.imports(engine).map(|(name, _)| name);
    let exports = ty.exports(engine).map(|(name, _)| name);
    let ours = CONTRACT.split_once('@').map_or("", |(_, version)| version);
    for name in imports.chain(exports) {
        let Some((_, version)) = name
            .strip_prefix(PACKAGE_PREFIX)
            .and_then(|rest| rest.split_once('@'))
        else {
            continue;
        };
        if version != ours {
            return Err(mismatch(name, version));
        }
    }
    Ok(())
}

fn mismatch(interface: &str, version: &str) -> String {
    format!(
        "the component was built against the contract ds:datastore@{version} (it uses \
         `{interface}`), and this host runs {CONTRACT} components: rebuild it with \
         ds-guest-sdk {} (or regenerate its bindings from this version's wit/)",
        env!("CARGO_PKG_VERSION")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_agree_with_the_contract() {
        for interface in [DATASTORE, ACCOUNTS] {
            let (package, version) = CONTRACT.split_once('@').unwrap();
            assert!(interface.starts_with(PACKAGE_PREFIX), "{interface}");
            assert!(interface.starts_with(package), "{interface}");
            assert!(interface.ends_with(&format!("@{version}")), "{interface}");
        }
        // The crate versions move with the contract, so the advice names an SDK that has it.
        assert!(CONTRACT.ends_with(env!("CARGO_PKG_VERSION")));
    }

    #[test]
    fn a_component_of_the_first_contract_is_named_with_what_to_do() {
        let engine = Engine::default();
        // The example component as shipped before 0.2.0 (tests/cli.rs runs it too).
        let fixture = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/ds_guest_0.1.0.wasm"
        );
        let old = Component::from_file(&engine, fixture).unwrap();
        let err = check(&engine, &old).unwrap_err();
        assert!(
            err.contains("against the contract ds:datastore@0.1.0"),
            "{err}"
        );
        assert!(
            err.contains("this host runs ds:datastore@0.2.0 components"),
            "{err}"
        );
        assert!(err.contains("rebuild it with ds-guest-sdk"), "{err}");
    }
}
