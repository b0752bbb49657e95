//! The seed's call path, exactly: the programs `cargo run -p ds-host --example client` and
//! `cargo run -p ads-host --example client` run print the seed's four lines and nothing else.

use ds_tests::example;

fn check(package: &str, expect: &str) {
    let out = std::process::Command::new(example(package, "client"))
        .output()
        .expect("the example runs");
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
        "ds-host",
        "Model sync get()\nModel base _get()\nget() with key = my_key\nGot a model with key=my_key\n",
    );
}

#[test]
fn async_host_prints_the_seed_call_path() {
    check(
        "ads-host",
        "Model async get()\nModel base _get()\nasync get() with key = my_key\nGot a model with key=my_key\n",
    );
}
