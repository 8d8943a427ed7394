//! `GET /openapi.json` on an in-process node with authentication on: the document is
//! open without a token, parses as OpenAPI 3, names every route of the API (the
//! explicit list below; a route added without documentation, or dropped, fails here),
//! every `$ref` resolves and every `{param}` of a path is declared. Then each
//! documented operation is called: without a token it gets the documented 401 in the
//! documented envelope, and with an admin token it reaches its handler (not the
//! router's fallback) and answers one of its documented statuses.
//!
//! A path whose percent-escapes are not UTF-8 is a 400 in every area's envelope: a
//! table run by `common::bad_input`.

mod common;

use std::collections::BTreeSet;

use common::bad_input::{self, row, Case, NO_BODY, NO_HEADERS};
use common::{answer, Node, Reply};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Every operation of the client API, as `METHOD path` in OpenAPI's path syntax.
const ROUTES: &[&str] = &[
    "GET /health",
    "GET /ready",
    "GET /status",
    "GET /leader",
    "GET /role",
    "GET /cluster/members",
    "POST /cluster/init",
    "POST /cluster/add",
    "POST /cluster/remove",
    "GET /cluster/backup",
    "GET /metrics",
    "POST /log/level",
    "GET /meta",
    "GET /meta/{hash}",
    "PUT /meta/{hash}",
    "PATCH /meta/{hash}",
    "DELETE /meta/{hash}",
    "GET /meta/{hash}/{key}",
    "PUT /meta/{hash}/{key}",
    "DELETE /meta/{hash}/{key}",
    "POST /meta/{hash}/{key}",
    "GET /data/{hash}/path",
    "HEAD /data/{hash}",
    "GET /file/{cid}",
    "POST /file/cid",
    "GET /services",
    "GET /services/{name}",
    "PUT /services/{name}",
    "DELETE /services/{name}",
    "POST /services/{name}/heartbeat",
    "GET /v1/load/stats",
    "POST /v1/load/stats",
    "DELETE /v1/load/stats",
    "DELETE /v1/load/prompt",
    "POST /v1/load/batch",
    "POST /api/v1/metrics/batch",
    "POST /api/v1/metrics/system/batch",
    "GET /api/v1/runs",
    "GET /api/v1/runs/{run_id}/metrics",
    "GET /api/v1/runs/{run_id}/metrics/{metric_name}",
    "GET /api/v1/runs/{run_id}/metrics/{metric_name}/latest",
    "GET /api/v1/runs/{run_id}/metrics/{metric_name}/stats",
    "GET /api/v1/runs/{run_id}/system-metrics",
    "GET /ws/metrics/{run_id}",
    "POST /api/v1/metrics/search",
    "POST /api/v1/metrics/sync",
    "GET /api/v1/metrics/sync/config",
    "PUT /api/v1/metrics/sync/config",
    "POST /api/v1/metrics/sync/{tenant}",
    "GET /api/v1/metrics/sync/{tenant}/state",
    "GET /api/v1/metrics/sync/{tenant}/status",
    "GET /api/v1/metrics/health",
    "GET /api/v1/series",
    "POST /api/v1/series",
    "GET /api/v1/labels",
    "POST /api/v1/labels",
    "GET /api/v1/label/{name}/values",
    "GET /api/v1/metadata",
    "GET /openapi.json",
    "GET /ui",
    "GET /ui/",
    "GET /ui/assets/{file}",
    "GET /ui/api/cluster",
    "GET /ui/api/load",
];

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "head", "patch", "options", "trace",
];
const OPEN: [&str; 7] = [
    "/health",
    "/ready",
    "/metrics",
    "/openapi.json",
    "/ui",
    "/ui/",
    "/ui/assets/{file}",
];
const ADMIN: &str = "adm";

/// One documented operation.
struct Op<'a> {
    method: String,
    path: &'a str,
    doc: &'a Value,
}

fn operations(doc: &Value) -> Vec<Op<'_>> {
    let paths = doc["paths"].as_object().expect("paths");
    let mut ops = Vec::new();
    for (path, item) in paths {
        for m in METHODS.iter().filter(|m| item.get(**m).is_some()) {
            ops.push(Op {
                method: m.to_uppercase(),
                path,
                doc: &item[*m],
            });
        }
    }
    ops
}

async fn fetch_document(n: &Node) -> Value {
    let (status, doc) = answer(n.request(Method::GET, "/openapi.json")).await;
    assert_eq!(status, StatusCode::OK, "open without a token: {doc}");
    doc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_covers_every_route_and_each_answers_as_documented() {
    let mut n = Node::single(&[("auth.tokens", &format!("{ADMIN}:admin"))]).await;
    let doc = fetch_document(&n).await;
    let parsed: utoipa::openapi::OpenApi =
        serde_json::from_value(doc.clone()).expect("the document parses as OpenAPI");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    assert!(parsed
        .components
        .is_some_and(|c| c.security_schemes.contains_key("bearer")));

    let documented: BTreeSet<String> = operations(&doc)
        .iter()
        .map(|o| format!("{} {}", o.method, o.path))
        .collect();
    let expected: BTreeSet<String> = ROUTES.iter().map(|r| r.to_string()).collect();
    let missing: Vec<_> = expected.difference(&documented).collect();
    let unlisted: Vec<_> = documented.difference(&expected).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the document: {missing:?}"
    );
    assert!(
        unlisted.is_empty(),
        "documented but not in ROUTES: {unlisted:?}"
    );

    check_structure(&doc);
    for op in operations(&doc) {
        check_unauthenticated(&n, &doc, &op).await;
        check_routed(&n, &op).await;
    }
    n.stop().await;
}

