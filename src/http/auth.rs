//! Client authentication: with at least one `auth.tokens` entry configured, every
//! request but `GET /health`, `/ready`, `/metrics`, `/openapi.json` and the console's
//! page and assets (`/ui/`, `/ui/assets/*`) needs `Authorization: Bearer
//! TOKEN` (on the WebSocket route also `?token=`, since browsers cannot set headers).
//!
//! - Role: GET/HEAD and the read-only POSTs (search, Prometheus series/labels,
//!   `/file/cid`) need `read`; other writes need `write`; `/cluster/backup|init|add|remove`,
//!   `/log/level` and `PUT /api/v1/metrics/sync/config` need `admin`.
//! - Tenant, for tokens limited to some tenants, under `/api/` and `/ws/` (the other
//!   areas have no tenants): the `{tenantId}` of `/api/v1/metrics/sync/{tenantId}...`,
//!   the body's `tenant_id` of `POST /api/v1/metrics/search` and `POST
//!   /api/v1/metrics/sync`, `?tenant=` of a stream, else `X-Tenant-ID` (default
//!   `default`) — the same functions the handlers use. `GET /api/v1/metrics/health`
//!   reports on every tenant and needs an all-tenants token.
//!
//! 401 (with `WWW-Authenticate: Bearer`) for a missing or unknown token, 403 for a
//! role or tenant not allowed, each in the area's own envelope. Middleware: it imports
//! only the shared layer, whose tenant rule ([`tenant`]) the handlers apply too.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::common::body::json_object;
use super::common::error::ApiError;
use super::common::metric_error::{bad, MetricError};
use super::common::response::area_error;
use super::common::routes::is_open;
use super::common::{query, tenant};
use crate::auth::{Role, Token};
use crate::state::AppState;
/// Paths that need `admin` whatever the method.
const ADMIN: [&str; 5] = [
    "/cluster/backup",
    "/cluster/init",
    "/cluster/add",
    "/cluster/remove",
    "/log/level",
];
const SYNC_CONFIG: &str = "/api/v1/metrics/sync/config";
/// POSTs that only read.
const READ_POSTS: [&str; 4] = [
    "/api/v1/metrics/search",
    "/api/v1/series",
    "/api/v1/labels",
    "/file/cid",
];
/// POSTs whose tenant is the body's `tenant_id`.
const BODY_TENANT: [&str; 2] = ["/api/v1/metrics/search", "/api/v1/metrics/sync"];

/// The role `method path` needs; `None`: open.
pub fn required_role(method: &Method, path: &str) -> Option<Role> {
    if is_open(path) {
        return None;
    }
    if ADMIN.contains(&path) || (path == SYNC_CONFIG && method == Method::PUT) {
        return Some(Role::Admin);
    }
    let reads = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        || (method == Method::POST && READ_POSTS.contains(&path));
    Some(if reads { Role::Read } else { Role::Write })
}

/// Which tenant a request touches.
enum Scope {
    /// No tenant (metadata, files, services, load, cluster, global sync settings).
    None,
    /// Every tenant at once.
    All,
    Tenant(String),
    /// The JSON body's `tenant_id`, else `X-Tenant-ID`.
    Body,
}

fn scope(req: &Request) -> Result<Scope, MetricError> {
    let (path, headers) = (req.uri().path(), req.headers());
    if path.starts_with("/ws/") {
        let tenant = tenant::stream(headers, req.uri().query());
        return tenant.map(Scope::Tenant).map_err(bad);
    }
    if !path.starts_with("/api/") || path == SYNC_CONFIG {
        return Ok(Scope::None);
    }
    if path == "/api/v1/metrics/health" {
        return Ok(Scope::All);
    }
    if let Some(rest) = path.strip_prefix("/api/v1/metrics/sync/") {
        let segment = rest.split('/').next().unwrap_or_default();
        let tenant = tenant::path_segment(segment);
        return tenant.map(Scope::Tenant).map_err(bad);
    }
    if req.method() == Method::POST && BODY_TENANT.contains(&path) {
        return Ok(Scope::Body);
    }
    tenant::header(headers).map(Scope::Tenant).map_err(bad)
}

/// The bearer token of a request, if it presents one.
fn presented(req: &Request) -> Option<String> {
    if let Some(v) = req.headers().get(header::AUTHORIZATION) {
        let v = v.to_str().ok()?.trim();
        let (scheme, token) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_string());
    }
    if !req.uri().path().starts_with("/ws/") {
        return None;
    }
    query::first(req.uri().query(), "token")
}

