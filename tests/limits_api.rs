//! The size limits of `[limits]` are configurable and each is enforced at the edge
//! with a clear error in the area's envelope, writing nothing: keys, values,
//! properties per object, service records and point metadata. The refusals are rows
//! of tables run by `common::bad_input`.

mod common;

use common::bad_input::{self, json, row, Case, Fragments, NO_HEADERS, POST, PUT};
use common::{shape, Node, Reply};
use metacenter::Config;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

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

/// `method path` with a JSON `body`, refused with `status`, naming `fragments`.
fn refused(m: Method, path: &str, body: Value, status: u16, fragments: impl Fragments) -> Case {
    row(m, path, NO_HEADERS, json(body), status, fragments)
}

/// The refusal in its area's envelope: the Metric Service's `{"error"}` for `/api/`,
/// meta-core's `{"error", "message"}` elsewhere; the message names the fragments.
fn in_area(case: &Case, r: &Reply) -> Result<(), String> {
    if case.path.starts_with("/api/") {
        shape::plain(r, case.status(r), &case.needles())
    } else {
        shape::core(r, case.status(r), case.needle())
    }
}

#[tokio::test]
async fn keys_values_and_properties_are_bounded_as_configured() {
    let n = node().await;
    let (st, b) = n.put("/meta/12345678", json!({"a": "x".repeat(16)})).await;
    assert!(st.is_success(), "at the limits: {st} {b}");

    #[rustfmt::skip]
    let table = [
        refused(PUT, "/meta/123456789", json!({"a": "1"}), 400, "8 bytes"),
        refused(PUT, "/meta/v", json!({"a": "x".repeat(17)}), 413, "16 bytes"),
        refused(PUT, "/meta/p", json!({"a": "1", "b": "2", "c": "3"}), 413, "2 fields"),
    ];
    bad_input::run_shaped(&n, &table, in_area).await;

    // The long id cannot even be read back (400); the others were not written.
    for hash in ["v", "p"] {
        let (st, _) = n.get(&format!("/meta/{hash}"), None).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{hash} was written");
    }
}

#[tokio::test]
async fn service_records_are_bounded_as_configured() {
    let n = node().await;
    let address = json!({"address": "10.0.0.1:8000"});
    #[rustfmt::skip]
    let table = [
        refused(PUT, "/services/toolongname", json!({}), 400, "8 bytes"),
        refused(PUT, "/services/svc", address, 400, "16 bytes"),
    ];
    bad_input::run_shaped(&n, &table, in_area).await;
}

#[tokio::test]
async fn point_metadata_is_bounded_as_configured() {
    let n = node().await;
    let point = |meta: Value| json!({"metrics": [{"run_id": RUN, "metric_name": "loss", "value": 1.0, "metadata": meta}]});
    let (st, b) = n
        .post("/api/v1/metrics/batch", None, point(json!({"k": "v"})))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let big = point(json!({"k": "x".repeat(40)}));
    let fragments = ["metrics[0].metadata", "32 bytes"];
    let table = [refused(POST, "/api/v1/metrics/batch", big, 400, fragments)];
    bad_input::run_shaped(&n, &table, in_area).await;
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
