//! Recorded client histories and a real linearizability check.
//!
//! Clients run [`Op`]s (put, get, compare-and-set) against single-property metadata
//! objects of a live cluster and record, in real-time order, when each operation was
//! invoked and what it returned ([`History`]). [`check`] then verifies the history of
//! every key separately (linearizability is compositional): first a few necessary
//! conditions that name the offending operations (a read of a version must return the
//! value written with it; no operation sees a version older than one returned before it
//! began), then stateright's [`LinearizabilityTester`] against the sequential model
//! [`KeySpec`].
//!
//! Outcomes map to the history like this:
//! - a definite answer (2xx, 404 on a read, 412 on a CAS) is a return;
//! - a definite rejection that cannot have changed anything (other 4xx, or a connection
//!   that was never established) is returned as [`Ret::Rejected`], a no-op;
//! - a timeout, 5xx or a connection that broke after the request was sent leaves the
//!   operation invoked without a return: it may or may not have taken effect, and the
//!   model considers both. The client then continues under a fresh thread id, since a
//!   thread can have only one operation in flight.
//!
//! Versions are a global revision shared by all keys, so the model cannot predict their
//! values: it accepts any version greater than the key's current one and remembers it;
//! reads must then return exactly the current value and version.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};

/// The property every checked object holds (`/meta/{key}/v`).
pub const PROP: &str = "v";

/// An operation on one key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Unconditional write of a value.
    Put(String),
    /// Linearizable read.
    Get,
    /// Write that succeeds only if the key's version is `expected_version` (0: absent).
    Cas {
        expected_version: u64,
        value: String,
    },
}

/// What an operation returned.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Ret {
    PutOk {
        version: u64,
    },
    /// `value` is `None` (and `version` 0) when the key does not exist.
    GetOk {
        value: Option<String>,
        version: u64,
    },
    CasOk {
        version: u64,
    },
    CasFailed,
    /// Definitely not applied (a 4xx other than 404/412, or never sent).
    Rejected,
    /// Never answered: may or may not have taken effect. Only the checker uses this,
    /// as the return of such operations at the end of the history.
    Unknown,
}

/// The key's version as far as the model knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    Known(u64),
    /// After a write of unknown outcome was linearized: some version > the bound.
    Above(u64),
}

impl Version {
    /// Whether the actual version may be `v`.
    fn may_be(self, v: u64) -> bool {
        match self {
            Version::Known(k) => k == v,
            Version::Above(n) => v > n,
        }
    }

    /// Whether `v` may be the version written by the next successful write.
    fn may_follow(self, v: u64) -> bool {
        match self {
            Version::Known(k) => v > k,
            Version::Above(n) => v > n.saturating_add(1),
        }
    }

    /// The least version the key may have now.
    fn least(self) -> u64 {
        match self {
            Version::Known(k) => k,
            Version::Above(n) => n.saturating_add(1),
        }
    }
}

/// An operation as the tester sees it: with its position among the invocations of the
/// key's history, so that the model can order concurrent reads canonically.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Invocation {
    pub seq: u64,
    pub op: Op,
}

/// One possible state of a key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    pub value: Option<String>,
    pub version: Version,
}

impl State {
    fn written(value: &str, version: Version) -> State {
        State {
            value: Some(value.to_string()),
            version,
        }
    }

    /// The state after a completed operation, or `None` if `ret` is impossible here.
    fn step(&self, op: &Op, ret: &Ret) -> Option<State> {
        match (op, ret) {
            (_, Ret::Rejected) => Some(self.clone()),
            (Op::Put(v), Ret::PutOk { version }) => self
                .version
                .may_follow(*version)
                .then(|| State::written(v, Version::Known(*version))),
            (Op::Get, Ret::GetOk { value, version }) => {
                (*value == self.value && self.version.may_be(*version)).then(|| State {
                    value: value.clone(),
                    version: Version::Known(*version),
                })
            }
            (
                Op::Cas {
                    expected_version: e,
                    value,
                },
                Ret::CasOk { version },
            ) => (self.version.may_be(*e) && version > e)
                .then(|| State::written(value, Version::Known(*version))),
            (
                Op::Cas {
                    expected_version: e,
                    ..
                },
                Ret::CasFailed,
            ) => match self.version {
                Version::Known(k) => (k != *e).then(|| self.clone()),
                // Lenient: the version is unknown, so it may differ from `e`.
                Version::Above(_) => Some(self.clone()),
            },
            _ => None,
        }
    }

