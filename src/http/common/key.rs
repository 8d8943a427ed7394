//! Key checks of the meta-core areas: a hash id, property name, set member, service
//! name or CID is 1 to `limits.max_key_bytes` bytes without NUL, checked at the edge
//! before anything is proposed.

use super::json_error::JsonError;
use crate::config::EdgeLimits;

/// Checks a hash id, property name or set member against the storage limits.
pub fn check_key(lim: &EdgeLimits, what: &str, s: &str) -> Result<(), JsonError> {
    if s.is_empty() {
        return Err(JsonError::bad_request(format!("{what} must not be empty")));
    }
    if s.len() > lim.key {
        return Err(JsonError::bad_request(format!(
            "{what} longer than {} bytes",
            lim.key
        )));
    }
    if s.contains('\0') {
        return Err(JsonError::bad_request(format!(
            "{what} must not contain NUL"
        )));
    }
    Ok(())
}
