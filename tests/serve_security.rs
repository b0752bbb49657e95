//! `ads serve` hardened (issue 26; the contract is notes/spec26.md), end to end: the `ads`
//! binary on a loopback port, driven by `curl` and, where curl cannot say it, by raw TCP.
//!
//! - HTTPS: every route over TLS (certificates made with the `openssl` CLI); plain HTTP to
//!   the TLS port is answered 400 `tls_required`; a client trusting another CA fails (curl
//!   exit 60); the server goes on serving after both.
//! - Bearer tokens: 401 with a `WWW-Authenticate: Bearer` challenge, 403 for a read token on
//!   a write route, health without a token; token files that are wrong (short token, unknown
//!   role, duplicate) stop the start with exit 2 and the line number; a non-loopback listen
//!   address needs `--tokens` or `--allow-unauthenticated`; no token ever reaches the log.
//! - Cross-site requests: other media types (415), a foreign `Origin` or `Host` (403), each
//!   writing nothing; CORS answers and preflights for an allowed origin.
//! - Keys in URLs: names with `? # % / : @ " \`, space, NUL and non-ASCII round trip through
//!   PUT, GET and DELETE, as the CLI sees them in the same SQLite file; a raw `?` or a bad
//!   percent escape is 400 `invalid_key`.
//! - Slow and greedy clients: a client sending its head byte by byte is cut off after the
//!   header timeout; 2,000 idle connections do not starve requests; 40 bodies of 8 MiB held
//!   open do not grow the server's memory past 200 MiB; SIGTERM with half-open clients ends
//!   the process after the drain timeout.
//! - Health of a SQLite store whose file is deleted (503 `unhealthy`; `?live` stays 200),
//!   Prometheus metrics counted by route, method and status, and request ids.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ds_tests::binary;
use serde_json::{Value, json};

// ---- Helpers ----

/// The tests that measure time, memory or connection counts take turns: on a small machine
/// two of them at once would measure each other.
static HEAVY: Mutex<()> = Mutex::new(());

fn heavy() -> MutexGuard<'static, ()> {
    HEAVY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The compiled-component cache every `ads` of this file shares (the first process compiles
/// the guest, the others load it; the cache writes its files atomically).
fn cache_dir() -> PathBuf {
    binary("ads").with_file_name("serve-security-cache")
}

/// `ads`, with the shared cache, and neither a store nor a log filter from the environment.
fn ads() -> Command {
    let mut command = Command::new(binary("ads"));
    command
        .env("DS_CACHE_DIR", cache_dir())
        .env_remove("DS_STORE")
        .env_remove("RUST_LOG");
    command
}

fn read_text(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// The last `max` bytes of `text` (or a little more, to stay on a character boundary).
fn tail(text: &str, max: usize) -> &str {
    let start = text.len().saturating_sub(max);
    let start = (start..=text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    &text[start..]
}

/// Waits up to `limit` for `child` to exit.
fn exit_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An answer: curl's exit code (0 when an answer came), the status (0 if none), the headers
/// (names in lower case) and the body, as text and as JSON (`Null` if it is not JSON).
#[derive(Debug)]
struct Reply {
    exit: i32,
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
    text: String,
    stderr: String,
}

impl Reply {
    /// The first value of header `name` (lower case).
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (lower case).
    fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The error's kind, or "" when the body is not an error.
    fn kind(&self) -> &str {
        self.body["error"]["kind"].as_str().unwrap_or("")
    }
}

fn parse_headers(head: &str) -> Vec<(String, String)> {
    head.lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect()
}

/// Runs `curl ARGS`, printing the answer's headers (`-D -`) before its body and the status
/// after it; a request without an answer (a TLS failure) has status 0 and curl's exit code.
fn curl<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Reply {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-H", "Expect:", "-D", "-"])
        .args(["-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl runs (it is installed on the CI machines)");
    let exit = out.status.code().unwrap_or(-1);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (mut rest, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    let mut headers = Vec::new();
    // The last block of headers is the final answer's (after any 1xx).
    while rest.starts_with("HTTP/") {
        let (head, body) = rest.split_once("\r\n\r\n").unwrap_or((rest, ""));
        headers = parse_headers(head);
        rest = body;
    }
    Reply {
        exit,
        status: code.trim().parse().unwrap_or(0),
        headers,
        body: serde_json::from_str(rest).unwrap_or(Value::Null),
        text: rest.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Sends `request` as it is on a new connection and reads the answer until the server closes
/// the connection (send `Connection: close`, or HTTP/1.0).
fn raw(address: SocketAddr, request: &str) -> Reply {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut bytes = Vec::new();
    // What came before a timeout or a reset is kept in `bytes`.
    let _ = stream.read_to_end(&mut bytes);
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(bytes.len());
    let head = String::from_utf8_lossy(&bytes[..split]).into_owned();
    let mut body = bytes.get(split + 4..).unwrap_or_default().to_vec();
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let headers = parse_headers(&head);
    if headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    Reply {
        exit: 0,
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
        stderr: String::new(),
    }
}

/// The data of a chunked body.
fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
        let line = String::from_utf8_lossy(&rest[..end]).into_owned();
        let size = line.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size, 16) else {
            break;
        };
        let data = &rest[end + 2..];
        if size == 0 || data.len() < size {
            break;
        }
        out.extend_from_slice(&data[..size]);
        rest = data[size..].strip_prefix(b"\r\n").unwrap_or(&data[size..]);
    }
    out
}

/// Waits up to `time` for the peer to close `stream`: true if it did (end of stream or a
/// reset). What the peer sends first (a 408, say) is read and ignored.
fn closed_within(stream: &mut TcpStream, time: Duration) -> bool {
    let deadline = Instant::now() + time;
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(n) => {
                if n == 0 {
                    return true;
                }
            }
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

/// The resident memory of process `pid`, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().strip_suffix("kB"))
        .and_then(|value| value.trim().parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib / 1024.0
}

/// This process's soft and hard limits on open files.
fn open_files_limits() -> (u64, u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let parse = |field: Option<&str>| match field {
        Some("unlimited") => u64::MAX,
        Some(n) => n.parse().unwrap_or(1024),
        None => 1024,
    };
    match limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
    {
        Some(rest) => {
            let mut fields = rest.split_whitespace();
            (parse(fields.next()), parse(fields.next()))
        }
        None => (1024, 1024),
    }
}

/// Raises this process's soft limit on open files towards `wanted` (up to the hard limit),
/// with `prlimit`; servers started afterwards inherit it. Returns the soft limit now.
fn raise_open_files_limit(wanted: u64) -> u64 {
    let (soft, hard) = open_files_limits();
    if soft >= wanted {
        return soft;
    }
    let _ = Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            &format!("--nofile={}:", wanted.min(hard)),
        ])
        .status();
    open_files_limits().0
}

/// `text` percent-encoded for a URL path: every byte but ASCII letters, digits and `:`.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b':' {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `KIND:"NAME"`: a key in the CLI syntax with its name in double quotes (`\"`, `\\`).
fn quoted(kind: &str, name: &str) -> String {
    format!(
        "{kind}:\"{}\"",
        name.replace('\\', "\\\\").replace('"', "\\\"")
    )
}

/// Prometheus text: the value of each series, by its exact `NAME{LABELS}` text.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (series, rest) = match line.rfind('}') {
                Some(end) => line.split_at(end + 1),
                None => line.split_once(' ').unwrap_or((line, "")),
            };
            let value = rest
                .split_whitespace()
                .next()
                .unwrap_or_else(|| panic!("a metric line without a value: {line:?}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("a metric value that is not a number: {line:?}"));
            (series.trim().to_string(), value)
        })
        .collect()
}

/// Whether `text` names line `line` of a file (`line 4`, or `tokens.txt:4`).
fn mentions_line(text: &str, line: usize) -> bool {
    let text = text.to_lowercase();
    ["line ", "tokens.txt:"].iter().any(|prefix| {
        let needle = format!("{prefix}{line}");
        text.match_indices(needle.as_str())
            .any(|(at, found)| !text[at + found.len()..].starts_with(|c: char| c.is_ascii_digit()))
    })
}

/// Makes, with the `openssl` CLI, in `dir`: `ca.pem` (and its key), a server certificate
/// `server.pem` + `server.key` (PKCS#8) for `localhost` and 127.0.0.1 signed by it, and
/// `other-ca.pem`, a CA that signed nothing here. EC P-256, v3 extensions.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs (it is installed on the CI machines)");
        assert!(
            out.status.success(),
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let key = |file: &str| {
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            file,
        ])
    };
    for (name, cn) in [("ca", "ds serve test CA"), ("other-ca", "ds other CA")] {
        let key_file = format!("{name}.key");
        key(&key_file);
        openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            &key_file,
            "-sha256",
            "-days",
            "30",
            "-subj",
            &format!("/CN={cn}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-addext",
            "subjectKeyIdentifier=hash",
            "-out",
            &format!("{name}.pem"),
        ]);
    }
    key("server.key");
    openssl(&[
        "req",
        "-new",
        "-key",
        "server.key",
        "-subj",
        "/CN=localhost",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\n\
         subjectAltName=DNS:localhost,IP:127.0.0.1\n\
         subjectKeyIdentifier=hash\n\
         authorityKeyIdentifier=keyid\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-set_serial",
        "2",
        "-sha256",
        "-days",
        "30",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ]);
}

