//! The raft log's write-ahead log: what it keeps across reopen, a torn tail, segment
//! rotation and deletion, and the values it must never lose.

use std::os::unix::fs::FileExt;
use std::path::Path;

use metacenter_storage::Wal;

fn entries(range: std::ops::RangeInclusive<u64>) -> Vec<(u64, Vec<u8>)> {
    range
        .map(|i| (i, format!("entry {i}").into_bytes()))
        .collect()
}

fn all(w: &Wal) -> Vec<String> {
    w.range(0, None)
        .unwrap()
        .into_iter()
        .map(|b| String::from_utf8(b).unwrap())
        .collect()
}

fn segments(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wal"))
        .collect();
    names.sort();
    names
}

#[test]
fn appends_reads_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let w = Wal::open(dir.path()).unwrap();
    assert!(w.is_empty());
    assert_eq!(w.last_entry().unwrap(), None);
    w.append(entries(1..=5)).unwrap();
    w.append(entries(6..=7)).unwrap();
    w.sync().unwrap();
    assert_eq!(w.range(3, Some(5)).unwrap(), vec![b"entry 3", b"entry 4"]);
    assert_eq!(w.range(6, None).unwrap().len(), 2);
    assert!(w.range(5, Some(5)).unwrap().is_empty());
    drop(w);

    let w = Wal::open(dir.path()).unwrap();
    assert!(!w.is_empty());
    assert_eq!(all(&w).len(), 7);
    assert_eq!(w.last_index(), Some(7));
    assert_eq!(w.last_entry().unwrap().unwrap(), b"entry 7");
}

#[test]
fn truncation_and_overwrite_replay_as_they_ran() {
    let dir = tempfile::tempdir().unwrap();
    let w = Wal::open(dir.path()).unwrap();
    w.append(entries(1..=10)).unwrap();
    w.truncate_from(8).unwrap();
    assert_eq!(w.last_index(), Some(7));
    w.append([(8, b"new 8".to_vec())]).unwrap();
    // An entry at an index already held replaces it and everything after it.
    w.append([(5, b"new 5".to_vec())]).unwrap();
    let before = all(&w);
    assert_eq!(before.last().unwrap(), "new 5");
    assert_eq!(before.len(), 5);
    w.sync().unwrap();
    drop(w);
    assert_eq!(all(&Wal::open(dir.path()).unwrap()), before);
}

#[test]
fn values_are_the_last_written_and_committed_rides_with_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let w = Wal::open(dir.path()).unwrap();
    w.set_vote(b"v1").unwrap();
    w.set_vote(b"v2").unwrap();
    w.set_committed(b"c1");
    assert_eq!(w.committed().unwrap(), b"c1");
    w.sync().unwrap();
    drop(w);
    // Not yet written: committed needs no durability of its own.
    let w = Wal::open(dir.path()).unwrap();
    assert_eq!(w.vote().unwrap(), b"v2");
    assert_eq!(w.committed(), None);
    w.set_committed(b"c2");
    w.append(entries(1..=1)).unwrap();
    w.sync().unwrap();
    drop(w);
    assert_eq!(Wal::open(dir.path()).unwrap().committed().unwrap(), b"c2");
}

#[test]
fn a_torn_tail_is_cut_off_and_the_log_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let w = Wal::open(dir.path()).unwrap();
    w.append(entries(1..=3)).unwrap();
    w.sync().unwrap();
    drop(w);
    let seg = dir.path().join(&segments(dir.path())[0]);
    let len = std::fs::metadata(&seg).unwrap().len();
    // Half of a frame right after the records, as a crash in the middle of a write
    // leaves it in the preallocated segment.
    let end = data_end(&seg);
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.write_all_at(&[40, 0, 0, 0, 1, 2, 3, 4, 1, 9], end)
        .unwrap();
    drop(f);

    let w = Wal::open(dir.path()).unwrap();
    assert_eq!(all(&w).len(), 3);
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), len);
    assert_eq!(data_end(&seg), end, "the torn frame is gone");
    w.append(entries(4..=4)).unwrap();
    w.sync().unwrap();
    drop(w);
    assert_eq!(all(&Wal::open(dir.path()).unwrap()).len(), 4);
}

/// Where a segment's written bytes end: after them it holds only preallocated zeros.
fn data_end(seg: &Path) -> u64 {
    let bytes = std::fs::read(seg).unwrap();
    bytes
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |i| i as u64 + 1)
}

#[test]
fn segments_are_preallocated_and_appends_go_after_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let w = Wal::open_with(dir.path(), 1 << 20).unwrap();
    w.append(entries(1..=3)).unwrap();
    w.sync().unwrap();
    let seg = dir.path().join(&segments(dir.path())[0]);
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), 1 << 20);
    assert!(
        w.size_on_disk() < 1 << 10,
        "counts records, not the preallocation"
    );
    drop(w);
    let end = data_end(&seg);
    let w = Wal::open_with(dir.path(), 1 << 20).unwrap();
    w.append(entries(4..=5)).unwrap();
    w.sync().unwrap();
    drop(w);
    assert!(data_end(&seg) > end);
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), 1 << 20);
    let w = Wal::open_with(dir.path(), 1 << 20).unwrap();
    assert_eq!(
        all(&w),
        (1..=5).map(|i| format!("entry {i}")).collect::<Vec<_>>()
    );
}

