//! The client HTTP API: one router per area, merged, with the cross-cutting layers:
//! `X-Trace-ID` on every response, `X-Applied-Index` on every response, the body limit
//! and body read deadline (408 for a body still arriving after
//! `limits.body_read_timeout_ms`), bearer-token authentication ([`auth`]). The routers
//! are `utoipa_axum` routers, so the same registration routes a handler and documents
//! it in `/openapi.json` ([`openapi`]).

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::Response;
use axum::Router;
use tower_http::timeout::RequestBodyDeadlineLayer;
use utoipa_axum::router::OpenApiRouter;

use crate::server::AppState;

pub mod auth;
pub mod body;
pub mod cluster;
pub mod coreerr;
pub mod files;
pub mod front;
pub mod large;
pub mod load;
pub mod mcenv;
pub mod meta;
pub mod metric_name;
pub mod metrics;
pub mod openapi;
pub mod percent;
pub mod points;
pub mod promapi;
pub mod search;
pub mod services;
pub mod tenant;
pub mod watch;
pub mod ws;

/// Request header that asks for a linearizable read.
pub const CONSISTENCY_HEADER: &str = "x-consistency";
/// Response header carrying the node's applied raft index.
pub const APPLIED_INDEX_HEADER: &str = "x-applied-index";
/// Response header carrying the request's trace id.
pub const TRACE_HEADER: &str = "x-trace-id";

/// The trace id of a request, as an extension handlers can read.
#[derive(Clone, Debug)]
pub struct TraceId(pub String);

/// Every area's routes, each with its documentation.
fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .merge(cluster::router())
        .merge(meta::router())
        .merge(services::router())
        .merge(files::router())
        .merge(load::router())
        .merge(metrics::router())
        .merge(points::router())
        .merge(search::router())
        .merge(promapi::router())
        .merge(ws::router())
        .merge(openapi::router())
}

/// The OpenAPI document of the whole client API, as `GET /openapi.json` serves it.
pub fn document() -> utoipa::openapi::OpenApi {
    openapi::finish(routes().into_openapi())
}

/// The whole client API.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.cfg.max_body_bytes;
    let (api, _) = routes().split_for_parts();
    let api = api
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(front::Utf8PathLayer)
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(RequestBodyDeadlineLayer::new(state.cfg.body_read_timeout));
    // Without tokens the check would pass every request: no layer at all then.
    let api = if state.cfg.auth_tokens.is_empty() {
        api
    } else {
        api.layer(middleware::from_fn_with_state(state.clone(), auth::check))
    };
    api.layer(front::StampLayer::new(state.clone()))
        .with_state(state)
}

/// Unknown routes: 404 in the envelope of the area the path belongs to.
async fn not_found(req: Request) -> Response {
    let msg = format!("no route for {}", req.uri().path());
    area_error(
        &req,
        StatusCode::NOT_FOUND,
        mcenv::code::NOT_FOUND,
        "Resource not found",
        msg,
    )
}

/// A known route with the wrong method: 405 in the area's envelope.
async fn method_not_allowed(req: Request) -> Response {
    let msg = format!("{} is not allowed on {}", req.method(), req.uri().path());
    let code = mcenv::code::METHOD_NOT_ALLOWED;
    area_error(
        &req,
        StatusCode::METHOD_NOT_ALLOWED,
        code,
        "Method not allowed",
        msg,
    )
}

/// An error in the envelope of the area `req`'s path belongs to: Metadata Center's for
/// `/v1/*` and `/log/level`, Prometheus' for its discovery paths, `{"error":...}` for
/// the other `/api/*` and `/ws/*`, else meta-core's.
pub(crate) fn area_error(
    req: &Request,
    status: StatusCode,
    code: u64,
    title: &str,
    msg: String,
) -> Response {
    use axum::response::IntoResponse;
    let path = req.uri().path();
    if promapi::owns(path) {
        return promapi::error(status, msg);
    }
    if path.starts_with("/v1/") || path == "/log/level" {
        let trace = req
            .extensions()
            .get::<TraceId>()
            .map(|t| t.0.clone())
            .unwrap_or_default();
        let err = mcenv::McError::new(code, title, msg);
        return mcenv::Envelope {
            trace_id: trace,
            result: Err(err),
        }
        .into_response();
    }
    if path.starts_with("/api/") || path.starts_with("/ws/") {
        return points::PtError(status, msg).into_response();
    }
    coreerr::CoreError::new(status, msg).into_response()
}

/// Runs a read of the local store that may scan many keys (history, listings) on a
/// blocking thread: sled calls block, and a long scan must not hold an async worker.
pub async fn read_store<T: Send + 'static>(
    s: &AppState,
    f: impl FnOnce(&metacenter_storage::Store) -> metacenter_storage::Result<T> + Send + 'static,
) -> metacenter_storage::Result<T> {
    let store = s.node.store().clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| metacenter_storage::Error::Engine(format!("read task failed: {e}")))?
}

/// Whether the request asks for a linearizable read (`?consistency=linearizable` or
/// `X-Consistency: linearizable`).
pub fn wants_linearizable(headers: &HeaderMap, query: Option<&str>) -> bool {
    let header = headers
        .get(CONSISTENCY_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("linearizable"));
    let param = query.is_some_and(|q| {
        q.split('&')
            .any(|kv| kv.eq_ignore_ascii_case("consistency=linearizable"))
    });
    header || param
}

/// `value` as a JSON response with `status`, written into one buffer of about
/// `capacity` bytes (axum's `Json` starts at 128 bytes and grows by copying, which was a
/// large part of answering a page of 10,000 points).
pub fn json_response<T: serde::Serialize>(
    status: StatusCode,
    value: &T,
    capacity: usize,
) -> Response {
    let mut buf = Vec::with_capacity(capacity);
    let written = serde_json::to_writer(&mut buf, value).map(|()| buf);
    json_bytes_response(status, written)
}

/// JSON text already written as a response with `status`; a failed write answers 500.
pub fn json_bytes_response(status: StatusCode, body: serde_json::Result<Vec<u8>>) -> Response {
    use axum::response::IntoResponse;
    match body {
        Ok(buf) => {
            let json = HeaderValue::from_static("application/json");
            (status, [(axum::http::header::CONTENT_TYPE, json)], buf).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "serialising an answer");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
