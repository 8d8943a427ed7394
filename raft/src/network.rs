//! The client side of the peer network: raft RPCs and forwarded requests, as HTTP
//! POSTs with codec-encoded (bincode) bodies, each carrying the cluster secret.
//! [`Faults`] lets tests drop traffic between chosen nodes.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use metacenter_storage::codec;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::types::{NodeAddr, NodeId, TypeConfig};

/// Header that carries the cluster secret on every peer request.
pub const SECRET_HEADER: &str = "x-metacenter-secret";
/// Header naming the sending node (for fault injection and logs).
pub const FROM_HEADER: &str = "x-metacenter-from";

/// Injected network faults, shared by the nodes of an in-process test cluster.
#[derive(Debug, Default)]
pub struct Faults {
    blocked: RwLock<HashSet<(NodeId, NodeId)>>,
}

impl Faults {
    /// Drops all traffic between `a` and `b`, both ways.
    pub fn cut(&self, a: NodeId, b: NodeId) {
        let mut g = self.blocked.write().expect("faults lock");
        g.insert((a, b));
        g.insert((b, a));
    }

    /// Isolates `node` from every node in `others`.
    pub fn isolate(&self, node: NodeId, others: &[NodeId]) {
        for o in others {
            self.cut(node, *o);
        }
    }

    /// Removes every fault.
    pub fn heal(&self) {
        self.blocked.write().expect("faults lock").clear();
    }

    /// Whether traffic from `from` to `to` is dropped.
    pub fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.blocked
            .read()
            .expect("faults lock")
            .contains(&(from, to))
    }
}

/// A transport failure, before any answer from the peer.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("network: {0}")]
    Network(String),
    /// The peer refused the request unread: a missing or wrong cluster secret.
    #[error("refused: {0}")]
    Refused(String),
    /// The peer's applied configuration, at this log index, leaves the sender out
    /// (see [`crate::removal`]).
    #[error("left out of the configuration at index {0}")]
    LeftOut(u64),
}

/// Sends peer requests. Cheap to clone.
#[derive(Clone)]
pub struct PeerClient {
    id: NodeId,
    http: reqwest::Client,
    secret: Arc<str>,
    faults: Arc<Faults>,
}

impl PeerClient {
    /// A client for node `id` using `secret` on every request.
    pub fn new(id: NodeId, secret: &str, faults: Arc<Faults>) -> PeerClient {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .build()
            .expect("reqwest client");
        PeerClient {
            id,
            http,
            secret: secret.into(),
            faults,
        }
    }

    /// POSTs `body` to `http://{addr}{path}` and decodes the answer.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        to: NodeId,
        addr: &str,
        path: &str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, TransportError> {
        if self.faults.is_cut(self.id, to) {
            return Err(TransportError::Unreachable(format!(
                "fault injected {} -> {to}",
                self.id
            )));
        }
        let bytes =
            codec::encode_packed(body).map_err(|e| TransportError::Network(e.to_string()))?;
        let resp = self
            .http
            .post(format!("http://{addr}{path}"))
            .header(SECRET_HEADER, &*self.secret)
            .header(FROM_HEADER, self.id.to_string())
            .timeout(timeout)
            .body(bytes)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    TransportError::Unreachable(e.to_string())
                } else {
                    TransportError::Network(e.to_string())
                }
            })?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| TransportError::Network(e.to_string()))?;
        if status == crate::removal::GONE {
            let at = std::str::from_utf8(&body)
                .ok()
                .and_then(|t| t.trim().parse().ok());
            // Without an index: the peer itself stood down. Unreachable, so that
            // openraft backs off instead of retrying at once.
            return Err(match at {
                Some(at) => TransportError::LeftOut(at),
                None => TransportError::Unreachable(format!(
                    "peer {to}: {}",
                    String::from_utf8_lossy(&body)
                )),
            });
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            let text = String::from_utf8_lossy(&body);
            return Err(TransportError::Refused(format!(
                "peer {to} at {addr}: {text}"
            )));
        }
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(TransportError::Network(format!(
                "peer answered {status}: {text}"
            )));
        }
        codec::decode(&body).map_err(|e| TransportError::Network(e.to_string()))
    }
}

/// Creates one [`PeerConnection`] per target for openraft.
#[derive(Clone)]
pub struct NetworkFactory {
    pub(crate) client: PeerClient,
    pub(crate) removal: Arc<crate::removal::Removal>,
    pub(crate) reach: Arc<crate::reach::Reach>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &NodeAddr) -> PeerConnection {
        PeerConnection {
            client: self.client.clone(),
            removal: self.removal.clone(),
            reach: self.reach.clone(),
            target,
            addr: node.peer.clone(),
        }
    }
}

/// openraft's view of one peer.
pub struct PeerConnection {
    client: PeerClient,
    removal: Arc<crate::removal::Removal>,
    reach: Arc<crate::reach::Reach>,
    target: NodeId,
    addr: String,
}

impl PeerConnection {
    async fn rpc<Req, Resp, E>(
        &mut self,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, NodeAddr, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let r: Result<Resp, RaftError<NodeId, E>> = self
            .client
            .call(self.target, &self.addr, path, req, option.hard_ttl())
            .await
            .inspect(|_| self.reach.answered(self.target))
            .inspect_err(|e| match e {
                TransportError::LeftOut(_) => self.reach.answered(self.target),
                e => self.reach.failed(self.target, e),
            })
            .map_err(|e| match e {
                // Unreachable makes openraft back off instead of retrying at once:
                // a peer with another secret refuses every request alike.
                TransportError::Unreachable(m) | TransportError::Refused(m) => {
                    RPCError::Unreachable(Unreachable::new(&std::io::Error::other(m)))
                }
                TransportError::Network(m) => {
                    RPCError::Network(NetworkError::new(&std::io::Error::other(m)))
                }
                TransportError::LeftOut(at) => {
                    self.removal.left_out_by(self.target, at);
                    let m = format!("node {} left this node out at index {at}", self.target);
                    RPCError::Unreachable(Unreachable::new(&std::io::Error::other(m)))
                }
            })?;
        r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, NodeAddr, RaftError<NodeId>>> {
        self.rpc("/raft/append", &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, NodeAddr, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.rpc("/raft/snapshot", &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, NodeAddr, RaftError<NodeId>>> {
        self.rpc("/raft/vote", &rpc, &option).await
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}
