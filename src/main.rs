//! The `metacenter` command line: run a node (`dev`, `run`), administer a cluster
//! (`cluster ...`), probe a node (`health`), back up, restore and recover
//! (`backup`, `restore`, `recover`: `metacenter::backup::cli`).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use metacenter::{admin, backup, logging, Config, Server};
use reqwest::Method;

/// mimalloc instead of glibc's malloc: a profile of the leader under 64 writers spent
/// about a fifth of its CPU in glibc's malloc/free (arena contention across threads).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "metacenter",
    version,
    about = "Replicated metadata and metrics node for AI platforms"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// One self-initialised node on loopback (API 127.0.0.1:8080, data ./metacenter-data).
    Dev(DevFlags),
    /// A cluster member configured by file, environment and flags.
    Run(NodeFlags),
    /// Cluster administration against a running node.
    Cluster {
        /// Bearer token (an admin token when the node has `auth.tokens`).
        #[arg(long, env = "METACENTER_TOKEN", global = true, hide_env_values = true)]
        token: Option<String>,
        #[command(subcommand)]
        command: ClusterCmd,
    },
    /// Exits 0 when the node at --node is ready (GET /ready), else 1.
    Health {
        #[arg(long, default_value = "127.0.0.1:8080")]
        node: String,
    },
    /// Saves a consistent backup of the whole state from a running node.
    Backup {
        /// API address (host:port or http://host:port) of any member.
        #[arg(long)]
        node: String,
        /// The backup file (written as FILE.partial until it verifies).
        #[arg(long)]
        out: PathBuf,
        /// Bearer token (an admin token when the node has `auth.tokens`).
        #[arg(long, env = "METACENTER_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Writes a new member's data directory from a backup (run once per member).
    Restore {
        #[arg(long)]
        from: PathBuf,
        /// A new or empty directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// This member's id.
        #[arg(long)]
        id: u64,
        /// ID=PEER@API,... of every member of the new cluster.
        #[arg(long)]
        members: String,
    },
    /// Makes a stopped survivor's data directory a one-member cluster keeping all it
    /// logged and applied (after a quorum is lost for good).
    Recover {
        #[arg(long)]
        data_dir: PathBuf,
        /// This node's id (needed when the old membership had several voters).
        #[arg(long)]
        id: Option<u64>,
    },
}

