//! Waiting for a condition with a deadline: tests poll, they never sleep for a
//! fixed time and hope.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` every 20 ms until it returns `Some`, or panics with `what` after `timeout`.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
