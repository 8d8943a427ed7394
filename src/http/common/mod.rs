//! The shared layer of the client API: what every area needs to read a request and
//! write an answer, so that no area imports another.
//!
//! - Request extraction: [`tenant`] (the one tenant rule, for every way a tenant
//!   arrives), [`query`] (query values and percent-decoding), [`body`] (bodies and JSON
//!   object bodies), [`key`] (hash ids, names and properties), [`metric_name`],
//!   [`point`] (run ids), [`consistency`] (linearizable reads) and [`watch`] (blocking
//!   queries).
//! - One error model: a shared piece that refuses a request says why as a
//!   `(StatusCode, String)` (or a `String`, always a 400) and leaves the envelope to the
//!   area. The envelopes are here too, each converting from that: meta-core's
//!   ([`coreerr`]), Metadata Center's ([`mcenv`]), the Metric Service's
//!   ([`metric_error`]) and Prometheus' ([`prom_error`]); [`routes`] says which one a
//!   path answers in, and [`response::area_error`] answers in it.
//! - Answers: [`response`] (JSON written into one buffer), [`headers`] (the headers
//!   every answer carries), [`large`] (the bound on large answers held at once),
//!   [`point`] (points as the Metric Service writes them) and [`recorder`] (the
//!   request series of `/metrics`).
//!
//! Nothing here imports an area module, the middleware or the documentation.

pub mod body;
pub mod consistency;
pub mod coreerr;
pub mod headers;
pub mod key;
pub mod large;
pub mod mcenv;
pub mod metric_error;
pub mod metric_name;
pub mod point;
pub mod prom_error;
pub mod query;
pub mod recorder;
pub mod response;
pub mod routes;
pub mod tenant;
pub mod watch;
