//! Client authentication (`auth.tokens`) over HTTP on an in-process node: a read token
//! cannot write in any area, a write token cannot administer, a missing or unknown
//! token is 401 in each area's envelope, /health, /ready and /metrics stay open, a
//! tenant-limited token reaches only its tenant through every route (header, search
//! body, sync path, WebSocket upgrade), and the right token works everywhere.
//!
//! The refused requests (403 and 401) are tables run by `common::bad_input`, each
//! answer checked against its area's envelope (`common::shape::area`).

mod common;

use common::bad_input::{self, json, row, Case, NO_BODY};
use common::ws::{self, next_json, refused};
use common::{answer, shape, until, Node, Reply};
use futures::SinkExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const TOKENS: &str = "rd:read,wr:write,adm:admin,ta:write:a";
const RUN: &str = "5b1f0c2e-9d3a-4e7b-8c6d-0a1b2c3d4e5f";

async fn node() -> Node {
    Node::single(&[("auth.tokens", TOKENS)]).await
}

/// `method path` with a bearer token, a tenant and a JSON body, each optional.
async fn call(
    n: &Node,
    method: Method,
    path: &str,
    token: Option<&str>,
    tenant: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = n.request(method, path);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(t) = tenant {
        req = req.header("X-Tenant-ID", t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    answer(req).await
}

fn points(names: &[&str]) -> Value {
    let metrics: Vec<Value> = names
        .iter()
        .map(|m| json!({ "run_id": RUN, "metric_name": m, "step": 1, "value": 0.5 }))
        .collect();
    json!({ "metrics": metrics })
}

/// One write per area without tenants or with the default tenant.
fn writes() -> Vec<(Method, &'static str, Value)> {
    vec![
        (Method::PUT, "/meta/obj1", json!({ "title": "Dune" })),
        (
            Method::PUT,
            "/services/indexer",
            json!({ "version": "1", "api": "http://10.0.0.5:9000" }),
        ),
        (
            Method::POST,
            "/v1/load/stats",
            json!({ "cluster": "c1", "request_id": "r1", "prompt_length": 5, "ip": "10.0.0.7" }),
        ),
        (Method::POST, "/api/v1/metrics/batch", points(&["loss"])),
    ]
}

/// A refusal in the envelope of its path's area.
fn in_area(case: &Case, r: &Reply) -> Result<(), String> {
    shape::area(&case.path, case.status(r), &r.json())
}

/// `method path` with `token` (and a tenant header) refused with `status`: the body
/// holds `fragment`.
fn as_token(
    token: &str,
    tenant: Option<&str>,
    (m, path, body): (Method, &str, Value),
    status: u16,
    fragment: &str,
) -> Case {
    let bearer = format!("Bearer {token}");
    let mut h = vec![("Authorization", bearer.as_str())];
    h.extend(tenant.map(|t| ("X-Tenant-ID", t)));
    let body = match body {
        Value::Null => NO_BODY,
        b => json(b),
    };
    row(m, path, &h, body, status, fragment)
}

#[tokio::test(flavor = "multi_thread")]
async fn read_token_cannot_write_and_write_token_can() {
    let n = node().await;
    let refused: Vec<Case> = writes()
        .into_iter()
        .map(|w| as_token("rd", None, w, 403, "role is read; this request needs write"))
        .collect();
    bad_input::run_shaped(&n, &refused, in_area).await;
    for (m, path, body) in writes() {
        let (st, b) = call(&n, m.clone(), path, Some("wr"), None, Some(body)).await;
        assert!(st.is_success(), "{m} {path} with a write token: {st} {b}");
    }
    let run_history = format!("/api/v1/runs/{RUN}/metrics");
    for path in [
        "/meta/obj1",
        "/services/indexer",
        "/v1/load/stats?cluster=c1",
        &run_history,
    ] {
        let (st, b) = call(&n, Method::GET, path, Some("rd"), None, None).await;
        assert_eq!(st, StatusCode::OK, "GET {path} with a read token: {b}");
    }
    let (_, b) = call(&n, Method::GET, &run_history, Some("rd"), None, None).await;
    assert_eq!(b["count"], 1, "{b}");
}

#[tokio::test(flavor = "multi_thread")]
async fn write_token_cannot_administer() {
    let n = node().await;
    let admin: [(Method, &str, Value); 4] = [
        (Method::POST, "/cluster/add", json!({})),
        (Method::POST, "/cluster/remove", json!({ "id": 9 })),
        (Method::POST, "/log/level", json!({ "LevelParam": "INFO" })),
        (
            Method::PUT,
            "/api/v1/metrics/sync/config",
            json!({ "interval": "20m" }),
        ),
    ];
    let mut refused: Vec<Case> = admin
        .iter()
        .map(|w| {
            as_token(
                "wr",
                None,
                w.clone(),
                403,
                "role is write; this request needs admin",
            )
        })
        .collect();
    // A sync trigger is a write.
    let trigger = (Method::POST, "/api/v1/metrics/sync/t1", Value::Null);
    refused.push(as_token("rd", None, trigger, 403, "needs write"));
    bad_input::run_shaped(&n, &refused, in_area).await;
    // With the admin token they reach their handlers.
    let expect = [
        StatusCode::BAD_REQUEST,
        StatusCode::BAD_REQUEST,
        StatusCode::OK,
        StatusCode::OK,
    ];
    for ((m, path, body), want) in admin.into_iter().zip(expect) {
        let (st, b) = call(&n, m.clone(), path, Some("adm"), None, Some(body)).await;
        assert_eq!(st, want, "{m} {path} with the admin token: {b}");
    }
    // A write token reaches it: no source configured, so the handler's 404.
    let (st, b) = call(
        &n,
        Method::POST,
        "/api/v1/metrics/sync/t1",
        Some("wr"),
        None,
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{b}");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_or_unknown_token_is_401_and_probes_stay_open() {
    let n = node().await;
    let run_history = format!("/api/v1/runs/{RUN}/metrics");
    let ws = format!("/ws/metrics/{RUN}");
    let mut unauthorized = Vec::new();
    for path in [
        "/meta/obj1",
        "/status",
        "/v1/load/stats?cluster=c1",
        &run_history,
        &ws,
        "/api/v1/series?match[]=up",
        "/api/v1/label/job/values",
    ] {
        for (auth, why) in [
            (None, "a bearer token is required"),
            (Some("Bearer nope"), "unknown bearer token"),
            (Some("Basic cmQ6"), "a bearer token is required"),
        ] {
            let h: Vec<_> = auth.map(|a| ("Authorization", a)).into_iter().collect();
            unauthorized.push(row(Method::GET, path, &h, NO_BODY, 401, why));
        }
    }
    // The query token is for WebSocket upgrades only.
    let query_token = "/meta/obj1?token=rd";
    let why = "a bearer token is required";
    unauthorized.push(row(Method::GET, query_token, &[], NO_BODY, 401, why));
    bad_input::run_shaped(&n, &unauthorized, |case, r| {
        in_area(case, r)?;
        // An unknown token is an invalid one; no bearer token at all gets the realm.
        let challenge = match case.header("Authorization") {
            Some("Bearer nope") => "invalid_token",
            _ => r#"Bearer realm="metacenter""#,
        };
        match r.header("www-authenticate") {
            Some(www) if www.contains(challenge) => Ok(()),
            www => Err(format!("WWW-Authenticate {www:?} without {challenge}")),
        }
    })
    .await;
    for path in ["/health", "/ready", "/metrics"] {
        let resp = n.request(Method::GET, path).send().await.expect("answer");
        assert_eq!(resp.status(), StatusCode::OK, "{path} is open");
    }
}

/// Waits until a search as `token` for `body` finds `name`.
async fn search_finds(n: &Node, token: &str, tenant: Option<&str>, body: Value, name: &str) {
    until(&format!("search finds {name}"), || async {
        let path = "/api/v1/metrics/search";
        let (st, b) = call(
            n,
            Method::POST,
            path,
            Some(token),
            tenant,
            Some(body.clone()),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{b}");
        let hit = b["results"].as_array()?.iter().any(|d| d["name"] == name);
        hit.then_some(())
    })
    .await
}

/// What a token limited to tenant `a` is refused: reads of another tenant (or of the
/// default one), a write to tenant `b`, a search of `b` (by the body's `tenant_id` or
/// the header), a sync of `b` (body or path) and the health of every tenant's sync.
fn refused_to_tenant_a() -> Vec<Case> {
    const B: &str = "may not touch tenant `b`";
    const DEFAULT: &str = "may not touch tenant `default`";
    let history = format!("/api/v1/runs/{RUN}/metrics");
    fn get(path: &str) -> (Method, &str, Value) {
        (Method::GET, path, Value::Null)
    }
    let mut t = Vec::new();
    for path in [
        history.as_str(),
        "/api/v1/series?match[]=alpha_loss",
        "/api/v1/labels",
        "/api/v1/metadata",
    ] {
        t.push(as_token("ta", Some("b"), get(path), 403, B));
        t.push(as_token("ta", None, get(path), 403, DEFAULT));
    }
    let batch = (Method::POST, "/api/v1/metrics/batch", points(&["x"]));
    let search = |body| (Method::POST, "/api/v1/metrics/search", body);
    let beta_of_b = json!({ "query": "beta", "tenant_id": "b" });
    let beta = json!({ "query": "beta" });
    let sync_b = (
        Method::POST,
        "/api/v1/metrics/sync",
        json!({ "tenant_id": "b" }),
    );
    let every_tenant = "this route needs a token for every tenant";
    t.extend([
        as_token("ta", Some("b"), batch, 403, B),
        as_token("ta", Some("a"), search(beta_of_b), 403, B),
        as_token("ta", Some("b"), search(beta.clone()), 403, B),
        as_token("ta", None, search(beta), 403, DEFAULT),
        as_token("ta", Some("a"), sync_b, 403, B),
        as_token(
            "ta",
            Some("a"),
            get("/api/v1/metrics/sync/b/status"),
            403,
            B,
        ),
        as_token("ta", Some("a"), get("/api/v1/metrics/sync/b/state"), 403, B),
        as_token(
            "ta",
            Some("a"),
            get("/api/v1/metrics/health"),
            403,
            every_tenant,
        ),
        as_token(
            "ta",
            Some("a"),
            (Method::POST, "/api/v1/metrics/sync/b", Value::Null),
            403,
            B,
        ),
    ]);
    t
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_token_reaches_only_its_tenant() {
    let n = node().await;
    for (t, name) in [("a", "alpha_loss"), ("b", "beta_loss")] {
        let (st, b) = call(
            &n,
            Method::POST,
            "/api/v1/metrics/batch",
            Some("adm"),
            Some(t),
            Some(points(&[name])),
        )
        .await;
        assert_eq!(st, StatusCode::CREATED, "{b}");
    }
    let history = format!("/api/v1/runs/{RUN}/metrics");
    for path in [
        history.as_str(),
        "/api/v1/series?match[]=alpha_loss",
        "/api/v1/labels",
        "/api/v1/metadata",
        "/api/v1/metrics/sync/config",
        "/api/v1/metrics/sync/a/status",
        "/api/v1/metrics/sync/a/state",
    ] {
        let (st, b) = call(&n, Method::GET, path, Some("ta"), Some("a"), None).await;
        assert_eq!(st, StatusCode::OK, "{path} as tenant a: {b}");
    }
    bad_input::run_shaped(&n, &refused_to_tenant_a(), in_area).await;
    let (_, b) = call(&n, Method::GET, &history, Some("ta"), Some("a"), None).await;
    assert_eq!(b["metrics"][0]["metric_name"], "alpha_loss", "{b}");

    // Search: the body's tenant_id decides, else the header.
    search_finds(
        &n,
        "ta",
        Some("b"),
        json!({ "query": "alpha", "tenant_id": "a" }),
        "alpha_loss",
    )
    .await;
    search_finds(
        &n,
        "ta",
        Some("a"),
        json!({ "query": "alpha" }),
        "alpha_loss",
    )
    .await;
    search_finds(
        &n,
        "adm",
        None,
        json!({ "query": "beta", "tenant_id": "b" }),
        "beta_loss",
    )
    .await;

    // Sync: tenant a passes (by the body's tenant_id); it has no source.
    let (st, b) = call(
        &n,
        Method::POST,
        "/api/v1/metrics/sync",
        Some("ta"),
        None,
        Some(json!({ "tenant_id": "a" })),
    )
    .await;
    assert_eq!(
        st,
        StatusCode::NOT_FOUND,
        "tenant a passes; it has no source: {b}"
    );

    // Areas without tenants: role only.
    let (st, b) = call(
        &n,
        Method::PUT,
        "/meta/shared",
        Some("ta"),
        Some("b"),
        Some(json!({ "k": "v" })),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{b}");
}

/// Opens the run's stream with `query` and `headers`.
async fn open_ws(n: &Node, query: &str, headers: &[(&str, &str)]) -> Result<ws::Ws, WsError> {
    ws::open(&n.base, &format!("/ws/metrics/{RUN}{query}"), headers).await
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_upgrade_checks_token_and_tenant() {
    let n = node().await;
    assert_eq!(refused(open_ws(&n, "", &[]).await), 401);
    assert_eq!(refused(open_ws(&n, "?token=nope", &[]).await), 401);
    let bearer = [("Authorization", "Bearer ta"), ("X-Tenant-ID", "b")];
    assert_eq!(refused(open_ws(&n, "", &bearer).await), 403);
    assert_eq!(refused(open_ws(&n, "?token=ta&tenant=b", &[]).await), 403);
    assert_eq!(
        refused(open_ws(&n, "?token=ta", &[]).await),
        403,
        "default tenant"
    );

    let bearer = [("Authorization", "Bearer ta"), ("X-Tenant-ID", "a")];
    let _by_header = open_ws(&n, "", &bearer)
        .await
        .expect("header token, tenant a");
    let mut ws = open_ws(&n, "?tenant=a&token=ta", &[])
        .await
        .expect("query token, tenant a");
    let sub = json!({ "type": "subscribe", "payload": { "run_id": RUN, "metric_names": [] } });
    ws.send(Message::Text(sub.to_string().into()))
        .await
        .expect("send");
    assert_eq!(next_json(&mut ws).await["type"], "subscribed");
    let (st, b) = call(
        &n,
        Method::POST,
        "/api/v1/metrics/batch",
        Some("ta"),
        Some("a"),
        Some(points(&["loss"])),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let m = next_json(&mut ws).await;
    assert_eq!(m["payload"]["metrics"][0]["metric_name"], "loss", "{m}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_needs_an_admin_token_and_verifies() {
    let n = node().await;
    for token in ["rd", "wr"] {
        let (st, b) = call(&n, Method::GET, "/cluster/backup", Some(token), None, None).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{token}: {b}");
    }
    let resp = n
        .request(Method::GET, "/cluster/backup")
        .bearer_auth("adm")
        .send()
        .await
        .expect("backup");
    assert_eq!(resp.status(), StatusCode::OK);
    let index: u64 = resp.headers()["x-backup-index"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = resp.bytes().await.expect("backup body");
    let v = metacenter::backup::format::verify(std::io::Cursor::new(&bytes)).expect("verifies");
    assert_eq!(v.header.index, index);
    assert_eq!(v.header.members.len(), 1);
}
