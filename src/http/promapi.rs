//! Prometheus-compatible discovery over metacenter's own points (**new**): each series
//! is `{__name__=<metric>, run_id=<run>}` of the request's tenant. `/api/v1/series`
//! (with `match[]` selectors and an optional `start`/`end` overlap filter),
//! `/api/v1/labels`, `/api/v1/label/{name}/values`, and `/api/v1/metadata` from the
//! tenant's metric metadata catalog. Answers and errors use Prometheus' envelope.
//! As in Prometheus, `POST /api/v1/series` and `POST /api/v1/labels` take their
//! parameters in an `application/x-www-form-urlencoded` body (what Grafana sends), read
//! together with the query string.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::error::ApiError;
use super::common::render;
use super::common::tenant::header as tenant;
use super::openapi::metric as doc;
use super::openapi::metric::PromError as Err;
use crate::state::AppState;

type St = State<Arc<AppState>>;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(series, series_post))
        .routes(routes!(labels, labels_post))
        .routes(routes!(label_values))
        .routes(routes!(metadata))
}

fn bad_data(msg: impl Into<String>) -> Response {
    render::prometheus(&ApiError::bad_request(msg))
}

/// A failed read (storage included): 500 with `errorType` `internal`, as these routes
/// have always answered it, where the other areas answer a storage failure 503; a
/// Prometheus client reads both as a failed query.
fn internal(e: impl std::fmt::Display) -> Response {
    render::prometheus(&ApiError::internal(e))
}

fn success(data: Value) -> Response {
    Json(json!({"status": "success", "data": data})).into_response()
}

/// One label matcher of a selector.
#[derive(Debug)]
pub enum Matcher {
    Eq(String, String),
    Ne(String, String),
    Re(String, regex::Regex, bool),
}

impl Matcher {
    pub fn matches(&self, labels: &BTreeMap<&str, String>) -> bool {
        let get = |k: &str| labels.get(k).map_or("", String::as_str);
        match self {
            Matcher::Eq(k, v) => get(k) == v,
            Matcher::Ne(k, v) => get(k) != v,
            Matcher::Re(k, re, want) => re.is_match(get(k)) == *want,
        }
    }
}

/// Parses `name`, `name{l="v",...}` or `{l=~"re",...}` (ops `=`, `!=`, `=~`, `!~`).
pub fn parse_selector(sel: &str) -> Result<Vec<Matcher>, String> {
    let sel = sel.trim();
    let (name, rest) = match sel.find('{') {
        Some(i) => (&sel[..i], &sel[i..]),
        None => (sel, ""),
    };
    let mut out = Vec::new();
    let name = name.trim();
    if !name.is_empty() {
        out.push(Matcher::Eq("__name__".into(), name.into()));
    }
    if !rest.is_empty() {
        let inner = rest
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .ok_or_else(|| format!("`{sel}`: unbalanced braces"))?;
        let mut s = inner.trim();
        while !s.is_empty() {
            let (m, tail) = parse_matcher(s).map_err(|e| format!("`{sel}`: {e}"))?;
            out.push(m);
            s = tail.trim_start();
            s = s.strip_prefix(',').unwrap_or(s).trim_start();
        }
    }
    if out.is_empty() {
        return Err(format!(
            "`{sel}`: a selector needs a metric name or a matcher"
        ));
    }
    Ok(out)
}

fn parse_matcher(s: &str) -> Result<(Matcher, &str), String> {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .ok_or("expected an operator after the label name")?;
    let (label, rest) = (s[..end].to_string(), s[end..].trim_start());
    let (op, rest) = ["=~", "!~", "!=", "="]
        .iter()
        .find_map(|op| rest.strip_prefix(op).map(|r| (*op, r.trim_start())))
        .ok_or_else(|| format!("expected =, !=, =~ or !~ after `{label}`"))?;
    let rest = rest
        .strip_prefix('"')
        .ok_or("label values must be quoted")?;
    let mut value = String::new();
    let mut chars = rest.char_indices();
    let close = loop {
        match chars.next() {
            Some((_, '\\')) => value.push(chars.next().ok_or("unterminated string")?.1),
            Some((i, '"')) => break i,
            Some((_, c)) => value.push(c),
            None => return Err("unterminated string".into()),
        }
    };
    let tail = &rest[close + 1..];
    let m = match op {
        "=" => Matcher::Eq(label, value),
        "!=" => Matcher::Ne(label, value),
        _ => {
            let re = regex::Regex::new(&format!("^(?:{value})$")).map_err(|e| e.to_string())?;
            Matcher::Re(label, re, op == "=~")
        }
    };
    Ok((m, tail))
}

/// The selectors and time range of a request's query string.
pub struct Filter {
    pub selectors: Vec<Vec<Matcher>>,
    pub start_ns: i64,
    pub end_ns: i64,
}

fn time_param(v: &str) -> Result<i64, String> {
    if let Ok(secs) = v.parse::<f64>() {
        return Ok((secs * 1e9) as i64);
    }
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| t.timestamp_nanos_opt().unwrap_or(i64::MAX))
        .map_err(|_| format!("invalid time `{v}`"))
}

