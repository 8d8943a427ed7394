//! Output of the Metric Service: one point as a JSON tree ([`point_json`]), a page of
//! history, and the downsampling of a page. A point's fields are the shared layer's
//! [`PointOut`], which the live streams write too.

use metacenter_storage::Point;
use serde::Serialize;
use serde_json::Value;

use crate::http::common::point::PointOut;

/// The JSON of one point, as the Metric Service returns it.
pub fn point_json(run_id: &str, p: &Point) -> Value {
    serde_json::to_value(PointOut::new(run_id, p)).unwrap_or(Value::Null)
}

/// A page of history.
#[derive(Serialize)]
pub(super) struct HistoryOut<'a> {
    pub(super) count: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) metric_name: Option<&'a str>,
    pub(super) metrics: Vec<PointOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) next: Option<String>,
    pub(super) run_id: &'a str,
}

/// At most `n` points that keep the shape: the points are cut into n/2 buckets of
/// consecutive points, and each bucket contributes its minimum and its maximum.
pub fn downsample(points: Vec<Point>, n: usize) -> Vec<Point> {
    if points.len() <= n {
        return points;
    }
    let buckets = (n / 2).max(1);
    let size = points.len().div_ceil(buckets);
    let mut out = Vec::with_capacity(n);
    for chunk in points.chunks(size) {
        let by = |f: fn(f64, f64) -> bool| {
            chunk.iter().enumerate().fold(0, |best, (i, p)| {
                if f(p.value, chunk[best].value) {
                    i
                } else {
                    best
                }
            })
        };
        let (lo, hi) = (by(|a, b| a < b), by(|a, b| a > b));
        out.push(chunk[lo.min(hi)].clone());
        if lo != hi {
            out.push(chunk[lo.max(hi)].clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use metacenter_storage::Cursor;

    use super::*;

    fn pt(i: i64, v: f64) -> Point {
        Point {
            metric: "m".into(),
            step: Some(i),
            value: v,
            time_ns: i,
            metadata_json: None,
            cursor: Cursor {
                time_ns: i,
                metric: "m".into(),
                tie: [0; 12],
            },
        }
    }

    #[test]
    fn downsample_keeps_extremes_and_bound() {
        let pts: Vec<Point> = (0..1000)
            .map(|i| pt(i, ((i as f64) / 10.0).sin()))
            .collect();
        let mut spiky = pts.clone();
        spiky[517].value = 100.0;
        spiky[3].value = -100.0;
        let out = downsample(spiky, 50);
        assert!(out.len() <= 50);
        assert!(out.iter().any(|p| p.value == 100.0) && out.iter().any(|p| p.value == -100.0));
        assert_eq!(downsample(pts[..10].to_vec(), 50).len(), 10);
    }
}
