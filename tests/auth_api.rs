//! Client authentication (`auth.tokens`) over HTTP on an in-process node: a read token
//! cannot write in any area, a write token cannot administer, a missing or unknown
//! token is 401 in each area's envelope, /health, /ready and /metrics stay open, a
//! tenant-limited token reaches only its tenant through every route (header, search
//! body, sync path, WebSocket upgrade), and the right token works everywhere.

mod common;

use std::time::Duration;

use common::{answer, until, Node};
use futures::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
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

/// Asserts a 401/403 is in the envelope of `path`'s area.
fn is_prometheus(path: &str) -> bool {
    let route = path.split('?').next().unwrap_or(path);
    ["/api/v1/series", "/api/v1/labels", "/api/v1/metadata"].contains(&route)
        || route.starts_with("/api/v1/label/")
}

fn assert_envelope(path: &str, status: StatusCode, body: &Value) {
    // Metadata Center's codes: 40101401, 40301403.
    let code = u64::from(status.as_u16()) * 100_000 + 1_000 + u64::from(status.as_u16());
    if path.starts_with("/v1/") || path == "/log/level" {
        assert_eq!(body["status"], "ERROR", "{path}: {body}");
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
        assert!(body["trace_id"].as_str().is_some_and(|t| !t.is_empty()));
    } else if is_prometheus(path) {
        // Prometheus's shape, so Prometheus clients read the error.
        assert_eq!(body["status"], "error", "{path}: {body}");
        let kind = status.canonical_reason().unwrap().to_ascii_lowercase();
        assert_eq!(body["errorType"], kind, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}: {body}");
    } else if path.starts_with("/api/") || path.starts_with("/ws/") {
        assert!(body["error"].is_string(), "{path}: {body}");
        assert!(body.get("message").is_none(), "{path}: {body}");
    } else {
        let text = status.canonical_reason().unwrap();
        assert_eq!(body["error"], text, "{path}: {body}");
        assert!(body["message"].is_string(), "{path}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn read_token_cannot_write_and_write_token_can() {
    let n = node().await;
    for (m, path, body) in writes() {
        let (st, b) = call(&n, m.clone(), path, Some("rd"), None, Some(body.clone())).await;
        assert_eq!(
            st,
            StatusCode::FORBIDDEN,
            "{m} {path} with a read token: {b}"
        );
        assert_envelope(path, st, &b);
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
    for (m, path, body) in &admin {
        let (st, b) = call(&n, m.clone(), path, Some("wr"), None, Some(body.clone())).await;
        assert_eq!(
            st,
            StatusCode::FORBIDDEN,
            "{m} {path} with a write token: {b}"
        );
        assert_envelope(path, st, &b);
    }
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
    // A sync trigger is a write: no source configured, so the handler's 404.
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
    let (st, _) = call(
        &n,
        Method::POST,
        "/api/v1/metrics/sync/t1",
        Some("rd"),
        None,
        None,
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_or_unknown_token_is_401_and_probes_stay_open() {
    let n = node().await;
    let run_history = format!("/api/v1/runs/{RUN}/metrics");
    let ws = format!("/ws/metrics/{RUN}");
    for path in [
        "/meta/obj1",
        "/status",
        "/v1/load/stats?cluster=c1",
        &run_history,
        &ws,
        "/api/v1/series?match[]=up",
        "/api/v1/label/job/values",
    ] {
        for (auth, challenge) in [
            (None, r#"Bearer realm="metacenter""#),
            (Some("Bearer nope"), "invalid_token"),
            (Some("Basic cmQ6"), r#"Bearer realm="metacenter""#),
        ] {
            let mut req = n.request(Method::GET, path);
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            let resp = req.send().await.expect("answer");
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path} {auth:?}");
            let www = resp.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .to_string();
            assert!(www.contains(challenge), "{path} {auth:?}: {www}");
            let body: Value = resp.json().await.expect("JSON");
            assert_envelope(path, StatusCode::UNAUTHORIZED, &body);
        }
    }
    for path in ["/health", "/ready", "/metrics"] {
        let resp = n.request(Method::GET, path).send().await.expect("answer");
        assert_eq!(resp.status(), StatusCode::OK, "{path} is open");
    }
    // The query token is for WebSocket upgrades only.
    let (st, _) = call(&n, Method::GET, "/meta/obj1?token=rd", None, None, None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
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
    let tenant_reads = [
        history.as_str(),
        "/api/v1/series?match[]=alpha_loss",
        "/api/v1/labels",
        "/api/v1/metadata",
        "/api/v1/metrics/sync/config",
    ];
    for path in tenant_reads {
        let (st, b) = call(&n, Method::GET, path, Some("ta"), Some("a"), None).await;
        assert_eq!(st, StatusCode::OK, "{path} as tenant a: {b}");
    }
    for path in &tenant_reads[..4] {
        for other in [Some("b"), None] {
            let (st, b) = call(&n, Method::GET, path, Some("ta"), other, None).await;
            assert_eq!(st, StatusCode::FORBIDDEN, "{path} as {other:?}: {b}");
            assert_envelope(path, st, &b);
        }
    }
    let (_, b) = call(&n, Method::GET, &history, Some("ta"), Some("a"), None).await;
    assert_eq!(b["metrics"][0]["metric_name"], "alpha_loss", "{b}");
    let batch = Some(points(&["x"]));
    let (st, _) = call(
        &n,
        Method::POST,
        "/api/v1/metrics/batch",
        Some("ta"),
        Some("b"),
        batch,
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "no writes to tenant b");

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
    let search = "/api/v1/metrics/search";
    for (header, body) in [
        (Some("a"), json!({ "query": "beta", "tenant_id": "b" })),
        (Some("b"), json!({ "query": "beta" })),
        (None, json!({ "query": "beta" })),
    ] {
        let (st, b) = call(
            &n,
            Method::POST,
            search,
            Some("ta"),
            header,
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            st,
            StatusCode::FORBIDDEN,
            "search {body} as {header:?}: {b}"
        );
    }
    search_finds(
        &n,
        "adm",
        None,
        json!({ "query": "beta", "tenant_id": "b" }),
        "beta_loss",
    )
    .await;

    // Sync: body tenant_id and path tenant.
    let (st, b) = call(
        &n,
        Method::POST,
        "/api/v1/metrics/sync",
        Some("ta"),
        Some("a"),
        Some(json!({ "tenant_id": "b" })),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{b}");
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
    for (path, want) in [
        ("/api/v1/metrics/sync/a/status", StatusCode::OK),
        ("/api/v1/metrics/sync/a/state", StatusCode::OK),
        ("/api/v1/metrics/sync/b/status", StatusCode::FORBIDDEN),
        ("/api/v1/metrics/sync/b/state", StatusCode::FORBIDDEN),
        ("/api/v1/metrics/health", StatusCode::FORBIDDEN),
    ] {
        let (st, b) = call(&n, Method::GET, path, Some("ta"), Some("a"), None).await;
        assert_eq!(st, want, "{path}: {b}");
    }
    let (st, _) = call(
        &n,
        Method::POST,
        "/api/v1/metrics/sync/b",
        Some("ta"),
        Some("a"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

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

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open_ws(n: &Node, query: &str, headers: &[(&str, &str)]) -> Result<Ws, WsError> {
    let url = format!(
        "{}/ws/metrics/{RUN}{query}",
        n.base.replacen("http", "ws", 1)
    );
    let mut req = url.into_client_request().expect("request");
    for (k, v) in headers {
        let name: reqwest::header::HeaderName = k.parse().expect("name");
        req.headers_mut().insert(name, v.parse().expect("value"));
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

fn refused(r: Result<Ws, WsError>) -> u16 {
    match r {
        Err(WsError::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("the upgrade was accepted"),
    }
}

/// The next text message of `ws`, as JSON.
async fn next_json(ws: &mut Ws) -> Value {
    let read = async {
        loop {
            match ws.next().await.expect("stream open").expect("message") {
                Message::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON"),
                _ => continue,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("a message in time")
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
