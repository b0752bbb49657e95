//! Several hosts over one store: three `ads serve` processes, each in a network namespace of
//! its own (a separate host on the network, joined to this one by a veth pair), all over
//! one PostgreSQL store and then one etcd cluster. Transfers go through all three at once;
//! one host is killed with SIGKILL mid-load. The other two keep serving, the total is
//! conserved, every acknowledged transfer has its record, and `check` is clean.
//!
//! The hosts reach the store through TCP relays on this side of their veth pairs (the
//! store listens on loopback, which a namespace does not share). Where namespaces cannot
//! be made (no root, no `ip`), the hosts run as plain processes on loopback, with a note.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ds_tests::{
    EtcdCluster, Outcome, PostgresSchema, account, balance, binary, post, postgres_server,
};
use host_core::Key;

const HOSTS: usize = 3;
const ACCOUNTS: [&str; 4] = ["a", "b", "c", "d"];
const START: i64 = 1_000;

/// Forwards every connection accepted at `listen` to `target`, until the process ends.
fn relay(listen: &str, target: String) -> SocketAddr {
    let listener = TcpListener::bind(listen).expect("bind the relay");
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(&target) else {
                continue;
            };
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    address
}

/// Where each host runs: a network namespace (`Some`) or this one.
struct Network {
    /// Per host: the namespace's name, this side's address and the host's address.
    namespaces: Vec<(String, String, String)>,
}

