//! Metadata API (API.md section 2, meta-core) over real HTTP against one in-process
//! node: objects, properties, `|`-sets, pagination, versions (`ETag` / `If-Match`),
//! linearizable reads, the `X-Applied-Index` and `X-Trace-ID` headers, and bad input,
//! which must be answered in meta-core's error shape with nothing written.
//!
//! Every test starts its own bootstrapped node on ephemeral ports in a temporary
//! directory and shuts it down at the end.

use std::time::{Duration, Instant};

use metacenter::{Config, Server};
use reqwest::header::{HeaderMap, CONTENT_TYPE, ETAG, IF_MATCH};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// How long a node may take to elect itself and become ready.
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// One bootstrapped node and an HTTP client for it.
struct TestNode {
    server: Option<Server>,
    base: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// An answer: status, headers and body bytes.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 body")
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    fn applied_index(&self) -> u64 {
        self.header("x-applied-index")
            .expect("X-Applied-Index on every response")
            .parse()
            .expect("X-Applied-Index is a number")
    }

    /// The `ETag` as a version number (`"12"` -> 12).
    fn etag(&self) -> u64 {
        let tag = self.header(ETAG.as_str()).expect("ETag header");
        assert!(
            tag.len() >= 3 && tag.starts_with('"') && tag.ends_with('"'),
            "ETag must be a quoted version, got {tag}"
        );
        tag.trim_matches('"').parse().expect("ETag is a number")
    }

    /// Asserts meta-core's error shape with `status` and a message containing `needle`.
    fn assert_error(&self, status: StatusCode, needle: &str) {
        let body = self.json();
        assert_eq!(self.status, status, "unexpected status, body {body}");
        assert_eq!(
            body["error"],
            json!(status.canonical_reason().unwrap()),
            "error is the status text: {body}"
        );
        let message = body["message"].as_str().expect("message is a string");
        assert!(
            message.contains(needle),
            "message {message:?} should contain {needle:?}"
        );
        assert_eq!(
            body.as_object().unwrap().len(),
            2,
            "only error and message: {body}"
        );
    }
}