/// The middleware: checks the token, its role and its tenants.
pub async fn check(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let tokens = &s.cfg.auth_tokens;
    if tokens.is_empty() {
        return next.run(req).await;
    }
    let Some(need) = required_role(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    let given = presented(&req);
    let Some(token) = given.as_deref().and_then(|g| crate::auth::find(tokens, g)) else {
        return unauthorized(&req, given.is_some());
    };
    if token.role < need {
        let msg = format!(
            "this token's role is {}; this request needs {need}",
            token.role
        );
        return forbidden(&req, msg);
    }
    if token.all_tenants() {
        return next.run(req).await;
    }
    match scope(&req) {
        Ok(Scope::None) => next.run(req).await,
        Ok(Scope::All) => forbidden(&req, "this route needs a token for every tenant".into()),
        Ok(Scope::Tenant(t)) => tenant_gate(token, &t, req, next).await,
        Ok(Scope::Body) => body_tenant(&s, token, req, next).await,
        Err(e) => e.into_response(),
    }
}

async fn tenant_gate(token: &Token, tenant: &str, req: Request, next: Next) -> Response {
    if token.allows_tenant(tenant) {
        return next.run(req).await;
    }
    forbidden(&req, format!("this token may not touch tenant `{tenant}`"))
}

/// Reads the body to find its `tenant_id`, then passes the request on with it. A body
/// the handler will refuse (bad JSON, bad `tenant_id`) is passed on unchecked: the
/// handler answers 400 from the same bytes before touching any tenant.
async fn body_tenant(s: &AppState, token: &Token, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, s.cfg.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => {
            let msg = format!("request body too large or unreadable: {e}");
            return MetricError::new(StatusCode::PAYLOAD_TOO_LARGE, msg).into_response();
        }
    };
    let tenant = json_object(Ok(bytes.clone()))
        .ok()
        .and_then(|m| tenant::body(&m, &parts.headers).ok());
    let req = Request::from_parts(parts, Body::from(bytes));
    match tenant {
        Some(t) => tenant_gate(token, &t, req, next).await,
        None => next.run(req).await,
    }
}

fn unauthorized(req: &Request, wrong: bool) -> Response {
    let (msg, challenge) = if wrong {
        (
            "unknown bearer token",
            r#"Bearer realm="metacenter", error="invalid_token""#,
        )
    } else {
        ("a bearer token is required", r#"Bearer realm="metacenter""#)
    };
    let err = ApiError::new(StatusCode::UNAUTHORIZED, msg);
    let mut resp = area_error(req, err);
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    resp
}

fn forbidden(req: &Request, msg: String) -> Response {
    area_error(req, ApiError::new(StatusCode::FORBIDDEN, msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_per_route() {
        let r = |m: Method, p: &str| required_role(&m, p);
        assert_eq!(r(Method::GET, "/health"), None);
        assert_eq!(r(Method::GET, "/metrics"), None);
        assert_eq!(r(Method::GET, "/openapi.json"), None);
        assert_eq!(r(Method::GET, "/status"), Some(Role::Read));
        assert_eq!(r(Method::POST, "/cluster/add"), Some(Role::Admin));
        assert_eq!(r(Method::GET, "/cluster/backup"), Some(Role::Admin));
        assert_eq!(r(Method::GET, "/cluster/members"), Some(Role::Read));
        assert_eq!(r(Method::POST, "/log/level"), Some(Role::Admin));
        assert_eq!(r(Method::PUT, SYNC_CONFIG), Some(Role::Admin));
        assert_eq!(r(Method::GET, SYNC_CONFIG), Some(Role::Read));
        assert_eq!(r(Method::POST, "/api/v1/metrics/search"), Some(Role::Read));
        assert_eq!(r(Method::POST, "/api/v1/metrics/sync"), Some(Role::Write));
        assert_eq!(r(Method::POST, "/api/v1/metrics/sync/a"), Some(Role::Write));
        assert_eq!(r(Method::PUT, "/meta/x"), Some(Role::Write));
        assert_eq!(r(Method::HEAD, "/data/x"), Some(Role::Read));
    }

    #[test]
    fn tenant_of_sync_path() {
        let req = |p: &str| Request::builder().uri(p).body(Body::empty()).unwrap();
        let t = |p: &str| match scope(&req(p)) {
            Ok(Scope::Tenant(t)) => t,
            _ => panic!("{p}: expected a tenant"),
        };
        assert_eq!(t("/api/v1/metrics/sync/a%20b/state"), "a b");
        assert_eq!(t("/api/v1/metrics/sync/a+b"), "a+b");
        assert_eq!(t("/api/v1/runs/x/metrics"), "default");
        // The one tenant rule holds on the path too.
        for bad in ["/api/v1/metrics/sync/%00/state", "/api/v1/metrics/sync/%20"] {
            assert!(scope(&req(bad)).is_err(), "{bad}");
        }
        assert!(matches!(scope(&req(SYNC_CONFIG)), Ok(Scope::None)));
        assert!(matches!(scope(&req("/meta/x")), Ok(Scope::None)));
    }
}
