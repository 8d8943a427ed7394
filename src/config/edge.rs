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
    /// Largest `metadata` object of one metric point, as JSON (bytes).
    pub point_metadata: usize,
}

impl Default for EdgeLimits {
    /// The storage ceilings, and 16 KiB of point metadata.
    fn default() -> Self {
        use metacenter_storage::Limits;
        EdgeLimits {
            key: Limits::MAX_KEY,
            value: Limits::MAX_VALUE,
            properties: Limits::MAX_PROPS,
            point_metadata: 16 * 1024,
        }
    }
}