impl TestNode {
    /// Starts a bootstrapped node with extra `settings` and waits until it is ready.
    async fn start(settings: &[(&str, &str)]) -> TestNode {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cfg = Config::default();
        let data_dir = dir.path().to_str().expect("UTF-8 temp path").to_string();
        for (k, v) in [
            ("node.data_dir", data_dir.as_str()),
            ("node.listen", "127.0.0.1:0"),
            ("node.peer_listen", "127.0.0.1:0"),
            ("cluster.secret", "test-cluster-secret"),
            ("node.bootstrap", "true"),
        ]
        .iter()
        .chain(settings)
        {
            cfg.set(k, v).expect("valid setting");
        }
        let server = Server::start(cfg).await.expect("node starts");
        let node = TestNode {
            base: format!("http://{}", server.api_addr()),
            server: Some(server),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            _dir: dir,
        };
        node.wait_ready().await;
        node
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            let last = match self.http.get(self.url("/ready")).send().await {
                Ok(r) if r.status() == StatusCode::OK => return,
                Ok(r) => format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
                Err(e) => e.to_string(),
            };
            assert!(
                Instant::now() < deadline,
                "node not ready within {READY_DEADLINE:?}: {last}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.expect("body read").to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(self.http.get(self.url(path))).await
    }

    async fn delete(&self, path: &str) -> Answer {
        self.send(self.http.delete(self.url(path))).await
    }

    /// Sends `method path` with a JSON body.
    async fn json(&self, method: Method, path: &str, body: Value) -> Answer {
        self.send(self.http.request(method, self.url(path)).json(&body))
            .await
    }

    /// Sends `method path` with a raw body.
    async fn raw(&self, method: Method, path: &str, body: impl Into<reqwest::Body>) -> Answer {
        self.send(self.http.request(method, self.url(path)).body(body))
            .await
    }

    /// The applied index once the node has applied everything it committed: then
    /// every acknowledged write is covered (`/ready` compares the two).
    async fn settled(&self) -> u64 {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            let r = self.get("/ready").await;
            let body = r.json();
            if r.status == StatusCode::OK {
                let applied = body["appliedIndex"].as_u64().expect("appliedIndex");
                assert!(applied >= body["commitIndex"].as_u64().expect("commitIndex"));
                return applied;
            }
            assert!(Instant::now() < deadline, "node did not settle: {body}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_put_get_patch_delete() {
    let n = TestNode::start(&[]).await;

    let put = n
        .json(
            Method::PUT,
            "/meta/obj1",
            json!({"title": "Dune", "year": 1965, "hd": true}),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    let body = put.json();
    assert_eq!(body["success"], json!(true));
    assert_eq!(body["hashId"], json!("obj1"));
    assert!(
        body.get("updated").is_none(),
        "PUT reports no count: {body}"
    );
    let v1 = put.etag();

    let got = n.get("/meta/obj1").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(
        got.json(),
        json!({"hashId": "obj1", "metadata": {"title": "Dune", "year": "1965", "hd": "true"}})
    );
    assert_eq!(got.etag(), v1, "GET carries the version of the last write");

    // PUT merges: existing fields stay.
    let put2 = n
        .json(Method::PUT, "/meta/obj1", json!({"lang": "en"}))
        .await;
    assert_eq!(put2.status, StatusCode::OK);
    assert!(put2.etag() > v1, "a write raises the version");

    // PATCH merges and reports how many fields changed.
    let patch = n
        .json(
            Method::PATCH,
            "/meta/obj1",
            json!({"title": "Dune", "lang": "fr", "pages": "412"}),
        )
        .await;
    assert_eq!(patch.status, StatusCode::OK, "{}", patch.text());
    let body = patch.json();
    assert_eq!(body["success"], json!(true));
    assert_eq!(body["hashId"], json!("obj1"));
    assert_eq!(
        body["updated"],
        json!(2),
        "title unchanged, lang changed, pages new"
    );
    let same = n
        .json(Method::PATCH, "/meta/obj1", json!({"lang": "fr"}))
        .await;
    assert_eq!(same.json()["updated"], json!(0));

    let got = n.get("/meta/obj1").await.json();
    assert_eq!(
        got["metadata"],
        json!({"title": "Dune", "year": "1965", "hd": "true", "lang": "fr", "pages": "412"})
    );

    // PATCH creates an object that does not exist yet.
    let created = n.json(Method::PATCH, "/meta/obj2", json!({"a": "1"})).await;
    assert_eq!(created.json()["updated"], json!(1));
    assert_eq!(
        n.get("/meta/obj2").await.json()["metadata"],
        json!({"a": "1"})
    );

    let del = n.delete("/meta/obj1").await;
    assert_eq!(del.status, StatusCode::OK);
    assert_eq!(
        del.json(),
        json!({"success": true, "hashId": "obj1", "deleted": 5})
    );
    n.get("/meta/obj1")
        .await
        .assert_error(StatusCode::NOT_FOUND, "metadata not found");
    let again = n.delete("/meta/obj1").await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json()["deleted"], json!(0));
    assert_eq!(
        n.get("/meta/obj2").await.status,
        StatusCode::OK,
        "other objects are untouched"
    );
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn properties_get_put_delete() {
    let n = TestNode::start(&[]).await;

    let put = n
        .json(Method::PUT, "/meta/h1/title", json!({"value": "Solaris"}))
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    assert_eq!(put.json()["success"], json!(true));
    let v1 = put.etag();

    let got = n.get("/meta/h1/title").await;
    assert_eq!(got.status, StatusCode::OK);
    let ct = got.header(CONTENT_TYPE.as_str()).unwrap_or_default();
    assert!(ct.starts_with("text/plain"), "content type {ct}");
    assert_eq!(got.text(), "Solaris");
    assert_eq!(got.etag(), v1);

    // A raw text body is the value itself; numbers in {"value":..} become text.
    let raw = n
        .raw(Method::PUT, "/meta/h1/summary", "a planet that is an ocean")
        .await;
    assert_eq!(raw.status, StatusCode::OK, "{}", raw.text());
    assert_eq!(
        n.get("/meta/h1/summary").await.text(),
        "a planet that is an ocean"
    );
    n.json(Method::PUT, "/meta/h1/year", json!({"value": 1961}))
        .await;
    assert_eq!(n.get("/meta/h1/year").await.text(), "1961");

    // A property name may contain slashes.
    let nested = n.raw(Method::PUT, "/meta/h1/files/poster.jpg", "p1").await;
    assert_eq!(nested.status, StatusCode::OK);
    assert_eq!(n.get("/meta/h1/files/poster.jpg").await.text(), "p1");
    assert_eq!(
        n.get("/meta/h1").await.json()["metadata"],
        json!({"title": "Solaris", "summary": "a planet that is an ocean", "year": "1961", "files/poster.jpg": "p1"})
    );

    let del = n.delete("/meta/h1/summary").await;
    assert_eq!(del.status, StatusCode::OK, "{}", del.text());
    assert_eq!(del.json()["success"], json!(true));
    n.get("/meta/h1/summary")
        .await
        .assert_error(StatusCode::NOT_FOUND, "property not found");
    n.delete("/meta/h1/summary")
        .await
        .assert_error(StatusCode::NOT_FOUND, "property not found");
    n.get("/meta/nothing-here/title")
        .await
        .assert_error(StatusCode::NOT_FOUND, "property not found");
    n.delete("/meta/nothing-here/title")
        .await
        .assert_error(StatusCode::NOT_FOUND, "property not found");

    // Deleting the last property removes the object.
    n.raw(Method::PUT, "/meta/h2/only", "x").await;
    assert_eq!(n.delete("/meta/h2/only").await.status, StatusCode::OK);
    n.get("/meta/h2")
        .await
        .assert_error(StatusCode::NOT_FOUND, "metadata not found");
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_add_reports_added_once() {
    let n = TestNode::start(&[]).await;
    let first = n.raw(Method::POST, "/meta/s1/_add/tags", "scifi").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert_eq!(
        first.json(),
        json!({"success": true, "hashId": "s1", "added": true})
    );
    let v1 = first.etag();

    let dup = n.raw(Method::POST, "/meta/s1/_add/tags", "scifi").await;
    assert_eq!(dup.json()["added"], json!(false));
    assert_eq!(dup.etag(), v1, "a no-op add keeps the version");

    let second = n
        .json(
            Method::POST,
            "/meta/s1/_add/tags",
            json!({"value": "classic"}),
        )
        .await;
    assert_eq!(second.json()["added"], json!(true));
    assert!(second.etag() > v1);
    assert_eq!(n.get("/meta/s1/tags").await.text(), "scifi|classic");

    // An existing plain value is treated as a one-member set.
    n.raw(Method::PUT, "/meta/s1/genre", "drama").await;
    let more = n.raw(Method::POST, "/meta/s1/_add/genre", "war").await;
    assert_eq!(more.json()["added"], json!(true));
    assert_eq!(n.get("/meta/s1/genre").await.text(), "drama|war");

    // POST on a property path that is not `_add/...` is not a write.
    let before = n.settled().await;
    let wrong = n.raw(Method::POST, "/meta/s1/tags", "x").await;
    wrong.assert_error(StatusCode::METHOD_NOT_ALLOWED, "_add");
    assert_eq!(wrong.applied_index(), before);
    assert_eq!(n.get("/meta/s1/tags").await.text(), "scifi|classic");
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_paginates_with_limit_after_next() {
    let n = TestNode::start(&[]).await;
    let empty = n.get("/meta").await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(empty.json(), json!({"hashIds": [], "count": 0}));

    let ids: Vec<String> = (0..7).map(|i| format!("id{i:02}")).collect();
    // Written out of order: the listing is in byte order.
    for id in ids.iter().rev() {
        let r = n
            .json(Method::PUT, &format!("/meta/{id}"), json!({"k": id}))
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }

    let all = n.get("/meta").await.json();
    assert_eq!(all["hashIds"], json!(ids));
    assert_eq!(all["count"], json!(7));
    assert!(all.get("next").is_none(), "no next on the last page: {all}");

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &after {
            Some(a) => format!("/meta?limit=3&after={a}"),
            None => "/meta?limit=3".to_string(),
        };
        let page = n.get(&path).await;
        assert_eq!(page.status, StatusCode::OK);
        let page = page.json();
        let got: Vec<String> = serde_json::from_value(page["hashIds"].clone()).unwrap();
        assert_eq!(page["count"], json!(got.len()));
        assert!(got.len() <= 3);
        seen.extend(got.iter().cloned());
        pages += 1;
        match page.get("next") {
            Some(next) => {
                assert_eq!(got.len(), 3, "a page with next is full");
                assert_eq!(next, &json!(got.last().unwrap()));
                after = Some(next.as_str().unwrap().to_string());
            }
            None => break,
        }
        assert!(pages <= 7, "pagination does not terminate");
    }
    assert_eq!(seen, ids);
    assert_eq!(pages, 3);

    // `after` need not be an existing id; a page that ends exactly at the end has no next.
    let tail = n.get("/meta?after=id03x&limit=3").await.json();
    assert_eq!(tail["hashIds"], json!(["id04", "id05", "id06"]));
    assert!(tail.get("next").is_none(), "{tail}");
    let exact = n.get("/meta?limit=7").await.json();
    assert!(exact.get("next").is_none(), "{exact}");
    let one = n.get("/meta?limit=1").await.json();
    assert_eq!(one["hashIds"], json!(["id00"]));
    assert_eq!(one["next"], json!("id00"));
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etag_and_if_match() {
    let n = TestNode::start(&[]).await;
    let with_if_match = |m: Method, path: &str, tag: &str| {
        n.http
            .request(m, n.url(path))
            .header(IF_MATCH, tag.to_string())
    };

    // `If-Match: "0"` creates only if absent.
    let create = n
        .send(with_if_match(Method::PUT, "/meta/c1", "\"0\"").json(&json!({"a": "1"})))
        .await;
    assert_eq!(create.status, StatusCode::OK, "{}", create.text());
    let v1 = create.etag();
    assert!(v1 > 0);
    let recreate = n
        .send(with_if_match(Method::PUT, "/meta/c1", "\"0\"").json(&json!({"a": "2"})))
        .await;
    recreate.assert_error(StatusCode::PRECONDITION_FAILED, "version mismatch");
    assert_eq!(n.get("/meta/c1/a").await.text(), "1", "412 wrote nothing");

    // A stale version is refused; the current one is accepted.
    let stale = n
        .send(
            with_if_match(Method::PATCH, "/meta/c1", &format!("\"{}\"", v1 + 100))
                .json(&json!({"a": "3"})),
        )
        .await;
    stale.assert_error(StatusCode::PRECONDITION_FAILED, &v1.to_string());
    let ok = n
        .send(
            with_if_match(Method::PATCH, "/meta/c1", &format!("\"{v1}\"")).json(&json!({"a": "4"})),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    let v2 = ok.etag();
    assert!(v2 > v1);
    assert_eq!(n.get("/meta/c1").await.etag(), v2);
    assert_eq!(
        n.get("/meta/c1/a").await.etag(),
        v2,
        "property reads carry the object version"
    );

    // The old version no longer matches, for every kind of write.
    let old = format!("\"{v1}\"");
    n.send(with_if_match(Method::PUT, "/meta/c1/a", &old).body("5"))
        .await
        .assert_error(StatusCode::PRECONDITION_FAILED, "version mismatch");
    n.send(with_if_match(Method::POST, "/meta/c1/_add/t", &old).body("x"))
        .await
        .assert_error(StatusCode::PRECONDITION_FAILED, "version mismatch");
    n.send(with_if_match(Method::DELETE, "/meta/c1/a", &old))
        .await
        .assert_error(StatusCode::PRECONDITION_FAILED, "version mismatch");
    n.send(with_if_match(Method::DELETE, "/meta/c1", &old))
        .await
        .assert_error(StatusCode::PRECONDITION_FAILED, "version mismatch");
    let still = n.get("/meta/c1").await;
    assert_eq!(still.json()["metadata"], json!({"a": "4"}));
    assert_eq!(still.etag(), v2);

    // Unquoted and weak forms are accepted; `*` is unconditional.
    let prop = n
        .send(with_if_match(Method::PUT, "/meta/c1/b", &v2.to_string()).body("b"))
        .await;
    assert_eq!(prop.status, StatusCode::OK, "{}", prop.text());
    let v3 = prop.etag();
    let weak = n
        .send(with_if_match(Method::POST, "/meta/c1/_add/t", &format!("W/\"{v3}\"")).body("x"))
        .await;
    assert_eq!(weak.json()["added"], json!(true));
    let any = n
        .send(with_if_match(Method::PUT, "/meta/c1", "*").json(&json!({"c": "c"})))
        .await;
    assert_eq!(any.status, StatusCode::OK);
    let v4 = any.etag();

    let del = n
        .send(with_if_match(
            Method::DELETE,
            "/meta/c1",
            &format!("\"{v4}\""),
        ))
        .await;
    assert_eq!(del.status, StatusCode::OK, "{}", del.text());
    assert_eq!(del.json()["deleted"], json!(4));
    n.get("/meta/c1")
        .await
        .assert_error(StatusCode::NOT_FOUND, "metadata not found");
    // After a delete the object is absent again: `If-Match: "0"` creates it anew.
    let again = n
        .send(with_if_match(Method::PUT, "/meta/c1", "\"0\"").json(&json!({"z": "z"})))
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    assert!(again.etag() > v4, "versions never go back");
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linearizable_reads_and_applied_index() {
    let n = TestNode::start(&[]).await;
    let before = n.settled().await;
    assert!(before > 0, "a ready node has applied its first entries");

    let w = n.json(Method::PUT, "/meta/lin", json!({"k": "v1"})).await;
    assert_eq!(w.status, StatusCode::OK);
    let written = n.settled().await;
    assert!(
        written > before,
        "the write moved the applied index: {before} -> {written}"
    );
    assert!(n.get("/meta/lin").await.applied_index() >= written);

    // A linearizable read waits until every acknowledged write is applied.
    for path in [
        "/meta/lin?consistency=linearizable",
        "/meta?consistency=linearizable",
        "/meta?limit=5&consistency=linearizable",
        "/meta/lin/k?consistency=linearizable",
    ] {
        let r = n.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
        assert!(r.applied_index() >= written, "{path}");
    }
    let q = n.get("/meta/lin?consistency=linearizable").await;
    assert_eq!(q.json()["metadata"], json!({"k": "v1"}));
    assert_eq!(
        n.get("/meta/lin/k?consistency=linearizable").await.text(),
        "v1"
    );
    let list = n.get("/meta?limit=5&consistency=linearizable").await;
    assert_eq!(list.json()["hashIds"], json!(["lin"]));

    let h = n
        .send(
            n.http
                .get(n.url("/meta/lin"))
                .header("X-Consistency", "linearizable"),
        )
        .await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.json()["metadata"]["k"], json!("v1"));
    assert!(h.applied_index() >= written);

    // A linearizable read of something absent is still a 404.
    n.get("/meta/absent?consistency=linearizable")
        .await
        .assert_error(StatusCode::NOT_FOUND, "metadata not found");

    // Each write moves the index on, and a linearizable read right after it
    // (no settling) already covers it and sees the new value.
    let mut last = written;
    for i in 2..5 {
        let value = format!("v{i}");
        let w = n
            .json(Method::PATCH, "/meta/lin", json!({ "k": value }))
            .await;
        assert_eq!(w.status, StatusCode::OK);
        let r = n.get("/meta/lin/k?consistency=linearizable").await;
        assert_eq!(r.text(), value);
        let idx = r.applied_index();
        assert!(idx > last, "index {idx} after {last}");
        last = idx;
    }
    assert_eq!(n.settled().await, last, "no other writes happened");
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_id_is_echoed_or_generated() {
    let n = TestNode::start(&[]).await;
    let traced = n
        .send(
            n.http
                .get(n.url("/meta"))
                .header("TraceId", "trace-abc-123"),
        )
        .await;
    assert_eq!(traced.header("x-trace-id"), Some("trace-abc-123"));

    let x = n
        .send(n.http.get(n.url("/meta/none")).header("X-Trace-ID", "xt-9"))
        .await;
    assert_eq!(x.status, StatusCode::NOT_FOUND);
    assert_eq!(x.header("x-trace-id"), Some("xt-9"), "also on errors");

    let write = n
        .send(
            n.http
                .put(n.url("/meta/t1"))
                .header("TraceId", "w-1")
                .json(&json!({"a": "b"})),
        )
        .await;
    assert_eq!(write.header("x-trace-id"), Some("w-1"));

    let a = n.get("/meta").await;
    let b = n.get("/meta").await;
    let (ta, tb) = (a.header("x-trace-id"), b.header("x-trace-id"));
    assert!(ta.is_some_and(|t| !t.is_empty()), "generated when absent");
    assert_ne!(ta, tb, "each request gets its own id");
    n.stop().await;
}

/// Requests that must be refused, each with its status and a part of its message.
#[derive(Default)]
struct BadCases(Vec<BadCase>);

struct BadCase {
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: StatusCode,
    needle: &'static str,
}

impl BadCases {
    /// A request with a JSON content type and `body` as given.
    fn json(
        &mut self,
        m: &Method,
        path: &str,
        body: impl AsRef<[u8]>,
        st: u16,
        needle: &'static str,
    ) {
        self.push(m, path, Some("application/json"), body, st, needle);
    }

    /// A request with a raw body and no content type.
    fn raw(
        &mut self,
        m: &Method,
        path: &str,
        body: impl AsRef<[u8]>,
        st: u16,
        needle: &'static str,
    ) {
        self.push(m, path, None, body, st, needle);
    }

    fn push(
        &mut self,
        m: &Method,
        path: &str,
        content_type: Option<&'static str>,
        body: impl AsRef<[u8]>,
        status: u16,
        needle: &'static str,
    ) {
        self.0.push(BadCase {
            method: m.clone(),
            path: path.to_string(),
            content_type,
            body: body.as_ref().to_vec(),
            status: StatusCode::from_u16(status).unwrap(),
            needle,
        });
    }
}

fn to_vec(v: Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_writes_nothing() {
    let n = TestNode::start(&[]).await;
    let seed = n.json(Method::PUT, "/meta/keep", json!({"a": "1"})).await;
    assert_eq!(seed.status, StatusCode::OK);
    let version = seed.etag();

    let long = "k".repeat(513);
    let max_key = "k".repeat(512);
    let big = "v".repeat(64 * 1024 + 1);
    let (put, patch, post) = (Method::PUT, Method::PATCH, Method::POST);
    let (get, delete) = (Method::GET, Method::DELETE);
    let mut c = BadCases::default();
    // Object bodies, on a new object and on an existing one.
    for (m, t) in [(&put, "/meta/new1"), (&patch, "/meta/keep")] {
        c.json(m, t, "{\"a\": ", 400, "invalid JSON body");
        c.json(m, t, "not json", 400, "invalid JSON body");
        c.json(m, t, "", 400, "invalid JSON body");
        c.json(m, t, to_vec(json!(["a", "b"])), 400, "invalid JSON body");
        c.json(m, t, to_vec(json!("a")), 400, "invalid JSON body");
        c.json(m, t, to_vec(json!(42)), 400, "invalid JSON body");
        c.json(m, t, to_vec(json!(null)), 400, "invalid JSON body");
        c.json(m, t, to_vec(json!({"a": {"b": "c"}})), 400, "`a`");
        c.json(m, t, to_vec(json!({"x": "1", "a": [1]})), 400, "`a`");
        c.json(m, t, to_vec(json!({"a": null})), 400, "`a`");
        c.json(m, t, to_vec(json!({"": "empty"})), 400, "empty");
        c.json(m, t, to_vec(json!({ long.clone(): "x" })), 400, "512");
        c.json(m, t, to_vec(json!({"a\u{0}b": "x"})), 400, "NUL");
        c.json(m, t, to_vec(json!({"a": big.clone()})), 413, "65536");
        c.json(
            m,
            t,
            to_vec(json!({"ok": "1", "z": big.clone()})),
            413,
            "65536",
        );
    }
    // Keys in the path: over 512 bytes, NUL (percent-encoded), empty hash id.
    let obj = to_vec(json!({"a": "b"}));
    c.json(&put, &format!("/meta/{long}"), &obj, 400, "512");
    c.json(&put, "/meta/ke%00y", &obj, 400, "NUL");
    c.json(&patch, "/meta/%00", &obj, 400, "NUL");
    c.raw(&put, "/meta//p", "x", 400, "empty");
    c.raw(&put, &format!("/meta/keep/{long}"), "x", 400, "512");
    c.raw(&put, "/meta/keep/a%00", "x", 400, "NUL");
    c.raw(&put, &format!("/meta/{long}/p"), "x", 400, "512");
    c.raw(&delete, &format!("/meta/{long}"), "", 400, "512");
    c.raw(&delete, "/meta/ke%00ep", "", 400, "NUL");
    c.raw(&delete, "/meta/keep/a%00", "", 400, "NUL");
    c.raw(&delete, "/meta//a", "", 400, "empty");
    c.raw(&get, "/meta/ke%00ep", "", 400, "NUL");
    c.raw(&get, &format!("/meta/keep/{long}"), "", 400, "512");
    // Property values.
    c.raw(&put, "/meta/keep/a", &big, 413, "65536");
    c.json(
        &put,
        "/meta/keep/a",
        to_vec(json!({"value": big.clone()})),
        413,
        "65536",
    );
    c.json(
        &put,
        "/meta/keep/a",
        to_vec(json!({"value": {"x": 1}})),
        400,
        "value",
    );
    c.json(
        &put,
        "/meta/keep/a",
        to_vec(json!({"value": null})),
        400,
        "value",
    );
    c.raw(&put, "/meta/keep/a", [0xff, 0xfe, 0x41], 400, "UTF-8");
    // Set members and set names.
    c.raw(&post, "/meta/keep/_add/tags", "", 400, "empty");
    c.raw(&post, "/meta/keep/_add/tags", "   ", 400, "empty");
    c.raw(&post, "/meta/keep/_add/tags", "a|b", 400, "|");
    c.raw(&post, "/meta/keep/_add/tags", &long, 400, "512");
    c.raw(&post, "/meta/keep/_add/tags", &big, 413, "65536");
    c.raw(&post, &format!("/meta/keep/_add/{long}"), "x", 400, "512");
    c.raw(&post, "/meta/keep/_add/ta%00gs", "x", 400, "NUL");
    c.raw(&post, "/meta/keep/_add/", "x", 400, "empty");
    // Query parameters.
    c.raw(&get, "/meta?limit=many", "", 400, "invalid query");
    c.raw(&get, "/meta?limit=-1", "", 400, "invalid query");

    let before = n.settled().await;
    for case in c.0 {
        let mut req = n
            .http
            .request(case.method.clone(), n.url(&case.path))
            .body(case.body);
        if let Some(ct) = case.content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        let r = n.send(req).await;
        let shown: String = case.path.chars().take(40).collect();
        let what = format!("{} {shown}", case.method);
        assert!(
            r.status.is_client_error(),
            "{what}: expected 4xx, got {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(
            r.status,
            case.status,
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.assert_error(case.status, case.needle);
        assert_eq!(
            r.applied_index(),
            before,
            "{what}: a refused request must not reach the log"
        );
    }

    // A bad If-Match is refused before anything is proposed.
    let r = n
        .send(
            n.http
                .put(n.url("/meta/keep"))
                .header(IF_MATCH, "\"v-one\"")
                .json(&json!({"a": "9"})),
        )
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "If-Match");

    // Nothing was written: same objects, same version, same applied index.
    assert_eq!(n.settled().await, before);
    let keep = n.get("/meta/keep").await;
    assert_eq!(keep.json()["metadata"], json!({"a": "1"}));
    assert_eq!(keep.etag(), version);
    let all = n.get("/meta").await.json();
    assert_eq!(all["hashIds"], json!(["keep"]), "{all}");

    // The limits are inclusive: a 512-byte key and a 64 KiB value are accepted.
    let max_value = "v".repeat(64 * 1024);
    let ok = n
        .json(
            Method::PUT,
            &format!("/meta/{max_key}"),
            json!({ max_key.clone(): max_value }),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    let prop = n.get(&format!("/meta/{max_key}/{max_key}")).await;
    assert_eq!(prop.body.len(), 64 * 1024);
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_limit_is_413() {
    let n = TestNode::start(&[("limits.max_body_bytes", "4096")]).await;
    let before = n.settled().await;
    let big = "x".repeat(5000);
    let cases = [
        (Method::PUT, "/meta/big", to_vec(json!({"a": big}))),
        (Method::PATCH, "/meta/big", to_vec(json!({"a": big}))),
        (Method::PUT, "/meta/big/a", big.clone().into_bytes()),
        (Method::POST, "/meta/big/_add/a", big.clone().into_bytes()),
    ];
    for (method, path, body) in cases {
        let r = n
            .send(
                n.http
                    .request(method.clone(), n.url(path))
                    .header(CONTENT_TYPE, "application/json")
                    .body(body),
            )
            .await;
        r.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "4096");
        assert_eq!(r.applied_index(), before, "{method} {path}");
    }
    n.get("/meta/big")
        .await
        .assert_error(StatusCode::NOT_FOUND, "metadata not found");
    assert_eq!(n.settled().await, before);

    // Just under the limit is fine.
    let fits = "y".repeat(4000);
    let ok = n.raw(Method::PUT, "/meta/big/a", fits.clone()).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert_eq!(n.get("/meta/big/a").await.text(), fits);
    n.stop().await;
}

/// Node bug: the `X-Applied-Index` of a write's own response can be lower than the
/// index of that write (src/http/mod.rs `stamp` reads openraft's metrics, which are
/// published after the client is answered). Sequential writes are one entry each, so
/// the header must rise with every write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_write_response_applied_index_covers_the_write() {
    let n = TestNode::start(&[]).await;
    let mut last = n.settled().await;
    for i in 0..200 {
        let w = n
            .json(Method::PUT, "/meta/idx", json!({ "n": i.to_string() }))
            .await;
        assert_eq!(w.status, StatusCode::OK);
        let idx = w.applied_index();
        assert!(
            idx > last,
            "write {i}: X-Applied-Index {idx} does not cover the write (previous write: {last})"
        );
        last = idx;
    }
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_trailing_key_is_a_core_error_and_writes_nothing() {
    let n = TestNode::start(&[]).await;
    n.raw(Method::PUT, "/meta/h/a", "1").await;
    let before = n.settled().await;
    for (method, path) in [
        (Method::PUT, "/meta/h/"),
        (Method::GET, "/meta/h/"),
        (Method::DELETE, "/meta/h/"),
        (Method::POST, "/meta/h/_add/"),
        (Method::PUT, "/meta/"),
        (Method::PATCH, "/meta/"),
    ] {
        let r = n.raw(method.clone(), path, "{\"a\":\"x\"}").await;
        assert!(r.status.is_client_error(), "{method} {path}: {}", r.status);
        let body: Value = serde_json::from_slice(&r.body).unwrap_or_else(|_| {
            panic!(
                "{method} {path}: {} with a body that is not meta-core's error shape: {:?}",
                r.status,
                String::from_utf8_lossy(&r.body)
            )
        });
        assert_eq!(body["error"], json!(r.status.canonical_reason().unwrap()));
        assert!(body["message"].is_string(), "{body}");
        assert_eq!(r.applied_index(), before, "{method} {path}");
    }
    assert_eq!(n.get("/meta/h").await.json()["metadata"], json!({"a": "1"}));
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_get_waits_for_a_change_past_index() {
    let n = TestNode::start(&[]).await;
    n.json(Method::PUT, "/meta/w", json!({"v": "1"})).await;
    let idx = n.settled().await;

    // Nothing changes: the read is held for `wait`, then answers the current value.
    let t = Instant::now();
    let held = n.get(&format!("/meta/w?index={idx}&wait=1s")).await;
    let elapsed = t.elapsed();
    assert_eq!(held.status, StatusCode::OK);
    assert_eq!(held.json()["metadata"], json!({"v": "1"}));
    assert!(
        elapsed >= Duration::from_millis(900),
        "held only {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(15), "held {elapsed:?}");

    // An index older than the object's last change answers at once.
    let t = Instant::now();
    let stale = n.get("/meta/w?index=0&wait=60s").await;
    assert_eq!(stale.json()["metadata"], json!({"v": "1"}));
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());

    // A change wakes the waiter well before its wait runs out; so does a creation.
    for path in ["/meta/w", "/meta/w-new"] {
        let idx = n.settled().await;
        let url = n.url(&format!("{path}?index={idx}&wait=60s"));
        let http = n.http.clone();
        let waiter = tokio::spawn(async move {
            let t = Instant::now();
            let r = http.get(url).send().await.expect("request sent");
            let status = r.status();
            let body: Value = r.json().await.expect("JSON body");
            (status, body, t.elapsed())
        });
        let w = n.json(Method::PATCH, path, json!({"v": "2"})).await;
        assert_eq!(w.status, StatusCode::OK);
        let (status, body, elapsed) = waiter.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body["metadata"]["v"], json!("2"), "{path}");
        // X-Applied-Index is not checked here: see
        // bug_watch_response_applied_index_lags_the_change.
        assert!(
            elapsed < Duration::from_secs(30),
            "{path}: woke after {elapsed:?}"
        );
    }

    // An absent object is still a 404 once the wait runs out.
    let idx = n.settled().await;
    n.get(&format!("/meta/none?index={idx}&wait=200ms"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "metadata not found");

    n.get("/meta/w?index=soon")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "index");
    n.get("/meta/w?index=1&wait=forever")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "wait");
    n.stop().await;
}

/// Node bug, second symptom of the one above: a blocking GET woken by a change answers
/// with the changed data but an `X-Applied-Index` below the change, although that
/// header is meant to be the client's next `index`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_watch_response_applied_index_lags_the_change() {
    let n = TestNode::start(&[]).await;
    n.raw(Method::PUT, "/meta/wb/v", "0").await;
    for i in 1..=50 {
        let idx = n.settled().await;
        let url = n.url(&format!("/meta/wb?index={idx}&wait=60s"));
        let http = n.http.clone();
        let waiter = tokio::spawn(async move {
            let r = http.get(url).send().await.expect("request sent");
            let applied: u64 = r.headers()["x-applied-index"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            let body: Value = r.json().await.expect("JSON body");
            (applied, body)
        });
        n.raw(Method::PUT, "/meta/wb/v", i.to_string()).await;
        let (applied, body) = waiter.await.unwrap();
        assert_eq!(body["metadata"]["v"], json!(i.to_string()));
        assert!(
            applied > idx,
            "watch {i}: returned the change past {idx} with X-Applied-Index {applied}"
        );
    }
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_cannot_grow_past_max_object_bytes() {
    let n = TestNode::start(&[("limits.max_object_bytes", "1024")]).await;
    let v = |len: usize| "v".repeat(len);
    let put = n.json(Method::PUT, "/meta/o", json!({"a": v(500), "b": v(400)}));
    assert_eq!(put.await.status, StatusCode::OK);
    let before = n.get("/meta/o").await.json();

    // Each way of growing it past 1024 bytes is refused, and nothing changes.
    let grow = [
        n.json(Method::PATCH, "/meta/o", json!({"c": v(200)})).await,
        n.json(Method::PUT, "/meta/o/c", json!({"value": v(200)}))
            .await,
        n.json(Method::PUT, "/meta/o", json!({"b": v(600)})).await,
        n.raw(Method::POST, "/meta/o/_add/b", v(200)).await,
    ];
    for r in grow {
        r.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "1024-byte limit");
    }
    assert_eq!(n.get("/meta/o").await.json(), before);

    // Replacing within the limit, and shrinking, still work.
    let put = n.json(Method::PUT, "/meta/o", json!({"b": v(520)})).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    assert_eq!(n.delete("/meta/o/a").await.status, StatusCode::OK);
    let add = n.raw(Method::POST, "/meta/o/_add/s", "m").await;
    assert_eq!(add.status, StatusCode::OK, "{}", add.text());

    // The start-up check finds objects written under a higher limit.
    let found = metacenter::oversized::scan(n.server.as_ref().unwrap().node().store(), 500);
    let found = found.expect("scan");
    assert_eq!((found.count, found.largest), (1, Some(("o".into(), 523))));
    n.stop().await;
}

/// A client that sent `GET path` and reads nothing of the answer.
fn stalled_reader(base: &str, path: &str) -> std::net::TcpStream {
    use std::io::Write;
    let addr = base.trim_start_matches("http://");
    let mut c = std::net::TcpStream::connect(addr).expect("connect");
    write!(c, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").expect("request");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_answers_held_at_once_are_bounded() {
    let n = TestNode::start(&[
        ("limits.max_large_reads", "1"),
        ("limits.max_object_bytes", "67108864"),
    ])
    .await;
    // A 32 MiB object: far more than the kernel buffers of a client that reads nothing.
    let value = "v".repeat(64 << 10);
    for part in 0..35 {
        let fields: serde_json::Map<String, Value> = (0..15)
            .map(|i| (format!("p{part}-{i}"), json!(value)))
            .collect();
        let put = n
            .json(Method::PATCH, "/meta/big", Value::Object(fields))
            .await;
        assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    }
    assert_eq!(
        n.json(Method::PUT, "/meta/small", json!({"a": 1}))
            .await
            .status,
        StatusCode::OK
    );

    // One stalled reader holds the only permit: the next large read waits, then 503.
    let stalled = stalled_reader(&n.base, "/meta/big");
    let deadline = Instant::now() + READY_DEADLINE;
    let refused = loop {
        let r = n.get("/meta/small").await;
        if r.status == StatusCode::SERVICE_UNAVAILABLE {
            break r;
        }
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert!(
            Instant::now() < deadline,
            "large reads were never held back"
        );
    };
    refused.assert_error(StatusCode::SERVICE_UNAVAILABLE, "limits.max_large_reads");
    assert_eq!(
        n.get("/health").await.status,
        StatusCode::OK,
        "small answers go on"
    );

    // The reader goes away: the permit comes back.
    drop(stalled);
    let deadline = Instant::now() + READY_DEADLINE;
    while n.get("/meta/small").await.status != StatusCode::OK {
        assert!(Instant::now() < deadline, "the permit never came back");
    }
    n.stop().await;
}
