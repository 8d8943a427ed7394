//! Bounded peer request bodies: each peer route accepts at most what the raft settings
//! can legitimately send on it, and the peer listener holds at most
//! [`PeerLimits::in_flight`] bytes of bodies at once, so that no peer (nor anything
//! that slipped past the secret) can make a node buffer without bound.
//!
//! The per-route limits follow from the settings: a log entry is one group-commit pack
//! (at most `batch.max_bytes` plus the last write packed into it, a write being at most
//! `max_write_bytes`), an append carries at most `MAX_PAYLOAD_ENTRIES` entries, a
//! snapshot chunk is `SNAPSHOT_CHUNK` bytes, and a forwarded pack is bounded like an
//! entry. Sizes of commands are estimates ([`metacenter_storage::Command::size_hint`]),
//! so an entry is allowed twice its estimate.

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::node::NodeConfig;

/// Entries in one append request (openraft's `max_payload_entries`).
pub const MAX_PAYLOAD_ENTRIES: u64 = 8;
/// Bytes of snapshot data in one install request (openraft's `snapshot_max_chunk_size`).
pub const SNAPSHOT_CHUNK: u64 = 3 << 20;
/// Room for a request's fixed fields (vote, log ids, membership, metadata).
const ENVELOPE: usize = 64 << 10;
/// The semaphore counts KiB: a permit count is a `u32`.
const UNIT: usize = 1 << 10;

/// The largest body of each peer route, and of all bodies held at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerLimits {
    pub vote: usize,
    pub append: usize,
    pub snapshot: usize,
    pub forward: usize,
    pub in_flight: usize,
}

impl PeerLimits {
    /// The limits that `cfg`'s settings imply.
    pub fn of(cfg: &NodeConfig) -> PeerLimits {
        let pack = 2 * (cfg.batch.max_bytes + cfg.max_write_bytes);
        let append = MAX_PAYLOAD_ENTRIES as usize * pack + ENVELOPE;
        let snapshot = SNAPSHOT_CHUNK as usize + ENVELOPE;
        let forward = pack + ENVELOPE;
        // One leader's append and snapshot chunk, and every follower's forwards.
        let forwards = cfg.forward_in_flight.max(1) * MAX_FOLLOWERS_FORWARDING;
        PeerLimits {
            vote: ENVELOPE,
            append,
            snapshot,
            forward,
            in_flight: append + snapshot + forwards * forward,
        }
    }
}

/// Followers whose forwards one leader is sized for; more wait for room.
const MAX_FOLLOWERS_FORWARDING: usize = 2;

/// Bytes of peer bodies held at once, shared by every peer route.
pub struct InFlight {
    permits: std::sync::Arc<Semaphore>,
}

impl InFlight {
    pub fn new(limits: &PeerLimits) -> InFlight {
        InFlight {
            permits: std::sync::Arc::new(Semaphore::new(limits.in_flight.div_ceil(UNIT))),
        }
    }

    /// Reads `body` of at most `limit` bytes once room for it is free; the permit
    /// holds that room until the request is answered. Over the limit: 413 unread.
    pub async fn read(
        &self,
        headers: &HeaderMap,
        body: Body,
        limit: usize,
    ) -> Result<(Bytes, OwnedSemaphorePermit), Response> {
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(too_large(limit));
        }
        // Without a length, room for the whole limit.
        let units = declared.unwrap_or(limit).div_ceil(UNIT).max(1) as u32;
        let permit = self
            .permits
            .clone()
            .acquire_many_owned(units)
            .await
            .map_err(|_| (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response())?;
        let bytes = axum::body::to_bytes(body, limit)
            .await
            .map_err(|_| too_large(limit))?;
        Ok((bytes, permit))
    }
}

fn too_large(limit: usize) -> Response {
    let msg = format!("peer request body over its {limit}-byte limit");
    (StatusCode::PAYLOAD_TOO_LARGE, msg).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(len: usize) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, len.to_string().parse().unwrap());
        h
    }

    #[test]
    fn limits_follow_the_settings() {
        let cfg = NodeConfig::new(1, "d".into(), Default::default(), "s".into());
        let l = PeerLimits::of(&cfg);
        let pack = 2 * (cfg.batch.max_bytes + cfg.max_write_bytes);
        assert_eq!(l.append, 8 * pack + ENVELOPE);
        assert_eq!(l.forward, pack + ENVELOPE);
        assert_eq!(l.snapshot, (3 << 20) + ENVELOPE);
        assert_eq!(l.in_flight, l.append + l.snapshot + 4 * l.forward);
        let mut bigger = cfg.clone();
        bigger.max_write_bytes *= 2;
        assert!(PeerLimits::of(&bigger).append > l.append);
    }

    #[tokio::test]
    async fn a_body_over_its_limit_is_refused_unread() {
        let f = InFlight::new(&PeerLimits {
            vote: 0,
            append: 0,
            snapshot: 0,
            forward: 0,
            in_flight: 4 << 10,
        });
        // Declared over the limit: refused without reading (the body never ends).
        let (_tx, endless) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        let endless = Body::from_stream(tokio_stream_of(endless));
        let r = f.read(&headers(1 << 30), endless, 1 << 10).await;
        assert_eq!(r.err().unwrap().status(), StatusCode::PAYLOAD_TOO_LARGE);
        // Undeclared and longer than the limit: refused once the limit is passed.
        let r = f
            .read(&HeaderMap::new(), Body::from(vec![0u8; 2048]), 1 << 10)
            .await;
        assert_eq!(r.err().unwrap().status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn bodies_wait_for_room_in_flight() {
        let f = InFlight::new(&PeerLimits {
            vote: 0,
            append: 0,
            snapshot: 0,
            forward: 0,
            in_flight: 4 << 10,
        });
        let body = || Body::from(vec![1u8; 3 << 10]);
        let (first, room) = f.read(&headers(3 << 10), body(), 4 << 10).await.unwrap();
        assert_eq!(first.len(), 3 << 10);
        let h = headers(3 << 10);
        let second = f.read(&h, body(), 4 << 10);
        tokio::pin!(second);
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), &mut second);
        assert!(
            waited.await.is_err(),
            "no room while the first body is held"
        );
        drop(room);
        assert!(second.await.is_ok(), "room once the first is answered");
    }

    /// A body stream fed by `rx`.
    fn tokio_stream_of(
        mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    ) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