    /// The state if a write of unknown outcome took effect here (`None`: it cannot).
    fn applied(&self, op: &Op) -> Option<State> {
        match op {
            Op::Put(v) => Some(State::written(v, Version::Above(self.version.least()))),
            Op::Cas {
                expected_version: e,
                value,
            } => self
                .version
                .may_be(*e)
                .then(|| State::written(value, Version::Above(*e))),
            Op::Get => None,
        }
    }
}

/// Sequential model of one key. Operations that never returned make it
/// nondeterministic, so it holds every state the key may be in; an operation is a valid
/// step when it is valid in at least one of them.
///
/// Two refinements keep stateright's search (a depth-first search without memory)
/// small without changing its verdict:
/// - `remaining` holds, per version, how many completed operations must still be
///   linearized while the key has exactly that version (reads returning it, CAS
///   expecting it, the write producing it). Versions only grow, so a state that has
///   left such an operation behind can never lead to a valid order and is dropped.
/// - Operations that change nothing (reads, failed CAS) between two writes commute, and
///   an operation invoked earlier can always be ordered before one invoked later; so
///   within such a run they are accepted only in invocation order (`last_read`), which
///   removes the permutations of concurrent reads from the search.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeySpec {
    pub states: Vec<State>,
    remaining: BTreeMap<u64, u32>,
    /// `seq` of the last read-only operation since the last write.
    last_read: Option<u64>,
}

impl Default for KeySpec {
    fn default() -> Self {
        KeySpec::new(BTreeMap::new())
    }
}

impl KeySpec {
    /// An absent key; `required` as described on the type (empty: no pruning).
    pub fn new(required: BTreeMap<u64, u32>) -> KeySpec {
        KeySpec {
            states: vec![State {
                value: None,
                version: Version::Known(0),
            }],
            remaining: required,
            last_read: None,
        }
    }

    /// The versions at which the completed operations of `events` must be linearized
    /// (all events of one key).
    pub fn required(events: &[Event]) -> BTreeMap<u64, u32> {
        let mut in_flight: BTreeMap<u64, &Op> = BTreeMap::new();
        let mut out: BTreeMap<u64, u32> = BTreeMap::new();
        for e in events {
            match e {
                Event::Invoke { thread, op, .. } => {
                    in_flight.insert(*thread, op);
                }
                Event::Return { thread, ret, .. } => {
                    let op = in_flight.remove(thread);
                    for v in observed(op, ret) {
                        *out.entry(v).or_default() += 1;
                    }
                }
            }
        }
        out
    }

    fn consume(&mut self, version: u64) {
        if let Some(n) = self.remaining.get_mut(&version) {
            *n -= 1;
            if *n == 0 {
                self.remaining.remove(&version);
            }
        }
    }

    /// Keeps the states that have left no required operation behind, once each.
    fn settle(&mut self, states: Vec<State>) -> bool {
        let floor = self.remaining.keys().next().copied();
        self.states.clear();
        for s in states {
            let behind = floor.is_some_and(|f| f < s.version.least());
            if !behind && !self.states.contains(&s) {
                self.states.push(s);
            }
        }
        !self.states.is_empty()
    }

    /// Accepts a read-only operation only in invocation order within a run.
    fn read_in_order(&mut self, seq: u64) -> bool {
        let ok = self.last_read.is_none_or(|last| seq > last);
        self.last_read = Some(seq);
        ok
    }

    /// Every state, plus every state where the write `op` of unknown outcome took effect.
    fn maybe_applied(&self, op: &Op) -> Vec<State> {
        let applied = self.states.iter().filter_map(|s| s.applied(op));
        self.states.iter().cloned().chain(applied).collect()
    }
}

/// The versions a completed operation pins (see [`KeySpec`]).
fn observed(op: Option<&Op>, ret: &Ret) -> Vec<u64> {
    match (op, ret) {
        (Some(Op::Put(_)), Ret::PutOk { version }) => vec![*version],
        (Some(Op::Get), Ret::GetOk { version, .. }) => vec![*version],
        (
            Some(Op::Cas {
                expected_version, ..
            }),
            Ret::CasOk { version },
        ) => vec![*expected_version, *version],
        _ => Vec::new(),
    }
}

impl SequentialSpec for KeySpec {
    type Op = Invocation;
    type Ret = Ret;

    /// The tester calls this only for operations still in flight at the end of the
    /// history; [`check_key`] gives those a [`Ret::Unknown`] return instead, so this is
    /// the same "may or may not have taken effect" step.
    fn invoke(&mut self, inv: &Invocation) -> Ret {
        self.is_valid_step(inv, &Ret::Unknown);
        Ret::Unknown
    }

