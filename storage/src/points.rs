//! The metric-points keyspaces (Metric Service): points per (tenant, run, metric),
//! running aggregates per series maintained by apply (so whole-series stats are O(1)),
//! system metric points, and retention. Reads: history newest first with cursor
//! pagination, latest, stats.
//!
//! A command's points of one series are one chunk ([`chunk`]); system points are one
//! key each, ending in `time, revision, position`: time-ordered, and unique because
//! the revision is allocated once per command by apply.

use std::collections::BTreeMap;
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use crate::apply::ApplyCtx;
use crate::chunk::{self, ChunkKey, ChunkPoint, Effort, Placed};
use crate::command::{PointIn, SystemPointIn};
use crate::txn::Limits;
use crate::{codec, keys, Response, Result, Store};

/// Running aggregates of one series (Welford's mean and M2 for a stable variance).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesAgg {
    pub count: u64,
    pub mean: f64,
    pub m2: f64,
    pub min: f64,
    pub max: f64,
    pub first_ns: i64,
    pub last_ns: i64,
}

impl SeriesAgg {
    /// Adds one value observed at `t`.
    pub fn add(&mut self, v: f64, t: i64) {
        if self.count == 0 {
            *self = SeriesAgg {
                count: 1,
                mean: v,
                m2: 0.0,
                min: v,
                max: v,
                first_ns: t,
                last_ns: t,
            };
            return;
        }
        self.count += 1;
        let delta = v - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (v - self.mean);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.first_ns = self.first_ns.min(t);
        self.last_ns = self.last_ns.max(t);
    }

    /// Sample standard deviation; `None` for fewer than two values.
    pub fn std_dev(&self) -> Option<f64> {
        (self.count > 1).then(|| (self.m2.max(0.0) / (self.count - 1) as f64).sqrt())
    }
}

/// What the metric-points keyspaces hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PointsStored {
    pub series: u64,
    pub points: u64,
    pub chunks: u64,
    /// Keys and values of the chunks.
    pub chunk_bytes: u64,
}

/// A point as read.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub metric: String,
    pub step: Option<i64>,
    pub value: f64,
    pub time_ns: i64,
    pub metadata_json: Option<String>,
    /// Position of the point in the total order (for cursors).
    pub cursor: Cursor,
}

impl Point {
    /// A stored chunk point of `metric` with its sort key, as a reader gets it.
    pub(crate) fn from_chunk(metric: &str, key: [u8; 20], p: ChunkPoint) -> Point {
        Point {
            metric: metric.to_string(),
            step: p.step,
            value: p.value,
            time_ns: p.time_ns,
            metadata_json: p.metadata_json,
            cursor: Cursor {
                time_ns: p.time_ns,
                metric: metric.to_string(),
                tie: key[8..].try_into().expect("12 bytes"),
            },
        }
    }
}

/// Where a page of history ended: the next page continues strictly after it in
/// (time desc, metric desc, revision desc, position desc) order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub time_ns: i64,
    pub metric: String,
    /// The 12 bytes (revision, position) that make the point's key unique.
    pub tie: [u8; 12],
}

/// Filters of a history read.
#[derive(Debug, Clone, Default)]
pub struct PointQuery {
    pub start_ns: Option<i64>,
    pub end_ns: Option<i64>,
    pub min_step: Option<i64>,
    pub max_step: Option<i64>,
    pub limit: usize,
    pub after: Option<Cursor>,
}

impl PointQuery {
    pub(crate) fn step_ok(&self, step: Option<i64>) -> bool {
        let ok_min = self.min_step.is_none_or(|m| step.is_some_and(|s| s >= m));
        let ok_max = self.max_step.is_none_or(|m| step.is_some_and(|s| s <= m));
        ok_min && ok_max
    }
}

fn bad_point(metric: &str, v: f64) -> Option<String> {
    if metric.is_empty() || metric.len() > Limits::MAX_KEY || metric.contains('\0') {
        return Some("metric name must be 1 to 512 bytes without NUL".into());
    }
    (!v.is_finite()).then(|| "value must be finite".into())
}

/// Chunks of one tier that are merged into one.
const MERGE_AT: usize = 8;
/// Chunks of this tier (512 points and more) are never merged: a merge writes at most
/// 8 chunks of tier 2, under 4,096 points. (Merging batches of a thousand points into
/// chunks of 8,000 saved a third of their bytes but cost a sixth of three nodes'
/// ingest on two cores; BENCHMARKS.md.)
const FINAL_TIER: u8 = 3;
/// How many of a series' newest chunks a write looks at for a merge: more than the
/// 7 + 7 + 7 chunks of tiers 0 to 2 that can wait for an eighth.
const MERGE_WINDOW: usize = 32;

