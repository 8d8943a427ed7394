use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use super::*;
use crate::loadgen::{parse_reports, render_table, Report};

#[test]
fn keys_are_eight_bytes_and_unique_values_carry_their_key() {
    let keys: Vec<String> = (0..64)
        .flat_map(|w| (0..100).map(move |s| key_of(w, s)))
        .collect();
    assert!(keys.iter().all(|k| k.len() == 8));
    let distinct: std::collections::HashSet<_> = keys.iter().collect();
    assert_eq!(distinct.len(), keys.len());
    let filler = random_value(256);
    let v = value_of("f0100001", &filler, 256);
    assert_eq!(v.len(), 256);
    assert!(v.starts_with("f0100001"));
    assert_eq!(value_of("f0100001", &filler, 4), "f0100001");
}

fn ack(t0: Instant, seq: u64, sent_ms: u64, acked_ms: u64) -> Ack {
    Ack {
        seq,
        sent: t0 + Duration::from_millis(sent_ms),
        acked: t0 + Duration::from_millis(acked_ms),
    }
}

#[test]
fn outage_counts_from_the_kill_to_the_first_ack_of_a_later_write() {
    let t0 = Instant::now();
    let kill = t0 + Duration::from_millis(100);
    let acks = [
        ack(t0, 0, 0, 10),
        ack(t0, 1, 10, 90),
        // In flight at the kill, acknowledged at once: not a recovery.
        ack(t0, 2, 95, 105),
        ack(t0, 3, 150, 900),
        ack(t0, 4, 900, 910),
    ];
    let o = outage(&acks, kill).unwrap();
    assert_eq!(o.unavailable, Duration::from_millis(800));
    assert_eq!(o.max_gap, Duration::from_millis(795));
    assert_eq!(outage(&acks[..3], kill), None);
}

fn failover_report(system: &str, unavailable_ms: f64, lost: u64) -> Report {
    Report {
        workload: "failover".into(),
        system: system.into(),
        clients: 64,
        conns: 64,
        to: "all".into(),
        ops: 1000,
        seconds: 10.0,
        ops_per_sec: 100.0,
        p50_ms: 1.0,
        p99_ms: 2.0,
        p999_ms: 3.0,
        max_ms: 4.0,
        errors: 5,
        error_kinds: BTreeMap::new(),
        failover: Some(FailoverFigures {
            killed: "127.0.0.1:1".into(),
            unavailable_ms,
            max_gap_ms: unavailable_ms + 10.0,
            checked: 1000,
            lost,
            wrong: 0,
        }),
    }
}

#[test]
fn failover_figures_are_flat_json_fields_and_get_their_own_table() {
    let mc = failover_report("metacenter", 1500.0, 0);
    let line = serde_json::to_string(&mc).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["unavailable_ms"], 1500.0);
    assert_eq!(v["lost"], 0);
    let mut kv = failover_report("metacenter", 0.0, 0);
    kv.workload = "kv-put".into();
    kv.failover = None;
    let kv_line = serde_json::to_string(&kv).unwrap();
    assert!(!kv_line.contains("unavailable_ms"));
    let etcd = serde_json::to_string(&failover_report("etcd", 1000.0, 0)).unwrap();
    let reports = parse_reports(&format!("{line}\n{kv_line}\n{etcd}\n")).unwrap();
    assert_eq!(reports[0], mc);
    assert_eq!(reports[1].failover, None);
    let table = render_table(&reports);
    let lines: Vec<&str> = table.lines().collect();
    // Throughput table (header, rule, kv row), blank line, failover table (header, rule, 2).
    assert_eq!(lines.len(), 8, "{table}");
    assert!(lines[2].starts_with("| kv-put | metacenter |"));
    assert!(lines[6].starts_with("| failover | metacenter | 64 | 1500 | 1510 | 1000 | 0 | 0 |"));
    assert!(lines[6].ends_with("| 1.50x |"), "{}", lines[6]);
    assert!(lines[7].starts_with("| failover | etcd |") && lines[7].ends_with("|  |"));
}

#[test]
fn several_rounds_get_a_row_of_medians_that_carries_the_ratio() {
    let rounds = [
        ("metacenter", 3000.0),
        ("etcd", 1000.0),
        ("metacenter", 4000.0),
        ("etcd", 2000.0),
        ("metacenter", 3500.0),
        ("etcd", 1500.0),
    ];
    let reports: Vec<Report> = rounds
        .iter()
        .map(|&(sys, ms)| failover_report(sys, ms, 0))
        .collect();
    let table = render_table(&reports);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 10, "{table}");
    assert!(lines[2].starts_with("| failover | metacenter | 64 | 3000 |"));
    assert!(lines[2].ends_with("|  |"));
    let mc = "| failover, median of 3 | metacenter | 64 | 3500 | 3510 | 3000 | 0 | 0 | 2.33x |";
    assert_eq!(lines[5], mc);
    assert!(lines[9].starts_with("| failover, median of 3 | etcd | 64 | 1500 |"));
}

