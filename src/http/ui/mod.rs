//! The web console (**new**): `GET /ui/` on every node serves one page whose scripts,
//! styles and charting library are embedded in the binary ([`assets`]), so it works
//! with no network and no build step. The page is plain ES modules over the client
//! API; its pages are hash routes (`#/cluster`, `#/services`, `#/load`, `#/runs`,
//! `#/runs/{id}`, `#/search`). The page and its assets are open without a token (they
//! hold no data); what they read is guarded as usual, and the page asks for a token
//! when a read answers 401.
//!
//! Two reads exist for the console alone ([`overview`]): every member probed by the
//! node (`/ui/api/cluster`) and every load cluster's engines (`/ui/api/load`).
//! Errors are meta-core's `{"error","message"}`.

use std::sync::Arc;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::common::gzip;
use crate::http::common::json_error::JsonError;
use crate::http::openapi::console as doc;
use crate::http::openapi::JsonErrorBody as Err;
use crate::state::AppState;

mod assets;
mod overview;

use assets::{Asset, ASSETS};

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(bare))
        .routes(routes!(page))
        .routes(routes!(asset))
        .routes(routes!(overview::cluster))
        .routes(routes!(overview::load))
}

/// The web console's page (open: it holds no data)
#[utoipa::path(get, path = "/ui", tag = "console",
    responses((status = 200, description = "The page", content_type = "text/html")))]
async fn bare(headers: HeaderMap) -> Response {
    serve(&assets::INDEX, &headers)
}

/// The web console's page (open: it holds no data)
#[utoipa::path(get, path = "/ui/", tag = "console",
    responses((status = 200, description = "The page", content_type = "text/html")))]
async fn page(headers: HeaderMap) -> Response {
    serve(&assets::INDEX, &headers)
}

/// One of the console's embedded assets (open: they hold no data)
#[utoipa::path(get, path = "/ui/assets/{file}", tag = "console", params(doc::AssetPath),
    responses((status = 200, description = "The asset (gzip when accepted)"),
        (status = 404, description = "No such asset", body = Err)))]
async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Result<Response, JsonError> {
    let found = ASSETS.iter().find(|a| a.name == file);
    let a = found.ok_or_else(|| JsonError::not_found(format!("no console asset `{file}`")))?;
    Ok(serve(a, &headers))
}

/// An asset's answer: gzip-compressed when the client accepts it, revalidated on each
/// load (`no-cache`, with the binary's version as its `ETag`).
fn serve(a: &Asset, headers: &HeaderMap) -> Response {
    let etag = HeaderValue::from_static(assets::ETAG);
    if headers.get(header::IF_NONE_MATCH) == Some(&etag) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    let common = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(a.content_type),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::ETAG, etag),
        (header::VARY, HeaderValue::from_static("accept-encoding")),
    ];
    if gzip::accepts(headers) {
        let gz = [(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"))];
        return (common, gz, a.gzipped()).into_response();
    }
    (common, a.bytes).into_response()
}
