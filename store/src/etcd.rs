//! `etcd://HOST:PORT[,HOST:PORT…]/PREFIX`: the replicated store, on an etcd v3 cluster.
//!
//! etcd is a replicated, strongly consistent, ordered key-value store (Raft), and its API is
//! close to ds's transport, so the mapping is direct:
//!
//! - A ds key `k` is the etcd key `PREFIX/k`: one cluster can hold several stores, and the
//!   ds key space may use the empty key, which etcd refuses. The store's format version is
//!   kept beside the data, at `PREFIX:format`, outside the data's range.
//! - A version is the etcd `mod_revision` of the key. All writes of one transaction share
//!   one revision, the store-wide revision, which only grows: a key deleted and re-created
//!   never shows an old version.
//! - `get` is a linearizable range of one key; `get-many` is one transaction of ranges (one
//!   revision), split at the transaction-ops limit, later parts read at the first part's
//!   revision; `scan` is a range with a limit. etcd sorts a whole range for a descending
//!   read, so a reverse page costs time in the size of the range, not of the page.
//! - `commit` is one transaction: `mod_revision == v` (or `create_revision == 0` for
//!   "absent") per check, the last write per key as a put or a delete (etcd refuses the same
//!   key twice in one transaction), and a failure branch that reads the checked keys so the
//!   conflict names the first failing one.
//!
//! Failures: each endpoint has a connection of its own, and requests go to the one that
//! last answered. A request the server never saw (refused connection, a member without a
//! leader) moves to the next endpoint; a read that failed in flight does too. A commit that
//! failed once sent is `internal` with the outcome unknown, never `unavailable`, since the
//! cluster may have applied it. When no member can serve, the store waits up to
//! `leader_wait_ms` for an election before answering `unavailable`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use etcd_client::{
    Compare, CompareOp, ConnectOptions, GetOptions, GetResponse, KeyValue, KvClient, SortOrder,
    SortTarget, Txn, TxnOp, TxnOpResponse, TxnResponse,
};

use super::{
    AsyncStore, BoxFuture, Check, Direction, Entry, KeyRange, StoreError, Versioned, Write,
};
use crate::error_chain as chain;

/// The store format this build writes and reads (at `PREFIX:format`).
pub const FORMAT_VERSION: u64 = 1;

/// etcd's default `--max-txn-ops`: the most operations a transaction may hold, unless the
/// URL says the cluster allows more (`max_txn_ops=N`).
pub const DEFAULT_MAX_TXN_OPS: usize = 128;

/// How long one request may take, unless the URL says otherwise (`timeout_ms=N`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long opening a connection to a member may take (`connect_timeout_ms=N`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the store waits for the cluster to elect a leader when no member can serve
/// (`leader_wait_ms=N`): longer than an election with etcd's default timings (1 s election
/// timeout), short enough that a cluster without quorum is reported promptly.
pub const DEFAULT_LEADER_WAIT: Duration = Duration::from_secs(3);

/// The largest response the client decodes: etcd's own send limit (`math.MaxInt32`), far
/// above tonic's 4 MiB default, which a page of 1,000 large values exceeds.
const MAX_RESPONSE_BYTES: usize = i32::MAX as usize;

/// An `etcd://` URL, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdUrl {
    /// The members' client URLs (`http://HOST:PORT`), in the order given.
    pub endpoints: Vec<String>,
    /// The key prefix (without the `/` the store puts after it).
    pub prefix: String,
    /// `max_txn_ops=N`: the cluster's `--max-txn-ops` (default [`DEFAULT_MAX_TXN_OPS`]).
    pub max_txn_ops: usize,
    /// `timeout_ms=N`: the most one request may take.
    pub timeout: Duration,
    /// `connect_timeout_ms=N`: the most opening a connection may take.
    pub connect_timeout: Duration,
    /// `leader_wait_ms=N`: how long to wait for a leader before answering `unavailable`.
    pub leader_wait: Duration,
}

