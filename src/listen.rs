//! Serving a router on a TCP listener with limits on slow clients.
//!
//! `axum::serve` sets no timer on hyper, so a client that opens a connection and
//! trickles (or never sends) its request head holds the connection forever. This
//! accept loop serves each connection with hyper's HTTP/1.1 server and a header read
//! timeout: a request head not complete that long after the connection
//! opens (or after the previous response on a kept-alive connection) closes the
//! connection. The body side is bounded by the API router's body deadline
//! ([`crate::http::router`]). Shutdown is graceful: the loop stops accepting, in-flight
//! requests finish, idle connections close, and whatever is left after
//! [`DRAIN`] is dropped.
//!
//! HTTP/1.1 only: with HTTP/2 enabled hyper first waits, with no timeout, for enough
//! bytes to tell the two apart, which is exactly the hole a slow client uses. Every
//! client of this API (and the peers' reqwest) speaks HTTP/1.1.

use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long shutdown waits for open connections to finish.
pub const DRAIN: Duration = Duration::from_secs(5);

/// Serves `router` on `listener` until `stop`, closing connections whose request
/// head takes longer than `header_timeout` to arrive.
pub fn spawn(
    listener: TcpListener,
    router: Router,
    stop: CancellationToken,
    header_timeout: Duration,
) -> JoinHandle<()> {
    tokio::spawn(run(listener, router, stop, header_timeout))
}

async fn run(listener: TcpListener, router: Router, stop: CancellationToken, header: Duration) {
    let builder = builder(header);
    let graceful = GracefulShutdown::new();
    loop {
        let tcp = tokio::select! {
            _ = stop.cancelled() => break,
            r = listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // No Nagle: answers are small and latency-bound (raft RPCs, forwarded writes).
        let _ = tcp.set_nodelay(true);
        let (builder, router) = (builder.clone(), router.clone());
        let (watcher, stop) = (graceful.watcher(), stop.clone());
        tokio::spawn(async move {
            // hyper's head timer starts only once bytes arrive: a connection that sends
            // nothing at all is timed here. The watcher it holds counts for the drain, so
            // shutdown closes it too: clients' pools open such connections and may never
            // use them, and the drain would otherwise wait out the whole period.
            let mut byte = [0u8; 1];
            tokio::select! {
                r = tokio::time::timeout(header, tcp.peek(&mut byte)) => if r.is_err() { return },
                () = stop.cancelled() => return,
            }
            let service = TowerToHyperService::new(router);
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::trace!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("connections still open after the drain period; dropping them");
    }
}

fn builder(header: Duration) -> Builder<TokioExecutor> {
    let mut b = Builder::new(TokioExecutor::new()).http1_only();
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header);
    b
}
