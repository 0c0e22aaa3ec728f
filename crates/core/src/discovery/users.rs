//! The ZooKeeper half of the credential store: one child of
//! `zookeeper.users_path` per user, data `{"mysql_native_password":"*HEX"}`.
//! A persistent recursive watch on the path (children created, deleted,
//! changed) triggers a full reload into
//! [`CredentialStore::set_zookeeper`]; a bad child is skipped, logged and
//! counted, never fatal. One task per ZooKeeper session, started by the
//! session loop and stopped with it (the last users read stay in the store
//! until the next session has read them again).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;
use zookeeper_client::{
    AddWatchMode, Client, Error as ZkError, EventType, PersistentWatcher, SessionState,
};

use crate::failover::credentials::{parse_zookeeper_user, CredentialStore};
use crate::native_password::StoredHash;

/// What the session loop needs to start a users task on each session.
pub(crate) struct UsersSync {
    pub(crate) path: String,
    pub(crate) store: Arc<CredentialStore>,
    pub(crate) tracker: TaskTracker,
    pub(crate) retry: Duration,
}

impl UsersSync {
    /// Follow `path` on `client`'s session until the guard is dropped or
    /// the session ends.
    pub(crate) fn start(&self, client: &Client, cancel: &CancellationToken) -> DropGuard {
        let cancel = cancel.child_token();
        let task = UsersTask {
            client: client.clone(),
            path: self.path.clone(),
            store: self.store.clone(),
            cancel: cancel.clone(),
            retry: self.retry,
        };
        self.tracker.spawn(task.run());
        cancel.drop_guard()
    }
}

/// Where the users task is.
enum Phase {
    /// Set the persistent recursive watch.
    Arm,
    /// Read every child into the store.
    Load(PersistentWatcher),
    /// Wait for a change under the path.
    Wait(PersistentWatcher),
    Stop,
}

struct UsersTask {
    client: Client,
    path: String,
    store: Arc<CredentialStore>,
    cancel: CancellationToken,
    retry: Duration,
}

impl UsersTask {
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
        tracing::debug!(path = %self.path, "users watch stopped");
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
        match self.client.state() {
            s if s.is_terminated() => return Phase::Stop,
            // The watcher reports the reconnection: reload then, no retry storm.
            SessionState::Disconnected => {
                tracing::debug!(path = %self.path, error = %e, "cannot {what} the users znode while disconnected");
                if let Phase::Load(w) = then {
                    return Phase::Wait(w);
                }
            }
            _ => match super::DiscoveryError::denied("read", &self.path, e.clone()) {
                Some(denied) => {
                    tracing::warn!(error = %denied, retry_in = ?self.retry, "cannot {what} the users znode")
                }
                None => {
                    tracing::warn!(path = %self.path, error = %e, retry_in = ?self.retry, "cannot {what} the users znode")
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
        match self.or_cancel(self.read_users()).await {
            None => Phase::Stop,
            Some(Ok((users, skipped))) => {
                let count = users.len();
                let snapshot = self.store.set_zookeeper(users);
                tracing::info!(path = %self.path, users = count, skipped, total = snapshot.len(),
                    "users reloaded from ZooKeeper");
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

    /// Every valid child, and how many were skipped.
    async fn read_users(&self) -> Result<(HashMap<String, StoredHash>, u64), ZkError> {
        let children = match self.client.list_children(&self.path).await {
            Ok(c) => c,
            Err(ZkError::NoNode) => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut users = HashMap::new();
        let mut skipped = 0;
        for name in children {
            let data = match self.client.get_data(&format!("{}/{name}", self.path)).await {
                Ok((data, _)) => data,
                Err(ZkError::NoNode) => continue,
                Err(e) => return Err(e),
            };
            match parse_zookeeper_user(&name, &data) {
                Ok(hash) => {
                    users.insert(name, hash);
                }
                Err(e) => {
                    skipped += 1;
                    self.store.bad_zookeeper_entries.fetch_add(1, Relaxed);
                    tracing::warn!(path = %self.path, error = %e, "users znode child skipped");
                }
            }
        }
        Ok((users, skipped))
    }
}
