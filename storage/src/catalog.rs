//! The metric metadata catalog (MIRADOR-CORE): one document per (tenant, metric name)
//! with its type, help, unit and label values, the per-tenant sync bookkeeping (state
//! and status of the last sync), and the replicated sync settings.
//!
//! Documents come from two places: syncs from Prometheus-compatible sources (commands
//! stamped with the leader's time and a per-tenant sync generation) and the points API
//! (a metric name seen for the first time in a tenant). The search index is derived
//! from this keyspace; `sys_catalog_changed` tells it whether it is behind.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::apply::ApplyCtx;
use crate::{codec, keys, Response, Result, Store};

/// Most label values kept per label key of one metric.
pub const MAX_LABEL_VALUES: usize = 32;
/// Most label keys kept per metric.
pub const MAX_LABEL_KEYS: usize = 128;
/// Longest help, unit, type or label text kept (bytes); longer is cut at a char boundary.
pub const MAX_TEXT: usize = 4096;

/// Metric metadata as a sync produced it (grouped by metric name at the leader).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricDocIn {
    pub name: String,
    pub kind: String,
    pub help: String,
    pub unit: String,
    /// Label key -> values seen (at most [`MAX_LABEL_VALUES`] kept).
    pub labels: BTreeMap<String, Vec<String>>,
}

impl MetricDocIn {
    pub(crate) fn size_hint(&self) -> usize {
        let labels: usize = self
            .labels
            .iter()
            .map(|(k, vs)| k.len() + 4 + vs.iter().map(|v| v.len() + 2).sum::<usize>())
            .sum();
        16 + self.name.len() + self.kind.len() + self.help.len() + self.unit.len() + labels
    }
}

/// A catalog document as stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricDoc {
    pub name: String,
    pub kind: String,
    pub help: String,
    pub unit: String,
    pub labels: BTreeMap<String, Vec<String>>,
    /// Generation of the last sync that saw it (0: never seen by a sync).
    pub sync_gen: u64,
    /// Whether points were written under this name.
    pub from_points: bool,
    pub created_ns: i64,
    pub updated_ns: i64,
    pub last_seen_ns: i64,
}

/// How a sync ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SyncOutcome {
    Completed {
        processed: u64,
        added: u64,
        updated: u64,
        duration_ns: u64,
        errors: Vec<String>,
    },
    Failed {
        error: String,
        duration_ns: u64,
    },
}

impl SyncOutcome {
    pub(crate) fn size_hint(&self) -> usize {
        match self {
            SyncOutcome::Completed { errors, .. } => {
                40 + errors.iter().map(|e| e.len() + 2).sum::<usize>()
            }
            SyncOutcome::Failed { error, .. } => 16 + error.len(),
        }
    }
}

/// The replicated sync settings (PUT /api/v1/metrics/sync/config). Durations in ns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncSettings {
    pub enabled: bool,
    /// `full`, `incremental` or `hybrid`.
    pub strategy: String,
    pub interval_ns: u64,
    pub full_sync_interval_ns: u64,
    pub batch_size: u32,
    pub max_retries: u32,
    pub retry_delay_ns: u64,
    pub lookback_ns: u64,
}

/// Per-tenant sync bookkeeping: the state across syncs and the status of the last one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncRecord {
    /// Last generation allocated (0: never synced).
    pub gen: u64,
    /// `never_run`, `running`, `completed` or `failed` (empty means `never_run`).
    pub status: String,
    pub strategy: String,
    pub start_ns: i64,
    pub end_ns: Option<i64>,
    pub processed: u64,
    pub added: u64,
    pub updated: u64,
    pub removed: u64,
    pub errors: Vec<String>,
    pub duration_ns: u64,
    pub last_sync_ns: Option<i64>,
    pub last_full_sync_ns: Option<i64>,
    pub total_syncs: u64,
    pub successful_syncs: u64,
    pub failed_syncs: u64,
    pub last_error: Option<String>,
    pub last_error_ns: Option<i64>,
}