/// `ads --store STORE serve --listen 127.0.0.1:0 ARGS` as a child process, killed on drop.
struct Server {
    child: Child,
    /// Where to connect (an unspecified listen address is reached on 127.0.0.1).
    address: SocketAddr,
    /// With TLS: the CA that signed the server's certificate (requests go to `localhost`).
    ca: Option<PathBuf>,
    stderr: PathBuf,
    _stdout: BufReader<ChildStdout>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts the server (`--listen 127.0.0.1:0` unless `args` has a `--listen`) with `env`
    /// added, and reads the `{"listening": ADDR}` line. Its stderr goes to a file.
    fn start(store: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let stderr = dir.path().join("stderr.log");
        let mut command = ads();
        command.args(["--store", store, "serve"]);
        if !args.contains(&"--listen") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        let mut child = command
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        let announced = serde_json::from_str::<Value>(&line)
            .ok()
            .and_then(|v| v["listening"].as_str()?.parse::<SocketAddr>().ok());
        let Some(mut address) = announced else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`ads serve {}` did not announce {{\"listening\": ADDR}} (got {line:?}); stderr:\n{}",
                args.join(" "),
                tail(&read_text(&stderr), 4000)
            );
        };
        if address.ip().is_unspecified() {
            address.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        Server {
            child,
            address,
            ca: None,
            stderr,
            _stdout: stdout,
            _dir: dir,
        }
    }

    /// Requests go over HTTPS to `localhost`, trusting `ca`.
    fn with_ca(mut self, ca: PathBuf) -> Server {
        self.ca = Some(ca);
        self
    }

    fn port(&self) -> u16 {
        self.address.port()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn url(&self, path: &str) -> String {
        match self.ca {
            Some(_) => format!("https://localhost:{}{path}", self.port()),
            None => format!("http://{}{path}", self.address),
        }
    }

    /// curl's arguments to reach the server: with TLS, the CA and `localhost`'s address.
    fn client_args(&self) -> Vec<String> {
        match &self.ca {
            Some(ca) => vec![
                "--cacert".into(),
                ca.display().to_string(),
                "--resolve".into(),
                format!("localhost:{}:127.0.0.1", self.port()),
            ],
            None => Vec::new(),
        }
    }

    /// `curl` a request with extra `headers` (`name: value`). A body is sent as
    /// `application/json` unless `headers` set a `content-type` (`content-type:` with no
    /// value sends none).
    fn request(&self, method: &str, path: &str, body: Option<&str>, headers: &[&str]) -> Reply {
        let mut args = self.client_args();
        args.extend(["-X".to_string(), method.to_string(), self.url(path)]);
        for header in headers {
            args.extend(["-H".to_string(), header.to_string()]);
        }
        if let Some(body) = body {
            let typed = headers
                .iter()
                .any(|h| h.to_ascii_lowercase().starts_with("content-type"));
            if !typed {
                args.extend([
                    "-H".to_string(),
                    "content-type: application/json".to_string(),
                ]);
            }
            args.extend(["--data-binary".to_string(), body.to_string()]);
        }
        curl(&args)
    }

    /// `curl` a request with a JSON body or none; returns (status, JSON body).
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let body = body.map(|body| body.to_string());
        let reply = self.request(method, path, body.as_deref(), &[]);
        (reply.status, reply.body)
    }

    /// The balance of `Account:alice`, as a GET reads it.
    fn alice_balance(&self) -> Value {
        let (status, body) = self.call("GET", "/v1/entities/Account:alice", None);
        assert_eq!(status, 200, "{body}");
        body["properties"]["balance"].clone()
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM {}", self.pid());
    }

    /// Kills the server and returns what it wrote on stderr.
    fn stop(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        read_text(&self.stderr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- the end of the server's stderr ---\n{}",
                tail(&read_text(&self.stderr), 4000)
            );
        }
    }
}

