//! Making appended log entries durable, two ways.
//!
//! - **Queued** (under load): the append's callback goes to the flusher thread, which
//!   fdatasyncs the log once for every waiter queued meanwhile and completes them in
//!   order. The raft core's task only hands over a callback; the tokio worker is free
//!   during the sync.
//! - **Inline** (light load): an append of at most [`INLINE_MAX_COMMANDS`] commands
//!   syncs on the calling thread and completes its callback there. An entry that
//!   small means group commit found nothing else waiting, so the node is lightly
//!   loaded and the two thread hand-offs of the queued path (to the flusher, back to
//!   the raft core) are most of what the caller waits for beyond the disk. Under load
//!   entries carry many commands and take the queued path, which keeps a sync from
//!   blocking a tokio worker (measured in BENCHMARKS.md, "Inline sync when lightly
//!   loaded").
//!
//! A sync that does not finish within [`FLUSH_STALL`] fails, whichever way it runs: a
//! log that never reports would hang every client write instead of failing it. The
//! flusher thread watches inline syncs too: it fails the callback of one that has run
//! that long. After a stall every later sync fails at once (the stuck one still holds
//! its thread), and a failed log write stops raft on this node (openraft's contract).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use metacenter_storage::Wal;
use openraft::storage::LogFlushed;

use crate::types::TypeConfig;

/// How long a flush may take before the disk counts as failed.
pub const FLUSH_STALL: Duration = Duration::from_secs(30);

/// Appends of at most this many commands sync inline (see the module doc).
pub const INLINE_MAX_COMMANDS: usize = 1;

/// How often the flusher thread looks at a running inline sync when idle.
const WATCH_TICK: Duration = Duration::from_secs(1);

/// Who waits for the next durable flush.
pub(crate) enum Waiter {
    /// An `append`'s callback into openraft.
    Append(LogFlushed<TypeConfig>),
    /// `save_vote`, awaiting the answer.
    Direct(tokio::sync::oneshot::Sender<std::io::Result<()>>),
}

impl Waiter {
    fn complete(self, r: std::io::Result<()>) {
        match self {
            Waiter::Append(cb) => cb.log_io_completed(r),
            Waiter::Direct(tx) => {
                let _ = tx.send(r);
            }
        }
    }
}

fn stalled() -> std::io::Error {
    std::io::Error::other(format!(
        "a sync of the raft log did not finish within {FLUSH_STALL:?} (disk full or failing)"
    ))
}

/// What the inline path and the flusher thread share.
#[derive(Default)]
struct Watch {
    /// A sync has stalled: every later one fails at once.
    stalled: AtomicBool,
    /// The inline sync under way: when it started and who waits for it.
    inline: Mutex<Option<(Instant, Waiter)>>,
}

impl Watch {
    /// Registers an inline sync; gives the waiter back if one is already running.
    fn begin(&self, waiter: Waiter, now: Instant) -> Result<(), Waiter> {
        let mut slot = self.inline.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() {
            return Err(waiter);
        }
        *slot = Some((now, waiter));
        Ok(())
    }

    /// Ends the inline sync: its waiter, unless the watch already failed it.
    fn finish(&self) -> Option<Waiter> {
        let mut slot = self.inline.lock().unwrap_or_else(|p| p.into_inner());
        slot.take().map(|(_, w)| w)
    }

    /// Fails the inline sync if it has run for `limit` at `now`.
    fn check(&self, now: Instant, limit: Duration) {
        let mut slot = self.inline.lock().unwrap_or_else(|p| p.into_inner());
        if slot
            .as_ref()
            .is_some_and(|(t, _)| now.duration_since(*t) >= limit)
        {
            self.stall();
            if let Some((_, w)) = slot.take() {
                w.complete(Err(stalled()));
            }
        }
    }

    /// Marks the log stalled: every later sync fails at once.
    fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
        tracing::error!("{}", stalled());
    }

    fn is_stalled(&self) -> bool {
        self.stalled.load(Ordering::SeqCst)
    }
}

/// Handle to the log's flusher thread. Clones share it.
#[derive(Clone)]
pub(crate) struct Flusher {
    wal: Arc<Wal>,
    queue: Sender<Waiter>,
    watch: Arc<Watch>,
}

impl Flusher {
    /// Spawns the flusher (and its fsync) thread for `wal`.
    pub(crate) fn spawn(wal: Arc<Wal>) -> Flusher {
        let (queue, rx) = std::sync::mpsc::channel();
        let watch = Arc::new(Watch::default());
        let (w, wt) = (wal.clone(), watch.clone());
        std::thread::Builder::new()
            .name("raft-log-flusher".into())
            .spawn(move || run(w, wt, rx))
            .expect("spawn the log flusher thread");
        Flusher { wal, queue, watch }
    }

    /// Queues `waiter` for the flusher thread's next sync.
    pub(crate) fn queue(&self, waiter: Waiter) -> std::io::Result<()> {
        self.queue
            .send(waiter)
            .map_err(|_| std::io::Error::other("log flusher stopped"))
    }

