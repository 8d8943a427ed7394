//! Waiting without fixed sleeps: a condition is polled until it holds, and a deadline
//! turns "never" into a failure naming what was waited for.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long any polled condition (readiness, elections, replication) may take.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The pause between two polls of [`until`].
pub const POLL: Duration = Duration::from_millis(20);

/// Polls `check` every [`POLL`] until it returns `Some`; panics after [`DEADLINE`].
pub async fn until<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    until_every(what, POLL, check).await
}

/// [`until`] with another pause between polls (a clock that must tick past a
/// millisecond, a condition expected within a few milliseconds).
pub async fn until_every<T, F, Fut>(what: &str, every: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting for: {what}"
        );
        tokio::time::sleep(every).await;
    }
}

/// [`until`] for tests without a runtime (the command-line tests): polls `check`
/// every 50 ms until it holds, panicking after `timeout`.
pub fn until_blocking(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
