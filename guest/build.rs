//! Link settings of the component.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        // A 64 KiB shadow stack instead of rustc's 1 MiB default.
        println!("cargo:rustc-link-arg-cdylib=-zstack-size=65536");
    }
}