pub fn parse_filter(query: Option<&str>) -> Result<Filter, String> {
    let mut f = Filter {
        selectors: Vec::new(),
        start_ns: i64::MIN,
        end_ns: i64::MAX,
    };
    for (k, v) in form_pairs(query.unwrap_or("")) {
        match k.as_str() {
            "match[]" => f.selectors.push(parse_selector(&v)?),
            "start" => f.start_ns = time_param(&v)?,
            "end" => f.end_ns = time_param(&v)?,
            _ => {}
        }
    }
    Ok(f)
}

fn form_pairs(q: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(q).unwrap_or_default()
}

/// The tenant's series as label sets, filtered.
async fn matching(
    s: &AppState,
    tenant: String,
    f: Filter,
) -> Result<Vec<BTreeMap<&'static str, String>>, Response> {
    let all = s
        .read_store(move |st| st.tenant_series(&tenant))
        .await
        .map_err(internal)?;
    Ok(all
        .into_iter()
        .filter(|(_, _, agg)| agg.last_ns >= f.start_ns && agg.first_ns <= f.end_ns)
        .map(|(run, metric, _)| {
            BTreeMap::from([
                ("__name__", metric),
                ("run_id", uuid::Uuid::from_bytes(run).to_string()),
            ])
        })
        .filter(|l| {
            f.selectors.is_empty() || f.selectors.iter().any(|ms| ms.iter().all(|m| m.matches(l)))
        })
        .collect())
}

/// The tenant's series matching `match[]`, as label sets
#[utoipa::path(get, path = "/api/v1/series", tag = "prometheus",
    params(doc::SeriesQuery, doc::TenantHeader),
    responses((status = 200, description = "Series", body = doc::PromSeries),
        (status = 400, description = "Bad selector, time or X-Tenant-ID (errorType bad_data)", body = Err)))]
async fn series(State(s): St, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    series_of(&s, &headers, q.as_deref()).await
}

/// The same as `GET`, with the parameters in a form body and/or the query string
#[utoipa::path(post, path = "/api/v1/series", tag = "prometheus",
    params(doc::SeriesQuery, doc::TenantHeader),
    request_body(content = doc::SeriesForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Series", body = doc::PromSeries),
        (status = 400, description = "Bad selector, time, body or X-Tenant-ID (errorType bad_data)", body = Err)))]
async fn series_post(
    State(s): St,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    match with_form(q, &headers, &body) {
        Ok(q) => series_of(&s, &headers, Some(&q)).await,
        Err(e) => bad_data(e),
    }
}

async fn series_of(s: &AppState, headers: &HeaderMap, q: Option<&str>) -> Response {
    let t = match tenant(headers) {
        Ok(t) => t,
        Err(e) => return bad_data(e),
    };
    let f = match parse_filter(q) {
        Ok(f) if f.selectors.is_empty() => return bad_data("no match[] parameter provided"),
        Ok(f) => f,
        Err(e) => return bad_data(e),
    };
    match matching(s, t, f).await {
        Ok(series) => success(json!(series)),
        Err(r) => r,
    }
}

/// The query string followed by the form body, as one query (Prometheus reads both).
/// A non-empty body of another content type is refused rather than ignored.
fn with_form(q: Option<String>, headers: &HeaderMap, body: &[u8]) -> Result<String, &'static str> {
    let mut q = q.unwrap_or_default();
    if body.is_empty() {
        return Ok(q);
    }
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return Err("a POST body must be application/x-www-form-urlencoded");
    }
    let body = std::str::from_utf8(body).map_err(|_| "the form body is not valid UTF-8")?;
    if !q.is_empty() {
        q.push('&');
    }
    q.push_str(body);
    Ok(q)
}

/// Label names of the tenant's series (optionally of `match[]`)
#[utoipa::path(get, path = "/api/v1/labels", tag = "prometheus",
    params(doc::SeriesQuery, doc::TenantHeader),
    responses((status = 200, description = "Label names", body = doc::PromStrings),
        (status = 400, description = "Bad selector, time or X-Tenant-ID (errorType bad_data)", body = Err)))]
async fn labels(State(s): St, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    labels_of(&s, &headers, q.as_deref()).await
}

/// The same as `GET`, with the parameters in a form body and/or the query string
#[utoipa::path(post, path = "/api/v1/labels", tag = "prometheus",
    params(doc::SeriesQuery, doc::TenantHeader),
    request_body(content = doc::SeriesForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Label names", body = doc::PromStrings),
        (status = 400, description = "Bad selector, time, body or X-Tenant-ID (errorType bad_data)", body = Err)))]
async fn labels_post(
    State(s): St,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    match with_form(q, &headers, &body) {
        Ok(q) => labels_of(&s, &headers, Some(&q)).await,
        Err(e) => bad_data(e),
    }
}

