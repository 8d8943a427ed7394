//! The node's wall clock, as the client API uses it: the receiving node reads the time
//! once and stamps it into the command it proposes (apply never reads a clock), and
//! answers write stored times as RFC 3339 text. Monotonic time (timeouts, liveness)
//! uses `std::time::Instant` where it is needed and is not here.

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, Utc};

/// Unix nanoseconds now (0 for a clock before 1970).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Unix milliseconds now (0 for a clock before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Unix nanoseconds as RFC 3339 UTC text with 0, 3, 6 or 9 fractional digits, the
/// fewest that hold the time (`2024-01-02T03:04:05.500Z`), as the Metric Service
/// writes times.
pub fn rfc3339(ns: i64) -> String {
    DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Unix milliseconds as RFC 3339 UTC text with milliseconds
/// (`2024-01-02T03:04:05.500Z`), as meta-core writes times.
pub fn rfc3339_ms(ms: u64) -> String {
    DateTime::from_timestamp_millis(ms as i64)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Now as RFC 3339 UTC text with milliseconds, as [`rfc3339_ms`] writes it.
pub fn now_rfc3339_ms() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(rfc3339(1_500_000_000), "1970-01-01T00:00:01.500Z");
        assert_eq!(rfc3339(1_000_000_001), "1970-01-01T00:00:01.000000001Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_ms(1_500), "1970-01-01T00:00:01.500Z");
        let (before, now, after) = (now_ms(), now_rfc3339_ms(), now_ms());
        assert!(
            (rfc3339_ms(before)..=rfc3339_ms(after)).contains(&now),
            "{now}"
        );
        assert!(now_ns() / 1_000_000 >= before);
    }
}
