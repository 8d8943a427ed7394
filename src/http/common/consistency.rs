//! Read consistency: a read is answered from this node's applied state unless the
//! client asks for a linearizable one (`?consistency=linearizable` or
//! `X-Consistency: linearizable`), which first confirms the leader's commit index.

use axum::http::HeaderMap;

use super::headers::CONSISTENCY_HEADER;

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
