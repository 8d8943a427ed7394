//! Large answers held at once: the reads whose answers can reach megabytes (an object,
//! a page of ids or services, a page of points, search results, Prometheus discovery)
//! each hold one of `limits.max_large_reads` permits from before they read the store
//! until their answer has been written to the client (or the client went away). With
//! every such answer bounded in size, the permits bound the memory all clients
//! together can pin through them, however many connections they open.

use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody as _};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes of answer after which a page ends (services, points), whatever its `limit`;
/// a page holds at least one item.
pub const PAGE_BYTES: usize = 4 << 20;

/// How long a large read waits for a permit before it is answered 503.
pub const WAIT: Duration = Duration::from_secs(5);

/// The permits of large reads.
pub struct LargeReads(Arc<Semaphore>);

impl LargeReads {
    pub fn new(permits: usize) -> LargeReads {
        LargeReads(Arc::new(Semaphore::new(permits.max(1))))
    }

    /// A permit, waiting at most [`WAIT`]; else the status and message of the refusal.
    pub async fn admit(&self) -> Result<Permit, (StatusCode, String)> {
        let acquire = self.0.clone().acquire_owned();
        match tokio::time::timeout(WAIT, acquire).await {
            Ok(Ok(p)) => Ok(Permit(p)),
            _ => Err((
                StatusCode::SERVICE_UNAVAILABLE,
                "too many large reads at once (limits.max_large_reads); retry".into(),
            )),
        }
    }
}

/// Room for one large answer, until [`Permit::hold`] hands it to the answer's body.
pub struct Permit(OwnedSemaphorePermit);

impl Permit {
    /// `resp` with the permit kept until its body has been sent or dropped.
    pub fn hold(self, resp: Response) -> Response {
        let (mut parts, body) = resp.into_parts();
        // Streamed on, the body keeps its length: hyper then still sends Content-Length.
        if let Some(n) = body.size_hint().exact() {
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        let permit = self.0;
        let done = futures::stream::poll_fn(move |_| {
            let _held = &permit;
            Poll::<Option<Result<Bytes, axum::Error>>>::Ready(None)
        });
        let body = Body::from_stream(body.into_data_stream().chain(done));
        Response::from_parts(parts, body)
    }
}
