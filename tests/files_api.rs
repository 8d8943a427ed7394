//! Files API (API.md section 2, meta-core) over real HTTP: `/data/{hash}/path`,
//! `HEAD /data/{hash}`, `GET /file/{cid}` (full body, content type, HEAD, one range in
//! each form, 416, ignored multi-ranges, `ETag` / `If-None-Match`, `If-Modified-Since`,
//! `If-Match` / `If-Unmodified-Since` (412), `If-Range`, the two 404 messages),
//! confinement of every path to the files root (`..`, absolute paths, symlinks leading
//! out: the secret's bytes never appear; links inside, a root that is itself a link,
//! FIFOs), confinement while a directory on the path is swapped for a link that leads
//! out (`renameat2(RENAME_EXCHANGE)` in a loop), `POST /file/cid` (CIDv1 raw sha2-256
//! base32, checked against an independent computation and a known vector), and a CID
//! written through one node of a three-node cluster being served by another.
//!
//! Each test starts its own in-process node(s) on ephemeral ports, with data and files
//! in temporary directories, and shuts them down at the end.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use metacenter::{Config, Server};
use reqwest::header::{
    HeaderMap, ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_MATCH,
    IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, LAST_MODIFIED, RANGE,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Deadline for readiness, elections and replication.
const SETTLE: Duration = Duration::from_secs(60);

/// Bytes that live outside the files root and must never be served.
const SECRET: &[u8] = b"TOP-SECRET-DO-NOT-SERVE-7f3a";

/// Raft timings for the three-node tests (quicker than production defaults).
const CLUSTER_SETTINGS: &[(&str, &str)] = &[
    ("raft.heartbeat_ms", "100"),
    ("raft.election_min_ms", "500"),
    ("raft.election_max_ms", "1000"),
];

// ------------------------------------------------------------------ harness

/// One HTTP answer.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} body is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn header(&self, name: impl reqwest::header::AsHeaderName) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header").to_string())
    }

    /// Asserts meta-core's error envelope with `status` and a message containing `needle`.
    fn assert_error(&self, status: StatusCode, needle: &str) {
        assert_eq!(
            self.status,
            status,
            "body {:?}",
            String::from_utf8_lossy(&self.body)
        );
        let body = self.json();
        assert_eq!(body["error"], json!(status.canonical_reason().unwrap()));
        let message = body["message"].as_str().expect("message is a string");
        assert!(
            message.contains(needle),
            "message {message:?} should contain {needle:?}"
        );
    }

    fn contains(&self, needle: &[u8]) -> bool {
        !needle.is_empty() && self.body.windows(needle.len()).any(|w| w == needle)
    }
}

/// One in-process node and a client for it.
struct Node {
    server: Option<Server>,
    base: String,
    http: reqwest::Client,
    _data: tempfile::TempDir,
}

impl Node {
    /// Starts a node serving `files_root`; `bootstrap` makes it a one-node cluster.
    async fn start(id: u64, bootstrap: bool, files_root: &Path, extra: &[(&str, &str)]) -> Node {
        let data = tempfile::tempdir().expect("temp data dir");
        let mut cfg = Config::default();
        let id = id.to_string();
        let data_dir = data.path().to_str().expect("UTF-8 path").to_string();
        let root = files_root.to_str().expect("UTF-8 path").to_string();
        let base: [(&str, &str); 7] = [
            ("node.id", &id),
            ("node.data_dir", &data_dir),
            ("node.listen", "127.0.0.1:0"),
            ("node.peer_listen", "127.0.0.1:0"),
            ("cluster.secret", "test-cluster-secret"),
            ("node.bootstrap", if bootstrap { "true" } else { "false" }),
            ("files.root", &root),
        ];
        for (k, v) in base.iter().chain(extra) {
            cfg.set(k, v).unwrap_or_else(|e| panic!("setting {k}: {e}"));
        }
        let server = Server::start(cfg).await.expect("node starts");
        Node {
            base: format!("http://{}", server.api_addr()),
            server: Some(server),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            _data: data,
        }
    }

