//! A snapshot export is the state as of `Store::begin_export`, however many applies
//! run while it is written: overwrites, deletes and new keys on both sides of the
//! scan, the same keys changed twice, and service rows beside metadata.

use std::collections::BTreeMap;
use std::io::Write;

use metacenter_storage::{ApplyEntry, Command, Store};

type Pairs = BTreeMap<Vec<u8>, Vec<u8>>;

fn apply(store: &Store, index: u64, commands: Vec<Command>) {
    let entry = ApplyEntry { index, commands };
    store
        .apply(&[entry], format!("applied-{index}").as_bytes())
        .expect("apply");
}

fn merge(hash: String, field: &str, value: String) -> Command {
    Command::MetaMerge {
        hash,
        fields: BTreeMap::from([(field.to_string(), value)]),
        expect_version: None,
    }
}

/// Entry `step`'s commands: metadata objects `obj-000`..`obj-299` written, rewritten
/// and deleted in a scattered order (so the scan meets changes both behind and ahead
/// of it), a few brand-new objects, and service registrations and heartbeats.
fn commands(step: u64) -> Vec<Command> {
    (0..6)
        .map(|j| {
            let x = (step * 31 + j * 17) * 2_654_435_761 % 1_000_003;
            let hash = format!("obj-{:03}", x % 300);
            match x % 7 {
                0 => Command::MetaDelete {
                    hash,
                    expect_version: None,
                },
                1 => merge(format!("new-{step}-{j}"), "born", step.to_string()),
                2 => Command::ServiceRegister {
                    name: format!("svc-{}", x % 20),
                    info_json: format!(r#"{{"version":"{step}"}}"#),
                    now_ms: step,
                    deregister_after_ms: None,
                },
                3 => Command::ServiceHeartbeat {
                    name: format!("svc-{}", x % 20),
                    now_ms: step,
                },
                _ => merge(hash, "title", format!("v{step}-{j}")),
            }
        })
        .collect()
}

/// The pairs of a snapshot, which must name no key twice.
fn parse(bytes: &[u8]) -> Pairs {
    assert_eq!(&bytes[..8], b"MCSNAP1\n");
    let mut rest = &bytes[8..];
    let take = |rest: &mut &[u8]| {
        let len = u32::from_be_bytes(rest[..4].try_into().expect("length")) as usize;
        let chunk = rest[4..4 + len].to_vec();
        *rest = &rest[4 + len..];
        chunk
    };
    let mut pairs = Pairs::new();
    loop {
        let k = take(&mut rest);
        if k.is_empty() {
            assert!(rest.is_empty(), "bytes after the terminator");
            return pairs;
        }
        let v = take(&mut rest);
        assert!(
            pairs.insert(k.clone(), v).is_none(),
            "key {k:?} written twice"
        );
    }
}

fn snapshot(store: &Store) -> Pairs {
    let mut out = Vec::new();
    store.export_snapshot(&mut out).expect("export");
    parse(&out)
}

/// A sink that applies the next entry every `every` writes, so applies land at many
/// points of the scan.
struct ApplyingSink<'a> {
    store: &'a Store,
    bytes: Vec<u8>,
    writes: u64,
    every: u64,
    index: u64,
}

impl Write for ApplyingSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writes += 1;
        if self.writes.is_multiple_of(self.every) {
            self.index += 1;
            apply(self.store, self.index, commands(self.index));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn populated() -> (tempfile::TempDir, Store, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let all = (0..300)
        .map(|i| merge(format!("obj-{i:03}"), "title", format!("first-{i}")))
        .collect();
    apply(&store, 1, all);
    for index in 2..=40 {
        apply(&store, index, commands(index));
    }
    (dir, store, 40)
}

#[test]
fn an_export_is_the_state_it_began_at_whatever_applies_meanwhile() {
    for every in [1, 3, 17, 101] {
        let (_dir, store, last) = populated();
        let before = snapshot(&store);
        let export = store.begin_export().expect("begin");
        assert_eq!(export.applied_index(), last);
        let mut sink = ApplyingSink {
            store: &store,
            bytes: Vec::new(),
            writes: 0,
            every,
            index: last,
        };
        let n = export.write_to(&mut sink).expect("write");
        let applied_meanwhile = sink.index - last;
        assert!(
            applied_meanwhile >= 20,
            "every {every}: {applied_meanwhile}"
        );
        let written = parse(&sink.bytes);
        assert_eq!(n as usize, written.len());
        assert!(
            written == before,
            "every {every}: the export is not the start state"
        );

        // Apply went on correctly: the store now is the start plus what ran meanwhile.
        let dir = tempfile::tempdir().expect("tempdir");
        let replay = Store::open(dir.path()).expect("open");
        replay
            .import_snapshot(&mut sink.bytes.as_slice())
            .expect("import");
        for index in last + 1..=sink.index {
            apply(&replay, index, commands(index));
        }
        assert!(snapshot(&replay) == snapshot(&store), "every {every}");
    }
}

#[test]
fn overlapping_exports_each_write_their_own_start_state() {
    let (_dir, store, last) = populated();
    let at_first = snapshot(&store);
    let first = store.begin_export().expect("begin");
    assert_eq!(
        first.applied_state(),
        Some(format!("applied-{last}").as_bytes())
    );
    apply(&store, last + 1, commands(last + 1));
    let at_second = snapshot(&store);
    assert!(at_second != at_first, "the apply changed nothing");
    let second = store
        .begin_export()
        .expect("a second export beside the first");
    assert_eq!(second.applied_index(), last + 1);
    // The second export is written while applies go on, then the first.
    let mut sink = ApplyingSink {
        store: &store,
        bytes: Vec::new(),
        writes: 0,
        every: 5,
        index: last + 1,
    };
    second.write_to(&mut sink).expect("write second");
    assert!(
        sink.index > last + 2,
        "no apply ran during the second export"
    );
    assert!(parse(&sink.bytes) == at_second, "second export moved");
    let mut out = Vec::new();
    first.write_to(&mut out).expect("write first");
    assert!(parse(&out) == at_first, "first export moved");
}

#[test]
fn exports_are_bounded_and_dropping_one_ends_it() {
    let (_dir, store, last) = populated();
    let running: Vec<_> = (0..4)
        .map(|_| store.begin_export().expect("begin"))
        .collect();
    assert!(store.begin_export().is_err(), "a fifth export began");
    drop(running);
    let before = snapshot(&store);
    let unwritten = store.begin_export().expect("begin after a drop");
    drop(unwritten);
    apply(&store, last + 1, commands(last + 1));
    let after = snapshot(&store);
    assert!(after != before, "the apply changed nothing");
}

#[test]
fn an_install_during_an_export_fails_it() {
    let (_dir, store, last) = populated();
    let mut other = Vec::new();
    store.export_snapshot(&mut other).expect("export");
    let export = store.begin_export().expect("begin");
    store
        .import_snapshot(&mut other.as_slice())
        .expect("install");
    let mut out = Vec::new();
    assert!(
        export.write_to(&mut out).is_err(),
        "export over a replaced state"
    );
    apply(&store, last + 1, commands(last + 1));
    store
        .begin_export()
        .expect("a new export after the failed one");
}