impl ApplyCtx<'_> {
    pub(crate) fn points_write(&mut self, tenant: &str, points: &[PointIn]) -> Result<Response> {
        if let Some(reason) = points.iter().find_map(|p| bad_point(&p.metric, p.value)) {
            return Ok(Response::Invalid { reason });
        }
        let rev = self.bump_revision();
        let mut series: BTreeMap<(&[u8; 16], &str), Vec<ChunkPoint>> = BTreeMap::new();
        for (pos, p) in points.iter().enumerate() {
            series
                .entry((&p.run_id, p.metric.as_str()))
                .or_default()
                .push(ChunkPoint {
                    time_ns: p.time_ns,
                    rev,
                    pos: pos as u32,
                    step: p.step,
                    value: p.value,
                    metadata_json: p.metadata_json.clone(),
                });
        }
        for ((run, metric), chunk_points) in series {
            let skey = keys::series(tenant, run, metric);
            let mut agg: SeriesAgg = self.get_decoded(&skey)?.unwrap_or_default();
            chunk_points
                .iter()
                .for_each(|p| agg.add(p.value, p.time_ns));
            self.txn.put(skey, codec::encode(&agg)?);
            let prefix = keys::point_series_prefix(tenant, run, metric);
            let (key, value) = chunk::build(&prefix, chunk_points, Effort::Fast)?;
            self.txn.put(key, value);
            self.series_merge(&prefix)?;
        }
        let names = points.iter().map(|p| (p.metric.as_str(), p.time_ns));
        self.catalog_note_points(tenant, names)?;
        Ok(Response::PointsWritten {
            count: points.len() as u32,
        })
    }

    pub(crate) fn system_points_write(
        &mut self,
        tenant: &str,
        points: &[SystemPointIn],
    ) -> Result<Response> {
        if let Some(reason) = points
            .iter()
            .find_map(|p| bad_point(&p.metric_type, p.value))
        {
            return Ok(Response::Invalid { reason });
        }
        let rev = self.bump_revision();
        for (pos, p) in points.iter().enumerate() {
            let prefix = keys::run_prefix(keys::KS_SYSPOINT, tenant, &p.run_id);
            let key = keys::point_suffix(&prefix, p.time_ns, rev, pos as u32);
            let stored = (p.metric_type.clone(), p.value, p.metadata_json.clone());
            self.txn.put(key, codec::encode(&stored)?);
        }
        Ok(Response::PointsWritten {
            count: points.len() as u32,
        })
    }

    /// Merges a series' small chunks, tier by tier: when [`MERGE_AT`] column chunks of
    /// one tier below [`FINAL_TIER`] are among the series' [`MERGE_WINDOW`] newest, they
    /// become one chunk (of a higher tier), and so on while that completes another set.
    /// A series written a few points at a time thus ends up in chunks of 512 to 4,095 points, each
    /// point rewritten about once per tier. Tiers are read from the keys alone; the
    /// chunks merged may overlap others in time (reads merge overlapping chunks anyway).
    /// Deterministic: it depends on the stored chunks alone.
    fn series_merge(&mut self, prefix: &[u8]) -> Result<()> {
        loop {
            let mut by_tier: BTreeMap<u8, Vec<(ChunkKey, Vec<u8>)>> = BTreeMap::new();
            for k in self.txn.first_keys_under(prefix, MERGE_WINDOW)? {
                let ck = ChunkKey::parse(&k[prefix.len()..])?;
                if let Some(t) = ck.tier.filter(|t| *t < FINAL_TIER) {
                    by_tier.entry(t).or_default().push((ck, k));
                }
            }
            let Some(set) = by_tier.into_values().find(|v| v.len() >= MERGE_AT) else {
                return Ok(());
            };
            let mut points = Vec::new();
            for (ck, k) in set.into_iter().take(MERGE_AT) {
                let v = self.txn.get(&k)?.unwrap_or_default();
                points.extend(chunk::decode(&ck, &v)?);
                self.txn.delete(k);
            }
            let (key, value) = chunk::build(prefix, points, Effort::Small)?;
            self.txn.put(key, value);
        }
    }

    /// Removes the tenant's points (and system points) older than `cutoff`, fixing the
    /// aggregates of every series it touched.
    pub(crate) fn points_retain(&mut self, tenant: &str, cutoff: i64) -> Result<Response> {
        let mut removed = 0u64;
        let series = keys::tenant_prefix(keys::KS_SERIES, tenant);
        for skey in self.txn.scan_prefix_keys(&series)? {
            removed += self.series_retain(skey, cutoff)?;
        }
        let sys = keys::tenant_prefix(keys::KS_SYSPOINT, tenant);
        for k in self.txn.scan_prefix_keys(&sys)? {
            if keys::parse_desc_time(&k[sys.len() + 16..]) < cutoff {
                self.txn.delete(k);
                removed += 1;
            }
        }
        Ok(Response::PointsRemoved { count: removed })
    }

    /// Drops the points of one series (aggregates at `skey`) older than `cutoff`:
    /// whole chunks when all their points are, else the chunk is rewritten with the
    /// rest. Returns how many points went.
    fn series_retain(&mut self, skey: Vec<u8>, cutoff: i64) -> Result<u64> {
        let mut prefix = skey.clone();
        prefix[0] = keys::KS_POINT;
        prefix.push(0);
        // Keys first: a series with nothing to drop costs no value copy.
        let mut parsed = Vec::new();
        for k in self.txn.scan_prefix_keys(&prefix)? {
            parsed.push((ChunkKey::parse(&k[prefix.len()..])?, k));
        }
        if parsed.iter().all(|(ck, _)| ck.oldest_ns >= cutoff) {
            return Ok(0);
        }
        let (mut removed, mut agg) = (0u64, SeriesAgg::default());
        for (ck, k) in parsed {
            let v = self.txn.get(&k)?.unwrap_or_default();
            let all = chunk::decode(&ck, &v)?;
            if ck.oldest_ns >= cutoff {
                all.iter().for_each(|p| agg.add(p.value, p.time_ns));
                continue;
            }
            let total = all.len();
            let kept: Vec<ChunkPoint> = all.into_iter().filter(|p| p.time_ns >= cutoff).collect();
            removed += (total - kept.len()) as u64;
            kept.iter().for_each(|p| agg.add(p.value, p.time_ns));
            self.txn.delete(k);
            if !kept.is_empty() {
                let (key, value) = chunk::build(&prefix, kept, Effort::Small)?;
                self.txn.put(key, value);
            }
        }
        if agg.count == 0 {
            self.txn.delete(skey);
        } else {
            self.txn.put(skey, codec::encode(&agg)?);
        }
        Ok(removed)
    }
}