    /// A bootstrapped single node, ready.
    async fn single(files_root: &Path) -> Node {
        let n = Node::start(1, true, files_root, &[]).await;
        n.wait_ready().await;
        n
    }

    fn server(&self) -> &Server {
        self.server.as_ref().expect("running")
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.expect("request sent");
        Reply {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: resp.bytes().await.expect("body").to_vec(),
        }
    }

    fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(self.req(Method::GET, path)).await
    }

    async fn get_with(&self, path: &str, headers: &[(reqwest::header::HeaderName, &str)]) -> Reply {
        let mut r = self.req(Method::GET, path);
        for (k, v) in headers {
            r = r.header(k, *v);
        }
        self.send(r).await
    }

    async fn head(&self, path: &str) -> StatusCode {
        self.send(self.req(Method::HEAD, path)).await.status
    }

    async fn json(&self, method: Method, path: &str, body: Value) -> Reply {
        self.send(self.req(method, path).json(&body)).await
    }

    /// Merges `fields` into metadata object `hash` and expects success.
    async fn put_meta(&self, hash: &str, fields: Value) {
        let r = self
            .json(Method::PUT, &format!("/meta/{hash}"), fields)
            .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "PUT /meta/{hash}: {:?}",
            String::from_utf8_lossy(&r.body)
        );
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + SETTLE;
        loop {
            let last = match self.req(Method::GET, "/ready").send().await {
                Ok(r) if r.status() == StatusCode::OK => return,
                Ok(r) => format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
                Err(e) => e.to_string(),
            };
            assert!(Instant::now() < deadline, "{} not ready: {last}", self.base);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

/// Three nodes initialised as one cluster through `POST /cluster/init` on node 1.
async fn cluster(files_root: &Path) -> Vec<Node> {
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(Node::start(id, false, files_root, CLUSTER_SETTINGS).await);
    }
    let members: Vec<Value> = nodes
        .iter()
        .zip(1..)
        .map(|(n, id)| {
            json!({
                "id": id,
                "peer": n.server().peer_addr().to_string(),
                "api": n.server().api_addr().to_string(),
            })
        })
        .collect();
    let r = nodes[0]
        .json(Method::POST, "/cluster/init", json!({ "members": members }))
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "init: {:?}",
        String::from_utf8_lossy(&r.body)
    );
    for n in &nodes {
        n.wait_ready().await;
    }
    nodes
}

/// A temporary directory holding `root/` (the files root) and, beside it, `secret.txt`.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().expect("temp files dir");
        std::fs::create_dir_all(dir.path().join("root")).expect("mkdir root");
        std::fs::write(dir.path().join("secret.txt"), SECRET).expect("write secret");
        Files { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn secret(&self) -> PathBuf {
        self.dir.path().join("secret.txt")
    }

    /// Writes `bytes` at `rel` under the root (creating directories).
    fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let p = self.root().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, bytes).expect("write file");
        p
    }
}

/// RFC 4648 base32, lower case, without padding (multibase `b`).
fn base32_lower(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// CIDv1 text of `data`: multibase `b` + base32(version 1, raw 0x55, sha2-256 0x12, 32, digest).
fn expected_cid(data: &[u8]) -> String {
    let mut bin = vec![0x01, 0x55, 0x12, 0x20];
    bin.extend_from_slice(&Sha256::digest(data));
    format!("b{}", base32_lower(&bin))
}

/// A few bytes that start like a PNG.
fn png_bytes() -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    v.extend((0u16..600).map(|i| (i * 7 % 251) as u8));
    v
}

// -------------------------------------------------------------------- tests

