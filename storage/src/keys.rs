//! Order-preserving keys of the state-machine keyspaces.
//!
//! Every key starts with a one-byte keyspace prefix. Integers are big-endian so that
//! byte order is numeric order; variable-length strings are followed by a 0x00
//! separator (strings never contain NUL: the edge rejects them and apply re-checks),
//! so that a prefix scan over `prefix + string + 0x00` finds exactly one object.

/// Keyspace: state-machine bookkeeping (`last_applied`, revision counter).
pub const KS_SYS: u8 = 0x01;
/// Keyspace: metadata objects, `hash` -> [`crate::MetaObject`] header.
pub const KS_META_OBJ: u8 = 0x10;
/// Keyspace: metadata properties, `hash 0x00 property` -> value.
pub const KS_META_PROP: u8 = 0x11;

/// Keyspace: CID secondary index, `cid 0x00 hash` -> property name (`poster`/`backdrop`).
pub const KS_META_CID: u8 = 0x12;
/// Keyspace: registered services, `name` -> service entry.
pub const KS_SERVICE: u8 = 0x20;
/// Keyspace: services by deregistration deadline, `last heartbeat + deregisterAfterMs BE,
/// name` -> () (only services registered with `deregisterAfterMs`; for the reap).
pub const KS_SERVICE_DUE: u8 = 0x21;

/// Keyspace: load per engine, `cluster 0x00 ip` -> engine counters.
pub const KS_LOAD_ENGINE: u8 = 0x30;
/// Keyspace: in-flight load requests, `request_id` -> request record.
pub const KS_LOAD_REQ: u8 = 0x31;
/// Keyspace: requests by age, `created_ns BE, request_id` -> () (for expiry).
pub const KS_LOAD_REQ_AGE: u8 = 0x32;
/// Keyspace: tombstones of requests finished before they were added, `request_id` -> tombstone.
pub const KS_LOAD_TOMB: u8 = 0x33;
/// Keyspace: tombstones by age, `created_ns BE, request_id` -> () (for expiry).
pub const KS_LOAD_TOMB_AGE: u8 = 0x34;

/// Keyspace of metric points stored one per key, before chunks; a store holding any is
/// refused at open.
pub const KS_POINT_V0: u8 = 0x40;
/// Keyspace: metric point chunks, `tenant 0x00 run(16) metric 0x00` + the chunk module's
/// key suffix -> the points of one series from one command.
pub const KS_POINT: u8 = 0x43;
/// Keyspace: running aggregates per series, `tenant 0x00 run(16) metric` -> aggregates.
pub const KS_SERIES: u8 = 0x41;
/// Keyspace: system metric points, `tenant 0x00 run(16) time(8) index(8) pos(4)` -> point.
pub const KS_SYSPOINT: u8 = 0x42;

/// Keyspace: metric metadata catalog, `tenant 0x00 metric` -> [`crate::MetricDoc`].
pub const KS_CATALOG: u8 = 0x50;
/// Keyspace: per-tenant catalog bookkeeping, `tenant` -> [`crate::SyncRecord`].
pub const KS_CATALOG_SYNC: u8 = 0x51;
/// Keyspace: number of catalog documents per tenant, `tenant` -> u64.
pub const KS_CATALOG_COUNT: u8 = 0x52;

/// Key of the raft index of the last change to the metric metadata catalog.
pub fn sys_catalog_changed() -> Vec<u8> {
    vec![KS_SYS, b'c']
}

/// Key of the redo record of the last apply written key by key (see the redo module).
/// Local bookkeeping of one node: never part of a snapshot.
pub fn sys_redo() -> Vec<u8> {
    vec![KS_SYS, b'w']
}

/// Key of the replicated sync settings.
pub fn sys_sync_settings() -> Vec<u8> {
    vec![KS_SYS, b'y']
}

/// `ks tenant 0x00`: the prefix of everything a tenant owns in keyspace `ks`.
pub fn tenant_prefix(ks: u8, tenant: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + tenant.len());
    k.push(ks);
    k.extend_from_slice(tenant.as_bytes());
    k.push(0);
    k
}

/// Key of one catalog document.
pub fn catalog(tenant: &str, metric: &str) -> Vec<u8> {
    let mut k = tenant_prefix(KS_CATALOG, tenant);
    k.extend_from_slice(metric.as_bytes());
    k
}

/// Key of a tenant's record in a per-tenant keyspace (`ks tenant`, no separator).
pub fn tenant_key(ks: u8, tenant: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + tenant.len());
    k.push(ks);
    k.extend_from_slice(tenant.as_bytes());
    k
}

