//! The seed's call path, exactly: `cargo run -p host-sync --example client` and
//! `cargo run -p host-async --example client` print the seed's four lines and nothing else.

use ds_tests::cargo;

fn check(package: &str, expect: &str) {
    let out = cargo(&["run", "-q", "-p", package, "--example", "client"]);
    assert!(
        out.status.success(),
        "{package} example failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        expect,
        "{package} example output"
    );
}

#[test]
fn blocking_host_prints_the_seed_call_path() {
    check(
        "host-sync",
        "Model sync get()\nModel base _get()\nget() with key = my_key\nGot a model with key=my_key\n",
    );
}

#[test]
fn async_host_prints_the_seed_call_path() {
    check(
        "host-async",
        "Model async get()\nModel base _get()\nasync get() with key = my_key\nGot a model with key=my_key\n",
    );
}
