//! The front of every client request: the trace id (`TraceId` / `X-Trace-ID`, else a
//! new UUID) and `X-Applied-Index` stamped on the answer, the request counted and
//! timed by route ([`RouteSeries`]), a path whose escapes do not decode to UTF-8
//! refused in its area's envelope, and, on a node removed from its cluster, every
//! request but the node's own probes answered 503 in its area's envelope. Middleware: it imports only the shared layer.
//!
//! These are plain tower services rather than `axum::middleware::from_fn`: a `from_fn`
//! layer boxes a future and clones the boxed inner service on every request, and with
//! four of them a small GET cost a third more CPU on this project's 2-vCPU machine
//! (BENCHMARKS.md, "The request front without `from_fn`"). Here a request allocates nothing beyond its
//! trace id.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use futures::future::{self, Either, Ready};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::common::error::ApiError;
use super::common::headers::{TraceId, APPLIED_INDEX_HEADER, TRACE_HEADER};
use super::common::query::path_is_utf8;
use super::common::recorder::{self, RouteSeries};
use super::common::response::area_error;
use crate::state::AppState;

/// Stamps, counts and times every request (the outermost layer).
#[derive(Clone)]
pub struct StampLayer {
    state: Arc<AppState>,
}

impl StampLayer {
    pub fn new(state: Arc<AppState>) -> Self {
        recorder::install();
        StampLayer { state }
    }
}

impl<S> Layer<S> for StampLayer {
    type Service = Stamp<S>;

    fn layer(&self, inner: S) -> Stamp<S> {
        Stamp {
            inner,
            state: self.state.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Stamp<S> {
    inner: S,
    state: Arc<AppState>,
}

impl<S> Service<Request> for Stamp<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Stamped<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let (trace, header) = trace_id(req.headers());
        req.extensions_mut().insert(TraceId(trace));
        let series = recorder::route_series(req.extensions().get::<MatchedPath>());
        let method = recorder::method_label(req.method());
        Stamped {
            inner: self.inner.call(req),
            state: self.state.clone(),
            trace: Some(header),
            series,
            method,
            start: Instant::now(),
        }
    }
}

pin_project! {
    /// The inner answer, then the stamps and the request's series.
    pub struct Stamped<F> {
        #[pin]
        inner: F,
        state: Arc<AppState>,
        trace: Option<HeaderValue>,
        series: Arc<RouteSeries>,
        method: &'static str,
        start: Instant,
    }
}

impl<F> Future for Stamped<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(mut resp) = ready!(this.inner.poll(cx));
        this.series
            .record(this.method, resp.status(), this.start.elapsed());
        let h = resp.headers_mut();
        if let Some(v) = this.trace.take() {
            h.insert(HeaderName::from_static(TRACE_HEADER), v);
        }
        h.insert(
            HeaderName::from_static(APPLIED_INDEX_HEADER),
            this.state.node.applied_index().into(),
        );
        Poll::Ready(Ok(resp))
    }
}

/// The request's trace id, as text and as a header value: from `TraceId` or
/// `X-Trace-ID` when present, non-empty and at most 128 bytes, else a new UUID.
fn trace_id(headers: &HeaderMap) -> (String, HeaderValue) {
    let given = ["traceid", TRACE_HEADER].iter().find_map(|n| {
        let v = headers.get(*n)?;
        let s = v.to_str().ok()?;
        (!s.is_empty() && s.len() <= 128).then(|| (s.to_string(), v.clone()))
    });
    given.unwrap_or_else(|| {
        let id = uuid::Uuid::new_v4().to_string();
        let v = HeaderValue::from_str(&id).expect("a UUID is a valid header value");
        (id, v)
    })
}

/// Refuses a path whose percent-escapes decode to invalid UTF-8 with 400 in the
/// area's envelope (axum's path extractor would answer it in plain text).
#[derive(Clone, Copy, Default)]
pub struct Utf8PathLayer;

impl<S> Layer<S> for Utf8PathLayer {
    type Service = Utf8Path<S>;

    fn layer(&self, inner: S) -> Utf8Path<S> {
        Utf8Path { inner }
    }
}

#[derive(Clone)]
pub struct Utf8Path<S> {
    inner: S,
}

impl<S> Service<Request> for Utf8Path<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let path = req.uri().path();
        if path.contains('%') && !path_is_utf8(path) {
            let msg = format!("the path {path} is not UTF-8 once percent-decoded");
            let resp = area_error(&req, ApiError::bad_request(msg));
            return Either::Left(future::ready(Ok(resp)));
        }
        Either::Right(self.inner.call(req))
    }
}

/// Paths a removed node still answers: its probes, which say it was removed.
const PROBES: [&str; 6] = [
    "/health", "/ready", "/status", "/metrics", "/role", "/leader",
];

/// On a node that knows it was removed from its cluster, answers every request but
/// [`PROBES`] with 503 "this node was removed from the cluster" in the area's envelope.
#[derive(Clone)]
pub struct StandDownLayer {
    state: Arc<AppState>,
}

impl StandDownLayer {
    pub fn new(state: Arc<AppState>) -> Self {
        StandDownLayer { state }
    }
}

impl<S> Layer<S> for StandDownLayer {
    type Service = StandDown<S>;

    fn layer(&self, inner: S) -> StandDown<S> {
        StandDown {
            inner,
            state: self.state.clone(),
        }
    }
}

#[derive(Clone)]
pub struct StandDown<S> {
    inner: S,
    state: Arc<AppState>,
}

impl<S> Service<Request> for StandDown<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if self.state.node.is_removed() && !PROBES.contains(&req.uri().path()) {
            let msg = "this node was removed from the cluster";
            let e = ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, msg);
            return Either::Left(future::ready(Ok(area_error(&req, e))));
        }
        Either::Right(self.inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_id_prefers_traceid_then_x_trace_id_and_bounds_them() {
        let mut h = HeaderMap::new();
        h.insert("x-trace-id", HeaderValue::from_static("second"));
        assert_eq!(trace_id(&h).0, "second");
        h.insert("traceid", HeaderValue::from_static("first"));
        let (text, header) = trace_id(&h);
        assert_eq!(
            (text.as_str(), header.to_str().unwrap()),
            ("first", "first")
        );

        let mut h = HeaderMap::new();
        h.insert("traceid", HeaderValue::from_static(""));
        h.insert(
            "x-trace-id",
            HeaderValue::from_str(&"a".repeat(129)).unwrap(),
        );
        let (text, header) = trace_id(&h);
        assert!(uuid::Uuid::parse_str(&text).is_ok(), "{text}");
        assert_eq!(header.to_str().unwrap(), text);
    }
}
