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

/// The flags every member of a test cluster runs with: the ones the etcd store documents
/// (README, "Beyond one machine"): transactions of up to 10,000 operations, requests of up
/// to 16 MiB, an 8 GiB space quota, hourly compaction.
pub const ETCD_FLAGS: &[&str] = &[
    "--max-txn-ops=10000",
    "--max-request-bytes=16777216",
    "--quota-backend-bytes=8589934592",
    "--auto-compaction-mode=periodic",
    "--auto-compaction-retention=1h",
];

/// A cluster of etcd members of the test's own: processes on free loopback ports with
/// data directories in a temporary directory, killed (only these) when it is dropped.
pub struct EtcdCluster {
    binary: PathBuf,
    /// Flags after [`ETCD_FLAGS`], which override them.
    extra: Vec<String>,
    dir: tempfile::TempDir,
    members: Vec<EtcdMember>,
}

struct EtcdMember {
    name: String,
    client_port: u16,
    peer_port: u16,
    process: Option<std::process::Child>,
}

/// The etcd server the tests run: `DS_TEST_ETCD`, or `etcd` on the `PATH`. Under `CI=true`
/// a missing server panics (`.ci/run` installs Debian's `etcd-server`); otherwise the test
/// is skipped with a note.
pub fn etcd_binary() -> Option<PathBuf> {
    let binary = std::env::var_os("DS_TEST_ETCD")
        .map(PathBuf::from)
        .unwrap_or_else(|| "etcd".into());
    let found = Command::new(&binary)
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if found {
        return Some(binary);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but no etcd server runs as {binary:?} (install etcd-server)");
    }
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        b"SKIPPED etcd tests: no etcd on the PATH (apt-get install etcd-server, or set \
          DS_TEST_ETCD=/path/to/etcd)\n",
    );
    None
}

/// A loopback port nothing listens on now, and never handed out before in this process:
/// clusters started by tests running at once must not be given the same port between its
/// release here and etcd's bind.
fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .expect("a free loopback port");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

impl EtcdCluster {
    /// Starts a cluster of `size` members and waits until it has a leader; `None` when no
    /// etcd is installed (outside CI).
    pub fn start(size: usize) -> Option<EtcdCluster> {
        EtcdCluster::start_with(size, &[])
    }

    /// [`EtcdCluster::start`] with flags of the test's own after [`ETCD_FLAGS`] (a later
    /// flag overrides an earlier one).
    pub fn start_with(size: usize, extra: &[&str]) -> Option<EtcdCluster> {
        let binary = etcd_binary()?;
        let members = (0..size)
            .map(|i| EtcdMember {
                name: format!("m{i}"),
                client_port: free_port(),
                peer_port: free_port(),
                process: None,
            })
            .collect();
        let mut cluster = EtcdCluster {
            binary,
            extra: extra.iter().map(|flag| flag.to_string()).collect(),
            dir: tempfile::tempdir().expect("a temporary directory"),
            members,
        };
        for i in 0..size {
            cluster.spawn(i);
        }
        cluster.wait_for_leader(Duration::from_secs(30));
        Some(cluster)
    }

