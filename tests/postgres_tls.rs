//! TLS to PostgreSQL, end to end through `ds` and `ads` on the command line, against the
//! private clusters of `.ci/postgres-tls.sh`: one that refuses any connection without TLS
//! (certificate for `localhost`, signed by a CA the script made; client certificates for
//! user `dscert`), one without TLS. Each libpq `sslmode` does what libpq's does; every
//! refusal exits 4 with a message that says why, and writes nothing.

use std::path::Path;
use std::process::Command;

use ds_tests::{PostgresSchema, TlsServers, binary, postgres_tls};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(host: &str, dir: &Path, store: &str, args: &[&str]) -> Run {
    let out = Command::new(binary(host))
        .args(["--store", store])
        .args(args)
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

/// `url` plus this test's schema.
fn in_schema(url: &str, schema: &PostgresSchema) -> String {
    format!("{url}&schema={}", schema.name())
}

/// What the verified URL sees at `key` in `schema`: the entity's JSON line, or `None`.
fn seen(servers: &TlsServers, dir: &Path, schema: &PostgresSchema, key: &str) -> Option<String> {
    let got = run(
        "ds",
        dir,
        &in_schema(&servers.verified(), schema),
        &["get", key],
    );
    match got.code {
        0 => Some(got.stdout),
        1 => None,
        code => panic!("get {key}: exit {code}: {}", got.stderr),
    }
}

#[test]
fn verified_connections_read_and_write_through_both_hosts() {
    let Some(servers) = postgres_tls() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let schema = PostgresSchema::on(&servers.verified(), &servers.admin());
    let ca = servers.cert("ca.pem");
    let cases = [
        // verify-full: the certificate names `localhost`.
        ("ds", servers.verified()),
        ("ads", servers.verified()),
        // verify-ca forgives the name (the certificate does not name 127.0.0.1).
        (
            "ds",
            servers.url(
                "postgres",
                "127.0.0.1",
                &format!("sslmode=verify-ca&sslrootcert={ca}"),
            ),
        ),
        // require and prefer encrypt without checking (the cluster refuses plain TCP, so
        // a connection at all shows TLS was used).
        (
            "ads",
            servers.url("postgres", "127.0.0.1", "sslmode=require"),
        ),
        (
            "ds",
            servers.url("postgres", "127.0.0.1", "connect_timeout=5"),
        ),
        // A client certificate, for a user the cluster authenticates by certificate only.
        (
            "ds",
            servers.url(
                "dscert",
                "localhost",
                &format!(
                    "sslmode=verify-full&sslrootcert={ca}&sslcert={}&sslkey={}",
                    servers.cert("client.pem"),
                    servers.cert("client.key")
                ),
            ),
        ),
    ];
    for (i, (host, url)) in cases.iter().enumerate() {
        let key = format!("Note:n{i}");
        let put = run(
            host,
            dir.path(),
            &in_schema(url, &schema),
            &["put", &key, r#"{"i": 1}"#],
        );
        assert_eq!(put.code, 0, "{host} {url}: {}", put.stderr);
        let got = run(host, dir.path(), &in_schema(url, &schema), &["get", &key]);
        assert_eq!(got.code, 0, "{host} {url}: {}", got.stderr);
        assert!(got.stdout.contains(r#""i":1"#), "{}", got.stdout);
        assert!(seen(&servers, dir.path(), &schema, &key).is_some());
    }
}

#[test]
fn refusals_exit_4_say_why_and_write_nothing() {
    let Some(servers) = postgres_tls() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let schema = PostgresSchema::on(&servers.verified(), &servers.admin());
    // The schema exists (so "nothing written" is about the entity, not the tables).
    let ready = run(
        "ds",
        dir.path(),
        &in_schema(&servers.verified(), &schema),
        &["put", "Note:ready", "{}"],
    );
    assert_eq!(ready.code, 0, "{}", ready.stderr);
    let ca = servers.cert("ca.pem");
    let wrong_ca = servers.cert("wrong-ca.pem");
    let cases = [
        (
            "a CA that did not sign the server's certificate",
            servers.url(
                "postgres",
                "localhost",
                &format!("sslmode=verify-ca&sslrootcert={wrong_ca}"),
            ),
            "UnknownIssuer",
        ),
        (
            "a host the certificate does not name",
            servers.url(
                "postgres",
                "127.0.0.1",
                &format!("sslmode=verify-full&sslrootcert={ca}"),
            ),
            "not valid for name",
        ),
        (
            "require with a root certificate checks the chain, as libpq does",
            servers.url(
                "postgres",
                "localhost",
                &format!("sslmode=require&sslrootcert={wrong_ca}"),
            ),
            "UnknownIssuer",
        ),
        (
            "no TLS where the server insists on it",
            servers.url("postgres", "localhost", "sslmode=disable"),
            "no encryption",
        ),
        (
            "a certificate-only user without a client certificate",
            servers.url(
                "dscert",
                "localhost",
                &format!("sslmode=verify-full&sslrootcert={ca}"),
            ),
            "certificate",
        ),
    ];
    for (why, url, says) in &cases {
        for host in ["ds", "ads"] {
            let put = run(
                host,
                dir.path(),
                &in_schema(url, &schema),
                &["put", "Note:refused", r#"{"x": 1}"#],
            );
            assert_eq!(put.code, 4, "{host}, {why}: {}{}", put.stdout, put.stderr);
            assert!(put.stderr.contains(says), "{host}, {why}: {}", put.stderr);
            assert!(put.stderr.contains("PostgreSQL"), "{}", put.stderr);
        }
    }
    assert_eq!(seen(&servers, dir.path(), &schema, "Note:refused"), None);

    // `require` against a server without TLS: refused before anything is sent.
    let plain = PostgresSchema::new(&servers.plain("sslmode=disable"));
    for host in ["ds", "ads"] {
        let put = run(
            host,
            dir.path(),
            &in_schema(&servers.plain("sslmode=require"), &plain),
            &["put", "Note:refused", "{}"],
        );
        assert_eq!(put.code, 4, "{host}: {}", put.stderr);
        assert!(put.stderr.contains("TLS"), "{host}: {}", put.stderr);
    }
    // Nothing was created on that server: not even the schema. (A read creates nothing
    // either, since issue 28: it finds no store there, exit 4, where it used to create the
    // schema and answer "not found", exit 1.)
    let get = run(
        "ds",
        dir.path(),
        &in_schema(&servers.plain("sslmode=disable"), &plain),
        &["get", "Note:refused"],
    );
    assert_eq!(get.code, 4, "{}", get.stderr);
    assert!(get.stderr.contains("no store there"), "{}", get.stderr);

    // Bad parameters are refused before any connection, naming the parameter.
    for (params, says) in [
        ("sslmode=verify-full", "needs sslrootcert"),
        ("sslmode=sometimes", "sslmode"),
        (
            "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
            "/nonexistent/ca.pem",
        ),
        ("sslcert=/tmp/a.pem", "sslkey"),
    ] {
        let got = run(
            "ds",
            dir.path(),
            &servers.url("postgres", "localhost", params),
            &["get", "Note:x"],
        );
        assert_ne!(got.code, 0, "{params}");
        assert!(got.stderr.contains(says), "{params}: {}", got.stderr);
    }
}
