//! The check of a recorded history: per key, quick necessary conditions, then
//! stateright's linearizability search ([`check`], [`check_key`]).

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Duration;

use stateright::semantics::{ConsistencyTester, LinearizabilityTester};

use super::history::Event;
use super::model::{Invocation, KeySpec, Op, Ret};

/// The outcome of checking one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// Not linearizable; why, naming the operations where a quick check found it.
    NotLinearizable(String),
    /// The search did not finish within its time budget.
    Undecided(String),
    /// The history is too long for the search ([`SEARCH_MAX_EVENTS`]): only the quick
    /// necessary conditions were checked, and they hold.
    QuickChecksOnly(String),
}

/// Longest history of one key (events, after rejected operations are left out) that
/// goes to the search; the search's memory grows too fast beyond it.
pub const SEARCH_MAX_EVENTS: usize = 6000;

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

    /// Linearizable, or too long for the search with every quick check passed.
    pub fn passed(&self) -> bool {
        matches!(
            self.verdict,
            Verdict::Linearizable | Verdict::QuickChecksOnly(_)
        )
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
    if let Some(why) = quick_violation(&events) {
        report.verdict = Verdict::NotLinearizable(why);
        return Ok(report);
    }
    if events.len() > SEARCH_MAX_EVENTS {
        let n = events.len();
        report.verdict = Verdict::QuickChecksOnly(format!(
            "{n} events, over the search's {SEARCH_MAX_EVENTS}; the quick checks pass"
        ));
        return Ok(report);
    }
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
    report.verdict = if tester.is_consistent() {
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
