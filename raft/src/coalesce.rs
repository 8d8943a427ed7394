//! Packing concurrent submissions of commands into one unit of work, each submitter
//! still getting its own responses. Two users: the leader's group commit (one log
//! entry per pack, [`crate::batcher`]) and a follower's forwarding (one peer request
//! to the leader per pack, instead of one per client write).
//!
//! Packs form naturally: at most `max_in_flight` packs are being worked on at a time,
//! and whatever arrives meanwhile waits and goes into the next pack. An idle node
//! therefore sends a lone submission at once, without a timer.

use std::sync::Arc;

use futures::future::BoxFuture;
use metacenter_storage::{Command, Response};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::error::{Error, Result};

/// Bounds of one pack.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Most commands in one pack.
    pub max_commands: usize,
    /// Most approximate bytes in one pack.
    pub max_bytes: usize,
    /// Most packs being worked on at once.
    pub max_in_flight: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_commands: 4096,
            max_bytes: 4 << 20,
            max_in_flight: 1,
        }
    }
}

/// What is done with one pack: its commands in, one response per command out.
pub(crate) type Work =
    Arc<dyn Fn(Vec<Command>) -> BoxFuture<'static, Result<Vec<Response>>> + Send + Sync>;

struct Submission {
    commands: Vec<Command>,
    bytes: usize,
    reply: oneshot::Sender<Result<Vec<Response>>>,
}

/// Handle to a packing task.
#[derive(Clone)]
pub(crate) struct Coalescer {
    tx: mpsc::Sender<Submission>,
}

impl Coalescer {
    /// Spawns the packing task; each pack is handed to `work`.
    pub(crate) fn spawn(limits: BatchLimits, work: Work) -> Coalescer {
        let (tx, rx) = mpsc::channel(65536);
        tokio::spawn(run(rx, limits, work));
        Coalescer { tx }
    }

    /// Has `commands` done (as part of some pack) and returns their responses.
    pub(crate) async fn submit(&self, commands: Vec<Command>) -> Result<Vec<Response>> {
        let bytes = commands.iter().map(Command::size_hint).sum();
        let (reply, rx) = oneshot::channel();
        let sub = Submission {
            commands,
            bytes,
            reply,
        };
        let stopped = |what: &str| Error::Fatal(format!("the write packer {what}"));
        self.tx.send(sub).await.map_err(|_| stopped("stopped"))?;
        rx.await.map_err(|_| stopped("dropped the write"))?
    }
}

async fn run(mut rx: mpsc::Receiver<Submission>, limits: BatchLimits, work: Work) {
    let permits = Arc::new(Semaphore::new(limits.max_in_flight.max(1)));
    let mut carry: Option<Submission> = None;
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let first = match carry.take() {
            Some(s) => s,
            None => match rx.recv().await {
                Some(s) => s,
                None => return,
            },
        };
        let (mut n, mut bytes) = (first.commands.len(), first.bytes);
        let mut subs = vec![first];
        while n < limits.max_commands && bytes < limits.max_bytes {
            let Ok(s) = rx.try_recv() else { break };
            if n + s.commands.len() > limits.max_commands || bytes + s.bytes > limits.max_bytes {
                carry = Some(s);
                break;
            }
            n += s.commands.len();
            bytes += s.bytes;
            subs.push(s);
        }
        let work = work.clone();
        tokio::spawn(async move {
            finish(&work, subs).await;
            drop(permit);
        });
    }
}

