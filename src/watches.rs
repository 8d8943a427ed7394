//! Who a blocking query waits for: a registry of topics (one service, one metadata
//! object, "any service", "any metadata deletion") and one task that reads the
//! applied-event bus and wakes only the waiters whose topic an applied batch touched.
//!
//! A waiter used to wake on every applied batch of the node and re-read its data, so
//! with 500 idle watches per node, heartbeats fell from 12,280/s to 4,810/s. Now a
//! heartbeat of service `a` wakes the watches of `a` (and of the whole list), nobody
//! else. Waking is conservative: a snapshot install, a lagging bus or a reap (whose
//! removed names the command does not carry) wakes every waiter, which then re-checks.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};

use metacenter_raft::Applied;
use metacenter_storage::Command;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::Notify;

/// What a blocking query waits for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Any change to any service (the list, and watches of absent services).
    AnyService,
    /// Service `name`.
    Service(String),
    /// Metadata object `hash`.
    Meta(String),
    /// Any metadata object deletion (watches of absent objects read its index).
    AnyMetaDeletion,
}

/// The topics `cmd` touches; `None` when it may touch services it does not name.
fn topics_of(cmd: &Command, out: &mut HashSet<Topic>) -> Option<()> {
    match cmd {
        Command::ServiceRegister { name, .. }
        | Command::ServiceHeartbeat { name, .. }
        | Command::ServiceDeregister { name } => {
            out.insert(Topic::Service(name.clone()));
            out.insert(Topic::AnyService);
        }
        Command::ServiceReap { .. } => return None,
        Command::ServiceExpire { services } => {
            for (name, _) in services {
                out.insert(Topic::Service(name.clone()));
            }
            out.insert(Topic::AnyService);
        }
        Command::MetaMerge { hash, .. } | Command::MetaSetAdd { hash, .. } => {
            out.insert(Topic::Meta(hash.clone()));
        }
        Command::MetaDelete { hash, .. } | Command::MetaDeleteProp { hash, .. } => {
            out.insert(Topic::Meta(hash.clone()));
            out.insert(Topic::AnyMetaDeletion);
        }
        // Listed one by one so that a new command must be placed here.
        Command::Noop
        | Command::LoadAdd { .. }
        | Command::LoadPromptDone { .. }
        | Command::LoadDone { .. }
        | Command::LoadExpire { .. }
        | Command::LoadExpireNamed(_)
        | Command::PointsWrite { .. }
        | Command::SystemPointsWrite { .. }
        | Command::PointsRetain { .. }
        | Command::CatalogSyncStart { .. }
        | Command::CatalogUpsert { .. }
        | Command::CatalogSyncFinish { .. }
        | Command::CatalogSettings { .. } => {}
    }
    Some(())
}

/// The registry of topics with waiters. Cheap to clone.
#[derive(Clone, Default)]
pub struct Watches {
    topics: Arc<Mutex<Topics>>,
}

#[derive(Default)]
struct Topics {
    map: HashMap<Topic, Weak<Notify>>,
    /// Size at which the entries of topics nobody waits on any more are dropped:
    /// twice what was live at the last sweep, so sweeps cost O(1) per insert.
    sweep_at: usize,
}

impl Watches {
    /// The notifier of `topic`, shared by its waiters while any holds it.
    pub fn notifier(&self, topic: Topic) -> Arc<Notify> {
        let mut topics = self.topics.lock().expect("watch topics poisoned");
        if let Some(n) = topics.map.get(&topic).and_then(Weak::upgrade) {
            return n;
        }
        if topics.map.len() >= topics.sweep_at.max(1024) {
            topics.map.retain(|_, w| w.strong_count() > 0);
            topics.sweep_at = 2 * topics.map.len();
        }
        let n = Arc::new(Notify::new());
        topics.map.insert(topic, Arc::downgrade(&n));
        n
    }

    fn wake(&self, topics: &HashSet<Topic>) {
        let all = self.topics.lock().expect("watch topics poisoned");
        for n in topics.iter().filter_map(|t| all.map.get(t)?.upgrade()) {
            n.notify_waiters();
        }
    }

