//! Recording histories ([`History`]) and running operations against a live cluster
//! over HTTP ([`Client`], [`execute`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use reqwest::StatusCode;

use super::model::{Op, Ret};

/// The property every checked object holds (`/meta/{key}/v`).
pub const PROP: &str = "v";

/// One recorded event, in real-time order.
#[derive(Clone, Debug)]
pub enum Event {
    Invoke { thread: u64, key: String, op: Op },
    Return { thread: u64, key: String, ret: Ret },
}

/// A concurrent history, appended to by many clients.
#[derive(Debug, Default)]
pub struct History {
    events: Mutex<Vec<Event>>,
    next_thread: AtomicU64,
}

impl History {
    pub fn new() -> History {
        History::default()
    }

    /// A fresh tester thread id.
    pub fn new_thread(&self) -> u64 {
        self.next_thread.fetch_add(1, Ordering::Relaxed)
    }

    fn push(&self, e: Event) {
        self.events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(e);
    }

    /// Records that `thread` invoked `op` on `key` (call before sending the request).
    pub fn invoke(&self, thread: u64, key: &str, op: Op) {
        self.push(Event::Invoke {
            thread,
            key: key.to_string(),
            op,
        });
    }

    /// Records that `thread`'s operation on `key` returned (call after the answer).
    pub fn ret(&self, thread: u64, key: &str, ret: Ret) {
        self.push(Event::Return {
            thread,
            key: key.to_string(),
            ret,
        });
    }

    /// A copy of the events recorded so far.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// The outcome of one HTTP operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A definite answer.
    Done(Ret),
    /// May or may not have taken effect; the reason, for logs.
    Unknown(String),
}

/// An HTTP client suited to histories: no pooled connections (so a failed connect
/// always means "never sent") and a bounded wait per request.
pub fn http_client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .pool_max_idle_per_host(0)
        .build()
}

fn etag_version(resp: &reqwest::Response) -> Option<u64> {
    let tag = resp.headers().get(reqwest::header::ETAG)?.to_str().ok()?;
    tag.trim_start_matches("W/").trim_matches('"').parse().ok()
}

fn transport_error(e: reqwest::Error) -> Outcome {
    if e.is_connect() {
        Outcome::Done(Ret::Rejected)
    } else {
        Outcome::Unknown(e.to_string())
    }
}

/// Classifies a non-success status: 5xx unknown, other statuses a no-op rejection.
fn failed(status: StatusCode) -> Outcome {
    if status.is_server_error() {
        Outcome::Unknown(format!("HTTP {status}"))
    } else {
        Outcome::Done(Ret::Rejected)
    }
}

/// Runs `op` on `key` at the node whose API address is `api`.
pub async fn execute(http: &reqwest::Client, api: &str, key: &str, op: &Op) -> Outcome {
    let url = format!("http://{api}/meta/{key}/{PROP}");
    match op {
        Op::Get => get(http, &format!("{url}?consistency=linearizable")).await,
        Op::Put(v) => match http.put(&url).body(v.clone()).send().await {
            Ok(r) if r.status().is_success() => written(&r, |version| Ret::PutOk { version }),
            Ok(r) => failed(r.status()),
            Err(e) => transport_error(e),
        },
        Op::Cas {
            expected_version,
            value,
        } => {
            let req = http
                .put(&url)
                .header(reqwest::header::IF_MATCH, format!("\"{expected_version}\""))
                .body(value.clone());
            match req.send().await {
                Ok(r) if r.status().is_success() => written(&r, |version| Ret::CasOk { version }),
                Ok(r) if r.status() == StatusCode::PRECONDITION_FAILED => {
                    Outcome::Done(Ret::CasFailed)
                }
                Ok(r) => failed(r.status()),
                Err(e) => transport_error(e),
            }
        }
    }
}

fn written(resp: &reqwest::Response, ret: impl FnOnce(u64) -> Ret) -> Outcome {
    match etag_version(resp) {
        Some(v) => Outcome::Done(ret(v)),
        None => Outcome::Unknown("write acknowledged without an ETag".into()),
    }
}

async fn get(http: &reqwest::Client, url: &str) -> Outcome {
    let resp = match http.get(url).send().await {
        Ok(r) => r,
        Err(e) => return transport_error(e),
    };
    let status = resp.status();
    if status == StatusCode::NOT_FOUND {
        return Outcome::Done(Ret::GetOk {
            value: None,
            version: 0,
        });
    }
    if !status.is_success() {
        return failed(status);
    }
    let Some(version) = etag_version(&resp) else {
        return Outcome::Unknown("read answered without an ETag".into());
    };
    match resp.text().await {
        Ok(value) => Outcome::Done(Ret::GetOk {
            value: Some(value),
            version,
        }),
        Err(e) => Outcome::Unknown(format!("reading the body: {e}")),
    }
}

/// One logical client: records its operations in a shared history and moves to a fresh
/// thread id after an operation of unknown outcome.
pub struct Client<'h> {
    history: &'h History,
    thread: u64,
}

impl<'h> Client<'h> {
    pub fn new(history: &'h History) -> Client<'h> {
        Client {
            thread: history.new_thread(),
            history,
        }
    }

    /// Runs and records `op`; returns the outcome.
    pub async fn run(&mut self, http: &reqwest::Client, api: &str, key: &str, op: Op) -> Outcome {
        self.history.invoke(self.thread, key, op.clone());
        let out = execute(http, api, key, &op).await;
        match &out {
            Outcome::Done(ret) => self.history.ret(self.thread, key, ret.clone()),
            Outcome::Unknown(_) => self.thread = self.history.new_thread(),
        }
        out
    }
}