    fn is_valid_step(&mut self, inv: &Invocation, ret: &Ret) -> bool {
        let next = match ret {
            Ret::Unknown => {
                self.last_read = None;
                self.maybe_applied(&inv.op)
            }
            Ret::GetOk { .. } | Ret::CasFailed | Ret::Rejected => {
                if !self.read_in_order(inv.seq) {
                    return false;
                }
                self.states
                    .iter()
                    .filter_map(|s| s.step(&inv.op, ret))
                    .collect()
            }
            Ret::PutOk { .. } | Ret::CasOk { .. } => {
                self.last_read = None;
                self.states
                    .iter()
                    .filter_map(|s| s.step(&inv.op, ret))
                    .collect()
            }
        };
        for v in observed(Some(&inv.op), ret) {
            self.consume(v);
        }
        self.settle(next)
    }
}

/// One recorded event, in real-time order.
#[derive(Clone, Debug)]
pub enum Event {
    Invoke { thread: u64, key: String, op: Op },
    Return { thread: u64, key: String, ret: Ret },
}

/// A concurrent history, appended to by many clients.
#[derive(Debug, Default)]
pub struct History {
    events: Mutex<Vec<Event>>,
    next_thread: AtomicU64,
}

impl History {
    pub fn new() -> History {
        History::default()
    }

    /// A fresh tester thread id.
    pub fn new_thread(&self) -> u64 {
        self.next_thread.fetch_add(1, Ordering::Relaxed)
    }

    fn push(&self, e: Event) {
        self.events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(e);
    }

    /// Records that `thread` invoked `op` on `key` (call before sending the request).
    pub fn invoke(&self, thread: u64, key: &str, op: Op) {
        self.push(Event::Invoke {
            thread,
            key: key.to_string(),
            op,
        });
    }

    /// Records that `thread`'s operation on `key` returned (call after the answer).
    pub fn ret(&self, thread: u64, key: &str, ret: Ret) {
        self.push(Event::Return {
            thread,
            key: key.to_string(),
            ret,
        });
    }

    /// A copy of the events recorded so far.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// The outcome of one HTTP operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A definite answer.
    Done(Ret),
    /// May or may not have taken effect; the reason, for logs.
    Unknown(String),
}

/// An HTTP client suited to histories: no pooled connections (so a failed connect
/// always means "never sent") and a bounded wait per request.
pub fn http_client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .pool_max_idle_per_host(0)
        .build()
}

fn etag_version(resp: &reqwest::Response) -> Option<u64> {
    let tag = resp.headers().get(reqwest::header::ETAG)?.to_str().ok()?;
    tag.trim_start_matches("W/").trim_matches('"').parse().ok()
}

fn transport_error(e: reqwest::Error) -> Outcome {
    if e.is_connect() {
        Outcome::Done(Ret::Rejected)
    } else {
        Outcome::Unknown(e.to_string())
    }
}

/// Classifies a non-success status: 5xx unknown, other statuses a no-op rejection.
fn failed(status: StatusCode) -> Outcome {
    if status.is_server_error() {
        Outcome::Unknown(format!("HTTP {status}"))
    } else {
        Outcome::Done(Ret::Rejected)
    }
}

/// Runs `op` on `key` at the node whose API address is `api`.
pub async fn execute(http: &reqwest::Client, api: &str, key: &str, op: &Op) -> Outcome {
    let url = format!("http://{api}/meta/{key}/{PROP}");
    match op {
        Op::Get => get(http, &format!("{url}?consistency=linearizable")).await,
        Op::Put(v) => match http.put(&url).body(v.clone()).send().await {
            Ok(r) if r.status().is_success() => written(&r, |version| Ret::PutOk { version }),
            Ok(r) => failed(r.status()),
            Err(e) => transport_error(e),
        },
        Op::Cas {
            expected_version,
            value,
        } => {
            let req = http
                .put(&url)
                .header(reqwest::header::IF_MATCH, format!("\"{expected_version}\""))
                .body(value.clone());
            match req.send().await {
                Ok(r) if r.status().is_success() => written(&r, |version| Ret::CasOk { version }),
                Ok(r) if r.status() == StatusCode::PRECONDITION_FAILED => {
                    Outcome::Done(Ret::CasFailed)
                }
                Ok(r) => failed(r.status()),
                Err(e) => transport_error(e),
            }
        }
    }
}

