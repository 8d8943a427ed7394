//! The key-value put workload ([`KvSpec`], [`run_kv`]) against the systems under test
//! ([`System`]: metacenter, etcd over gRPC or its HTTP/JSON gateway), leader discovery
//! ([`find_leader`]) and readiness ([`wait_ready`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::{json, Value};

use super::{
    base64, call_json, drive, http_client, random_value, send_ack, KeyGen, Limit, OpError,
    RunConfig, RunStats, Workload,
};

/// A system the key-value workload can drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum System {
    /// metacenter: `PUT /meta/{key}` with `{"v": value}`.
    Metacenter,
    /// etcd v3 over gRPC (the `etcd-client` crate; needs cargo feature `etcd-client`).
    Etcd,
    /// etcd v3 over its HTTP/JSON gateway (`POST /v3/kv/put`).
    EtcdHttp,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::Metacenter => "metacenter",
            System::Etcd => "etcd",
            System::EtcdHttp => "etcd-http",
        }
    }
}

/// The address of the current leader among `targets`.
pub async fn find_leader(system: System, targets: &[String]) -> Result<String> {
    let http = http_client(1, Duration::from_secs(3))?;
    let mut last = anyhow::anyhow!("no target answered");
    for t in targets {
        let found = match system {
            System::Metacenter => metacenter_leader(&http, t).await,
            System::EtcdHttp => etcd_http_is_leader(&http, t).await,
            System::Etcd => etcd_grpc::is_leader(t).await,
        };
        match found {
            Ok(Some(addr)) => return Ok(addr),
            Ok(None) => {}
            Err(e) => last = e,
        }
    }
    Err(last.context("finding the leader"))
}

/// metacenter's `GET /leader`: the leader's API address.
async fn metacenter_leader(http: &reqwest::Client, target: &str) -> Result<Option<String>> {
    let (status, v) = call_json(http.get(format!("http://{target}/leader")))
        .await
        .map_err(|e| anyhow::anyhow!("{target}: {e}"))?;
    if status != 200 {
        return Ok(None);
    }
    Ok(v["api"].as_str().map(String::from))
}

/// Whether the etcd member at `target` leads (`/v3/maintenance/status` over the gateway).
async fn etcd_http_is_leader(http: &reqwest::Client, target: &str) -> Result<Option<String>> {
    let url = format!("http://{target}/v3/maintenance/status");
    let (_, v) = call_json(http.post(url).json(&json!({})))
        .await
        .map_err(|e| anyhow::anyhow!("{target}: {e}"))?;
    let id = |x: &Value| {
        x.as_str()
            .map(String::from)
            .or(x.as_u64().map(|n| n.to_string()))
    };
    let (me, leader) = (id(&v["header"]["member_id"]), id(&v["leader"]));
    Ok((me.is_some() && me == leader).then(|| target.to_string()))
}

/// Cluster membership as metacenter reports it: (voters, leader known).
async fn metacenter_members(http: &reqwest::Client, target: &str) -> Result<(usize, bool)> {
    let (status, v) = call_json(http.get(format!("http://{target}/cluster/members")))
        .await
        .map_err(|e| anyhow::anyhow!("{target}: {e}"))?;
    if status != 200 {
        bail!("{target}: /cluster/members answered {status}");
    }
    let voters = v["voters"].as_array().map_or(0, Vec::len);
    Ok((voters, !v["leader"].is_null()))
}

// ---------------------------------------------------------------------------------------
// The key-value put workload
// ---------------------------------------------------------------------------------------

/// Parameters of the key-value put workload.
#[derive(Clone, Debug)]
pub struct KvSpec {
    pub system: System,
    /// Addresses; client `i` uses `targets[i % len]`.
    pub targets: Vec<String>,
    pub clients: usize,
    /// gRPC connections (HTTP uses one connection per client).
    pub conns: usize,
    pub keys: KeyGen,
    pub value_size: usize,
    pub timeout: Duration,
}