/// Key of the raft applied state (opaque bytes owned by the raft crate).
pub fn sys_applied() -> Vec<u8> {
    vec![KS_SYS, b'a']
}

/// Key of the global revision counter (bumped once per successful mutation).
pub fn sys_revision() -> Vec<u8> {
    vec![KS_SYS, b'r']
}

/// Key of the raft index of the last metadata object deletion (for watches of absent objects).
pub fn sys_meta_deleted() -> Vec<u8> {
    vec![KS_SYS, b'm']
}

/// Key of the number of metadata objects (kept by apply; `/status` reads it).
pub fn sys_meta_count() -> Vec<u8> {
    vec![KS_SYS, b'n']
}

/// Key of the raft index of the last change to any service.
pub fn sys_services_index() -> Vec<u8> {
    vec![KS_SYS, b's']
}

/// Prefix of the CID index entries of one CID.
pub fn meta_cid_prefix(cid: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + cid.len());
    k.push(KS_META_CID);
    k.extend_from_slice(cid.as_bytes());
    k.push(0);
    k
}

/// Key of one CID index entry: `cid 0x00 hash 0x00 property`, so that the same CID
/// under `poster` and `backdrop` of one object are two entries.
pub fn meta_cid(cid: &str, hash: &str, prop: &str) -> Vec<u8> {
    let mut k = meta_cid_prefix(cid);
    k.extend_from_slice(hash.as_bytes());
    k.push(0);
    k.extend_from_slice(prop.as_bytes());
    k
}

/// Key of a registered service.
pub fn service(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + name.len());
    k.push(KS_SERVICE);
    k.extend_from_slice(name.as_bytes());
    k
}

/// Key of a service's entry in the deadline index.
pub fn service_due(due_ms: u64, name: &str) -> Vec<u8> {
    by_age(KS_SERVICE_DUE, due_ms, name)
}

/// Key of one engine of a load cluster.
pub fn load_engine(cluster: &str, ip: &str) -> Vec<u8> {
    let mut k = load_cluster_prefix(cluster);
    k.extend_from_slice(ip.as_bytes());
    k
}

/// Prefix of all engines of a load cluster.
pub fn load_cluster_prefix(cluster: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + cluster.len());
    k.push(KS_LOAD_ENGINE);
    k.extend_from_slice(cluster.as_bytes());
    k.push(0);
    k
}

/// Key of a string id in keyspace `ks`.
pub fn by_id(ks: u8, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + id.len());
    k.push(ks);
    k.extend_from_slice(id.as_bytes());
    k
}

/// Key of an age index entry in keyspace `ks`: time first, so a range scan finds the oldest.
pub fn by_age(ks: u8, time_ns: u64, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + id.len());
    k.push(ks);
    k.extend_from_slice(&time_ns.to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

/// The id of a [`by_age`] key.
pub fn by_age_id(key: &[u8]) -> String {
    String::from_utf8_lossy(key.get(9..).unwrap_or_default()).into_owned()
}

/// Order-preserving encoding of a signed time (unix ns).
pub fn time_key(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

/// Inverse of [`time_key`].
pub fn parse_time_key(b: &[u8]) -> i64 {
    let raw = u64::from_be_bytes(b[..8].try_into().expect("8 time bytes"));
    (raw ^ (1 << 63)) as i64
}

/// `ks tenant 0x00 run` — prefix of everything of one run in keyspace `ks`.
pub fn run_prefix(ks: u8, tenant: &str, run: &[u8; 16]) -> Vec<u8> {
    let mut k = Vec::with_capacity(18 + tenant.len());
    k.push(ks);
    k.extend_from_slice(tenant.as_bytes());
    k.push(0);
    k.extend_from_slice(run);
    k
}

/// Key of a series' aggregates.
pub fn series(tenant: &str, run: &[u8; 16], metric: &str) -> Vec<u8> {
    let mut k = run_prefix(KS_SERIES, tenant, run);
    k.extend_from_slice(metric.as_bytes());
    k
}

/// Prefix of the point chunks of one series.
pub fn point_series_prefix(tenant: &str, run: &[u8; 16], metric: &str) -> Vec<u8> {
    let mut k = run_prefix(KS_POINT, tenant, run);
    k.extend_from_slice(metric.as_bytes());
    k.push(0);
    k
}

/// Appends a system point's position to a run prefix: time, revision and
/// position, each bit-inverted so that key order is newest first. Forward scans then
/// read history newest first (sled 0.34's reverse iterator can panic near key-byte
/// boundaries, so nothing here iterates backwards).
pub fn point_suffix(prefix: &[u8], time_ns: i64, rev: u64, pos: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 20);
    k.extend_from_slice(prefix);
    k.extend_from_slice(&desc_time(time_ns));
    k.extend(rev.to_be_bytes().iter().map(|b| !b));
    k.extend(pos.to_be_bytes().iter().map(|b| !b));
    k
}

/// Newest-first encoding of a time: [`time_key`] with every bit inverted.
pub fn desc_time(t: i64) -> [u8; 8] {
    let mut k = time_key(t);
    k.iter_mut().for_each(|b| *b = !*b);
    k
}

/// Inverse of [`desc_time`].
pub fn parse_desc_time(b: &[u8]) -> i64 {
    let mut k: [u8; 8] = b[..8].try_into().expect("8 time bytes");
    k.iter_mut().for_each(|b| *b = !*b);
    parse_time_key(&k)
}

/// The smallest key greater than every key that starts with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    while let Some(last) = k.pop() {
        if last < 0xff {
            k.push(last + 1);
            return k;
        }
    }
    vec![0xff; prefix.len() + 1]
}

