//! Builds a guest crate of this workspace into a `wasm32-wasip2` component, reproducibly:
//! the `refresh` binary builds the example component the hosts ship
//! (`host-core/component/ds_guest.wasm`), and `tests`' build script builds the same crate
//! again (to check the shipped bytes) and the test-only components.
//!
//! The guest is built by a nested cargo with its own target directory (a second cargo on the
//! outer target directory would wait forever on its lock) and the `guest` profile. Paths are
//! remapped (`--remap-path-prefix`), so the bytes do not depend on where the checkout or
//! cargo's home is: a clean clone anywhere builds the very same component.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The shipped example component, relative to the workspace.
pub const SHIPPED_COMPONENT: &str = "host-core/component/ds_guest.wasm";

/// The crate the shipped component is built from.
pub const SHIPPED_PACKAGE: &str = "ds-guest";

/// What the shipped component is built from, relative to the workspace: a change under one
/// of these can change its bytes.
pub const SHIPPED_INPUTS: &[&str] = &["guest", "wit", "Cargo.lock", "Cargo.toml"];

/// Builds `package` (a crate of the workspace at `workspace`) for `wasm32-wasip2`, from a
/// build script, and returns the path of its component. Prints the `rerun-if-changed` lines
/// for `inputs` (paths relative to the workspace) and panics with a clear message on
/// failure, as a build script should.
pub fn build_component(workspace: &Path, package: &str, inputs: &[&str]) -> PathBuf {
    for input in inputs
        .iter()
        .chain(["wit", "guest/rt", "guest/sdk", "Cargo.lock", "Cargo.toml"].iter())
    {
        println!("cargo:rerun-if-changed={}", workspace.join(input).display());
    }
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    build(workspace, package, &target_dir).unwrap_or_else(|err| panic!("{err}"))
}

/// Builds `package` for `wasm32-wasip2` with the `guest` profile into
/// `target_dir/guest-build` and returns the path of its component, or says why it could not.
pub fn build(workspace: &Path, package: &str, target_dir: &Path) -> Result<PathBuf, String> {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    check_wasm_target(&rustc)?;
    let target_dir = target_dir.join("guest-build");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args([
            "build",
            "--locked",
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
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        command.env_remove(var);
    }
    command.env("CARGO_ENCODED_RUSTFLAGS", remap_flags(workspace));
    let status = command
        .status()
        .map_err(|err| format!("cannot run cargo to build {package}: {err}"))?;
    if !status.success() {
        return Err(format!(
            "building the component {package} failed ({status}); see the cargo output above"
        ));
    }
    Ok(target_dir
        .join("wasm32-wasip2/guest")
        .join(format!("{}.wasm", package.replace('-', "_"))))
}

/// The rustc flags that take the checkout's and cargo's home's paths out of the component
/// (panic messages carry source paths), separated as `CARGO_ENCODED_RUSTFLAGS` wants.
fn remap_flags(workspace: &Path) -> OsString {
    let mut flags = OsString::new();
    let mut remap = |from: &Path, to: &str| {
        if !flags.is_empty() {
            flags.push("\x1f");
        }
        flags.push("--remap-path-prefix=");
        flags.push(from.as_os_str());
        flags.push("=");
        flags.push(to);
    };
    if let Some(home) = cargo_home() {
        remap(&home, "/cargo");
    }
    // Last, so that it wins for a checkout inside cargo's home (a git dependency).
    remap(workspace, "/ds");
    flags
}

/// Cargo's home directory: `CARGO_HOME`, or `.cargo` in the user's home.
fn cargo_home() -> Option<PathBuf> {
    env::var_os("CARGO_HOME")
        .filter(|home| !home.is_empty())
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
}

fn check_wasm_target(rustc: &str) -> Result<(), String> {
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string());
    let Some(sysroot) = sysroot else {
        return Ok(());
    };
    if Path::new(&sysroot)
        .join("lib/rustlib/wasm32-wasip2")
        .is_dir()
    {
        Ok(())
    } else {
        Err(
            "\n\nThe wasm32-wasip2 target is not installed, and ds needs it to build its guest \
             component.\nFix: rustup target add wasm32-wasip2\n\n"
                .into(),
        )
    }
}