/// metacenter: `PUT /meta/{key}` with `{"v":"<value>"}`.
pub struct MetaKv {
    http: reqwest::Client,
    bases: Vec<String>,
    keys: KeyGen,
    body: String,
}

impl MetaKv {
    pub fn new(spec: &KvSpec) -> Result<Self> {
        let value = random_value(spec.value_size);
        Ok(MetaKv {
            http: http_client(spec.clients, spec.timeout)?,
            bases: spec
                .targets
                .iter()
                .map(|t| format!("http://{t}/meta/"))
                .collect(),
            keys: spec.keys.clone(),
            body: json!({ "v": value }).to_string(),
        })
    }
}

impl Workload for MetaKv {
    async fn op(&self, client: usize, _seq: u64) -> Result<(), OpError> {
        let url = format!(
            "{}{}",
            self.bases[client % self.bases.len()],
            self.keys.next()
        );
        let req = self
            .http
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(self.body.clone());
        send_ack(req).await
    }
}

/// etcd through its HTTP/JSON gateway: `POST /v3/kv/put` with base64 key and value.
pub struct EtcdHttpKv {
    http: reqwest::Client,
    urls: Vec<String>,
    keys: KeyGen,
    value_b64: String,
}

impl EtcdHttpKv {
    pub fn new(spec: &KvSpec) -> Result<Self> {
        let value = random_value(spec.value_size);
        Ok(EtcdHttpKv {
            http: http_client(spec.clients, spec.timeout)?,
            urls: spec
                .targets
                .iter()
                .map(|t| format!("http://{t}/v3/kv/put"))
                .collect(),
            keys: spec.keys.clone(),
            value_b64: base64(value.as_bytes()),
        })
    }
}

impl Workload for EtcdHttpKv {
    async fn op(&self, client: usize, _seq: u64) -> Result<(), OpError> {
        let body = format!(
            r#"{{"key":"{}","value":"{}"}}"#,
            base64(self.keys.next().as_bytes()),
            self.value_b64
        );
        let req = self
            .http
            .post(&self.urls[client % self.urls.len()])
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        send_ack(req).await
    }
}

/// etcd over gRPC with the `etcd-client` crate (only with cargo feature `etcd-client`).
#[cfg(feature = "etcd-client")]
pub mod etcd_grpc {
    use super::{KeyGen, KvSpec, OpError, Workload};
    use anyhow::{Context, Result};
    use etcd_client::{Client, ConnectOptions, KvClient};
    use std::time::Duration;

    /// Puts through `conns` HTTP/2 connections; client `i` uses connection `i % conns`.
    pub struct EtcdGrpcKv {
        conns: Vec<KvClient>,
        keys: KeyGen,
        value: Vec<u8>,
    }

    pub(crate) async fn connect(target: &str, timeout: Duration) -> Result<Client> {
        let opts = ConnectOptions::new()
            .with_timeout(timeout)
            .with_connect_timeout(Duration::from_secs(3));
        Client::connect([format!("http://{target}")], Some(opts))
            .await
            .with_context(|| format!("connecting to etcd at {target}"))
    }

    impl EtcdGrpcKv {
        pub async fn new(spec: &KvSpec) -> Result<Self> {
            let mut conns = Vec::with_capacity(spec.conns);
            for i in 0..spec.conns.max(1) {
                let target = &spec.targets[i % spec.targets.len()];
                conns.push(connect(target, spec.timeout).await?.kv_client());
            }
            Ok(EtcdGrpcKv {
                conns,
                keys: spec.keys.clone(),
                value: super::random_value(spec.value_size).into_bytes(),
            })
        }
    }

    impl Workload for EtcdGrpcKv {
        async fn op(&self, client: usize, _seq: u64) -> Result<(), OpError> {
            let mut kv = self.conns[client % self.conns.len()].clone();
            kv.put(self.keys.next(), self.value.clone(), None)
                .await
                .map(|_| ())
                .map_err(op_error)
        }
    }

