//! Serving an already open file over HTTP: the answer of `GET /file/{cid}`.
//!
//! tower-http's `ServeFile` takes a path and opens it itself, which would resolve the
//! path a second time after it was confined to the files root. This serves the
//! descriptor that was opened beneath the root instead, with the same HTTP behaviour:
//! `Content-Type` from the extension, `Last-Modified` and an `ETag` from the `fstat` of
//! the descriptor, the preconditions `If-Match`, `If-Unmodified-Since` (412),
//! `If-None-Match`, `If-Modified-Since` (304), and one byte range (`Range`, honoured
//! only while `If-Range` still matches) as 206, or 416 when it cannot be satisfied.
//! A malformed or multi-range `Range` is ignored (RFC 9110 allows it): the whole file.
//! The body is streamed in chunks, never read into memory at once.

use std::fs::{File, Metadata};
use std::io::{Seek, SeekFrom};
use std::time::SystemTime;

use axum::body::Body;
use axum::http::header::{
    ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_MATCH, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, LAST_MODIFIED, RANGE,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use httpdate::HttpDate;
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

/// Bytes read from the file per body chunk.
const CHUNK: usize = 64 * 1024;

/// What `Range` asks of a file of a given size.
#[derive(Debug, PartialEq, Eq)]
enum Ranged {
    /// No usable range: the whole file.
    Whole,
    /// Bytes `start..=end`, within the file.
    Part(u64, u64),
    /// A well-formed range that lies beyond the file.
    Unsatisfiable,
}

/// The answer to `method` (GET or HEAD) with `headers` for `file`, whose `fstat` is
/// `meta`; `name` gives the content type by its extension. Err when the file cannot be
/// positioned at the range asked for.
pub fn respond(
    method: &Method,
    headers: &HeaderMap,
    name: &str,
    file: File,
    meta: &Metadata,
) -> std::io::Result<Response> {
    let size = meta.len();
    let modified = meta.modified().ok();
    let etag = modified.and_then(|m| etag(size, m));
    let last_modified = modified.map(HttpDate::from);
    let validators = |b: axum::http::response::Builder| {
        let b = match &etag {
            Some(e) => b.header(ETAG, e.as_str()),
            None => b,
        };
        match last_modified {
            Some(lm) => b.header(LAST_MODIFIED, lm.to_string()),
            None => b,
        }
    };
    if let Some(status) = preconditions(headers, etag.as_deref(), last_modified) {
        let b = Response::builder().status(status);
        let b = if status == StatusCode::NOT_MODIFIED {
            validators(b)
        } else {
            b
        };
        return Ok(b.body(Body::empty()).expect("valid response"));
    }

    let range = match headers.get(RANGE) {
        Some(r) if if_range_holds(headers, etag.as_deref(), last_modified) => parse_range(r, size),
        _ => Ranged::Whole,
    };
    let b = Response::builder().header(ACCEPT_RANGES, "bytes");
    let b = validators(b);
    let (start, len, b) = match range {
        Ranged::Unsatisfiable => {
            return Ok(b
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(CONTENT_RANGE, format!("bytes */{size}"))
                .body(Body::empty())
                .expect("valid response"));
        }
        Ranged::Whole => (0, size, b.status(StatusCode::OK)),
        Ranged::Part(start, end) => (
            start,
            end - start + 1,
            b.status(StatusCode::PARTIAL_CONTENT)
                .header(CONTENT_RANGE, format!("bytes {start}-{end}/{size}")),
        ),
    };
    let mime = mime_guess::from_path(name)
        .first_raw()
        .unwrap_or("application/octet-stream");
    let b = b.header(CONTENT_TYPE, mime).header(CONTENT_LENGTH, len);
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        stream(file, start, len)?
    };
    Ok(b.body(body).expect("valid response"))
}

/// `len` bytes of `file` from `start`, in chunks. Ends early if the file shrank; a file
/// that grew is cut at `len`, the length announced.
fn stream(mut file: File, start: u64, len: u64) -> std::io::Result<Body> {
    if start > 0 {
        file.seek(SeekFrom::Start(start))?;
    }
    let file = tokio::fs::File::from_std(file).take(len);
    Ok(Body::from_stream(ReaderStream::with_capacity(file, CHUNK)))
}

/// A strong ETag from the size and the modification time (to the nanosecond), in the
/// form tower-http's `ServeFile` uses, so caches keep their validators. None for a
/// modification time before the epoch.
fn etag(size: u64, modified: SystemTime) -> Option<String> {
    let d = modified.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    Some(format!(
        "\"{:x}.{:08x}-{size:x}\"",
        d.as_secs(),
        d.subsec_nanos()
    ))
}

fn date(headers: &HeaderMap, name: axum::http::HeaderName) -> Option<HttpDate> {
    headers.get(name)?.to_str().ok()?.parse().ok()
}

/// RFC 9110 section 13.2.2: 412 when `If-Match` (or, without it, `If-Unmodified-Since`)
/// fails; 304 when `If-None-Match` (or, without it, `If-Modified-Since`) fails.
fn preconditions(
    headers: &HeaderMap,
    etag: Option<&str>,
    lm: Option<HttpDate>,
) -> Option<StatusCode> {
    if let Some(v) = headers.get(IF_MATCH).filter(|v| !v.is_empty()) {
        let passes = etag.is_some_and(|e| v.as_bytes() == b"*" || any_tag(v, |t| strong_eq(e, t)));
        if !passes {
            return Some(StatusCode::PRECONDITION_FAILED);
        }
    } else if let (Some(since), Some(lm)) = (date(headers, IF_UNMODIFIED_SINCE), lm) {
        if lm > since {
            return Some(StatusCode::PRECONDITION_FAILED);
        }
    }
    if let Some(v) = headers.get(IF_NONE_MATCH).filter(|v| !v.is_empty()) {
        let matches = etag.is_some_and(|e| v.as_bytes() == b"*" || any_tag(v, |t| weak_eq(e, t)));
        if matches {
            return Some(StatusCode::NOT_MODIFIED);
        }
    } else if let (Some(since), Some(lm)) = (date(headers, IF_MODIFIED_SINCE), lm) {
        if lm <= since {
            return Some(StatusCode::NOT_MODIFIED);
        }
    }
    None
}

