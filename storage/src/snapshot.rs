//! Snapshot import into the state-machine tree, streamed: the records an export wrote
//! (see [`crate::export`], which also gives the format) are read from any `Read` into
//! a fresh tree generation that replaces the current one only when complete.

use std::io::Read;

use crate::export::MAGIC;
use crate::{Error, Result, Store};

const IMPORT_BATCH: usize = 4096;

impl Store {
    /// Replaces the whole state machine with the pairs read from `input`.
    /// A failure leaves the current state untouched.
    pub fn import_snapshot(&self, input: &mut impl Read) -> Result<u64> {
        let mut magic = [0u8; 8];
        input.read_exact(&mut magic).map_err(Error::snapshot_io)?;
        if &magic != MAGIC {
            return Err(Error::Snapshot("not a metacenter snapshot".into()));
        }
        let gen = self.sm_generation()? + 1;
        let tree = self.open_sm_generation(gen)?;
        let mut batch = sled::Batch::default();
        let (mut pending, mut n) = (0, 0u64);
        loop {
            let key = read_chunk(input)?;
            if key.is_empty() {
                break;
            }
            let value = read_chunk(input)?;
            batch.insert(key, value);
            pending += 1;
            n += 1;
            if pending == IMPORT_BATCH {
                tree.apply_batch(std::mem::take(&mut batch))?;
                pending = 0;
            }
        }
        tree.apply_batch(batch)?;
        self.switch_sm(gen, tree)?;
        Ok(n)
    }
}

fn read_chunk(input: &mut impl Read) -> Result<Vec<u8>> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len).map_err(Error::snapshot_io)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > 64 * 1024 * 1024 {
        return Err(Error::Snapshot(format!("record of {len} bytes is corrupt")));
    }
    let mut buf = vec![0u8; len];
    input.read_exact(&mut buf).map_err(Error::snapshot_io)?;
    Ok(buf)
}