/// Every `$ref` resolves, operation ids are unique, every path parameter is declared,
/// every operation has responses.
fn check_structure(doc: &Value) {
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    let mut refs = Vec::new();
    collect_refs(doc, &mut refs);
    for r in refs {
        let name = r
            .strip_prefix("#/components/schemas/")
            .expect("a schema ref");
        assert!(schemas.contains_key(name), "unresolved $ref {r}");
    }
    let mut ids = BTreeSet::new();
    for op in operations(doc) {
        let id = op.doc["operationId"].as_str().expect("operationId");
        assert!(ids.insert(id.to_string()), "duplicate operationId {id}");
        assert!(!op.doc["responses"]
            .as_object()
            .expect("responses")
            .is_empty());
        let declared: BTreeSet<&str> = op.doc["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str())
            .collect();
        for segment in op.path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                assert!(
                    declared.contains(name),
                    "{} {}: {{{name}}} undeclared",
                    op.method,
                    op.path
                );
            }
        }
    }
}

fn collect_refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r);
            }
            m.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// The path with sample values for its parameters (a `_add/` key, so that POST on a
/// property reaches the set-add handler).
fn concrete(path: &str) -> String {
    path.replace("{hash}", "h1")
        .replace("{key}", "_add/tags")
        .replace("{cid}", "bafkreinone")
        .replace("{name}", "svc")
        .replace("{run_id}", "5b1f0c2e-9d3a-4e7b-8c6d-0a1b2c3d4e5f")
        .replace("{metric_name}", "loss")
        .replace("{tenant}", "default")
}

fn request(n: &Node, op: &Op<'_>) -> reqwest::RequestBuilder {
    let method = Method::from_bytes(op.method.as_bytes()).expect("method");
    n.request(method, &concrete(op.path))
}

/// The schema name a documented response refers to, if any.
fn response_schema<'a>(op: &'a Op<'_>, status: StatusCode) -> Option<&'a str> {
    op.doc["responses"][status.as_str()]["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
}

/// Without a token: 401 for a guarded operation, its body has the required fields of
/// the documented envelope.
async fn check_unauthenticated(n: &Node, doc: &Value, op: &Op<'_>) {
    if OPEN.contains(&op.path) {
        return;
    }
    let (status, body) = answer(request(n, op)).await;
    let what = format!("{} {} without a token", op.method, op.path);
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
    let schema = response_schema(op, status).unwrap_or_else(|| panic!("{what}: no 401 schema"));
    let required = doc["components"]["schemas"][schema]["required"]
        .as_array()
        .unwrap_or_else(|| panic!("{schema} has required fields"));
    if op.method == "HEAD" {
        return; // no body to look at
    }
    for field in required.iter().filter_map(Value::as_str) {
        assert!(
            body.get(field).is_some(),
            "{what}: `{field}` of {schema} missing in {body}"
        );
    }
}

/// With an admin token and no body: the handler answers (not the router's fallback),
/// with a documented status.
async fn check_routed(n: &Node, op: &Op<'_>) {
    let (status, body) = answer(request(n, op).bearer_auth(ADMIN)).await;
    let what = format!("{} {}", op.method, op.path);
    let text = body.to_string();
    assert!(
        !text.contains("no route for") && !text.contains("is not allowed on"),
        "{what} is not routed: {status} {text}"
    );
    assert!(
        op.doc["responses"].get(status.as_str()).is_some(),
        "{what}: status {status} is not documented ({text})"
    );
}

/// The refusal's text is in its area's field: Prometheus's `errorType`, the Metric
/// Service's `error`, meta-core's `message`.
fn text_field(case: &Case, r: &Reply) -> Result<(), String> {
    let field = match case.path.as_str() {
        p if p.starts_with("/api/v1/label/") => "errorType",
        p if p.starts_with("/api/") || p.starts_with("/ws/") => "error",
        _ => "message",
    };
    let body = r.json();
    match body[field].is_string() {
        true => Ok(()),
        false => Err(format!("`{field}` in {body}")),
    }
}

/// Regression: a path parameter whose percent-escapes are not UTF-8 was answered by
/// axum's plain-text rejection in every area; it is a 400 in the area's envelope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_that_is_not_utf8_gets_a_400_in_the_area_envelope() {
    let mut n = Node::single(&[]).await;
    let get = |path: &str| row(Method::GET, path, NO_HEADERS, NO_BODY, 400, "not UTF-8");
    let table = [
        get("/meta/%FF"),
        get("/meta/a/%FF"),
        get("/services/%FF"),
        get("/data/%FF/path"),
        get("/api/v1/runs/%FF/metrics"),
        get("/api/v1/metrics/sync/%FF/state"),
        get("/api/v1/label/%FF/values"),
        get("/ws/metrics/%FF"),
    ];
    bad_input::run_shaped(&n, &table, text_field).await;
    n.stop().await;
}
