//! Query strings and percent-encoded text, decoded with the `percent-encoding` crate:
//! a `%` followed by two hex digits is the byte they spell, any other `%` is itself,
//! and bytes that are no UTF-8 once decoded become U+FFFD. In a query value `+` is a
//! space (form encoding, applied before the escapes, so `%2B` stays `+`); in a path
//! segment it is itself. Used by the tenant rule, the auth middleware, the load and
//! points queries and the request front's UTF-8 check of paths.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

/// Decodes a percent-encoded query value (`+` is a space).
pub fn decode(value: &str) -> String {
    let value = match value.contains('+') {
        true => Cow::Owned(value.replace('+', " ")),
        false => Cow::Borrowed(value),
    };
    percent_decode_str(&value).decode_utf8_lossy().into_owned()
}

/// Decodes a percent-encoded path segment, as the router decodes path parameters
/// (`+` is itself).
pub fn decode_path(segment: &str) -> String {
    percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

/// Whether a raw (still percent-encoded) path is UTF-8 once decoded.
pub fn path_is_utf8(path: &str) -> bool {
    percent_decode_str(path).decode_utf8().is_ok()
}

/// The raw (still encoded) value of the first `name=` of a query string.
pub fn first_raw<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// The value of the first `name=` of a query string, decoded ([`decode`]); `None`
/// when the query has none.
pub fn first(query: Option<&str>, name: &str) -> Option<String> {
    first_raw(query, name).map(decode)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The decoding this module had before it used the crate, kept as the reference.
    fn hand_written(s: &str) -> Vec<u8> {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            match (
                bytes[i],
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                (b'%', Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                }
                (b, _, _) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        out
    }

    #[test]
    fn decodes_query_values() {
        assert_eq!(decode("llama%2D7b+x"), "llama-7b x");
        assert_eq!(decode("a%zz"), "a%zz");
        assert_eq!(decode("a%2Bb+c"), "a+b c");
        assert_eq!(decode("%e9%FF%"), "\u{fffd}\u{fffd}%");
        assert_eq!(decode_path("a+b%20c"), "a+b c");
        assert!(path_is_utf8("/meta/%C3%A9") && !path_is_utf8("/meta/%FF"));
    }

    #[test]
    fn same_as_the_hand_written_decoding() {
        let cases = [
            "",
            "%",
            "%%",
            "%4",
            "%41",
            "%4g",
            "%g4",
            "a%41%",
            "%%41",
            "%C3%A9",
            "%c3%a9",
            "%FF%FE",
            "+%2B+",
            "%E2%82",
            "%E2%82%AC",
            "é%41",
            "%ÿ1",
            "100%",
            "%0A%00",
        ];
        for s in cases {
            let want = String::from_utf8_lossy(&hand_written(&s.replace('+', " "))).into_owned();
            assert_eq!(decode(s), want, "{s:?}");
            let raw = hand_written(s);
            assert_eq!(path_is_utf8(s), std::str::from_utf8(&raw).is_ok(), "{s:?}");
            let segment = hand_written(&s.replace('+', "%2B"));
            assert_eq!(decode_path(s), String::from_utf8_lossy(&segment), "{s:?}");
        }
    }

    #[test]
    fn first_values() {
        let q = Some("a=1&tenant=x%20y&tenant=z&tenantx=w");
        assert_eq!(first(q, "tenant").as_deref(), Some("x y"));
        assert_eq!(first_raw(q, "tenant"), Some("x%20y"));
        assert_eq!(first(Some("tenant"), "tenant"), None);
        assert_eq!(first(Some("tenant="), "tenant").as_deref(), Some(""));
        assert_eq!(first(None, "tenant"), None);
    }
}