/// RFC 9110 section 13.1.5: a range is served only while `If-Range` (an ETag, compared
/// strongly, or the exact `Last-Modified` date) still describes the file.
fn if_range_holds(headers: &HeaderMap, etag: Option<&str>, lm: Option<HttpDate>) -> bool {
    let Some(v) = headers.get(IF_RANGE) else {
        return true;
    };
    let b = v.as_bytes();
    if b.starts_with(b"\"") || b.starts_with(b"W/") {
        etag.is_some_and(|e| strong_eq(e, b))
    } else {
        lm.is_some_and(|lm| date(headers, IF_RANGE) == Some(lm))
    }
}

fn strong_eq(etag: &str, tag: &[u8]) -> bool {
    !tag.starts_with(b"W/") && etag.as_bytes() == tag
}

fn weak_eq(etag: &str, tag: &[u8]) -> bool {
    let tag = tag.strip_prefix(b"W/").unwrap_or(tag);
    etag.as_bytes() == tag
}

/// Whether `pred` holds for any entity tag of a comma-separated list (commas inside
/// quotes do not separate).
fn any_tag(list: &HeaderValue, mut pred: impl FnMut(&[u8]) -> bool) -> bool {
    let mut quoted = false;
    let separator = |c: &u8| {
        quoted ^= *c == b'"';
        *c == b',' && !quoted
    };
    list.as_bytes()
        .split(separator)
        .map(<[u8]>::trim_ascii)
        .any(|tag| !tag.is_empty() && pred(tag))
}

/// One `bytes` range of RFC 9110 section 14.1.2 (`a-b`, `a-`, `-n`) against a file of
/// `size` bytes. A header with another unit, several ranges or bad syntax is ignored.
fn parse_range(v: &HeaderValue, size: u64) -> Ranged {
    let Some((unit, set)) = v.to_str().ok().and_then(|v| v.split_once('=')) else {
        return Ranged::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Ranged::Whole;
    }
    let mut specs = set.split(',').map(str::trim).filter(|s| !s.is_empty());
    let (Some(spec), None) = (specs.next(), specs.next()) else {
        return Ranged::Whole;
    };
    let Some((first, last)) = spec.split_once('-') else {
        return Ranged::Whole;
    };
    match (number(first), number(last)) {
        // The last n bytes.
        (None, Some(n)) if first.is_empty() => {
            if n == 0 || size == 0 {
                Ranged::Unsatisfiable
            } else {
                Ranged::Part(size.saturating_sub(n), size - 1)
            }
        }
        (Some(a), None) if last.is_empty() => {
            if a >= size {
                Ranged::Unsatisfiable
            } else {
                Ranged::Part(a, size - 1)
            }
        }
        (Some(a), Some(b)) if a <= b => {
            if a >= size {
                Ranged::Unsatisfiable
            } else {
                Ranged::Part(a, b.min(size - 1))
            }
        }
        _ => Ranged::Whole,
    }
}

/// Decimal digits (at least one) as a number, saturating: a position beyond any file
/// is still a position.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(v: &str, size: u64) -> Ranged {
        parse_range(&HeaderValue::from_str(v).unwrap(), size)
    }

    #[test]
    fn ranges() {
        use Ranged::*;
        assert_eq!(range("bytes=0-3", 10), Part(0, 3));
        assert_eq!(range("bytes=2-", 10), Part(2, 9));
        assert_eq!(range("bytes=-3", 10), Part(7, 9));
        assert_eq!(range("bytes=-30", 10), Part(0, 9));
        assert_eq!(range("bytes=5-100", 10), Part(5, 9));
        assert_eq!(range("Bytes = 1-1 ,", 10), Part(1, 1));
        assert_eq!(range("bytes=0-99999999999999999999999", 10), Part(0, 9));
        assert_eq!(range("bytes=10-", 10), Unsatisfiable);
        assert_eq!(range("bytes=10-12", 10), Unsatisfiable);
        assert_eq!(range("bytes=-0", 10), Unsatisfiable);
        assert_eq!(range("bytes=0-0", 0), Unsatisfiable);
        assert_eq!(range("bytes=-5", 0), Unsatisfiable);
        assert_eq!(range("bytes=99999999999999999999999-", 10), Unsatisfiable);
        for ignored in [
            "bytes=0-1,4-5",
            "bytes=3-2",
            "bytes=-",
            "bytes=",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=1 - 2",
            "items=0-1",
            "0-1",
        ] {
            assert_eq!(range(ignored, 10), Whole, "{ignored}");
        }
    }

    #[test]
    fn entity_tag_lists() {
        let list = |v: &str| {
            let mut out = Vec::new();
            any_tag(&HeaderValue::from_str(v).unwrap(), |t| {
                out.push(String::from_utf8(t.to_vec()).unwrap());
                false
            });
            out
        };
        assert_eq!(
            list(r#""a", W/"b,c" ,"d""#),
            [r#""a""#, r#"W/"b,c""#, r#""d""#]
        );
        assert_eq!(list(" , "), Vec::<String>::new());
        assert!(weak_eq(r#""x""#, br#"W/"x""#));
        assert!(!strong_eq(r#""x""#, br#"W/"x""#));
        assert!(strong_eq(r#""x""#, br#""x""#));
    }
}
