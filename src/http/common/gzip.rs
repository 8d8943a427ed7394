//! gzip for answers that are large and read by browsers (the console's assets and its
//! bucketed series reads): whether a request accepts it ([`accepts`]), and a body
//! compressed ([`compress`]). Other answers are sent as they are.

use std::io::Write;

use axum::http::{header, HeaderMap};

/// Whether the request's `Accept-Encoding` takes gzip (not refused with `q=0`).
pub fn accepts(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|enc| {
            let mut parts = enc.trim().split(';');
            let name = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00"));
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

/// `bytes` gzip-compressed at `level` (0 to 9).
pub fn compress(bytes: &[u8], level: u32) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn gzip_is_accepted_only_when_asked_for() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(v));
            accepts(&h)
        };
        assert!(with("gzip, deflate, br"));
        assert!(with("br;q=1.0, GZIP;q=0.5"));
        assert!(!with("gzip;q=0, br"));
        assert!(!with("identity"));
        assert!(!accepts(&HeaderMap::new()));
    }

    #[test]
    fn compressed_bytes_come_back() {
        let text = b"{\"metrics\":[1,2,3]}".repeat(100);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(compress(&text, 1).as_slice())
            .read_to_end(&mut back)
            .expect("gunzip");
        assert_eq!(back, text);
    }
}