impl EtcdUrl {
    /// Parses `etcd://HOST[:PORT][,HOST[:PORT]…]/PREFIX[?max_txn_ops=N&timeout_ms=N&…]`.
    pub fn parse(url: &str) -> Result<EtcdUrl, String> {
        let rest = url
            .split_once("://")
            .map(|(_, rest)| rest)
            .ok_or("write etcd://HOST:PORT[,HOST:PORT…]/PREFIX")?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (hosts, prefix) = rest
            .split_once('/')
            .ok_or("needs a key prefix after the hosts: etcd://HOST:PORT/PREFIX")?;
        if hosts.contains('@') {
            return Err(
                "etcd users and passwords are not supported yet: run the cluster on a trusted \
                 network"
                    .into(),
            );
        }
        let mut endpoints = Vec::new();
        for host in hosts.split(',') {
            if host.is_empty() {
                return Err("needs at least one HOST:PORT, and no empty one between commas".into());
            }
            if host.contains(['/', ' ']) {
                return Err(format!("{host:?} is not a HOST:PORT"));
            }
            let has_port = match host.rsplit_once(':') {
                // An IPv6 address in brackets, with or without a port.
                Some((head, port)) if !port.contains(']') => {
                    if port.parse::<u16>().is_err() || head.is_empty() {
                        return Err(format!("{host:?} is not a HOST:PORT"));
                    }
                    true
                }
                _ => false,
            };
            let port = if has_port { "" } else { ":2379" };
            endpoints.push(format!("http://{host}{port}"));
        }
        if prefix.is_empty()
            || prefix.starts_with('/')
            || prefix.ends_with('/')
            || !prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-./".contains(&b))
        {
            return Err(format!(
                "key prefix {prefix:?} must be non-empty ASCII letters, digits, '_', '-', '.' or \
                 '/', not starting or ending with '/' (the store's keys are PREFIX/…)"
            ));
        }
        let mut parsed = EtcdUrl {
            endpoints,
            prefix: prefix.to_string(),
            max_txn_ops: DEFAULT_MAX_TXN_OPS,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            leader_wait: DEFAULT_LEADER_WAIT,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let number = |low: u64, high: u64| {
                value
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (low..=high).contains(n))
                    .ok_or_else(|| {
                        format!("{name} {value:?} must be a whole number from {low} to {high}")
                    })
            };
            match name {
                "max_txn_ops" => parsed.max_txn_ops = number(1, 1_000_000)? as usize,
                "timeout_ms" => parsed.timeout = Duration::from_millis(number(1, 3_600_000)?),
                "connect_timeout_ms" => {
                    parsed.connect_timeout = Duration::from_millis(number(1, 600_000)?)
                }
                "leader_wait_ms" => parsed.leader_wait = Duration::from_millis(number(0, 600_000)?),
                _ => {
                    return Err(format!(
                        "unknown parameter {name:?}; known: max_txn_ops, timeout_ms, \
                         connect_timeout_ms, leader_wait_ms"
                    ));
                }
            }
        }
        Ok(parsed)
    }
}

impl fmt::Display for EtcdUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hosts: Vec<&str> = self
            .endpoints
            .iter()
            .map(|e| e.strip_prefix("http://").unwrap_or(e))
            .collect();
        write!(f, "etcd://{}/{}", hosts.join(","), self.prefix)
    }
}

/// A store in an etcd v3 cluster, awaited: its connections run on the runtime it was opened
/// on. `ds` runs it through [`crate::BlockOn`].
pub struct EtcdStore {
    /// One client per endpoint, in the URL's order.
    members: Vec<Member>,
    /// The member that answered last: requests start there.
    preferred: AtomicUsize,
    /// `PREFIX/`: every data key starts with it.
    data_prefix: Vec<u8>,
    /// The first key after the data range: `PREFIX0` (`'0'` follows `'/'`).
    data_end: Vec<u8>,
    max_txn_ops: usize,
    leader_wait: Duration,
}

struct Member {
    endpoint: String,
    kv: KvClient,
}

