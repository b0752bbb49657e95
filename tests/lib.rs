//! Helpers for the cross-host and cross-store tests in this directory.
//!
//! The tests run the same operations through `ds` (blocking) and `ads` (async), over every
//! store, and through both binaries.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use host_core::store::{
    AsyncStore, BoxFuture, Check, Direction, Entry, KeyRange, MemoryStore, Store, StoreError,
    Versioned, Write,
};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Runs cargo in the workspace with `args`, returning its output.
pub fn cargo(args: &[&str]) -> Output {
    Command::new(env!("CARGO"))
        .args(args)
        .current_dir(workspace_root())
        .output()
        .expect("cargo runs")
}

/// Builds the workspace's programs as the outer `cargo test --workspace` compiled them: the
/// whole workspace selected, examples included (so dev-dependencies unify as in a test
/// build), `exclude` left out. A narrower selection (`-p ds-cli`) resolves other features for
/// shared dependencies and would compile them, Cranelift included, a second time.
fn build_workspace_programs(exclude: Option<&str>) {
    let mut args = vec!["build", "-q", "--workspace", "--bins", "--examples"];
    if let Some(package) = exclude {
        args.extend(["--exclude", package]);
    }
    let out = cargo(&args);
    assert!(
        out.status.success(),
        "building the programs failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The path of the `ds` or `ads` binary (or an example program of `examples/`), built
/// (once per test process) if needed.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| build_workspace_programs(None));
    target_dir().join("debug").join(name)
}

/// The example program `name` of `package`, built as `cargo run -p PACKAGE --example NAME`
/// would build it, and copied to a path of its own: `ds-host` and `ads-host` both have an
/// example `client` (as the seed's client.py), and a build of both would write one file.
pub fn example(package: &str, name: &str) -> PathBuf {
    static BUILDING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = BUILDING.lock().unwrap_or_else(|p| p.into_inner());
    let other = match package {
        "ds-host" => "ads-host",
        _ => "ds-host",
    };
    build_workspace_programs(Some(other));
    let built = target_dir().join("debug/examples").join(name);
    let copy = target_dir()
        .join("debug/examples")
        .join(format!("{name}-of-{package}"));
    std::fs::copy(&built, &copy).expect("copy the example program");
    copy
}

/// An async store that sleeps before answering each `get`, and records how many `get`s were
/// waiting at once: the proof that `ads` overlaps I/O, without timing anything.
pub struct SleepStore {
    inner: MemoryStore,
    delay: Duration,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
}

impl SleepStore {
    /// A store over an empty memory store whose `get`s each wait `delay`.
    pub fn new(delay: Duration) -> Self {
        SleepStore {
            inner: MemoryStore::new(),
            delay,
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// How many `get`s are waiting right now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// The most `get`s that were in flight at the same moment.
    pub fn peak_in_flight(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

impl AsyncStore for SleepStore {
    fn get(&self, key: Vec<u8>) -> BoxFuture<'_, Result<Option<Versioned>, StoreError>> {
        Box::pin(async move {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            AsyncStore::get(&self.inner, key).await
        })
    }

    fn get_many(
        &self,
        keys: Vec<Vec<u8>>,
    ) -> BoxFuture<'_, Result<Vec<Option<Versioned>>, StoreError>> {
        AsyncStore::get_many(&self.inner, keys)
    }

    fn scan(
        &self,
        range: KeyRange,
        limit: u32,
        direction: Direction,
    ) -> BoxFuture<'_, Result<Vec<Entry>, StoreError>> {
        AsyncStore::scan(&self.inner, range, limit, direction)
    }

    fn commit(
        &self,
        checks: Vec<Check>,
        writes: Vec<Write>,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        AsyncStore::commit(&self.inner, checks, writes)
    }
}

/// A blocking store whose `get`s wait at a barrier of `parties`: `parties - 1` gets are then
/// in flight together until the test thread joins them ([`BarrierStore::release`]).
pub struct BarrierStore {
    inner: MemoryStore,
    barrier: std::sync::Barrier,
    waiting: AtomicUsize,
}

impl BarrierStore {
    /// An empty store whose gets wait for `parties - 1` others and the test thread.
    pub fn new(parties: usize) -> Self {
        BarrierStore {
            inner: MemoryStore::new(),
            barrier: std::sync::Barrier::new(parties),
            waiting: AtomicUsize::new(0),
        }
    }

    /// How many gets have reached the barrier since the store was made (or [`reset`](Self::reset)).
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Counts the gets at the barrier from zero again.
    pub fn reset(&self) {
        self.waiting.store(0, Ordering::SeqCst);
    }

    /// Joins the barrier: the gets waiting at it go on.
    pub fn release(&self) {
        self.barrier.wait();
    }
}

impl Store for BarrierStore {
    fn get(&self, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        self.barrier.wait();
        Store::get(&self.inner, key)
    }
    fn scan(
        &self,
        range: &KeyRange,
        limit: u32,
        direction: Direction,
    ) -> Result<Vec<Entry>, StoreError> {
        Store::scan(&self.inner, range, limit, direction)
    }
    fn commit(&self, checks: &[Check], writes: &[Write]) -> Result<u64, StoreError> {
        Store::commit(&self.inner, checks, writes)
    }
}

/// The PostgreSQL server the tests use: `DS_TEST_POSTGRES`, or
/// `postgres://postgres@127.0.0.1:5432/test`.
///
/// When no server answers there: under `CI=true` this panics (PostgreSQL tests must run in
/// CI, never skip); otherwise it prints that the test is skipped and how to enable it, and
/// returns `None`.
pub fn postgres_server() -> Option<String> {
    let url = std::env::var("DS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let config: tokio_postgres::Config = url
        .parse()
        .expect("DS_TEST_POSTGRES is a valid PostgreSQL URL");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let reachable = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
        });
    if reachable {
        return Some(url);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but no PostgreSQL server answers at {host}:{port} (set DS_TEST_POSTGRES)");
    }
    // Straight to stderr, past the test harness's capture, so the skip is seen.
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!(
            "SKIPPED PostgreSQL tests: no server at {host}:{port}. Start one (bash .ci/postgres.sh \
             prints a URL) or set DS_TEST_POSTGRES=postgres://USER@HOST:PORT/DB.\n"
        )
        .as_bytes(),
    );
    None
}

