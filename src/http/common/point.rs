//! The Metric Service's vocabulary shared by the areas that read and stream points:
//! run ids ([`parse_run`]) and one point as JSON ([`PointOut`]), as history pages and
//! live streams both write it.

use metacenter_storage::{Point, PointIn};
use serde::Serialize;
use serde_json::value::RawValue;

use super::metric_error::{bad, MetricError};
use crate::clock::rfc3339;

/// The 16 bytes of a run id, which must be a UUID.
pub fn parse_run(run_id: &str) -> Result<[u8; 16], MetricError> {
    uuid::Uuid::parse_str(run_id)
        .map(|u| *u.as_bytes())
        .map_err(|_| bad(format!("invalid run_id `{run_id}`: must be a UUID")))
}

/// One point as the Metric Service returns it (its fields in alphabetical order, as
/// they have always been written). Serialised directly: a page holds up to 10,000.
#[derive(Serialize)]
pub struct PointOut<'a> {
    metadata: &'a RawValue,
    metric_name: &'a str,
    run_id: &'a str,
    step: Option<i64>,
    time: String,
    value: f64,
}

impl<'a> PointOut<'a> {
    /// A point as read.
    pub fn new(run_id: &'a str, p: &'a Point) -> PointOut<'a> {
        PointOut::of(
            run_id,
            &p.metric,
            p.step,
            p.value,
            p.time_ns,
            p.metadata_json.as_deref(),
        )
    }

    /// A point as written (pushed to live streams as it is applied).
    pub fn written(run_id: &'a str, p: &'a PointIn) -> PointOut<'a> {
        PointOut::of(
            run_id,
            &p.metric,
            p.step,
            p.value,
            p.time_ns,
            p.metadata_json.as_deref(),
        )
    }

    fn of(
        run_id: &'a str,
        metric_name: &'a str,
        step: Option<i64>,
        value: f64,
        time_ns: i64,
        metadata_json: Option<&'a str>,
    ) -> PointOut<'a> {
        // The stored metadata is the compact JSON of an object, written by the edge.
        let empty = || serde_json::from_str("{}").expect("an empty object is JSON");
        let metadata = metadata_json
            .and_then(|m| serde_json::from_str(m).ok())
            .unwrap_or_else(empty);
        PointOut {
            metadata,
            metric_name,
            run_id,
            step,
            time: rfc3339(time_ns),
            value,
        }
    }
}
