//! Reads of metric points made for people looking at them: the runs of a tenant with
//! their metrics ([`Store::tenant_runs`], [`Store::run_summary`]), and a series cut into time buckets that
//! each keep their lowest and highest point ([`Store::series_buckets`]), so a chart
//! of a million points draws a few thousand and its spikes survive.
//!
//! Both read only what they need: the runs from the series aggregates apply keeps
//! (one key per series, no point decoded), the buckets from the chunks that overlap
//! the range (the range is cut first, then sampled).

use crate::chunk::{self, ChunkKey, ChunkPoint};
use crate::points::{Point, PointQuery, SeriesAgg};
use crate::{codec, keys, Result, Store};

/// One run of a tenant: its id and its metrics with their aggregates, by name.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    pub run: [u8; 16],
    pub metrics: Vec<(String, SeriesAgg)>,
}

impl RunSummary {
    /// The newest point time of any of the run's metrics.
    pub fn last_ns(&self) -> i64 {
        self.metrics
            .iter()
            .map(|(_, a)| a.last_ns)
            .max()
            .unwrap_or(i64::MIN)
    }

    /// The points of all of the run's metrics.
    pub fn points(&self) -> u64 {
        self.metrics.iter().map(|(_, a)| a.count).sum()
    }
}

/// What buckets cut: spans of time, or of steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketBy {
    Time,
    Step,
}

impl BucketBy {
    fn key(self, p: &ChunkPoint) -> Option<i64> {
        match self {
            BucketBy::Time => Some(p.time_ns),
            BucketBy::Step => p.step,
        }
    }
}

/// The lowest and highest point of one bucket.
#[derive(Default)]
struct Bucket {
    lo: Option<ChunkPoint>,
    hi: Option<ChunkPoint>,
}

impl Bucket {
    fn add(&mut self, p: &ChunkPoint) {
        if self.lo.as_ref().is_none_or(|l| p.value < l.value) {
            self.lo = Some(p.clone());
        }
        if self.hi.as_ref().is_none_or(|h| p.value > h.value) {
            self.hi = Some(p.clone());
        }
    }
}

impl Store {
    /// Every run of a tenant, in run id order, from the series aggregates.
    pub fn tenant_runs(&self, tenant: &str) -> Result<Vec<RunSummary>> {
        let mut out: Vec<RunSummary> = Vec::new();
        for (run, metric, agg) in self.tenant_series(tenant)? {
            match out.last_mut() {
                Some(last) if last.run == run => last.metrics.push((metric, agg)),
                _ => out.push(RunSummary {
                    run,
                    metrics: vec![(metric, agg)],
                }),
            }
        }
        Ok(out)
    }

    /// One run of a tenant, `None` when it has no points.
    pub fn run_summary(&self, tenant: &str, run: &[u8; 16]) -> Result<Option<RunSummary>> {
        let prefix = keys::run_prefix(keys::KS_SERIES, tenant, run);
        let mut metrics = Vec::new();
        for kv in self.sm().scan_prefix(&prefix) {
            let (k, v) = kv?;
            let name = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            metrics.push((name, codec::decode(&v)?));
        }
        Ok((!metrics.is_empty()).then_some(RunSummary { run: *run, metrics }))
    }

