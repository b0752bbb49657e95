//! `docs/guest-authoring.md`, followed literally.
//!
//! Part A: every `$` line of its console blocks runs as written, in a temporary directory
//! outside this workspace (`ds new-model`, `cargo build`, `cargo component build`, the
//! hosts with `--component`), and prints what the guide says, with the exit code it says.
//! Part B: copy the guest, insert every code block of the guide at its `// guide: …`
//! marker in `guest/app/src/lib.rs`, build the component with plain cargo, and call the
//! new operation through the unchanged `ds` and `ads` binaries with `--component`.

use std::path::{Path, PathBuf};
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

/// One `$` line of a console block: the command, the lines it prints (stdout, then
/// stderr; none given: not checked) and its exit code (`(exit N)`, else 0).
#[derive(Debug)]
struct Step {
    command: String,
    prints: Vec<String>,
    exit: i32,
}

/// The steps of the guide's ```` ```console ```` blocks, in order.
fn console_steps(guide: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut lines = guide.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "```console" {
            continue;
        }
        for line in lines.by_ref().take_while(|l| l.trim() != "```") {
            if let Some(command) = line.strip_prefix("$ ") {
                steps.push(Step {
                    command: command.to_string(),
                    prints: Vec::new(),
                    exit: 0,
                });
            } else if let Some(step) = steps.last_mut() {
                match line
                    .strip_prefix("(exit ")
                    .and_then(|rest| rest.strip_suffix(')'))
                {
                    Some(code) => step.exit = code.parse().expect("(exit N) holds a number"),
                    None => step.prints.push(line.to_string()),
                }
            }
        }
    }
    steps
}

#[test]
fn part_a_a_model_of_ones_own_works_as_written() {
    let root = workspace_root();
    let guide = std::fs::read_to_string(root.join("docs/guest-authoring.md")).unwrap();
    let steps = console_steps(&guide);
    assert!(
        steps.iter().any(|s| s.command.starts_with("ds new-model"))
            && steps
                .iter()
                .any(|s| s.command.starts_with("cargo component build")),
        "the guide starts a model and builds it with both tools: {steps:#?}"
    );
    // `ds` and `ads` are the binaries built from this checkout; `cargo` is this cargo.
    let bin_dir = binary("ds").parent().unwrap().to_path_buf();
    let cargo_dir = Path::new(env!("CARGO")).parent().unwrap().to_path_buf();
    let path = std::env::join_paths(
        [bin_dir, cargo_dir]
            .into_iter()
            .chain(std::env::split_paths(
                &std::env::var_os("PATH").unwrap_or_default(),
            )),
    )
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut cwd: PathBuf = work.path().to_path_buf();
    for step in &steps {
        if let Some(dir) = step.command.strip_prefix("cd ") {
            cwd = cwd.join(dir);
            // The crate's build directory is kept between runs of this test (the guide's
            // commands still name `target/…`, as a user's do).
            let kept = root.join("target/guide-model-build");
            std::fs::create_dir_all(&kept).unwrap();
            std::os::unix::fs::symlink(&kept, cwd.join("target")).unwrap();
            continue;
        }
        let out = Command::new("sh")
            .args(["-c", &step.command])
            .current_dir(&cwd)
            .env("PATH", &path)
            .env("DS_CACHE_DIR", work.path().join("cache"))
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let hint = if step.command.starts_with("cargo component") {
            "\n(cargo-component 0.21.1 is needed: `cargo install cargo-component --version \
             0.21.1 --locked`, as .ci/run does)"
        } else {
            ""
        };
        assert_eq!(
            out.status.code(),
            Some(step.exit),
            "`{}` exited with {:?}, the guide says {}:\n{stdout}\n{stderr}{hint}",
            step.command,
            out.status.code(),
            step.exit
        );
        if !step.prints.is_empty() {
            let printed: Vec<&str> = stdout
                .lines()
                .chain(stderr.lines())
                .filter(|l| !l.trim().is_empty())
                .collect();
            assert_eq!(printed, step.prints, "what `{}` printed", step.command);
        }
    }
    // cargo-component's build leaves no bindings file in the user's sources.
    let sources: Vec<String> = std::fs::read_dir(cwd.join("src"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(sources, ["lib.rs"], "nothing but the model's own source");
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
fn part_b_extending_the_example_works_as_written() {
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
                r#"members = ["guest", "guest/sdk", "guest/model", "guest/app", "guest/rt"]"#
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

/// The shipped guest builds with cargo-component too (as the guide's section 5 says), into a
/// component with the typed `accounts` exports both hosts call, and leaves no generated
/// bindings in the sources.
#[test]
fn the_shipped_guest_builds_with_cargo_component() {
    let root = workspace_root();
    // A target directory of its own: the outer `cargo test` holds the workspace's.
    let target = root.join("target/cargo-component-build");
    let out = Command::new(env!("CARGO"))
        .args(["component", "build", "-q", "-p", "ds-guest", "--release"])
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo component build -p ds-guest failed (cargo-component 0.21.1 is needed: \
         `cargo install cargo-component --version 0.21.1 --locked`, as .ci/run does):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let component = target.join("wasm32-wasip1/release/ds_guest.wasm");
    for dir in ["guest/src", "guest/sdk/src", "guest/app/src"] {
        let stray = root.join(dir).join("bindings.rs");
        assert!(!stray.exists(), "cargo-component wrote {}", stray.display());
    }
    let work = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", work.path().join("cc.db").display());
    let run = |host: &str, args: &[&str]| {
        let out = Command::new(binary(host))
            .args(["--store", &store, "--component"])
            .arg(&component)
            .args(args)
            .env("DS_CACHE_DIR", work.path().join("cache"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{host} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    run(
        "ds",
        &["put", "Account:a", r#"{"owner": "A", "balance": 5}"#],
    );
    run("ds", &["put", "Account:b", r#"{"owner": "B"}"#]);
    assert_eq!(
        run("ds", &["deposit", "Account:a", "3"]),
        r#"{"account":"Account:a","balance":8}"#
    );
    assert!(
        run("ads", &["transfer", "Account:a", "Account:b", "2"])
            .contains(r#""destination_balance":2"#)
    );
}
