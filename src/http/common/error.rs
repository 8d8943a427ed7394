//! The one error type of the client API, [`ApiError`]: an HTTP status, a [`Code`]
//! saying what kind of failure it is, a message for the client and the cause it was
//! made from. Raft and storage failures become an `ApiError` here, once, for every
//! area; a refusal of the shared layer (`(StatusCode, String)`) does too.
//!
//! An `ApiError` has no wire shape of its own: [`super::render`] writes it in each
//! envelope, and each area answers through a thin wrapper that picks its envelope
//! ([`super::json_error::JsonError`], [`super::envelope::EnvelopeError`],
//! [`super::metric_error::MetricError`]).

use std::fmt;

use axum::http::StatusCode;

/// What kind of failure an error is, in the terms of the envelopes that name it
/// beyond the HTTP status (Metadata Center's numeric code and title). Most follow
/// from the status ([`Code::of`]); [`Code::InvalidJson`] is the one that says more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// The request is malformed or was refused as invalid; also any other refusal of
    /// the client's request that has no code of its own (a conflict, a timeout).
    InvalidInput,
    /// The body is not JSON at all (a syntax error or a cut-off body), which Metadata
    /// Center tells apart from JSON of the wrong shape.
    InvalidJson,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    TooLarge,
    /// The node cannot serve now: no leader, raft stopped, or its storage failed.
    Unavailable,
    /// A failure of the node itself, or any other server-side status.
    Internal,
}

impl Code {
    /// The kind a status stands for.
    pub fn of(status: StatusCode) -> Code {
        match status {
            StatusCode::UNAUTHORIZED => Code::Unauthorized,
            StatusCode::FORBIDDEN => Code::Forbidden,
            StatusCode::NOT_FOUND => Code::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => Code::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => Code::TooLarge,
            StatusCode::SERVICE_UNAVAILABLE => Code::Unavailable,
            s if s.is_server_error() => Code::Internal,
            _ => Code::InvalidInput,
        }
    }
}

/// An error of the client API, in no envelope yet.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Code,
    /// What the client is told.
    pub message: String,
    /// What the error was made from, when it was made from another error.
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ApiError {
    /// An error with `status` and the [`Code`] of that status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: Code::of(status),
            message: message.into(),
            source: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// The node's storage failed (disk full, I/O error, damaged data): 503, since the
    /// node cannot serve until an operator acts; other nodes of the cluster can.
    pub fn storage(cause: impl fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "storage failure");
        let message = format!("storage failure: {cause}");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// An internal failure: logged in full, answered generically.
    pub fn internal(cause: impl fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "internal error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }

    /// The same error with another code.
    pub fn with_code(mut self, code: Code) -> ApiError {
        self.code = code;
        self
    }

    /// The same error, made from `source`.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The source, if it is an `E`.
    pub fn source_as<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.source.as_deref()?.downcast_ref()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|s| s as _)
    }
}

/// A refusal of the shared layer (a body not read, no room for a large answer).
impl From<(StatusCode, String)> for ApiError {
    fn from((status, message): (StatusCode, String)) -> Self {
        ApiError::new(status, message)
    }
}

/// Raft's refusals: 503 with the cause as the message (no leader, raft stopped), 400 for
/// a request refused as invalid, and a storage failure as [`ApiError::storage`]. The
/// raft error is kept as the source, from which [`super::render::metric_service`]
/// takes raft's own words.
impl From<metacenter_raft::Error> for ApiError {
    fn from(e: metacenter_raft::Error) -> Self {
        use metacenter_raft::Error as E;
        let unavailable = |m: &str| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, m);
        let err = match &e {
            E::Unavailable(m) | E::Fatal(m) => unavailable(m),
            E::NotLeader { .. } => unavailable("no leader available"),
            E::Invalid(m) => ApiError::bad_request(m.as_str()),
            E::Storage(m) => ApiError::storage(m),
        };
        err.with_source(e)
    }
}

impl From<metacenter_storage::Error> for ApiError {
    fn from(e: metacenter_storage::Error) -> Self {
        ApiError::storage(&e).with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raft_errors_map_once() {
        use metacenter_raft::Error as E;
        let e = ApiError::from(E::Unavailable("no leader available within 10s".into()));
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.code, Code::Unavailable);
        assert_eq!(e.message, "no leader available within 10s");
        assert!(e.source_as::<E>().is_some());
        let e = ApiError::from(E::NotLeader { leader: None });
        assert_eq!(e.message, "no leader available");
        let e = ApiError::from(E::Invalid("node 9 is not a member".into()));
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, Code::InvalidInput)
        );
        let e = ApiError::from(E::Storage("disk full".into()));
        assert_eq!(e.message, "storage failure: disk full");
        assert_eq!(e.code, Code::Unavailable);
    }

    #[test]
    fn storage_errors_keep_their_source() {
        let io = std::io::Error::other("disk gone");
        let e = ApiError::from(metacenter_storage::Error::engine_io("fdatasync", io));
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            e.message,
            "storage failure: storage engine: fdatasync: disk gone"
        );
        let storage = e.source_as::<metacenter_storage::Error>().unwrap();
        let io = std::error::Error::source(storage).unwrap();
        assert_eq!(io.to_string(), "disk gone");
    }

    #[test]
    fn codes_follow_statuses() {
        assert_eq!(Code::of(StatusCode::BAD_REQUEST), Code::InvalidInput);
        assert_eq!(Code::of(StatusCode::REQUEST_TIMEOUT), Code::InvalidInput);
        assert_eq!(Code::of(StatusCode::CONFLICT), Code::InvalidInput);
        assert_eq!(Code::of(StatusCode::PAYLOAD_TOO_LARGE), Code::TooLarge);
        assert_eq!(Code::of(StatusCode::BAD_GATEWAY), Code::Internal);
        assert_eq!(Code::of(StatusCode::SERVICE_UNAVAILABLE), Code::Unavailable);
    }
}
