//! Harnesses of the client API's request parsing, one per area, each calling the
//! parsers the handlers call (`crate::http::*`, and the shared layer's
//! `crate::http::common::*`), plus the configuration's text forms.
//! Beyond "no panic", each checks what the handler relies on for what it accepts.

use std::net::Ipv4Addr;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use metacenter_storage::{Command, Limits};
use serde_json::Value;

use super::{pick, text, two};
use crate::config::EdgeLimits;
use crate::http::common::body::json_object;
use crate::http::common::consistency::wants_linearizable;
use crate::http::common::envelope::EnvelopeError;
use crate::http::common::headers::CONSISTENCY_HEADER;
use crate::http::common::key::check_key;
use crate::http::common::metric_error::MetricError;
use crate::http::common::point::parse_run;
use crate::http::common::{query, watch};
use crate::http::{load, meta, points, promapi, search, services, ws};

/// Headers holding `name: value`, or `None` when the bytes are no header value.
fn header(name: &'static str, value: &[u8]) -> Option<HeaderMap> {
    let mut h = HeaderMap::new();
    h.insert(
        HeaderName::from_static(name),
        HeaderValue::from_bytes(value).ok()?,
    );
    Some(h)
}

fn key_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= Limits::MAX_KEY && !s.contains('\0')
}

fn watch_query(q: &str) -> bool {
    let w = watch::parse(Some(q));
    if let Ok(Some(w)) = &w {
        assert!(w.wait <= watch::MAX_WAIT, "wait over the bound: {w:?}");
    }
    w.is_ok()
}

/// Metadata: 0 merge body, 1 property value body, 2 `If-Match`, 3 blocking-query
/// parameters, 4 a hash id or property path, 5 the consistency header and query.
pub fn api_meta(data: &[u8]) -> bool {
    let (variant, input) = pick(data, 6);
    match variant {
        0 => meta::fields(&EdgeLimits::default(), input)
            .inspect(|m| {
                assert!(m.len() <= Limits::MAX_PROPS);
                for (k, v) in m {
                    assert!(key_ok(k) && v.len() <= Limits::MAX_VALUE, "{k:?}");
                }
            })
            .is_ok(),
        1 => meta::single_value(&EdgeLimits::default(), input)
            .inspect(|v| assert!(v.len() <= Limits::MAX_VALUE))
            .is_ok(),
        2 => header("if-match", input).is_some_and(|h| meta::if_match(&h).is_ok()),
        3 => watch_query(&text(input)),
        4 => check_key(&EdgeLimits::default(), "property name", &text(input)).is_ok(),
        _ => {
            let (h, q) = two(input);
            let h = header(CONSISTENCY_HEADER, h).unwrap_or_default();
            wants_linearizable(&h, Some(&text(q)));
            true
        }
    }
}

/// Services: 0 a registration (`name\nbody`), 1 blocking-query parameters.
pub fn api_services(data: &[u8]) -> bool {
    let (variant, input) = pick(data, 2);
    if variant == 1 {
        return watch_query(&text(input));
    }
    let (name, body) = two(input);
    let name = text(name);
    let r = services::registration(&EdgeLimits::default(), &name, body);
    if let Ok((info, _)) = &r {
        assert!(info.len() <= Limits::MAX_VALUE);
        let v: serde_json::Map<String, Value> =
            serde_json::from_str(info).expect("stored ServiceInfo is a JSON object");
        assert!(!v.contains_key("lastHeartbeat") && !v.contains_key("deregisterAfterMs"));
        assert!(v.get("name").is_none_or(|n| n.as_str() == Some(&name)));
    }
    r.is_ok()
}

/// What apply re-checks must already hold for a load command the edge accepts.
fn load_command_ok(c: &Command) {
    match c {
        Command::LoadAdd {
            cluster,
            request_id,
            ip,
            ..
        } => {
            assert!(key_ok(cluster) && key_ok(request_id) && key_ok(ip));
            assert!(ip.parse::<Ipv4Addr>().is_ok(), "ip {ip:?}");
        }
        Command::LoadPromptDone { request_id, .. } | Command::LoadDone { request_id, .. } => {
            assert!(key_ok(request_id))
        }
        other => panic!("a load request became {other:?}"),
    }
}

/// Load: 0 add, 1 first token, 2 done (each a JSON request), 3 a batch, 4 the
/// percent-decoding of `?cluster=`.
pub fn api_load(data: &[u8]) -> bool {
    let (variant, input) = pick(data, 5);
    let now = 1_700_000_000_000_000_000;
    let one = |make: &dyn Fn(&load::LoadReq) -> Result<Command, EnvelopeError>| {
        load::parse_json::<load::LoadReq>(input)
            .and_then(|r| make(&r))
            .inspect(load_command_ok)
            .is_ok()
    };
    match variant {
        0 => one(&|r| load::add_command(r, now)),
        1 => one(&|r| load::finish_command(r, now, true)),
        2 => one(&|r| load::finish_command(r, now, false)),
        3 => load::parse_json::<load::BatchReq>(input)
            .and_then(|b| load::batch_commands(&b, now))
            .inspect(|ops| ops.iter().flatten().for_each(load_command_ok))
            .is_ok(),
        _ => {
            query::decode(&text(input));
            true
        }
    }
}

fn metric_ok(name: &str, value: f64) {
    assert!(!name.is_empty() && name.len() <= 256 && !name.contains('\0'));
    assert!(value.is_finite(), "value {value}");
}

