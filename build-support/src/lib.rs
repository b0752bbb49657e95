//! Builds a guest crate of this workspace into a `wasm32-wasip2` component, from a build
//! script: `host-core` builds the shipped guest with it, `tests` the test-only fault guest.
//!
//! The guest is built by a nested cargo with its own target directory (a second cargo on the
//! outer target directory would wait forever on its lock) and the `guest` profile.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds `package` (a crate of the workspace at `workspace`) for `wasm32-wasip2` and
/// returns the path of its component. Prints the `rerun-if-changed` lines for `inputs`
/// (paths relative to the workspace) and panics with a clear message on failure, as a
/// build script should.
pub fn build_component(workspace: &Path, package: &str, inputs: &[&str]) -> PathBuf {
    for input in inputs
        .iter()
        .chain(["wit", "guest/rt", "Cargo.lock", "Cargo.toml"].iter())
    {
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
        .current_dir(workspace)
        .args([
            "build",
            "--package",
            package,
            "--target",
            "wasm32-wasip2",
            "--profile",
            "guest",
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer build's flags are for the host target, not for the guest.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        command.env_remove(var);
    }
    let status = command
        .status()
        .unwrap_or_else(|err| panic!("cannot run cargo to build {package}: {err}"));
    if !status.success() {
        panic!("building the component {package} failed ({status}); see the cargo output above");
    }
    target_dir
        .join("wasm32-wasip2/guest")
        .join(format!("{}.wasm", package.replace('-', "_")))
}

fn check_wasm_target(rustc: &str) {
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string());
    let Some(sysroot) = sysroot else { return };
    if !Path::new(&sysroot)
        .join("lib/rustlib/wasm32-wasip2")
        .is_dir()
    {
        panic!(
            "\n\nThe wasm32-wasip2 target is not installed, and ds needs it to build its guest \
             component.\nFix: rustup target add wasm32-wasip2\n\n"
        );
    }
}

/// Copies `from` to `to`, panicking with both paths on failure.
pub fn copy(from: &Path, to: &Path) {
    if let Err(err) = std::fs::copy(from, to) {
        panic!(
            "cannot copy the component {} to {}: {err}",
            from.display(),
            to.display()
        );
    }
}