/// How a request to one member failed.
enum Failure {
    /// The member never saw it (the connection was refused, it has no leader, it is
    /// overloaded): another member may serve it.
    NotSent(String),
    /// It failed in flight (a reset, a timeout, a leader change): a read may run elsewhere;
    /// a commit may have been applied.
    InFlight(String),
    /// The revision a later part of a `get-many` was pinned to was compacted meanwhile.
    Compacted,
    /// The cluster answered with a refusal that another member would repeat.
    Refused(StoreError),
}

/// One request to the cluster: what [`EtcdStore::call`] sends to a member.
#[derive(Clone)]
enum Request {
    /// A range (`get` of one key or of a range).
    Range(Vec<u8>, Option<GetOptions>),
    /// A transaction.
    Txn(Txn),
}

/// A member's answer to a [`Request`] of the same kind.
enum Reply {
    Range(GetResponse),
    Txn(TxnResponse),
}

impl Request {
    async fn send(&self, mut kv: KvClient) -> Result<Reply, etcd_client::Error> {
        match self {
            Request::Range(key, options) => {
                kv.get(key.clone(), options.clone()).await.map(Reply::Range)
            }
            Request::Txn(txn) => kv.txn(txn.clone()).await.map(Reply::Txn),
        }
    }
}

impl Reply {
    fn range(self) -> Result<GetResponse, StoreError> {
        match self {
            Reply::Range(response) => Ok(response),
            Reply::Txn(_) => Err(StoreError::Internal(
                "etcd answered a range with a transaction".into(),
            )),
        }
    }

    fn txn(self) -> Result<TxnResponse, StoreError> {
        match self {
            Reply::Txn(response) => Ok(response),
            Reply::Range(_) => Err(StoreError::Internal(
                "etcd answered a transaction with a range".into(),
            )),
        }
    }
}

/// Whether a request may run again after it failed in flight.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Idempotent {
    Yes,
    No,
}

impl EtcdStore {
    /// Connects to the cluster at `url`, records the store format (or checks the one
    /// recorded). Must run inside a tokio runtime, which then drives the connections.
    pub async fn open(url: &EtcdUrl) -> Result<EtcdStore, StoreError> {
        let options = ConnectOptions::new()
            .with_timeout(url.timeout)
            .with_connect_timeout(url.connect_timeout)
            // A member without a leader refuses at once instead of queueing the request.
            .with_require_leader(true)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        let mut members = Vec::with_capacity(url.endpoints.len());
        for endpoint in &url.endpoints {
            let client = etcd_client::Client::connect([endpoint.as_str()], Some(options.clone()))
                .await
                .map_err(|err| {
                    StoreError::Unavailable(format!("etcd endpoint {endpoint}: {}", chain(&err)))
                })?;
            members.push(Member {
                endpoint: endpoint.clone(),
                kv: client
                    .kv_client()
                    .max_decoding_message_size(MAX_RESPONSE_BYTES),
            });
        }
        let mut data_prefix = url.prefix.clone().into_bytes();
        data_prefix.push(b'/');
        let mut data_end = url.prefix.clone().into_bytes();
        data_end.push(b'/' + 1);
        let store = EtcdStore {
            members,
            preferred: AtomicUsize::new(0),
            data_prefix,
            data_end,
            max_txn_ops: url.max_txn_ops,
            leader_wait: url.leader_wait,
        };
        store.check_format(&url.prefix).await?;
        Ok(store)
    }

