//! Discovery: reads and watches the primary record in ZooKeeper and publishes
//! each accepted record as a new [`Route`](crate::routing::Route).
//!
//! - [`record`]: znode bytes → [`record::Record`] (pure parser).
//! - `apply`: ordering by epoch / mzxid, publishing routes, counters, status.
//! - `session`: the ZooKeeper session state machine (connect, read + watch,
//!   connection loss, session expiry, cancel).
//! - [`connect`]: one session attempt (`[zookeeper.auth]`, `[zookeeper.tls]`),
//!   the one way the whole crate opens ZooKeeper sessions;
//!   `diagnose`: why a TLS connection to ZooKeeper failed.
//! - `status`: the writer side of the [`DiscoveryStatus`] watch channel.
//! - `promote`: turns a verified pending primary into the route (`[monitor]`).
//! - `loss`: the `zookeeper.fail_closed_after` clock.
//! - `users`: the credential store's ZooKeeper half (`zookeeper.users_path`).
//! - [`replicas`]: the replica set under `<cluster>/replicas/`
//!   ([`replica_record`] parses one), followed by `children`.
//!
//! Contract (docs/architecture.md, ZooKeeper contract): a record ordered
//! below the route's high water is ignored; znode absent = no primary;
//! unparseable data keeps the route; a lost connection keeps the route; an
//! expired session is replaced by a new one, then the record is re-read and
//! re-watched.

use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ZookeeperConfig;
use crate::credentials::CredentialStore;
use crate::metrics::Stats;
use crate::routing::RouteTable;
use crate::verify::Verifier;

mod apply;
mod children;
pub mod connect;
pub mod diagnose;
mod loss;
mod promote;
pub mod record;
pub mod register;
pub mod replica_record;
pub mod replicas;
mod session;
mod status;
mod users;

/// Why discovery could not talk to ZooKeeper (the ZooKeeper cause is kept).
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// No session: unreachable, timed out, TLS refused, or unreadable credentials.
    #[error(transparent)]
    Session(#[from] connect::ConnectError),
    #[error("invalid `{key}`: {0}", key = .0.key())]
    TlsFiles(#[source] crate::tls::TlsError),
    /// The znode's ACL refuses this session (no or wrong `zookeeper.auth`).
    #[error("ZooKeeper ACL denies {op} of {path}: {source}; set zookeeper.auth to a digest user the ACL allows (or check its password)")]
    Denied {
        op: &'static str,
        path: String,
        #[source]
        source: zookeeper_client::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: zookeeper_client::Error,
    },
}

impl DiscoveryError {
    /// `source` as a `Denied` error when it is an ACL refusal (NoAuth).
    pub(crate) fn denied(
        op: &'static str,
        path: &str,
        source: zookeeper_client::Error,
    ) -> Option<DiscoveryError> {
        if source != zookeeper_client::Error::NoAuth {
            return None;
        }
        Some(DiscoveryError::Denied {
            op,
            path: path.to_owned(),
            source,
        })
    }
}

/// The ZooKeeper session as the proxy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ZkState {
    /// No session yet (starting, or re-creating one after expiry).
    Connecting,
    /// Session usable; the watch is set.
    Connected,
    /// Connection lost, session may still be alive; routing keeps the last primary.
    Disconnected,
    /// Session expired; a new one is being created.
    Expired,
    /// Authentication failed / access denied.
    AuthFailed,
    /// Discovery stopped (proxy shutting down).
    Closed,
}

impl ZkState {
    /// Every state, in the order the `zookeeper_session_state` gauge lists them.
    pub const ALL: [ZkState; 6] = [
        ZkState::Connecting,
        ZkState::Connected,
        ZkState::Disconnected,
        ZkState::Expired,
        ZkState::AuthFailed,
        ZkState::Closed,
    ];

    /// The `state` label of the `zookeeper_session_state` gauge and of
    /// `/ready` (exhaustive: a new variant must be named here).
    pub fn label(self) -> &'static str {
        match self {
            ZkState::Connecting => "connecting",
            ZkState::Connected => "connected",
            ZkState::Disconnected => "disconnected",
            ZkState::Expired => "expired",
            ZkState::AuthFailed => "auth_failed",
            ZkState::Closed => "closed",
        }
    }
}

/// What /status and /ready show about discovery. Published through a watch.
#[derive(Debug, Clone, Serialize)]
pub struct DiscoveryStatus {
    pub state: ZkState,
    /// When `state` last changed.
    #[serde(with = "crate::time::rfc3339")]
    pub since: SystemTime,
    /// The last raw record read (UTF-8 lossy), if any.
    pub last_record: Option<String>,
    /// Why the last record was not applied, if it was not.
    pub last_error: Option<String>,
    /// ZooKeeper session id (hex), when connected.
    pub session_id: Option<String>,
    /// The last ZooKeeper failure (connect, read), cleared once connected.
    pub zk_error: Option<String>,
    /// Why the record's primary is not routed to yet: the last failed
    /// verification (read-only, wrong server, unreachable).
    pub verify_error: Option<String>,
    /// Set while routing is stopped by `zookeeper.fail_closed_after`: why.
    pub fail_closed: Option<String>,
}

