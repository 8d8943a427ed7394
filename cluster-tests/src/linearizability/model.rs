//! The operations, their returns and the sequential model of one key ([`KeySpec`])
//! that the checker validates histories against.

use std::collections::BTreeMap;

use stateright::semantics::SequentialSpec;

use super::history::Event;

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
    pub(super) fn least(self) -> u64 {
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
    pub(super) fn written(value: &str, version: Version) -> State {
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
    /// history; [`check_key`](super::check_key) gives those a [`Ret::Unknown`] return
    /// instead, so this is the same "may or may not have taken effect" step.
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