/// Runs `ads --store memory: serve ARGS` (on 127.0.0.1:0 unless ARGS has `--listen`), which
/// must refuse to start: (exit code, stderr).
fn refused(args: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let stderr = dir.path().join("stderr.log");
    let mut command = ads();
    command.args(["--store", "memory:", "serve"]);
    if !args.contains(&"--listen") {
        command.args(["--listen", "127.0.0.1:0"]);
    }
    let mut child = command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let Some(status) = exit_within(&mut child, Duration::from_secs(30)) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "`ads serve {}` started; it must refuse to. stderr:\n{}",
            args.join(" "),
            read_text(&stderr)
        );
    };
    (status.code().unwrap_or(-1), read_text(&stderr))
}

// ---- 1. TLS ----

#[test]
fn https_serves_every_route_and_refuses_plain_http_and_unknown_cas() {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path());
    let file = |name: &str| certs.path().join(name).display().to_string();
    let (cert, key) = (file("server.pem"), file("server.key"));
    let server = Server::start(
        "memory:",
        &["--tls-cert", cert.as_str(), "--tls-key", key.as_str()],
        &[],
    )
    .with_ca(certs.path().join("ca.pem"));

    assert_eq!(
        server.call("GET", "/v1/health", None),
        (200, json!({ "ok": true }))
    );
    for (name, balance) in [("alice", 100), ("bob", 0)] {
        let (status, body) = server.call(
            "PUT",
            &format!("/v1/entities/Account:{name}"),
            Some(json!({ "owner": name, "balance": balance })),
        );
        assert_eq!(
            (status, body),
            (200, json!({ "key": format!("Account:{name}") }))
        );
    }
    assert_eq!(server.alice_balance(), json!(100));

    let (status, body) = server.call(
        "POST",
        "/v1/batch-get",
        Some(json!({ "keys": ["Account:bob", "Account:nobody"] })),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["entities"][0]["key"], "Account:bob");
    assert_eq!(body["entities"][1], Value::Null);

    let (status, body) = server.call("POST", "/v1/query", Some(json!({ "kind": "Account" })));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"].as_array().map(Vec::len), Some(2), "{body}");
    assert_eq!(body["results"][0]["key"], "Account:alice");

    let (status, body) = server.call(
        "POST",
        "/v1/allocate-ids",
        Some(json!({ "kind": "Order", "count": 2 })),
    );
    assert_eq!(
        (status, body),
        (200, json!({ "kind": "Order", "first": 1, "last": 2 }))
    );

    let (status, body) = server.call(
        "POST",
        "/v1/accounts/deposit",
        Some(json!({ "account": "Account:alice", "amount": 5 })),
    );
    assert_eq!((status, &body["balance"]), (200, &json!(105)), "{body}");

    let (status, body) = server.call(
        "POST",
        "/v1/accounts/transfer",
        Some(json!({ "source": "Account:alice", "destination": "Account:bob", "amount": 10 })),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["source_balance"], &body["destination_balance"]),
        (&json!(95), &json!(10)),
        "{body}"
    );

    let (status, body) = server.call(
        "POST",
        "/v1/call/deposit",
        Some(json!({ "account": "Account:alice", "amount": 5 })),
    );
    assert_eq!((status, &body["balance"]), (200, &json!(100)), "{body}");

    assert_eq!(
        server.call("DELETE", "/v1/entities/Account:bob", None),
        (200, json!({ "key": "Account:bob", "deleted": true }))
    );
    assert_eq!(server.call("GET", "/v1/entities/Account:bob", None).0, 404);

    // The certificate names 127.0.0.1 too (a client that sends no SNI).
    let by_ip = curl(&[
        "--cacert".to_string(),
        file("ca.pem"),
        format!("https://127.0.0.1:{}/v1/health", server.port()),
    ]);
    assert_eq!((by_ip.exit, by_ip.status), (0, 200), "{by_ip:?}");

    // Plain HTTP to the TLS port: a plain-HTTP 400 that says so.
    let plain = curl(&[format!("http://127.0.0.1:{}/v1/health", server.port())]);
    assert_eq!(
        (plain.status, plain.kind()),
        (400, "tls_required"),
        "{plain:?}"
    );
    assert!(
        plain.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("https")),
        "{plain:?}"
    );

    // A client that trusts another CA: curl's "peer certificate cannot be authenticated".
    let stranger = curl(&[
        "--cacert".to_string(),
        file("other-ca.pem"),
        "--resolve".to_string(),
        format!("localhost:{}:127.0.0.1", server.port()),
        server.url("/v1/health"),
    ]);
    assert_eq!(stranger.exit, 60, "{}", stranger.stderr);

    // Neither failure hurt the server.
    assert_eq!(
        server.call("GET", "/v1/health", None),
        (200, json!({ "ok": true }))
    );
    assert_eq!(server.alice_balance(), json!(100));
}

#[test]
fn a_tls_certificate_without_its_key_is_refused() {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path());
    let cert = certs.path().join("server.pem").display().to_string();
    let (code, stderr) = refused(&["--tls-cert", cert.as_str()]);
    assert_ne!(code, 0, "{stderr}");
}

