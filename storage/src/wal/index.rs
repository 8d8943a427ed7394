//! The in-memory view of the write-ahead log: where each live entry sits on disk and
//! the latest vote, committed and purged values. Recovery and the running log update
//! it through the same [`Index::apply`], so a replay ends where the run left off.

use std::collections::BTreeMap;
use std::fs::File;
use std::sync::Arc;

use super::record::Record;

/// Where an entry's data is: its segment file, offset and length.
#[derive(Clone)]
pub(super) struct Loc {
    pub file: Arc<File>,
    pub off: u64,
    pub len: usize,
}

/// The live entries by index, and the small values.
#[derive(Default)]
pub(super) struct Index {
    pub entries: BTreeMap<u64, Loc>,
    pub vote: Option<Vec<u8>>,
    pub committed: Option<Vec<u8>>,
    /// The last purge: every entry up to `.0` was removed by it.
    pub purged: Option<(u64, Vec<u8>)>,
}

impl Index {
    /// Index of the last live entry.
    pub fn last(&self) -> Option<u64> {
        self.entries.last_key_value().map(|(i, _)| *i)
    }

    /// Takes in one record; `loc` is where an entry's data was written.
    pub fn apply(&mut self, rec: &Record<'_>, loc: Option<Loc>) {
        match rec {
            Record::Entry { index, .. } => {
                // An entry replaces any at or after its index (as raft's truncation
                // before an overwrite would).
                self.entries.split_off(index);
                let loc = loc.expect("an entry has a location");
                self.entries.insert(*index, loc);
            }
            Record::Vote(v) => self.vote = Some(v.to_vec()),
            Record::Committed(c) => self.committed = Some(c.to_vec()),
            Record::Purged { upto, data } => {
                self.entries = self.entries.split_off(&(upto + 1));
                self.purged = Some((*upto, data.to_vec()));
            }
            Record::Truncate { from } => {
                self.entries.split_off(from);
            }
        }
    }

    /// Locations of the live entries with index in `[start, end)`.
    pub fn range(&self, start: u64, end: Option<u64>) -> Vec<Loc> {
        match end {
            Some(end) if end <= start => Vec::new(),
            Some(end) => self
                .entries
                .range(start..end)
                .map(|(_, l)| l.clone())
                .collect(),
            None => self
                .entries
                .range(start..)
                .map(|(_, l)| l.clone())
                .collect(),
        }
    }
}
