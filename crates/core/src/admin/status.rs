//! The `/status` document: serde types and how they are read from the
//! route table, discovery status and counters.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::SystemTime;

use serde::Serialize;

use super::AdminState;
use crate::discovery::DiscoveryStatus;
use crate::listener::admission::ListedSession;
use crate::metrics::{ConnOutcome, IgnoredRecord, SessionState, Stats};
use crate::reload::ReloadRecord;
use crate::routing::{Primary, RecordState, Route};

/// `GET /status`.
#[derive(Debug, Serialize)]
pub struct Status {
    pub version: &'static str,
    #[serde(with = "crate::time::rfc3339")]
    pub started: SystemTime,
    pub uptime_seconds: u64,
    pub listen_address: String,
    /// `null` when ready, else the reason `/ready` gives.
    pub not_ready: Option<String>,
    /// `null` when no primary is known.
    pub primary: Option<PrimaryStatus>,
    pub route: RouteStatus,
    pub zookeeper: ZookeeperStatus,
    /// Live client sessions by state.
    pub sessions: BTreeMap<&'static str, i64>,
    pub connections: Connections,
    pub bytes: ByteCounts,
    pub route_changes: u64,
    /// ZooKeeper records not applied, by reason.
    pub records_ignored: BTreeMap<&'static str, u64>,
    /// The last SIGHUP reload (`null` before the first).
    pub last_reload: Option<ReloadRecord>,
    /// The oldest live sessions (at most 100): id, client, via, since.
    pub sessions_list: Vec<ListedSession>,
    /// The last failover seen by this proxy (phases and session outcomes).
    pub last_failover: Option<crate::timeline::TimelineView>,
    /// The read-only listener and its replicas (absent when it is off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only: Option<crate::replicas::status::ReadOnlyView>,
    /// Acknowledged commits and the loss reports of the route's moves.
    pub ledger: crate::acknowledged::LedgerStatus,
}

#[derive(Debug, Serialize)]
pub struct PrimaryStatus {
    pub host: String,
    pub port: u16,
    /// `host:port` (IPv6 bracketed).
    pub address: String,
    pub epoch: u64,
    pub server_id: Option<u64>,
    pub server_uuid: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RouteStatus {
    pub generation: u64,
    /// When this route was published.
    #[serde(with = "crate::time::rfc3339")]
    pub since: SystemTime,
    /// `serving` or `draining` (planned switchover in progress).
    pub record_state: &'static str,
}

#[derive(Debug, Serialize)]
pub struct ZookeeperStatus {
    /// The connect string as configured.
    pub connect: String,
    pub primary_path: String,
    /// `zookeeper.tls.enabled`: every server is reached over TLS.
    pub tls: bool,
    /// state, since, session_id, last_record, last_error.
    #[serde(flatten)]
    pub discovery: DiscoveryStatus,
    pub sessions_established: u64,
    pub sessions_expired: u64,
    pub disconnects: u64,
}

#[derive(Debug, Serialize)]
pub struct Connections {
    pub active: i64,
    pub accepted: u64,
    /// Closed connections by how they ended.
    pub by_outcome: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Serialize)]
pub struct ByteCounts {
    pub client_to_backend: u64,
    pub backend_to_client: u64,
}

impl Status {
    /// Read everything now.
    pub fn collect(state: &AdminState) -> Status {
        let route = state.table.current();
        let stats = &state.stats;
        let uptime = SystemTime::now()
            .duration_since(state.started)
            .unwrap_or_default();
        Status {
            version: env!("CARGO_PKG_VERSION"),
            started: state.started,
            uptime_seconds: uptime.as_secs(),
            listen_address: state.listen_addr.to_string(),
            not_ready: state.not_ready(),
            primary: route.primary.as_ref().map(PrimaryStatus::from),
            route: RouteStatus::from(route.as_ref()),
            zookeeper: ZookeeperStatus::collect(state),
            sessions: SessionState::ALL
                .iter()
                .map(|&s| (s.label(), stats.sessions_in(s)))
                .collect(),
            connections: Connections::from(stats.as_ref()),
            bytes: ByteCounts {
                client_to_backend: stats.bytes_client_to_backend.load(Relaxed),
                backend_to_client: stats.bytes_backend_to_client.load(Relaxed),
            },
            route_changes: stats.route_changes.load(Relaxed),
            records_ignored: IgnoredRecord::ALL
                .iter()
                .map(|&why| (why.label(), stats.records_ignored(why)))
                .collect(),
            last_reload: state.config.last_reload(),
            sessions_list: state.registry.list(),
            last_failover: state.timeline.last(),
            read_only: state
                .read_only
                .as_ref()
                .map(|(r, addr)| r.view(addr.clone())),
            ledger: state.ledger.status(stats.acknowledged_writes.load(Relaxed)),
        }
    }
}

impl From<&Primary> for PrimaryStatus {
    fn from(p: &Primary) -> Self {
        PrimaryStatus {
            host: p.host.clone(),
            port: p.port,
            address: p.address(),
            epoch: p.epoch,
            server_id: p.server_id,
            server_uuid: p.server_uuid.clone(),
        }
    }
}

impl From<&Route> for RouteStatus {
    fn from(r: &Route) -> Self {
        RouteStatus {
            generation: r.generation,
            since: r.since,
            record_state: match r.state {
                RecordState::Serving => "serving",
                RecordState::Draining => "draining",
            },
        }
    }
}

impl ZookeeperStatus {
    fn collect(state: &AdminState) -> Self {
        let config = state.config.get();
        let zk = &config.zookeeper;
        let stats = &state.stats;
        ZookeeperStatus {
            connect: zk.connect.clone(),
            primary_path: zk.primary_path.clone(),
            tls: zk.tls.enabled,
            discovery: state.discovery.status.borrow().clone(),
            sessions_established: stats.zk_sessions_established.load(Relaxed),
            sessions_expired: stats.zk_sessions_expired.load(Relaxed),
            disconnects: stats.zk_disconnects.load(Relaxed),
        }
    }
}

impl From<&Stats> for Connections {
    fn from(stats: &Stats) -> Self {
        Connections {
            active: stats.connections_active(),
            accepted: stats.connections_accepted.load(Relaxed),
            by_outcome: ConnOutcome::ALL
                .iter()
                .map(|&o| (o.label(), stats.connections_with_outcome(o)))
                .collect(),
        }
    }
}