fn written(resp: &reqwest::Response, ret: impl FnOnce(u64) -> Ret) -> Outcome {
    match etag_version(resp) {
        Some(v) => Outcome::Done(ret(v)),
        None => Outcome::Unknown("write acknowledged without an ETag".into()),
    }
}

async fn get(http: &reqwest::Client, url: &str) -> Outcome {
    let resp = match http.get(url).send().await {
        Ok(r) => r,
        Err(e) => return transport_error(e),
    };
    let status = resp.status();
    if status == StatusCode::NOT_FOUND {
        return Outcome::Done(Ret::GetOk {
            value: None,
            version: 0,
        });
    }
    if !status.is_success() {
        return failed(status);
    }
    let Some(version) = etag_version(&resp) else {
        return Outcome::Unknown("read answered without an ETag".into());
    };
    match resp.text().await {
        Ok(value) => Outcome::Done(Ret::GetOk {
            value: Some(value),
            version,
        }),
        Err(e) => Outcome::Unknown(format!("reading the body: {e}")),
    }
}

/// One logical client: records its operations in a shared history and moves to a fresh
/// thread id after an operation of unknown outcome.
pub struct Client<'h> {
    history: &'h History,
    thread: u64,
}

impl<'h> Client<'h> {
    pub fn new(history: &'h History) -> Client<'h> {
        Client {
            thread: history.new_thread(),
            history,
        }
    }

    /// Runs and records `op`; returns the outcome.
    pub async fn run(&mut self, http: &reqwest::Client, api: &str, key: &str, op: Op) -> Outcome {
        self.history.invoke(self.thread, key, op.clone());
        let out = execute(http, api, key, &op).await;
        match &out {
            Outcome::Done(ret) => self.history.ret(self.thread, key, ret.clone()),
            Outcome::Unknown(_) => self.thread = self.history.new_thread(),
        }
        out
    }
}

/// The outcome of checking one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// Not linearizable; why, naming the operations where a quick check found it.
    NotLinearizable(String),
    /// The search did not finish within its time budget.
    Undecided(String),
}

/// What the check found for one key.
#[derive(Clone, Debug)]
pub struct KeyReport {
    pub key: String,
    /// Operations invoked (including rejected and unknown ones).
    pub invoked: usize,
    /// Operations left without a return.
    pub unknown: usize,
    pub verdict: Verdict,
}

impl KeyReport {
    pub fn linearizable(&self) -> bool {
        self.verdict == Verdict::Linearizable
    }
}

/// Splits a history by key, preserving order.
fn by_key(events: &[Event]) -> BTreeMap<String, Vec<Event>> {
    let mut out: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    for e in events {
        let key = match e {
            Event::Invoke { key, .. } | Event::Return { key, .. } => key,
        };
        out.entry(key.clone()).or_default().push(e.clone());
    }
    out
}

/// The events of one key as the tester gets them:
/// - operations that were rejected (no effect, no information) and reads that never
///   returned are left out;
/// - a write that never returned moves to a thread of its own (numbered from
///   `u64::MAX` down, so the search tries it after every real thread) and returns
///   [`Ret::Unknown`] after everything else, so that the model can validate it;
/// - the other operations are packed onto as few threads as possible (an operation
///   takes the lowest thread with nothing in flight). Operations on one thread follow
///   each other in real time, so this keeps every ordering constraint while making
///   the tester's bookkeeping, copied at every step of its search, much smaller.
fn relevant(events: &[Event]) -> Vec<Event> {
    pack(&unknown_last(events))
}

/// Renumbers the threads of `events` (see [`relevant`]); lone threads keep their ids.
fn pack(events: &[Event]) -> Vec<Event> {
    let mut busy: Vec<bool> = Vec::new();
    let mut track_of: BTreeMap<u64, usize> = BTreeMap::new();
    let lone = |t: u64| t > u64::MAX / 2;
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        let mut e = e.clone();
        match &mut e {
            Event::Invoke { thread, .. } if !lone(*thread) => {
                let track = busy.iter().position(|b| !b).unwrap_or(busy.len());
                if track == busy.len() {
                    busy.push(false);
                }
                busy[track] = true;
                track_of.insert(*thread, track);
                *thread = track as u64;
            }
            Event::Return { thread, .. } if !lone(*thread) => {
                // A return without an invoke keeps an id no track uses: the tester
                // then reports the malformed history.
                let track = track_of.remove(thread);
                *thread = track.map_or(u64::MAX / 2, |t| {
                    busy[t] = false;
                    t as u64
                });
            }
            _ => {}
        }
        out.push(e);
    }
    out
}