/// Points: 0 a metrics batch, 1 a system metrics batch, 2 history query parameters,
/// 3 a pagination cursor, 4 `X-Tenant-ID`, 5 a run id.
pub fn api_points(data: &[u8]) -> bool {
    let (variant, input) = pick(data, 6);
    let now = 1_700_000_000_000_000_000;
    match variant {
        0 => points::batch_items(input, 10_000).is_ok_and(|items| {
            items.iter().all(|it| {
                points::point_in(it, now, &EdgeLimits::default())
                    .inspect(|p| metric_ok(&p.metric, p.value))
                    .is_ok()
            })
        }),
        1 => points::batch_items(input, 10_000).is_ok_and(|items| {
            items.iter().all(|it| {
                points::system_point_in(it, now, &EdgeLimits::default())
                    .inspect(|p| metric_ok(&p.metric_type, p.value))
                    .is_ok()
            })
        }),
        2 => points::history_params(Some(&text(input))).is_ok(),
        3 => match points::decode_cursor(&text(input)) {
            Some(c) => {
                let again = points::decode_cursor(&points::encode_cursor(&c));
                assert_eq!(again.as_ref(), Some(&c), "cursor round trip");
                true
            }
            None => false,
        },
        4 => header("x-tenant-id", input).is_some_and(|h| points::tenant(&h).is_ok()),
        _ => parse_run(&text(input)).is_ok(),
    }
}

/// Search: 0 a search body, 1 a sync configuration PUT, 2 the `sync.sources` text form
/// (`TENANT=URL#SELECTOR,...`), 3 a duration as text.
pub fn api_search(data: &[u8]) -> bool {
    let (variant, input) = pick(data, 4);
    let body = || json_object(Ok(Bytes::copy_from_slice(input))).map_err(MetricError::from);
    match variant {
        0 => body()
            .and_then(|m| search::parse_search(&m, &HeaderMap::new()))
            .is_ok(),
        1 => body().is_ok_and(|m| {
            let cur = crate::Config::default().sync.defaults;
            search::merge_settings(cur, &m)
                .inspect(|x| crate::search::settings::validate(x).expect("merged is valid"))
                .is_ok()
        }),
        2 => {
            let mut cfg = crate::search::SyncConfig::default();
            let r = cfg.set("sync.sources", &text(input));
            for s in &cfg.sources {
                assert!(!s.tenant.is_empty() && s.tenant.len() <= 128);
                assert!(s.url.starts_with("http://") || s.url.starts_with("https://"));
            }
            r.is_ok()
        }
        _ => crate::search::settings::parse_duration_text(&text(input)).is_ok(),
    }
}

/// Prometheus API: 0 a whole query string (`match[]`, `start`, `end`), 1 one series
/// selector. Accepted selectors are evaluated against a label set.
pub fn api_promapi(data: &[u8]) -> bool {
    let (variant, input) = pick(data, 2);
    let labels = std::collections::BTreeMap::from([
        ("__name__", "train_loss".to_string()),
        ("run_id", "0b5c1f1e-5f41-4a55-9c29-6f0a2f0f6c1d".to_string()),
    ]);
    let eval = |ms: &[promapi::Matcher]| ms.iter().all(|m| m.matches(&labels));
    let q = text(input);
    if variant == 0 {
        return promapi::parse_filter(Some(&q))
            .inspect(|f| {
                for s in &f.selectors {
                    eval(s);
                }
            })
            .is_ok();
    }
    promapi::parse_selector(&q)
        .inspect(|s| {
            eval(s);
        })
        .is_ok()
}

/// WebSocket streams: 0 a client message, 1 the stream's tenant (`X-Tenant-ID` line,
/// then the query string).
pub fn api_ws(data: &[u8]) -> bool {
    let (variant, input) = pick(data, 2);
    if variant == 1 {
        let (h, q) = two(input);
        let h = header("x-tenant-id", h).unwrap_or_default();
        return ws::stream_tenant(&h, Some(&text(q))).is_ok();
    }
    let run_id = "0b5c1f1e-5f41-4a55-9c29-6f0a2f0f6c1d";
    let mut f = ws::Filter {
        tenant: "default".into(),
        run: [0; 16],
        run_id: run_id.into(),
        names: None,
    };
    let answer = ws::on_client(&text(input), &mut f);
    assert_eq!(f.run_id, run_id, "a message cannot move the stream");
    match answer["type"].as_str() {
        Some("subscribed") => {
            assert_eq!(answer["payload"]["run_id"], run_id);
            true
        }
        Some("error") => false,
        other => panic!("unexpected answer type {other:?}"),
    }
}

/// Configuration text forms: 0 `auth.tokens` (`TOKEN:ROLE[:tenants],...`), 1 any
/// setting (`key\nvalue`) followed by the start-up validation.
pub fn config(data: &[u8]) -> bool {
    let (variant, input) = pick(data, 2);
    if variant == 0 {
        let r = crate::auth::parse_text(&text(input));
        for t in r.iter().flatten() {
            assert!(!t.token.is_empty());
            assert!(!t.token.chars().any(|c| c.is_whitespace() || c.is_control()));
            assert!(t.tenants.iter().all(|t| !t.is_empty() && t.len() <= 128));
        }
        return r.is_ok();
    }
    let (key, value) = two(input);
    let mut cfg = crate::Config::default();
    let ok = cfg.set(&text(key), &text(value)).is_ok();
    _ = cfg.validate();
    ok
}