/// An in-memory cluster: killing a node makes it refuse, and there is no leader for
/// `election` after a kill. With `drop_every`, that many acknowledged puts lose one.
struct Fake {
    data: Mutex<HashMap<String, String>>,
    dead: Mutex<Vec<usize>>,
    killed_at: Mutex<Option<Instant>>,
    election: Duration,
    drop_every: u64,
    puts: AtomicU64,
}

impl Fake {
    fn new(election: Duration, drop_every: u64) -> Self {
        Fake {
            data: Mutex::default(),
            dead: Mutex::default(),
            killed_at: Mutex::default(),
            election,
            drop_every,
            puts: AtomicU64::new(0),
        }
    }

    fn reachable(&self, node: usize) -> Result<(), OpError> {
        if self.dead.lock().unwrap().contains(&node) {
            return Err(OpError::Transport("connect".into()));
        }
        match *self.killed_at.lock().unwrap() {
            Some(t) if t.elapsed() < self.election => Err(OpError::Status("503".into())),
            _ => Ok(()),
        }
    }
}

impl KvStore for Fake {
    async fn put(&self, node: usize, _w: usize, key: &str, value: &str) -> Result<(), OpError> {
        self.reachable(node)?;
        let n = self.puts.fetch_add(1, Ordering::Relaxed);
        if self.drop_every == 0 || !n.is_multiple_of(self.drop_every) {
            self.data.lock().unwrap().insert(key.into(), value.into());
        }
        tokio::task::yield_now().await;
        Ok(())
    }

    async fn check(
        &self,
        node: usize,
        _r: usize,
        key: &str,
        value: &str,
    ) -> Result<Found, OpError> {
        self.reachable(node)?;
        Ok(match self.data.lock().unwrap().get(key) {
            None => Found::Missing,
            Some(v) if v == value => Found::Same,
            Some(_) => Found::Different,
        })
    }
}

impl Faults for Fake {
    async fn leader(&self) -> Result<usize> {
        Ok(1)
    }

    fn kill(&self, node: usize) -> Result<()> {
        self.dead.lock().unwrap().push(node);
        *self.killed_at.lock().unwrap() = Some(Instant::now());
        Ok(())
    }
}

fn spec() -> FailoverSpec {
    FailoverSpec {
        nodes: 3,
        writers: 8,
        readers: 4,
        value_size: 32,
        warmup: Duration::from_millis(50),
        after: Duration::from_millis(50),
        max_outage: Duration::from_secs(10),
        pause: Duration::from_millis(1),
    }
}

#[tokio::test]
async fn a_clean_failover_loses_nothing_and_measures_the_election() {
    let fake = Arc::new(Fake::new(Duration::from_millis(150), 0));
    let run = run_failover(fake.clone(), &*fake, &spec()).await.unwrap();
    assert_eq!(run.killed, 1);
    assert!(run.outage.unavailable >= Duration::from_millis(150));
    assert!(run.outage.max_gap >= Duration::from_millis(100));
    assert_eq!(run.read_back.checked, run.stats.acked());
    assert_eq!((run.read_back.lost, run.read_back.wrong), (0, 0));
    assert!(run.stats.failed() > 0, "writers saw the outage");
}

#[tokio::test]
async fn acknowledged_writes_that_vanish_are_counted_as_lost() {
    let fake = Arc::new(Fake::new(Duration::from_millis(20), 50));
    let run = run_failover(fake.clone(), &*fake, &spec()).await.unwrap();
    assert!(run.read_back.lost > 0);
    assert_eq!(run.read_back.wrong, 0);
    assert!(!run.read_back.examples.is_empty());
}

#[tokio::test]
async fn a_cluster_that_never_recovers_fails_the_run() {
    let fake = Arc::new(Fake::new(Duration::from_secs(3600), 0));
    let mut s = spec();
    s.max_outage = Duration::from_millis(100);
    let err = run_failover(fake.clone(), &*fake, &s).await.unwrap_err();
    assert!(
        err.to_string().contains("no write was acknowledged"),
        "{err:#}"
    );
}
