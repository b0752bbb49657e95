//! Crash safety: `ds import` killed with SIGKILL in the middle leaves a store in which every
//! batch is whole or absent, and `ds check` finds nothing wrong. On SQLite and PostgreSQL.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ds_tests::{PostgresSchema, binary, postgres_server};
use host_core::store::{KeyRange, StoreUrl, open_blocking};

const ENTITIES: usize = 40_000;
const BATCH: usize = 100;

fn write_import_file(path: &Path) {
    let mut text = String::new();
    for i in 1..=ENTITIES {
        text.push_str(&format!(
            "{{\"key\": \"Note:{i}/Order:{i}\", \"properties\": {{\"n\": {i}, \"note\": \"{}\"}}}}\n",
            "x".repeat(200)
        ));
    }
    std::fs::write(path, text).unwrap();
}

/// Entity rows in the store (transport keys starting with 0x10), counted through the
/// transport.
fn count(url: &str) -> usize {
    let store = open_blocking(&url.parse::<StoreUrl>().unwrap()).unwrap();
    let mut range = KeyRange {
        start: vec![ds_model::key::ENTITY_PREFIX],
        end: Some(vec![ds_model::key::ENTITY_PREFIX + 1]),
    };
    let mut total = 0;
    loop {
        let page = store
            .scan(&range, 1000, host_core::store::Direction::Forward)
            .unwrap();
        total += page.len();
        match page.last() {
            Some(last) if page.len() == 1000 => {
                range.start = last.key.clone();
                range.start.push(0);
            }
            _ => return total,
        }
    }
}

fn kill_mid_import(url: &str, dir: &Path) {
    let file = dir.join("import.jsonl");
    write_import_file(&file);
    let mut child = Command::new(binary("ds"))
        .args([
            "--store",
            url,
            "import",
            file.to_str().unwrap(),
            "--batch",
            &BATCH.to_string(),
        ])
        .env("DS_CACHE_DIR", dir.join("cache"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    // Kill once a few batches are in, while the import is still running.
    loop {
        std::thread::sleep(Duration::from_millis(20));
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the import finished ({status}) before it could be killed; make it bigger");
        }
        if count(url) >= 20 * BATCH {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the import made no progress"
        );
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let stored = count(url);
    assert!(
        (20 * BATCH..ENTITIES).contains(&stored),
        "killed mid-way: {stored} entities"
    );
    assert_eq!(
        stored % BATCH,
        0,
        "every batch is whole or absent: {stored} entities"
    );

    let check = Command::new(binary("ds"))
        .args(["--store", url, "check"])
        .env("DS_CACHE_DIR", dir.join("cache"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "check failed: {report} {}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(
        report.trim(),
        // Each entity has a kind index row and one row per indexed property (n, note).
        format!(
            "{{\"entities\":{stored},\"index_rows\":{},\"problems\":[]}}",
            3 * stored
        )
    );
}

#[test]
fn sqlite_survives_sigkill_during_import() {
    let dir = tempfile::tempdir().unwrap();
    kill_mid_import(
        &format!("sqlite:{}", dir.path().join("crash.db").display()),
        dir.path(),
    );
}

#[test]
fn postgres_survives_sigkill_during_import() {
    let Some(server) = postgres_server() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let schema = PostgresSchema::new(&server);
    kill_mid_import(&schema.url(), dir.path());
}