/// Does one pack and hands each submitter its share of the responses (or the error).
async fn finish(work: &Work, subs: Vec<Submission>) {
    let mut commands = Vec::with_capacity(subs.iter().map(|s| s.commands.len()).sum());
    let mut shares = Vec::with_capacity(subs.len());
    for s in subs {
        shares.push((s.commands.len(), s.reply));
        commands.extend(s.commands);
    }
    match work(commands).await {
        Ok(responses) => {
            let mut all = responses.into_iter();
            for (size, reply) in shares {
                let _ = reply.send(Ok(all.by_ref().take(size).collect()));
            }
        }
        Err(err) => {
            for (_, reply) in shares {
                let _ = reply.send(Err(err.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use futures::FutureExt;
    use tokio::sync::Semaphore;

    use super::*;

    /// A packer whose work records each pack's size, waits for a permit from `gate`,
    /// and answers command i of a pack with `PointsWritten { count: i }` (or fails
    /// packs of more than `fail_over` commands).
    fn packer(gate: Arc<Semaphore>, packs: Arc<Mutex<Vec<usize>>>, fail_over: usize) -> Coalescer {
        let work: Work = Arc::new(move |commands: Vec<Command>| {
            let (gate, packs) = (gate.clone(), packs.clone());
            async move {
                packs.lock().unwrap().push(commands.len());
                gate.acquire().await.unwrap().forget();
                if commands.len() > fail_over {
                    return Err(Error::Unavailable("pack failed".into()));
                }
                Ok((0..commands.len() as u32)
                    .map(|count| Response::PointsWritten { count })
                    .collect())
            }
            .boxed()
        });
        Coalescer::spawn(BatchLimits::default(), work)
    }

    /// Polls until `n` submissions wait in the packer's queue.
    async fn queued(c: &Coalescer, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while c.tx.max_capacity() - c.tx.capacity() < n {
            assert!(Instant::now() < deadline, "{n} submissions never queued");
            tokio::task::yield_now().await;
        }
    }

    fn counts(r: Vec<Response>) -> Vec<u32> {
        r.into_iter()
            .map(|r| match r {
                Response::PointsWritten { count } => count,
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn submissions_waiting_behind_a_pack_share_the_next_one() {
        let (gate, packs) = (Arc::new(Semaphore::new(0)), Arc::default());
        let c = packer(gate.clone(), Arc::clone(&packs), usize::MAX);
        let first = tokio::spawn({
            let c = c.clone();
            async move { c.submit(vec![Command::Noop]).await }
        });
        while packs.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        let two = tokio::spawn({
            let c = c.clone();
            async move { c.submit(vec![Command::Noop, Command::Noop]).await }
        });
        queued(&c, 1).await;
        let one = tokio::spawn({
            let c = c.clone();
            async move { c.submit(vec![Command::Noop]).await }
        });
        queued(&c, 2).await;
        gate.add_permits(2);
        assert_eq!(counts(first.await.unwrap().unwrap()), vec![0]);
        // Packed in submission order: the pair first, then the single command.
        assert_eq!(counts(two.await.unwrap().unwrap()), vec![0, 1]);
        assert_eq!(counts(one.await.unwrap().unwrap()), vec![2]);
        assert_eq!(*packs.lock().unwrap(), vec![1, 3]);
    }

    #[tokio::test]
    async fn a_failed_pack_fails_each_of_its_submitters_alone() {
        let (gate, packs) = (Arc::new(Semaphore::new(0)), Arc::default());
        let c = packer(gate.clone(), Arc::clone(&packs), 1);
        let first = tokio::spawn({
            let c = c.clone();
            async move { c.submit(vec![Command::Noop]).await }
        });
        while packs.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        let waiting: Vec<_> = (0..3)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(async move { c.submit(vec![Command::Noop]).await })
            })
            .collect();
        queued(&c, 3).await;
        gate.add_permits(2);
        assert_eq!(counts(first.await.unwrap().unwrap()), vec![0]);
        for w in waiting {
            let err = w.await.unwrap().unwrap_err();
            assert!(err.to_string().contains("pack failed"), "{err}");
        }
        assert_eq!(*packs.lock().unwrap(), vec![1, 3]);
        // The packer goes on after a failure.
        gate.add_permits(1);
        assert_eq!(
            counts(c.submit(vec![Command::Noop]).await.unwrap()),
            vec![0]
        );
    }
}
