//! The real `metacenter` binary as a child process: `dev` (no cluster secret) or a
//! bootstrapped `run` node, on free loopback ports, its stderr in a log file; killed
//! and reaped when dropped, or stopped with SIGTERM.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use reqwest::StatusCode;

use super::{client, free_ports, until};

/// The built binary.
pub const BIN: &str = env!("CARGO_BIN_EXE_metacenter");

/// A running `metacenter` process, killed when dropped.
pub struct Process {
    child: Child,
    /// `http://` + the API address.
    pub base: String,
    /// The peer address (`host:port`).
    pub peer: String,
}

impl Process {
    /// `metacenter dev` on `dir/data` (its log in `dir/dev.log`) with no cluster secret
    /// in the environment, ready.
    pub async fn dev(dir: &Path) -> Process {
        let data = dir.join("data");
        let args = ["dev", "--data-dir", data.to_str().expect("UTF-8 path")];
        Process::start(&args, &[], &dir.join("dev.log")).await
    }

    /// `metacenter run`, node 1 bootstrapping a one-node cluster on `data` with the
    /// test secret, its log in `log`, ready.
    pub async fn run(data: &Path, log: &Path) -> Process {
        let args = ["run", "--id", "1", "--bootstrap", "--data-dir"];
        let args = [&args[..], &[data.to_str().expect("UTF-8 path")]].concat();
        let env = [("METACENTER_CLUSTER_SECRET", "test-cluster-secret")];
        Process::start(&args, &env, log).await
    }

    /// The binary with `args`, `--listen` and `--peer-listen` on free ports and `env`
    /// (the cluster secret variables otherwise removed); waits until it is ready.
    pub async fn start(args: &[&str], env: &[(&str, &str)], log: &Path) -> Process {
        let ports = free_ports(2);
        let api = format!("127.0.0.1:{}", ports[0]);
        let peer = format!("127.0.0.1:{}", ports[1]);
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .args(["--listen", &api, "--peer-listen", &peer])
            .env_remove("METACENTER_CLUSTER_SECRET")
            .env_remove("METACENTER_CLUSTER_INSECURE")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("log file"));
        let p = Process {
            child: cmd.spawn().expect("start metacenter"),
            base: format!("http://{api}"),
            peer,
        };
        let ready = || async {
            let r = client().get(format!("{}/ready", p.base)).send().await;
            r.ok().filter(|r| r.status() == StatusCode::OK).map(|_| ())
        };
        until("the node ready", ready).await;
        p
    }

    /// SIGTERM, then waits (with a deadline) for the process to exit.
    pub async fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let exited = || {
            let done = self.child.try_wait().expect("wait").is_some();
            async move { done.then_some(()) }
        };
        until("the node to exit on SIGTERM", exited).await;
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