    /// Records the format at `PREFIX:format` if no format is recorded, and refuses a store
    /// written by a newer ds.
    async fn check_format(&self, prefix: &str) -> Result<(), StoreError> {
        let key = format!("{prefix}:format").into_bytes();
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.clone(), FORMAT_VERSION.to_string(), None)])
            .or_else([TxnOp::get(key.clone(), None)]);
        // Recording the format is a put whose repetition is harmless: it only ever writes
        // the key when it is absent.
        let response = self.call(Idempotent::Yes, Request::Txn(txn)).await?.txn()?;
        if response.succeeded() {
            return Ok(());
        }
        let found = response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.value().to_vec()),
            _ => None,
        });
        let found = found
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| {
                StoreError::Unavailable(format!(
                    "etcd key {prefix}:format does not hold a ds store format: is the prefix \
                     {prefix:?} used by something else?"
                ))
            })?;
        if found > FORMAT_VERSION {
            return Err(StoreError::Unavailable(format!(
                "the store was written by a newer ds (store format {found}; this build reads \
                 format {FORMAT_VERSION}): upgrade ds to open it"
            )));
        }
        Ok(())
    }

    fn full_key(&self, key: &[u8]) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.data_prefix.len() + key.len());
        full.extend_from_slice(&self.data_prefix);
        full.extend_from_slice(key);
        full
    }

    fn entry(&self, kv: KeyValue) -> Entry {
        let version = kv.mod_revision() as u64;
        let (mut key, value) = kv.into_key_value();
        key.drain(..self.data_prefix.len().min(key.len()));
        Entry {
            key,
            value: Versioned { value, version },
        }
    }

    /// Runs `op` on a member: the preferred one first, then the others, in rounds until one
    /// serves it or `leader_wait` has passed.
    async fn call(&self, idempotent: Idempotent, request: Request) -> Result<Reply, StoreError> {
        self.call_pinned(idempotent, request)
            .await
            .map_err(|failure| match failure {
                Failure::Compacted => StoreError::Unavailable(
                    "etcd compacted the revision being read; retry the call".into(),
                ),
                Failure::Refused(err) => err,
                Failure::NotSent(msg) | Failure::InFlight(msg) => StoreError::Unavailable(msg),
            })
    }

    /// [`EtcdStore::call`], with a compacted revision reported as such.
    async fn call_pinned(
        &self,
        idempotent: Idempotent,
        request: Request,
    ) -> Result<Reply, Failure> {
        let give_up = Instant::now() + self.leader_wait;
        let mut pause = Duration::from_millis(25);
        loop {
            let first = self.preferred.load(Ordering::Relaxed);
            let mut reasons = Vec::new();
            for i in 0..self.members.len() {
                let index = (first + i) % self.members.len();
                let member = &self.members[index];
                match request.send(member.kv.clone()).await {
                    Ok(result) => {
                        if index != first {
                            self.preferred.store(index, Ordering::Relaxed);
                        }
                        return Ok(result);
                    }
                    Err(err) => match classify(&err) {
                        Failure::NotSent(reason) => {
                            reasons.push(format!("{}: {reason}", member.endpoint));
                        }
                        Failure::InFlight(reason) if idempotent == Idempotent::Yes => {
                            reasons.push(format!("{}: {reason}", member.endpoint));
                        }
                        Failure::InFlight(reason) => {
                            return Err(Failure::Refused(StoreError::Internal(format!(
                                "etcd ({}): the request failed after the commit was sent, so \
                                 whether it was applied is unknown: {reason}",
                                member.endpoint
                            ))));
                        }
                        other => return Err(other),
                    },
                }
            }
            let now = Instant::now();
            if now >= give_up {
                return Err(Failure::NotSent(format!(
                    "no etcd member could serve the request (waited {} ms for a leader): {}",
                    self.leader_wait.as_millis(),
                    reasons.join("; ")
                )));
            }
            tracing::debug!(target: "ds_store::etcd", "no member served; retrying: {}", reasons.join("; "));
            tokio::time::sleep(pause.min(give_up - now)).await;
            pause = (pause * 2).min(Duration::from_millis(400));
        }
    }

    async fn get_one(&self, key: Vec<u8>) -> Result<Option<Versioned>, StoreError> {
        let full = self.full_key(&key);
        let mut response = self
            .call(Idempotent::Yes, Request::Range(full, None))
            .await?
            .range()?;
        Ok(response.take_kvs().into_iter().next().map(|kv| Versioned {
            version: kv.mod_revision() as u64,
            value: kv.into_key_value().1,
        }))
    }

    async fn get_many_once(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Versioned>>, Failure> {
        let mut out = Vec::with_capacity(keys.len());
        let mut revision = 0;
        for part in keys.chunks(self.max_txn_ops) {
            let ops: Vec<TxnOp> = part
                .iter()
                .map(|key| {
                    let options = (revision > 0).then(|| GetOptions::new().with_revision(revision));
                    TxnOp::get(self.full_key(key), options)
                })
                .collect();
            let response = self
                .call_pinned(Idempotent::Yes, Request::Txn(Txn::new().and_then(ops)))
                .await?
                .txn()
                .map_err(Failure::Refused)?;
            if revision == 0 {
                revision = response.header().map_or(0, |h| h.revision());
            }
            for op in response.op_responses() {
                let TxnOpResponse::Get(mut get) = op else {
                    return Err(Failure::Refused(StoreError::Internal(
                        "etcd answered a range with another operation".into(),
                    )));
                };
                out.push(get.take_kvs().into_iter().next().map(|kv| Versioned {
                    version: kv.mod_revision() as u64,
                    value: kv.into_key_value().1,
                }));
            }
        }
        if out.len() != keys.len() {
            return Err(Failure::Refused(StoreError::Internal(format!(
                "etcd answered {} of {} reads",
                out.len(),
                keys.len()
            ))));
        }
        Ok(out)
    }

    async fn get_many_keys(
        &self,
        keys: Vec<Vec<u8>>,
    ) -> Result<Vec<Option<Versioned>>, StoreError> {
        match keys.len() {
            0 => return Ok(Vec::new()),
            1 => return Ok(vec![self.get_one(keys[0].clone()).await?]),
            _ => {}
        }
        // A later part reads at the first part's revision; if that was compacted between
        // the parts, read again from the start.
        for _ in 0..3 {
            match self.get_many_once(&keys).await {
                Err(Failure::Compacted) => continue,
                Err(Failure::Refused(err)) => return Err(err),
                Err(Failure::NotSent(msg) | Failure::InFlight(msg)) => {
                    return Err(StoreError::Unavailable(msg));
                }
                Ok(values) => return Ok(values),
            }
        }
        Err(StoreError::Unavailable(
            "etcd compacted the revision of a batched read three times in a row: compaction \
             retains too little history for this load"
                .into(),
        ))
    }

    async fn scan_range(
        &self,
        range: KeyRange,
        limit: u32,
        direction: Direction,
    ) -> Result<Vec<Entry>, StoreError> {
        let limit = limit.min(super::MAX_SCAN_LIMIT);
        // etcd reads `limit = 0` as "no limit".
        if limit == 0 || range.end.as_ref().is_some_and(|end| *end <= range.start) {
            return Ok(Vec::new());
        }
        let start = self.full_key(&range.start);
        let end = match &range.end {
            Some(end) => self.full_key(end),
            None => self.data_end.clone(),
        };
        let mut options = GetOptions::new()
            .with_range(end)
            .with_limit(i64::from(limit));
        if direction == Direction::Reverse {
            options = options.with_sort(SortTarget::Key, SortOrder::Descend);
        }
        let mut response = self
            .call(Idempotent::Yes, Request::Range(start, Some(options)))
            .await?
            .range()?;
        Ok(response
            .take_kvs()
            .into_iter()
            .map(|kv| self.entry(kv))
            .collect())
    }

    async fn commit_writes(
        &self,
        checks: Vec<Check>,
        writes: Vec<Write>,
    ) -> Result<u64, StoreError> {
        // The last write per key wins, as the contract says; etcd refuses a key twice.
        let mut last: BTreeMap<&[u8], Option<&[u8]>> = BTreeMap::new();
        for write in &writes {
            last.insert(&write.key, write.value.as_deref());
        }
        let limit = self.max_txn_ops;
        if checks.len() > limit || last.len() > limit {
            return Err(StoreError::InvalidRequest(format!(
                "the commit has {} checks and writes to {} keys; the etcd store allows {limit} \
                 of each (max_txn_ops in the store URL, which must not exceed the cluster's \
                 --max-txn-ops; etcd's default is {DEFAULT_MAX_TXN_OPS})",
                checks.len(),
                last.len()
            )));
        }
        let compares: Vec<Compare> = checks
            .iter()
            .map(|check| match check.version {
                // A version beyond i64 is no revision, so its check can never hold.
                Some(version) => Compare::mod_revision(
                    self.full_key(&check.key),
                    CompareOp::Equal,
                    i64::try_from(version).unwrap_or(-1),
                ),
                None => Compare::create_revision(self.full_key(&check.key), CompareOp::Equal, 0),
            })
            .collect();
        let success: Vec<TxnOp> = last
            .into_iter()
            .map(|(key, value)| match value {
                Some(value) => TxnOp::put(self.full_key(key), value, None),
                None => TxnOp::delete(self.full_key(key), None),
            })
            .collect();
        let failure: Vec<TxnOp> = checks
            .iter()
            .map(|check| {
                TxnOp::get(
                    self.full_key(&check.key),
                    Some(GetOptions::new().with_keys_only()),
                )
            })
            .collect();
        let txn = Txn::new().when(compares).and_then(success).or_else(failure);
        let response = self.call(Idempotent::No, Request::Txn(txn)).await?.txn()?;
        if response.succeeded() {
            return response
                .header()
                .map(|h| h.revision() as u64)
                .ok_or_else(|| StoreError::Internal("etcd answered without a header".into()));
        }
        let current = response.op_responses().into_iter().map(|op| match op {
            TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.mod_revision() as u64),
            _ => None,
        });
        let failing = checks
            .iter()
            .zip(current)
            .find(|(check, current)| check.version != *current)
            .map(|(check, _)| check.key.clone());
        // The failure branch reads at the revision the checks were evaluated at, so one of
        // them shows the failure; the first check is named if the answer were short.
        Err(StoreError::Conflict(
            failing.unwrap_or_else(|| checks[0].key.clone()),
        ))
    }
}

