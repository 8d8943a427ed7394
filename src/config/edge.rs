//! [`EdgeLimits`]: the request sizes checked at the HTTP edge, at most the storage ceilings.

/// Sizes a request is checked against at the edge, before a command is proposed.
/// `key`, `value` and `properties` may only be lower than the storage ceilings
/// (`metacenter_storage::Limits`), which apply enforces the same on every node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeLimits {
    /// Longest hash id, property name, set member, service name (bytes).
    pub key: usize,
    /// Longest property value or service record (bytes).
    pub value: usize,
    /// Most properties one metadata object may hold.
    pub properties: usize,
    /// Largest metadata object: its property names and values together (bytes).
    pub object: usize,
    /// Largest `metadata` object of one metric point, as JSON (bytes).
    pub point_metadata: usize,
    /// Largest WebSocket message (and frame) a client may send (bytes).
    pub ws_message: usize,
    /// Most metric names one stream `subscribe` may name.
    pub subscribe_metrics: usize,
}

impl Default for EdgeLimits {
    /// The storage ceilings, 4 MiB objects, 16 KiB of point metadata, 64 KiB WebSocket messages and
    /// 1000 names per subscribe (the defaults of `KEYS`).
    fn default() -> Self {
        use metacenter_storage::Limits;
        EdgeLimits {
            key: Limits::MAX_KEY,
            value: Limits::MAX_VALUE,
            properties: Limits::MAX_PROPS,
            object: 4 << 20,
            point_metadata: 16 * 1024,
            ws_message: 64 * 1024,
            subscribe_metrics: 1000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_ones() {
        assert_eq!(crate::Config::default().limits, EdgeLimits::default());
    }
}
