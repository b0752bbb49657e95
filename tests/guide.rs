//! `docs/guest-authoring.md`, followed literally: copy the guest, insert every code block of
//! the guide at its `// guide: …` marker in `guest/app/src/lib.rs`, build the component
//! with plain cargo, and call the new operation through the unchanged `ds` and `ads`
//! binaries with `--component`.

use std::path::Path;
use std::process::Command;

use ds_tests::{binary, workspace_root};

/// The guide's code blocks that start with a `// guide: MARKER` line: (marker, code).
fn guide_blocks(guide: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut lines = guide.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "```rust" {
            continue;
        }
        let code: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        if let Some(marker) = code
            .first()
            .and_then(|l| l.trim().strip_prefix("// guide: "))
        {
            blocks.push((marker.to_string(), code[1..].join("\n")));
        }
    }
    blocks
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if entry.file_name() == "target" {
            continue;
        }
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn the_guest_authoring_guide_works_as_written() {
    let root = workspace_root();
    let work = tempfile::tempdir().unwrap();
    let copy = work.path();
    copy_dir(&root.join("wit"), &copy.join("wit"));
    copy_dir(&root.join("guest"), &copy.join("guest"));
    std::fs::copy(
        root.join("rust-toolchain.toml"),
        copy.join("rust-toolchain.toml"),
    )
    .unwrap();
    // The workspace manifest, reduced to the guest crates.
    let manifest: String = std::fs::read_to_string(root.join("Cargo.toml"))
        .unwrap()
        .lines()
        .filter(|l| {
            !l.starts_with("default-members")
                && !l.starts_with("host-")
                && !l.starts_with("ds-build-support")
        })
        .map(|l| {
            if l.starts_with("members") {
                r#"members = ["guest", "guest/model", "guest/app", "guest/rt"]"#
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(copy.join("Cargo.toml"), manifest).unwrap();

    // Steps 2 to 4: insert each block at its marker.
    let guide = std::fs::read_to_string(root.join("docs/guest-authoring.md")).unwrap();
    let blocks = guide_blocks(&guide);
    let markers: Vec<&str> = blocks.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(
        markers,
        ["kinds", "functions", "names", "calls"],
        "the guide's steps"
    );
    let app = copy.join("guest/app/src/lib.rs");
    let mut source = std::fs::read_to_string(&app).unwrap();
    for (marker, code) in &blocks {
        let anchor = format!("// guide: {marker}");
        let at = source
            .find(&anchor)
            .unwrap_or_else(|| panic!("no {anchor} marker in guest/app/src/lib.rs"));
        source.insert_str(at, &format!("{code}\n"));
    }
    std::fs::write(&app, source).unwrap();

    // Step 5: build with plain cargo (a target directory of its own, kept between runs).
    let target = root.join("target/guide-build");
    let out = Command::new(env!("CARGO"))
        .args([
            "build",
            "-q",
            "-p",
            "ds-guest",
            "--target",
            "wasm32-wasip2",
            "--release",
        ])
        .current_dir(copy)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "building the guide's component failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let component = target.join("wasm32-wasip2/release/ds_guest.wasm");
    assert!(component.is_file());

    // Step 6: the unchanged hosts run it.
    let store = format!("sqlite:{}", copy.join("guide.db").display());
    let run = |host: &str, args: &[&str]| {
        let out = Command::new(binary(host))
            .args([
                "--store",
                &store,
                "--component",
                component.to_str().unwrap(),
            ])
            .args(args)
            .env("DS_CACHE_DIR", copy.join("cache"))
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let stock_up = || {
        let (code, _, err) = run(
            "ds",
            &[
                "put",
                "Stock:widget",
                r#"{"item": "widget", "available": 10}"#,
            ],
        );
        assert_eq!(code, 0, "{err}");
    };
    let reserve = |host: &str, quantity: u32| {
        let input = format!(r#"{{"stock": "Stock:widget", "quantity": {quantity}}}"#);
        run(host, &["call", "reserve", &input])
    };
    let reservations = || {
        let (code, out, err) = run(
            "ds",
            &[
                "query",
                "Reservation",
                "--ancestor",
                "Stock:widget",
                "--keys-only",
            ],
        );
        assert_eq!(code, 0, "{err}");
        out.lines().count()
    };
    stock_up();
    for (host, left) in [("ds", 7), ("ads", 4)] {
        let (code, out, err) = reserve(host, 3);
        assert_eq!(
            (code, out),
            (
                0,
                format!(r#"{{"available":{left},"stock":"Stock:widget"}}"#)
            ),
            "{host}: {err}"
        );
    }
    let (code, _, err) = reserve("ads", 5);
    assert_eq!(code, 7, "more than is left is refused: {err}");
    assert!(err.contains("only 4 of Stock:widget left"), "{err}");
    // The declared kind validates: a negative count is refused, naming the property.
    let (code, _, err) = run(
        "ds",
        &["put", "Stock:bad", r#"{"item": "x", "available": -1}"#],
    );
    assert_eq!(code, 2);
    assert!(err.contains("available: must not be negative"), "{err}");
    assert_eq!(reservations(), 2);
    // Restocked by putting the stock again (its `reserved` count starts over): the next
    // reservation still gets a record of its own.
    stock_up();
    let (code, out, err) = reserve("ads", 1);
    assert_eq!(
        (code, out.as_str()),
        (0, r#"{"available":9,"stock":"Stock:widget"}"#),
        "{err}"
    );
    assert_eq!(reservations(), 3);
    let (code, out, _) = run("ads", &["check"]);
    assert_eq!(code, 0, "{out}");
}
