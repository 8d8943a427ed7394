//! Pieces shared by the workloads: durations, the HTTP/1.1 keep-alive pool, keys and
//! values, targets, HTTP calls that count as acknowledged, and [`GetAck`] (2xx reads).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use rand::distr::{Alphanumeric, SampleString};
use rand::RngExt;
use serde_json::Value;

use super::{OpError, Workload};

/// Parses `10s`, `500ms`, `2m`, `1.5s` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .with_context(|| format!("invalid duration `{s}`"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "us" => n / 1_000_000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("invalid duration unit in `{s}` (use ms, s, m or h)"),
    };
    Duration::try_from_secs_f64(secs).with_context(|| format!("invalid duration `{s}`"))
}

/// An HTTP/1.1 client whose keep-alive pool holds `conns` connections per host.
pub fn http_client(conns: usize, timeout: Duration) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(conns)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(3))
        .no_proxy()
        .build()
        .context("building the HTTP client")
}

/// Random keys of a fixed printable size drawn from a key space.
#[derive(Clone, Debug)]
pub struct KeyGen {
    size: usize,
    space: u64,
}

impl KeyGen {
    /// Keys of `size` characters (zero-padded decimal), uniformly from `space` distinct keys.
    pub fn new(size: usize, space: u64) -> Result<Self> {
        if size == 0 || size > 512 {
            bail!("key size must be 1..=512");
        }
        let max = 10u64.checked_pow(size.min(19) as u32).unwrap_or(u64::MAX);
        Ok(KeyGen {
            size,
            space: space.clamp(1, max),
        })
    }

    pub fn next(&self) -> String {
        let n = rand::rng().random_range(0..self.space);
        format!("{n:0width$}", width = self.size)
    }
}

/// A random alphanumeric value of `size` bytes.
pub fn random_value(size: usize) -> String {
    Alphanumeric.sample_string(&mut rand::rng(), size)
}

/// Standard base64 with padding (etcd's JSON gateway carries keys and values this way).
pub fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Splits `a,b,c` into addresses (a leading `http://` is dropped).
pub fn parse_targets(s: &str) -> Result<Vec<String>> {
    let t: Vec<String> = s
        .split(',')
        .map(|a| a.trim().trim_start_matches("http://").trim_end_matches('/'))
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect();
    if t.is_empty() {
        bail!("no targets given");
    }
    Ok(t)
}

/// Sends an HTTP request and returns the status and body as JSON (`Null` if not JSON).
pub(super) async fn call_json(req: reqwest::RequestBuilder) -> Result<(u16, Value), OpError> {
    let resp = req.send().await.map_err(|e| OpError::from_reqwest(&e))?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|e| OpError::from_reqwest(&e))?;
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// Sends a write and drains the answer (so the connection is reused); `Ok` on 2xx.
pub(super) async fn send_ack(req: reqwest::RequestBuilder) -> Result<(), OpError> {
    send_expect(req, |s| s.is_success()).await
}

/// Sends `req` and drains the answer; acknowledged when `ok` accepts its status.
pub(super) async fn send_expect(
    req: reqwest::RequestBuilder,
    ok: impl Fn(reqwest::StatusCode) -> bool,
) -> Result<(), OpError> {
    let resp = req.send().await.map_err(|e| OpError::from_reqwest(&e))?;
    let status = resp.status();
    resp.bytes().await.map_err(|e| OpError::from_reqwest(&e))?;
    if ok(status) {
        Ok(())
    } else {
        Err(OpError::Status(status.as_u16().to_string()))
    }
}

/// Reads: each operation is a `GET` of one of `urls` (client `i`, operation `s`: url
/// `(i + s) % len`), acknowledged on 2xx with the body drained.
pub struct GetAck {
    http: reqwest::Client,
    urls: Vec<String>,
}

impl GetAck {
    pub fn new(urls: Vec<String>, clients: usize, timeout: Duration) -> Result<Self> {
        if urls.is_empty() {
            bail!("no URL to read");
        }
        Ok(GetAck {
            http: http_client(clients, timeout)?,
            urls,
        })
    }
}

impl Workload for GetAck {
    async fn op(&self, client: usize, seq: u64) -> Result<(), OpError> {
        let i = client.wrapping_add(seq as usize) % self.urls.len();
        send_ack(self.http.get(&self.urls[i])).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, enc) in cases {
            assert_eq!(base64(plain.as_bytes()), enc);
        }
    }

    #[test]
    fn keys_have_fixed_size_and_stay_in_space() {
        let k = KeyGen::new(8, 1000).unwrap();
        for _ in 0..100 {
            let key = k.next();
            assert_eq!(key.len(), 8);
            assert!(key.parse::<u64>().unwrap() < 1000);
        }
        assert_eq!(KeyGen::new(2, 1_000_000).unwrap().space, 100);
    }

    #[test]
    fn targets_are_split_and_trimmed() {
        let t = parse_targets("http://127.0.0.1:1/, 127.0.0.1:2").unwrap();
        assert_eq!(t, ["127.0.0.1:1", "127.0.0.1:2"]);
        assert!(parse_targets(" , ").is_err());
    }
}
