//! Headers every area reads or answers with, and the trace id of a request as an
//! extension handlers can read (the request front, `crate::http::front`, sets it).

/// Request header that asks for a linearizable read.
pub const CONSISTENCY_HEADER: &str = "x-consistency";
/// Response header carrying the node's applied raft index.
pub const APPLIED_INDEX_HEADER: &str = "x-applied-index";
/// Response header carrying the request's trace id.
pub const TRACE_HEADER: &str = "x-trace-id";

/// The trace id of a request, as an extension handlers can read.
#[derive(Clone, Debug)]
pub struct TraceId(pub String);
