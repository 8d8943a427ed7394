//! The one tenant rule. A tenant name is 1 to [`MAX_BYTES`] bytes once surrounding
//! whitespace is trimmed, with no NUL; the trimmed name is the tenant. Every way a
//! tenant arrives goes through [`valid`]: the `X-Tenant-ID` header ([`header`], default
//! `default`), a JSON body's `tenant_id` ([`body`], search and sync), `?tenant=` of a
//! stream ([`query()`], [`stream`]) and the `{tenantId}` path segment of the sync routes
//! ([`path`], [`path_segment`]). The handlers and the auth middleware's tenant gate
//! call the same functions, so both see the same tenant. A refusal is the reason as
//! text; each area answers it with 400 in its own envelope.

use axum::http::HeaderMap;
use serde_json::{Map, Value};

use super::query;

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
    let t = query::first(query, "tenant")?;
    Some(named("?tenant=", &t))
}

/// The tenant of a live stream: `?tenant=` (browsers cannot set headers), else
/// `X-Tenant-ID`.
pub fn stream(headers: &HeaderMap, query: Option<&str>) -> Result<String, String> {
    self::query(query).unwrap_or_else(|| header(headers))
}

/// The tenant of a JSON body (search, sync): its `tenant_id`, else `X-Tenant-ID`.
pub fn body(m: &Map<String, Value>, headers: &HeaderMap) -> Result<String, String> {
    match m.get("tenant_id") {
        None | Some(Value::Null) => header(headers),
        Some(Value::String(t)) => named("`tenant_id`", t),
        Some(_) => Err("`tenant_id` must be a string".into()),
    }
}

/// The tenant of a `{tenantId}` path parameter, as the router decoded it.
pub fn path(decoded: &str) -> Result<String, String> {
    named("the path's tenant", decoded)
}

/// The tenant of a raw (still percent-encoded) path segment, decoded as the router
/// decodes path parameters: `+` is itself, unlike in a query string.
pub fn path_segment(segment: &str) -> Result<String, String> {
    path(&query::decode_path(segment))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

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
        assert_eq!(stream(&h, Some("token=x")).as_deref(), Ok("b"));
        assert_eq!(stream(&h, Some("tenant=c+d")).as_deref(), Ok("c d"));
        let obj = |v: Value| v.as_object().cloned().unwrap();
        assert_eq!(body(&obj(json!({})), &h).as_deref(), Ok("b"));
        assert_eq!(
            body(&obj(json!({"tenant_id": null})), &h).as_deref(),
            Ok("b")
        );
        assert_eq!(
            body(&obj(json!({"tenant_id": " e "})), &h).as_deref(),
            Ok("e")
        );
        for bad in [json!({"tenant_id": ""}), json!({"tenant_id": 1})] {
            assert!(body(&obj(bad.clone()), &h).is_err(), "{bad}");
        }
        h.insert("x-tenant-id", "".parse().unwrap());
        assert!(header(&h).unwrap_err().contains("X-Tenant-ID"));
        assert!(stream(&h, None).is_err() && body(&obj(json!({})), &h).is_err());
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
