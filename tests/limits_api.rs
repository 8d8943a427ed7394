//! The size limits of `[limits]` are configurable and each is enforced at the edge
//! with a clear error in the area's envelope, writing nothing: keys, values,
//! properties per object, service records and point metadata.

mod common;

use common::Node;
use metacenter::Config;
use reqwest::StatusCode;
use serde_json::json;

const RUN: &str = "7d444840-9dc0-11d1-b245-5ffdce74fad2";

async fn node() -> Node {
    Node::single(&[
        ("limits.max_key_bytes", "8"),
        ("limits.max_value_bytes", "16"),
        ("limits.max_properties", "2"),
        ("limits.max_point_metadata_bytes", "32"),
    ])
    .await
}

#[tokio::test]
async fn keys_values_and_properties_are_bounded_as_configured() {
    let n = node().await;
    let (st, b) = n.put("/meta/12345678", json!({"a": "x".repeat(16)})).await;
    assert!(st.is_success(), "at the limits: {st} {b}");

    let (st, b) = n.put("/meta/123456789", json!({"a": "1"})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
    assert!(b["message"].as_str().unwrap().contains("8 bytes"), "{b}");

    let (st, b) = n.put("/meta/v", json!({"a": "x".repeat(17)})).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
    assert!(b["message"].as_str().unwrap().contains("16 bytes"), "{b}");

    let (st, b) = n
        .put("/meta/p", json!({"a": "1", "b": "2", "c": "3"}))
        .await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
    assert!(b["message"].as_str().unwrap().contains("2 fields"), "{b}");

    // The long id cannot even be read back (400); the others were not written.
    for hash in ["v", "p"] {
        let (st, _) = n.get(&format!("/meta/{hash}"), None).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{hash} was written");
    }
}

#[tokio::test]
async fn service_records_are_bounded_as_configured() {
    let n = node().await;
    let (st, b) = n.put("/services/toolongname", json!({})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
    let (st, b) = n
        .put("/services/svc", json!({"address": "10.0.0.1:8000"}))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
    assert!(b["message"].as_str().unwrap().contains("16 bytes"), "{b}");
}

#[tokio::test]
async fn point_metadata_is_bounded_as_configured() {
    let n = node().await;
    let point = |meta: serde_json::Value| json!({"metrics": [{"run_id": RUN, "metric_name": "loss", "value": 1.0, "metadata": meta}]});
    let (st, b) = n
        .post("/api/v1/metrics/batch", None, point(json!({"k": "v"})))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let big = point(json!({"k": "x".repeat(40)}));
    let (st, b) = n.post("/api/v1/metrics/batch", None, big).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
    let msg = b["error"].as_str().unwrap();
    assert!(
        msg.contains("metrics[0].metadata") && msg.contains("32 bytes"),
        "{b}"
    );
    let (_, b) = n.get(&format!("/api/v1/runs/{RUN}/metrics"), None).await;
    assert_eq!(b["metrics"].as_array().unwrap().len(), 1, "{b}");
}

#[test]
fn limits_above_the_storage_ceilings_are_refused() {
    for (key, value) in [
        ("limits.max_key_bytes", "513"),
        ("limits.max_value_bytes", "65537"),
        ("limits.max_properties", "4097"),
        ("limits.max_key_bytes", "0"),
        ("limits.max_large_reads", "0"),
        ("limits.max_ws_message_bytes", "0"),
        ("limits.max_subscribe_metrics", "0"),
        ("limits.max_object_bytes", "0"),
    ] {
        let mut cfg = Config::default();
        cfg.set(key, value).unwrap();
        let err = cfg.validate().expect_err(key).to_string();
        assert!(err.contains(key), "{err}");
    }
}
