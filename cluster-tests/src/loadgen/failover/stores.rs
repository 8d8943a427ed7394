//! The systems a failover run drives ([`KvStore`] implementations) and the kill -9 of the
//! leader's process ([`PidFaults`]).
//!
//! - [`MetaStore`]: metacenter, `PUT /meta/{key}` `{"v": value}` and
//!   `GET /meta/{key}?consistency=linearizable`, one HTTP/1.1 connection per writer.
//! - [`EtcdHttpStore`]: etcd's v3 JSON gateway, `POST /v3/kv/put` and `/v3/kv/range`
//!   (etcd reads are linearizable unless asked otherwise).
//! - `EtcdGrpcStore` (cargo feature `etcd-client`): gRPC `Put` / `Range` over `conns`
//!   HTTP/2 connections spread over the members.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;

use super::{Faults, Found, KvStore};
use crate::loadgen::{base64, call_json, find_leader, http_client, send_ack, OpError, System};

/// metacenter over HTTP/1.1.
pub struct MetaStore {
    http: reqwest::Client,
    targets: Vec<String>,
}

impl MetaStore {
    pub fn new(targets: &[String], conns: usize, timeout: Duration) -> Result<Self> {
        Ok(MetaStore {
            http: http_client(conns, timeout)?,
            targets: targets.to_vec(),
        })
    }
}

impl KvStore for MetaStore {
    async fn put(&self, node: usize, _w: usize, key: &str, value: &str) -> Result<(), OpError> {
        let url = format!("http://{}/meta/{key}", self.targets[node]);
        send_ack(self.http.put(url).json(&json!({ "v": value }))).await
    }

    async fn check(
        &self,
        node: usize,
        _r: usize,
        key: &str,
        value: &str,
    ) -> Result<Found, OpError> {
        let url = format!(
            "http://{}/meta/{key}?consistency=linearizable",
            self.targets[node]
        );
        match call_json(self.http.get(url)).await? {
            (200, v) if v["metadata"]["v"].as_str() == Some(value) => Ok(Found::Same),
            (200, _) => Ok(Found::Different),
            (404, _) => Ok(Found::Missing),
            (status, _) => Err(OpError::Status(status.to_string())),
        }
    }
}

/// etcd through its v3 HTTP/JSON gateway (keys and values in base64).
pub struct EtcdHttpStore {
    http: reqwest::Client,
    targets: Vec<String>,
}

impl EtcdHttpStore {
    pub fn new(targets: &[String], conns: usize, timeout: Duration) -> Result<Self> {
        Ok(EtcdHttpStore {
            http: http_client(conns, timeout)?,
            targets: targets.to_vec(),
        })
    }
}

impl KvStore for EtcdHttpStore {
    async fn put(&self, node: usize, _w: usize, key: &str, value: &str) -> Result<(), OpError> {
        let url = format!("http://{}/v3/kv/put", self.targets[node]);
        let body = json!({ "key": base64(key.as_bytes()), "value": base64(value.as_bytes()) });
        send_ack(self.http.post(url).json(&body)).await
    }

    async fn check(
        &self,
        node: usize,
        _r: usize,
        key: &str,
        value: &str,
    ) -> Result<Found, OpError> {
        let url = format!("http://{}/v3/kv/range", self.targets[node]);
        let body = json!({ "key": base64(key.as_bytes()) });
        let (status, v) = call_json(self.http.post(url).json(&body)).await?;
        if status != 200 {
            return Err(OpError::Status(status.to_string()));
        }
        Ok(match v["kvs"][0]["value"].as_str() {
            None => Found::Missing,
            Some(got) if got == base64(value.as_bytes()) => Found::Same,
            Some(_) => Found::Different,
        })
    }
}

#[cfg(feature = "etcd-client")]
pub use grpc::EtcdGrpcStore;

#[cfg(feature = "etcd-client")]
mod grpc {
    use super::{Found, KvStore};
    use crate::loadgen::{etcd_grpc, OpError};
    use anyhow::Result;
    use etcd_client::KvClient;
    use std::time::Duration;

