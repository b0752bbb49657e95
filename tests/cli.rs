//! Both binaries, end to end: the same commands give the same output and exit codes, they
//! share one SQLite file, and bad input is a clear error that changes nothing.

use std::path::Path;
use std::process::{Command, Output};

use ds_tests::binary;

const HOSTS: [&str; 2] = ["ds", "ads"];

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(host: &str, dir: &Path, args: &[&str]) -> Run {
    run_os(
        host,
        dir,
        &args
            .iter()
            .map(std::ffi::OsString::from)
            .collect::<Vec<_>>(),
    )
}

/// Runs `host` with arguments that may not be UTF-8.
fn run_os(host: &str, dir: &Path, args: &[std::ffi::OsString]) -> Run {
    let out: Output = Command::new(binary(host))
        .args(args)
        .current_dir(dir)
        .env("DS_CACHE_DIR", dir.join("cache"))
        .env_remove("DS_STORE")
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn put_get_delete_round_trip_on_the_default_store() {
    for host in HOSTS {
        let dir = tempfile::tempdir().unwrap();
        let put = run(
            host,
            dir.path(),
            &["put", "Note:alice", r#"{"balance": 10, "tags": ["a"]}"#],
        );
        assert_eq!(
            (put.code, put.stdout.as_str()),
            (0, "{\"key\":\"Note:alice\"}\n"),
            "{host}: {}",
            put.stderr
        );
        assert!(
            dir.path().join("ds.db").is_file(),
            "{host}: the default store is ./ds.db"
        );

        let get = run(host, dir.path(), &["get", "Note:alice"]);
        assert_eq!(get.code, 0, "{host}: {}", get.stderr);
        assert_eq!(
            get.stdout,
            "{\"key\":\"Note:alice\",\"properties\":{\"balance\":10,\"tags\":[\"a\"]}}\n"
        );

        let delete = run(host, dir.path(), &["delete", "Note:alice"]);
        assert_eq!(delete.code, 0, "{host}: {}", delete.stderr);
        let gone = run(host, dir.path(), &["get", "Note:alice"]);
        assert_eq!(gone.code, 1, "{host}");
        assert!(
            gone.stderr.contains("no entity at key Note:alice"),
            "{host}: {}",
            gone.stderr
        );
        assert!(gone.stdout.is_empty());
    }
}

#[test]
fn both_binaries_share_one_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("shared.db").display());
    let put = run(
        "ds",
        dir.path(),
        &[
            "--store",
            &url,
            "put",
            "t1@Note:alice/Order:7",
            r#"{"qty": 2}"#,
        ],
    );
    assert_eq!(put.code, 0, "{}", put.stderr);
    let get = run(
        "ads",
        dir.path(),
        &["get", "--store", &url, "t1@Note:alice/Order:7"],
    );
    assert_eq!(get.code, 0, "{}", get.stderr);
    assert!(get.stdout.contains(r#""qty":2"#), "{}", get.stdout);

    // DS_STORE names the store when --store does not.
    let out = Command::new(binary("ads"))
        .args(["get", "t1@Note:alice/Order:7"])
        .current_dir(dir.path())
        .env("DS_STORE", &url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn trace_shows_the_call_path_on_stderr() {
    for (host, api, transport) in [
        ("ds", "Model sync get()", "get() with key = my_key"),
        ("ads", "Model async get()", "async get() with key = my_key"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            run(host, dir.path(), &["put", "Model:my_key", "{}"]).code,
            0
        );
        let get = run(host, dir.path(), &["get", "Model:my_key", "--trace"]);
        assert_eq!(get.code, 0, "{host}: {}", get.stderr);
        let api_at = get
            .stderr
            .find(api)
            .unwrap_or_else(|| panic!("{host}: no {api:?} in {}", get.stderr));
        let guest_at = get
            .stderr
            .find("Model base _get()")
            .expect("guest log line");
        let transport_at = get.stderr.find(transport).expect("transport line");
        assert!(
            api_at < guest_at && guest_at < transport_at,
            "{host}: out of order: {}",
            get.stderr
        );
        assert_eq!(
            get.stdout, "{\"key\":\"Model:my_key\",\"properties\":{}}\n",
            "{host}: stdout holds the result only"
        );
    }
}

fn store_contents(dir: &Path) -> Vec<host_core::store::Entry> {
    let store = host_core::store::SqliteStore::open(dir.join("ds.db")).unwrap();
    host_core::store::scan_all(&store).unwrap()
}

/// The committed corpus of hostile inputs (`tests/hostile_inputs.json`): every case is a
/// clear error with its exit code, prints nothing on stdout, and changes nothing stored.
#[test]
fn hostile_inputs_are_clear_errors_and_change_nothing() {
    use std::os::unix::ffi::OsStringExt;
    let corpus: serde_json::Value =
        serde_json::from_str(include_str!("hostile_inputs.json")).expect("the corpus is JSON");
    let cases = corpus["cases"].as_array().expect("cases");
    assert!(cases.len() >= 70, "the corpus lost cases");
    for host in HOSTS {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("corrupt.db"),
            b"this is not a SQLite database",
        )
        .unwrap();
        let big = format!(
            "{{\"key\": \"Note:big\", \"properties\": {{\"big\": {{\"$unindexed\": \"{}\"}}}}}}\n",
            "x".repeat(1 << 20)
        );
        std::fs::write(dir.path().join("big.jsonl"), big).unwrap();
        assert_eq!(
            run(host, dir.path(), &["put", "Note:keep", r#"{"v": 1}"#]).code,
            0
        );
        for (account, balance) in [("Account:a", 5), ("Account:b", 0)] {
            let props = format!(r#"{{"owner": "x", "balance": {balance}}}"#);
            assert_eq!(run(host, dir.path(), &["put", account, &props]).code, 0);
        }
        let before = store_contents(dir.path());
        for case in cases {
            let args: Vec<std::ffi::OsString> = case["args"]
                .as_array()
                .expect("args")
                .iter()
                .map(|arg| match arg.as_str().expect("string argument") {
                    "<invalid-utf8>" => std::ffi::OsString::from_vec(b"A:\xff\xfe".to_vec()),
                    text => text.replace("{dir}", dir.path().to_str().unwrap()).into(),
                })
                .collect();
            let code = case["exit"].as_i64().expect("exit") as i32;
            let message = case["stderr"].as_str().expect("stderr");
            let out = run_os(host, dir.path(), &args);
            let shown: Vec<String> = args
                .iter()
                .map(|a| a.to_string_lossy().chars().take(60).collect())
                .collect();
            assert_eq!(out.code, code, "{host} {shown:?}: {}", out.stderr);
            assert!(
                out.stderr.contains(message),
                "{host} {shown:?}: {:?} lacks {message:?}",
                out.stderr
            );
            if let Some(secret) = case.get("stderr_lacks").and_then(|s| s.as_str()) {
                assert!(
                    !out.stderr.contains(secret),
                    "{host} {shown:?}: {:?} shows {secret:?}",
                    out.stderr
                );
            }
            assert!(
                out.stdout.is_empty(),
                "{host} {shown:?} printed {:?}",
                out.stdout
            );
            assert_eq!(
                store_contents(dir.path()),
                before,
                "{host} {shown:?}: the store changed"
            );
        }
        assert_eq!(
            std::fs::read(dir.path().join("corrupt.db")).unwrap(),
            b"this is not a SQLite database",
            "{host}: the corrupt file was not touched"
        );
    }
}

/// `--output table`: one table (one header) for all the pages of a command, and a property
/// named like a field of the row (`key`) shown in a column of its own.
#[test]
fn table_output_is_one_table_and_hides_no_property() {
    for host in HOSTS {
        let dir = tempfile::tempdir().unwrap();
        let put = run(
            host,
            dir.path(),
            &["put", "Note:a", r#"{"key": "x", "n": 1}"#],
        );
        assert_eq!(put.code, 0, "{host}: {}", put.stderr);
        let get = run(host, dir.path(), &["get", "Note:a", "--output", "table"]);
        assert_eq!(get.code, 0, "{host}: {}", get.stderr);
        let lines: Vec<&str> = get.stdout.lines().collect();
        assert_eq!(lines.len(), 2, "{host}: {}", get.stdout);
        let header: Vec<&str> = lines[0].split_whitespace().collect();
        let row: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(header, ["key", "properties.key", "n"], "{host}");
        assert_eq!(row, ["Note:a", "x", "1"], "{host}");

        // Export pages hold 500 entities: 600 entities are two pages, one table.
        let lines: String = (1..=600)
            .map(|i| format!("{{\"key\": \"Item:{i}\", \"properties\": {{\"n\": {i}}}}}\n"))
            .collect();
        std::fs::write(dir.path().join("items.jsonl"), lines).unwrap();
        let import = run(host, dir.path(), &["import", "items.jsonl"]);
        assert_eq!(import.code, 0, "{host}: {}", import.stderr);
        let export = run(host, dir.path(), &["export", "Item", "--output", "table"]);
        assert_eq!(export.code, 0, "{host}: {}", export.stderr);
        let headers = export
            .stdout
            .lines()
            .filter(|l| l.starts_with("key"))
            .count();
        assert_eq!((headers, export.stdout.lines().count()), (1, 601), "{host}");
    }
}

/// `ds serve` is a usage error, answered before the default store file is created.
#[test]
fn ds_serve_is_refused_without_creating_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let out = run("ds", dir.path(), &["serve"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("ads serve"), "{}", out.stderr);
    assert!(!dir.path().join("ds.db").exists(), "ds.db was created");
}

#[test]
fn new_model_writes_a_crate_or_nothing_and_opens_no_store() {
    for host in HOSTS {
        let dir = tempfile::tempdir().unwrap();
        let out = run(
            host,
            dir.path(),
            &["new-model", "notes", "--sdk-version", "0.2.0"],
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(
            out.stdout
                .contains(r#""component":"target/wasm32-wasip2/release/notes.wasm""#),
            "{}",
            out.stdout
        );
        let manifest = std::fs::read_to_string(dir.path().join("notes/Cargo.toml")).unwrap();
        assert!(manifest.contains(r#"ds-guest-sdk = "0.2.0""#), "{manifest}");
        assert!(
            !dir.path().join("ds.db").exists(),
            "{host} new-model opened a store"
        );

        // Into a directory with something in it: exit 2, and it is left as it was.
        let out = run(host, dir.path(), &["new-model", "notes"]);
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(out.stderr.contains("is not empty"), "{}", out.stderr);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("notes/Cargo.toml")).unwrap(),
            manifest
        );
        // A name cargo would refuse, and conflicting sources, are usage errors too.
        let out = run(host, dir.path(), &["new-model", "9lives"]);
        assert_eq!(out.code, 2, "{}", out.stderr);
        let out = run(
            host,
            dir.path(),
            &["new-model", "x", "--sdk-path", ".", "--sdk-version", "1"],
        );
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(!dir.path().join("9lives").exists() && !dir.path().join("x").exists());
    }
}

#[test]
fn a_corrupt_store_file_is_refused_not_overwritten() {
    for host in HOSTS {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ds.db");
        std::fs::write(
            &path,
            b"this is not a SQLite database, and it must survive intact",
        )
        .unwrap();
        let out = run(host, dir.path(), &["put", "A:b", "{}"]);
        assert_eq!(out.code, 4, "{host}: {}", out.stderr);
        assert!(
            out.stderr.contains("not a SQLite database"),
            "{host}: {}",
            out.stderr
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"this is not a SQLite database, and it must survive intact"
        );
    }
}

#[test]
fn another_component_build_runs_without_rebuilding_the_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let component = dir.path().join("model.wasm");
    std::fs::write(&component, host_core::runtime::EMBEDDED_COMPONENT).unwrap();
    let not_a_component = dir.path().join("junk.wasm");
    std::fs::write(&not_a_component, b"\0asm junk").unwrap();
    for host in HOSTS {
        let path = component.to_str().unwrap();
        assert_eq!(
            run(host, dir.path(), &["--component", path, "put", "A:b", "{}"]).code,
            0
        );
        let get = run(host, dir.path(), &["--component", path, "get", "A:b"]);
        assert_eq!(get.code, 0, "{host}: {}", get.stderr);
        let bad = run(
            host,
            dir.path(),
            &[
                "--component",
                not_a_component.to_str().unwrap(),
                "get",
                "A:b",
            ],
        );
        assert_eq!(bad.code, 5, "{host}: {}", bad.stderr);
        assert!(
            bad.stderr.contains("cannot load the model component"),
            "{host}: {}",
            bad.stderr
        );
    }
}

#[test]
fn the_component_cache_is_filled_and_a_damaged_entry_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(run("ds", dir.path(), &["put", "A:b", "{}"]).code, 0);
    let cached: Vec<_> = std::fs::read_dir(dir.path().join("cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    let good = std::fs::read(&cached[0]).unwrap();
    std::fs::write(&cached[0], &good[..good.len() / 3]).unwrap();
    for host in HOSTS {
        let get = run(host, dir.path(), &["get", "A:b"]);
        assert_eq!(get.code, 0, "{host}: {}", get.stderr);
    }
    assert_eq!(
        std::fs::read(&cached[0]).unwrap(),
        good,
        "the damaged cache file was rebuilt"
    );
}

#[test]
fn import_then_check_and_bad_lines_stop_the_import() {
    for host in HOSTS {
        let dir = tempfile::tempdir().unwrap();
        let good: String = (1..=7)
            .map(|i| format!("{{\"key\": \"Item:{i}\", \"properties\": {{\"n\": {i}}}}}\n\n"))
            .collect();
        std::fs::write(dir.path().join("good.jsonl"), &good).unwrap();
        let import = run(host, dir.path(), &["import", "good.jsonl", "--batch", "3"]);
        assert_eq!(
            (import.code, import.stdout.as_str()),
            (0, "{\"imported\":7}\n"),
            "{host}: {}",
            import.stderr
        );
        let check = run(host, dir.path(), &["check"]);
        assert_eq!(
            (check.code, check.stdout.as_str()),
            (0, "{\"entities\":7,\"index_rows\":14,\"problems\":[]}\n"),
            "{host}"
        );

        // Line 5 is bad: the first batch (lines 1-3) is written, the second is not.
        let bad = "{\"key\": \"New:1\"}\n{\"key\": \"New:2\"}\n{\"key\": \"New:3\"}\n{\"key\": \"New:4\"}\n{\"key\": \"New:0\"}\n";
        std::fs::write(dir.path().join("bad.jsonl"), bad).unwrap();
        let import = run(host, dir.path(), &["import", "bad.jsonl", "--batch", "3"]);
        assert_eq!(import.code, 2, "{host}: {}", import.stderr);
        assert!(
            import.stderr.contains("line 5")
                && import.stderr.contains("id 0")
                && import.stderr.contains("the 3 entities before line 4")
                && import.stderr.contains("nothing from line 4 on"),
            "{host}: {}",
            import.stderr
        );
        assert_eq!(
            run(host, dir.path(), &["get", "New:3"]).code,
            0,
            "{host}: first batch written"
        );
        assert_eq!(
            run(host, dir.path(), &["get", "New:4"]).code,
            1,
            "{host}: second batch not written"
        );

        // An entity its kind's declaration refuses (Account needs an owner) is found when
        // its batch is written: the error names the batch's lines, and none is written.
        let refused = "{\"key\": \"Late:1\"}\n{\"key\": \"Late:2\"}\n{\"key\": \"Late:3\"}\n\n{\"key\": \"Late:4\"}\n{\"key\": \"Account:x\", \"properties\": {\"balance\": 3}}\n{\"key\": \"Late:5\"}\n";
        std::fs::write(dir.path().join("refused.jsonl"), refused).unwrap();
        let import = run(
            host,
            dir.path(),
            &["import", "refused.jsonl", "--batch", "3"],
        );
        assert_eq!(import.code, 2, "{host}: {}", import.stderr);
        assert!(
            import.stderr.contains("after 3 entities")
                && import.stderr.contains("lines 5-7")
                && import.stderr.contains("owner"),
            "{host}: {}",
            import.stderr
        );
        assert_eq!(run(host, dir.path(), &["get", "Late:3"]).code, 0, "{host}");
        assert_eq!(run(host, dir.path(), &["get", "Late:4"]).code, 1, "{host}");

        for (line, message) in [
            ("[1]", "expected an object"),
            ("{\"key\": 5}", "key string"),
            ("{\"key\": \"A:b\", \"x\": 1}", "unexpected field"),
        ] {
            std::fs::write(dir.path().join("one.jsonl"), line).unwrap();
            let out = run(host, dir.path(), &["import", "one.jsonl"]);
            assert_eq!(out.code, 2, "{host} {line}");
            assert!(
                out.stderr.contains(message),
                "{host} {line}: {}",
                out.stderr
            );
        }
    }
}

#[test]
fn check_reports_rows_the_model_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(run("ds", dir.path(), &["put", "A:b", "{}"]).code, 0);
    let conn = rusqlite::Connection::open(dir.path().join("ds.db")).unwrap();
    conn.execute(
        "INSERT INTO ds_kv (key, value, version) VALUES (x'99', x'', 1)",
        [],
    )
    .unwrap();
    drop(conn);
    for host in HOSTS {
        let check = run(host, dir.path(), &["check"]);
        assert_eq!(check.code, 6, "{host}: {}", check.stderr);
        assert!(
            check.stdout.contains("not an entity row"),
            "{host}: {}",
            check.stdout
        );
        assert!(
            check.stderr.contains("check found 1 problem"),
            "{host}: {}",
            check.stderr
        );
    }
}

#[test]
fn export_then_import_into_an_empty_store_gives_identical_entities() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = String::new();
    for i in 1..=1200 {
        let key = match i % 3 {
            0 => format!("Item:{i}"),
            1 => format!("t1@Shop:\\\"s {i}\\\"/Item:{i}"),
            _ => format!("Shop:\\\"{i}\\\""),
        };
        lines.push_str(&format!(
            "{{\"key\": \"{key}\", \"properties\": {{\"n\": {i}, \"f\": {}.5, \"s\": \"é😀\\n{i}\", \"a\": [null, true, {{\"x\": {i}}}]}}}}\n",
            i * 7
        ));
    }
    std::fs::write(dir.path().join("source.jsonl"), &lines).unwrap();
    let first = format!("sqlite:{}", dir.path().join("first.db").display());
    let second = format!("sqlite:{}", dir.path().join("second.db").display());
    assert_eq!(
        run(
            "ds",
            dir.path(),
            &["--store", &first, "import", "source.jsonl"]
        )
        .code,
        0
    );

    let exported = run("ads", dir.path(), &["--store", &first, "export"]);
    assert_eq!(exported.code, 0, "{}", exported.stderr);
    assert_eq!(exported.stdout.lines().count(), 1200);
    std::fs::write(dir.path().join("exported.jsonl"), &exported.stdout).unwrap();
    let imported = run(
        "ads",
        dir.path(),
        &["--store", &second, "import", "exported.jsonl"],
    );
    assert_eq!(
        imported.stdout, "{\"imported\":1200}\n",
        "{}",
        imported.stderr
    );
    let again = run("ds", dir.path(), &["--store", &second, "export"]);
    assert_eq!(
        again.stdout, exported.stdout,
        "export → import → export is the identity"
    );

    // Every source entity came through unchanged.
    let parse = |text: &str| -> std::collections::BTreeMap<String, serde_json::Value> {
        text.lines()
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                let key: host_core::Key = value["key"].as_str().unwrap().parse().unwrap();
                (key.to_string(), value["properties"].clone())
            })
            .collect()
    };
    assert_eq!(parse(&again.stdout), parse(&lines));

    let shops = run("ds", dir.path(), &["--store", &second, "export", "Shop"]);
    assert_eq!(
        shops.stdout.lines().count(),
        400,
        "only Shop entities (not their Item children)"
    );
}

/// A store of large entities (60 of 700 KB: more than one instance's 64 MiB in all) is
/// imported with the default batch, exported and checked: batches and pages are bounded by
/// bytes, not only by count.
#[test]
fn large_entities_import_export_and_check_with_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let (count, size) = (60, 700_000);
    let blob = "x".repeat(size);
    let lines: String = (1..=count)
        .map(|i| {
            format!("{{\"key\": \"Blob:{i}\", \"properties\": {{\"n\": {i}, \"b\": {{\"$unindexed\": \"{blob}\"}}}}}}\n")
        })
        .collect();
    std::fs::write(dir.path().join("big.jsonl"), &lines).unwrap();
    for host in HOSTS {
        let store = format!("sqlite:{}", dir.path().join(format!("{host}.db")).display());
        let import = run(
            host,
            dir.path(),
            &["--store", &store, "import", "big.jsonl"],
        );
        assert_eq!(
            (import.code, import.stdout.as_str()),
            (0, format!("{{\"imported\":{count}}}\n").as_str()),
            "{host}: {}",
            import.stderr
        );
        let export = run(host, dir.path(), &["--store", &store, "export"]);
        assert_eq!(export.code, 0, "{host}: {}", export.stderr);
        assert_eq!(export.stdout.lines().count(), count, "{host}");
        assert!(
            export.stdout.lines().all(|line| line.len() > size),
            "{host}: every entity whole"
        );
        let check = run(host, dir.path(), &["--store", &store, "check"]);
        assert_eq!(check.code, 0, "{host}: {}", check.stderr);
        let report: serde_json::Value = serde_json::from_str(&check.stdout).unwrap();
        assert_eq!(report["entities"], count, "{host}: {}", check.stdout);
        assert_eq!(report["problems"], serde_json::json!([]), "{host}");

        // A reader that stops early (`ds export | head -1`) ends the export quietly.
        let mut export = Command::new(binary(host))
            .args(["--store", &store, "export"])
            .current_dir(dir.path())
            .env("DS_CACHE_DIR", dir.path().join("cache"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        let mut stdout = std::io::BufReader::new(export.stdout.take().unwrap());
        std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
        assert!(
            first.starts_with("{\"key\":\"Blob:1\""),
            "{host}: {}",
            &first[..40]
        );
        drop(stdout);
        let out = export.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{host}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{host}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A query without `--limit` prints every result, over several pages; an offset skips
/// results once, not once per page.
#[test]
fn an_unlimited_query_pages_through_everything_and_skips_its_offset_once() {
    let dir = tempfile::tempdir().unwrap();
    let count: u64 = 1_010; // more than one page (`MAX_PAGE`, 1,000)
    let lines: String = (1..=count)
        .map(|i| format!("{{\"key\": \"Item:{i}\", \"properties\": {{\"n\": {i}}}}}\n"))
        .collect();
    std::fs::write(dir.path().join("items.jsonl"), lines).unwrap();
    let import = run("ds", dir.path(), &["import", "items.jsonl"]);
    assert_eq!(import.code, 0, "{}", import.stderr);
    for host in HOSTS {
        for (offset, expected) in [("0", count), ("5", count - 5), ("1003", count - 1003)] {
            let query = run(host, dir.path(), &["query", "Item", "--offset", offset]);
            assert_eq!(query.code, 0, "{host}: {}", query.stderr);
            let ids: Vec<u64> = query
                .stdout
                .lines()
                .map(|line| {
                    let row: serde_json::Value = serde_json::from_str(line).unwrap();
                    let key = row["key"].as_str().expect("a result row, not a cursor");
                    key.strip_prefix("Item:").unwrap().parse().unwrap()
                })
                .collect();
            let skipped: u64 = offset.parse().unwrap();
            assert_eq!(
                ids,
                (skipped + 1..=count).collect::<Vec<_>>(),
                "{host} --offset {offset}: every result after the first {offset}, once"
            );
            assert_eq!(ids.len() as u64, expected);
        }
    }
}

/// The model layer from the command line: typed values round-trip, queries page with
/// cursors, ids are allocated, and the example's business operations keep their rules,
/// with the documented exit codes; the same through both binaries.
#[test]
fn queries_transactions_and_typed_values_from_the_command_line() {
    for host in HOSTS {
        let dir = tempfile::tempdir().unwrap();
        let typed = r#"{"at":{"$timestamp":"2024-05-01T12:00:00.500000Z"},"blob":{"$bytes":"AP8="},"f":2.0,"link":{"$key":"Note:a"},"n":7,"nan":{"$float":"NaN"},"big":{"$unindexed":"text"}}"#;
        assert_eq!(
            run(host, dir.path(), &["put", "Note:typed", typed]).code,
            0,
            "{host}"
        );
        let get = run(host, dir.path(), &["get", "Note:typed"]);
        let got: serde_json::Value = serde_json::from_str(&get.stdout).unwrap();
        let want: serde_json::Value = serde_json::from_str(typed).unwrap();
        assert_eq!(got["properties"], want, "{host}: typed values round-trip");

        for (name, owner, balance) in [("a", "Ann", 50), ("b", "Ann", 10), ("c", "Cy", 0)] {
            let props = format!(r#"{{"owner":"{owner}","balance":{balance}}}"#);
            let put = run(
                host,
                dir.path(),
                &["put", &format!("Account:{name}"), &props],
            );
            assert_eq!(put.code, 0, "{host}: {}", put.stderr);
        }
        // Validation names the property; nothing is written.
        let bad = run(
            host,
            dir.path(),
            &["put", "Account:d", r#"{"owner":"D","balance":-1}"#],
        );
        assert_eq!(bad.code, 2, "{host}");
        assert!(
            bad.stderr.contains("balance: must not be negative"),
            "{host}: {}",
            bad.stderr
        );
        assert_eq!(run(host, dir.path(), &["get", "Account:d"]).code, 1);

        // A query served by the declared composite index, paged one result at a time.
        let mut cursor: Option<String> = None;
        let mut seen = Vec::new();
        loop {
            let mut args = vec![
                "query",
                "Account",
                "--filter",
                r#"owner = "Ann""#,
                "--order",
                "-balance",
                "--limit",
                "1",
            ];
            if let Some(cursor) = &cursor {
                args.extend(["--cursor", cursor.as_str()]);
            }
            let page = run(host, dir.path(), &args);
            assert_eq!(page.code, 0, "{host}: {}", page.stderr);
            cursor = None;
            for line in page.stdout.lines() {
                let line: serde_json::Value = serde_json::from_str(line).unwrap();
                match line["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_string()),
                    None => seen.push(line["key"].as_str().unwrap().to_string()),
                }
            }
            if cursor.is_none() || seen.len() > 5 {
                break;
            }
        }
        assert_eq!(seen, ["Account:a", "Account:b"], "{host}");
        let unserved = run(
            host,
            dir.path(),
            &[
                "query",
                "Account",
                "--filter",
                "balance > 1",
                "--order",
                "owner",
            ],
        );
        assert_eq!(unserved.code, 2, "{host}");
        assert!(
            unserved
                .stderr
                .contains("first sort order must be on balance"),
            "{host}: {}",
            unserved.stderr
        );
        let no_index = run(
            host,
            dir.path(),
            &["query", "Note", "--filter", "n = 7", "--order", "f"],
        );
        assert_eq!(no_index.code, 2, "{host}");
        assert!(
            no_index
                .stderr
                .contains("declare the composite index Note(n,f)"),
            "{host}: {}",
            no_index.stderr
        );

        // The business operations, with their exit codes.
        let moved = run(
            host,
            dir.path(),
            &["transfer", "Account:a", "Account:c", "20"],
        );
        assert_eq!(moved.code, 0, "{host}: {}", moved.stderr);
        assert!(
            moved.stdout.contains(r#""destination_balance":20"#),
            "{host}: {}",
            moved.stdout
        );
        let refused = run(
            host,
            dir.path(),
            &["transfer", "Account:b", "Account:c", "11"],
        );
        assert_eq!(refused.code, 7, "{host}: {}", refused.stderr);
        assert!(
            refused.stderr.contains("insufficient funds"),
            "{host}: {}",
            refused.stderr
        );
        let missing = run(host, dir.path(), &["deposit", "Account:nobody", "5"]);
        assert_eq!(missing.code, 1, "{host}: {}", missing.stderr);
        let withdraw = run(host, dir.path(), &["deposit", "Account:c", "-5"]);
        assert_eq!(
            withdraw.stdout, "{\"account\":\"Account:c\",\"balance\":15}\n",
            "{host}"
        );
        let history = run(
            host,
            dir.path(),
            &[
                "query",
                "Transfer",
                "--ancestor",
                "Account:a",
                "--keys-only",
            ],
        );
        assert_eq!(
            history.stdout.lines().count(),
            1,
            "{host}: {}",
            history.stdout
        );

        // Ids: consecutive, never reissued.
        let first = run(host, dir.path(), &["allocate-ids", "Order", "10"]);
        assert_eq!(
            first.stdout, "{\"first\":1,\"kind\":\"Order\",\"last\":10}\n",
            "{host}"
        );
        let next = run(host, dir.path(), &["allocate-ids", "Order", "1"]);
        assert_eq!(
            next.stdout, "{\"first\":11,\"kind\":\"Order\",\"last\":11}\n",
            "{host}"
        );

        // The URL-safe key form is accepted wherever a key is.
        let urlsafe = "Account:a".parse::<host_core::Key>().unwrap().to_urlsafe();
        let get = run(host, dir.path(), &["get", &urlsafe]);
        assert!(
            get.stdout.contains(r#""key":"Account:a""#),
            "{host}: {}",
            get.stderr
        );

        let check = run(host, dir.path(), &["check"]);
        assert_eq!(check.code, 0, "{host}: {}", check.stdout);
    }
}

/// `--version` names the build; in full (`--version`, not `-V`) also the contract and the
/// store formats this build reads and writes.
#[test]
fn version_names_the_build_contract_and_store_formats() {
    let dir = tempfile::tempdir().unwrap();
    for host in HOSTS {
        let short = run(host, dir.path(), &["-V"]);
        assert_eq!(
            (short.code, short.stdout.as_str()),
            (
                0,
                format!("{host} {}\n", env!("CARGO_PKG_VERSION")).as_str()
            )
        );
        let long = run(host, dir.path(), &["--version"]);
        assert_eq!(long.code, 0, "{}", long.stderr);
        assert!(
            long.stdout
                .contains("contract ds:datastore@0.2.0; store formats: sqlite 1, postgres 1"),
            "{}",
            long.stdout
        );
    }
}

/// Rough edges a new user found (issue 28, item 13), through both binaries.
#[test]
fn rough_edges_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    for host in HOSTS {
        // Each binary's examples name that binary.
        let help = run(host, dir.path(), &["put", "--help"]);
        assert_eq!(help.code, 0, "{}", help.stderr);
        assert!(
            help.stdout
                .contains(&format!("\n  {host} put Account:alice")),
            "{host}: {}",
            help.stdout
        );
        if host == "ads" {
            assert!(!help.stdout.contains("\n  ds put"), "{}", help.stdout);
        }

        // A missing import file is bad input (exit 2), and creates no store.
        let store = format!("sqlite:{host}.db");
        let missing = run(
            host,
            dir.path(),
            &["--store", &store, "import", "nope.jsonl"],
        );
        assert_eq!(missing.code, 2, "{host}: {}", missing.stderr);
        assert!(
            missing.stderr.contains("cannot open nope.jsonl"),
            "{}",
            missing.stderr
        );

        // A UTF-8 byte-order mark at the start of an import file is skipped.
        std::fs::write(
            dir.path().join("bom.jsonl"),
            "\u{feff}{\"key\": \"Note:1\", \"properties\": {\"n\": 1}}\n",
        )
        .unwrap();
        let imported = run(
            host,
            dir.path(),
            &["--store", &store, "import", "bom.jsonl"],
        );
        assert_eq!(imported.code, 0, "{host}: {}", imported.stderr);
        let got = run(host, dir.path(), &["--store", &store, "get", "Note:1"]);
        assert_eq!(got.code, 0, "{host}: {}", got.stderr);

        // A table shows control characters escaped and aligns wide characters by the
        // columns they take; --pretty indents JSON.
        for (key, properties) in [
            ("Note:2", r#"{"t": "a\u001b[31mred", "w": "日本語"}"#),
            ("Note:3", r#"{"t": "plain", "w": "ab"}"#),
        ] {
            let put = run(
                host,
                dir.path(),
                &["--store", &store, "put", key, properties],
            );
            assert_eq!(put.code, 0, "{host}: {}", put.stderr);
        }
        let table = run(
            host,
            dir.path(),
            &["--store", &store, "export", "Note", "--output", "table"],
        );
        assert_eq!(table.code, 0, "{host}: {}", table.stderr);
        assert!(
            !table.stdout.contains('\u{1b}'),
            "{host}: {:?}",
            table.stdout
        );
        assert!(
            table.stdout.contains(r"a\u{1b}[31mred"),
            "{host}: {}",
            table.stdout
        );
        let lines: Vec<&str> = table.stdout.lines().collect();
        let column = |line: &str, text: &str| {
            let at = line.find(text).unwrap();
            unicode_width::UnicodeWidthStr::width(&line[..at])
        };
        assert_eq!(
            column(lines[2], "日本語"),
            column(lines[3], "ab"),
            "{}",
            table.stdout
        );
        let pretty = run(
            host,
            dir.path(),
            &["--store", &store, "get", "Note:3", "--pretty"],
        );
        assert_eq!(pretty.code, 0, "{host}: {}", pretty.stderr);
        assert_eq!(
            pretty.stdout,
            "{\n  \"key\": \"Note:3\",\n  \"properties\": {\n    \"t\": \"plain\",\n    \"w\": \"ab\"\n  }\n}\n"
        );

        // `key` prints both forms and reads either; the URL-safe form names a key anywhere.
        let shown = run(host, dir.path(), &["key", "Account:alice/Order:7"]);
        assert_eq!(shown.code, 0, "{host}: {}", shown.stderr);
        let shown: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
        let urlsafe = shown["urlsafe"].as_str().unwrap();
        assert!(!urlsafe.contains(':'), "{urlsafe}");
        let back = run(host, dir.path(), &["key", urlsafe]);
        let back: serde_json::Value = serde_json::from_str(&back.stdout).unwrap();
        assert_eq!(back, shown);
        let put = run(host, dir.path(), &["--store", &store, "put", urlsafe, "{}"]);
        assert_eq!(put.code, 0, "{host}: {}", put.stderr);
        let got = run(
            host,
            dir.path(),
            &["--store", &store, "get", "Account:alice/Order:7"],
        );
        assert_eq!(got.code, 0, "{host}: {}", got.stderr);

        // Properties from a file (`@FILE`) or standard input (`-`); several keys at once.
        std::fs::write(dir.path().join("note.json"), r#"{"from": "file"}"#).unwrap();
        let put = run(
            host,
            dir.path(),
            &["--store", &store, "put", "Note:4", "@note.json"],
        );
        assert_eq!(put.code, 0, "{host}: {}", put.stderr);
        let mut piped = Command::new(binary(host))
            .args(["--store", &store, "put", "Note:5", "-"])
            .current_dir(dir.path())
            .env("DS_CACHE_DIR", dir.path().join("cache"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut piped.stdin.take().unwrap(), br#"{"from": "stdin"}"#)
            .unwrap();
        assert!(piped.wait_with_output().unwrap().status.success());
        let missing_file = run(
            host,
            dir.path(),
            &["--store", &store, "put", "Note:6", "@nope.json"],
        );
        assert_eq!(missing_file.code, 2, "{host}: {}", missing_file.stderr);
        assert!(
            missing_file.stderr.contains("cannot read nope.json"),
            "{}",
            missing_file.stderr
        );
        let several = run(
            host,
            dir.path(),
            &["--store", &store, "get", "Note:4", "Note:404", "Note:5"],
        );
        assert_eq!(several.code, 1, "{host}: {}", several.stderr);
        let lines: Vec<serde_json::Value> = several
            .stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 3, "{}", several.stdout);
        assert_eq!(lines[0]["properties"]["from"], "file");
        assert_eq!(
            lines[1],
            serde_json::json!({"key": "Note:404", "found": false})
        );
        assert_eq!(lines[2]["properties"]["from"], "stdin");
        let deleted = run(
            host,
            dir.path(),
            &["--store", &store, "delete", "Note:4", "Note:5"],
        );
        assert_eq!(deleted.code, 0, "{host}: {}", deleted.stderr);
        assert_eq!(deleted.stdout.lines().count(), 2, "{}", deleted.stdout);
        let gone = run(host, dir.path(), &["--store", &store, "get", "Note:4"]);
        assert_eq!(gone.code, 1, "{host}: {}", gone.stderr);

        // A read of a SQLite store that does not exist is refused and creates nothing; a
        // write creates it.
        for read in [
            &["get", "Note:1"][..],
            &["query", "Note"],
            &["export"],
            &["check"],
        ] {
            let mut args = vec!["--store", "sqlite:typo.db"];
            args.extend_from_slice(read);
            let refused = run(host, dir.path(), &args);
            assert_eq!(refused.code, 4, "{host} {read:?}: {}", refused.stderr);
            assert!(
                refused.stderr.contains("no store at sqlite:typo.db"),
                "{host} {read:?}: {}",
                refused.stderr
            );
            assert!(
                !dir.path().join("typo.db").exists(),
                "{host} {read:?} created it"
            );
        }

        // A bad DS_MAX_INSTANCES is refused, not silently replaced by the default.
        let out = Command::new(binary(host))
            .args(["--store", "memory:", "get", "Note:1"])
            .current_dir(dir.path())
            .env("DS_CACHE_DIR", dir.path().join("cache"))
            .env("DS_MAX_INSTANCES", "abc")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{host}: {stderr}");
        assert!(stderr.contains("DS_MAX_INSTANCES=\"abc\""), "{stderr}");

        // A file that is not a component, and a core module, each say so in one line.
        std::fs::write(dir.path().join("text.wasm"), "hello\n").unwrap();
        std::fs::write(dir.path().join("core.wasm"), b"\0asm\x01\0\0\0").unwrap();
        for (file, says) in [
            ("text.wasm", "not a WebAssembly component"),
            ("core.wasm", "core WebAssembly module, not a component"),
        ] {
            let out = run(
                host,
                dir.path(),
                &["--store", "memory:", "--component", file, "get", "Note:1"],
            );
            assert_ne!(out.code, 0, "{host} {file}");
            assert!(out.stderr.contains(says), "{host} {file}: {}", out.stderr);
            assert_eq!(out.stderr.trim_end().lines().count(), 1, "{}", out.stderr);
        }
    }
}

/// Issue 28 from the command line, both binaries: metadata queries, counts (and the note
/// after an empty answer for a kind no entity has), deletes that say what was there,
/// delete by query, the declared schema and indexes, `info`, and a float filter on an
/// int64 property refused.
#[test]
fn metadata_counts_deletes_schema_and_info() {
    let dir = tempfile::tempdir().unwrap();
    for host in HOSTS {
        let store = format!("sqlite:{host}-tools.db");
        let ds = |args: &[&str]| {
            let mut all = vec!["--store", store.as_str()];
            all.extend_from_slice(args);
            run(host, dir.path(), &all)
        };
        for (key, properties) in [
            ("Account:a", r#"{"owner": "x", "balance": 10}"#),
            ("Account:b", r#"{"owner": "y", "balance": 20}"#),
            ("Note:1", r#"{"n": 1}"#),
            ("Note:2", r#"{"n": 2}"#),
            ("Note:3", r#"{"n": 3}"#),
        ] {
            assert_eq!(ds(&["put", key, properties]).code, 0);
        }
        // A kind alone: the put allocates the id and prints the key.
        for want in ["Memo:1", "Memo:2"] {
            let put = ds(&["put", "Memo", "{}"]);
            assert_eq!(
                put.stdout,
                format!("{{\"key\":\"{want}\"}}\n"),
                "{}",
                put.stderr
            );
        }
        assert_eq!(
            ds(&["put", "Account:a/Memo", "{}"]).stdout,
            "{\"key\":\"Account:a/Memo:3\"}\n"
        );
        assert_eq!(ds(&["delete-query", "Memo"]).code, 0);
        let kinds = ds(&["query", "__kind__", "--keys-only"]);
        assert_eq!(
            (kinds.code, kinds.stdout.as_str()),
            (
                0,
                "{\"key\":\"__kind__:Account\"}\n{\"key\":\"__kind__:Note\"}\n"
            ),
            "{host}: {}",
            kinds.stderr
        );
        let properties = ds(&["query", "__property__", "--ancestor", "__kind__:Note"]);
        assert_eq!(
            properties.stdout,
            "{\"key\":\"__kind__:Note/__property__:n\",\"properties\":{\"property_representation\":[\"int64\"]}}\n",
            "{host}: {}",
            properties.stderr
        );
        assert_eq!(ds(&["count", "Account"]).stdout, "{\"count\":2}\n");
        assert_eq!(
            ds(&["count", "Note", "--filter", "n >= 2"]).stdout,
            "{\"count\":2}\n"
        );
        // A misspelled kind: the answer is empty, and a note names the kinds there are.
        let typo = ds(&["count", "Acount"]);
        assert_eq!((typo.code, typo.stdout.as_str()), (0, "{\"count\":0}\n"));
        assert!(
            typo.stderr
                .contains("no entity of kind Acount exists in the default namespace (kinds there: Account, Note)"),
            "{host}: {}",
            typo.stderr
        );
        let typo = ds(&["query", "Acount"]);
        assert!(
            typo.stderr.contains("no entity of kind Acount"),
            "{}",
            typo.stderr
        );
        // A declared kind with no entity yet gets no note.
        assert!(!ds(&["query", "Transfer"]).stderr.contains("note:"));
        // A float against an int64 property: refused, not silently empty.
        let float = ds(&["query", "Account", "--filter", "balance > 1.5"]);
        assert_eq!(float.code, 2, "{host}: {}", float.stderr);
        assert!(float.stderr.contains("declared int64"), "{}", float.stderr);

        let deleted = ds(&["delete", "Account:b", "Account:nobody"]);
        assert_eq!(
            deleted.stdout,
            "{\"deleted\":true,\"key\":\"Account:b\"}\n{\"deleted\":false,\"key\":\"Account:nobody\"}\n"
        );
        let dry = ds(&["delete-query", "Note", "--filter", "n >= 2", "--dry-run"]);
        assert_eq!(
            dry.stdout, "{\"dry_run\":true,\"matched\":2}\n",
            "{}",
            dry.stderr
        );
        let done = ds(&["delete-query", "Note", "--filter", "n >= 2"]);
        assert_eq!(done.stdout, "{\"batches\":1,\"deleted\":2,\"matched\":2}\n");
        assert_eq!(ds(&["count", "Note"]).stdout, "{\"count\":1}\n");

        // Export of one namespace.
        assert_eq!(ds(&["put", "ns1@Note:1", "{}"]).code, 0);
        assert_eq!(ds(&["put", "ns2@Note:1", "{}"]).code, 0);
        assert_eq!(
            ds(&["export", "--namespace", "ns1"]).stdout,
            "{\"key\":\"ns1@Note:1\",\"properties\":{}}\n"
        );
        assert_eq!(
            ds(&["export", "Note", "--namespace", ""]).stdout,
            "{\"key\":\"Note:1\",\"properties\":{\"n\":1}}\n"
        );
        let indexes = ds(&["indexes"]);
        assert_eq!(
            indexes.stdout,
            "{\"index\":\"owner,-balance\",\"kind\":\"Account\",\"properties\":\"owner, balance\"}\n"
        );
        let schema: serde_json::Value = serde_json::from_str(&ds(&["schema"]).stdout).unwrap();
        assert_eq!(schema["kinds"][1]["kind"], "Transfer");
        let info: serde_json::Value = serde_json::from_str(&ds(&["info"]).stdout).unwrap();
        assert_eq!(info["store_format"], 1);
        assert_eq!(info["store_backend"], "sqlite");
        assert_eq!(info["contract"], "ds:datastore@0.2.0");
        assert_eq!(
            info["declared_kinds"],
            serde_json::json!(["Account", "Transfer"])
        );
        // `info` reads: it refuses a store that does not exist.
        let missing = run(host, dir.path(), &["--store", "sqlite:typo.db", "info"]);
        assert_eq!(missing.code, 4, "{}", missing.stderr);
    }
    assert!(!dir.path().join("typo.db").exists());
}

/// A component built against the first contract (`ds:datastore@0.1.0`, the shipped example
/// as it was then, where a key crossed as a record) is refused before it runs, with the
/// contract it has, the one the hosts run, and what to do; the store is not touched.
#[test]
fn a_component_of_the_first_contract_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let old = ds_tests::workspace_root().join("tests/fixtures/ds_guest_0.1.0.wasm");
    let old = old.to_str().unwrap();
    for host in HOSTS {
        let store = format!("sqlite:{host}-old.db");
        let with = |component: Option<&str>, args: &[&str]| {
            let mut all = vec!["--store", store.as_str()];
            all.extend(component.map(|c| ["--component", c]).iter().flatten());
            all.extend_from_slice(args);
            run(host, dir.path(), &all)
        };
        assert_eq!(with(None, &["put", "Note:1", "{\"n\":1}"]).code, 0);
        for args in [
            &["get", "Note:1"][..],
            &["put", "Note:2", "{}"],
            &["delete", "Note:1"],
        ] {
            let out = with(Some(old), args);
            assert_eq!(out.code, 5, "{host} {args:?}: {}", out.stderr);
            for part in [
                "built against the contract ds:datastore@0.1.0",
                "this host runs ds:datastore@0.2.0 components",
                "rebuild it with ds-guest-sdk",
            ] {
                assert!(out.stderr.contains(part), "{host} {args:?}: {}", out.stderr);
            }
            assert_eq!(out.stdout, "");
        }
        let kept = with(None, &["export"]);
        assert_eq!(
            kept.stdout,
            "{\"key\":\"Note:1\",\"properties\":{\"n\":1}}\n"
        );
    }
}

/// An error quotes a bounded part of a huge argument, not all of it: clap's own message
/// and the model's.
#[test]
fn huge_arguments_are_quoted_in_part() {
    let dir = tempfile::tempdir().unwrap();
    let huge = "x".repeat(100_000);
    let filter = format!("n ~ {huge}");
    for host in HOSTS {
        for args in [
            vec!["--store", "memory:", "get", huge.as_str()],
            vec![
                "--store",
                "memory:",
                "query",
                "Note",
                "--filter",
                filter.as_str(),
            ],
            vec![
                "--store",
                "memory:",
                "query",
                "Note",
                "--cursor",
                huge.as_str(),
            ],
        ] {
            let out = run(host, dir.path(), &args);
            assert_eq!(out.code, 2, "{host} {}: {}", args[2], &out.stderr[..200]);
            assert!(
                out.stderr.len() < 1_500,
                "{host} {}: {} bytes",
                args[2],
                out.stderr.len()
            );
            assert!(out.stderr.contains("bytes"), "{}", out.stderr);
        }
    }
}

/// `shell`: the same commands, one per line, on one open datastore; an error is printed and
/// the shell goes on; each line may choose its output; history is kept where asked.
#[test]
fn the_shell_runs_lines_as_commands_and_keeps_going() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    for host in HOSTS {
        let history = dir.path().join(format!("{host}.history"));
        let mut child = Command::new(binary(host))
            .args(["--store", "memory:", "shell"])
            .current_dir(dir.path())
            .env("DS_CACHE_DIR", dir.path().join("cache"))
            .env("DS_HISTORY", &history)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(
                b"put Note:1 '{\"n\": 1}'\n\
                  # a comment\n\
                  get Note:2\n\
                  bogus\n\
                  put Note:2 '{\"n\": 2}'\n\
                  count Note\n\
                  query Note --keys-only --output table\n\
                  shell\n\
                  exit\n\
                  count Note\n",
            )
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{host}: {stderr}");
        assert_eq!(
            stdout,
            "{\"key\":\"Note:1\"}\n{\"key\":\"Note:2\"}\n{\"count\":2}\nkey\nNote:1\nNote:2\n",
            "{host}: {stderr}"
        );
        assert!(
            stderr.contains("no entity at key Note:2"),
            "{host}: {stderr}"
        );
        assert!(
            stderr.contains("unrecognized subcommand 'bogus'"),
            "{stderr}"
        );
        assert!(stderr.contains("not available in the shell"), "{stderr}");
        let kept = std::fs::read_to_string(&history).unwrap();
        assert!(kept.contains("count Note"), "{kept}");
    }
}

/// The deadline bounds opening the store too: a SQLite file that another process holds
/// locked while the store is set up is refused when the deadline passes, with a message
/// that says so, instead of after SQLite's own 5 s busy timeout with "locked".
#[test]
fn the_deadline_bounds_opening_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    // A new file, locked before ds has set it up: its tables wait for the lock.
    let mut holder = rusqlite::Connection::open(&path).unwrap();
    let lock = holder
        .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
        .unwrap();
    lock.execute_batch("CREATE TABLE other (a)").unwrap();
    for host in HOSTS {
        let store = format!("sqlite:{}", path.display());
        let out = run(
            host,
            dir.path(),
            &[
                "--store",
                &store,
                "--deadline-ms",
                "300",
                "put",
                "Note:1",
                "{}",
            ],
        );
        assert_eq!(out.code, 4, "{host}: {}", out.stderr);
        assert!(
            out.stderr
                .contains("did not open within the deadline (300 ms)"),
            "{host}: {}",
            out.stderr
        );
    }
    lock.rollback().unwrap();
}

/// `check --repair` (a dry run) and `--repair --apply` on a damaged store, and `export
/// --skip-corrupt`, both binaries: missing index rows are written back, stale ones deleted,
/// an entity that does not decode is left for a person, and the export saves the rest.
#[test]
fn repair_and_export_skip_corrupt_save_what_can_be_saved() {
    let dir = tempfile::tempdir().unwrap();
    for host in HOSTS {
        let file = dir.path().join(format!("{host}-damaged.db"));
        let store = format!("sqlite:{}", file.display());
        let ds = |args: &[&str]| {
            let mut all = vec!["--store", store.as_str()];
            all.extend_from_slice(args);
            run(host, dir.path(), &all)
        };
        for (key, owner) in [("Account:a", "x"), ("Account:b", "y"), ("Account:c", "z")] {
            let properties = format!(r#"{{"owner": "{owner}", "balance": 1}}"#);
            assert_eq!(ds(&["put", key, &properties]).code, 0);
        }
        let encode = |text: &str| text.parse::<host_core::Key>().unwrap().encode();
        let mut kind_row = ds_model::index::kind_prefix("", "Account");
        kind_row.extend_from_slice(&encode("Account:a"));
        let conn = rusqlite::Connection::open(&file).unwrap();
        // a loses its kind index row; b's entity row goes (its index rows stay, stale);
        // c's value no longer decodes.
        for (sql, key) in [
            ("DELETE FROM ds_kv WHERE key = ?1", kind_row),
            ("DELETE FROM ds_kv WHERE key = ?1", encode("Account:b")),
            (
                "UPDATE ds_kv SET value = x'7f7b' WHERE key = ?1",
                encode("Account:c"),
            ),
        ] {
            assert_eq!(conn.execute(sql, [key]).unwrap(), 1, "{sql}");
        }
        drop(conn);

        assert_eq!(ds(&["check"]).code, 6);
        let dry = ds(&["check", "--repair"]);
        assert_eq!(dry.code, 6, "{host}: {}", dry.stderr);
        let dry: serde_json::Value = serde_json::from_str(&dry.stdout).unwrap();
        assert_eq!(dry["repair"]["applied"], false);
        assert_eq!(dry["repair"]["index_rows_written"], 1, "{dry}");
        let deleted = dry["repair"]["index_rows_deleted"].as_u64().unwrap();
        assert!(deleted >= 3, "{dry}");
        // The dry run wrote nothing.
        let again: serde_json::Value =
            serde_json::from_str(&ds(&["check", "--repair"]).stdout).unwrap();
        assert_eq!(again["repair"], dry["repair"]);

        let applied = ds(&["check", "--repair", "--apply"]);
        assert_eq!(applied.code, 6, "{host}: {}", applied.stderr);
        let applied: serde_json::Value = serde_json::from_str(&applied.stdout).unwrap();
        assert_eq!(applied["repair"]["index_rows_deleted"], deleted);
        let remaining = applied["remaining_problems"].as_array().unwrap();
        assert!(!remaining.is_empty());
        assert!(
            remaining
                .iter()
                .all(|p| p.as_str().unwrap().contains("Account:c")),
            "{applied}"
        );
        // The index serves a again, and forgets b.
        assert_eq!(ds(&["count", "Account"]).stdout, "{\"count\":2}\n");

        let export = ds(&["export"]);
        assert_eq!(export.code, 5, "{host}: {}", export.stderr);
        let salvaged = ds(&["export", "--skip-corrupt"]);
        assert_eq!(salvaged.code, 6, "{host}: {}", salvaged.stderr);
        assert_eq!(
            salvaged.stdout,
            "{\"key\":\"Account:a\",\"properties\":{\"balance\":1,\"owner\":\"x\",\"tags\":[],\"transfers_out\":0}}\n"
        );
        assert!(salvaged.stderr.contains("skipped: "), "{}", salvaged.stderr);
        assert!(salvaged.stderr.contains("Account:c"), "{}", salvaged.stderr);
        assert!(
            salvaged.stderr.contains("export skipped 1 entity row"),
            "{}",
            salvaged.stderr
        );
    }
}