/// What a failed request means for the store, from etcd's error codes and messages.
fn classify(err: &etcd_client::Error) -> Failure {
    let text = chain(err);
    let status = match err {
        etcd_client::Error::GRpcStatus(status) => Some(status),
        _ => None,
    };
    let message = status.map_or(text.as_str(), |s| s.message());
    if message.contains("too many operations in txn request") {
        return Failure::Refused(StoreError::InvalidRequest(format!(
            "etcd refused the transaction ({message}): raise the cluster's --max-txn-ops and \
             the store URL's max_txn_ops"
        )));
    }
    if message.contains("request is too large") || message.contains("larger than max") {
        return Failure::Refused(StoreError::InvalidRequest(format!(
            "etcd refused the request as too large ({message}): raise the cluster's \
             --max-request-bytes (default 1.5 MiB)"
        )));
    }
    if message.contains("database space exceeded") {
        return Failure::Refused(StoreError::Unavailable(format!(
            "etcd's database is full ({message}): compact its history (etcdctl compact REV), \
             defragment every member (etcdctl defrag), then disarm the alarm (etcdctl alarm \
             disarm); raise --quota-backend-bytes or turn on --auto-compaction-retention so \
             that it does not fill again"
        )));
    }
    if message.contains("required revision has been compacted") {
        return Failure::Compacted;
    }
    if let Some(status) = status {
        use tonic::Code;
        match status.code() {
            Code::Unauthenticated | Code::PermissionDenied => {
                return Failure::Refused(StoreError::Unavailable(format!(
                    "etcd refused the client: {message}"
                )));
            }
            Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
                return Failure::Refused(StoreError::InvalidRequest(format!(
                    "etcd refused the request: {message}"
                )));
            }
            _ => {}
        }
    }
    // Refused before the server saw the request: no connection, no leader (the client asks
    // members to refuse then), too busy to take it.
    let not_sent = [
        "no leader",
        "error trying to connect",
        "tcp connect error",
        "Connection refused",
        "too many requests",
        "not capable",
    ];
    if not_sent.iter().any(|s| text.contains(s)) {
        return Failure::NotSent(describe(err));
    }
    Failure::InFlight(describe(err))
}