    /// Classifies a failed etcd call: gRPC code name, timeout, or transport.
    pub(crate) fn op_error(e: etcd_client::Error) -> OpError {
        match e {
            etcd_client::Error::GRpcStatus(s) => {
                let code = format!("{:?}", s.code());
                if code == "DeadlineExceeded" {
                    OpError::Timeout
                } else {
                    OpError::Status(code)
                }
            }
            _ => OpError::Transport("grpc".into()),
        }
    }

    /// `Some(target)` when the etcd member at `target` is the leader.
    pub async fn is_leader(target: &str) -> Result<Option<String>> {
        let mut c = connect(target, Duration::from_secs(3)).await?;
        let st = c.status().await.context("etcd status")?;
        let me = st.header().map(|h| h.member_id());
        Ok((me == Some(st.leader())).then(|| target.to_string()))
    }
}

/// Stand-in when the crate is built without the `etcd-client` feature.
#[cfg(not(feature = "etcd-client"))]
pub mod etcd_grpc {
    use anyhow::{bail, Result};

    const MISSING: &str = "this loadgen was built without the `etcd-client` feature \
        (cargo build --features cluster-tests/etcd-client; needs protoc); use --system etcd-http";

    /// Always fails: gRPC support is not compiled in.
    pub async fn is_leader(_target: &str) -> Result<Option<String>> {
        bail!(MISSING)
    }

    /// Always fails: gRPC support is not compiled in.
    pub fn unavailable() -> anyhow::Error {
        anyhow::anyhow!(MISSING)
    }
}

/// Runs the key-value put workload described by `spec`.
pub async fn run_kv(spec: &KvSpec, cfg: &RunConfig) -> Result<RunStats> {
    match spec.system {
        System::Metacenter => drive(Arc::new(MetaKv::new(spec)?), cfg).await,
        System::EtcdHttp => drive(Arc::new(EtcdHttpKv::new(spec)?), cfg).await,
        #[cfg(feature = "etcd-client")]
        System::Etcd => drive(Arc::new(etcd_grpc::EtcdGrpcKv::new(spec).await?), cfg).await,
        #[cfg(not(feature = "etcd-client"))]
        System::Etcd => Err(etcd_grpc::unavailable()),
    }
}

// ---------------------------------------------------------------------------------------
// Readiness
// ---------------------------------------------------------------------------------------

/// One probe write through every target, each as its own client.
async fn probe_writes(spec: &KvSpec) -> Result<()> {
    let one = RunConfig {
        clients: spec.targets.len(),
        limit: Limit::Ops(spec.targets.len() as u64),
        warmup: Duration::ZERO,
        error_pause: Duration::ZERO,
    };
    let mut per_target = spec.clone();
    per_target.clients = spec.targets.len();
    per_target.conns = spec.targets.len();
    let stats = run_kv(&per_target, &one).await?;
    if stats.failed() > 0 {
        bail!("probe writes failed: {:?}", stats.errors);
    }
    Ok(())
}

/// One readiness check: the expected voters (metacenter) and a write through every target.
async fn ready_once(spec: &KvSpec, voters: usize) -> Result<()> {
    if spec.system == System::Metacenter {
        let http = http_client(1, Duration::from_secs(3))?;
        for t in &spec.targets {
            let (n, leader) = metacenter_members(&http, t).await?;
            if n < voters || !leader {
                bail!("{t}: {n} voters, leader known: {leader}");
            }
        }
    }
    probe_writes(spec).await
}

/// Waits until the cluster behind `spec.targets` has `voters` voters, a leader, and accepts
/// a write through every target; fails with the last reason after `timeout`.
pub async fn wait_ready(spec: &KvSpec, voters: usize, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match ready_once(spec, voters).await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(e.context(format!("cluster not ready after {timeout:?}")))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
