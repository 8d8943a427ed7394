//! Input of the Metric Service: the tenant of a request, batch bodies and their points
//! (validated against the edge limits), history query parameters and cursors.

use axum::http::HeaderMap;
use metacenter_storage::{BucketBy, Cursor, PointIn, PointQuery, SystemPointIn};
use serde_json::{json, Value};

use crate::config::EdgeLimits;
use crate::http::common::body::{self, Body};
use crate::http::common::metric_error::{bad, MetricError};
use crate::http::common::{metric_name, query, tenant as tenant_rule};
use crate::state::AppState;

/// Most points a history read returns.
pub const MAX_LIMIT: usize = 10_000;
const DEFAULT_LIMIT: usize = 1000;

/// The tenant of a request: `X-Tenant-ID`, default `default` ([`tenant_rule::header`]).
pub fn tenant(headers: &HeaderMap) -> Result<String, MetricError> {
    tenant_rule::header(headers).map_err(bad)
}

fn parse_time(field: &str, s: &str) -> Result<i64, String> {
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .map_err(|e| format!("{field}: `{s}` is not RFC3339 ({e})"))?;
    t.timestamp_nanos_opt()
        .ok_or_else(|| format!("{field}: `{s}` is out of range"))
}

fn metadata_json(v: Option<&Value>, max: usize) -> Result<Option<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => {
            let text = serde_json::to_string(m).map_err(|e| e.to_string())?;
            if text.len() > max {
                return Err(format!("metadata: larger than {max} bytes as JSON"));
            }
            Ok(Some(text))
        }
        Some(_) => Err("metadata: must be an object".into()),
    }
}

fn items(s: &AppState, body: Body) -> Result<Vec<Value>, MetricError> {
    let bytes = body::read(body, s.cfg.max_body_bytes)?;
    batch_items(&bytes, s.cfg.points_max_batch)
}

/// The items of a batch body `{"metrics": [...]}`: 1 to `max` of them.
pub fn batch_items(bytes: &[u8], max: usize) -> Result<Vec<Value>, MetricError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    let Some(Value::Array(items)) = v.get("metrics").cloned() else {
        return Err(bad("body must be {\"metrics\": [...]}"));
    };
    if items.is_empty() || items.len() > max {
        return Err(bad(format!(
            "metrics must hold 1 to {max} items, got {}",
            items.len()
        )));
    }
    Ok(items)
}

pub fn point_in(item: &Value, now: i64, lim: &EdgeLimits) -> Result<PointIn, String> {
    let o = item.as_object().ok_or("must be an object")?;
    let run = o
        .get("run_id")
        .and_then(Value::as_str)
        .ok_or("run_id: required string")?;
    let run_id = *uuid::Uuid::parse_str(run)
        .map_err(|_| format!("run_id: `{run}` is not a UUID"))?
        .as_bytes();
    let metric = o
        .get("metric_name")
        .and_then(Value::as_str)
        .ok_or("metric_name: required string")?;
    metric_name::check(metric).map_err(|e| format!("metric_name: {e}"))?;
    let step = match o.get("step") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().ok_or("step: must be an integer or null")?),
    };
    let value = o
        .get("value")
        .and_then(Value::as_f64)
        .ok_or("value: required number")?;
    if !value.is_finite() {
        return Err("value: must be finite".into());
    }
    let time_ns = match o.get("time") {
        None | Some(Value::Null) => now,
        Some(Value::String(t)) => parse_time("time", t)?,
        Some(_) => return Err("time: must be an RFC3339 string".into()),
    };
    let metadata_json = metadata_json(o.get("metadata"), lim.point_metadata)?;
    Ok(PointIn {
        run_id,
        metric: metric.to_string(),
        step,
        value,
        time_ns,
        metadata_json,
    })
}

pub fn system_point_in(item: &Value, now: i64, lim: &EdgeLimits) -> Result<SystemPointIn, String> {
    let o = item.as_object().ok_or("must be an object")?;
    let mut as_point = o.clone();
    let kind = o
        .get("metric_type")
        .and_then(Value::as_str)
        .ok_or("metric_type: required string")?;
    as_point.insert("metric_name".into(), json!(kind));
    let p = point_in(&Value::Object(as_point), now, lim)
        .map_err(|e| e.replace("metric_name", "metric_type"))?;
    Ok(SystemPointIn {
        run_id: p.run_id,
        metric_type: p.metric,
        value: p.value,
        time_ns: p.time_ns,
        metadata_json: p.metadata_json,
    })
}

