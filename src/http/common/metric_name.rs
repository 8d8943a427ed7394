//! The one metric-name rule: 1 to [`MAX_BYTES`] bytes, without NUL. Points are written
//! under names that pass it, and a live stream's `subscribe` names obey it too.

/// Longest metric name, in bytes.
pub const MAX_BYTES: usize = 256;

/// Whether `name` is a valid metric name; else why not.
pub fn check(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_BYTES || name.contains('\0') {
        return Err(format!("must be 1 to {MAX_BYTES} bytes, without NUL"));
    }
    Ok(())
}
