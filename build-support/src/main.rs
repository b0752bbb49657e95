//! Refreshes or checks the example component the hosts ship.
//!
//! `cargo run -p ds-build-support -- refresh` rebuilds `guest/` and writes
//! `host-core/component/ds_guest.wasm`; `… -- check` rebuilds it and fails if the shipped
//! bytes differ (what `tests/shipped_component.rs` also checks). Run `refresh` after
//! changing the example's model logic, the SDK, the runtime or the WIT, and commit the
//! result with the change.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ds_build_support::{SHIPPED_COMPONENT, SHIPPED_PACKAGE, build};

fn main() -> ExitCode {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."));
    let mode = std::env::args().nth(1).unwrap_or_default();
    if mode != "refresh" && mode != "check" {
        eprintln!("usage: cargo run -p ds-build-support -- refresh|check");
        return ExitCode::from(2);
    }
    let built = match build(&workspace, SHIPPED_PACKAGE, &workspace.join("target")) {
        Ok(built) => built,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
    };
    let shipped = workspace.join(SHIPPED_COMPONENT);
    let fresh = match std::fs::read(&built) {
        Ok(bytes) => bytes,
        Err(err) => {
            eprintln!("cannot read {}: {err}", built.display());
            return ExitCode::FAILURE;
        }
    };
    let current = std::fs::read(&shipped).ok();
    if current.as_deref() == Some(&fresh[..]) {
        println!("{} is current ({} bytes)", SHIPPED_COMPONENT, fresh.len());
        return ExitCode::SUCCESS;
    }
    if mode == "check" {
        eprintln!(
            "{SHIPPED_COMPONENT} differs from a fresh build of {SHIPPED_PACKAGE}: run \
             `cargo run -p ds-build-support -- refresh` and commit it"
        );
        return ExitCode::FAILURE;
    }
    if let Err(err) = std::fs::write(&shipped, &fresh) {
        eprintln!("cannot write {}: {err}", shipped.display());
        return ExitCode::FAILURE;
    }
    println!("wrote {} ({} bytes)", SHIPPED_COMPONENT, fresh.len());
    ExitCode::SUCCESS
}