fn cut(s: &str) -> String {
    if s.len() <= MAX_TEXT {
        return s.to_string();
    }
    let mut end = MAX_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Label values capped and sorted, keys capped, so every node stores the same.
fn bounded_labels(labels: &BTreeMap<String, Vec<String>>) -> BTreeMap<String, Vec<String>> {
    labels
        .iter()
        .take(MAX_LABEL_KEYS)
        .map(|(k, vs)| {
            let mut vs: Vec<String> = vs.iter().map(|v| cut(v)).collect();
            vs.sort();
            vs.dedup();
            vs.truncate(MAX_LABEL_VALUES);
            (cut(k), vs)
        })
        .collect()
}

fn merge_labels(into: &mut BTreeMap<String, Vec<String>>, from: BTreeMap<String, Vec<String>>) {
    for (k, vs) in from {
        if into.len() >= MAX_LABEL_KEYS && !into.contains_key(&k) {
            continue;
        }
        let cur = into.entry(k).or_default();
        cur.extend(vs);
        cur.sort();
        cur.dedup();
        cur.truncate(MAX_LABEL_VALUES);
    }
}

/// Merges `new` into `doc`; returns whether anything but `last_seen` changed.
fn merge_doc(doc: &mut MetricDoc, new: &MetricDocIn, replace_labels: bool) -> bool {
    let before = doc.clone();
    for (field, value) in [
        (&mut doc.kind, &new.kind),
        (&mut doc.help, &new.help),
        (&mut doc.unit, &new.unit),
    ] {
        if !value.is_empty() {
            *field = cut(value);
        }
    }
    let labels = bounded_labels(&new.labels);
    if replace_labels {
        doc.labels = labels;
    } else {
        merge_labels(&mut doc.labels, labels);
    }
    (&doc.kind, &doc.help, &doc.unit, &doc.labels)
        != (&before.kind, &before.help, &before.unit, &before.labels)
}

impl ApplyCtx<'_> {
    fn catalog_touched(&mut self) -> Result<()> {
        let idx = codec::encode(&self.index)?;
        self.txn.put(keys::sys_catalog_changed(), idx);
        Ok(())
    }

    fn catalog_count_add(&mut self, tenant: &str, delta: i64) -> Result<()> {
        let key = keys::tenant_key(keys::KS_CATALOG_COUNT, tenant);
        let n: u64 = self.get_decoded(&key)?.unwrap_or(0);
        let n = n.saturating_add_signed(delta);
        if n == 0 {
            self.txn.delete(key);
        } else {
            self.txn.put(key, codec::encode(&n)?);
        }
        Ok(())
    }

    fn sync_record(&self, tenant: &str) -> Result<SyncRecord> {
        let key = keys::tenant_key(keys::KS_CATALOG_SYNC, tenant);
        Ok(self.get_decoded(&key)?.unwrap_or_default())
    }

    fn put_sync_record(&mut self, tenant: &str, rec: &SyncRecord) -> Result<()> {
        let key = keys::tenant_key(keys::KS_CATALOG_SYNC, tenant);
        self.txn.put(key, codec::encode(rec)?);
        Ok(())
    }

    pub(crate) fn catalog_sync_start(
        &mut self,
        tenant: &str,
        strategy: &str,
        now_ns: i64,
    ) -> Result<Response> {
        let mut rec = self.sync_record(tenant)?;
        rec.gen += 1;
        rec.status = "running".into();
        rec.strategy = strategy.to_string();
        rec.start_ns = now_ns;
        rec.end_ns = None;
        (rec.processed, rec.added, rec.updated, rec.removed) = (0, 0, 0, 0);
        rec.errors.clear();
        rec.duration_ns = 0;
        rec.total_syncs += 1;
        self.put_sync_record(tenant, &rec)?;
        self.bump_revision();
        Ok(Response::SyncStarted { gen: rec.gen })
    }

    pub(crate) fn catalog_upsert(
        &mut self,
        tenant: &str,
        gen: u64,
        now_ns: i64,
        replace_labels: bool,
        docs: &[MetricDocIn],
    ) -> Result<Response> {
        let (mut added, mut updated) = (0u32, 0u32);
        for new in docs {
            let key = keys::catalog(tenant, &new.name);
            let mut doc = match self.get_decoded::<MetricDoc>(&key)? {
                Some(d) => d,
                None => {
                    added += 1;
                    MetricDoc {
                        name: new.name.clone(),
                        created_ns: now_ns,
                        updated_ns: now_ns,
                        ..MetricDoc::default()
                    }
                }
            };
            let is_new = doc.sync_gen == 0 && !doc.from_points;
            if merge_doc(&mut doc, new, replace_labels) && !is_new {
                updated += 1;
                doc.updated_ns = now_ns;
            }
            doc.sync_gen = gen;
            doc.last_seen_ns = now_ns;
            self.txn.put(key, codec::encode(&doc)?);
        }
        self.catalog_count_add(tenant, added as i64)?;
        self.catalog_touched()?;
        self.bump_revision();
        Ok(Response::CatalogUpserted { added, updated })
    }

    pub(crate) fn catalog_sync_finish(
        &mut self,
        tenant: &str,
        gen: u64,
        full: bool,
        now_ns: i64,
        outcome: &SyncOutcome,
    ) -> Result<Response> {
        let mut rec = self.sync_record(tenant)?;
        rec.end_ns = Some(now_ns);
        let removed = match outcome {
            SyncOutcome::Completed {
                processed,
                added,
                updated,
                duration_ns,
                errors,
            } => {
                let removed = if full {
                    self.remove_unseen(tenant, gen)?
                } else {
                    0
                };
                rec.status = "completed".into();
                (rec.processed, rec.added, rec.updated) = (*processed, *added, *updated);
                rec.removed = removed;
                rec.duration_ns = *duration_ns;
                rec.errors = errors.clone();
                rec.successful_syncs += 1;
                rec.last_sync_ns = Some(now_ns);
                if full {
                    rec.last_full_sync_ns = Some(now_ns);
                }
                removed
            }
            SyncOutcome::Failed { error, duration_ns } => {
                rec.status = "failed".into();
                rec.duration_ns = *duration_ns;
                rec.errors = vec![error.clone()];
                rec.failed_syncs += 1;
                rec.last_error = Some(error.clone());
                rec.last_error_ns = Some(now_ns);
                0
            }
        };
        self.put_sync_record(tenant, &rec)?;
        self.bump_revision();
        Ok(Response::SyncFinished { removed })
    }

    /// Removes the tenant's synced documents that the sync `gen` did not see; a
    /// document that points also wrote stays, no longer marked as synced.
    fn remove_unseen(&mut self, tenant: &str, gen: u64) -> Result<u64> {
        let mut removed = 0u64;
        for (k, v) in self
            .txn
            .scan_prefix(&keys::tenant_prefix(keys::KS_CATALOG, tenant))?
        {
            let mut doc: MetricDoc = codec::decode(&v)?;
            if doc.sync_gen == 0 || doc.sync_gen >= gen {
                continue;
            }
            if doc.from_points {
                doc.sync_gen = 0;
                self.txn.put(k, codec::encode(&doc)?);
            } else {
                self.txn.delete(k);
                removed += 1;
            }
        }
        if removed > 0 {
            self.catalog_count_add(tenant, -(removed as i64))?;
        }
        self.catalog_touched()?;
        Ok(removed)
    }

    pub(crate) fn catalog_settings(&mut self, settings: &SyncSettings) -> Result<Response> {
        self.txn
            .put(keys::sys_sync_settings(), codec::encode(settings)?);
        self.bump_revision();
        Ok(Response::Ok)
    }

    /// Notes the metric names of a points batch: a name new to the tenant gets a
    /// document (type `gauge`, seen at its newest point's time).
    pub(crate) fn catalog_note_points<'p>(
        &mut self,
        tenant: &str,
        names: impl Iterator<Item = (&'p str, i64)>,
    ) -> Result<()> {
        let mut newest: BTreeMap<&str, i64> = BTreeMap::new();
        for (name, t) in names {
            let e = newest.entry(name).or_insert(t);
            *e = (*e).max(t);
        }
        let mut added = 0i64;
        let mut touched = false;
        for (name, t) in newest {
            let key = keys::catalog(tenant, name);
            let doc = match self.get_decoded::<MetricDoc>(&key)? {
                Some(d) if d.from_points => continue,
                Some(d) => MetricDoc {
                    from_points: true,
                    ..d
                },
                None => {
                    added += 1;
                    MetricDoc {
                        name: name.to_string(),
                        kind: "gauge".into(),
                        from_points: true,
                        created_ns: t,
                        updated_ns: t,
                        last_seen_ns: t,
                        ..MetricDoc::default()
                    }
                }
            };
            self.txn.put(key, codec::encode(&doc)?);
            touched = true;
        }
        if touched {
            self.catalog_count_add(tenant, added)?;
            self.catalog_touched()?;
        }
        Ok(())
    }
}