/// The sort key (see [`chunk`]) from which a newest-first read of `metric` starts,
/// given the time filter and the cursor of the previous page (whichever is further
/// along).
fn start_bound(metric: &str, q: &PointQuery) -> Bound<Vec<u8>> {
    let at = |t: i64, tie: &[u8]| [&keys::desc_time(t)[..], tie].concat();
    let by_time = match q.end_ns {
        Some(end) => Bound::Included(at(end, &[])),
        None => Bound::Unbounded,
    };
    let Some(c) = &q.after else { return by_time };
    let by_cursor = match metric.cmp(c.metric.as_str()) {
        // Metrics sort descending: a smaller name still has the cursor's own time ahead.
        std::cmp::Ordering::Less => Bound::Included(at(c.time_ns, &[])),
        std::cmp::Ordering::Equal => Bound::Excluded(at(c.time_ns, &c.tie)),
        std::cmp::Ordering::Greater => Bound::Excluded(at(c.time_ns, &[0xff; 12])),
    };
    let key = |b: &Bound<Vec<u8>>| match b {
        Bound::Included(k) | Bound::Excluded(k) => k.clone(),
        Bound::Unbounded => Vec::new(),
    };
    if key(&by_cursor) >= key(&by_time) {
        by_cursor
    } else {
        by_time
    }
}

impl Store {
    /// The chunks of one series in key order, as (key suffix, value).
    fn series_chunks(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<(Vec<u8>, sled::IVec)>> + '_ {
        let skip = prefix.len();
        self.sm()
            .scan_prefix(prefix)
            .map(move |kv| Ok(kv.map(|(k, v)| (k[skip..].to_vec(), v))?))
    }

    /// Newest-first points of one series (at most `q.limit`).
    pub fn series_points(
        &self,
        tenant: &str,
        run: &[u8; 16],
        metric: &str,
        q: &PointQuery,
    ) -> Result<Vec<Point>> {
        let prefix = keys::point_series_prefix(tenant, run, metric);
        let keep = |p: &ChunkPoint| q.step_ok(p.step);
        let window = chunk::Window {
            from: start_bound(metric, q),
            oldest_ns: q.start_ns.unwrap_or(i64::MIN),
            limit: q.limit,
            keep: &keep,
        };
        let placed = chunk::newest_first(self.series_chunks(&prefix), &window)?;
        let point = |Placed { key, point }: Placed| Point::from_chunk(metric, key, point);
        Ok(placed.into_iter().map(point).collect())
    }

