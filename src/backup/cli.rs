//! The disaster recovery commands of the command line:
//!
//! - `metacenter backup --node URL --out FILE`: saves `GET /cluster/backup` as
//!   `FILE.partial`, checks it whole ([`super::format::verify`]) and only then renames
//!   it to `FILE`, so a failed backup never leaves a file that looks whole.
//! - `metacenter restore --from FILE --data-dir DIR --id N --members ...`: writes a new
//!   data directory for member N of a new cluster from a backup (once per member).
//! - `metacenter recover --data-dir DIR [--id N]`: turns a stopped survivor's data
//!   directory into a one-member cluster (etcd's `--force-new-cluster`).
//!
//! Each fails with a message that says what is wrong; `main` exits non-zero with it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use metacenter_raft::recovery::{self, Position};
use metacenter_raft::{NodeAddr, NodeId};

use super::format::{self, Verified, END_LEN};

/// The base URL of a node given as `host:port` or `http://host:port`.
fn base_url(node: &str) -> String {
    let node = node.trim_end_matches('/');
    if node.contains("://") {
        node.to_string()
    } else {
        format!("http://{node}")
    }
}

/// `metacenter backup`: saves a backup of the node at `node` to `out`.
pub async fn backup(node: &str, token: Option<&str>, out: &Path) -> Result<()> {
    let partial = PathBuf::from(format!("{}.partial", out.display()));
    let result = download(node, token, &partial).await;
    let verified = result.and_then(|()| {
        let f = File::open(&partial).with_context(|| format!("reopening {}", partial.display()))?;
        format::verify(BufReader::with_capacity(1 << 20, f))
            .map_err(|e| anyhow!("the downloaded backup does not verify: {e}"))
    });
    let v = match verified {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, out)
        .with_context(|| format!("renaming {} to {}", partial.display(), out.display()))?;
    sync_parent(out)?;
    println!(
        "backup of raft index {} (term {}) from node {}: {} bytes, {} keys, written to {}",
        v.header.index,
        v.header.term,
        v.header.node,
        v.bytes,
        v.pairs,
        out.display()
    );
    Ok(())
}

/// Streams `GET /cluster/backup` into `path`, synced.
async fn download(node: &str, token: Option<&str>, path: &Path) -> Result<()> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(120))
        .build()?;
    let mut req = client.get(format!("{}/cluster/backup", base_url(node)));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let mut resp = req
        .send()
        .await
        .with_context(|| format!("cannot reach {node}"))?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        bail!("{node} refused the backup: {status}: {}", body.trim());
    }
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let progress = Progress::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .with_context(|| format!("{node} stopped sending the backup midway"))?
    {
        w.write_all(&chunk)
            .with_context(|| format!("writing {}", path.display()))?;
        progress.add(chunk.len());
    }
    progress.finish();
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()
        .with_context(|| format!("syncing {}", path.display()))
}

/// A progress line (bytes, rate) on stderr when it is a terminal; nothing otherwise.
struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn new() -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = indicatif::ProgressBar::new_spinner();
        let style = indicatif::ProgressStyle::with_template(
            "{spinner} {bytes} received ({binary_bytes_per_sec}) in {elapsed}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress(Some(bar))
    }

    fn add(&self, n: usize) {
        if let Some(b) = &self.0 {
            b.inc(n as u64);
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish();
        }
    }
}

fn sync_parent(path: &Path) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", parent.display()))
}

/// `ID=PEER@API,...` as a membership.
pub fn parse_members(spec: &str) -> Result<BTreeMap<NodeId, NodeAddr>> {
    let members = crate::admin::parse_members(spec).map_err(|e| anyhow!("--members: {e}"))?;
    let mut out = BTreeMap::new();
    for m in members {
        let id = m["id"].as_u64().unwrap_or(0);
        if id == 0 {
            bail!("--members: node ids must be > 0");
        }
        let addr = NodeAddr {
            peer: m["peer"].as_str().unwrap_or_default().to_string(),
            api: m["api"].as_str().unwrap_or_default().to_string(),
        };
        if addr.peer.is_empty() || addr.api.is_empty() || out.insert(id, addr).is_some() {
            bail!("--members: node {id} is named twice or lacks an address");
        }
    }
    if out.is_empty() {
        bail!("--members: no member given");
    }
    Ok(out)
}

/// `metacenter restore`: writes `data_dir` for member `id` of `members` from `from`.
pub fn restore(from: &Path, data_dir: &Path, id: NodeId, members: &str) -> Result<()> {
    let members = parse_members(members)?;
    if !members.contains_key(&id) {
        bail!("--id {id} is not among --members");
    }
    recovery::refuse_non_empty(data_dir).map_err(|e| anyhow!("{e}"))?;
    let open = || File::open(from).with_context(|| format!("cannot open {}", from.display()));
    let v = format::verify(BufReader::with_capacity(1 << 20, open()?))
        .map_err(|e| anyhow!("{}: {e}", from.display()))?;
    let mut file = open()?;
    file.seek(SeekFrom::Start(v.body_offset))?;
    let body_len = v.bytes - v.body_offset - END_LEN;
    let mut body = BufReader::with_capacity(1 << 20, file).take(body_len);
    let pairs = recovery::restore_data_dir(data_dir, id, &members, &position(&v), &mut body)
        .map_err(|e| anyhow!("restoring into {}: {e}", data_dir.display()))?;
    let h = &v.header;
    println!(
        "restored raft index {} (term {}, taken {} on node {}): {pairs} keys into {} as node {id} of {:?}",
        h.index,
        h.term,
        h.taken_at,
        h.node,
        data_dir.display(),
        members.keys().collect::<Vec<_>>()
    );
    Ok(())
}

/// The raft position a verified backup holds.
fn position(v: &Verified) -> Position {
    let h = &v.header;
    Position {
        index: h.index,
        term: h.term,
        leader: h.leader,
        voters: h.members.iter().filter(|m| m.voter).map(|m| m.id).collect(),
        nodes: (h.members.iter())
            .map(|m| {
                let addr = NodeAddr {
                    peer: m.peer.clone(),
                    api: m.api.clone(),
                };
                (m.id, addr)
            })
            .collect(),
    }
}

/// `metacenter recover`: makes the stopped node's `data_dir` a one-member cluster.
pub async fn recover(data_dir: &Path, id: Option<NodeId>) -> Result<()> {
    let r = recovery::recover_data_dir(data_dir, id)
        .await
        .map_err(|e| {
            anyhow!(
                "recovering {}: {e} (the node must be stopped first)",
                data_dir.display()
            )
        })?;
    println!(
        "node {} ({}) is now the only member, holding its whole log up to raft index {} \
         ({} entries applied from the log now). Start it as before, then add members with \
         `metacenter cluster add` or `--join`.",
        r.id, r.addr, r.index, r.replayed
    );
    Ok(())
}
