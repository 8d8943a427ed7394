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
//! in temporary directories (`tests/common`), and shuts them down at the end; the
//! refused `POST /file/cid` requests are a table run by `common::bad_input`.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::bad_input::{self, json, raw, row, NO_HEADERS, POST};
use common::{cluster, shape, stop_all, until, Node, Reply, QUICK_RAFT};
use reqwest::header::{
    HeaderName, ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_MATCH,
    IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, LAST_MODIFIED, RANGE,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Bytes that live outside the files root and must never be served.
const SECRET: &[u8] = b"TOP-SECRET-DO-NOT-SERVE-7f3a";

// ------------------------------------------------------------------ helpers

/// A bootstrapped single node serving `files_root`, ready.
async fn single(files_root: &Path) -> Node {
    Node::single(&[("files.root", files_root.to_str().expect("UTF-8 path"))]).await
}

/// The files calls of these tests.
trait FilesApi {
    async fn get_with(&self, path: &str, headers: &[(HeaderName, &str)]) -> Reply;
    async fn head(&self, path: &str) -> StatusCode;
    async fn put_meta(&self, hash: &str, fields: Value);
}

impl FilesApi for Node {
    /// `GET path` with `headers`.
    async fn get_with(&self, path: &str, headers: &[(HeaderName, &str)]) -> Reply {
        let mut r = self.request(Method::GET, path);
        for (k, v) in headers {
            r = r.header(k, *v);
        }
        self.send(r).await
    }

    async fn head(&self, path: &str) -> StatusCode {
        self.send(self.request(Method::HEAD, path)).await.status
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
            r.lossy()
        );
    }
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
    let mut node = single(&files.root()).await;

    node.put_meta("present", json!({ "filePath": "movies/a.txt" }))
        .await;
    node.put_meta("absent", json!({ "filePath": "movies/missing.txt" }))
        .await;
    node.put_meta("nopath", json!({ "title": "no file" })).await;

    let r = node.fetch("/data/present/path").await;
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

    let r = node.fetch("/data/absent/path").await;
    assert_eq!(r.status, StatusCode::OK);
    let body = r.json();
    assert_eq!(body["exists"], false);
    assert_eq!(
        PathBuf::from(body["path"].as_str().unwrap()),
        files.root().join("movies/missing.txt")
    );

    node.fetch("/data/nopath/path")
        .await
        .assert_error(StatusCode::NOT_FOUND, "filePath");
    node.fetch("/data/unknown/path")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not found");

    assert_eq!(node.head("/data/present").await, StatusCode::OK);
    assert_eq!(node.head("/data/absent").await, StatusCode::NOT_FOUND);
    assert_eq!(node.head("/data/nopath").await, StatusCode::NOT_FOUND);
    assert_eq!(node.head("/data/unknown").await, StatusCode::NOT_FOUND);

    // The file appears: exists flips without touching the metadata.
    files.write("movies/missing.txt", b"now here");
    assert_eq!(node.fetch("/data/absent/path").await.json()["exists"], true);
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
    let root = files.root().to_str().unwrap().to_string();
    let mut node = Node::launch(&[], &[("FILES_PATH", &root)]).await;
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
    let r = node.fetch(&format!("/file/{png_cid}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, png);
    assert_eq!(r.header(CONTENT_TYPE), Some("image/png"));
    assert_eq!(
        r.header(CONTENT_LENGTH),
        Some(png.len().to_string().as_str())
    );
    let r = node.fetch(&format!("/file/{txt_cid}")).await;
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
        Some(format!("bytes 0-3/{}", png.len()).as_str())
    );
    let r = node.get_with(&path, &[(RANGE, "bytes=10-19")]).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.body, &png[10..20]);

    // Conditional requests.
    let full = node.fetch(&path).await;
    let etag = full.header(ETAG).expect("ETag on files");
    let r = node.get_with(&path, &[(IF_NONE_MATCH, etag)]).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert!(r.body.is_empty(), "304 has no body");
    let r = node
        .get_with(&path, &[(IF_NONE_MATCH, "\"some-other-tag\"")])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, png);

    let modified = full.header(LAST_MODIFIED).expect("Last-Modified on files");
    let r = node.get_with(&path, &[(IF_MODIFIED_SINCE, modified)]).await;
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
    let mut node = single(&files.root()).await;

    node.fetch(&format!("/file/{}", expected_cid(b"nobody has this")))
        .await
        .assert_error(StatusCode::NOT_FOUND, "file not found for CID");

    // Indexed, but the file is not on disk (or is a directory).
    node.put_meta(
        "m",
        json!({ "poster": "cid-missing", "posterPath": "gone.png",
                "backdrop": "cid-dir", "backdropPath": "adir" }),
    )
    .await;
    node.fetch("/file/cid-missing")
        .await
        .assert_error(StatusCode::NOT_FOUND, "file does not exist on disk");
    node.fetch("/file/cid-dir")
        .await
        .assert_error(StatusCode::NOT_FOUND, "file does not exist on disk");

    // A poster without posterPath: nothing to serve.
    node.put_meta("nopath", json!({ "poster": "cid-nopath" }))
        .await;
    node.fetch("/file/cid-nopath")
        .await
        .assert_error(StatusCode::NOT_FOUND, "file not found for CID");

    // Once the poster property goes, the CID no longer resolves.
    files.write("gone.png", b"back");
    assert_eq!(node.fetch("/file/cid-missing").await.status, StatusCode::OK);
    let r = node
        .send(node.request(Method::DELETE, "/meta/m/poster"))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    node.fetch("/file/cid-missing")
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
    let mut node = single(&files.root()).await;

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

        let r = node.fetch(&format!("/file/{cid}")).await;
        assert!(
            matches!(r.status, StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND),
            "{bad}: GET /file -> {}",
            r.status
        );
        assert!(!r.contains(SECRET), "{bad}: the secret was served");
        r.json(); // an error envelope, not a file

        let r = node.fetch(&format!("/data/{hash}/path")).await;
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
    }
    // Asked for their CID, the same paths are refused without the secret's CID.
    let cid_of = |bad: &String| {
        let body = json(json!({ "path": bad }));
        row(POST, "/file/cid", NO_HEADERS, body, 400, "outside")
    };
    let table: Vec<_> = escapes.iter().map(cid_of).collect();
    let secret_cid = expected_cid(SECRET);
    bad_input::run_shaped(&node, &table, |case, r| {
        shape::core(r, case.status(r), case.needle())?;
        match r.contains(secret_cid.as_bytes()) {
            false => Ok(()),
            true => Err("the secret's CID in the answer".into()),
        }
    })
    .await;

    // A symlink that stays inside the root is fine.
    node.put_meta(
        "ok",
        json!({ "poster": "cid-link-in", "posterPath": "link-in.txt" }),
    )
    .await;
    let r = node.fetch("/file/cid-link-in").await;
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
    let mut node = single(&files.root()).await;

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
    let r = node.fetch(&format!("/file/{cid}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, blob);

    // Bad requests: paths out of the root, a file that is not there, no `path`.
    let post = |body, status: u16, needle| row(POST, "/file/cid", NO_HEADERS, body, status, needle);
    #[rustfmt::skip]
    let table = [
        post(json(json!({ "path": "../secret.txt" })), 400, "outside"),
        post(json(json!({ "path": "/etc/hostname" })), 400, "outside"),
        post(json(json!({ "path": "nope.bin" })), 404, "does not exist"),
        post(raw("{not json"), 400, "invalid JSON body"),
        post(json(json!({ "file": "hello.txt" })), 400, "invalid JSON body"),
    ];
    bad_input::run_shaped(&node, &table, |case, r| {
        shape::core(r, case.status(r), case.needle())
    })
    .await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cid_written_on_node1_is_served_by_node3() {
    let files = Files::new();
    let bytes = b"replicated poster bytes".to_vec();
    files.write("posters/r.jpg", &bytes);
    let cid = expected_cid(&bytes);
    let root = files.root();
    let root = [("files.root", root.to_str().unwrap())];
    let mut nodes = cluster(&[QUICK_RAFT, &root].concat()).await;

    nodes[0]
        .put_meta(
            "replicated",
            json!({ "poster": cid, "posterPath": "posters/r.jpg" }),
        )
        .await;

    let r = until("node 3 serves the CID", || async {
        let r = nodes[2].fetch(&format!("/file/{cid}")).await;
        if r.status == StatusCode::OK {
            return Some(r);
        }
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "only 'not yet' is acceptable while replicating"
        );
        None
    })
    .await;
    assert_eq!(r.body, bytes);
    assert_eq!(r.header(CONTENT_TYPE), Some("image/jpeg"));

    // Node 3 computes the same CID for the file.
    let r = nodes[2]
        .json(
            Method::POST,
            "/file/cid",
            json!({ "path": "posters/r.jpg" }),
        )
        .await;
    assert_eq!(r.json()["cid"], json!(cid));
    stop_all(&mut nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_data_path_absolute_file_path_inside_root() {
    let files = Files::new();
    let abs = files.write("media/abs.txt", b"abs");
    let mut node = single(&files.root()).await;
    node.put_meta("abs", json!({ "filePath": abs.to_str().unwrap() }))
        .await;
    let body = node.fetch("/data/abs/path").await.json();
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
    let mut node = single(&files.root()).await;
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
                batch.push(node.send(node.request(Method::GET, &get_path)));
            }
            if sent_posts < POSTS && sent_posts * GETS <= sent_gets * POSTS {
                sent_posts += 1;
                batch.push(
                    node.send(
                        node.request(Method::POST, "/file/cid")
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
    let mut node = single(&files.root()).await;
    let (cid, empty) = (expected_cid(&big), expected_cid(b""));
    node.put_meta(
        "m",
        json!({ "poster": cid, "posterPath": "big.bin",
                "backdrop": empty, "backdropPath": "empty.txt" }),
    )
    .await;
    let path = format!("/file/{cid}");
    let size = big.len();

    let full = node.fetch(&path).await;
    assert_eq!(full.status, StatusCode::OK);
    assert_eq!(full.body, big, "streamed over several chunks");
    assert_eq!(full.header(ACCEPT_RANGES), Some("bytes"));
    assert_eq!(full.header(CONTENT_TYPE), Some("application/octet-stream"));
    let etag = full.header(ETAG).expect("ETag");
    let modified = full.header(LAST_MODIFIED).expect("Last-Modified");

    // HEAD: the headers of GET, no body.
    let r = node.send(node.request(Method::HEAD, &path)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.is_empty());
    assert_eq!(r.header(CONTENT_LENGTH), Some(size.to_string().as_str()));
    assert_eq!(r.header(ETAG), Some(etag));
    let r = node
        .send(node.request(Method::HEAD, &path).header(RANGE, "bytes=0-9"))
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.header(CONTENT_LENGTH), Some("10"));

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
            Some(format!("bytes {a}-{b}/{size}").as_str()),
            "{range}"
        );
        assert_eq!(
            r.header(CONTENT_LENGTH),
            Some((b - a + 1).to_string().as_str())
        );
    }

    // Beyond the end: 416 with the size.
    for range in [format!("bytes={size}-"), "bytes=-0".to_string()] {
        let r = node.get_with(&path, &[(RANGE, &range)]).await;
        assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(
            r.header(CONTENT_RANGE),
            Some(format!("bytes */{size}").as_str())
        );
        assert!(r.body.is_empty());
    }
    let r = node
        .get_with(&format!("/file/{empty}"), &[(RANGE, "bytes=0-")])
        .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.header(CONTENT_RANGE), Some("bytes */0"));
    let r = node.fetch(&format!("/file/{empty}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header(CONTENT_LENGTH), Some("0"));

    // Several ranges, bad syntax, another unit: ignored, the whole file.
    for range in ["bytes=0-1,5-6", "bytes=9-3", "bytes=x-", "items=0-1"] {
        let r = node.get_with(&path, &[(RANGE, range)]).await;
        assert_eq!(r.status, StatusCode::OK, "{range}");
        assert_eq!(r.body, big, "{range}");
    }

    // If-Range: the range while the validator holds, the whole file once it does not.
    let r = node
        .get_with(&path, &[(RANGE, "bytes=0-3"), (IF_RANGE, etag)])
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    let r = node
        .get_with(&path, &[(RANGE, "bytes=0-3"), (IF_RANGE, modified)])
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
    for (h, v) in [(IF_MATCH, etag), (IF_MATCH, "*")] {
        let r = node.get_with(&path, &[(h, v)]).await;
        assert_eq!(r.status, StatusCode::OK, "{v}");
    }
    let r = node
        .get_with(&path, &[(IF_UNMODIFIED_SINCE, modified)])
        .await;
    assert_eq!(r.status, StatusCode::OK);

    // 304 keeps the validators; a list with the tag (or a weak form of it) matches.
    let weak = format!("\"other\", W/{etag}");
    for v in [etag, weak.as_str(), "*"] {
        let r = node.get_with(&path, &[(IF_NONE_MATCH, v)]).await;
        assert_eq!(r.status, StatusCode::NOT_MODIFIED, "{v}");
        assert_eq!(r.header(ETAG), Some(etag));
        assert_eq!(r.header(LAST_MODIFIED), Some(modified));
    }
    // If-None-Match decides alone: a later If-Modified-Since does not make it 304.
    let r = node
        .get_with(
            &path,
            &[(IF_NONE_MATCH, "\"other\""), (IF_MODIFIED_SINCE, modified)],
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
    let mut node = single(&configured).await;

    let cid = expected_cid(b"png bytes");
    node.put_meta(
        "a",
        json!({ "poster": cid, "posterPath": "alias/f.png", "filePath": "alias/f.png" }),
    )
    .await;
    let r = node.fetch(&format!("/file/{cid}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, b"png bytes");
    assert_eq!(r.header(CONTENT_TYPE), Some("image/png"));
    assert_eq!(node.fetch("/data/a/path").await.json()["exists"], true);
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
        node.fetch(&format!("/file/{c}"))
            .await
            .assert_error(StatusCode::NOT_FOUND, "file does not exist on disk");
    }
    node.json(Method::POST, "/file/cid", json!({ "path": "fifo.txt" }))
        .await
        .assert_error(StatusCode::NOT_FOUND, "does not exist");
    assert_eq!(node.fetch("/data/s/path").await.json()["exists"], false);
    assert_eq!(node.head("/data/s").await, StatusCode::NOT_FOUND);
    node.stop().await;
}