// ---- 2. Tokens ----

const READ_TOKEN: &str = "read-token-0123456789abcdef";
const WRITE_TOKEN: &str = "write-token-0123456789abcdef";
const WRONG_TOKEN: &str = "wrong-token-0123456789abcdef";

#[test]
fn tokens_decide_who_reads_and_who_writes_and_never_reach_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.txt");
    std::fs::write(
        &tokens,
        format!("# the test's tokens\n\nread {READ_TOKEN}\nwrite {WRITE_TOKEN}\n"),
    )
    .unwrap();
    let mut server = Server::start(
        "memory:",
        &["--tokens", tokens.to_str().unwrap()],
        &[("RUST_LOG", "debug")],
    );
    let (read, write, wrong) = (
        format!("authorization: Bearer {READ_TOKEN}"),
        format!("authorization: Bearer {WRITE_TOKEN}"),
        format!("authorization: Bearer {WRONG_TOKEN}"),
    );
    let (read, write, wrong) = (read.as_str(), write.as_str(), wrong.as_str());
    let alice = json!({ "owner": "alice", "balance": 10 }).to_string();
    let alice = alice.as_str();
    let deposit = json!({ "account": "Account:alice", "amount": 5 }).to_string();
    let deposit = deposit.as_str();

    // No token, an unknown one, another scheme: 401 with a Bearer challenge.
    for (what, headers) in [
        ("no token", vec![]),
        ("an unknown token", vec![wrong]),
        (
            "Basic credentials",
            vec!["authorization: Basic dXNlcjpwYXNzd29yZA=="],
        ),
    ] {
        for (method, path, body) in [
            ("GET", "/v1/entities/Account:alice", None),
            ("PUT", "/v1/entities/Account:alice", Some(alice)),
            ("POST", "/v1/accounts/deposit", Some(deposit)),
            ("GET", "/metrics", None),
        ] {
            let reply = server.request(method, path, body, &headers);
            assert_eq!(
                (reply.status, reply.kind()),
                (401, "unauthenticated"),
                "{what}, {method} {path}: {reply:?}"
            );
            assert!(
                reply
                    .header("www-authenticate")
                    .is_some_and(|v| v.starts_with("Bearer")),
                "{what}, {method} {path}: {reply:?}"
            );
        }
    }

    // A read token reads but does not write.
    let reply = server.request("PUT", "/v1/entities/Account:alice", Some(alice), &[read]);
    assert_eq!(
        (reply.status, reply.kind()),
        (403, "forbidden"),
        "{reply:?}"
    );
    let reply = server.request("GET", "/v1/entities/Account:alice", None, &[read]);
    assert_eq!(reply.status, 404, "nothing was written: {reply:?}");

    // A write token writes; then the read token reads it.
    let reply = server.request("PUT", "/v1/entities/Account:alice", Some(alice), &[write]);
    assert_eq!(
        (reply.status, &reply.body),
        (200, &json!({ "key": "Account:alice" })),
        "{reply:?}"
    );
    let reply = server.request("GET", "/v1/entities/Account:alice", None, &[read]);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["properties"]["balance"], 10);

    // The other read routes take the read token.
    let batch = json!({ "keys": ["Account:alice"] }).to_string();
    let query = json!({ "kind": "Account" }).to_string();
    for (method, path, body) in [
        ("POST", "/v1/batch-get", Some(batch.as_str())),
        ("POST", "/v1/query", Some(query.as_str())),
        ("GET", "/metrics", None),
    ] {
        let reply = server.request(method, path, body, &[read]);
        assert_eq!(reply.status, 200, "read token, {method} {path}: {reply:?}");
    }

    // Every write route refuses it, and writes nothing.
    let transfer =
        json!({ "source": "Account:alice", "destination": "Account:bob", "amount": 1 }).to_string();
    let ids = json!({ "kind": "Order", "count": 1 }).to_string();
    for (method, path, body) in [
        ("POST", "/v1/accounts/deposit", Some(deposit)),
        ("POST", "/v1/call/deposit", Some(deposit)),
        ("POST", "/v1/accounts/transfer", Some(transfer.as_str())),
        ("POST", "/v1/allocate-ids", Some(ids.as_str())),
        ("DELETE", "/v1/entities/Account:alice", None),
    ] {
        let reply = server.request(method, path, body, &[read]);
        assert_eq!(
            (reply.status, reply.kind()),
            (403, "forbidden"),
            "read token, {method} {path}: {reply:?}"
        );
    }
    let reply = server.request("GET", "/v1/entities/Account:alice", None, &[read]);
    assert_eq!(reply.body["properties"]["balance"], 10, "{reply:?}");

    let reply = server.request("POST", "/v1/accounts/deposit", Some(deposit), &[write]);
    assert_eq!(
        (reply.status, &reply.body["balance"]),
        (200, &json!(15)),
        "{reply:?}"
    );

    // Health needs no token.
    for path in ["/v1/health", "/v1/health?live"] {
        assert_eq!(
            server.call("GET", path, None),
            (200, json!({ "ok": true })),
            "{path}"
        );
    }

    // No token in the log, even at debug level (and the log did record the requests).
    let stderr = server.stop();
    for token in [READ_TOKEN, WRITE_TOKEN, WRONG_TOKEN] {
        assert!(
            !stderr.contains(token),
            "the server's stderr holds the token {token}:\n{}",
            tail(&stderr, 4000)
        );
    }
    assert!(
        stderr.contains("ads::http"),
        "RUST_LOG=debug logs the requests (target ads::http), so the check above means something:\n{}",
        tail(&stderr, 4000)
    );
}