    fn spawn(&mut self, index: usize) {
        let initial: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect();
        let member = &self.members[index];
        let client = format!("http://127.0.0.1:{}", member.client_port);
        let peer = format!("http://127.0.0.1:{}", member.peer_port);
        let log = std::fs::File::create(self.dir.path().join(format!("{}.log", member.name)))
            .expect("a log file");
        let process = Command::new(&self.binary)
            .args(["--name", &member.name])
            .arg("--data-dir")
            .arg(self.dir.path().join(&member.name))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial.join(",")])
            .args(["--initial-cluster-token", "ds-test"])
            .args(["--initial-cluster-state", "new"])
            .args(ETCD_FLAGS)
            .args(&self.extra)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd starts");
        self.members[index].process = Some(process);
    }

    /// The store URL of this cluster under `prefix`, naming every member.
    pub fn url(&self, prefix: &str) -> String {
        self.url_with(prefix, "max_txn_ops=10000")
    }

    /// The store URL with the query `params` (no `?`).
    pub fn url_with(&self, prefix: &str, params: &str) -> String {
        let hosts: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.client_port))
            .collect();
        format!("etcd://{}/{prefix}?{params}", hosts.join(","))
    }

    /// The client URL of member `index`.
    pub fn endpoint(&self, index: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[index].client_port)
    }

    /// How many members the cluster has.
    pub fn size(&self) -> usize {
        self.members.len()
    }

    /// Member `index`'s answer to `/health`, if it answers: `true` when it has a leader.
    fn healthy(&self, index: usize) -> bool {
        let out = Command::new("curl")
            .args(["-s", "-m", "2"])
            .arg(format!("{}/health", self.endpoint(index)))
            .output();
        out.is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("\"true\""))
    }

    /// Waits until every running member reports a leader.
    pub fn wait_for_leader(&self, within: Duration) {
        let deadline = std::time::Instant::now() + within;
        loop {
            let all = (0..self.members.len())
                .filter(|&i| self.members[i].process.is_some())
                .all(|i| self.healthy(i));
            if all {
                return;
            }
            if std::time::Instant::now() > deadline {
                let logs: Vec<String> = self
                    .members
                    .iter()
                    .map(|m| {
                        let log = std::fs::read_to_string(
                            self.dir.path().join(format!("{}.log", m.name)),
                        )
                        .unwrap_or_default();
                        let tail: Vec<&str> = log.lines().rev().take(5).collect();
                        format!("{}: {}", m.name, tail.join(" | "))
                    })
                    .collect();
                panic!(
                    "the etcd cluster has no leader after {within:?}:\n{}",
                    logs.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The index of the member that is leader now, as the members report it.
    pub fn leader(&self) -> Option<usize> {
        let endpoints: Vec<String> = (0..self.members.len())
            .filter(|&i| self.members[i].process.is_some())
            .map(|i| self.endpoint(i))
            .collect();
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--command-timeout=2s", "endpoint", "status", "-w", "json"])
            .arg(format!("--endpoints={}", endpoints.join(",")))
            .output()
            .ok()?;
        let statuses: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let leader_of = |s: &serde_json::Value| {
            let member = s["Status"]["header"]["member_id"].as_u64()?;
            let leader = s["Status"]["leader"].as_u64()?;
            let endpoint = s["Endpoint"].as_str()?;
            (member == leader).then(|| endpoint.to_string())
        };
        let endpoint = statuses.as_array()?.iter().find_map(leader_of)?;
        (0..self.members.len()).find(|&i| self.endpoint(i) == endpoint)
    }

    /// Kills member `index` with SIGKILL, as a crash would.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut process) = self.members[index].process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    /// Starts member `index` again on its data directory.
    pub fn restart(&mut self, index: usize) {
        assert!(
            self.members[index].process.is_none(),
            "member {index} is running"
        );
        self.spawn(index);
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// The example's `Account` entity with `balance`.
pub fn account(name: &str, balance: i64) -> host_core::Entity {
    host_core::Entity::new(host_core::Key::name("Account", name))
        .with("owner", host_core::Value::String(name.into()))
        .with("balance", host_core::Value::Int(balance))
}

/// The `balance` of an account read back; panics if there is none.
pub fn balance(entity: Option<host_core::Entity>) -> i64 {
    match entity.and_then(|e| e.properties.get("balance").cloned()) {
        Some(host_core::Value::Int(n)) => n,
        other => panic!("no balance: {other:?}"),
    }
}

/// How many `Transfer` records the example's transfers left under `accounts`, found by
/// ancestor queries, page by page.
pub fn transfer_records(db: &ds::Datastore, accounts: &[host_core::Key]) -> u64 {
    let mut records = 0;
    for key in accounts {
        let mut query = host_core::Query {
            kind: Some("Transfer".into()),
            ancestor: Some(key.clone()),
            keys_only: true,
            ..host_core::Query::default()
        };
        loop {
            let page = db.query(&query).expect("query the transfer records");
            records += page.keys.len() as u64;
            match page.next_cursor {
                Some(cursor) => query.start = Some(cursor),
                None => break,
            }
        }
    }
    records
}

/// How a request ended, as far as its sender can tell.
pub enum Outcome {
    /// An HTTP status with its body.
    Answered(u16, String),
    /// No connection: nothing was sent.
    NotSent,
    /// Sent, but no answer: it may have been applied.
    Lost,
}

/// POSTs a JSON `body` to `path` on a fresh connection (`Connection: close`), with a
/// 30 s read timeout: a plain HTTP/1.1 client for load from many threads.
pub fn post(address: std::net::SocketAddr, path: &str, body: &str) -> Outcome {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(2))
    else {
        return Outcome::NotSent;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return Outcome::Lost;
    }
    let mut answer = String::new();
    if stream.read_to_string(&mut answer).is_err() {
        return Outcome::Lost;
    }
    let status = answer.split(' ').nth(1).and_then(|code| code.parse().ok());
    match status {
        Some(status) => {
            let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
            Outcome::Answered(status, body.to_string())
        }
        None => Outcome::Lost,
    }
}
