//! `GET /api/v1/runs` (**new**): a tenant's runs, newest first (by the newest point of
//! any of their metrics, then run id), a page at a time, each with its metrics' names,
//! point counts and first and last times; `run_id=a,b` reads only the runs named. Read from the series aggregates apply keeps,
//! so no point is decoded. Tenant from `X-Tenant-ID`, as the other points routes.
//!
//! The `next` cursor names the last run of a page (its newest time and id); the next
//! page starts strictly after it. A run that gets new points while a client pages
//! moves to the front, so a listing taken page by page may miss or repeat it, as any
//! listing ordered by a changing value does.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use metacenter_storage::RunSummary;
use serde::Serialize;

use super::input::{query_pairs, tenant};
use crate::clock::rfc3339;
use crate::http::common::consistency::wants_linearizable;
use crate::http::common::metric_error::{bad, MetricError};
use crate::http::common::point::parse_run;
use crate::http::common::response::json_response;
use crate::http::openapi::metadata::{ConsistencyHeader, ConsistencyQuery};
use crate::http::openapi::metric as doc;
use crate::http::openapi::MetricErrorBody as Err;
use crate::state::AppState;

/// Runs per page by default, and at most.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// Where a page ends: the newest time and the id of its last run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct After {
    last_ns: i64,
    run: [u8; 16],
}

impl After {
    fn of(r: &RunSummary) -> After {
        After {
            last_ns: r.last_ns(),
            run: r.run,
        }
    }

    /// Whether `r` comes after this cursor in (newest time desc, run id asc) order.
    fn before(&self, r: &After) -> bool {
        (r.last_ns, self.run) < (self.last_ns, r.run)
    }

    fn encode(&self) -> String {
        let mut b = self.last_ns.to_be_bytes().to_vec();
        b.extend_from_slice(&self.run);
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn decode(s: &str) -> Option<After> {
        if s.len() != 48 || !s.is_ascii() {
            return None;
        }
        let b: Vec<u8> = (0..48)
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
            .collect::<Option<_>>()?;
        Some(After {
            last_ns: i64::from_be_bytes(b[..8].try_into().ok()?),
            run: b[8..].try_into().ok()?,
        })
    }
}

/// Most runs `run_id=` may name.
const MAX_NAMED: usize = 100;

struct Params {
    limit: usize,
    after: Option<After>,
    /// Only these runs (`run_id=a,b`).
    only: Option<Vec<[u8; 16]>>,
}

fn named_runs(v: &str) -> Result<Vec<[u8; 16]>, MetricError> {
    let runs: Vec<[u8; 16]> = v
        .split(',')
        .map(|r| parse_run(r.trim()))
        .collect::<Result<_, _>>()?;
    if runs.len() > MAX_NAMED {
        return Err(bad(format!("run_id names at most {MAX_NAMED} runs")));
    }
    Ok(runs)
}

fn params(raw: Option<&str>) -> Result<Params, MetricError> {
    let mut p = Params {
        limit: DEFAULT_LIMIT,
        after: None,
        only: None,
    };
    for (k, v) in query_pairs(raw) {
        match k.as_str() {
            "limit" => {
                let n: usize = v
                    .parse()
                    .map_err(|_| bad(format!("invalid limit: `{v}`")))?;
                p.limit = n.clamp(1, MAX_LIMIT);
            }
            "cursor" => p.after = Some(After::decode(&v).ok_or_else(|| bad("invalid cursor"))?),
            "run_id" => p.only = Some(named_runs(&v)?),
            _ => {}
        }
    }
    Ok(p)
}

#[derive(Serialize)]
struct MetricOut<'a> {
    metric_name: &'a str,
    count: u64,
    first_time: String,
    last_time: String,
}

#[derive(Serialize)]
struct RunOut<'a> {
    run_id: String,
    point_count: u64,
    last_time: String,
    metrics: Vec<MetricOut<'a>>,
}

#[derive(Serialize)]
struct PageOut<'a> {
    runs: Vec<RunOut<'a>>,
    count: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

