//! The server side of the peer network: raft RPCs and requests forwarded by other
//! members, on the peer listener. Every request must carry the cluster secret.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use metacenter_storage::codec;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::network::SECRET_HEADER;
use crate::node::{PeerOp, RaftNode};

/// Largest peer request body (append batches, snapshot chunks).
pub const MAX_PEER_BODY: usize = 256 << 20;

/// The peer listener's routes for `node`.
#[allow(clippy::disallowed_methods)] // not the client API: nothing to put in /openapi.json
pub fn router(node: Arc<RaftNode>) -> Router {
    Router::new()
        .route("/raft/append", post(append))
        .route("/raft/vote", post(vote))
        .route("/raft/snapshot", post(snapshot))
        .route("/forward", post(forward))
        // Unknown paths and methods answer 401 too without the secret.
        .method_not_allowed_fallback(|_: Authorized| async { StatusCode::METHOD_NOT_ALLOWED })
        .fallback(|_: Authorized| async { StatusCode::NOT_FOUND })
        .layer(DefaultBodyLimit::max(MAX_PEER_BODY))
        .with_state(node)
}

/// Constant-time comparison, so the secret cannot be guessed byte by byte by timing.
/// The time depends only on `expected`'s length: a wrong length is not answered early.
pub fn secret_matches(given: &[u8], expected: &[u8]) -> bool {
    let diff = expected.iter().enumerate().fold(0u8, |acc, (i, b)| {
        acc | (given.get(i).copied().unwrap_or(!b) ^ b)
    });
    diff == 0 && given.len() == expected.len()
}

/// Proof that a request carries the cluster secret: the first argument of every peer
/// handler, so a request without it is answered 401 before its body is read. (An
/// extractor rather than a middleware layer: no boxed future per request.)
pub struct Authorized;

impl FromRequestParts<Arc<RaftNode>> for Authorized {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(
        parts: &mut Parts,
        node: &Arc<RaftNode>,
    ) -> Result<Self, Self::Rejection> {
        let given = parts
            .headers
            .get(SECRET_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if secret_matches(given, node.cfg.secret.as_bytes()) {
            Ok(Authorized)
        } else {
            Err((StatusCode::UNAUTHORIZED, "missing or wrong cluster secret"))
        }
    }
}

/// Decodes a peer request body (every route's); a failure is the 400 answered.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    codec::decode(body)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("bad peer request: {e}")).into_response())
}

fn encode<T: Serialize>(v: &T) -> Response {
    match codec::encode(v) {
        Ok(b) => b.into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn append(_: Authorized, State(node): State<Arc<RaftNode>>, body: Bytes) -> Response {
    match decode(&body) {
        Ok(req) => {
            node.contact.touch();
            encode(&node.raft.append_entries(req).await)
        }
        Err(r) => r,
    }
}

async fn vote(_: Authorized, State(node): State<Arc<RaftNode>>, body: Bytes) -> Response {
    match decode(&body) {
        Ok(req) => encode(&node.raft.vote(req).await),
        Err(r) => r,
    }
}

async fn snapshot(_: Authorized, State(node): State<Arc<RaftNode>>, body: Bytes) -> Response {
    match decode(&body) {
        Ok(req) => encode(&node.raft.install_snapshot(req).await),
        Err(r) => r,
    }
}

async fn forward(_: Authorized, State(node): State<Arc<RaftNode>>, body: Bytes) -> Response {
    match decode::<PeerOp>(&body) {
        Ok(op) => encode(&node.handle_local(&op).await),
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::secret_matches;

    #[test]
    fn secret_comparison() {
        assert!(secret_matches(b"s3cret", b"s3cret"));
        assert!(secret_matches(b"", b""));
        for wrong in [&b""[..], b"s3cre", b"s3cret!", b"S3cret", b"s3cres"] {
            assert!(!secret_matches(wrong, b"s3cret"), "{wrong:?}");
        }
        assert!(!secret_matches(b"x", b""));
    }
}
