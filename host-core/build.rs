//! Builds the guest component (`guest/`) for `wasm32-wasip2` and embeds it, so a plain
//! `cargo build` of either host carries the current model logic. `DS_GUEST_WASM=path`
//! embeds a prebuilt component instead.

use std::env;
use std::path::{Path, PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir
        .parent()
        .expect("host-core sits in the workspace")
        .to_path_buf();
    let embedded =
        PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo")).join("ds_guest.wasm");

    println!("cargo:rerun-if-env-changed=DS_GUEST_WASM");
    if let Some(prebuilt) = env::var_os("DS_GUEST_WASM") {
        println!("cargo:rerun-if-changed={}", Path::new(&prebuilt).display());
        ds_build_support::copy(Path::new(&prebuilt), &embedded);
        return;
    }
    let built = ds_build_support::build_component(&workspace, "ds-guest", &["guest"]);
    ds_build_support::copy(&built, &embedded);
}