    /// The points of one series in `q`'s time and step range, cut into `buckets` equal
    /// spans of time or of steps (`by`), each giving its lowest and its highest point
    /// (one when they are the same): at most `2 * buckets` points, newest first. A
    /// missing end of the time range is the series' first or last time. The range is
    /// first narrowed to the points that pass the filters (a pass over the chunks in
    /// range, made when steps are filtered or bucketed); points without a step are
    /// left out when bucketing by step. `q.limit` and `q.after` are ignored.
    pub fn series_buckets(
        &self,
        tenant: &str,
        run: &[u8; 16],
        metric: &str,
        q: &PointQuery,
        buckets: usize,
        by: BucketBy,
    ) -> Result<Vec<Point>> {
        let Some(agg) = self.series_agg(tenant, run, metric)? else {
            return Ok(Vec::new());
        };
        let prefix = keys::point_series_prefix(tenant, run, metric);
        let start = q.start_ns.unwrap_or(agg.first_ns).max(agg.first_ns);
        let end = q.end_ns.unwrap_or(agg.last_ns).min(agg.last_ns);
        let keep = |p: &ChunkPoint| q.step_ok(p.step) && by.key(p).is_some();
        let mut times = (start, end);
        let mut span = times;
        if by == BucketBy::Step || q.min_step.is_some() || q.max_step.is_some() {
            let (mut t, mut k) = ((i64::MAX, i64::MIN), (i64::MAX, i64::MIN));
            self.each_point(&prefix, times, |p| {
                if let Some(key) = by.key(p).filter(|_| keep(p)) {
                    t = (t.0.min(p.time_ns), t.1.max(p.time_ns));
                    k = (k.0.min(key), k.1.max(key));
                }
            })?;
            (times, span) = (t, k);
        }
        if times.0 > times.1 || buckets == 0 {
            return Ok(Vec::new());
        }
        let width = (span.1 as i128 - span.0 as i128) + 1;
        let n = buckets as i128;
        let mut slots: Vec<Bucket> = (0..buckets).map(|_| Bucket::default()).collect();
        self.each_point(&prefix, times, |p| {
            if let Some(key) = by.key(p).filter(|_| keep(p)) {
                let i = (key as i128 - span.0 as i128) * n / width;
                slots[i as usize].add(p);
            }
        })?;
        Ok(bucket_points(metric, slots))
    }

    /// Calls `f` with every point of the series at `prefix` whose time is within
    /// `start..=end`, decoding only the chunks that overlap it.
    fn each_point(
        &self,
        prefix: &[u8],
        (start, end): (i64, i64),
        mut f: impl FnMut(&ChunkPoint),
    ) -> Result<()> {
        for kv in self.sm().scan_prefix(prefix) {
            let (k, v) = kv?;
            let ck = ChunkKey::parse(&k[prefix.len()..])?;
            if ck.newest_ns < start {
                break;
            }
            if ck.oldest_ns > end {
                continue;
            }
            for p in chunk::decode(&ck, &v)? {
                if (start..=end).contains(&p.time_ns) {
                    f(&p);
                }
            }
        }
        Ok(())
    }
}

