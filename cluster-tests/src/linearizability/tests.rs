//! Unit tests of the checker: hand-written and randomly simulated histories.

use std::time::Duration;

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

/// A history too long for the search gets the quick checks only: a clean one passes
/// as such (and is not called linearizable), a stale read at its very end still fails.
#[test]
fn long_histories_get_the_quick_checks() {
    let h = History::new();
    let writes = SEARCH_MAX_EVENTS as u64 / 2 + 1;
    for v in 1..=writes {
        put(&h, 0, &format!("v{v}"));
        h.ret(0, K, Ret::PutOk { version: v });
    }
    let report = &check(&h.events(), Duration::from_secs(30)).unwrap()[0];
    assert!(
        report.passed() && !report.linearizable(),
        "{:?}",
        report.verdict
    );
    assert!(matches!(report.verdict, Verdict::QuickChecksOnly(_)));
    h.invoke(1, K, Op::Get);
    h.ret(1, K, get_ok(Some("v1"), 1));
    let report = &check(&h.events(), Duration::from_secs(30)).unwrap()[0];
    assert!(!report.passed(), "{:?}", report.verdict);
}
