//! The OpenAPI 3.1 document of the client API, served at `GET /openapi.json` (open
//! without a token, like `/health`).
//!
//! The document is generated from the routers themselves: every area registers its
//! handlers with `utoipa_axum::routes!`, which reads each handler's `#[utoipa::path]`
//! attribute both to route the handler and to document it, so a route cannot be served
//! without being in the document (clippy's `disallowed-methods` refuses the plain
//! `Router::route` in this crate). This module holds what the areas share: the error
//! envelopes, the bearer security scheme with the 401/403 answers it adds to every
//! guarded operation, the headers every response carries, and the route of the
//! document itself. The schemas of each area's bodies are in the submodules. Areas
//! import this documentation; it imports only the shared layer (`super::common`), and
//! the document it serves is assembled by the module that knows every area, which
//! hands it the assembling function ([`router`]).

use std::sync::{Arc, OnceLock};

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    Content, Header, InfoBuilder, OpenApi, Ref, RefOr, ResponseBuilder, Schema, Tag,
};
use utoipa::{PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::routes::{is_open, Shape};
use crate::state::AppState;

pub mod console;
pub mod load;
pub mod metadata;
pub mod metric;

// Written by `common::render::json_error`; published as `CoreError`.
/// meta-core's error envelope (cluster, metadata, discovery, files).
#[allow(dead_code)] // fields are read by the ToSchema derive only
#[derive(ToSchema)]
#[schema(as = CoreError)]
pub struct JsonErrorBody {
    /// The HTTP status text, e.g. `Not Found`.
    #[schema(example = "Not Found")]
    error: String,
    #[schema(example = "metadata not found")]
    message: String,
}

// Written by `common::render::metric_service`; published as `ApiError`.
/// The Metric Service's and MIRADOR's error envelope (`/api/*`, `/ws/*`).
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = ApiError)]
pub struct MetricErrorBody {
    #[schema(example = "invalid run_id `x`: must be a UUID")]
    error: String,
}

/// Any JSON value (metadata objects, registered service fields, `data: null`), spelled
/// as the list of every JSON type: utoipa reads back no typeless `{}` schema, and the
/// document must parse with utoipa's own types.
pub struct AnyJson;

impl PartialSchema for AnyJson {
    fn schema() -> RefOr<Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        let every = [
            Type::Object,
            Type::Array,
            Type::String,
            Type::Number,
            Type::Boolean,
            Type::Null,
        ];
        ObjectBuilder::new()
            .schema_type(SchemaType::Array(every.to_vec()))
            .description(Some("Any JSON value"))
            .into()
    }
}

impl ToSchema for AnyJson {}

/// One tag per area, in the order of API.md.
const TAGS: [(&str, &str); 10] = [
    ("cluster", "Cluster and node (meta-core shapes)"),
    ("meta", "Metadata objects (meta-core)"),
    ("services", "Service discovery (meta-core)"),
    ("files", "Data paths and files (meta-core)"),
    (
        "load",
        "Inference load statistics (Metadata Center envelope)",
    ),
    ("points", "Metric points and live streams (Metric Service)"),
    ("search", "Metric metadata search and sync (MIRADOR-CORE)"),
    (
        "prometheus",
        "Prometheus-compatible discovery over metacenter's points",
    ),
    ("console", "The web console and the overviews it reads"),
    ("openapi", "This document"),
];

/// The function that assembles the whole document.
#[derive(Clone, Copy)]
struct Whole(fn() -> OpenApi);

/// The route of the document, which `whole` assembles (the first request builds it).
pub fn router(whole: fn() -> OpenApi) -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(document))
        .layer(Extension(Whole(whole)))
}

/// The OpenAPI document of this API
#[utoipa::path(get, path = "/openapi.json", tag = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
async fn document(Extension(Whole(whole)): Extension<Whole>) -> Response {
    static TEXT: OnceLock<String> = OnceLock::new();
    let text =
        TEXT.get_or_init(|| serde_json::to_string(&whole()).expect("the document serializes"));
    ([(header::CONTENT_TYPE, "application/json")], text.as_str()).into_response()
}