    /// etcd over gRPC: `by_node[n]` holds the connections to member `n`.
    pub struct EtcdGrpcStore {
        by_node: Vec<Vec<KvClient>>,
    }

    impl EtcdGrpcStore {
        /// `conns` connections in all, connection `i` to member `i % len` (at least one each).
        pub async fn new(targets: &[String], conns: usize, timeout: Duration) -> Result<Self> {
            let mut by_node = vec![Vec::new(); targets.len()];
            for i in 0..conns.max(targets.len()) {
                let n = i % targets.len();
                let client = etcd_grpc::connect(&targets[n], timeout).await?;
                by_node[n].push(client.kv_client());
            }
            Ok(EtcdGrpcStore { by_node })
        }

        fn conn(&self, node: usize, slot: usize) -> KvClient {
            let c = &self.by_node[node];
            c[slot % c.len()].clone()
        }
    }

    impl KvStore for EtcdGrpcStore {
        async fn put(&self, node: usize, w: usize, key: &str, value: &str) -> Result<(), OpError> {
            let mut kv = self.conn(node, w);
            kv.put(key, value, None)
                .await
                .map(|_| ())
                .map_err(etcd_grpc::op_error)
        }

        async fn check(
            &self,
            node: usize,
            r: usize,
            key: &str,
            value: &str,
        ) -> Result<Found, OpError> {
            let mut kv = self.conn(node, r);
            let resp = kv.get(key, None).await.map_err(etcd_grpc::op_error)?;
            Ok(match resp.kvs().first() {
                None => Found::Missing,
                Some(got) if got.value() == value.as_bytes() => Found::Same,
                Some(_) => Found::Different,
            })
        }
    }
}

/// Finds the leader through the system's API and kills its process by pid.
pub struct PidFaults {
    pub system: System,
    pub targets: Vec<String>,
    /// `pids[i]` serves `targets[i]`.
    pub pids: Vec<i32>,
    /// What the leader gets: SIGKILL, or SIGSTOP (a pause: to its peers, a partition
    /// that drops packets; [`PidFaults::resume`] sends SIGCONT).
    pub signal: Signal,
}

impl PidFaults {
    pub fn new(system: System, targets: &[String], pids: Vec<i32>) -> Result<Self> {
        if pids.len() != targets.len() {
            bail!(
                "{} pids for {} targets: give one pid per target, in the same order",
                pids.len(),
                targets.len()
            );
        }
        Ok(PidFaults {
            system,
            targets: targets.to_vec(),
            pids,
            signal: Signal::SIGKILL,
        })
    }

    /// These faults pausing the leader (SIGSTOP) instead of killing it.
    pub fn pausing(mut self) -> Self {
        self.signal = Signal::SIGSTOP;
        self
    }

    /// SIGCONT to `pids[node]` (after a pause).
    pub fn resume(&self, node: usize) -> Result<()> {
        kill(Pid::from_raw(self.pids[node]), Signal::SIGCONT)
            .with_context(|| format!("SIGCONT to {}", self.pids[node]))
    }
}

impl Faults for PidFaults {
    async fn leader(&self) -> Result<usize> {
        let addr = find_leader(self.system, &self.targets).await?;
        self.targets
            .iter()
            .position(|t| *t == addr)
            .with_context(|| format!("the leader {addr} is not among the targets"))
    }

    /// [`PidFaults::signal`] to `pids[node]`, after checking that its command line names
    /// the target.
    fn kill(&self, node: usize) -> Result<()> {
        let (pid, target) = (self.pids[node], &self.targets[node]);
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .with_context(|| format!("pid {pid} (for {target}) is not running"))?;
        if !String::from_utf8_lossy(&cmdline).contains(target.as_str()) {
            bail!("pid {pid} does not look like the server of {target}: refusing to kill it");
        }
        kill(Pid::from_raw(pid), self.signal)
            .with_context(|| format!("{} to {pid} ({target})", self.signal))
    }
}