async fn labels_of(s: &AppState, headers: &HeaderMap, q: Option<&str>) -> Response {
    let (t, f) = match (tenant(headers), parse_filter(q)) {
        (Ok(t), Ok(f)) => (t, f),
        (Err(e), _) => return bad_data(e),
        (_, Err(e)) => return bad_data(e),
    };
    match matching(s, t, f).await {
        Ok(series) => {
            let names: BTreeSet<&str> = series.iter().flat_map(|l| l.keys().copied()).collect();
            success(json!(names))
        }
        Err(r) => r,
    }
}

/// Values of one label over the tenant's series (optionally of `match[]`)
#[utoipa::path(get, path = "/api/v1/label/{name}/values", tag = "prometheus",
    params(("name" = String, Path, description = "Label name, e.g. `__name__` or `run_id`"),
        doc::SeriesQuery, doc::TenantHeader),
    responses((status = 200, description = "Label values", body = doc::PromStrings),
        (status = 400, description = "Bad selector, time or X-Tenant-ID (errorType bad_data)", body = Err)))]
async fn label_values(
    State(s): St,
    Path(name): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let (t, f) = match (tenant(&headers), parse_filter(q.as_deref())) {
        (Ok(t), Ok(f)) => (t, f),
        (Err(e), _) => return bad_data(e),
        (_, Err(e)) => return bad_data(e),
    };
    match matching(&s, t, f).await {
        Ok(series) => {
            let values: BTreeSet<&String> =
                series.iter().filter_map(|l| l.get(name.as_str())).collect();
            success(json!(values))
        }
        Err(r) => r,
    }
}

/// Type, help and unit of the tenant's metrics, from the metadata catalog
#[utoipa::path(get, path = "/api/v1/metadata", tag = "prometheus",
    params(("metric" = Option<String>, Query, description = "Only this metric"),
        ("limit" = Option<i64>, Query, description = "At most this many metrics (<= 0: all)"),
        doc::TenantHeader),
    responses((status = 200, description = "Metadata per metric", body = doc::PromMetadata),
        (status = 400, description = "Bad selector, time or X-Tenant-ID (errorType bad_data)", body = Err)))]
async fn metadata(State(s): St, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let t = match tenant(&headers) {
        Ok(t) => t,
        Err(e) => return bad_data(e),
    };
    let pairs = form_pairs(q.as_deref().unwrap_or(""));
    let metric = pairs
        .iter()
        .find(|(k, _)| k == "metric")
        .map(|(_, v)| v.clone());
    let limit = match pairs.iter().find(|(k, _)| k == "limit") {
        Some((_, v)) => match v.parse::<i64>() {
            Ok(n) if n > 0 => n as usize,
            Ok(_) => usize::MAX,
            Err(_) => return bad_data(format!("invalid limit `{v}`")),
        },
        None => usize::MAX,
    };
    // One metric is one key (Grafana asks per metric); only the list scans, and only
    // as far as `limit`.
    let docs = match metric {
        Some(m) => s.node.store().catalog_doc(&t, &m).map(Vec::from_iter),
        None => {
            s.read_store(move |st| st.catalog_docs_first(&t, limit))
                .await
        }
    };
    let docs = match docs {
        Ok(d) => d,
        Err(e) => return internal(e),
    };
    let mut out = serde_json::Map::new();
    for d in docs {
        if out.len() >= limit {
            break;
        }
        let entry = json!([{ "type": d.kind, "help": d.help, "unit": d.unit }]);
        out.insert(d.name, entry);
    }
    success(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(name: &str, run: &str) -> BTreeMap<&'static str, String> {
        BTreeMap::from([("__name__", name.to_string()), ("run_id", run.to_string())])
    }

    #[test]
    fn selectors_match_like_prometheus() {
        let l = labels("train_loss", "r1");
        let ok = |sel: &str| parse_selector(sel).unwrap().iter().all(|m| m.matches(&l));
        assert!(ok("train_loss"));
        assert!(ok(r#"{__name__="train_loss"}"#));
        assert!(ok(r#"train_loss{run_id="r1"}"#));
        assert!(ok(r#"{__name__=~"train_.*", run_id!="r2"}"#));
        assert!(!ok(r#"{__name__!~"train_.*"}"#));
        assert!(!ok(r#"{__name__=~"loss"}"#), "regexes are anchored");
        for bad in ["", "{}", r#"{a="x""#, r#"{a=x}"#, r#"{a=~"("}"#, "{a}"] {
            assert!(parse_selector(bad).is_err(), "{bad}");
        }
    }

    /// Errors before any handler (404, 405, authentication) pick the envelope by path
    /// in the shared layer: every route of this area must be among its paths.
    #[test]
    fn every_route_answers_in_prometheus_envelope() {
        use crate::http::common::routes::Shape;
        let doc = router().into_openapi();
        assert!(doc.paths.paths.len() >= 4);
        for path in doc.paths.paths.keys() {
            assert_eq!(Shape::of(path), Shape::Prometheus, "{path}");
        }
    }
}