/// Leaves out rejected operations and unanswered reads and moves unanswered writes to
/// lone threads that return at the end (see [`relevant`]).
fn unknown_last(events: &[Event]) -> Vec<Event> {
    let mut keep = vec![true; events.len()];
    let mut in_flight: BTreeMap<u64, usize> = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        match e {
            Event::Invoke { thread, .. } => {
                in_flight.insert(*thread, i);
            }
            Event::Return { thread, ret, .. } => {
                let invoked = in_flight.remove(thread);
                if let (Ret::Rejected, Some(j)) = (ret, invoked) {
                    keep[i] = false;
                    keep[j] = false;
                }
            }
        }
    }
    let mut out: Vec<Event> = Vec::with_capacity(events.len());
    let mut unknown = Vec::new();
    let mut lone = u64::MAX;
    let open: BTreeMap<usize, u64> = in_flight.into_iter().map(|(t, i)| (i, t)).collect();
    for (i, e) in events.iter().enumerate() {
        match (e, open.contains_key(&i)) {
            (Event::Invoke { op: Op::Get, .. }, true) => {}
            (Event::Invoke { key, op, .. }, true) => {
                out.push(Event::Invoke {
                    thread: lone,
                    key: key.clone(),
                    op: op.clone(),
                });
                unknown.push(Event::Return {
                    thread: lone,
                    key: key.clone(),
                    ret: Ret::Unknown,
                });
                lone -= 1;
            }
            _ if keep[i] => out.push(e.clone()),
            _ => {}
        }
    }
    out.extend(unknown);
    out
}

/// The highest version returned so far and the index of the operation that returned it.
type Floor = Option<(u64, usize)>;

/// One completed operation, for [`quick_violation`].
struct Done<'e> {
    op: &'e Op,
    ret: &'e Ret,
    /// Highest version returned by an operation that completed before this one began.
    floor: Floor,
    /// Position of the invocation, for messages.
    at: usize,
}

impl Done<'_> {
    /// The version before and after the operation, as far as its answer tells.
    fn versions(&self) -> (Option<u64>, Option<u64>) {
        match (self.op, self.ret) {
            (_, Ret::GetOk { version, .. }) => (Some(*version), Some(*version)),
            (_, Ret::PutOk { version }) => (None, Some(*version)),
            (
                Op::Cas {
                    expected_version, ..
                },
                Ret::CasOk { version },
            ) => (Some(*expected_version), Some(*version)),
            _ => (None, None),
        }
    }

    fn describe(&self) -> String {
        format!("{:?} -> {:?} (invocation #{})", self.op, self.ret, self.at)
    }
}

/// The completed operations of `events` (one key), each with its real-time floor.
fn completed(events: &[Event]) -> Vec<Done<'_>> {
    let mut open: BTreeMap<u64, (usize, &Op, Floor)> = BTreeMap::new();
    let mut floor: Floor = None;
    let mut out = Vec::new();
    let mut invocations = 0;
    for e in events {
        match e {
            Event::Invoke { thread, op, .. } => {
                invocations += 1;
                open.insert(*thread, (invocations, op, floor));
            }
            Event::Return { thread, ret, .. } => {
                let Some((at, op, f)) = open.remove(thread) else {
                    continue;
                };
                let done = Done {
                    op,
                    ret,
                    floor: f,
                    at,
                };
                if let (_, Some(post)) = done.versions() {
                    if floor.is_none_or(|(v, _)| post > v) {
                        floor = Some((post, out.len()));
                    }
                }
                out.push(done);
            }
        }
    }
    out
}

/// Necessary conditions of linearizability that can be checked directly, naming the
/// operations that break them: one write per version, a read of a version returns
/// the value written with it, and an operation never sees a version older than one
/// returned by an operation that completed before it began. Finds the common anomalies
/// (stale or torn reads, lost writes) without a search.
fn quick_violation(events: &[Event]) -> Option<String> {
    let done = completed(events);
    let mut writes: BTreeMap<u64, (&str, usize)> = BTreeMap::new();
    for (i, d) in done.iter().enumerate() {
        let value = match (d.op, d.ret) {
            (Op::Put(v), Ret::PutOk { .. }) | (Op::Cas { value: v, .. }, Ret::CasOk { .. }) => v,
            _ => continue,
        };
        if let (_, Some(version)) = d.versions() {
            if let Some((_, j)) = writes.insert(version, (value, i)) {
                return Some(format!(
                    "two writes returned version {version}: {} and {}",
                    done[j].describe(),
                    d.describe()
                ));
            }
        }
    }
    for d in &done {
        if let Ret::GetOk {
            value: Some(value),
            version,
        } = d.ret
        {
            if let Some((written, j)) = writes.get(version) {
                if written != value {
                    return Some(format!(
                        "{} read a value that version {version} does not hold; that version was written by {}",
                        d.describe(),
                        done[*j].describe()
                    ));
                }
            }
        }
        if let (Some((floor, j)), (pre, Some(post))) = (d.floor, d.versions()) {
            let is_write = !matches!(d.ret, Ret::GetOk { .. });
            let seen = pre.unwrap_or(post);
            if seen < floor || (is_write && post <= floor) {
                return Some(format!(
                    "{} saw an older version than {}, which completed before it began",
                    d.describe(),
                    done[j].describe()
                ));
            }
        }
    }
    None
}

