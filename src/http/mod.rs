//! The client HTTP API: one router per area, merged, with the cross-cutting layers:
//! `X-Trace-ID` on every response, `X-Applied-Index` on every response, the body limit
//! and body read deadline (408 for a body still arriving after
//! `limits.body_read_timeout_ms`), bearer-token authentication ([`auth`]). The routers
//! are `utoipa_axum` routers, so the same registration routes a handler and documents
//! it in `/openapi.json` ([`openapi`]).
//!
//! Layers, each importing only those before it (`tests/http_layering.rs` checks it):
//!
//! - [`common`], the shared layer: request extraction (tenant, query values and
//!   percent-decoding, keys, JSON object bodies, consistency, blocking queries), the
//!   error envelopes and the choice among them, and response helpers.
//! - [`openapi`], the documentation: the document's completion and route, and each
//!   area's schemas; it imports only [`common`].
//! - The middleware, [`front`] (trace id, stamps, request series, UTF-8 paths) and
//!   [`auth`] (tokens, roles, tenants): it imports only [`common`].
//! - The areas, one module each ([`cluster`], [`backup`], [`metrics`], [`meta`], [`services`],
//!   [`files`], [`load`], [`points`], [`search`], [`promapi`], [`ws`], [`ui`]): an area imports
//!   [`common`], [`openapi`] and the crates below, never another area or the middleware.
//! - This module, which merges the areas' routers and puts the middleware around them.
//!
//! Outside this module, wall-clock time is [`crate::clock`] and the handlers' shared
//! state is [`crate::state::AppState`].

use std::sync::Arc;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::Response;
use axum::Router;
use tower_http::timeout::RequestBodyDeadlineLayer;
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;
use common::error::ApiError;
use common::response::area_error;

pub mod auth;
pub mod backup;
pub mod cluster;
pub mod common;
pub mod files;
pub mod front;
pub mod load;
pub mod meta;
pub mod metrics;
pub mod openapi;
pub mod points;
pub mod promapi;
pub mod search;
pub mod services;
pub mod ui;
pub mod ws;

/// Every area's routes, each with its documentation.
fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .merge(cluster::router())
        .merge(backup::router())
        .merge(meta::router())
        .merge(services::router())
        .merge(files::router())
        .merge(load::router())
        .merge(metrics::router())
        .merge(points::router())
        .merge(search::router())
        .merge(promapi::router())
        .merge(ws::router())
        .merge(ui::router())
        .merge(openapi::router(document))
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
        .layer(front::StandDownLayer::new(state.clone()))
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
    area_error(&req, ApiError::not_found(msg))
}

/// A known route with the wrong method: 405 in the area's envelope.
async fn method_not_allowed(req: Request) -> Response {
    let msg = format!("{} is not allowed on {}", req.method(), req.uri().path());
    area_error(&req, ApiError::new(StatusCode::METHOD_NOT_ALLOWED, msg))
}