#[derive(Args, Default)]
struct NodeFlags {
    /// TOML configuration file.
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// This member's id: unique in the cluster, stable across restarts.
    #[arg(long)]
    id: Option<u64>,
    /// Directory of the database, raft log and snapshots.
    #[arg(long)]
    data_dir: Option<String>,
    /// Client API listen address.
    #[arg(long)]
    listen: Option<String>,
    /// Peer (raft) listen address.
    #[arg(long)]
    peer_listen: Option<String>,
    /// API address the other members and clients reach this node at.
    #[arg(long)]
    advertise_api: Option<String>,
    /// Peer address the other members reach this node at.
    #[arg(long)]
    advertise_peer: Option<String>,
    /// The secret every member sends on the peer port (or METACENTER_CLUSTER_SECRET).
    #[arg(long)]
    cluster_secret: Option<String>,
    /// Serve the peer port without a cluster secret (anyone who reaches it can rewrite
    /// the state).
    #[arg(long)]
    insecure: bool,
    /// Initialise a one-node cluster on first start.
    #[arg(long)]
    bootstrap: bool,
    /// API address of a member to ask to add this node.
    #[arg(long)]
    join: Option<String>,
    /// Any setting as KEY=VALUE (see docs/configuration.md).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

/// What makes sense for a one-node loopback cluster (`dev`).
#[derive(Args)]
struct DevFlags {
    /// TOML configuration file.
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// Directory of the database, raft log and snapshots.
    #[arg(long)]
    data_dir: Option<String>,
    /// Client API listen address (loopback only).
    #[arg(long)]
    listen: Option<String>,
    /// Peer (raft) listen address (loopback only).
    #[arg(long)]
    peer_listen: Option<String>,
    /// Any setting as KEY=VALUE (see docs/configuration.md).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

impl From<DevFlags> for NodeFlags {
    fn from(d: DevFlags) -> NodeFlags {
        NodeFlags {
            config: d.config,
            data_dir: d.data_dir,
            listen: d.listen,
            peer_listen: d.peer_listen,
            set: d.set,
            ..NodeFlags::default()
        }
    }
}

#[derive(Subcommand)]
enum ClusterCmd {
    /// Initialise a new cluster (default: the node alone).
    Init {
        #[arg(long)]
        node: String,
        /// ID=PEER@API,... of the initial voters.
        #[arg(long)]
        members: Option<String>,
    },
    /// Add a node (learner until caught up, then voter).
    Add {
        #[arg(long)]
        node: String,
        #[arg(long)]
        id: u64,
        #[arg(long)]
        peer: String,
        #[arg(long)]
        api: String,
    },
    /// Remove a node.
    Remove {
        #[arg(long)]
        node: String,
        #[arg(long)]
        id: u64,
    },
    /// Voters, learners and the leader.
    Members {
        #[arg(long)]
        node: String,
    },
    /// Raft and node status.
    Status {
        #[arg(long)]
        node: String,
    },
}

fn build_config(flags: &NodeFlags, dev: bool) -> Result<Config> {
    let mut c = Config::default();
    if dev {
        c.set("node.bootstrap", "true")?;
        // A laptop node: small preallocated log segments.
        c.set("raft.log_segment_bytes", "4194304")?;
    }
    if let Some(f) = &flags.config {
        c.apply_file(f)?;
    }
    c.apply_env(|k| std::env::var(k).ok())?;
    let pairs = [
        ("node.id", flags.id.map(|v| v.to_string())),
        ("node.data_dir", flags.data_dir.clone()),
        ("node.listen", flags.listen.clone()),
        ("node.peer_listen", flags.peer_listen.clone()),
        ("node.advertise_api", flags.advertise_api.clone()),
        ("node.advertise_peer", flags.advertise_peer.clone()),
        ("cluster.secret", flags.cluster_secret.clone()),
        ("node.join", flags.join.clone()),
        ("cluster.insecure", flags.insecure.then(|| "true".into())),
        ("node.bootstrap", flags.bootstrap.then(|| "true".into())),
    ];
    for (k, v) in pairs {
        if let Some(v) = v {
            c.set(k, &v)?;
        }
    }
    for kv in &flags.set {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--set {kv}: expected KEY=VALUE"))?;
        c.set(k.trim(), v.trim())?;
    }
    if dev
        && !(metacenter::config::is_loopback(&c.listen)
            && metacenter::config::is_loopback(&c.peer_listen))
    {
        bail!("dev mode binds loopback only; use `metacenter run` for other addresses");
    }
    if dev && c.secret.is_empty() && !c.insecure {
        // One member: no peer needs to know it, and no local process can guess it.
        c.secret = random_secret();
    }
    Ok(c)
}

/// 244 random bits as text (two v4 UUIDs).
fn random_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

async fn run_node(cfg: Config) -> Result<()> {
    logging::init(&cfg.log_level, &cfg.log_format);
    let server = Server::start(cfg).await?;
    shutdown_signal().await;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

async fn cluster(cmd: ClusterCmd, token: Option<String>) -> Result<()> {
    let token = token.as_deref();
    let out = match cmd {
        ClusterCmd::Init { node, members } => {
            let members = members
                .as_deref()
                .map(admin::parse_members)
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let body = serde_json::json!({ "members": members.unwrap_or_default() });
            admin::call(&node, token, Method::POST, "/cluster/init", Some(body)).await?
        }
        ClusterCmd::Add {
            node,
            id,
            peer,
            api,
        } => {
            let body = serde_json::json!({ "id": id, "peer": peer, "api": api });
            admin::call(&node, token, Method::POST, "/cluster/add", Some(body)).await?
        }
        ClusterCmd::Remove { node, id } => {
            admin::call(
                &node,
                token,
                Method::POST,
                "/cluster/remove",
                Some(serde_json::json!({ "id": id })),
            )
            .await?
        }
        ClusterCmd::Members { node } => {
            admin::call(&node, token, Method::GET, "/cluster/members", None).await?
        }
        ClusterCmd::Status { node } => {
            admin::call(&node, token, Method::GET, "/status", None).await?
        }
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// Runs the command; a failure prints its error chain on one line (never a backtrace,
/// whatever `RUST_BACKTRACE` says) and exits 1.
fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    if let Err(e) = runtime.block_on(run(Cli::parse())) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Dev(f) => run_node(build_config(&f.into(), true)?).await,
        Cmd::Run(f) => run_node(build_config(&f, false)?).await,
        Cmd::Cluster { command, token } => cluster(command, token).await,
        Cmd::Backup { node, out, token } => {
            backup::cli::backup(&node, token.as_deref(), &out).await
        }
        Cmd::Restore {
            from,
            data_dir,
            id,
            members,
        } => backup::cli::restore(&from, &data_dir, id, &members),
        Cmd::Recover { data_dir, id } => backup::cli::recover(&data_dir, id).await,
        Cmd::Health { node } => match admin::call(&node, None, Method::GET, "/ready", None).await {
            Ok(_) => {
                println!("{node} is ready");
                Ok(())
            }
            Err(e) => {
                eprintln!("not ready: {e}");
                std::process::exit(1)
            }
        },
    }
}
