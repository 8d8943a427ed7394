//! Recorded client histories and a real linearizability check.
//!
//! Clients run [`Op`]s (put, get, compare-and-set) against single-property metadata
//! objects of a live cluster and record, in real-time order, when each operation was
//! invoked and what it returned ([`History`]). [`check`] then verifies the history of
//! every key separately (linearizability is compositional): first a few necessary
//! conditions that name the offending operations (a read of a version must return the
//! value written with it; no operation sees a version older than one returned before it
//! began), then stateright's
//! [`LinearizabilityTester`](stateright::semantics::LinearizabilityTester) against the
//! sequential model [`KeySpec`].
//!
//! Outcomes map to the history like this:
//! - a definite answer (2xx, 404 on a read, 412 on a CAS) is a return;
//! - a definite rejection that cannot have changed anything (other 4xx, or a connection
//!   that was never established) is returned as [`Ret::Rejected`], a no-op;
//! - a timeout, 5xx or a connection that broke after the request was sent leaves the
//!   operation invoked without a return: it may or may not have taken effect, and the
//!   model considers both. The client then continues under a fresh thread id, since a
//!   thread can have only one operation in flight.
//!
//! Versions are a global revision shared by all keys, so the model cannot predict their
//! values: it accepts any version greater than the key's current one and remembers it;
//! reads must then return exactly the current value and version.
//!
//! The parts:
//! - `model.rs`: [`Op`], [`Ret`] and the sequential model [`KeySpec`];
//! - `history.rs`: recorded [`History`]s and the HTTP [`Client`] that appends to them;
//! - `checker.rs`: [`check`], the per-key search and its [`KeyReport`]s;
//! - `tests.rs`: the unit tests.

mod checker;
mod history;
mod model;
#[cfg(test)]
mod tests;

pub use checker::{check, check_key, describe, KeyReport, Verdict, SEARCH_MAX_EVENTS};
pub use history::{execute, http_client, Client, Event, History, Outcome, PROP};
pub use model::{Invocation, KeySpec, Op, Ret, State, Version};
