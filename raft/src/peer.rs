//! The server side of the peer network: raft RPCs and requests forwarded by other
//! members, on the peer listener. Every request must carry the cluster secret.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use metacenter_storage::codec;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::network::{FROM_HEADER, SECRET_HEADER};
use crate::node::{PeerOp, RaftNode};
use crate::types::NodeId;

/// The peer listener's routes for `node`.
#[allow(clippy::disallowed_methods)] // not the client API: nothing to put in /openapi.json
pub fn router(node: Arc<RaftNode>) -> Router {
    Router::new()
        .route("/raft/append", post(append))
        .route("/raft/vote", post(vote))
        .route("/raft/snapshot", post(snapshot))
        .route("/raft/removed", post(removed))
        .route("/forward", post(forward))
        // Unknown paths and methods answer 401 too without the secret.
        .method_not_allowed_fallback(|_: Authorized| async { StatusCode::METHOD_NOT_ALLOWED })
        .fallback(|_: Authorized| async { StatusCode::NOT_FOUND })
        // Each route reads its own body within its own limit (`peer_body`).
        .layer(DefaultBodyLimit::disable())
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
        let expected = node.cfg.secret.as_bytes();
        let open = expected.is_empty() && node.cfg.insecure;
        if open || (!expected.is_empty() && secret_matches(given, expected)) {
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

type Node = State<Arc<RaftNode>>;

/// Reads a body of at most `limit` bytes within the listener's in-flight bound and
/// decodes it; the answer is `answer(decoded)`, or the 400/413 of a bad body.
async fn serve<T, F, Fut>(
    node: &RaftNode,
    h: &HeaderMap,
    body: Body,
    limit: usize,
    answer: F,
) -> Response
where
    T: DeserializeOwned,
    F: FnOnce(T) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let (bytes, _room) = match node.peer_in_flight.read(h, body, limit).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    match decode(&bytes) {
        Ok(req) => answer(req).await,
        Err(r) => r,
    }
}

/// Raft traffic this node must not take: it was removed itself (410 without an index,
/// so the sender draws no conclusion about its own membership), or the sender is not
/// in this node's applied configuration (410 with that configuration's index; see
/// [`crate::removal`]).
fn not_a_member(node: &RaftNode, h: &HeaderMap) -> Option<Response> {
    if node.removal.is_removed() {
        return Some((crate::removal::GONE, crate::removal::STOOD_DOWN).into_response());
    }
    let from: NodeId = h.get(FROM_HEADER)?.to_str().ok()?.parse().ok()?;
    let at = crate::removal::leaves_out(&node.raft.metrics().borrow(), from)?;
    Some((crate::removal::GONE, at.to_string()).into_response())
}

async fn append(_: Authorized, State(node): Node, h: HeaderMap, body: Body) -> Response {
    if let Some(r) = not_a_member(&node, &h) {
        return r;
    }
    let limit = node.peer_limits.append;
    let n = &node;
    serve(n, &h, body, limit, |req| async move {
        n.touch.leader.touch();
        encode(&n.raft.append_entries(req).await)
    })
    .await
}

async fn vote(_: Authorized, State(node): Node, h: HeaderMap, body: Body) -> Response {
    if let Some(r) = not_a_member(&node, &h) {
        return r;
    }
    let limit = node.peer_limits.vote;
    let n = &node;
    serve(n, &h, body, limit, |req| async move {
        encode(&n.raft.vote(req).await)
    })
    .await
}

async fn snapshot(_: Authorized, State(node): Node, h: HeaderMap, body: Body) -> Response {
    if let Some(r) = not_a_member(&node, &h) {
        return r;
    }
    let limit = node.peer_limits.snapshot;
    let n = &node;
    serve(n, &h, body, limit, |req| async move {
        encode(&n.raft.install_snapshot(req).await)
    })
    .await
}

/// The leader's word that this node was removed by the configuration at the index
/// in the body (see [`crate::removal`]).
async fn removed(_: Authorized, State(node): Node, h: HeaderMap, body: Body) -> Response {
    let from: Option<NodeId> = h
        .get(FROM_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let Some(from) = from else {
        return (StatusCode::BAD_REQUEST, "no sender").into_response();
    };
    let limit = node.peer_limits.vote;
    let n = &node;
    serve(n, &h, body, limit, |at: u64| async move {
        n.removal.left_out_by(from, at);
        encode(&())
    })
    .await
}

async fn forward(_: Authorized, State(node): Node, h: HeaderMap, body: Body) -> Response {
    if let Some(r) = not_a_member(&node, &h) {
        return r;
    }
    let limit = node.peer_limits.forward;
    let n = &node;
    serve(n, &h, body, limit, |op: PeerOp| async move {
        encode(&n.handle_local(&op).await)
    })
    .await
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