/// The private PostgreSQL clusters `.ci/postgres-tls.sh` starts: one that speaks only TLS,
/// with a certificate for `localhost` signed by a CA the script made, and one without TLS.
pub struct TlsServers {
    /// The script's directory: `certs/` (`ca.pem`, `wrong-ca.pem`, `client.pem`,
    /// `client.key`), `tls.port`, `plain.port`.
    pub dir: PathBuf,
    /// The TLS-only cluster's port.
    pub tls_port: u16,
    /// The plain cluster's port.
    pub plain_port: u16,
}

impl TlsServers {
    /// A certificate file of the script's (`ca.pem`, …), as a URL parameter's value.
    pub fn cert(&self, name: &str) -> String {
        self.dir.join("certs").join(name).display().to_string()
    }

    /// The TLS cluster at `host` with `params` (`sslmode=…&sslrootcert=…`).
    pub fn url(&self, user: &str, host: &str, params: &str) -> String {
        format!("postgres://{user}@{host}:{}/test?{params}", self.tls_port)
    }

    /// The TLS cluster as a careful client reaches it: `verify-full` against the test CA.
    pub fn verified(&self) -> String {
        self.url(
            "postgres",
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={}", self.cert("ca.pem")),
        )
    }

    /// The TLS cluster through its Unix socket (trusted, no TLS): for plain tokio-postgres,
    /// which the tests use to clean up.
    pub fn admin(&self) -> String {
        format!("host=/tmp port={} user=postgres dbname=test", self.tls_port)
    }

    /// The cluster without TLS.
    pub fn plain(&self, params: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/test?{params}",
            self.plain_port
        )
    }
}

/// The TLS test clusters, from `DS_TEST_POSTGRES_TLS` (the directory `.ci/postgres-tls.sh`
/// prints). Unset: under `CI=true` this panics; otherwise it says the tests are skipped.
pub fn postgres_tls() -> Option<TlsServers> {
    let Some(dir) = std::env::var_os("DS_TEST_POSTGRES_TLS").map(PathBuf::from) else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but DS_TEST_POSTGRES_TLS is not set (run .ci/postgres-tls.sh)");
        }
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"SKIPPED PostgreSQL TLS tests: set DS_TEST_POSTGRES_TLS=$(bash .ci/postgres-tls.sh)\n",
        );
        return None;
    };
    let port = |file: &str| -> u16 {
        std::fs::read_to_string(dir.join(file))
            .unwrap_or_else(|err| panic!("{}: {err}", dir.join(file).display()))
            .trim()
            .parse()
            .unwrap_or_else(|err| panic!("{file}: {err}"))
    };
    Some(TlsServers {
        tls_port: port("tls.port"),
        plain_port: port("plain.port"),
        dir,
    })
}

/// A schema of its own on the test server, dropped (with its tables) when this is dropped,
/// so test runs and test cases never see each other's data.
pub struct PostgresSchema {
    server: String,
    /// Where the drop connects (plain tokio-postgres, no TLS): the server's own URL, or
    /// for a server that only speaks TLS its Unix socket.
    admin: String,
    name: String,
}

impl PostgresSchema {
    /// A fresh schema name on `server` (the schema itself is created by the store).
    pub fn new(server: &str) -> PostgresSchema {
        PostgresSchema::on(server, server)
    }

    /// A fresh schema name on `server`, dropped through `admin` (a connection string plain
    /// tokio-postgres can use: see [`TlsServers::admin`]).
    pub fn on(server: &str, admin: &str) -> PostgresSchema {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "ds_test_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst),
            nanos
        );
        PostgresSchema {
            server: server.to_string(),
            admin: admin.to_string(),
            name,
        }
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The store URL for this schema.
    pub fn url(&self) -> String {
        let separator = if self.server.contains('?') { '&' } else { '?' };
        format!("{}{separator}schema={}", self.server, self.name)
    }
}

impl Drop for PostgresSchema {
    fn drop(&mut self) {
        let (server, name) = (self.admin.clone(), self.name.clone());
        // A thread of its own: the drop may happen inside a tokio runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
                    .await
                    .ok()?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// Collects the messages of `ds::guest` events, to see what the guest logged.
#[derive(Clone, Default)]
struct GuestLines(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for GuestLines {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != "ds::guest" {
            return;
        }
        struct Message<'a>(&'a mut String);
        impl tracing::field::Visit for Message<'_> {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0.push_str(&format!("{value:?}"));
                }
            }
        }
        let mut line = String::new();
        event.record(&mut Message(&mut line));
        self.0.lock().unwrap().push(line);
    }
}

/// Runs `run` under a subscriber that records every level, and returns what it returned and
/// the messages the guest logged meanwhile (target `ds::guest`), in order.
pub fn with_guest_lines<R>(run: impl FnOnce() -> R) -> (R, Vec<String>) {
    use tracing_subscriber::layer::SubscriberExt;
    let lines = GuestLines::default();
    let subscriber = tracing_subscriber::registry().with(lines.clone());
    let result = tracing::subscriber::with_default(subscriber, run);
    let lines = lines.0.lock().unwrap().clone();
    (result, lines)
}