impl Network {
    /// Three namespaces, each joined to this one by a veth pair on a /30 of its own; `None`
    /// (with a printed note) if they cannot be made.
    fn create(tag: char) -> Option<Network> {
        let pid = std::process::id() % 100_000;
        let mut network = Network {
            namespaces: Vec::new(),
        };
        let subnet = 200 + (tag as u32 % 50);
        for i in 0..HOSTS {
            let name = format!("ds{pid}{tag}{i}");
            let (outside, inside) = (format!("vo{pid}{tag}{i}"), format!("vi{pid}{tag}{i}"));
            let base = 4 * i as u32;
            let (near, far) = (
                format!("10.{subnet}.{}.{}", pid % 250, base + 1),
                format!("10.{subnet}.{}.{}", pid % 250, base + 2),
            );
            let (near_net, far_net) = (format!("{near}/30"), format!("{far}/30"));
            let steps: [Vec<&str>; 8] = [
                vec!["netns", "add", &name],
                vec![
                    "link", "add", &outside, "type", "veth", "peer", "name", &inside,
                ],
                vec!["link", "set", &inside, "netns", &name],
                vec!["addr", "add", &near_net, "dev", &outside],
                vec!["link", "set", &outside, "up"],
                vec!["-n", &name, "addr", "add", &far_net, "dev", &inside],
                vec!["-n", &name, "link", "set", &inside, "up"],
                vec!["-n", &name, "link", "set", "lo", "up"],
            ];
            // Registered first, so that a half-made namespace is removed too.
            network
                .namespaces
                .push((name.clone(), near.clone(), far.clone()));
            for step in steps {
                let ok = Command::new("ip")
                    .args(&step)
                    .stderr(Stdio::piped())
                    .output();
                match ok {
                    Ok(out) if out.status.success() => {}
                    Ok(out) => {
                        eprintln!(
                            "NOTE: cannot make network namespaces (ip {}: {}); the hosts run as \
                             plain processes on loopback instead",
                            step.join(" "),
                            String::from_utf8_lossy(&out.stderr).trim()
                        );
                        return None;
                    }
                    Err(err) => {
                        eprintln!(
                            "NOTE: cannot make network namespaces (ip: {err}); the hosts run as \
                             plain processes on loopback instead"
                        );
                        return None;
                    }
                }
            }
        }
        Some(network)
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // Removing a namespace removes the veth pair with it.
        for (name, _, _) in &self.namespaces {
            let _ = Command::new("ip")
                .args(["netns", "delete", name])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// One `ads serve` process.
struct Host {
    child: Child,
    address: SocketAddr,
}

impl Host {
    fn start(namespace: Option<&str>, listen: &str, store: &str, cache: &std::path::Path) -> Host {
        let mut command = match namespace {
            Some(name) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", name]).arg(binary("ads"));
                command
            }
            None => Command::new(binary("ads")),
        };
        let mut child = command
            .args(["--store", store, "serve", "--listen", listen])
            .arg("--allow-unauthenticated")
            .env("DS_CACHE_DIR", cache)
            // Warnings only: one line per request from three hosts would bury the result.
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("ads starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let announced: serde_json::Value =
            serde_json::from_str(&line).expect("{\"listening\": ADDR} first");
        let address = announced["listening"].as_str().unwrap().parse().unwrap();
        Host { child, address }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs the three hosts over the store at `url` (as this process reaches it), whose
/// servers listen at `targets` (`HOST:PORT`, each relayed into the namespaces).
fn hosts_share_one_store(label: &str, tag: char, url: &str, targets: &[String]) {
    let db = ds::Datastore::builder().store_url(url).build().unwrap();
    db.put_many(&ACCOUNTS.map(|n| account(n, START))).unwrap();
    let network = Network::create(tag);
    let cache = tempfile::tempdir().unwrap();
    let mut hosts: Vec<Host> = (0..HOSTS)
        .map(|i| match &network {
            Some(network) => {
                let (name, near, far) = &network.namespaces[i];
                let mut host_url = url.to_string();
                for target in targets {
                    let relayed = relay(&format!("{near}:0"), target.clone());
                    host_url = host_url.replacen(target.as_str(), &relayed.to_string(), 1);
                }
                Host::start(Some(name), &format!("{far}:0"), &host_url, cache.path())
            }
            None => Host::start(None, "127.0.0.1:0", url, cache.path()),
        })
        .collect();
    let addresses: Vec<SocketAddr> = hosts.iter().map(|h| h.address).collect();
    eprintln!("{label}: hosts at {addresses:?}");

    let stop = AtomicBool::new(false);
    let acknowledged = AtomicU64::new(0);
    let lost = AtomicU64::new(0);
    let begun = Instant::now();
    let done: Mutex<Vec<(usize, u64)>> = Mutex::new(Vec::new());
    let mut killed_at = 0;
    std::thread::scope(|scope| {
        for worker in 0..2 * HOSTS {
            let (stop, acknowledged, lost, done) = (&stop, &acknowledged, &lost, &done);
            let address = addresses[worker % HOSTS];
            scope.spawn(move || {
                let mut seed = 0x9E37_79B9_7F4A_7C15 ^ (worker as u64 + 1);
                while !stop.load(Ordering::Relaxed) {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let from = ACCOUNTS[(seed % 4) as usize];
                    let to = ACCOUNTS[((seed >> 8) % 4) as usize];
                    let amount = (seed >> 16) % 50 + 1;
                    let body = format!(
                        r#"{{"source":"Account:{from}","destination":"Account:{to}","amount":{amount}}}"#
                    );
                    match post(address, "/v1/accounts/transfer", &body) {
                        Outcome::Answered(200, _) => {
                            acknowledged.fetch_add(1, Ordering::Relaxed);
                            let at = begun.elapsed().as_millis() as u64;
                            done.lock().unwrap().push((worker % HOSTS, at));
                        }
                        // Refused (not enough money) or lost a race: nothing was written.
                        Outcome::Answered(409 | 412 | 422, _) => {}
                        Outcome::Answered(status, body) => {
                            panic!("{label}: host {}: {status} {body}", worker % HOSTS)
                        }
                        Outcome::Lost => {
                            lost.fetch_add(1, Ordering::Relaxed);
                        }
                        // The killed host: its workers stop.
                        Outcome::NotSent => return,
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(1500));
        killed_at = begun.elapsed().as_millis() as u64;
        hosts[1].kill();
        std::thread::sleep(Duration::from_millis(2000));
        stop.store(true, Ordering::Relaxed);
    });
    let done = done.into_inner().unwrap();
    let after: Vec<usize> = (0..HOSTS)
        .map(|h| {
            done.iter()
                .filter(|(host, at)| *host == h && *at > killed_at)
                .count()
        })
        .collect();
    let (acknowledged, lost) = (
        acknowledged.load(Ordering::Relaxed),
        lost.load(Ordering::Relaxed),
    );
    eprintln!(
        "{label}: {acknowledged} transfers acknowledged, {lost} lost with host 1 (killed at \
         {killed_at} ms); done after the kill, per host: {after:?}"
    );
    assert!(
        after[0] > 0 && after[2] > 0,
        "{label}: the surviving hosts stopped serving: {after:?}"
    );
    assert_eq!(after[1], 0, "{label}: the killed host answered");

    let keys: Vec<Key> = ACCOUNTS.iter().map(|n| Key::name("Account", *n)).collect();
    let balances: Vec<i64> = db
        .get_many(&keys)
        .unwrap()
        .into_iter()
        .map(balance)
        .collect();
    assert_eq!(
        balances.iter().sum::<i64>(),
        START * ACCOUNTS.len() as i64,
        "{label}: money was created or destroyed: {balances:?}"
    );
    let records = ds_tests::transfer_records(&db, &keys);
    assert!(
        (acknowledged..=acknowledged + lost).contains(&records),
        "{label}: {records} records for {acknowledged} acknowledged and {lost} lost transfers"
    );
    let report = db.check().unwrap();
    assert!(report.problems.is_empty(), "{label}: {:?}", report.problems);
    drop(hosts);
    drop(network);
}

#[test]
fn hosts_share_one_postgres_store() {
    let Some(server) = postgres_server() else {
        return;
    };
    let schema = PostgresSchema::new(&server);
    let config: tokio_postgres::Config = server.parse().unwrap();
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let target = format!("{host}:{port}");
    let url = schema.url();
    assert!(url.contains(&target), "{url} names {target}");
    hosts_share_one_store("postgres", 'p', &url, &[target]);
}

#[test]
fn hosts_share_one_etcd_cluster() {
    let Some(cluster) = EtcdCluster::start(3) else {
        return;
    };
    let targets: Vec<String> = (0..cluster.size())
        .map(|i| {
            cluster
                .endpoint(i)
                .trim_start_matches("http://")
                .to_string()
        })
        .collect();
    hosts_share_one_store("etcd", 'e', &cluster.url("hosts"), &targets);
}
