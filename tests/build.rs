//! Builds the test-only components and tells the tests where they are: the fault guest
//! (`FAULT_GUEST_WASM`), the sandbox probe (`SANDBOX_PROBE_WASM`), and a fresh build of the
//! shipped example component (`FRESH_GUEST_WASM`), which must equal the shipped bytes.

use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir.parent().expect("tests/ sits in the workspace");
    let built =
        ds_build_support::build_component(workspace, "ds-fault-guest", &["tests/fault-guest"]);
    println!("cargo:rustc-env=FAULT_GUEST_WASM={}", built.display());
    // A std guest: a cargo invocation of its own, so that std's wit-bindgen features never
    // unify with the no_std guests'.
    let built =
        ds_build_support::build_component(workspace, "ds-sandbox-probe", &["tests/sandbox-probe"]);
    println!("cargo:rustc-env=SANDBOX_PROBE_WASM={}", built.display());
    let built = ds_build_support::build_component(
        workspace,
        ds_build_support::SHIPPED_PACKAGE,
        ds_build_support::SHIPPED_INPUTS,
    );
    println!("cargo:rustc-env=FRESH_GUEST_WASM={}", built.display());
}
