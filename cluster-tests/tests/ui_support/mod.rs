//! What the browser tests of the web console share: finding Chromium and
//! chromedriver (or a loud SKIPPED line), a chromedriver in its own process group and a
//! headless session on it, screenshots under `target/ui-screenshots/`, polling the page
//! with a deadline, a one-node cluster started directly, and writing through the API.

#![allow(dead_code)] // each test file uses its own share of these

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cluster_tests::process::{binary_path, free_ports, DEFAULT_SETTINGS};
use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};

/// How long a page may take to show what a test waits for.
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// The first executable of `names` on `PATH` (or the path in `env`, when set).
pub fn find(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// chromedriver and a Chromium it can drive, or a loud SKIPPED line.
pub fn browser_or_skip(test: &str) -> Option<PathBuf> {
    let driver = find("CHROMEDRIVER", &["chromedriver", "chromium-driver"]);
    let chrome = find("CHROME", &["chromium", "chromium-browser", "google-chrome"]);
    if driver.is_none() || chrome.is_none() {
        eprintln!(
            "\n*** SKIPPED {test}: no Chromium/chromedriver found (install Debian's \
             `chromium` and `chromium-driver`, or set CHROME and CHROMEDRIVER) ***\n"
        );
    }
    chrome.and(driver)
}

/// A chromedriver process in a process group of its own, so that dropping it ends
/// the browsers it started too.
pub struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    pub async fn start(exe: &PathBuf) -> Driver {
        use std::os::unix::process::CommandExt;
        let port = free_ports(1).expect("a free port")[0];
        let child = Command::new(exe)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("starting chromedriver");
        let d = Driver { child, port };
        let url = format!("http://127.0.0.1:{port}/status");
        let http = reqwest::Client::new();
        cluster_tests::poll::until("chromedriver answers", PAGE_TIMEOUT, || {
            let req = http.get(&url).send();
            async move { req.await.ok().filter(|r| r.status().is_success()) }
        })
        .await;
        d
    }

    pub async fn browser(&self) -> Client {
        let mut caps = serde_json::Map::new();
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1400,1000",
        ];
        caps.insert("goog:chromeOptions".into(), json!({ "args": args }));
        if let Some(chrome) = std::env::var_os("CHROME") {
            let bin = chrome.to_string_lossy().into_owned();
            caps["goog:chromeOptions"]["binary"] = json!(bin);
        }
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a WebDriver session with headless Chromium")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(-(self.child.id() as i32));
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Where screenshots go: `target/ui-screenshots/` of the workspace.
pub fn shots_dir() -> PathBuf {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| workspace.join(d))
        .unwrap_or_else(|| workspace.join("target"));
    let dir = target.join("ui-screenshots");
    std::fs::create_dir_all(&dir).expect("creating target/ui-screenshots");
    dir
}

pub async fn shot(c: &Client, name: &str) {
    match c.screenshot().await {
        Ok(png) => std::fs::write(shots_dir().join(format!("{name}.png")), png)
            .expect("writing a screenshot"),
        Err(e) => eprintln!("no screenshot {name}: {e}"),
    }
}

/// Polls `script` (a function body that returns a value) until it returns something
/// other than null or false; on the deadline, screenshots the page and panics.
pub async fn js_until(c: &Client, what: &str, timeout: Duration, script: &str) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        match c.execute(script, vec![]).await {
            Ok(v) if !v.is_null() && v != json!(false) => return v,
            Ok(_) => {}
            Err(e) => eprintln!("{what}: {e}"),
        }
        if Instant::now() > deadline {
            let name = format!(
                "FAILED-{}",
                what.replace(|ch: char| !ch.is_alphanumeric(), "-")
            );
            shot(c, &name).await;
            let text = c.execute("return document.body.innerText", vec![]).await;
            panic!("timed out after {timeout:?} waiting for: {what}; page: {text:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn goto(c: &Client, api: &str, route: &str) {
    c.goto(&format!("http://{api}/ui/#/{route}"))
        .await
        .expect("navigating");
}

/// `POST`/`PUT` a JSON body; panics unless 2xx.
pub async fn send(http: &reqwest::Client, method: reqwest::Method, url: String, body: Value) {
    let resp = http.request(method, &url).json(&body).send().await;
    let resp = resp.unwrap_or_else(|e| panic!("{url}: {e}"));
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
}

pub async fn write_points(http: &reqwest::Client, api: &str, items: Vec<Value>) {
    let url = format!("http://{api}/api/v1/metrics/batch");
    send(
        http,
        reqwest::Method::POST,
        url,
        json!({ "metrics": items }),
    )
    .await;
}

/// The count of `selector` on the page, as a script for [`js_until`].
pub fn count_at_least(selector: &str, n: usize) -> String {
    format!("return document.querySelectorAll(\"{selector}\").length >= {n}")
}

/// A one-node cluster, with `auth.tokens` when given, started directly (the process
/// cluster's start-up reads guarded routes without a token).
pub struct OneNode {
    child: Child,
    pub api: String,
    _dir: tempfile::TempDir,
}

impl OneNode {
    pub async fn start(tokens: Option<&str>) -> OneNode {
        let dir = tempfile::tempdir().expect("tempdir");
        let ports = free_ports(2).expect("ports");
        let (api, peer) = (
            format!("127.0.0.1:{}", ports[0]),
            format!("127.0.0.1:{}", ports[1]),
        );
        let mut cmd = Command::new(binary_path().expect("the metacenter binary"));
        cmd.args([
            "run",
            "--id",
            "1",
            "--bootstrap",
            "--listen",
            &api,
            "--peer-listen",
            &peer,
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("METACENTER_CLUSTER_SECRET", "ui-test-secret")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        if let Some(t) = tokens {
            cmd.env("METACENTER_AUTH_TOKENS", t);
        }
        for (k, v) in DEFAULT_SETTINGS {
            cmd.args(["--set", &format!("{k}={v}")]);
        }
        let node = OneNode {
            child: cmd.spawn().expect("starting metacenter"),
            api,
            _dir: dir,
        };
        let (http, url) = (reqwest::Client::new(), format!("http://{}/ready", node.api));
        cluster_tests::poll::until("the node is ready", PAGE_TIMEOUT, || {
            let req = http.get(&url).send();
            async move { req.await.ok().filter(|r| r.status().is_success()) }
        })
        .await;
        node
    }
}

impl Drop for OneNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