#[test]
fn bad_token_files_stop_the_start_with_the_line_number() {
    let duplicate = format!("write {READ_TOKEN}");
    for (what, line) in [
        ("a short token", "write short-token"),
        ("an unknown role", "admin admin-token-0123456789abcdef"),
        ("a duplicate token", duplicate.as_str()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens.txt");
        // The bad line is line 4.
        std::fs::write(&tokens, format!("# tokens\nread {READ_TOKEN}\n\n{line}\n")).unwrap();
        let (code, stderr) = refused(&["--tokens", tokens.to_str().unwrap()]);
        assert_eq!(code, 2, "{what}: {stderr}");
        assert!(
            mentions_line(&stderr, 4),
            "{what}: the message names line 4: {stderr}"
        );
    }
}

#[test]
fn a_non_loopback_address_needs_tokens_or_an_explicit_opt_out() {
    let (code, stderr) = refused(&["--listen", "0.0.0.0:0"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--allow-unauthenticated") && stderr.contains("--tokens"),
        "{stderr}"
    );

    let server = Server::start(
        "memory:",
        &["--listen", "0.0.0.0:0", "--allow-unauthenticated"],
        &[],
    );
    assert_eq!(server.call("GET", "/v1/health", None).0, 200);
    drop(server);

    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.txt");
    std::fs::write(&tokens, format!("read {READ_TOKEN}\n")).unwrap();
    let server = Server::start(
        "memory:",
        &[
            "--listen",
            "0.0.0.0:0",
            "--tokens",
            tokens.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(server.call("GET", "/v1/health", None).0, 200);
}

// ---- 3. Cross-site requests ----

#[test]
fn cross_site_requests_are_refused_and_write_nothing() {
    let server = Server::start("memory:", &[], &[]);
    let (status, body) = server.call(
        "PUT",
        "/v1/entities/Account:alice",
        Some(json!({ "owner": "alice", "balance": 100 })),
    );
    assert_eq!(status, 200, "{body}");
    let deposit = json!({ "account": "Account:alice", "amount": 5 }).to_string();
    let deposit = deposit.as_str();

    for (what, header, status, kind) in [
        (
            "text/plain",
            "content-type: text/plain",
            415,
            "unsupported_media_type",
        ),
        (
            "a form",
            "content-type: application/x-www-form-urlencoded",
            415,
            "unsupported_media_type",
        ),
        (
            "a multipart form",
            "content-type: multipart/form-data; boundary=x",
            415,
            "unsupported_media_type",
        ),
        (
            "a body without a content type",
            "content-type:",
            415,
            "unsupported_media_type",
        ),
        (
            "a foreign origin",
            "origin: https://evil.example",
            403,
            "forbidden_origin",
        ),
        (
            "a foreign host",
            "host: evil.example",
            403,
            "forbidden_host",
        ),
    ] {
        let reply = server.request("POST", "/v1/accounts/deposit", Some(deposit), &[header]);
        assert_eq!(
            (reply.status, reply.kind()),
            (status, kind),
            "{what}: {reply:?}"
        );
        assert_eq!(
            server.alice_balance(),
            json!(100),
            "{what}: nothing written"
        );
    }

    // A PUT of another media type writes nothing either; a foreign origin cannot read.
    let reply = server.request(
        "PUT",
        "/v1/entities/Note:x",
        Some(r#"{"a": 1}"#),
        &["content-type: text/plain"],
    );
    assert_eq!(
        (reply.status, reply.kind()),
        (415, "unsupported_media_type"),
        "{reply:?}"
    );
    assert_eq!(server.call("GET", "/v1/entities/Note:x", None).0, 404);
    let reply = server.request(
        "GET",
        "/v1/entities/Account:alice",
        None,
        &["origin: https://evil.example"],
    );
    assert_eq!(
        (reply.status, reply.kind()),
        (403, "forbidden_origin"),
        "{reply:?}"
    );

    // `application/json` with parameters is JSON; a call with no body needs no content type.
    let reply = server.request(
        "POST",
        "/v1/accounts/deposit",
        Some(deposit),
        &["content-type: application/json; charset=utf-8"],
    );
    assert_eq!(
        (reply.status, &reply.body["balance"]),
        (200, &json!(105)),
        "{reply:?}"
    );
    let reply = server.request("POST", "/v1/call/deposit", None, &[]);
    assert!(
        reply.status != 0 && reply.status != 415,
        "an empty body without a content type is allowed: {reply:?}"
    );
    assert_eq!(server.alice_balance(), json!(105));

    // The default hosts, whatever the port.
    for host in [
        format!("host: localhost:{}", server.port()),
        format!("host: [::1]:{}", server.port()),
    ] {
        let reply = server.request(
            "POST",
            "/v1/accounts/deposit",
            Some(deposit),
            &[host.as_str()],
        );
        assert_eq!(reply.status, 200, "{host}: {reply:?}");
    }
    assert_eq!(server.alice_balance(), json!(115));

    // An HTTP/1.0 request without Host is allowed.
    let reply = raw(
        server.address,
        "GET /v1/entities/Account:alice HTTP/1.0\r\n\r\n",
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["properties"]["balance"], 115, "{reply:?}");
}

#[test]
fn an_allowed_origin_gets_cors_answers_and_others_are_still_refused() {
    let server = Server::start("memory:", &["--allow-origin", "https://app.example"], &[]);
    let (status, body) = server.call(
        "PUT",
        "/v1/entities/Account:alice",
        Some(json!({ "owner": "alice", "balance": 100 })),
    );
    assert_eq!(status, 200, "{body}");
    let deposit = json!({ "account": "Account:alice", "amount": 5 }).to_string();
    let deposit = deposit.as_str();

    let preflight = server.request(
        "OPTIONS",
        "/v1/accounts/deposit",
        None,
        &[
            "origin: https://app.example",
            "access-control-request-method: POST",
            "access-control-request-headers: content-type",
        ],
    );
    assert_eq!(preflight.status, 204, "{preflight:?}");
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("https://app.example"),
        "{preflight:?}"
    );
    assert!(
        preflight
            .header("access-control-allow-methods")
            .is_some_and(|m| m.contains("POST")),
        "{preflight:?}"
    );
    assert!(
        preflight
            .header("access-control-allow-headers")
            .is_some_and(|h| h.to_ascii_lowercase().contains("content-type")),
        "{preflight:?}"
    );
    assert_eq!(
        preflight.header("access-control-max-age"),
        Some("600"),
        "{preflight:?}"
    );
    assert_eq!(
        server.alice_balance(),
        json!(100),
        "a preflight runs nothing"
    );

    let reply = server.request(
        "POST",
        "/v1/accounts/deposit",
        Some(deposit),
        &["origin: https://app.example"],
    );
    assert_eq!(
        (reply.status, &reply.body["balance"]),
        (200, &json!(105)),
        "{reply:?}"
    );
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://app.example"),
        "{reply:?}"
    );
    assert!(
        reply
            .headers_named("vary")
            .iter()
            .any(|v| v.to_ascii_lowercase().contains("origin")),
        "{reply:?}"
    );

    let reply = server.request(
        "POST",
        "/v1/accounts/deposit",
        Some(deposit),
        &["origin: https://evil.example"],
    );
    assert_eq!(
        (reply.status, reply.kind()),
        (403, "forbidden_origin"),
        "{reply:?}"
    );
    assert_eq!(
        reply.header("access-control-allow-origin"),
        None,
        "{reply:?}"
    );
    assert_eq!(server.alice_balance(), json!(105));
}

// ---- 4. Keys in URLs ----

/// What `ads get ARG` prints (a process of its own, on the store the server holds: SQLite
/// allows it), or `None` when it exits 1 (no entity).
fn cli_get(store: &str, arg: &str) -> Option<Value> {
    let out = ads()
        .args(["--store", store, "get", arg])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    match out.status.code() {
        Some(0) => Some(
            serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|err| panic!("ads get {arg:?}: {err}: {:?}", out.stdout)),
        ),
        Some(1) => None,
        code => panic!(
            "ads get {arg:?}: exit {code:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

#[test]
fn keys_with_any_character_round_trip_through_urls() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("ds.db").display());
    let server = Server::start(&store, &[], &[]);

    let names = [
        "a?b",
        "a#b",
        "a%b",
        "a/b",
        "a:b",
        "a@b",
        "a\"b",
        "a\\b",
        "a b",
        "a\u{0}b",
        "é",
        "日本",
        "?#%/:@\"\\ \u{0}é日本",
    ];
    for (i, name) in names.into_iter().enumerate() {
        let key = host_core::Key::name("Note", name);
        let shown = key.to_string();
        let written = quoted("Note", name);
        let path = format!("/v1/entities/{}", percent_encode(&written));
        // A NUL cannot be a command-line argument: the CLI gets the URL-safe form.
        let cli_arg = if name.contains('\0') {
            key.to_urlsafe()
        } else {
            written.clone()
        };
        let properties = json!({ "i": i });

        let (status, body) = server.call("PUT", &path, Some(properties.clone()));
        assert_eq!(
            (status, &body),
            (200, &json!({ "key": shown })),
            "PUT {path} ({name:?})"
        );
        let (status, got) = server.call("GET", &path, None);
        assert_eq!(
            (status, &got),
            (200, &json!({ "key": shown, "properties": properties })),
            "GET {path} ({name:?})"
        );
        assert_eq!(
            cli_get(&store, &cli_arg),
            Some(got),
            "ads get {cli_arg:?} after PUT {path}"
        );

        let (status, body) = server.call("DELETE", &path, None);
        assert_eq!(
            (status, &body),
            (200, &json!({ "key": shown, "deleted": true })),
            "DELETE {path} ({name:?})"
        );
        assert_eq!(
            server.call("GET", &path, None).0,
            404,
            "GET {path} after DELETE"
        );
        assert_eq!(
            cli_get(&store, &cli_arg),
            None,
            "ads get {cli_arg:?} after DELETE {path}"
        );
    }

    // A query string on an entity route is not part of the key, and not ignored either.
    let (status, body) = server.call("PUT", "/v1/entities/Note:a", Some(json!({ "n": 1 })));
    assert_eq!(status, 200, "{body}");
    let reply = server.request("DELETE", "/v1/entities/Note:a?b", None, &[]);
    assert_eq!(
        (reply.status, reply.kind()),
        (400, "invalid_key"),
        "{reply:?}"
    );
    assert_eq!(
        server.call("GET", "/v1/entities/Note:a", None).0,
        200,
        "Note:a is still there"
    );

    // Bad percent escapes, sent as they are (raw TCP: no client rewrites them).
    for (path, kind) in [
        ("/v1/entities/Note:%zz", Some("invalid_key")),
        ("/v1/entities/Note:%4", Some("invalid_key")),
        // Not UTF-8 once decoded: spec26 says invalid_key, tests/serve.rs says bad_request.
        ("/v1/entities/Note:%FF", None),
    ] {
        let reply = raw(
            server.address,
            &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(reply.status, 400, "GET {path}: {reply:?}");
        if let Some(kind) = kind {
            assert_eq!(reply.kind(), kind, "GET {path}: {reply:?}");
        }
    }
}

// ---- 5. Slow and greedy clients ----

#[test]
fn a_client_slow_with_its_headers_is_cut_off_while_others_are_served() {
    let _heavy = heavy();
    let server = Server::start("memory:", &["--header-timeout-ms", "2000"], &[]);
    let head = b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    let mut stream = TcpStream::connect(server.address).unwrap();
    let started = Instant::now();
    let mut closed_after = None;
    for (i, byte) in head.iter().enumerate() {
        if stream.write_all(std::slice::from_ref(byte)).is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        if i == 3 {
            // About a second in: another client is served meanwhile.
            let (status, body) = server.call("GET", "/v1/health", None);
            assert_eq!(status, 200, "{body}");
        }
        if closed_within(&mut stream, Duration::from_millis(300)) {
            closed_after = Some(started.elapsed());
            break;
        }
    }
    let closed_after = closed_after.expect(
        "the server never closed the connection: the whole head went, byte by byte, in 12 s",
    );
    eprintln!("a client sending a byte every 300 ms was cut off after {closed_after:?}");
    assert!(
        (Duration::from_millis(1500)..=Duration::from_secs(5)).contains(&closed_after),
        "cut off after {closed_after:?}; the header timeout is 2 s"
    );
    let (status, body) = server.call("GET", "/v1/health", None);
    assert_eq!(status, 200, "{body}");
}

#[test]
fn thousands_of_idle_connections_do_not_starve_requests() {
    let _heavy = heavy();
    const WANTED: usize = 2000;
    // Each side (this process, the server, which inherits the limit) holds one file per
    // connection, and a few more.
    let limit = raise_open_files_limit(8192);
    let count = WANTED.min(usize::try_from(limit.saturating_sub(300)).unwrap_or(WANTED));
    if count < WANTED {
        eprintln!("open files are limited to {limit}: {count} idle connections, not {WANTED}");
    }
    let server = Server::start("memory:", &[], &[]);

    let started = Instant::now();
    let idle: Vec<TcpStream> = (0..count)
        .map(|i| {
            TcpStream::connect_timeout(&server.address, Duration::from_secs(10))
                .unwrap_or_else(|err| panic!("idle connection {i}: {err}"))
        })
        .collect();
    eprintln!(
        "{} idle connections opened in {:?}",
        idle.len(),
        started.elapsed()
    );

    let mut times = Vec::new();
    for i in 0..20 {
        let started = Instant::now();
        let (status, body) = server.call("GET", "/v1/health", None);
        let took = started.elapsed();
        assert_eq!(
            status, 200,
            "request {i}, {count} idle connections open: {body}"
        );
        assert!(
            took < Duration::from_secs(2),
            "request {i} took {took:?} with {count} idle connections open"
        );
        times.push(took);
    }
    times.sort();
    eprintln!(
        "with {count} idle connections open: median {:?}, slowest {:?} (curl included)",
        times[times.len() / 2],
        times[times.len() - 1]
    );
    drop(idle);
}

/// Sends the head of a PUT of 8 MiB and all of its body but the last byte, in 64 KiB
/// writes, giving up (the connection stays open) when a write waits 3 s or fails: the
/// server may stop reading, or answer 503 and close.
fn hold_a_big_body(address: SocketAddr) -> TcpStream {
    const BODY: usize = 8 << 20;
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let head = format!(
        "PUT /v1/entities/Note:big HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Content-Type: application/json\r\nContent-Length: {BODY}\r\n\r\n"
    );
    if stream.write_all(head.as_bytes()).is_err() {
        return stream;
    }
    let chunk = vec![b'x'; 64 << 10];
    let mut left = BODY - 1;
    while left > 0 {
        let n = left.min(chunk.len());
        if stream.write_all(&chunk[..n]).is_err() {
            break;
        }
        left -= n;
    }
    stream
}

#[test]
fn bodies_held_open_do_not_grow_memory_without_bound() {
    let _heavy = heavy();
    let server = Server::start("memory:", &[], &[]);
    // Warm: an instance has run, so what grows afterwards is the bodies' doing.
    for i in 0..3 {
        let (status, body) = server.call(
            "PUT",
            &format!("/v1/entities/Note:warm{i}"),
            Some(json!({ "i": i })),
        );
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(server.call("GET", "/v1/health", None).0, 200);
    let before = rss_mib(server.pid());

    let address = server.address;
    let senders: Vec<_> = (0..40)
        .map(|_| std::thread::spawn(move || hold_a_big_body(address)))
        .collect();
    let held: Vec<TcpStream> = senders.into_iter().map(|s| s.join().unwrap()).collect();
    let mut after = 0.0f64;
    for _ in 0..10 {
        after = after.max(rss_mib(server.pid()));
        std::thread::sleep(Duration::from_millis(200));
    }
    let growth = after - before;
    eprintln!(
        "40 bodies of 8 MiB held open: resident memory {before:.1} MiB -> {after:.1} MiB (+{growth:.1} MiB)"
    );
    assert!(
        growth < 200.0,
        "the server's resident memory grew by {growth:.1} MiB"
    );
    drop(held);

    assert_eq!(server.call("GET", "/v1/health", None).0, 200);
    assert_eq!(
        server.call("GET", "/v1/entities/Note:big", None).0,
        404,
        "no incomplete body was written"
    );
}

#[test]
fn sigterm_with_half_open_clients_exits_after_the_drain_timeout() {
    let _heavy = heavy();
    let mut server = Server::start("memory:", &["--drain-timeout-ms", "2000"], &[]);
    assert_eq!(server.call("GET", "/v1/health", None).0, 200);
    // Half a head; and a whole head with half its body (a request the server has begun).
    let mut half_head = TcpStream::connect(server.address).unwrap();
    half_head
        .write_all(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    let mut half_body = TcpStream::connect(server.address).unwrap();
    half_body
        .write_all(
            b"PUT /v1/entities/Note:half HTTP/1.1\r\nHost: 127.0.0.1\r\n\
              Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"half\": ",
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));

    let started = Instant::now();
    server.terminate();
    let status = exit_within(&mut server.child, Duration::from_secs(5)).unwrap_or_else(|| {
        panic!("still running 5 s after SIGTERM with half-open clients (drain timeout 2 s)")
    });
    eprintln!("exited ({status}) {:?} after SIGTERM", started.elapsed());
    assert!(status.success(), "exit status after SIGTERM: {status}");
    drop((half_head, half_body));
}

// ---- 6. Health ----

#[test]
fn health_notices_a_deleted_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ds.db");
    let server = Server::start(&format!("sqlite:{}", file.display()), &[], &[]);
    assert_eq!(
        server.call("GET", "/v1/health", None),
        (200, json!({ "ok": true }))
    );

    std::fs::remove_file(&file).unwrap();
    // Probes within 250 ms of a check share its answer.
    std::thread::sleep(Duration::from_millis(300));
    let (status, body) = server.call("GET", "/v1/health", None);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ok"], json!(false), "{body}");
    assert_eq!(body["error"]["kind"], "unhealthy", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("deleted")),
        "{body}"
    );
    assert_eq!(
        server.call("GET", "/v1/health?live", None),
        (200, json!({ "ok": true }))
    );
}

// ---- 7. Metrics ----

#[test]
fn metrics_count_requests_by_route_method_and_status() {
    let server = Server::start("memory:", &[], &[]);
    for i in 1..=3 {
        let (status, body) = server.call(
            "PUT",
            &format!("/v1/entities/Note:{i}"),
            Some(json!({ "i": i })),
        );
        assert_eq!(status, 200, "{body}");
    }
    for i in 1..=2 {
        assert_eq!(
            server
                .call("GET", &format!("/v1/entities/Note:{i}"), None)
                .0,
            200
        );
    }
    assert_eq!(server.call("GET", "/v1/entities/Note:missing", None).0, 404);
    let reply = server.request("PUT", "/v1/entities/Note:bad", Some("not json"), &[]);
    assert_eq!(reply.status, 400, "{reply:?}");

    let reply = server.request("GET", "/metrics", None, &[]);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{:?}",
        reply.headers
    );
    let metrics = parse_metrics(&reply.text);
    let entities = |method: &str, status: u16| {
        metrics
            .get(&format!(
                "ds_http_requests_total{{route=\"/v1/entities/{{key}}\",method=\"{method}\",status=\"{status}\"}}"
            ))
            .copied()
    };
    for (method, status, count) in [
        ("PUT", 200, 3.0),
        ("GET", 200, 2.0),
        ("GET", 404, 1.0),
        ("PUT", 400, 1.0),
    ] {
        assert_eq!(
            entities(method, status),
            Some(count),
            "{method} {status} in:\n{}",
            reply.text
        );
    }
    let durations = metrics
        .get("ds_http_request_duration_seconds_count{route=\"/v1/entities/{key}\"}")
        .copied();
    assert!(
        durations.is_some_and(|n| n >= 7.0),
        "duration count {durations:?} in:\n{}",
        reply.text
    );
    for name in ["ds_http_requests_in_flight", "ds_instances_max"] {
        assert!(metrics.contains_key(name), "{name} in:\n{}", reply.text);
    }
}

// ---- 8. Request ids ----

#[test]
fn request_ids_are_echoed_or_generated() {
    let server = Server::start("memory:", &[], &[]);
    let reply = server.request("GET", "/v1/health", None, &["x-request-id: abc-123"]);
    assert_eq!(reply.header("x-request-id"), Some("abc-123"), "{reply:?}");
    // On an error answer too.
    let reply = server.request(
        "GET",
        "/v1/entities/Note:missing",
        None,
        &["x-request-id: abc-456"],
    );
    assert_eq!(reply.status, 404);
    assert_eq!(reply.header("x-request-id"), Some("abc-456"), "{reply:?}");

    let generated: Vec<String> = (0..2)
        .map(|_| {
            let reply = server.request("GET", "/v1/health", None, &[]);
            let id = reply.header("x-request-id").unwrap_or("").to_string();
            assert!(!id.is_empty(), "a generated request id: {reply:?}");
            id
        })
        .collect();
    assert_ne!(generated[0], generated[1], "each request gets its own id");

    // Longer than 128 characters: not echoed, replaced by a generated one.
    let long = "x".repeat(129);
    let header = format!("x-request-id: {long}");
    let reply = server.request("GET", "/v1/health", None, &[header.as_str()]);
    let id = reply.header("x-request-id").unwrap_or("");
    assert!(!id.is_empty() && id != long, "{reply:?}");
}

#[test]
fn json_request_logs_carry_the_request_fields() {
    let mut server = Server::start("memory:", &["--log-format", "json"], &[]);
    let reply = server.request(
        "PUT",
        "/v1/entities/Note:logged",
        Some("{}"),
        &["x-request-id: log-check-1"],
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    let stderr = server.stop();
    let line = stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["request_id"] == "log-check-1")
        .unwrap_or_else(|| panic!("a JSON log line for the request in:\n{stderr}"));
    assert_eq!(line["target"], "ads::http", "{line}");
    assert_eq!(line["method"], "PUT", "{line}");
    assert_eq!(line["route"], "/v1/entities/{key}", "{line}");
    assert_eq!(line["status"], 200, "{line}");
    assert!(line["duration_ms"].as_f64().is_some(), "{line}");
    assert!(line["timestamp"].is_string(), "{line}");
}

#[test]
fn the_health_probe_answers_any_host_and_nothing_else_does() {
    let server = Server::start("memory:", &[], &[]);
    // Orchestrators probe by IP address: health answers whatever the Host.
    let reply = server.request("GET", "/v1/health", None, &["host: 10.1.2.3:8080"]);
    assert_eq!((reply.status, &reply.body), (200, &json!({ "ok": true })));
    let reply = server.request("GET", "/metrics", None, &["host: 10.1.2.3:8080"]);
    assert_eq!((reply.status, reply.kind()), (403, "forbidden_host"));
}

#[test]
fn a_client_that_stops_reading_its_answers_is_cut_off() {
    let _heavy = heavy();
    let server = Server::start("memory:", &["--header-timeout-ms", "1000"], &[]);
    let blob = "x".repeat(700_000);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blob.json");
    std::fs::write(&file, json!({ "b": { "$unindexed": blob } }).to_string()).unwrap();
    let put = format!("@{}", file.display());
    let reply = server.request("PUT", "/v1/entities/Blob:1", Some(&put), &[]);
    assert_eq!(reply.status, 200, "{reply:?}");

    // 40 pipelined GETs of a 700 KB entity: 28 MB of answers, more than the sockets'
    // buffers hold, to a client that reads none of them.
    let mut stream = TcpStream::connect(server.address).unwrap();
    let request = "GET /v1/entities/Blob:1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    stream.write_all(request.repeat(40).as_bytes()).unwrap();
    std::thread::sleep(Duration::from_secs(3));

    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut total = 0usize;
    let mut chunk = vec![0u8; 1 << 16];
    let ended = loop {
        match stream.read(&mut chunk) {
            Ok(0) => break true,
            Ok(n) => total += n,
            Err(err) if err.kind() == ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    println!("a client that stopped reading got {total} bytes of 28 MB before the close");
    assert!(ended, "the server closed the stalled connection");
    assert!(
        total < 40 * 700_000,
        "the server gave up writing ({total} bytes arrived)"
    );
    assert_eq!(server.call("GET", "/v1/health", None).0, 200);
}
