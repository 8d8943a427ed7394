//! CPU profiling on demand, Go-style: when `pprof.enable` is set (`[PProf] Enable = true`
//! in Metadata Center's TOML), a separate listener on `pprof.listen` serves
//! `GET /debug/pprof/profile?seconds=N` — a CPU profile of the whole process sampled
//! at 100 Hz for N seconds (default 10, at most 120), in pprof's protobuf format
//! (`go tool pprof` reads it), or as a flamegraph SVG with `&format=svg`. One profile
//! runs at a time (409 while busy). The listener is apart from the API so it can stay
//! on loopback.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::RawQuery;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

static BUSY: AtomicBool = AtomicBool::new(false);

/// Longest profile a client may ask for.
pub const MAX_SECONDS: u64 = 120;

#[allow(clippy::disallowed_methods)] // its own listener, not the client API of /openapi.json
pub fn router() -> Router {
    Router::new().route("/debug/pprof/profile", get(profile))
}

fn param<'a>(q: Option<&'a str>, name: &str) -> Option<&'a str> {
    q?.split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

async fn profile(RawQuery(q): RawQuery) -> Response {
    let seconds = match param(q.as_deref(), "seconds").map(str::parse::<u64>) {
        None => 10,
        Some(Ok(s)) if (1..=MAX_SECONDS).contains(&s) => s,
        Some(_) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("seconds must be 1 to {MAX_SECONDS}"),
            )
                .into_response()
        }
    };
    let svg = param(q.as_deref(), "format") == Some("svg");
    if BUSY.swap(true, Ordering::AcqRel) {
        return (StatusCode::CONFLICT, "a profile is already running").into_response();
    }
    let result =
        tokio::task::spawn_blocking(move || capture(Duration::from_secs(seconds), svg)).await;
    BUSY.store(false, Ordering::Release);
    match result {
        Ok(Ok(body)) if svg => ([(header::CONTENT_TYPE, "image/svg+xml")], body).into_response(),
        Ok(Ok(body)) => {
            ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response()
        }
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("profiling failed: {e}"),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("profiling failed: {e}"),
        )
            .into_response(),
    }
}

/// Samples the process for `d` and renders the profile.
fn capture(d: Duration, svg: bool) -> Result<Vec<u8>, String> {
    use pprof::protos::Message;
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(100)
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()
        .map_err(|e| e.to_string())?;
    std::thread::sleep(d);
    let report = guard.report().build().map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    if svg {
        report.flamegraph(&mut out).map_err(|e| e.to_string())?;
        if out.is_empty() {
            // An idle process yields no samples, and the flamegraph writer then writes nothing.
            let note = format!("no CPU samples in {} s: the process was idle", d.as_secs());
            out = format!(r#"<svg xmlns="http://www.w3.org/2000/svg" width="600" height="40"><text x="10" y="25">{note}</text></svg>"#).into_bytes();
        }
    } else {
        let profile = report.pprof().map_err(|e| e.to_string())?;
        profile.write_to_vec(&mut out).map_err(|e| e.to_string())?;
    }
    Ok(out)
}