/// A log of several small segments; returns the path of the first (closed) one.
fn closed_segment(dir: &Path) -> std::path::PathBuf {
    let w = Wal::open_with(dir, 64).unwrap();
    for i in 1..=6 {
        w.append(entries(i..=i)).unwrap();
    }
    w.sync().unwrap();
    drop(w);
    let names = segments(dir);
    assert!(names.len() >= 2, "{names:?}");
    dir.join(&names[0])
}

fn assert_refused_as_damaged(dir: &Path) {
    let err = Wal::open(dir).err().expect("a damaged log is refused");
    assert!(err.to_string().contains("damaged"), "{err}");
}

#[test]
fn records_after_a_zeroed_frame_are_damage_not_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let first = closed_segment(dir.path());
    // A block of the first segment lost to zeros, records after it.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&first)
        .unwrap();
    f.write_all_at(&[0; 12], 0).unwrap();
    drop(f);
    assert_refused_as_damaged(dir.path());
}

#[test]
fn damage_before_the_last_segment_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let first = closed_segment(dir.path());
    let mut bytes = std::fs::read(&first).unwrap();
    let at = bytes.len() - 1;
    bytes[at] ^= 0xff;
    std::fs::write(&first, bytes).unwrap();
    assert_refused_as_damaged(dir.path());
}

#[test]
fn segments_rotate_and_purge_deletes_the_old_ones_but_keeps_the_vote() {
    let dir = tempfile::tempdir().unwrap();
    let w = Wal::open_with(dir.path(), 100).unwrap();
    w.set_vote(b"vote").unwrap();
    for i in 1..=20 {
        w.append(entries(i..=i)).unwrap();
    }
    w.sync().unwrap();
    let (before, bytes) = (w.segment_count(), w.size_on_disk());
    assert!(before > 3, "{before} segments");
    w.purge_upto(15, b"p15").unwrap();
    assert!(w.segment_count() < before, "{} segments", w.segment_count());
    assert!(
        w.size_on_disk() < bytes,
        "{} of {bytes} bytes",
        w.size_on_disk()
    );
    assert_eq!(segments(dir.path()).len(), w.segment_count());
    assert_eq!(w.range(0, None).unwrap().len(), 5);
    assert_eq!(w.purged().unwrap(), b"p15");
    drop(w);

    let w = Wal::open_with(dir.path(), 100).unwrap();
    assert_eq!(w.vote().unwrap(), b"vote");
    assert_eq!(w.purged().unwrap(), b"p15");
    let live = all(&w);
    assert_eq!(live.first().unwrap(), "entry 16");
    assert_eq!(live.len(), 5);
}

#[test]
fn purging_past_the_end_leaves_an_empty_log_that_continues_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let w = Wal::open(dir.path()).unwrap();
    w.append(entries(1..=5)).unwrap();
    w.purge_upto(100, b"p100").unwrap();
    assert_eq!(w.last_index(), None);
    w.append(entries(101..=102)).unwrap();
    w.sync().unwrap();
    drop(w);
    let w = Wal::open(dir.path()).unwrap();
    assert_eq!(all(&w), vec!["entry 101", "entry 102"]);
    assert_eq!(w.purged().unwrap(), b"p100");
}

#[test]
fn random_operations_replay_to_the_same_log() {
    // A small deterministic generator: the same run every time.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let dir = tempfile::tempdir().unwrap();
    let w = Wal::open_with(dir.path(), 512).unwrap();
    let mut last = 0u64;
    for step in 0..400 {
        match next(10) {
            0 if last > 0 => {
                let from = 1 + next(last);
                w.truncate_from(from).unwrap();
                last = w.last_index().unwrap_or(0);
            }
            1 if last > 0 => w.purge_upto(next(last), b"p").unwrap(),
            2 => w.set_vote(format!("vote {step}").as_bytes()).unwrap(),
            _ => {
                let n = 1 + next(4);
                w.append(entries(last + 1..=last + n)).unwrap();
                last += n;
            }
        }
        if let Some(l) = w.last_index() {
            last = l;
        }
    }
    w.sync().unwrap();
    let (live, vote) = (all(&w), w.vote());
    drop(w);
    let w = Wal::open_with(dir.path(), 512).unwrap();
    assert_eq!(all(&w), live);
    assert_eq!(w.vote(), vote);
}

#[test]
fn purge_point_keeps_the_newest_entries_within_a_byte_bound() {
    let dir = tempfile::tempdir().unwrap();
    let w = Wal::open(dir.path()).unwrap();
    // Entries 1..=9 of 7 bytes ("entry 1"), 10..=12 of 8.
    w.append(entries(1..=12)).unwrap();
    assert_eq!(w.purge_point(12, 1000), None, "all fit");
    // Up to 12, 20 bytes: 12 and 11 (16 bytes) fit, 10 would not.
    assert_eq!(w.purge_point(12, 20), Some(10));
    // Up to 9 (entries newer than the snapshot are not counted), 14 bytes: 9 and 8.
    assert_eq!(w.purge_point(9, 14), Some(7));
    assert_eq!(w.purge_point(9, 0), Some(9));
    w.purge_upto(7, b"p7").unwrap();
    assert_eq!(w.purge_point(9, 14), None, "already within the bound");
}
