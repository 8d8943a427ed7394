//! `GET /cluster/backup` (an area of its own, tagged `cluster`; admin when tokens are
//! configured): a consistent copy of the whole state at one applied index, streamed as
//! it is written (the file format is `crate::backup::format`).
//!
//! The node first confirms with the leader that it has applied every write committed
//! before the request (a read barrier), so a backup holds every write acknowledged
//! before it began, whichever node serves it. The state is then fixed between two
//! applies and written on a blocking thread while apply goes on; a client that goes
//! away ends the export, which frees what it kept. One backup runs at a time per node.

use std::io::{self, Write};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::json_error::JsonError;
use super::openapi::JsonErrorBody as Err;
use crate::state::AppState;

/// Bytes per chunk of the response body.
const CHUNK: usize = 256 * 1024;
/// Chunks written ahead of the client.
const AHEAD: usize = 4;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(backup))
}

/// A backup file: magic `MCBACKUP`, format version, JSON header (raft index and term,
/// membership, time taken), the state, SHA-256 of all before it.
#[allow(dead_code)] // read by the ToSchema derive only
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct BackupFile(Vec<u8>);

/// A consistent backup of the whole state at one applied index; admin
#[utoipa::path(get, path = "/cluster/backup", tag = "cluster",
    responses(
        (status = 200, description = "The backup, streamed; `X-Backup-Index` and `X-Backup-Term` name the raft entry it holds the state of. A body cut short (the node failed midway) fails its checksum", body = BackupFile, content_type = "application/octet-stream"),
        (status = 409, description = "A backup is already running on this node", body = Err),
        (status = 503, description = "No leader to confirm the applied state with, or the node is stopping", body = Err)))]
async fn backup(State(s): State<Arc<AppState>>, method: Method) -> Result<Response, JsonError> {
    if method == Method::HEAD {
        // axum answers HEAD with this handler: say what a GET would send, start nothing.
        let kind = HeaderValue::from_static("application/octet-stream");
        return Ok((StatusCode::OK, [(header::CONTENT_TYPE, kind)]).into_response());
    }
    let Ok(permit) = s.backups.running.clone().try_acquire_owned() else {
        return Err(JsonError::new(
            StatusCode::CONFLICT,
            "a backup is already running on this node",
        ));
    };
    s.node.read_barrier().await?;
    let store = s.node.store().clone();
    let source = tokio::task::spawn_blocking(move || crate::backup::begin(&store))
        .await
        .map_err(JsonError::internal)??;
    let header = crate::backup::header_of(&source, s.node.id());
    let (index, term) = (header.index, header.term);
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(AHEAD);
    tokio::task::spawn_blocking(move || {
        let _one_at_a_time = permit;
        let mut out = Chunks {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        if let Err(e) = crate::backup::write_backup(source, &header, &mut out) {
            tracing::warn!(index, error = %e, "backup not completed");
            // Fails the response body, so the client sees an error, not an end.
            let _ = tx.blocking_send(Err(e));
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let mut resp = (StatusCode::OK, Body::from_stream(stream)).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    let name = format!("attachment; filename=\"metacenter-{index}.mcbak\"");
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert("x-backup-index", HeaderValue::from(index));
    h.insert("x-backup-term", HeaderValue::from(term));
    Ok(resp)
}

/// A writer that sends what it is given to the response body in [`CHUNK`]s.
struct Chunks {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl Chunks {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for Chunks {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}
