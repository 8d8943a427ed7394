//! The start-up check of existing metadata objects against `limits.max_object_bytes`.
//!
//! Objects written before the limit existed (or under a higher one) may be larger. They
//! stay readable and may shrink, but no write may grow them; the operator is told once,
//! at start-up, how many there are and which is the largest, so the limit can be raised
//! or the objects split. The scan runs on a blocking thread after the node serves, a
//! page of ids at a time, so a large store does not delay start-up.

use std::collections::BTreeMap;

use metacenter_storage::Store;

/// Bytes an object's properties take: names and values together.
pub fn object_bytes(fields: &BTreeMap<String, String>) -> usize {
    fields.iter().map(|(k, v)| k.len() + v.len()).sum()
}

/// What the scan found: objects over the limit, and the largest of them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Oversized {
    pub count: u64,
    pub largest: Option<(String, usize)>,
}

/// Scans every object of `store` for ones over `limit` bytes.
pub fn scan(store: &Store, limit: usize) -> metacenter_storage::Result<Oversized> {
    let mut found = Oversized::default();
    let mut after: Option<String> = None;
    loop {
        let page = store.meta_list(after.as_deref(), 1000)?;
        for hash in page.hash_ids {
            let Some(obj) = store.meta_get(&hash)? else {
                continue;
            };
            let size = object_bytes(&obj.fields);
            if size > limit {
                found.count += 1;
                if found.largest.as_ref().is_none_or(|(_, s)| size > *s) {
                    found.largest = Some((hash, size));
                }
            }
        }
        match page.next {
            Some(n) => after = Some(n),
            None => return Ok(found),
        }
    }
}

/// Runs [`scan`] in the background and logs what it found.
pub fn spawn_check(store: Store, limit: usize) {
    tokio::task::spawn_blocking(move || match scan(&store, limit) {
        Ok(Oversized {
            count,
            largest: Some((hash, size)),
        }) => tracing::warn!(
            count,
            largest = %hash,
            largest_bytes = size,
            limit,
            "metadata objects over limits.max_object_bytes: they stay readable, but writes \
             that grow them are refused (raise the limit or split them)"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot check object sizes"),
    });
}