/// The points the buckets kept, newest first.
fn bucket_points(metric: &str, slots: Vec<Bucket>) -> Vec<Point> {
    let mut kept: Vec<ChunkPoint> = Vec::with_capacity(slots.len() * 2);
    for b in slots {
        let (Some(lo), Some(hi)) = (b.lo, b.hi) else {
            continue;
        };
        let same = lo.sort_key() == hi.sort_key();
        kept.push(lo);
        if !same {
            kept.push(hi);
        }
    }
    kept.sort_by_key(ChunkPoint::sort_key);
    kept.into_iter()
        .map(|p| Point::from_chunk(metric, p.sort_key(), p))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Command, PointIn};

    const RUN: [u8; 16] = [7; 16];

    fn write(store: &Store, index: u64, points: Vec<(i64, f64)>, metric: &str) {
        let points = points
            .into_iter()
            .map(|(t, v)| PointIn {
                run_id: RUN,
                metric: metric.into(),
                step: Some(t),
                value: v,
                time_ns: t,
                metadata_json: None,
            })
            .collect();
        let cmd = Command::PointsWrite {
            tenant: "t".into(),
            points,
        };
        let e = crate::ApplyEntry {
            index,
            commands: vec![cmd],
        };
        store.apply(&[e], b"s").expect("apply");
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        (dir, store)
    }

    #[test]
    fn buckets_keep_spikes_and_cut_the_range_first() {
        let (_d, s) = store();
        let mut pts: Vec<(i64, f64)> = (0..10_000).map(|t| (t, (t % 7) as f64)).collect();
        pts[4_321].1 = 1e9;
        pts[9_000].1 = -1e9;
        for (i, part) in pts.chunks(1000).enumerate() {
            write(&s, i as u64 + 1, part.to_vec(), "loss");
        }
        let all = PointQuery::default();
        let out = s
            .series_buckets("t", &RUN, "loss", &all, 50, BucketBy::Time)
            .unwrap();
        assert!(out.len() <= 100, "{}", out.len());
        assert!(out.iter().any(|p| p.value == 1e9) && out.iter().any(|p| p.value == -1e9));
        assert!(out.windows(2).all(|w| w[0].time_ns >= w[1].time_ns));
        // A narrow range comes back at full resolution.
        let q = PointQuery {
            start_ns: Some(100),
            end_ns: Some(139),
            ..Default::default()
        };
        let narrow = s
            .series_buckets("t", &RUN, "loss", &q, 50, BucketBy::Time)
            .unwrap();
        let times: Vec<i64> = narrow.iter().map(|p| p.time_ns).rev().collect();
        assert_eq!(times, (100..140).collect::<Vec<_>>());
        let none = s.series_buckets("t", &RUN, "nope", &all, 5, BucketBy::Step);
        assert!(none.unwrap().is_empty());
    }

    /// Points written together share one time: bucketing by step still spreads them.
    #[test]
    fn step_buckets_spread_points_of_one_time() {
        let (_d, s) = store();
        let pts: Vec<PointIn> = (0..1000)
            .map(|i| PointIn {
                run_id: RUN,
                metric: "loss".into(),
                step: Some(i),
                value: if i == 777 { 9e9 } else { i as f64 },
                time_ns: 42,
                metadata_json: None,
            })
            .collect();
        let e = crate::ApplyEntry {
            index: 1,
            commands: vec![Command::PointsWrite {
                tenant: "t".into(),
                points: pts,
            }],
        };
        s.apply(&[e], b"s").expect("apply");
        let all = PointQuery::default();
        let by_time = s.series_buckets("t", &RUN, "loss", &all, 50, BucketBy::Time);
        assert_eq!(by_time.unwrap().len(), 2, "one time, one bucket");
        let by_step = s
            .series_buckets("t", &RUN, "loss", &all, 50, BucketBy::Step)
            .unwrap();
        assert!(
            by_step.len() > 50 && by_step.len() <= 100,
            "{}",
            by_step.len()
        );
        assert!(by_step.iter().any(|p| p.value == 9e9));
        let q = PointQuery {
            min_step: Some(10),
            max_step: Some(19),
            ..Default::default()
        };
        let zoomed = s
            .series_buckets("t", &RUN, "loss", &q, 50, BucketBy::Step)
            .unwrap();
        let mut steps: Vec<i64> = zoomed.iter().filter_map(|p| p.step).collect();
        steps.sort_unstable();
        assert_eq!(steps, (10..20).collect::<Vec<_>>());
    }

    #[test]
    fn runs_group_series_with_counts_and_last_time() {
        let (_d, s) = store();
        write(&s, 1, vec![(5, 1.0), (9, 2.0)], "loss");
        write(&s, 2, vec![(3, 1.0)], "acc");
        let runs = s.tenant_runs("t").unwrap();
        assert_eq!(runs.len(), 1);
        let names: Vec<&str> = runs[0].metrics.iter().map(|(m, _)| m.as_str()).collect();
        assert_eq!(names, ["acc", "loss"]);
        assert_eq!((runs[0].points(), runs[0].last_ns()), (3, 9));
        assert!(s.tenant_runs("other").unwrap().is_empty());
        assert_eq!(s.run_summary("t", &RUN).unwrap().as_ref(), Some(&runs[0]));
        assert_eq!(s.run_summary("t", &[8; 16]).unwrap(), None);
    }
}