fn run_out(r: &RunSummary) -> RunOut<'_> {
    let metrics = r
        .metrics
        .iter()
        .map(|(name, a)| MetricOut {
            metric_name: name,
            count: a.count,
            first_time: rfc3339(a.first_ns),
            last_time: rfc3339(a.last_ns),
        })
        .collect();
    RunOut {
        run_id: uuid::Uuid::from_bytes(r.run).to_string(),
        point_count: r.points(),
        last_time: rfc3339(r.last_ns()),
        metrics,
    }
}

/// The page of `runs` after `after`, newest first, and whether more follow.
fn page(mut runs: Vec<RunSummary>, p: &Params) -> (Vec<RunSummary>, bool) {
    runs.sort_by(|a, b| (b.last_ns(), a.run).cmp(&(a.last_ns(), b.run)));
    if let Some(after) = p.after {
        runs.retain(|r| after.before(&After::of(r)));
    }
    let more = runs.len() > p.limit;
    runs.truncate(p.limit);
    (runs, more)
}

/// A tenant's runs, newest first, with their metrics
#[utoipa::path(get, path = "/api/v1/runs", tag = "points",
    params(doc::RunsQuery, doc::TenantHeader, ConsistencyQuery, ConsistencyHeader),
    responses((status = 200, description = "A page of runs", body = doc::Runs),
        (status = 400, description = "Bad limit, cursor or X-Tenant-ID", body = Err),
        (status = 503, description = "No leader for a linearizable read", body = Err)))]
pub(super) async fn list_runs(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, MetricError> {
    let tenant = tenant(&headers)?;
    let p = params(q.as_deref())?;
    if wants_linearizable(&headers, q.as_deref()) {
        s.node.read_barrier().await?;
    }
    let only = p.only.clone();
    let runs = s
        .read_store(move |st| match only {
            None => st.tenant_runs(&tenant),
            Some(runs) => {
                let found = runs.iter().map(|r| st.run_summary(&tenant, r));
                found.filter_map(Result::transpose).collect()
            }
        })
        .await?;
    let (runs, more) = page(runs, &p);
    let next = more.then(|| runs.last().map(|r| After::of(r).encode()));
    let out = PageOut {
        count: runs.len(),
        runs: runs.iter().map(run_out).collect(),
        next: next.flatten(),
    };
    Ok(json_response(StatusCode::OK, &out, 256 + out.count * 256))
}

#[cfg(test)]
mod tests {
    use metacenter_storage::SeriesAgg;

    use super::*;

    fn run(id: u8, last_ns: i64) -> RunSummary {
        let agg = SeriesAgg {
            count: 1,
            last_ns,
            ..Default::default()
        };
        RunSummary {
            run: [id; 16],
            metrics: vec![("m".into(), agg)],
        }
    }

    #[test]
    fn pages_newest_first_and_resume_after_the_cursor() {
        let runs = vec![run(1, 10), run(2, 30), run(3, 30), run(4, 20)];
        let p = params(Some("limit=2")).unwrap();
        let (first, more) = page(runs.clone(), &p);
        let ids: Vec<u8> = first.iter().map(|r| r.run[0]).collect();
        assert_eq!((ids, more), (vec![2, 3], true));
        let cursor = After::of(first.last().unwrap()).encode();
        let p = params(Some(&format!("limit=2&cursor={cursor}"))).unwrap();
        let (second, more) = page(runs, &p);
        let ids: Vec<u8> = second.iter().map(|r| r.run[0]).collect();
        assert_eq!((ids, more), (vec![4, 1], false));
    }

    #[test]
    fn bad_parameters_are_named() {
        assert!(params(Some("limit=x")).is_err());
        assert!(params(Some("cursor=zz")).is_err());
        assert!(params(Some("run_id=nope")).is_err());
        let two =
            "run_id=5b1f0c2e-9d3a-4e7b-8c6d-0a1b2c3d4e5f,5b1f0c2e-9d3a-4e7b-8c6d-0a1b2c3d4e50";
        assert_eq!(params(Some(two)).unwrap().only.map(|o| o.len()), Some(2));
        let c = After {
            last_ns: -3,
            run: [9; 16],
        };
        assert_eq!(After::decode(&c.encode()), Some(c));
    }
}
