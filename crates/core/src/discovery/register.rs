//! This proxy's ephemeral registration znode (`<cluster>/proxies/<id>`,
//! docs/architecture.md, ZooKeeper contract) and its drain acknowledgement:
//! while the record says `draining` for epoch E, once no session is busy
//! (open transactions done, or `failover.drain_timeout` passed) the proxy
//! writes `"drained_epoch": E`, so a switchover tool can wait for every
//! registered proxy. One task per ZooKeeper session; the znode dies with the
//! session.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;
use zookeeper_client::{Acls, Client, CreateMode, Error as ZkError};

use crate::metrics::{SessionState, Stats};
use crate::routing::{RecordState, RouteTable};

/// How often the drain waits re-check the busy-session count.
const CHECK_EVERY: Duration = Duration::from_millis(10);

/// What the session loop needs to register on each session.
pub(crate) struct Registration {
    pub(crate) path: String,
    pub(crate) id: String,
    pub(crate) listen: String,
    pub(crate) table: Arc<RouteTable>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) drain_timeout: Duration,
    pub(crate) tracker: TaskTracker,
}

/// The znode's data.
#[derive(Debug, Serialize)]
struct Entry<'a> {
    id: &'a str,
    listen: &'a str,
    /// Epoch of the last `draining` record this proxy has drained for.
    drained_epoch: Option<u64>,
}

/// `<parent of the primary znode>/proxies/<id>`.
pub fn registration_path(primary_path: &str, id: &str) -> String {
    let cluster = primary_path.rsplit_once('/').map_or("", |(p, _)| p);
    format!("{cluster}/proxies/{id}")
}

impl Registration {
    /// Register on `client`'s session and acknowledge drains until the
    /// guard is dropped or the session ends.
    pub(crate) fn start(&self, client: &Client, cancel: &CancellationToken) -> DropGuard {
        let cancel = cancel.child_token();
        let task = Task {
            client: client.clone(),
            reg: self.snapshot(),
            cancel: cancel.clone(),
        };
        self.tracker.spawn(task.run());
        cancel.drop_guard()
    }

    fn snapshot(&self) -> Registration {
        Registration {
            path: self.path.clone(),
            id: self.id.clone(),
            listen: self.listen.clone(),
            table: self.table.clone(),
            stats: self.stats.clone(),
            drain_timeout: self.drain_timeout,
            tracker: self.tracker.clone(),
        }
    }
}

struct Task {
    client: Client,
    reg: Registration,
    cancel: CancellationToken,
}

impl Task {
    async fn run(self) {
        if let Err(e) = self.register().await {
            match super::DiscoveryError::denied("create", &self.reg.path, e.clone()) {
                Some(denied) => {
                    tracing::warn!(error = %denied, "cannot register this proxy in ZooKeeper")
                }
                None => {
                    tracing::warn!(path = %self.reg.path, error = %e, "cannot register this proxy in ZooKeeper")
                }
            }
            return;
        }
        tracing::info!(path = %self.reg.path, "proxy registered");
        let mut routes = self.reg.table.subscribe();
        let mut acked: Option<u64> = None;
        loop {
            let route = self.reg.table.current();
            let draining = (route.state == RecordState::Draining)
                .then(|| {
                    route
                        .primary
                        .as_ref()
                        .or(route.pending.as_ref())
                        .map(|p| p.epoch)
                })
                .flatten();
            if let Some(epoch) = draining.filter(|e| acked != Some(*e)) {
                if !self.drained().await {
                    return;
                }
                match self.write(Some(epoch)).await {
                    Ok(()) => {
                        tracing::info!(epoch, "drain acknowledged");
                        acked = Some(epoch);
                    }
                    Err(e) => tracing::warn!(epoch, error = %e, "cannot acknowledge the drain"),
                }
                continue;
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                r = routes.changed() => if r.is_err() { return },
            }
        }
    }

    /// Wait until no session is busy, or `drain_timeout` (busy sessions are
    /// then being aborted); false if cancelled.
    async fn drained(&self) -> bool {
        let deadline = tokio::time::Instant::now() + self.reg.drain_timeout;
        while self.reg.stats.sessions_in(SessionState::Busy) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::select! {
                _ = self.cancel.cancelled() => return false,
                _ = tokio::time::sleep(CHECK_EVERY) => {}
            }
        }
        true
    }

    fn data(&self, drained_epoch: Option<u64>) -> Vec<u8> {
        let entry = Entry {
            id: &self.reg.id,
            listen: &self.reg.listen,
            drained_epoch,
        };
        serde_json::to_vec(&entry).expect("plain struct serializes")
    }

    /// Create the ephemeral znode (parents as needed); one left by an
    /// earlier session of ours is replaced.
    async fn register(&self) -> Result<(), ZkError> {
        let path = &self.reg.path;
        let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let mut parent = String::new();
        for part in &parts[..parts.len().saturating_sub(1)] {
            parent.push('/');
            parent.push_str(part);
            match self.client.create(&parent, b"", &persistent).await {
                Ok(_) | Err(ZkError::NodeExists) => {}
                Err(e) => return Err(e),
            }
        }
        let ephemeral = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
        match self.client.create(path, &self.data(None), &ephemeral).await {
            Ok(_) => Ok(()),
            Err(ZkError::NodeExists) => {
                // A previous session's node not expired yet (or a proxy with the same id).
                let _ = self.client.delete(path, None).await;
                self.client
                    .create(path, &self.data(None), &ephemeral)
                    .await
                    .map(|_| ())
            }
            Err(e) => Err(e),
        }
    }

    async fn write(&self, drained_epoch: Option<u64>) -> Result<(), ZkError> {
        self.client
            .set_data(&self.reg.path, &self.data(drained_epoch), None)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::registration_path;

    #[test]
    fn registration_sits_beside_the_primary_znode() {
        assert_eq!(
            registration_path("/mysql/clusters/main/primary", "px-1"),
            "/mysql/clusters/main/proxies/px-1"
        );
        assert_eq!(registration_path("/primary", "a"), "/proxies/a");
    }
}