    /// Newest-first points of every metric of a run, merged (at most `q.limit`).
    pub fn run_points(&self, tenant: &str, run: &[u8; 16], q: &PointQuery) -> Result<Vec<Point>> {
        let mut all = Vec::new();
        for metric in self.run_metrics(tenant, run)? {
            all.extend(self.series_points(tenant, run, &metric, q)?);
        }
        // Newest first, then metric descending, then key order of the (inverted) tie.
        all.sort_by(|a, b| {
            (b.time_ns, &b.metric)
                .cmp(&(a.time_ns, &a.metric))
                .then(a.cursor.tie.cmp(&b.cursor.tie))
        });
        all.truncate(q.limit);
        Ok(all)
    }

    /// Every tenant's stored points: (series, points, bytes of their chunks). Reads the
    /// series aggregates and the chunk keys and sizes, not the points themselves.
    pub fn points_stored(&self) -> Result<PointsStored> {
        let mut out = PointsStored::default();
        for kv in self.sm().scan_prefix([keys::KS_SERIES]) {
            let agg: SeriesAgg = codec::decode(&kv?.1)?;
            out.series += 1;
            out.points += agg.count;
        }
        for kv in self.sm().scan_prefix([keys::KS_POINT]) {
            let (k, v) = kv?;
            out.chunks += 1;
            out.chunk_bytes += (k.len() + v.len()) as u64;
        }
        Ok(out)
    }

    /// How many points each chunk of a series holds, in key order (newest first).
    pub fn series_chunk_counts(
        &self,
        tenant: &str,
        run: &[u8; 16],
        metric: &str,
    ) -> Result<Vec<usize>> {
        let prefix = keys::point_series_prefix(tenant, run, metric);
        let mut counts = Vec::new();
        for kv in self.series_chunks(&prefix) {
            let (suffix, value) = kv?;
            counts.push(chunk::count(&ChunkKey::parse(&suffix)?, &value)?);
        }
        Ok(counts)
    }

    /// Names of the metrics of a run.
    pub fn run_metrics(&self, tenant: &str, run: &[u8; 16]) -> Result<Vec<String>> {
        let prefix = keys::run_prefix(keys::KS_SERIES, tenant, run);
        let mut out = Vec::new();
        for k in self.sm().scan_prefix(&prefix).keys() {
            out.push(String::from_utf8_lossy(&k?[prefix.len()..]).into_owned());
        }
        Ok(out)
    }

    /// Every series of a tenant: (run, metric, aggregates), in key order.
    pub fn tenant_series(&self, tenant: &str) -> Result<Vec<([u8; 16], String, SeriesAgg)>> {
        let prefix = keys::tenant_prefix(keys::KS_SERIES, tenant);
        let mut out = Vec::new();
        for kv in self.sm().scan_prefix(&prefix) {
            let (k, v) = kv?;
            let rest = &k[prefix.len()..];
            if rest.len() < 16 {
                return Err(crate::Error::Codec("short series key".into()));
            }
            let run: [u8; 16] = rest[..16].try_into().expect("16 bytes");
            let metric = String::from_utf8_lossy(&rest[16..]).into_owned();
            out.push((run, metric, codec::decode(&v)?));
        }
        Ok(out)
    }

    /// The running aggregates of a series.
    pub fn series_agg(
        &self,
        tenant: &str,
        run: &[u8; 16],
        metric: &str,
    ) -> Result<Option<SeriesAgg>> {
        self.sm()
            .get(keys::series(tenant, run, metric))?
            .map(|v| codec::decode(&v))
            .transpose()
    }

    /// Aggregates over a time range of a series, by scan.
    pub fn series_agg_range(
        &self,
        tenant: &str,
        run: &[u8; 16],
        metric: &str,
        start: i64,
        end: i64,
    ) -> Result<SeriesAgg> {
        let prefix = keys::point_series_prefix(tenant, run, metric);
        let mut agg = SeriesAgg::default();
        for kv in self.series_chunks(&prefix) {
            let (suffix, value) = kv?;
            let ck = ChunkKey::parse(&suffix)?;
            if ck.newest_ns < start {
                break;
            }
            if ck.oldest_ns > end {
                continue;
            }
            for p in chunk::decode(&ck, &value)? {
                if (start..=end).contains(&p.time_ns) {
                    agg.add(p.value, p.time_ns);
                }
            }
        }
        Ok(agg)
    }