/// Key of a metadata object header.
pub fn meta_obj(hash: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + hash.len());
    k.push(KS_META_OBJ);
    k.extend_from_slice(hash.as_bytes());
    k
}

/// Prefix of all properties of one object.
pub fn meta_prop_prefix(hash: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + hash.len());
    k.push(KS_META_PROP);
    k.extend_from_slice(hash.as_bytes());
    k.push(0);
    k
}

/// Key of one property.
pub fn meta_prop(hash: &str, prop: &str) -> Vec<u8> {
    let mut k = meta_prop_prefix(hash);
    k.extend_from_slice(prop.as_bytes());
    k
}

/// Splits the property name off a key made by [`meta_prop`].
pub fn meta_prop_name<'a>(hash: &str, key: &'a [u8]) -> Option<&'a str> {
    let rest = key.get(2 + hash.len()..)?;
    std::str::from_utf8(rest).ok()
}

/// Encodes a log index as an order-preserving key.
pub fn log_index(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// Decodes a key made by [`log_index`].
pub fn parse_log_index(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_age_id_reads_back_the_id() {
        assert_eq!(by_age_id(&by_age(KS_SERVICE_DUE, 42, "svc-é")), "svc-é");
        assert_eq!(by_age_id(&by_age(KS_SERVICE_DUE, u64::MAX, "")), "");
    }

    #[test]
    fn log_keys_sort_numerically() {
        let mut ks: Vec<[u8; 8]> = [300u64, 2, 70000, 1]
            .iter()
            .map(|i| log_index(*i))
            .collect();
        ks.sort();
        let back: Vec<u64> = ks.iter().map(|k| parse_log_index(k).unwrap()).collect();
        assert_eq!(back, vec![1, 2, 300, 70000]);
    }

    #[test]
    fn prop_prefix_does_not_match_longer_hash() {
        let p = meta_prop_prefix("ab");
        assert!(meta_prop("ab", "x").starts_with(&p));
        assert!(!meta_prop("abc", "x").starts_with(&p));
        assert_eq!(meta_prop_name("ab", &meta_prop("ab", "x/y")), Some("x/y"));
    }

    #[test]
    fn point_keys_sort_newest_first() {
        let p = b"p".to_vec();
        let mut ks = [
            point_suffix(&p, -5, 1, 0),
            point_suffix(&p, 100, 1, 0),
            point_suffix(&p, 100, 2, 0),
            point_suffix(&p, 0, 9, 9),
        ];
        ks.sort();
        let times: Vec<i64> = ks.iter().map(|k| parse_desc_time(&k[1..])).collect();
        assert_eq!(times, vec![100, 100, 0, -5]);
        assert!(ks[0] > point_suffix(&p, 100, 3, 0) && ks[0] < point_suffix(&p, 99, 0, 0));
        assert_eq!(prefix_end(b"a\x00"), b"a\x01".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
    }

    #[test]
    fn keyspaces_do_not_overlap() {
        assert_ne!(meta_obj("a")[0], meta_prop("a", "b")[0]);
        let sys = [
            sys_applied(),
            sys_revision(),
            sys_meta_deleted(),
            sys_meta_count(),
            sys_services_index(),
            sys_catalog_changed(),
            sys_sync_settings(),
            sys_redo(),
        ];
        let distinct: std::collections::BTreeSet<_> = sys.iter().collect();
        assert_eq!(distinct.len(), sys.len());
    }
}
