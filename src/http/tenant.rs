//! The one tenant rule. A tenant name is 1 to [`MAX_BYTES`] bytes once surrounding
//! whitespace is trimmed, with no NUL; the trimmed name is the tenant. Every source of
//! a tenant goes through [`valid`]: the `X-Tenant-ID` header ([`header`], default
//! `default`), a body's `tenant_id` (search and sync), `?tenant=` of a stream
//! ([`query`]) and the `{tenantId}` path segment of the sync routes ([`path`],
//! [`path_segment`]). The handlers and the auth middleware's tenant gate call the same
//! functions, so both see the same tenant. Each area wraps the reason in its own error
//! envelope (400).

use axum::http::HeaderMap;

/// Longest tenant name, in bytes.
pub const MAX_BYTES: usize = 128;
/// The tenant of a request that names none.
pub const DEFAULT: &str = "default";

/// `raw`, trimmed, if it is a valid tenant name; else why not.
pub fn valid(raw: &str) -> Result<&str, String> {
    let t = raw.trim();
    if t.is_empty() {
        return Err("is empty".into());
    }
    if t.len() > MAX_BYTES {
        return Err(format!("is {} bytes", t.len()));
    }
    if t.contains('\0') {
        return Err("contains NUL".into());
    }
    Ok(t)
}

/// [`valid`] for a tenant taken from `source` (named in the reason), as an owned name.
pub fn named(source: &str, raw: &str) -> Result<String, String> {
    valid(raw)
        .map(str::to_string)
        .map_err(|why| refused(source, &why))
}

fn refused(source: &str, why: &str) -> String {
    format!("{source} {why}: a tenant must be 1 to {MAX_BYTES} bytes (surrounding spaces ignored), without NUL")
}

/// The tenant of `X-Tenant-ID`, [`DEFAULT`] without the header.
pub fn header(headers: &HeaderMap) -> Result<String, String> {
    const SOURCE: &str = "X-Tenant-ID";
    match headers.get("x-tenant-id") {
        None => Ok(DEFAULT.into()),
        Some(v) => match v.to_str() {
            Ok(t) => named(SOURCE, t),
            Err(_) => Err(refused(SOURCE, "is not visible ASCII")),
        },
    }
}

/// The tenant of the first `tenant=` of a query string, percent-decoded; `None` when
/// the query names none.
pub fn query(query: Option<&str>) -> Option<Result<String, String>> {
    let raw = query?
        .split('&')
        .find_map(|kv| kv.strip_prefix("tenant="))?;
    Some(named("?tenant=", &super::percent::percent_decode(raw)))
}

/// The tenant of a `{tenantId}` path parameter, as the router decoded it.
pub fn path(decoded: &str) -> Result<String, String> {
    named("the path's tenant", decoded)
}

/// The tenant of a raw (still percent-encoded) path segment, decoded as the router
/// decodes path parameters: `+` is itself, unlike in a query string.
pub fn path_segment(segment: &str) -> Result<String, String> {
    path(&super::percent::percent_decode(
        &segment.replace('+', "%2B"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule() {
        assert_eq!(valid(" team-a "), Ok("team-a"));
        assert_eq!(valid(&"x".repeat(MAX_BYTES)).map(str::len), Ok(MAX_BYTES));
        for bad in [
            "",
            "  ",
            "a\0b",
            &"x".repeat(MAX_BYTES + 1),
            &"x".repeat(5000),
        ] {
            assert!(valid(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn every_source_applies_it() {
        let mut h = HeaderMap::new();
        assert_eq!(header(&h).as_deref(), Ok(DEFAULT));
        h.insert("x-tenant-id", " b ".parse().unwrap());
        assert_eq!(header(&h).as_deref(), Ok("b"));
        h.insert("x-tenant-id", "".parse().unwrap());
        assert!(header(&h).unwrap_err().contains("X-Tenant-ID"));
        assert_eq!(query(Some("token=x")), None);
        assert_eq!(query(Some("a=1&tenant=a%20b")), Some(Ok("a b".into())));
        for q in ["tenant=", "tenant=%00", "tenant=+"] {
            assert!(matches!(query(Some(q)), Some(Err(_))), "{q}");
        }
        assert_eq!(path_segment("a+b").as_deref(), Ok("a+b"));
        assert!(path_segment("a%00").is_err() && path_segment("%20").is_err());
        assert!(path(&"t".repeat(5000)).is_err());
    }
}