    /// Syncs on this thread and completes `waiter` (queues it if an inline sync is
    /// already running).
    pub(crate) fn sync_inline(&self, waiter: Waiter) -> std::io::Result<()> {
        if self.watch.is_stalled() {
            waiter.complete(Err(stalled()));
            return Ok(());
        }
        if let Err(w) = self.watch.begin(waiter, Instant::now()) {
            return self.queue(w);
        }
        let r = self.wal.sync().map_err(std::io::Error::other);
        if let Some(w) = self.watch.finish() {
            w.complete(r);
        }
        Ok(())
    }
}

/// Runs flushes on their own thread so the flusher can give up on one that stalls.
struct Fsync {
    req: Sender<()>,
    done: Receiver<Result<(), String>>,
}

impl Fsync {
    fn spawn(wal: Arc<Wal>) -> Fsync {
        let (req, req_rx) = std::sync::mpsc::channel::<()>();
        let (done_tx, done) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("raft-log-fsync".into())
            .spawn(move || {
                while req_rx.recv().is_ok() {
                    let r = wal.sync().map_err(|e| e.to_string());
                    if done_tx.send(r).is_err() {
                        return;
                    }
                }
            })
            .expect("spawn the log fsync thread");
        Fsync { req, done }
    }

    /// Flushes, or fails once a flush has taken longer than [`FLUSH_STALL`] (and
    /// every flush after it).
    fn flush(&mut self, watch: &Watch) -> std::io::Result<()> {
        if watch.is_stalled() {
            return Err(stalled());
        }
        self.req
            .send(())
            .map_err(|_| std::io::Error::other("the fsync thread stopped"))?;
        match self.done.recv_timeout(FLUSH_STALL) {
            Ok(r) => r.map_err(std::io::Error::other),
            Err(_) => {
                watch.stall();
                Err(stalled())
            }
        }
    }
}

/// Runs until every sender is gone: one durable flush per group of waiters, and a
/// look at the inline sync between them.
fn run(wal: Arc<Wal>, watch: Arc<Watch>, rx: Receiver<Waiter>) {
    let mut fsync = Fsync::spawn(wal);
    loop {
        watch.check(Instant::now(), FLUSH_STALL);
        let first = match rx.recv_timeout(WATCH_TICK) {
            Ok(w) => w,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut pending = vec![first];
        pending.extend(rx.try_iter());
        let res = fsync.flush(&watch);
        for waiter in pending {
            let r = res
                .as_ref()
                .map(|_| ())
                .map_err(|e| std::io::Error::other(e.to_string()));
            waiter.complete(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct() -> (Waiter, tokio::sync::oneshot::Receiver<std::io::Result<()>>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (Waiter::Direct(tx), rx)
    }

    #[test]
    fn a_stalled_inline_sync_is_failed_by_the_watch() {
        let watch = Watch::default();
        let t0 = Instant::now();
        let (w, mut rx) = direct();
        assert!(watch.begin(w, t0).is_ok());
        watch.check(t0 + FLUSH_STALL / 2, FLUSH_STALL);
        assert!(rx.try_recv().is_err(), "failed before its time");
        assert!(!watch.is_stalled());
        watch.check(t0 + FLUSH_STALL, FLUSH_STALL);
        let r = rx.try_recv().expect("the watch completes the waiter");
        assert!(r.unwrap_err().to_string().contains("did not finish"));
        assert!(watch.is_stalled());
        // The stuck sync returns at last: its waiter was already answered.
        assert!(watch.finish().is_none());
    }

    #[test]
    fn a_finished_inline_sync_keeps_its_waiter() {
        let watch = Watch::default();
        let t0 = Instant::now();
        let (w, _rx) = direct();
        assert!(watch.begin(w, t0).is_ok());
        let (second, _rx2) = direct();
        assert!(
            watch.begin(second, t0).is_err(),
            "one inline sync at a time"
        );
        assert!(watch.finish().is_some());
        watch.check(t0 + FLUSH_STALL * 2, FLUSH_STALL);
        assert!(!watch.is_stalled(), "nothing was running");
    }

    #[test]
    fn inline_and_queued_syncs_answer_and_a_stall_fails_later_ones_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Arc::new(Wal::open(dir.path()).unwrap());
        wal.append(vec![(1, b"entry".to_vec())]).unwrap();
        let f = Flusher::spawn(wal);
        let (w, mut rx) = direct();
        f.sync_inline(w).unwrap();
        assert!(rx.try_recv().expect("answered before returning").is_ok());
        let (w, rx) = direct();
        f.queue(w).unwrap();
        assert!(rx.blocking_recv().unwrap().is_ok());
        f.watch.stalled.store(true, Ordering::SeqCst);
        let (w, mut rx) = direct();
        f.sync_inline(w).unwrap();
        assert!(rx.try_recv().unwrap().is_err());
        let (w, rx) = direct();
        f.queue(w).unwrap();
        assert!(rx.blocking_recv().unwrap().is_err());
    }
}
