//! Data paths and files (meta-core, API.md section 2): `/data/{hash}/path`,
//! `HEAD /data/{hash}`, `GET /file/{cid}` (the file whose `poster` or `backdrop` is
//! the CID, found through the CID index, with Range, ETag and conditional requests),
//! and `POST /file/cid` (CIDv1, raw codec, sha2-256, base32).
//!
//! Every path comes from metadata or a client, so each is confined to `files.root`:
//! absolute paths outside it, `..` components and symlinks that lead out are refused.
//! A file is opened beneath the root in one step ([`open_beneath`], `openat2` with
//! `RESOLVE_BENEATH`) and then served, hashed or checked through that open descriptor
//! only, never by its path again: swapping a directory on the path for a link that
//! leads out cannot redirect the answer after the check.

use std::io::Read;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::body::{self, Body};
use super::common::json_error::JsonError;
use super::common::key::check_key;
use super::openapi::metadata as doc;
use super::openapi::JsonErrorBody as Err;
use crate::state::AppState;

mod open;
mod serve;

pub use open::{open_beneath, Access, Confine, Opened};

type St = State<Arc<AppState>>;

/// multicodec code of raw binary.
const RAW_CODEC: u64 = 0x55;
/// multihash code of sha2-256.
const SHA2_256: u64 = 0x12;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(data_path))
        .routes(routes!(data_head))
        .routes(routes!(file_cid))
        .routes(routes!(file_by_cid))
}

fn outside() -> JsonError {
    JsonError::bad_request("path outside files root")
}

/// Opens the regular file at `rel` beneath `files.root` for reading (off the async
/// threads: the files may be on a slow disk), or the answer that refuses it.
async fn open_file(s: &AppState, rel: &str) -> Result<Opened, JsonError> {
    let (root, rel) = (s.cfg.files_root.clone(), rel.to_string());
    let opened =
        tokio::task::spawn_blocking(move || open_beneath(&root, &rel, Access::Read)?.regular())
            .await
            .map_err(JsonError::internal)?;
    match opened {
        Ok(o) => Ok(o),
        Err(Confine::Missing) => Err(JsonError::not_found("file does not exist on disk")),
        Err(Confine::Outside) => Err(outside()),
        Err(Confine::Io(e)) => Err(JsonError::internal(e)),
    }
}

/// Whether a regular file is at `rel` beneath `files.root`; Err for a path outside it.
async fn file_exists(s: &AppState, rel: &str) -> Result<bool, JsonError> {
    let (root, rel) = (s.cfg.files_root.clone(), rel.to_string());
    let opened =
        tokio::task::spawn_blocking(move || open_beneath(&root, &rel, Access::Stat)?.regular())
            .await
            .map_err(JsonError::internal)?;
    match opened {
        Ok(_) => Ok(true),
        Err(Confine::Outside) => Err(outside()),
        Err(Confine::Missing | Confine::Io(_)) => Ok(false),
    }
}

fn file_path_of(s: &AppState, hash: &str) -> Result<String, JsonError> {
    check_key(&s.cfg.limits, "hash id", hash)?;
    let obj = s
        .node
        .store()
        .meta_get(hash)?
        .ok_or_else(|| JsonError::not_found("metadata not found"))?;
    obj.fields
        .get("filePath")
        .cloned()
        .ok_or_else(|| JsonError::not_found("filePath not found"))
}

/// Where an object's file is: `files.root` joined with its `filePath`
#[utoipa::path(get, path = "/data/{hash}/path", tag = "files",
    params(("hash" = String, Path, description = "Object id")),
    responses(
        (status = 200, description = "The path and whether the file exists", body = doc::DataPath),
        (status = 400, description = "Bad hash id, or a path outside the files root", body = Err),
        (status = 404, description = "metadata not found, or no `filePath`", body = Err)))]
async fn data_path(State(s): St, UrlPath(hash): UrlPath<String>) -> Result<Response, JsonError> {
    let rel = file_path_of(&s, &hash)?;
    let exists = file_exists(&s, &rel).await?;
    // FILES_ROOT/filePath; an absolute filePath (already confined above) as it is.
    let shown = s.cfg.files_root.join(&rel);
    Ok(
        Json(json!({ "hashId": hash, "path": shown.display().to_string(), "exists": exists }))
            .into_response(),
    )
}

/// Whether an object's file exists
#[utoipa::path(head, path = "/data/{hash}", tag = "files",
    params(("hash" = String, Path, description = "Object id")),
    responses(
        (status = 200, description = "The file exists"),
        (status = 404, description = "No object, no `filePath`, or no file")))]