impl Store {
    pub(crate) fn get_sm<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        self.sm().get(key)?.map(|v| codec::decode(&v)).transpose()
    }

    /// One catalog document.
    pub fn catalog_doc(&self, tenant: &str, name: &str) -> Result<Option<MetricDoc>> {
        self.get_sm(&keys::catalog(tenant, name))
    }

    /// Every document of a tenant, by name.
    pub fn catalog_docs(&self, tenant: &str) -> Result<Vec<MetricDoc>> {
        self.catalog_docs_first(tenant, usize::MAX)
    }

    /// The first `n` documents of a tenant, by name. Read a page at a time
    /// ([`Store::scan_paged`]): a tenant of 100,000 metrics never holds off apply for
    /// the whole listing, and each document is as some applied index left it.
    pub fn catalog_docs_first(&self, tenant: &str, n: usize) -> Result<Vec<MetricDoc>> {
        let prefix = keys::tenant_prefix(keys::KS_CATALOG, tenant);
        let mut out = Vec::new();
        if n == 0 {
            return Ok(out);
        }
        self.scan_paged(&prefix, |_, v| {
            out.push(codec::decode(v)?);
            Ok(out.len() < n)
        })?;
        Ok(out)
    }

    /// Visits every (tenant, document) of the catalog (index rebuilds), a page at a
    /// time as [`Store::catalog_docs_first`] does. The rebuild that calls this follows
    /// up every change applied after the index it names, so documents read from
    /// different pages still end up current.
    pub fn catalog_for_each(&self, mut f: impl FnMut(&str, MetricDoc)) -> Result<()> {
        self.scan_paged(&[keys::KS_CATALOG], |k, v| {
            let rest = &k[1..];
            let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
            f(&String::from_utf8_lossy(&rest[..end]), codec::decode(v)?);
            Ok(true)
        })
    }

    /// Number of catalog documents of every tenant that has any.
    pub fn catalog_counts(&self) -> Result<BTreeMap<String, u64>> {
        let mut out = BTreeMap::new();
        for kv in self.sm().scan_prefix([keys::KS_CATALOG_COUNT]) {
            let (k, v) = kv?;
            out.insert(
                String::from_utf8_lossy(&k[1..]).into_owned(),
                codec::decode(&v)?,
            );
        }
        Ok(out)
    }

    /// Number of catalog documents of one tenant.
    pub fn catalog_count(&self, tenant: &str) -> Result<u64> {
        let key = keys::tenant_key(keys::KS_CATALOG_COUNT, tenant);
        Ok(self.get_sm(&key)?.unwrap_or(0))
    }

    /// Raft index of the last change to the catalog (0: never changed).
    pub fn catalog_changed_at(&self) -> Result<u64> {
        Ok(self.get_sm(&keys::sys_catalog_changed())?.unwrap_or(0))
    }

    /// The sync bookkeeping of a tenant (default: never synced).
    pub fn sync_record(&self, tenant: &str) -> Result<SyncRecord> {
        let key = keys::tenant_key(keys::KS_CATALOG_SYNC, tenant);
        Ok(self.get_sm(&key)?.unwrap_or_default())
    }

    /// The sync bookkeeping of every tenant that has synced.
    pub fn sync_records(&self) -> Result<BTreeMap<String, SyncRecord>> {
        let mut out = BTreeMap::new();
        for kv in self.sm().scan_prefix([keys::KS_CATALOG_SYNC]) {
            let (k, v) = kv?;
            out.insert(
                String::from_utf8_lossy(&k[1..]).into_owned(),
                codec::decode(&v)?,
            );
        }
        Ok(out)
    }

    /// The replicated sync settings, if any were ever set.
    pub fn sync_settings(&self) -> Result<Option<SyncSettings>> {
        self.get_sm(&keys::sys_sync_settings())
    }
}
