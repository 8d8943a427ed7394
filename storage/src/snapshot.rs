//! Snapshot export and import of the state-machine tree, streamed: the export
//! writes records to any `Write` (a file), the import reads them from any `Read` into a
//! fresh tree generation that replaces the current one only when complete.
//!
//! Format: magic `MCSNAP1\n`, then records `u32 BE key length, key, u32 BE value
//! length, value`, then a zero-length key as terminator.

use std::io::{Read, Write};

use crate::{keys, Error, Result, Store};

const MAGIC: &[u8; 8] = b"MCSNAP1\n";
const IMPORT_BATCH: usize = 4096;

impl Store {
    /// Writes every pair of the state machine to `out`. The caller must keep apply
    /// from running concurrently (openraft's state-machine worker does).
    pub fn export_snapshot(&self, out: &mut impl Write) -> Result<u64> {
        out.write_all(MAGIC)?;
        let mut n = 0;
        let redo = keys::sys_redo();
        for kv in self.sm().iter() {
            let (k, v) = kv?;
            if *k == *redo {
                continue;
            }
            write_chunk(out, &k)?;
            write_chunk(out, &v)?;
            n += 1;
        }
        out.write_all(&0u32.to_be_bytes())?;
        out.flush()?;
        Ok(n)
    }

    /// Replaces the whole state machine with the pairs read from `input`.
    /// A failure leaves the current state untouched.
    pub fn import_snapshot(&self, input: &mut impl Read) -> Result<u64> {
        let mut magic = [0u8; 8];
        input.read_exact(&mut magic)?;
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

fn write_chunk(out: &mut impl Write, bytes: &[u8]) -> Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| Error::Snapshot("value over 4 GiB".into()))?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(bytes)?;
    Ok(())
}

fn read_chunk(input: &mut impl Read) -> Result<Vec<u8>> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > 64 * 1024 * 1024 {
        return Err(Error::Snapshot(format!("record of {len} bytes is corrupt")));
    }
    let mut buf = vec![0u8; len];
    input.read_exact(&mut buf)?;
    Ok(buf)
}
