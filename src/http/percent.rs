//! Percent-decoding of query values and path segments, shared by every area (the
//! tenant rule, the load and points queries, the request front's UTF-8 check).

/// Decodes a percent-encoded query value (`+` is a space).
pub fn percent_decode(s: &str) -> String {
    String::from_utf8_lossy(&percent_bytes(&s.replace('+', " "))).into_owned()
}

/// The bytes percent-encoded text stands for (a `%` without two hex digits is kept).
pub fn percent_bytes(s: &str) -> Vec<u8> {
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