/// Completes the document the routers produced: title, tags, the security scheme and
/// its answers, the common response headers, and OpenAPI path templates for axum's
/// catch-all parameters (`{*key}` becomes `{key}`).
pub fn finish(mut doc: OpenApi) -> OpenApi {
    doc.info = InfoBuilder::new()
        .title("metacenter")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Replicated metadata and metrics node. Each area keeps the paths, JSON \
             fields and error envelope of the original system its clients know. \
             `HEAD` is accepted wherever `GET` is. With `auth.tokens` configured every \
             operation but `/health`, `/ready`, `/metrics`, `/openapi.json` and the \
             console's page and assets (`/ui/`, `/ui/assets/{file}`) needs \
             `Authorization: Bearer TOKEN`.",
        ))
        .build();
    doc.tags = Some(TAGS.iter().map(|(n, d)| tag(n, d)).collect());
    let paths = std::mem::take(&mut doc.paths.paths);
    let mut ids = std::collections::BTreeSet::new();
    for (path, mut item) in paths {
        for (method, op) in operations(&mut item) {
            unique_id(op, method, &mut ids);
            if !is_open(&path) {
                guard(&path, op);
            }
            common_headers(op);
        }
        doc.paths.paths.insert(path.replace("{*", "{"), item);
    }
    let components = doc.components.get_or_insert_with(Default::default);
    let bearer = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .description(Some(
            "A token of `auth.tokens`, with role read, write or admin",
        ))
        .build();
    components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
    for (name, schema) in [
        ("CoreError", JsonErrorBody::schema()),
        ("ApiError", MetricErrorBody::schema()),
        ("McErrorEnvelope", load::McErrorEnvelope::schema()),
    ] {
        components.schemas.entry(name.into()).or_insert(schema);
    }
    let mut nested = Vec::new();
    load::McErrorEnvelope::schemas(&mut nested);
    components.schemas.extend(nested);
    doc
}

fn tag(name: &str, description: &str) -> Tag {
    let mut t = Tag::new(name);
    t.description = Some(description.into());
    t
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", &mut item.get),
        ("put", &mut item.put),
        ("post", &mut item.post),
        ("delete", &mut item.delete),
        ("head", &mut item.head),
        ("patch", &mut item.patch),
        ("options", &mut item.options),
        ("trace", &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.as_mut().map(|op| (m, op)))
}

/// Operation ids are the handlers' names, which repeat across areas (`list`,
/// `health`) and methods (one handler for GET and POST): prefixes the tag, and the
/// method where that is not enough, so that every id is unique as OpenAPI requires.
fn unique_id(op: &mut Operation, method: &str, seen: &mut std::collections::BTreeSet<String>) {
    let tag = op.tags.iter().flatten().next().cloned().unwrap_or_default();
    let name = op.operation_id.take().unwrap_or_default();
    let mut id = format!("{tag}_{name}");
    if seen.contains(&id) {
        id = format!("{id}_{method}");
    }
    seen.insert(id.clone());
    op.operation_id = Some(id);
}

/// `X-Trace-ID` and `X-Applied-Index`, stamped on every response by the request front
/// (`super::front`).
fn common_headers(op: &mut Operation) {
    for resp in op.responses.responses.values_mut() {
        let RefOr::T(resp) = resp else { continue };
        let trace = Header::new(String::schema());
        let applied = Header::new(u64::schema());
        resp.headers.insert(
            "X-Trace-ID".into(),
            described(trace, "The request's trace id"),
        );
        resp.headers.insert(
            "X-Applied-Index".into(),
            described(applied, "The node's last applied raft index"),
        );
    }
}

fn described(mut h: Header, text: &str) -> Header {
    h.description = Some(text.into());
    h
}

/// The schema of the error envelope the auth middleware answers with on `path` (the
/// one [`Shape::of`] picks).
fn auth_error_schema(path: &str) -> &'static str {
    match Shape::of(path) {
        Shape::Envelope => "McErrorEnvelope",
        Shape::Prometheus => "PromError",
        Shape::MetricService => "ApiError",
        Shape::JsonError => "CoreError",
    }
}

/// Marks an operation as needing the bearer token, with its 401 and 403 answers.
fn guard(path: &str, op: &mut Operation) {
    op.security = Some(vec![SecurityRequirement::new::<_, _, &str>("bearer", [])]);
    let schema: RefOr<Schema> = Ref::from_schema_name(auth_error_schema(path)).into();
    for (code, text) in [
        (
            "401",
            "Authentication is on and the token is missing or unknown",
        ),
        (
            "403",
            "The token's role or tenants do not allow this request",
        ),
    ] {
        let resp = ResponseBuilder::new()
            .description(text)
            .content("application/json", Content::new(Some(schema.clone())))
            .build();
        op.responses
            .responses
            .entry(code.into())
            .or_insert(RefOr::T(resp));
    }
}