/// Checks the history of one key. `Err` when the history itself is malformed.
pub fn check_key(key: &str, events: &[Event]) -> Result<KeyReport, String> {
    let mut report = check_summary(key, events);
    let events = relevant(events);
    let spec = KeySpec::new(KeySpec::required(&events));
    let mut tester = LinearizabilityTester::<u64, KeySpec>::new(spec);
    let mut seq = 0;
    for e in &events {
        match e {
            Event::Invoke { thread, op, .. } => {
                seq += 1;
                let op = op.clone();
                tester.on_invoke(*thread, Invocation { seq, op })?;
            }
            Event::Return { thread, ret, .. } => {
                tester.on_return(*thread, ret.clone())?;
            }
        }
    }
    report.verdict = if let Some(why) = quick_violation(&events) {
        Verdict::NotLinearizable(why)
    } else if tester.is_consistent() {
        Verdict::Linearizable
    } else {
        Verdict::NotLinearizable("no valid order of the operations exists".into())
    };
    Ok(report)
}

/// Checks every key of `events`, each on its own thread, waiting at most `budget` in
/// total; a key whose search does not finish in time is [`Verdict::Undecided`]. `Err`
/// when the history is malformed.
pub fn check(events: &[Event], budget: Duration) -> Result<Vec<KeyReport>, String> {
    let (tx, rx) = mpsc::channel();
    let keys = by_key(events);
    for (key, evs) in keys.clone() {
        let tx = tx.clone();
        std::thread::Builder::new()
            .name(format!("lin-check-{key}"))
            .stack_size(256 << 20)
            .spawn(move || {
                let _ = tx.send(check_key(&key, &evs));
            })
            .map_err(|e| format!("spawning a checker thread: {e}"))?;
    }
    drop(tx);
    let deadline = std::time::Instant::now() + budget;
    let mut reports = Vec::new();
    while reports.len() < keys.len() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(r) => reports.push(r?),
            Err(_) => break,
        }
    }
    for (key, evs) in &keys {
        if !reports.iter().any(|r| &r.key == key) {
            let mut r = check_summary(key, evs);
            r.verdict = Verdict::Undecided(format!("search did not finish within {budget:?}"));
            reports.push(r);
        }
    }
    reports.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(reports)
}

/// A report with the counts of `events` and no verdict yet.
fn check_summary(key: &str, events: &[Event]) -> KeyReport {
    let invoked = events
        .iter()
        .filter(|e| matches!(e, Event::Invoke { .. }))
        .count();
    KeyReport {
        key: key.to_string(),
        invoked,
        unknown: invoked.saturating_sub(events.len() - invoked),
        verdict: Verdict::Undecided(String::new()),
    }
}