    /// Newest-first system points of a run: (metric_type, value, time_ns, metadata).
    #[allow(clippy::type_complexity)]
    pub fn system_points(
        &self,
        tenant: &str,
        run: &[u8; 16],
        (start, end): (i64, i64),
        metric_type: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, f64, i64, Option<String>)>> {
        let prefix = keys::run_prefix(keys::KS_SYSPOINT, tenant, run);
        let lo = [prefix.as_slice(), &keys::desc_time(end)].concat();
        let hi = [prefix.as_slice(), &keys::desc_time(start), &[0xff; 12]].concat();
        let mut out = Vec::new();
        for kv in self.sm().range(lo..=hi) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = kv?;
            let (kind, value, meta): (String, f64, Option<String>) = codec::decode(&v)?;
            if metric_type.is_none_or(|t| t == kind) {
                out.push((kind, value, keys::parse_desc_time(&k[prefix.len()..]), meta));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Command;

    #[test]
    fn welford_matches_naive() {
        let vals = [1.0, 2.5, -3.0, 1e6, 7.25, 7.25];
        let mut agg = SeriesAgg::default();
        for (i, v) in vals.iter().enumerate() {
            agg.add(*v, i as i64);
        }
        let n = vals.len() as f64;
        let mean = vals.iter().sum::<f64>() / n;
        let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        assert!((agg.mean - mean).abs() < 1e-9);
        assert!((agg.std_dev().unwrap() - var.sqrt()).abs() < 1e-6);
        assert_eq!(
            (agg.min, agg.max, agg.first_ns, agg.last_ns),
            (-3.0, 1e6, 0, 5)
        );
        let mut one = SeriesAgg::default();
        one.add(4.0, 9);
        assert_eq!(one.std_dev(), None);
    }

    /// A data dir written before the column encoding holds row chunks (24-byte key
    /// suffix, revision in the key). They read as before beside new column chunks, and
    /// retention rewrites what it keeps of them as column chunks.
    #[test]
    fn row_chunks_of_the_old_layout_read_and_convert() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let run = [7u8; 16];
        let prefix = keys::point_series_prefix("t", &run, "loss");
        let old = ChunkKey {
            newest_ns: 20,
            rev: 1,
            oldest_ns: 10,
            tier: None,
        };
        let rows: Vec<chunk::RowPoint> = [(20, 0, 2.5), (10, 1, -0.0)]
            .map(|(t, pos, value)| chunk::RowPoint {
                time_ns: t,
                pos,
                step: Some(t),
                value,
                metadata_json: None,
            })
            .to_vec();
        let key = [prefix.as_slice(), &old.suffix()].concat();
        store
            .sm()
            .insert(key, codec::encode(&rows).unwrap())
            .unwrap();
        let write = Command::PointsWrite {
            tenant: "t".into(),
            points: vec![crate::PointIn {
                run_id: run,
                metric: "loss".into(),
                step: Some(15),
                value: 1.0,
                time_ns: 15,
                metadata_json: None,
            }],
        };
        let apply = |index: u64, cmd: Command| {
            let e = crate::ApplyEntry {
                index,
                commands: vec![cmd],
            };
            store.apply(&[e], b"s").unwrap()
        };
        apply(1, write);
        let q = PointQuery {
            limit: 10,
            ..Default::default()
        };
        let read = || store.series_points("t", &run, "loss", &q).unwrap();
        let times: Vec<i64> = read().iter().map(|p| p.time_ns).collect();
        assert_eq!(times, [20, 15, 10]);
        assert_eq!(read()[2].value.to_bits(), (-0.0f64).to_bits());
        let cutoff = Command::PointsRetain {
            tenant: "t".into(),
            cutoff_ns: 12,
        };
        apply(2, cutoff);
        let times: Vec<i64> = read().iter().map(|p| p.time_ns).collect();
        assert_eq!(times, [20, 15]);
        let tiers: Vec<Option<u8>> = store
            .sm()
            .scan_prefix(&prefix)
            .keys()
            .map(|k| ChunkKey::parse(&k.unwrap()[prefix.len()..]).unwrap().tier)
            .collect();
        assert_eq!(
            tiers,
            [Some(0), Some(0)],
            "the trimmed row chunk is a column chunk"
        );
    }
}