/// A failed request, in a few words: the gRPC status's message and its root cause (tonic's
/// own `Display` of a status carries the whole debug chain).
fn describe(err: &etcd_client::Error) -> String {
    let etcd_client::Error::GRpcStatus(status) = err else {
        return chain(err);
    };
    let mut text = status.message().to_string();
    let mut root = None;
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        root = Some(cause.to_string());
        source = cause.source();
    }
    if let Some(root) = root.filter(|root| !text.contains(root.as_str())) {
        text.push_str(": ");
        text.push_str(&root);
    }
    text
}

impl AsyncStore for EtcdStore {
    fn get(&self, key: Vec<u8>) -> BoxFuture<'_, Result<Option<Versioned>, StoreError>> {
        Box::pin(self.get_one(key))
    }

    fn get_many(
        &self,
        keys: Vec<Vec<u8>>,
    ) -> BoxFuture<'_, Result<Vec<Option<Versioned>>, StoreError>> {
        Box::pin(self.get_many_keys(keys))
    }

    fn scan(
        &self,
        range: KeyRange,
        limit: u32,
        direction: Direction,
    ) -> BoxFuture<'_, Result<Vec<Entry>, StoreError>> {
        Box::pin(self.scan_range(range, limit, direction))
    }

    fn commit(
        &self,
        checks: Vec<Check>,
        writes: Vec<Write>,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.commit_writes(checks, writes))
    }
}

