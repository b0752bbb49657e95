//! Crash safety: `ds import` killed with SIGKILL in the middle leaves a store in which every
//! batch is whole or absent, and `ds check` finds nothing wrong. On SQLite and PostgreSQL.
//! And a PostgreSQL connection lost while committing is reported as an unknown outcome,
//! never as "nothing was written".

use std::io::{Read, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ds_tests::{PostgresSchema, binary, postgres_server};
use host_core::store::{KeyRange, StoreError, StoreUrl, Write, open_async, open_blocking};

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

/// A TCP relay to a PostgreSQL server. Once armed, it forwards the client's next `COMMIT`
/// and then cuts the connection, so the server applies the commit but its reply never
/// arrives: what a network failure or a server crash at the wrong moment does.
struct CommitCutter {
    addr: SocketAddr,
    armed: Arc<AtomicBool>,
    cut: Arc<AtomicBool>,
}

impl CommitCutter {
    fn start(server: SocketAddr) -> CommitCutter {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let armed = Arc::new(AtomicBool::new(false));
        let cut = Arc::new(AtomicBool::new(false));
        let (armed_flag, cut_flag) = (armed.clone(), cut.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(upstream) = TcpStream::connect(server) else {
                    return;
                };
                let silenced = Arc::new(AtomicBool::new(false));
                // Server to client, until the relay is silenced.
                let (mut from, mut to) =
                    (upstream.try_clone().unwrap(), client.try_clone().unwrap());
                let quiet = silenced.clone();
                std::thread::spawn(move || {
                    let mut buf = vec![0; 64 << 10];
                    while let Ok(n @ 1..) = from.read(&mut buf) {
                        if quiet.load(Ordering::SeqCst) || to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(Shutdown::Both);
                });
                // Client to server, watching for the armed `COMMIT` (a simple-query message).
                let (mut from, mut to) = (client, upstream);
                let (armed, cut) = (armed_flag.clone(), cut_flag.clone());
                std::thread::spawn(move || {
                    let mut buf = vec![0; 64 << 10];
                    while let Ok(n @ 1..) = from.read(&mut buf) {
                        let commit = armed.load(Ordering::SeqCst)
                            && buf[..n].windows(7).any(|w| w == b"COMMIT\0");
                        if commit {
                            // Silenced before the server can answer.
                            silenced.store(true, Ordering::SeqCst);
                            cut.store(true, Ordering::SeqCst);
                            armed.store(false, Ordering::SeqCst);
                        }
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        if commit {
                            std::thread::sleep(Duration::from_millis(300));
                            break;
                        }
                    }
                    let _ = from.shutdown(Shutdown::Both);
                    let _ = to.shutdown(Shutdown::Both);
                });
            }
        });
        CommitCutter { addr, armed, cut }
    }
}

#[test]
fn postgres_commit_whose_reply_is_lost_is_an_unknown_outcome_in_both_pools() {
    let Some(server) = postgres_server() else {
        return;
    };
    let config: tokio_postgres::Config = server.parse().unwrap();
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let upstream = (host.as_str(), port)
        .to_socket_addrs()
        .unwrap()
        .next()
        .unwrap();
    let user = config.get_user().unwrap_or("postgres");
    let password = config
        .get_password()
        .map(|p| format!(":{}", String::from_utf8_lossy(p)))
        .unwrap_or_default();
    let database = config.get_dbname().unwrap_or(user);
    let schema = PostgresSchema::new(&server);
    let direct = open_blocking(&schema.url().parse::<StoreUrl>().unwrap()).unwrap();
    let cutter = CommitCutter::start(upstream);
    let relayed: StoreUrl = format!(
        // Plain TCP: the relay reads the protocol to find the COMMIT.
        "postgres://{user}{password}@{}/{database}?schema={}&max_connections=1&sslmode=disable",
        cutter.addr,
        schema.name()
    )
    .parse()
    .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();

    for (pool, key) in [
        ("blocking", b"\x7fcut-blocking"),
        ("async", b"\x7fcut-async---"),
    ] {
        let write = || {
            vec![Write {
                key: key.to_vec(),
                value: Some(b"written".to_vec()),
            }]
        };
        cutter.cut.store(false, Ordering::SeqCst);
        let (result, after) = match pool {
            "blocking" => {
                let store = open_blocking(&relayed).unwrap();
                cutter.armed.store(true, Ordering::SeqCst);
                let result = store.commit(&[], &write());
                (result, store.get(key))
            }
            _ => {
                let _entered = runtime.enter();
                let store = open_async(&relayed).unwrap();
                cutter.armed.store(true, Ordering::SeqCst);
                let result = runtime.block_on(store.commit(Vec::new(), write()));
                (result, runtime.block_on(store.get(key.to_vec())))
            }
        };
        assert!(
            cutter.cut.load(Ordering::SeqCst),
            "{pool}: the relay cut a COMMIT"
        );
        match &result {
            Err(StoreError::Internal(message)) => {
                assert!(message.contains("unknown"), "{pool}: {message}")
            }
            other => panic!("{pool}: expected an unknown outcome (internal), got {other:?}"),
        }
        // The server did apply it: the error must not have said "nothing was written".
        assert_eq!(
            direct.get(key).unwrap().map(|v| v.value),
            Some(b"written".to_vec()),
            "{pool}"
        );
        // The broken connection was not reused: the next call opens a fresh one.
        assert_eq!(
            after.unwrap().map(|v| v.value),
            Some(b"written".to_vec()),
            "{pool}: the store recovers"
        );
    }
}
