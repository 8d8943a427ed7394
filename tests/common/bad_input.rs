//! Refused requests as data: each area's bad input is a table of rows
//! `(method, path, headers, body, expected status, expected body fragments)`, and
//! [`run`] sends every row and reports every row that was not refused as expected,
//! with its index and the actual answer, not only the first.
//!
//! An area adds what its refusals have in common through [`run_with`]: a `shape`
//! check of each answer (its error envelope, an unchanged `X-Applied-Index`) and an
//! `after` check run after each row (the area's state is what it was).

use std::fmt::Write as _;
use std::future::Future;

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::client;
use super::reply::Reply;

/// The methods, as constants a table can name without cloning.
pub const GET: Method = Method::GET;
pub const PUT: Method = Method::PUT;
pub const POST: Method = Method::POST;
pub const PATCH: Method = Method::PATCH;
pub const DELETE: Method = Method::DELETE;

/// A request body.
#[derive(Clone, Debug)]
pub enum Body {
    /// No body.
    None,
    /// Bytes sent as they are, with no content type.
    Raw(Vec<u8>),
    /// Bytes sent as they are, with `Content-Type: application/json`.
    Json(Vec<u8>),
}

/// No body.
pub const NO_BODY: Body = Body::None;

/// No extra headers.
pub const NO_HEADERS: &[(&str, &str)] = &[];

/// `v` serialised, with the JSON content type (what `RequestBuilder::json` sends).
pub fn json(v: Value) -> Body {
    Body::Json(serde_json::to_vec(&v).expect("JSON"))
}

/// `text` as it is (malformed JSON, say), with the JSON content type.
pub fn json_text(text: impl AsRef<[u8]>) -> Body {
    Body::Json(text.as_ref().to_vec())
}

/// `bytes` as they are, with no content type.
pub fn raw(bytes: impl AsRef<[u8]>) -> Body {
    Body::Raw(bytes.as_ref().to_vec())
}

/// The status a row must be answered with.
#[derive(Clone, Copy, Debug)]
pub enum Want {
    Status(StatusCode),
    /// Any 4xx (a route that may be refused in more than one way).
    ClientError,
}

impl From<u16> for Want {
    fn from(s: u16) -> Want {
        Want::Status(StatusCode::from_u16(s).expect("a status"))
    }
}

impl From<StatusCode> for Want {
    fn from(s: StatusCode) -> Want {
        Want::Status(s)
    }
}

/// Any 4xx.
pub const ANY_4XX: Want = Want::ClientError;

impl Want {
    fn admits(self, s: StatusCode) -> bool {
        match self {
            Want::Status(w) => w == s,
            Want::ClientError => s.is_client_error(),
        }
    }
}

/// What the body must hold: one fragment or several.
pub trait Fragments {
    fn fragments(self) -> Vec<String>;
}

impl Fragments for &str {
    fn fragments(self) -> Vec<String> {
        vec![self.to_string()]
    }
}

impl Fragments for String {
    fn fragments(self) -> Vec<String> {
        vec![self]
    }
}

impl Fragments for &[&str] {
    fn fragments(self) -> Vec<String> {
        self.iter().map(|s| s.to_string()).collect()
    }
}

impl<const N: usize> Fragments for [&str; N] {
    fn fragments(self) -> Vec<String> {
        self.iter().map(|s| s.to_string()).collect()
    }
}

/// One row: a request and how it must be refused.
#[derive(Clone, Debug)]
pub struct Case {
    pub method: Method,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Body,
    pub want: Want,
    /// Each must be in the body's text.
    pub fragments: Vec<String>,
}

/// A row: `method path` with `headers` and `body`, answered `want` with a body that
/// holds `fragments`.
pub fn row(
    method: Method,
    path: impl Into<String>,
    headers: &[(&str, &str)],
    body: Body,
    want: impl Into<Want>,
    fragments: impl Fragments,
) -> Case {
    Case {
        method,
        path: path.into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body,
        want: want.into(),
        fragments: fragments.fragments(),
    }
}