/// Opens an etcd store whose connections run on `runtime`, from inside or outside a
/// runtime.
pub fn open_on(
    runtime: &tokio::runtime::Handle,
    url: &EtcdUrl,
) -> Result<Arc<EtcdStore>, StoreError> {
    let open = EtcdStore::open(url);
    crate::block_on::off_runtime(|| runtime.block_on(open)).map(Arc::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoints_prefix_and_options() {
        let url = EtcdUrl::parse("etcd://a:2379,b:3000,c/app/ds?max_txn_ops=1000&timeout_ms=250")
            .unwrap();
        assert_eq!(
            url.endpoints,
            ["http://a:2379", "http://b:3000", "http://c:2379"]
        );
        assert_eq!(url.prefix, "app/ds");
        assert_eq!(url.max_txn_ops, 1000);
        assert_eq!(url.timeout, Duration::from_millis(250));
        assert_eq!(url.leader_wait, DEFAULT_LEADER_WAIT);
        assert_eq!(url.to_string(), "etcd://a:2379,b:3000,c:2379/app/ds");
        let v6 = EtcdUrl::parse("etcd://[::1]:2379,[::1]/p").unwrap();
        assert_eq!(v6.endpoints, ["http://[::1]:2379", "http://[::1]:2379"]);
    }

    #[test]
    fn refuses_bad_urls_with_a_reason() {
        for (url, reason) in [
            ("etcd://a:2379", "key prefix after the hosts"),
            ("etcd://a:2379/", "must be non-empty"),
            ("etcd://a:2379//x", "not starting or ending"),
            ("etcd://a:2379/x/", "not starting or ending"),
            ("etcd://a:2379/x y", "must be non-empty"),
            ("etcd://a:2379,,b/x", "no empty one"),
            ("etcd:///x", "no empty one"),
            ("etcd://a:port/x", "not a HOST:PORT"),
            ("etcd://a:70000/x", "not a HOST:PORT"),
            ("etcd://u:p@a/x", "not supported"),
            ("etcd://a/x?max_txn_ops=0", "from 1 to"),
            ("etcd://a/x?timeout_ms=soon", "from 1 to"),
            ("etcd://a/x?bogus=1", "unknown parameter"),
            ("etcd:a/x", "etcd://HOST:PORT"),
        ] {
            let err = EtcdUrl::parse(url).unwrap_err();
            assert!(err.contains(reason), "{url}: {err}");
        }
    }
}
