//! Reading metric metadata from a Prometheus-compatible source (VictoriaMetrics,
//! Prometheus): `/api/v1/series` over a time range, `/api/v1/metadata` for type, help
//! and unit, each request with a timeout and retried with exponential backoff; the
//! series grouped by metric name with their label keys and values merged.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use metacenter_storage::{MetricDocIn, MAX_LABEL_VALUES};
use serde::Deserialize;

use super::settings::SyncSource;

/// Longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Deserialize)]
struct PromAnswer<T> {
    status: String,
    data: Option<T>,
    error: Option<String>,
}

#[derive(Deserialize, Default, Clone)]
struct MetaEntry {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    help: String,
    #[serde(default)]
    unit: String,
}

/// How a fetch is made.
pub struct Fetch<'a> {
    pub http: &'a reqwest::Client,
    pub source: &'a SyncSource,
    pub timeout: Duration,
    pub max_retries: u32,
    pub retry_delay: Duration,
}

impl Fetch<'_> {
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, String> {
        let url = format!("{}{path}", self.source.url.trim_end_matches('/'));
        let mut req = self.http.get(&url).query(query).timeout(self.timeout);
        if let Some(user) = &self.source.username {
            req = req.basic_auth(user, self.source.password.as_deref());
        }
        if let Some(token) = &self.source.bearer_token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.map_err(|e| format!("GET {url}: {e}"))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| format!("GET {url}: {e}"))?;
        let ans: PromAnswer<T> = serde_json::from_slice(&body)
            .map_err(|e| format!("GET {url}: HTTP {status}, unreadable answer: {e}"))?;
        match (ans.status.as_str(), ans.data) {
            ("success", Some(data)) => Ok(data),
            _ => Err(format!(
                "GET {url}: HTTP {status}: {}",
                ans.error.unwrap_or_else(|| "no data".into())
            )),
        }
    }

    /// `get` retried `max_retries` times, the delay doubling from `retry_delay`.
    async fn get_retried<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, String> {
        let mut delay = self.retry_delay;
        let mut attempt = 0;
        loop {
            match self.get(path, query).await {
                Ok(v) => return Ok(v),
                Err(e) if attempt >= self.max_retries => {
                    return Err(format!("{e} (after {} attempts)", attempt + 1))
                }
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "sync source request failed; retrying")
                }
            }
            attempt += 1;
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_BACKOFF);
        }
    }

    /// The metric metadata of the series active in `[start_s, end_s]` (unix seconds),
    /// and the non-fatal problems met (metadata endpoint missing, nameless series).
    pub async fn collect(
        &self,
        start_s: i64,
        end_s: i64,
    ) -> Result<(Vec<MetricDocIn>, Vec<String>), String> {
        let mut query: Vec<(&str, String)> =
            vec![("start", start_s.to_string()), ("end", end_s.to_string())];
        let matchers = if self.source.matchers.is_empty() {
            vec![r#"{__name__=~".+"}"#.to_string()]
        } else {
            self.source.matchers.clone()
        };
        query.extend(matchers.into_iter().map(|m| ("match[]", m)));
        let series: Vec<BTreeMap<String, String>> =
            self.get_retried("/api/v1/series", &query).await?;
        let mut errors = Vec::new();
        let meta: BTreeMap<String, Vec<MetaEntry>> =
            match self.get_retried("/api/v1/metadata", &[]).await {
                Ok(m) => m,
                Err(e) => {
                    errors.push(format!("metadata unavailable: {e}"));
                    BTreeMap::new()
                }
            };
        let (docs, nameless) = group(series, &meta);
        if nameless > 0 {
            errors.push(format!("{nameless} series without __name__ skipped"));
        }
        Ok((docs, errors))
    }
}

/// Groups series by `__name__`: label keys merged, values kept up to the bound.
fn group(
    series: Vec<BTreeMap<String, String>>,
    meta: &BTreeMap<String, Vec<MetaEntry>>,
) -> (Vec<MetricDocIn>, usize) {
    let mut by_name: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let mut nameless = 0;
    for mut labels in series {
        let Some(name) = labels.remove("__name__") else {
            nameless += 1;
            continue;
        };
        let entry = by_name.entry(name).or_default();
        for (k, v) in labels {
            let values = entry.entry(k).or_default();
            if values.len() < MAX_LABEL_VALUES {
                values.insert(v);
            }
        }
    }
    let docs = by_name
        .into_iter()
        .map(|(name, labels)| {
            let m = meta
                .get(&name)
                .and_then(|v| v.first())
                .cloned()
                .unwrap_or_default();
            MetricDocIn {
                kind: if m.kind.is_empty() {
                    infer_type(&name)
                } else {
                    m.kind
                },
                help: m.help,
                unit: m.unit,
                labels: labels
                    .into_iter()
                    .map(|(k, vs)| (k, vs.into_iter().collect()))
                    .collect(),
                name,
            }
        })
        .collect();
    (docs, nameless)
}

/// The type a metric's name suggests when the source has no metadata for it.
fn infer_type(name: &str) -> String {
    let t = if name.ends_with("_total") || name.ends_with("_count") || name.ends_with("_sum") {
        "counter"
    } else if name.ends_with("_bucket") {
        "histogram"
    } else {
        "gauge"
    };
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_by_name_merging_labels() {
        let s = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let series = vec![
            s(&[("__name__", "up"), ("job", "a")]),
            s(&[("__name__", "up"), ("job", "b"), ("pod", "p")]),
            s(&[("__name__", "http_requests_total"), ("code", "200")]),
            s(&[("job", "x")]),
        ];
        let meta = BTreeMap::from([(
            "up".to_string(),
            vec![MetaEntry {
                kind: "gauge".into(),
                help: "Up".into(),
                unit: String::new(),
            }],
        )]);
        let (docs, nameless) = group(series, &meta);
        assert_eq!(nameless, 1);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].name, "http_requests_total");
        assert_eq!(docs[0].kind, "counter", "inferred without metadata");
        assert_eq!(docs[1].help, "Up");
        assert_eq!(docs[1].labels["job"], vec!["a", "b"]);
        assert_eq!(docs[1].labels["pod"], vec!["p"]);
    }
}