/// The events of `key`, one per line, for a failure message.
pub fn describe(events: &[Event], key: &str) -> String {
    by_key(events)
        .get(key)
        .map(|evs| {
            evs.iter()
                .map(|e| format!("{e:?}"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: &str = "k";

    fn put(h: &History, t: u64, v: &str) {
        h.invoke(t, K, Op::Put(v.into()));
    }

    fn get_ok(v: Option<&str>, version: u64) -> Ret {
        Ret::GetOk {
            value: v.map(str::to_string),
            version,
        }
    }

    fn verdict(h: &History) -> bool {
        let reports = check(&h.events(), Duration::from_secs(30)).unwrap();
        assert_eq!(reports.len(), 1);
        reports[0].linearizable()
    }

    #[test]
    fn concurrent_writes_and_reads_are_linearizable() {
        let h = History::new();
        h.invoke(0, K, Op::Get);
        h.ret(0, K, get_ok(None, 0));
        put(&h, 1, "a");
        put(&h, 2, "b");
        h.invoke(0, K, Op::Get);
        h.ret(2, K, Ret::PutOk { version: 7 });
        h.ret(0, K, get_ok(Some("b"), 7));
        h.ret(1, K, Ret::PutOk { version: 12 });
        h.invoke(0, K, Op::Get);
        h.ret(0, K, get_ok(Some("a"), 12));
        h.invoke(
            2,
            K,
            Op::Cas {
                expected_version: 7,
                value: "c".into(),
            },
        );
        h.ret(2, K, Ret::CasFailed);
        h.invoke(
            2,
            K,
            Op::Cas {
                expected_version: 12,
                value: "c".into(),
            },
        );
        h.ret(2, K, Ret::CasOk { version: 13 });
        h.invoke(1, K, Op::Get);
        h.ret(1, K, get_ok(Some("c"), 13));
        assert!(verdict(&h));
    }

    #[test]
    fn stale_read_after_completed_write_is_caught() {
        let h = History::new();
        put(&h, 0, "a");
        h.ret(0, K, Ret::PutOk { version: 3 });
        put(&h, 0, "b");
        h.ret(0, K, Ret::PutOk { version: 5 });
        h.invoke(1, K, Op::Get);
        h.ret(1, K, get_ok(Some("a"), 3));
        assert!(!verdict(&h));
    }

    #[test]
    fn versions_must_increase_and_cas_must_match() {
        let h = History::new();
        put(&h, 0, "a");
        h.ret(0, K, Ret::PutOk { version: 5 });
        put(&h, 0, "b");
        h.ret(0, K, Ret::PutOk { version: 4 });
        assert!(!verdict(&h), "a later write cannot have a smaller version");

        let h = History::new();
        put(&h, 0, "a");
        h.ret(0, K, Ret::PutOk { version: 5 });
        h.invoke(
            1,
            K,
            Op::Cas {
                expected_version: 5,
                value: "x".into(),
            },
        );
        h.ret(1, K, Ret::CasFailed);
        assert!(!verdict(&h), "a CAS on the current version cannot fail");
    }

    fn reason(h: &History) -> String {
        match &check(&h.events(), Duration::from_secs(30)).unwrap()[0].verdict {
            Verdict::NotLinearizable(why) => why.clone(),
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    #[test]
    fn torn_read_is_named_without_a_search() {
        let h = History::new();
        put(&h, 0, "a");
        h.ret(0, K, Ret::PutOk { version: 3 });
        put(&h, 1, "b");
        h.invoke(0, K, Op::Get);
        h.ret(0, K, get_ok(Some("b"), 3)); // new value, old version
        h.ret(1, K, Ret::PutOk { version: 4 });
        assert!(reason(&h).contains("does not hold"), "{}", reason(&h));
    }

    #[test]
    fn search_finds_what_quick_checks_miss() {
        // No version goes backwards, but the CAS failed although nothing else ran.
        let h = History::new();
        put(&h, 0, "a");
        h.ret(0, K, Ret::PutOk { version: 5 });
        h.invoke(
            1,
            K,
            Op::Cas {
                expected_version: 5,
                value: "x".into(),
            },
        );
        h.ret(1, K, Ret::CasFailed);
        assert_eq!(reason(&h), "no valid order of the operations exists");
    }

    #[test]
    fn unknown_write_may_or_may_not_have_happened() {
        // The timed-out write of "x" is observed later: fine.
        let h = History::new();
        put(&h, 0, "a");
        h.ret(0, K, Ret::PutOk { version: 2 });
        put(&h, 1, "x"); // never returns
        h.invoke(2, K, Op::Get);
        h.ret(2, K, get_ok(Some("x"), 9));
        h.invoke(2, K, Op::Get);
        h.ret(2, K, get_ok(Some("x"), 9));
        assert!(verdict(&h));

        // Never observed: also fine.
        let h = History::new();
        put(&h, 0, "a");
        h.ret(0, K, Ret::PutOk { version: 2 });
        put(&h, 1, "x");
        h.invoke(2, K, Op::Get);
        h.ret(2, K, get_ok(Some("a"), 2));
        assert!(verdict(&h));

        // Observed, then un-observed without another write: a violation.
        let h = History::new();
        put(&h, 0, "a");
        h.ret(0, K, Ret::PutOk { version: 2 });
        put(&h, 1, "x");
        h.invoke(2, K, Op::Get);
        h.ret(2, K, get_ok(Some("x"), 9));
        h.invoke(2, K, Op::Get);
        h.ret(2, K, get_ok(Some("a"), 2));
        assert!(!verdict(&h));
    }

    #[test]
    fn rejected_operations_change_nothing() {
        let h = History::new();
        put(&h, 0, "a");
        h.ret(0, K, Ret::Rejected);
        h.invoke(1, K, Op::Get);
        h.ret(1, K, get_ok(None, 0));
        assert!(verdict(&h));
    }

    #[test]
    fn keys_are_checked_separately() {
        let h = History::new();
        h.invoke(0, "a", Op::Put("1".into()));
        h.ret(0, "a", Ret::PutOk { version: 1 });
        h.invoke(0, "b", Op::Get);
        h.ret(0, "b", get_ok(Some("1"), 1));
        let reports = check(&h.events(), Duration::from_secs(30)).unwrap();
        let ok: Vec<_> = reports
            .iter()
            .map(|r| (r.key.as_str(), r.linearizable()))
            .collect();
        assert_eq!(ok, vec![("a", true), ("b", false)]);
    }

    /// An operation invoked in the simulation, and its result once it took effect.
    type Pending = (Op, Option<Ret>);

    /// A random linearizable history: `threads` clients whose operations take effect at
    /// a random moment between invocation and return; some never return.
    fn simulated(seed: u64, threads: u64, ops: usize) -> (History, State) {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let h = History::new();
        let mut truth = State {
            value: None,
            version: Version::Known(0),
        };
        let mut revision = 0;
        // Per client: its tester thread and its pending operation (with its result once
        // it has taken effect).
        let mut pending: Vec<(u64, Option<Pending>)> =
            (0..threads).map(|_| (h.new_thread(), None)).collect();
        let mut invoked = 0;
        while invoked < ops || pending.iter().any(|p| p.1.is_some()) {
            let (thread, slot) = &mut pending[rng.random_range(0..threads as usize)];
            match slot.take() {
                None if invoked < ops => {
                    invoked += 1;
                    let op = match rng.random_range(0..4) {
                        0 => Op::Put(format!("v{invoked}")),
                        1 => Op::Cas {
                            expected_version: truth.version.least(),
                            value: format!("v{invoked}"),
                        },
                        _ => Op::Get,
                    };
                    h.invoke(*thread, K, op.clone());
                    *slot = Some((op, None));
                }
                None => {}
                Some((op, None)) => {
                    revision += rng.random_range(1..4);
                    let ret = apply(&mut truth, &op, revision);
                    *slot = Some((op, Some(ret)));
                }
                Some((_, Some(ret))) => {
                    if rng.random_range(0..20) == 0 {
                        *thread = h.new_thread(); // outcome unknown to the client
                    } else {
                        h.ret(*thread, K, ret);
                    }
                }
            }
        }
        (h, truth)
    }

    /// Applies `op` to the true state of the simulation.
    fn apply(truth: &mut State, op: &Op, revision: u64) -> Ret {
        let current = truth.version.least();
        match op {
            Op::Get => get_ok(truth.value.as_deref(), current),
            Op::Put(v) => {
                *truth = State::written(v, Version::Known(revision));
                Ret::PutOk { version: revision }
            }
            Op::Cas {
                expected_version,
                value,
            } if *expected_version == current => {
                *truth = State::written(value, Version::Known(revision));
                Ret::CasOk { version: revision }
            }
            Op::Cas { .. } => Ret::CasFailed,
        }
    }

    #[test]
    fn random_linearizable_histories_pass_and_stale_reads_fail() {
        for seed in 0..10 {
            let (h, truth) = simulated(seed, 6, 200);
            assert!(
                verdict(&h),
                "seed {seed}: a linearizable history was rejected"
            );
            // A read after everything finished that returns the first written value.
            let first = h.events().into_iter().find_map(|e| match e {
                Event::Return {
                    ret: Ret::PutOk { version },
                    thread,
                    ..
                } => Some((thread, version)),
                _ => None,
            });
            let Some((_, version)) = first else { continue };
            if truth.version == Version::Known(version) {
                continue;
            }
            let t = h.new_thread();
            h.invoke(t, K, Op::Get);
            h.ret(t, K, get_ok(truth.value.as_deref(), version));
            assert!(!verdict(&h), "seed {seed}: a stale read was accepted");
        }
    }

    #[test]
    fn malformed_history_is_an_error() {
        let h = History::new();
        h.ret(0, K, Ret::CasFailed);
        assert!(check(&h.events(), Duration::from_secs(30)).is_err());
    }
}