impl DiscoveryStatus {
    pub fn starting() -> Self {
        DiscoveryStatus {
            state: ZkState::Connecting,
            since: SystemTime::now(),
            last_record: None,
            last_error: None,
            session_id: None,
            zk_error: None,
            verify_error: None,
            fail_closed: None,
        }
    }
    /// The ZooKeeper side of `/ready`: a session that can serve reads.
    pub fn usable(&self) -> bool {
        self.state == ZkState::Connected
    }
}

/// Handle on the running discovery task.
#[derive(Clone)]
pub struct DiscoveryHandle {
    pub status: watch::Receiver<DiscoveryStatus>,
}

/// What discovery does besides following the record.
#[derive(Default)]
pub struct Extras {
    /// Verify each new primary before routing to it (`[monitor]`); `None` = route at once.
    pub verifier: Option<Verifier>,
    /// Where users read under `zookeeper.users_path` go (ignored when that is unset).
    pub credentials: Option<Arc<CredentialStore>>,
    /// Register this proxy (`<cluster>/proxies/<id>`) and acknowledge drains.
    pub registration: Option<RegistrationInfo>,
    /// The `[zookeeper.tls]` material, kept current by the proxy's reloads.
    /// `None` with TLS enabled: read from the files at each session attempt.
    pub zk_tls: Option<Arc<crate::tls::ZkTls>>,
    /// Where the replica records under `<cluster>/replicas/` go (the
    /// read-only listener); `None` = not followed.
    pub replicas: Option<Arc<replicas::ReplicaSet>>,
}

/// Who this proxy is, for its registration znode.
pub struct RegistrationInfo {
    pub id: String,
    /// The client address it listens on (shown in the znode).
    pub listen: String,
    pub stats: Arc<Stats>,
    pub drain_timeout: std::time::Duration,
}

/// Start the discovery task on `tracker`, with verification and/or the ZooKeeper
/// half of the credential store (`extras`); it runs until `cancel` fires.
pub fn spawn_with(
    cfg: ZookeeperConfig,
    extras: Extras,
    table: Arc<RouteTable>,
    stats: Arc<Stats>,
    cancel: CancellationToken,
    tracker: &TaskTracker,
) -> DiscoveryHandle {
    let (tx, rx) = watch::channel(DiscoveryStatus::starting());
    let status = status::StatusTx::new(tx);
    if let Some(verifier) = extras.verifier.clone() {
        let promoter = promote::Promoter {
            verifier,
            table: table.clone(),
            status: status.clone(),
            cancel: cancel.clone(),
        };
        tracker.spawn(promoter.run());
    }
    let users = match (&cfg.users_path, extras.credentials) {
        (Some(path), Some(store)) => Some(children::ChildrenSync {
            label: "users znode",
            path: path.clone(),
            sink: store,
            tracker: tracker.clone(),
            retry: cfg.retry_backoff.max(std::time::Duration::from_millis(10)),
        }),
        _ => None,
    };
    let replicas = extras.replicas.map(|set| children::ChildrenSync {
        label: "replicas znode",
        path: replicas::replicas_path(&cfg.primary_path),
        sink: set,
        tracker: tracker.clone(),
        retry: cfg.retry_backoff.max(std::time::Duration::from_millis(10)),
    });
    let registration = extras.registration.map(|r| register::Registration {
        path: register::registration_path(&cfg.primary_path, &r.id),
        id: r.id,
        listen: r.listen,
        table: table.clone(),
        stats: r.stats,
        drain_timeout: r.drain_timeout,
        tracker: tracker.clone(),
    });
    let discovery = session::Discovery {
        registration,
        tls: extras.zk_tls,
        loss: loss::LossClock::new(cfg.fail_closed_after),
        users,
        replicas,
        cfg,
        out: apply::Publisher {
            table,
            stats,
            status,
            verify: extras.verifier.is_some(),
        },
        cancel,
    };
    tracker.spawn(discovery.run());
    DiscoveryHandle { status: rx }
}

#[cfg(test)]
mod tests {
    use super::ZkState;

    #[test]
    fn every_state_has_its_gauge_label_in_order() {
        let labels = ZkState::ALL.map(ZkState::label);
        assert_eq!(labels, crate::metrics::ZK_STATE_LABELS);
    }
}
