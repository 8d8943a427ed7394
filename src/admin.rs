//! The admin client behind `metacenter cluster ...` and `metacenter health`: plain
//! HTTP calls to a node's API.

use std::time::Duration;

use serde_json::Value;

/// Why an admin call failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot reach {node}: {source}")]
    Connect {
        node: String,
        source: reqwest::Error,
    },
    #[error("{node} answered {status}: {body}{}", hint(*status))]
    Refused {
        node: String,
        status: u16,
        body: String,
    },
}

/// What to do about a refusal, where the status says.
fn hint(status: u16) -> &'static str {
    match status {
        401 => " (give a token with --token or METACENTER_TOKEN)",
        403 => " (this needs a token with the admin role)",
        _ => "",
    }
}

/// Sends `method path` with an optional JSON body to the node at `node` (host:port),
/// with `Authorization: Bearer TOKEN` when a token is given.
pub async fn call(
    node: &str,
    token: Option<&str>,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, AdminError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(180))
        .build()
        .expect("client");
    let mut req = client.request(method, format!("http://{node}{path}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let connect = |source| AdminError::Connect {
        node: node.to_string(),
        source,
    };
    let resp = req.send().await.map_err(connect)?;
    let status = resp.status();
    let text = resp.text().await.map_err(connect)?;
    if !status.is_success() {
        return Err(AdminError::Refused {
            node: node.to_string(),
            status: status.as_u16(),
            body: text,
        });
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Parses `--members 1=peer@api,2=peer@api` for `cluster init`.
pub fn parse_members(spec: &str) -> Result<Vec<Value>, String> {
    spec.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|m| {
            let (id, addrs) = m
                .split_once('=')
                .ok_or(format!("`{m}`: expected ID=PEER@API"))?;
            let (peer, api) = addrs
                .split_once('@')
                .ok_or(format!("`{m}`: expected ID=PEER@API"))?;
            let id: u64 = id
                .trim()
                .parse()
                .map_err(|_| format!("`{id}` is not a node id"))?;
            Ok(serde_json::json!({ "id": id, "peer": peer.trim(), "api": api.trim() }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn members_spec() {
        let m = super::parse_members("1=127.0.0.1:8091@127.0.0.1:8081,2=a:1@b:2").unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[1]["api"], "b:2");
        assert!(super::parse_members("1=x").is_err());
    }

    #[test]
    fn a_refusal_for_want_of_a_token_says_how_to_give_one() {
        let refused = |status| super::AdminError::Refused {
            node: "n:1".into(),
            status,
            body: "no".into(),
        };
        assert!(refused(401)
            .to_string()
            .contains("--token or METACENTER_TOKEN"));
        assert!(refused(403).to_string().contains("admin role"));
        assert_eq!(refused(400).to_string(), "n:1 answered 400: no");
    }
}
