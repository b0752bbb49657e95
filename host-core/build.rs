//! Builds the guest component (`guest/`) for `wasm32-wasip2` and hands its path to the
//! crate, so a plain `cargo build` of either host embeds the current model logic.
//!
//! The guest is built by a nested cargo with its own target directory (a second cargo on the
//! outer target directory would wait forever on its lock) and with the `guest` profile.
//! `DS_GUEST_WASM=path` embeds a prebuilt component instead.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir.parent().expect("host-core sits in the workspace").to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let embedded = out_dir.join("ds_guest.wasm");

    println!("cargo:rerun-if-env-changed=DS_GUEST_WASM");
    if let Some(prebuilt) = env::var_os("DS_GUEST_WASM") {
        println!("cargo:rerun-if-changed={}", Path::new(&prebuilt).display());
        copy(Path::new(&prebuilt), &embedded);
        return;
    }
    for input in ["guest", "wit", "Cargo.lock", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", workspace.join(input).display());
    }

    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    check_wasm_target(&rustc);

    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("guest-build");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&workspace)
        .args(["build", "--package", "ds-guest", "--target", "wasm32-wasip2", "--profile", "guest"])
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer build's flags are for the host target, not for the guest.
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET", "CARGO_TARGET_DIR", "RUSTC_WORKSPACE_WRAPPER"] {
        command.env_remove(var);
    }
    let status = command.status().unwrap_or_else(|err| panic!("cannot run cargo to build the guest: {err}"));
    if !status.success() {
        panic!("building the guest component failed ({status}); see the cargo output above");
    }
    copy(&target_dir.join("wasm32-wasip2/guest/ds_guest.wasm"), &embedded);
}

fn check_wasm_target(rustc: &str) {
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string());
    let Some(sysroot) = sysroot else { return };
    if !Path::new(&sysroot).join("lib/rustlib/wasm32-wasip2").is_dir() {
        panic!(
            "\n\nThe wasm32-wasip2 target is not installed, and ds needs it to build its guest \
             component.\nFix: rustup target add wasm32-wasip2\n\n"
        );
    }
}

fn copy(from: &Path, to: &Path) {
    if let Err(err) = std::fs::copy(from, to) {
        panic!("cannot copy the guest component {} to {}: {err}", from.display(), to.display());
    }
}
