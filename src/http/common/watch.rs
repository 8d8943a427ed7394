//! Blocking queries (Consul-style watches): `?index=N&wait=30s` holds a read until the
//! watched data changes after raft index N, or the wait runs out (max 5 minutes), then
//! answers with the current value; `X-Applied-Index` tells the client its next N.
//!
//! A waiter sleeps on the topics it watches (`crate::watches`) and re-checks the
//! watched data's modification index when an applied batch touched one of them.
//! Waiters are bounded by `limits.max_waiters` (429 beyond) and released on shutdown.
//! The metadata and discovery reads both take these parameters.

use std::time::Duration;

use axum::http::StatusCode;

use super::json_error::JsonError;
use crate::state::AppState;
use crate::watches::Topic;

/// Longest wait a client may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(300);
/// Wait used when `index` is given without `wait`.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(300);

/// A parsed watch request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watch {
    pub index: u64,
    pub wait: Duration,
}

/// Reads `index` and `wait` from a raw query string; `None` when no `index` is given.
pub fn parse(query: Option<&str>) -> Result<Option<Watch>, String> {
    let (mut index, mut wait) = (None, None);
    for kv in query.unwrap_or("").split('&') {
        match kv.split_once('=') {
            Some(("index", v)) => {
                index = Some(
                    v.parse::<u64>()
                        .map_err(|_| format!("index `{v}` is not a number"))?,
                )
            }
            Some(("wait", v)) => wait = Some(parse_wait(v)?),
            _ => {}
        }
    }
    Ok(index.map(|index| Watch {
        index,
        wait: wait.unwrap_or(DEFAULT_WAIT),
    }))
}

fn parse_wait(v: &str) -> Result<Duration, String> {
    let d = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(v).map_err(|e| format!("wait `{v}`: {e}"))?,
    };
    Ok(d.min(MAX_WAIT))
}

/// Blocks until `current()` (the watched data's modification index) exceeds
/// `w.index`, the wait runs out, or the node shuts down. `current()` is re-read only
/// when an applied batch touched one of `topics` (see `crate::watches`).
pub async fn block<F>(
    state: &AppState,
    w: Watch,
    topics: Vec<Topic>,
    current: F,
) -> Result<(), JsonError>
where
    F: Fn() -> Result<u64, metacenter_storage::Error>,
{
    let Ok(_permit) = state.waiters.try_acquire() else {
        return Err(JsonError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many blocking queries; retry later",
        ));
    };
    let notifiers: Vec<_> = topics
        .into_iter()
        .map(|t| state.watches.notifier(t))
        .collect();
    let deadline = tokio::time::Instant::now() + w.wait;
    loop {
        // Listening before the check, so that no change can slip in between.
        let mut wakes: Vec<_> = notifiers.iter().map(|n| Box::pin(n.notified())).collect();
        for f in &mut wakes {
            f.as_mut().enable();
        }
        if current()? > w.index {
            return Ok(());
        }
        let woken = async {
            match wakes.is_empty() {
                true => std::future::pending().await,
                false => drop(futures::future::select_all(wakes).await),
            }
        };
        tokio::select! {
            () = woken => continue,
            _ = tokio::time::sleep_until(deadline) => return Ok(()),
            _ = state.shutdown.cancelled() => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_index_and_wait() {
        assert_eq!(parse(None).unwrap(), None);
        assert_eq!(parse(Some("wait=5s")).unwrap(), None);
        let w = parse(Some("index=7&wait=250ms")).unwrap().unwrap();
        assert_eq!(
            w,
            Watch {
                index: 7,
                wait: Duration::from_millis(250)
            }
        );
        assert_eq!(
            parse(Some("index=7&wait=10")).unwrap().unwrap().wait,
            Duration::from_secs(10)
        );
        assert_eq!(
            parse(Some("index=1&wait=1h")).unwrap().unwrap().wait,
            MAX_WAIT
        );
        assert!(parse(Some("index=x")).is_err());
        assert!(parse(Some("index=1&wait=soon")).is_err());
    }
}
