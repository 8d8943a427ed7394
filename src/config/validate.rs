//! The start-up checks across settings ([`Config::validate`]), and whether a listen
//! address is loopback-only.

use super::{Config, ConfigError};

impl Config {
    /// Cross-field checks made before starting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, value: String, why: &str| ConfigError::Invalid {
            key: key.into(),
            value,
            why: why.into(),
        };
        if self.id == 0 {
            return Err(invalid("node.id", "0".into(), "must be > 0"));
        }
        if self.election_min_ms <= self.heartbeat_ms || self.election_max_ms <= self.election_min_ms
        {
            return Err(invalid(
                "raft.election_min_ms",
                self.election_min_ms.to_string(),
                "need heartbeat < election_min < election_max",
            ));
        }
        for (key, n) in [
            ("limits.max_ws_message_bytes", self.limits.ws_message),
            (
                "limits.max_subscribe_metrics",
                self.limits.subscribe_metrics,
            ),
            ("limits.max_object_bytes", self.limits.object),
            ("limits.max_large_reads", self.max_large_reads),
        ] {
            if n == 0 {
                return Err(invalid(key, "0".into(), "must be > 0"));
            }
        }
        for (key, d) in [
            ("limits.header_read_timeout_ms", self.header_read_timeout),
            ("limits.body_read_timeout_ms", self.body_read_timeout),
        ] {
            if d.is_zero() {
                return Err(invalid(key, "0".into(), "must be > 0"));
            }
        }
        use metacenter_storage::Limits;
        for (key, v, ceiling) in [
            ("limits.max_key_bytes", self.limits.key, Limits::MAX_KEY),
            (
                "limits.max_value_bytes",
                self.limits.value,
                Limits::MAX_VALUE,
            ),
            (
                "limits.max_properties",
                self.limits.properties,
                Limits::MAX_PROPS,
            ),
        ] {
            // The ceilings are checked again by apply on every node: a node may be
            // stricter at its edge, never looser.
            if v == 0 || v > ceiling {
                let why = format!("must be 1 to {ceiling}");
                return Err(invalid(key, v.to_string(), &why));
            }
        }
        if !(self.snapshot_log_ratio > 0.0 && self.snapshot_log_ratio.is_finite()) {
            let v = self.snapshot_log_ratio.to_string();
            return Err(invalid("raft.snapshot_log_ratio", v, "must be > 0"));
        }
        if self.snapshot_every == 0 {
            return Err(invalid("raft.snapshot_every", "0".into(), "must be > 0"));
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return Err(invalid(
                "log.format",
                self.log_format.clone(),
                "must be text or json",
            ));
        }
        if let Err(why) = crate::search::settings::validate(&self.sync.defaults) {
            return Err(invalid("sync", String::new(), &why));
        }
        // Loopback is no exception: any local process could otherwise rewrite the state
        // through the peer port.
        if self.secret.is_empty() && !self.insecure {
            return Err(invalid(
                "cluster.secret",
                String::new(),
                "every peer listener needs a cluster secret (--cluster-secret or \
                 METACENTER_CLUSTER_SECRET, the same on every member); --insecure serves \
                 raft to anyone who can reach the peer port",
            ));
        }
        Ok(())
    }
}

/// Whether `addr` (host:port) binds only loopback.
pub fn is_loopback(addr: &str) -> bool {
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(h, _)| h)
        .trim_matches(|c| c == '[' || c == ']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_peer_listener_needs_a_secret() {
        let mut c = Config::default();
        for peer in ["0.0.0.0:8090", "127.0.0.1:8090", "localhost:0"] {
            c.set("node.peer_listen", peer).unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("cluster.secret"), "{peer}: {e}");
        }
        c.set("cluster.insecure", "true").unwrap();
        assert!(c.validate().is_ok(), "--insecure allows it");
        c.set("cluster.insecure", "false").unwrap();
        c.set("cluster.secret", "s3cret").unwrap();
        assert!(c.validate().is_ok());
        assert!(is_loopback("127.0.0.1:1") && is_loopback("localhost:1") && is_loopback("[::1]:1"));
    }
}