    fn wake_all(&self) {
        let all = self.topics.lock().expect("watch topics poisoned");
        all.map
            .values()
            .filter_map(Weak::upgrade)
            .for_each(|n| n.notify_waiters());
    }

    /// Wakes the waiters of what `ev` touched.
    pub fn note(&self, ev: &Applied) {
        let mut touched = HashSet::new();
        let named = !ev.snapshot_installed
            && ev
                .commands
                .iter()
                .flat_map(|c| c.iter())
                .all(|c| topics_of(c, &mut touched).is_some());
        if !named {
            return self.wake_all();
        }
        if !touched.is_empty() {
            self.wake(&touched);
        }
    }

    /// Follows the applied-event bus until it closes; then wakes everyone.
    pub async fn run(self, mut events: broadcast::Receiver<Arc<Applied>>) {
        loop {
            match events.recv().await {
                Ok(ev) => self.note(&ev),
                Err(RecvError::Lagged(_)) => self.wake_all(),
                Err(RecvError::Closed) => return self.wake_all(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;

    fn applied(commands: Vec<Command>) -> Applied {
        Applied {
            index: 1,
            commands: vec![Arc::new(commands)],
            snapshot_installed: false,
        }
    }

    fn heartbeat(name: &str) -> Command {
        Command::ServiceHeartbeat {
            name: name.into(),
            now_ms: 1,
        }
    }

    /// Which of `topics` a note of `ev` wakes.
    fn woken(topics: &[Topic], ev: &Applied) -> Vec<bool> {
        let w = Watches::default();
        let notifiers: Vec<_> = topics.iter().map(|t| w.notifier(t.clone())).collect();
        let mut waits: Vec<_> = notifiers.iter().map(|n| Box::pin(n.notified())).collect();
        waits.iter_mut().for_each(|f| {
            f.as_mut().enable();
        });
        w.note(ev);
        let mut cx = Context::from_waker(Waker::noop());
        waits
            .iter_mut()
            .map(|f| pin!(f).poll(&mut cx) == Poll::Ready(()))
            .collect()
    }

    #[test]
    fn a_batch_wakes_only_the_topics_it_touched() {
        let topics = [
            Topic::Service("a".into()),
            Topic::Service("b".into()),
            Topic::AnyService,
            Topic::Meta("m".into()),
            Topic::AnyMetaDeletion,
        ];
        let hb = applied(vec![heartbeat("a")]);
        assert_eq!(woken(&topics, &hb), [true, false, true, false, false]);
        let merge = applied(vec![Command::MetaMerge {
            hash: "m".into(),
            fields: Default::default(),
            expect_version: None,
        }]);
        assert_eq!(woken(&topics, &merge), [false, false, false, true, false]);
        let delete = applied(vec![Command::MetaDelete {
            hash: "x".into(),
            expect_version: None,
        }]);
        assert_eq!(woken(&topics, &delete), [false, false, false, false, true]);
        assert_eq!(woken(&topics, &applied(vec![Command::Noop])), [false; 5]);
        // What may touch unnamed services, and a snapshot install, wake everyone.
        let reap = applied(vec![
            heartbeat("a"),
            Command::ServiceReap {
                now_ms: 1,
                stale_threshold_ms: 1,
            },
        ]);
        assert_eq!(woken(&topics, &reap), [true; 5]);
        let mut install = applied(vec![]);
        install.snapshot_installed = true;
        assert_eq!(woken(&topics, &install), [true; 5]);
    }

    #[test]
    fn a_topic_lives_while_a_waiter_holds_it() {
        let w = Watches::default();
        let a = w.notifier(Topic::Service("a".into()));
        assert!(Arc::ptr_eq(&a, &w.notifier(Topic::Service("a".into()))));
        drop(a);
        for i in 0..2_000 {
            drop(w.notifier(Topic::Meta(i.to_string())));
        }
        let live = w.topics.lock().unwrap().map.len();
        assert!(live <= 1_024, "dead topics are dropped: {live}");
    }
}