impl Case {
    /// The first fragment ("" when there is none): the needle of a one-needle shape.
    pub fn needle(&self) -> &str {
        self.fragments.first().map_or("", String::as_str)
    }

    /// The fragments as `&str`s.
    pub fn needles(&self) -> Vec<&str> {
        self.fragments.iter().map(String::as_str).collect()
    }

    /// The status this row wants; for an [`ANY_4XX`] row, `r`'s.
    pub fn status(&self, r: &Reply) -> StatusCode {
        match self.want {
            Want::Status(s) => s,
            Want::ClientError => r.status,
        }
    }

    /// The header `name` of the row, if it has one.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut h = self.headers.iter();
        h.find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn describe(&self) -> String {
        let path: String = self.path.chars().take(70).collect();
        let cut = if path.len() < self.path.len() {
            "..."
        } else {
            ""
        };
        let mut s = format!("{} {path}{cut}", self.method);
        for (k, v) in &self.headers {
            let v: String = v.chars().take(20).collect();
            let _ = write!(s, " [{k}: {v}]");
        }
        s
    }
}

/// Where requests go: an API or a peer base URL (`http://host:port`).
pub trait Target {
    fn base(&self) -> &str;
}

impl Target for super::Node {
    fn base(&self) -> &str {
        &self.base
    }
}

impl Target for str {
    fn base(&self) -> &str {
        self
    }
}

impl Target for String {
    fn base(&self) -> &str {
        self
    }
}

/// Sends one row.
pub async fn send(to: &(impl Target + ?Sized), case: &Case) -> Reply {
    let mut req = client().request(case.method.clone(), format!("{}{}", to.base(), case.path));
    for (k, v) in &case.headers {
        req = req.header(k, v);
    }
    req = match &case.body {
        Body::None => req,
        Body::Raw(b) => req.body(b.clone()),
        Body::Json(b) => req.header(CONTENT_TYPE, "application/json").body(b.clone()),
    };
    Reply::read(req.send().await.expect("HTTP answer")).await
}

/// Sends every row; each must be answered with its status and hold its fragments.
pub async fn run(to: &(impl Target + ?Sized), table: &[Case]) {
    run_shaped(to, table, |_, _| Ok(())).await
}

/// [`run`], each answer also passing `shape`.
pub async fn run_shaped<S>(to: &(impl Target + ?Sized), table: &[Case], shape: S)
where
    S: Fn(&Case, &Reply) -> Result<(), String>,
{
    run_with(to, table, shape, || async { Ok(()) }).await
}

/// [`run_shaped`], and `after` checked after each row.
pub async fn run_with<S, A, F>(to: &(impl Target + ?Sized), table: &[Case], shape: S, mut after: A)
where
    S: Fn(&Case, &Reply) -> Result<(), String>,
    A: FnMut() -> F,
    F: Future<Output = Result<(), String>>,
{
    assert!(!table.is_empty(), "an empty table");
    let mut failed = Vec::new();
    for (i, case) in table.iter().enumerate() {
        let r = send(to, case).await;
        let mut why = Vec::new();
        if !case.want.admits(r.status) {
            why.push(format!("status {}, want {:?}", r.status, case.want));
        }
        let text = r.lossy();
        for f in &case.fragments {
            if !text.contains(f.as_str()) {
                why.push(format!("no {f:?} in the body"));
            }
        }
        if let Err(e) = shape(case, &r) {
            why.push(e);
        }
        if let Err(e) = after().await {
            why.push(format!("after it: {e}"));
        }
        if !why.is_empty() {
            let body: String = text.chars().take(300).collect();
            failed.push(format!(
                "row {i}: {}\n    answer: {} {body}\n    {}",
                case.describe(),
                r.status,
                why.join("\n    ")
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} rows failed:\n{}",
        failed.len(),
        table.len(),
        failed.join("\n")
    );
}
