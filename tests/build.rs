//! Builds the test-only fault guest and tells the tests where it is (`FAULT_GUEST_WASM`).

use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir.parent().expect("tests/ sits in the workspace");
    let built =
        ds_build_support::build_component(workspace, "ds-fault-guest", &["tests/fault-guest"]);
    println!("cargo:rustc-env=FAULT_GUEST_WASM={}", built.display());
}
