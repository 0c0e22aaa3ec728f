//! Following every child of one znode on a ZooKeeper session: a persistent
//! recursive watch (children created, deleted, changed) triggers a full
//! read of the children's data, handed to a [`ChildrenSink`] (the replica
//! records, the users of the credential store). One task per session,
//! started by the session loop and stopped with it; what was last read
//! stays with the sink until the next session has read it again.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;
use zookeeper_client::{
    AddWatchMode, Client, Error as ZkError, EventType, PersistentWatcher, SessionState,
};

/// Where a full read of the children goes.
pub(crate) trait ChildrenSink: Send + Sync + 'static {
    /// Every direct child's name and data, after each change.
    fn load(&self, path: &str, children: Vec<(String, Vec<u8>)>);
}

/// What the session loop needs to start a children task on each session.
pub(crate) struct ChildrenSync {
    /// What the znode holds, for the logs ("users znode").
    pub(crate) label: &'static str,
    pub(crate) path: String,
    pub(crate) sink: Arc<dyn ChildrenSink>,
    pub(crate) tracker: TaskTracker,
    pub(crate) retry: Duration,
}

impl ChildrenSync {
    /// Follow `path` on `client`'s session until the guard is dropped or
    /// the session ends.
    pub(crate) fn start(&self, client: &Client, cancel: &CancellationToken) -> DropGuard {
        let cancel = cancel.child_token();
        let task = Task {
            label: self.label,
            client: client.clone(),
            path: self.path.clone(),
            sink: self.sink.clone(),
            cancel: cancel.clone(),
            retry: self.retry,
        };
        self.tracker.spawn(task.run());
        cancel.drop_guard()
    }
}

/// Where the task is.
enum Phase {
    /// Set the persistent recursive watch.
    Arm,
    /// Read every child into the sink.
    Load(PersistentWatcher),
    /// Wait for a change under the path.
    Wait(PersistentWatcher),
    Stop,
}

struct Task {
    label: &'static str,
    client: Client,
    path: String,
    sink: Arc<dyn ChildrenSink>,
    cancel: CancellationToken,
    retry: Duration,
}

impl Task {
    async fn run(self) {
        let mut phase = Phase::Arm;
        loop {
            phase = match phase {
                Phase::Arm => self.arm().await,
                Phase::Load(w) => self.load(w).await,
                Phase::Wait(w) => self.wait(w).await,
                Phase::Stop => break,
            };
        }
        tracing::debug!(path = %self.path, "{} watch stopped", self.label);
    }

    async fn or_cancel<F: Future>(&self, fut: F) -> Option<F::Output> {
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => None,
            v = fut => Some(v),
        }
    }

    /// After a failure: `then` after a pause, or stop if the session is over.
    async fn retry(&self, what: &str, e: ZkError, then: Phase) -> Phase {
        let label = self.label;
        match self.client.state() {
            s if s.is_terminated() => return Phase::Stop,
            // The watcher reports the reconnection: reload then, no retry storm.
            SessionState::Disconnected => {
                tracing::debug!(path = %self.path, error = %e, "cannot {what} the {label} while disconnected");
                if let Phase::Load(w) = then {
                    return Phase::Wait(w);
                }
            }
            _ => match super::DiscoveryError::denied("read", &self.path, e.clone()) {
                Some(denied) => {
                    tracing::warn!(error = %denied, retry_in = ?self.retry, "cannot {what} the {label}")
                }
                None => {
                    tracing::warn!(path = %self.path, error = %e, retry_in = ?self.retry, "cannot {what} the {label}")
                }
            },
        }
        match self.or_cancel(tokio::time::sleep(self.retry)).await {
            Some(()) => then,
            None => Phase::Stop,
        }
    }

    async fn arm(&self) -> Phase {
        let watch = self
            .client
            .watch(&self.path, AddWatchMode::PersistentRecursive);
        match self.or_cancel(watch).await {
            None => Phase::Stop,
            Some(Ok(w)) => Phase::Load(w),
            Some(Err(e)) => self.retry("watch", e, Phase::Arm).await,
        }
    }

    async fn load(&self, w: PersistentWatcher) -> Phase {
        match self.or_cancel(self.read_children()).await {
            None => Phase::Stop,
            Some(Ok(children)) => {
                self.sink.load(&self.path, children);
                Phase::Wait(w)
            }
            Some(Err(e)) => self.retry("read", e, Phase::Load(w)).await,
        }
    }

    async fn wait(&self, mut w: PersistentWatcher) -> Phase {
        let Some(event) = self.or_cancel(w.changed()).await else {
            return Phase::Stop;
        };
        if event.event_type != EventType::Session {
            return Phase::Load(w);
        }
        match event.session_state {
            // Events during a connection loss may be lost: rebuild.
            SessionState::SyncConnected | SessionState::ConnectedReadOnly => Phase::Load(w),
            s if s.is_terminated() => Phase::Stop,
            _ => Phase::Wait(w),
        }
    }

    async fn read_children(&self) -> Result<Vec<(String, Vec<u8>)>, ZkError> {
        let names = match self.client.list_children(&self.path).await {
            Ok(c) => c,
            Err(ZkError::NoNode) => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            match self.client.get_data(&format!("{}/{name}", self.path)).await {
                Ok((data, _)) => out.push((name, data)),
                Err(ZkError::NoNode) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}