/// Parses every item of a batch with `parse` (naming the first bad item and field)
/// and stamps the receiving node's time into items without one.
pub(super) fn parse_items<T>(
    s: &AppState,
    body: Body,
    parse: fn(&Value, i64, &EdgeLimits) -> Result<T, String>,
) -> Result<Vec<T>, MetricError> {
    let now = crate::clock::now_ns() as i64;
    items(s, body)?
        .iter()
        .enumerate()
        .map(|(i, it)| parse(it, now, &s.cfg.limits).map_err(|e| bad(format!("metrics[{i}].{e}"))))
        .collect()
}

/// Query parameters of history reads.
pub struct HistoryParams {
    pub(super) q: PointQuery,
    pub(super) metric_name: Option<String>,
    pub(super) downsample: Option<usize>,
    /// Buckets over one metric's whole range ([`MAX_BUCKETS`] at most).
    pub(super) buckets: Option<usize>,
    /// What the buckets cut (`bucket_by=time|step`, default time).
    pub(super) bucket_by: BucketBy,
}

/// Most buckets a read asks for (each gives at most two points).
pub const MAX_BUCKETS: usize = 5000;

pub(super) fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), query::decode(v)))
        .collect()
}

fn num<T: std::str::FromStr>(k: &str, v: &str) -> Result<T, MetricError> {
    v.parse().map_err(|_| bad(format!("invalid {k}: `{v}`")))
}

pub fn history_params(raw: Option<&str>) -> Result<HistoryParams, MetricError> {
    let mut p = HistoryParams {
        q: PointQuery {
            limit: DEFAULT_LIMIT,
            ..Default::default()
        },
        metric_name: None,
        downsample: None,
        buckets: None,
        bucket_by: BucketBy::Time,
    };
    for (k, v) in query_pairs(raw) {
        match k.as_str() {
            "start_time" => p.q.start_ns = Some(parse_time("start_time", &v).map_err(bad)?),
            "end_time" => p.q.end_ns = Some(parse_time("end_time", &v).map_err(bad)?),
            "min_step" => p.q.min_step = Some(num(&k, &v)?),
            "max_step" => p.q.max_step = Some(num(&k, &v)?),
            "limit" => p.q.limit = num::<usize>(&k, &v)?.clamp(1, MAX_LIMIT),
            "metric_name" if !v.is_empty() => p.metric_name = Some(v),
            "cursor" => p.q.after = Some(decode_cursor(&v).ok_or_else(|| bad("invalid cursor"))?),
            "downsample" => p.downsample = Some(num::<usize>(&k, &v)?.max(2)),
            "buckets" => p.buckets = Some(buckets(&v)?),
            "bucket_by" => p.bucket_by = bucket_by(&v)?,
            _ => {}
        }
    }
    Ok(p)
}

fn buckets(v: &str) -> Result<usize, MetricError> {
    match v.parse::<usize>() {
        Ok(n) if (1..=MAX_BUCKETS).contains(&n) => Ok(n),
        _ => Err(bad(format!(
            "buckets must be 1 to {MAX_BUCKETS}, got `{v}`"
        ))),
    }
}

fn bucket_by(v: &str) -> Result<BucketBy, MetricError> {
    match v {
        "time" => Ok(BucketBy::Time),
        "step" => Ok(BucketBy::Step),
        _ => Err(bad(format!(
            "bucket_by must be `time` or `step`, got `{v}`"
        ))),
    }
}

/// Cursor text: hex of `time(8) tie(12) metric`.
pub fn encode_cursor(c: &Cursor) -> String {
    let mut b = c.time_ns.to_be_bytes().to_vec();
    b.extend_from_slice(&c.tie);
    b.extend_from_slice(c.metric.as_bytes());
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn decode_cursor(s: &str) -> Option<Cursor> {
    if !s.len().is_multiple_of(2) || s.len() < 40 {
        return None;
    }
    let b: Vec<u8> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect::<Option<_>>()?;
    Some(Cursor {
        time_ns: i64::from_be_bytes(b[..8].try_into().ok()?),
        tie: b[8..20].try_into().ok()?,
        metric: String::from_utf8(b[20..].to_vec()).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip() {
        let c = Cursor {
            time_ns: -5,
            metric: "loss/train".into(),
            tie: [7; 12],
        };
        assert_eq!(decode_cursor(&encode_cursor(&c)), Some(c));
        assert_eq!(decode_cursor("zz"), None);
    }
}