#[test]
fn independent_cid_matches_the_known_vector() {
    assert_eq!(
        expected_cid(b"hello world\n"),
        "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_path_and_head() {
    let files = Files::new();
    files.write("movies/a.txt", b"content");
    let node = Node::single(&files.root()).await;

    node.put_meta("present", json!({ "filePath": "movies/a.txt" }))
        .await;
    node.put_meta("absent", json!({ "filePath": "movies/missing.txt" }))
        .await;
    node.put_meta("nopath", json!({ "title": "no file" })).await;

    let r = node.get("/data/present/path").await;
    assert_eq!(r.status, StatusCode::OK);
    let body = r.json();
    assert_eq!(body["hashId"], "present");
    assert_eq!(body["exists"], true);
    let shown = PathBuf::from(body["path"].as_str().expect("path is a string"));
    assert_eq!(
        shown,
        files.root().join("movies/a.txt"),
        "FILES_ROOT/filePath"
    );

    let r = node.get("/data/absent/path").await;
    assert_eq!(r.status, StatusCode::OK);
    let body = r.json();
    assert_eq!(body["exists"], false);
    assert_eq!(
        PathBuf::from(body["path"].as_str().unwrap()),
        files.root().join("movies/missing.txt")
    );

    node.get("/data/nopath/path")
        .await
        .assert_error(StatusCode::NOT_FOUND, "filePath");
    node.get("/data/unknown/path")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not found");

    assert_eq!(node.head("/data/present").await, StatusCode::OK);
    assert_eq!(node.head("/data/absent").await, StatusCode::NOT_FOUND);
    assert_eq!(node.head("/data/nopath").await, StatusCode::NOT_FOUND);
    assert_eq!(node.head("/data/unknown").await, StatusCode::NOT_FOUND);

    // The file appears: exists flips without touching the metadata.
    files.write("movies/missing.txt", b"now here");
    assert_eq!(node.get("/data/absent/path").await.json()["exists"], true);
    assert_eq!(node.head("/data/absent").await, StatusCode::OK);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_by_cid_body_type_range_and_conditionals() {
    let files = Files::new();
    let png = png_bytes();
    let text = b"plain text file\n".to_vec();
    files.write("img/poster.png", &png);
    files.write("docs/notes.txt", &text);
    let (png_cid, txt_cid) = (expected_cid(&png), expected_cid(&text));
    // FILES_PATH, meta-core's variable, sets the files root.
    let data = tempfile::tempdir().unwrap();
    let mut cfg = Config::default();
    for (k, v) in [
        ("node.data_dir", data.path().to_str().unwrap()),
        ("node.listen", "127.0.0.1:0"),
        ("node.peer_listen", "127.0.0.1:0"),
        ("cluster.secret", "test-cluster-secret"),
        ("node.bootstrap", "true"),
    ] {
        cfg.set(k, v).unwrap();
    }
    let root = files.root().to_str().unwrap().to_string();
    cfg.apply_env(|k| (k == "FILES_PATH").then(|| root.clone()))
        .unwrap();
    let server = Server::start(cfg).await.expect("node starts");
    let node = Node {
        base: format!("http://{}", server.api_addr()),
        server: Some(server),
        http: reqwest::Client::new(),
        _data: data,
    };
    node.wait_ready().await;

    node.put_meta(
        "movie1",
        json!({
            "poster": png_cid, "posterPath": "img/poster.png",
            "backdrop": txt_cid, "backdropPath": "docs/notes.txt",
        }),
    )
    .await;

    // Full bodies with the type of the extension.
    let r = node.get(&format!("/file/{png_cid}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, png);
    assert_eq!(r.header(CONTENT_TYPE).as_deref(), Some("image/png"));
    assert_eq!(r.header(CONTENT_LENGTH), Some(png.len().to_string()));
    let r = node.get(&format!("/file/{txt_cid}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, text);
    let ct = r.header(CONTENT_TYPE).expect("content type");
    assert!(ct.starts_with("text/plain"), "content type {ct}");

    // One range.
    let path = format!("/file/{png_cid}");
    let r = node.get_with(&path, &[(RANGE, "bytes=0-3")]).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.body, &png[..4]);
    assert_eq!(
        r.header(CONTENT_RANGE),
        Some(format!("bytes 0-3/{}", png.len()))
    );
    let r = node.get_with(&path, &[(RANGE, "bytes=10-19")]).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.body, &png[10..20]);

    // Conditional requests.
    let full = node.get(&path).await;
    let etag = full.header(ETAG).expect("ETag on files");
    let r = node
        .get_with(&path, &[(IF_NONE_MATCH, etag.as_str())])
        .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert!(r.body.is_empty(), "304 has no body");
    let r = node
        .get_with(&path, &[(IF_NONE_MATCH, "\"some-other-tag\"")])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, png);

    let modified = full.header(LAST_MODIFIED).expect("Last-Modified on files");
    let r = node
        .get_with(&path, &[(IF_MODIFIED_SINCE, modified.as_str())])
        .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    let r = node
        .get_with(
            &path,
            &[(IF_MODIFIED_SINCE, "Thu, 01 Jan 1970 00:00:00 GMT")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, png);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_by_cid_not_found_cases() {
    let files = Files::new();
    std::fs::create_dir_all(files.root().join("adir")).unwrap();
    let node = Node::single(&files.root()).await;

    node.get(&format!("/file/{}", expected_cid(b"nobody has this")))
        .await
        .assert_error(StatusCode::NOT_FOUND, "file not found for CID");

    // Indexed, but the file is not on disk (or is a directory).
    node.put_meta(
        "m",
        json!({ "poster": "cid-missing", "posterPath": "gone.png",
                "backdrop": "cid-dir", "backdropPath": "adir" }),
    )
    .await;
    node.get("/file/cid-missing")
        .await
        .assert_error(StatusCode::NOT_FOUND, "file does not exist on disk");
    node.get("/file/cid-dir")
        .await
        .assert_error(StatusCode::NOT_FOUND, "file does not exist on disk");

    // A poster without posterPath: nothing to serve.
    node.put_meta("nopath", json!({ "poster": "cid-nopath" }))
        .await;
    node.get("/file/cid-nopath")
        .await
        .assert_error(StatusCode::NOT_FOUND, "file not found for CID");

    // Once the poster property goes, the CID no longer resolves.
    files.write("gone.png", b"back");
    assert_eq!(node.get("/file/cid-missing").await.status, StatusCode::OK);
    let r = node.send(node.req(Method::DELETE, "/meta/m/poster")).await;
    assert_eq!(r.status, StatusCode::OK);
    node.get("/file/cid-missing")
        .await
        .assert_error(StatusCode::NOT_FOUND, "file not found for CID");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_never_leave_the_files_root() {
    let files = Files::new();
    files.write("inside.txt", b"inside bytes");
    std::fs::create_dir_all(files.root().join("sub")).unwrap();
    std::os::unix::fs::symlink(files.secret(), files.root().join("link-out.txt")).unwrap();
    std::os::unix::fs::symlink(
        files.root().join("inside.txt"),
        files.root().join("link-in.txt"),
    )
    .unwrap();
    let node = Node::single(&files.root()).await;

    let secret_abs = files.secret().to_str().unwrap().to_string();
    let escapes = [
        "../secret.txt".to_string(),
        "sub/../../secret.txt".to_string(),
        secret_abs.clone(),
        "link-out.txt".to_string(),
    ];
    for (i, bad) in escapes.iter().enumerate() {
        let (hash, cid) = (format!("evil{i}"), format!("cid-evil-{i}"));
        node.put_meta(
            &hash,
            json!({ "poster": cid, "posterPath": bad, "filePath": bad }),
        )
        .await;

        let r = node.get(&format!("/file/{cid}")).await;
        assert!(
            matches!(r.status, StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND),
            "{bad}: GET /file -> {}",
            r.status
        );
        assert!(!r.contains(SECRET), "{bad}: the secret was served");
        r.json(); // an error envelope, not a file

        let r = node.get(&format!("/data/{hash}/path")).await;
        assert!(!r.contains(SECRET), "{bad}: the secret leaked");
        assert!(
            r.status == StatusCode::BAD_REQUEST
                || r.status == StatusCode::NOT_FOUND
                || (r.status == StatusCode::OK && r.json()["exists"] == false),
            "{bad}: /data/path must not report an outside file: {} {:?}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(
            node.head(&format!("/data/{hash}")).await,
            StatusCode::NOT_FOUND,
            "{bad}: HEAD /data"
        );

        let r = node
            .json(Method::POST, "/file/cid", json!({ "path": bad }))
            .await;
        r.assert_error(StatusCode::BAD_REQUEST, "outside");
        assert!(!r.contains(expected_cid(SECRET).as_bytes()));
    }

    // A symlink that stays inside the root is fine.
    node.put_meta(
        "ok",
        json!({ "poster": "cid-link-in", "posterPath": "link-in.txt" }),
    )
    .await;
    let r = node.get("/file/cid-link-in").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, b"inside bytes");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_file_cid_computes_cidv1() {
    let files = Files::new();
    files.write("hello.txt", b"hello world\n");
    let blob: Vec<u8> = (0u32..200_000)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let blob_path = files.write("deep/dir/blob.bin", &blob);
    files.write("empty", b"");
    let node = Node::single(&files.root()).await;

    let r = node
        .json(Method::POST, "/file/cid", json!({ "path": "hello.txt" }))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        json!({
            "cid": "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4",
            "path": "hello.txt",
            "size": 12,
        })
    );

    // A larger file than one read buffer, by relative and by absolute path.
    for path in ["deep/dir/blob.bin", blob_path.to_str().unwrap()] {
        let r = node
            .json(Method::POST, "/file/cid", json!({ "path": path }))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        let body = r.json();
        assert_eq!(body["cid"], json!(expected_cid(&blob)), "{path}");
        assert_eq!(body["size"], json!(blob.len()), "{path}");
        assert_eq!(body["path"], json!(path));
    }

    let r = node
        .json(Method::POST, "/file/cid", json!({ "path": "empty" }))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["cid"], json!(expected_cid(b"")));
    assert_eq!(r.json()["size"], 0);

    // The CID it reports is the one /file/{cid} serves.
    let cid = expected_cid(&blob);
    node.put_meta(
        "blob",
        json!({ "backdrop": cid, "backdropPath": "deep/dir/blob.bin" }),
    )
    .await;
    let r = node.get(&format!("/file/{cid}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, blob);

    // Bad requests.
    node.json(
        Method::POST,
        "/file/cid",
        json!({ "path": "../secret.txt" }),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "outside");
    node.json(
        Method::POST,
        "/file/cid",
        json!({ "path": "/etc/hostname" }),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "outside");
    node.json(Method::POST, "/file/cid", json!({ "path": "nope.bin" }))
        .await
        .assert_error(StatusCode::NOT_FOUND, "does not exist");
    node.send(node.req(Method::POST, "/file/cid").body("{not json"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid JSON body");
    node.json(Method::POST, "/file/cid", json!({ "file": "hello.txt" }))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid JSON body");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cid_written_on_node1_is_served_by_node3() {
    let files = Files::new();
    let bytes = b"replicated poster bytes".to_vec();
    files.write("posters/r.jpg", &bytes);
    let cid = expected_cid(&bytes);
    let nodes = cluster(&files.root()).await;

    nodes[0]
        .put_meta(
            "replicated",
            json!({ "poster": cid, "posterPath": "posters/r.jpg" }),
        )
        .await;

    let deadline = Instant::now() + SETTLE;
    let r = loop {
        let r = nodes[2].get(&format!("/file/{cid}")).await;
        if r.status == StatusCode::OK {
            break r;
        }
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "only 'not yet' is acceptable while replicating"
        );
        assert!(Instant::now() < deadline, "node 3 never served the CID");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(r.body, bytes);
    assert_eq!(r.header(CONTENT_TYPE).as_deref(), Some("image/jpeg"));

    // Node 3 computes the same CID for the file.
    let r = nodes[2]
        .json(
            Method::POST,
            "/file/cid",
            json!({ "path": "posters/r.jpg" }),
        )
        .await;
    assert_eq!(r.json()["cid"], json!(cid));
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_data_path_absolute_file_path_inside_root() {
    let files = Files::new();
    let abs = files.write("media/abs.txt", b"abs");
    let node = Node::single(&files.root()).await;
    node.put_meta("abs", json!({ "filePath": abs.to_str().unwrap() }))
        .await;
    let body = node.get("/data/abs/path").await.json();
    assert_eq!(body["exists"], true, "{body}");
    let shown = PathBuf::from(body["path"].as_str().unwrap());
    assert!(
        shown.is_file(),
        "path {shown:?} is reported to exist but does not; the file is {abs:?}"
    );
    node.stop().await;
}

/// The attack of issue 37: a client with write access inside the files root swaps a
/// directory on a served path with a symlink to a directory outside the root
/// (`renameat2(RENAME_EXCHANGE)`, so one of the two is always in place) while the path
/// is requested. No answer may carry the outside file's bytes or its CID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_a_directory_for_a_link_out_never_serves_outside_bytes() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    const INSIDE: &[u8] = b"inside";
    const OUTSIDE: &[u8] = b"OUTSIDE";
    const GETS: usize = 2_000;
    const POSTS: usize = 300;
    const IN_FLIGHT: usize = 8;
    const SWAP_FOR: Duration = Duration::from_secs(3);

    let files = Files::new();
    files.write("race/f.txt", INSIDE);
    let outside = files.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("f.txt"), OUTSIDE).unwrap();
    std::os::unix::fs::symlink(&outside, files.root().join("swap")).unwrap();
    let (inside_cid, outside_cid) = (expected_cid(INSIDE), expected_cid(OUTSIDE));
    let node = Node::single(&files.root()).await;
    node.put_meta(
        "race",
        json!({ "poster": inside_cid, "posterPath": "race/f.txt" }),
    )
    .await;

    // The attacker: exchanges `race` (a directory) and `swap` (a link out) until told
    // to stop or for SWAP_FOR at most.
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, root) = (stop.clone(), files.root());
        std::thread::spawn(move || {
            let deadline = Instant::now() + SWAP_FOR;
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                rustix::fs::renameat_with(
                    rustix::fs::CWD,
                    root.join("race"),
                    rustix::fs::CWD,
                    root.join("swap"),
                    rustix::fs::RenameFlags::EXCHANGE,
                )
                .expect("renameat2(RENAME_EXCHANGE)");
                swaps += 1;
            }
            swaps
        })
    };

    let get_path = format!("/file/{inside_cid}");
    let (mut sent_gets, mut sent_posts) = (0, 0);
    let (mut leaks, mut served, mut refused) = (Vec::new(), 0usize, 0usize);
    while (sent_gets < GETS || sent_posts < POSTS) && !swapper.is_finished() {
        let mut batch = Vec::new();
        for _ in 0..IN_FLIGHT {
            if sent_gets < GETS {
                sent_gets += 1;
                batch.push(node.send(node.req(Method::GET, &get_path)));
            }
            if sent_posts < POSTS && sent_posts * GETS <= sent_gets * POSTS {
                sent_posts += 1;
                batch.push(
                    node.send(
                        node.req(Method::POST, "/file/cid")
                            .json(&json!({ "path": "race/f.txt" })),
                    ),
                );
            }
        }
        for r in futures::future::join_all(batch).await {
            if r.contains(OUTSIDE) || r.contains(outside_cid.as_bytes()) {
                leaks.push(format!(
                    "{} {:?}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                ));
            } else if r.status == StatusCode::OK {
                served += 1;
            } else {
                refused += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().expect("the swapper thread");
    println!(
        "{sent_gets} GET + {sent_posts} POST during {swaps} swaps: {served} served inside, \
         {refused} refused, {} leaked",
        leaks.len()
    );
    assert!(swaps > 0, "the swapper never ran");
    assert!(
        leaks.is_empty(),
        "{} of {} answers carried the outside file, e.g. {:?}",
        leaks.len(),
        sent_gets + sent_posts,
        &leaks[..leaks.len().min(3)]
    );
    assert!(served > 0, "nothing was served while racing");
    node.stop().await;
}

/// The details of serving a file from its open descriptor: HEAD, every form of one
/// range, the ranges that are refused (416) or ignored (the whole file), the
/// preconditions that fail with 412, `If-Range`, and a file larger than one chunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_by_cid_ranges_preconditions_and_head() {
    let files = Files::new();
    let big: Vec<u8> = (0u32..300_000)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    files.write("big.bin", &big);
    files.write("empty.txt", b"");
    let node = Node::single(&files.root()).await;
    let (cid, empty) = (expected_cid(&big), expected_cid(b""));
    node.put_meta(
        "m",
        json!({ "poster": cid, "posterPath": "big.bin",
                "backdrop": empty, "backdropPath": "empty.txt" }),
    )
    .await;
    let path = format!("/file/{cid}");
    let size = big.len();

    let full = node.get(&path).await;
    assert_eq!(full.status, StatusCode::OK);
    assert_eq!(full.body, big, "streamed over several chunks");
    assert_eq!(full.header(ACCEPT_RANGES).as_deref(), Some("bytes"));
    assert_eq!(
        full.header(CONTENT_TYPE).as_deref(),
        Some("application/octet-stream")
    );
    let etag = full.header(ETAG).expect("ETag");
    let modified = full.header(LAST_MODIFIED).expect("Last-Modified");

    // HEAD: the headers of GET, no body.
    let r = node.send(node.req(Method::HEAD, &path)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.is_empty());
    assert_eq!(r.header(CONTENT_LENGTH), Some(size.to_string()));
    assert_eq!(r.header(ETAG), Some(etag.clone()));
    let r = node
        .send(node.req(Method::HEAD, &path).header(RANGE, "bytes=0-9"))
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.header(CONTENT_LENGTH).as_deref(), Some("10"));

    // One range in each form; past the end is cut at the end.
    let cases: [(&str, usize, usize); 5] = [
        ("bytes=65530-65545", 65530, 65545),
        ("bytes=299990-", 299_990, size - 1),
        ("bytes=-5", size - 5, size - 1),
        ("bytes=-999999", 0, size - 1),
        ("bytes=299998-400000", 299_998, size - 1),
    ];
    for (range, a, b) in cases {
        let r = node.get_with(&path, &[(RANGE, range)]).await;
        assert_eq!(r.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(r.body, &big[a..=b], "{range}");
        assert_eq!(
            r.header(CONTENT_RANGE),
            Some(format!("bytes {a}-{b}/{size}")),
            "{range}"
        );
        assert_eq!(r.header(CONTENT_LENGTH), Some((b - a + 1).to_string()));
    }

    // Beyond the end: 416 with the size.
    for range in [format!("bytes={size}-"), "bytes=-0".to_string()] {
        let r = node.get_with(&path, &[(RANGE, &range)]).await;
        assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(r.header(CONTENT_RANGE), Some(format!("bytes */{size}")));
        assert!(r.body.is_empty());
    }
    let r = node
        .get_with(&format!("/file/{empty}"), &[(RANGE, "bytes=0-")])
        .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.header(CONTENT_RANGE).as_deref(), Some("bytes */0"));
    let r = node.get(&format!("/file/{empty}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header(CONTENT_LENGTH).as_deref(), Some("0"));

    // Several ranges, bad syntax, another unit: ignored, the whole file.
    for range in ["bytes=0-1,5-6", "bytes=9-3", "bytes=x-", "items=0-1"] {
        let r = node.get_with(&path, &[(RANGE, range)]).await;
        assert_eq!(r.status, StatusCode::OK, "{range}");
        assert_eq!(r.body, big, "{range}");
    }

    // If-Range: the range while the validator holds, the whole file once it does not.
    let r = node
        .get_with(&path, &[(RANGE, "bytes=0-3"), (IF_RANGE, &etag)])
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    let r = node
        .get_with(&path, &[(RANGE, "bytes=0-3"), (IF_RANGE, &modified)])
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    let r = node
        .get_with(&path, &[(RANGE, "bytes=0-3"), (IF_RANGE, "\"stale\"")])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, big);

    // 412: If-Match that does not match, If-Unmodified-Since before the change.
    let old = "Thu, 01 Jan 1970 00:00:00 GMT";
    let r = node.get_with(&path, &[(IF_MATCH, "\"stale\"")]).await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    assert!(r.body.is_empty());
    let r = node.get_with(&path, &[(IF_UNMODIFIED_SINCE, old)]).await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    for (h, v) in [(IF_MATCH, etag.as_str()), (IF_MATCH, "*")] {
        let r = node.get_with(&path, &[(h, v)]).await;
        assert_eq!(r.status, StatusCode::OK, "{v}");
    }
    let r = node
        .get_with(&path, &[(IF_UNMODIFIED_SINCE, modified.as_str())])
        .await;
    assert_eq!(r.status, StatusCode::OK);

    // 304 keeps the validators; a list with the tag (or a weak form of it) matches.
    let weak = format!("\"other\", W/{etag}");
    for v in [etag.as_str(), weak.as_str(), "*"] {
        let r = node.get_with(&path, &[(IF_NONE_MATCH, v)]).await;
        assert_eq!(r.status, StatusCode::NOT_MODIFIED, "{v}");
        assert_eq!(r.header(ETAG), Some(etag.clone()));
        assert_eq!(r.header(LAST_MODIFIED), Some(modified.clone()));
    }
    // If-None-Match decides alone: a later If-Modified-Since does not make it 304.
    let r = node
        .get_with(
            &path,
            &[(IF_NONE_MATCH, "\"other\""), (IF_MODIFIED_SINCE, &modified)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    node.stop().await;
}

/// Paths that stay inside: a relative link to a directory, an absolute `filePath`
/// under the root as configured (a link) and under its real path; a FIFO is no file
/// (and is not waited on), nor is a directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_inside_configured_root_link_and_special_files() {
    let files = Files::new();
    files.write("real/dir/f.png", b"png bytes");
    std::os::unix::fs::symlink("real/dir", files.root().join("alias")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        files.root().join("fifo.txt"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .expect("mkfifo");
    let configured = files.dir.path().join("root-link");
    std::os::unix::fs::symlink(files.root(), &configured).unwrap();
    let node = Node::single(&configured).await;

    let cid = expected_cid(b"png bytes");
    node.put_meta(
        "a",
        json!({ "poster": cid, "posterPath": "alias/f.png", "filePath": "alias/f.png" }),
    )
    .await;
    let r = node.get(&format!("/file/{cid}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, b"png bytes");
    assert_eq!(r.header(CONTENT_TYPE).as_deref(), Some("image/png"));
    assert_eq!(node.get("/data/a/path").await.json()["exists"], true);
    assert_eq!(node.head("/data/a").await, StatusCode::OK);

    let real = files.root().canonicalize().unwrap().join("real/dir/f.png");
    for abs in [
        configured.join("real/dir/f.png"),
        real,
        configured.join("alias/f.png"),
    ] {
        let abs = abs.to_str().unwrap().to_string();
        let r = node
            .json(Method::POST, "/file/cid", json!({ "path": abs }))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{abs}: {:?}", r.json());
        assert_eq!(r.json()["cid"], json!(cid), "{abs}");
    }

    node.put_meta(
        "s",
        json!({ "poster": "cid-fifo", "posterPath": "fifo.txt", "filePath": "fifo.txt",
                "backdrop": "cid-dir", "backdropPath": "real/dir" }),
    )
    .await;
    for c in ["cid-fifo", "cid-dir"] {
        node.get(&format!("/file/{c}"))
            .await
            .assert_error(StatusCode::NOT_FOUND, "file does not exist on disk");
    }
    node.json(Method::POST, "/file/cid", json!({ "path": "fifo.txt" }))
        .await
        .assert_error(StatusCode::NOT_FOUND, "does not exist");
    assert_eq!(node.get("/data/s/path").await.json()["exists"], false);
    assert_eq!(node.head("/data/s").await, StatusCode::NOT_FOUND);
    node.stop().await;
}
