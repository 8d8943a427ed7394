//! The shared layer of the client API: what every area needs to read a request and
//! write an answer, so that no area imports another.
//!
//! - Request extraction: [`tenant`] (the one tenant rule, for every way a tenant
//!   arrives), [`query`] (query values and percent-decoding), [`body`] (bodies and JSON
//!   object bodies), [`key`] (hash ids, names and properties), [`metric_name`],
//!   [`point`] (run ids), [`consistency`] (linearizable reads) and [`watch`] (blocking
//!   queries).
//! - One error model: [`error::ApiError`] (status, kind, message, cause), which raft
//!   and storage errors and the shared layer's refusals (a `(StatusCode, String)`)
//!   convert into once; [`render`] writes it in each envelope: meta-core's
//!   (`{"error","message"}`), the load area's ([`envelope`]), the Metric Service's and
//!   Prometheus'. Each area answers through a thin wrapper that picks its envelope
//!   ([`json_error`], [`envelope`], [`metric_error`]; the Prometheus-compatible area
//!   renders directly); [`routes`] says which envelope a path answers in, and
//!   [`response::area_error`] answers in it.
//! - Answers: [`response`] (JSON written into one buffer), [`gzip`] (for large answers
//!   read by browsers), [`headers`] (the headers
//!   every answer carries), [`large`] (the bound on large answers held at once),
//!   [`point`] (points as the Metric Service writes them) and [`recorder`] (the
//!   request series of `/metrics`).
//!
//! Nothing here imports an area module, the middleware or the documentation.

pub mod body;
pub mod consistency;
pub mod envelope;
pub mod error;
pub mod gzip;
pub mod headers;
pub mod json_error;
pub mod key;
pub mod large;
pub mod metric_error;
pub mod metric_name;
pub mod point;
pub mod query;
pub mod recorder;
pub mod render;
pub mod response;
pub mod routes;
pub mod tenant;
pub mod watch;