async fn data_head(State(s): St, UrlPath(hash): UrlPath<String>) -> StatusCode {
    let found = match file_path_of(&s, &hash) {
        Ok(rel) => file_exists(&s, &rel).await.unwrap_or(false),
        Err(_) => false,
    };
    if found {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    }
}

/// The file whose `poster` or `backdrop` is this CID, with Range and conditional requests
#[utoipa::path(get, path = "/file/{cid}", tag = "files",
    params(("cid" = String, Path, description = "CIDv1 of the file"),
        ("Range" = Option<String>, Header, description = "One byte range, e.g. `bytes=0-99`, `bytes=100-` or `bytes=-100`; several ranges or bad syntax are ignored (the whole file)"),
        ("If-Range" = Option<String>, Header, description = "The range only while this ETag or date still holds"),
        ("If-Match" = Option<String>, Header, description = "412 unless the ETag matches"),
        ("If-Unmodified-Since" = Option<String>, Header, description = "412 when modified since"),
        ("If-None-Match" = Option<String>, Header, description = "304 when the ETag matches"),
        ("If-Modified-Since" = Option<String>, Header, description = "304 when not modified since")),
    responses(
        (status = 200, description = "The file; content type from its extension", body = doc::FileBytes, content_type = "*/*"),
        (status = 206, description = "The requested range", body = doc::FileBytes, content_type = "*/*"),
        (status = 304, description = "Not modified"),
        (status = 400, description = "Bad CID, or a path outside the files root", body = Err),
        (status = 404, description = "file not found for CID, or file does not exist on disk", body = Err),
        (status = 412, description = "A precondition header failed"),
        (status = 416, description = "The range is not satisfiable")))]
async fn file_by_cid(
    State(s): St,
    UrlPath(cid): UrlPath<String>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, JsonError> {
    check_key(&s.cfg.limits, "cid", &cid)?;
    let not_found = || JsonError::not_found("file not found for CID");
    let (hash, prop) = s.node.store().meta_by_cid(&cid)?.ok_or_else(not_found)?;
    let obj = s.node.store().meta_get(&hash)?.ok_or_else(not_found)?;
    let rel = obj
        .fields
        .get(&format!("{prop}Path"))
        .ok_or_else(not_found)?;
    let o = open_file(&s, rel).await?;
    serve::respond(&method, &headers, rel, o.file, &o.meta).map_err(JsonError::internal)
}

#[derive(Deserialize, ToSchema)]
struct CidRequest {
    /// Relative to `files.root`, or absolute inside it.
    path: String,
}

/// The CID (v1, raw, sha2-256, base32) of a file under `files.root`
#[utoipa::path(post, path = "/file/cid", tag = "files", request_body = CidRequest,
    responses(
        (status = 200, description = "The CID", body = doc::CidOf),
        (status = 400, description = "Bad body, or a path outside the files root", body = Err),
        (status = 404, description = "file does not exist on disk", body = Err),
        (status = 413, description = "Body over `limits.max_body_bytes`", body = Err)))]
async fn file_cid(State(s): St, b: Body) -> Result<Json<serde_json::Value>, JsonError> {
    let bytes = body::read(b, s.cfg.max_body_bytes)?;
    let req: CidRequest = serde_json::from_slice(&bytes)
        .map_err(|_| JsonError::bad_request("invalid JSON body: expected {\"path\": ...}"))?;
    let o = open_file(&s, &req.path).await?;
    let (cid, size) = tokio::task::spawn_blocking(move || cid_of_file(o.file))
        .await
        .map_err(JsonError::internal)?
        .map_err(JsonError::internal)?;
    Ok(Json(json!({ "cid": cid, "path": req.path, "size": size })))
}

/// CIDv1 (raw codec, sha2-256, base32) of the bytes read from `f` (an open file), and
/// their number.
pub fn cid_of_file(mut f: impl Read) -> std::io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((cid_of_digest(&hasher.finalize()), size))
}

/// CIDv1 text of a sha2-256 digest of raw bytes.
pub fn cid_of_digest(digest: &[u8]) -> String {
    let mh = multihash::Multihash::<64>::wrap(SHA2_256, digest).expect("a 32-byte digest fits");
    cid::Cid::new_v1(RAW_CODEC, mh).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cid_of_known_bytes() {
        // CIDv1 raw sha2-256 of the bytes "hello world\n" as `ipfs add --cid-version 1 --raw-leaves` prints it.
        let digest = Sha256::digest(b"hello world\n");
        assert_eq!(
            cid_of_digest(&digest),
            "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
        );
    }
}
