//! Prometheus exposition of one proxy's [`Stats`], route and ZooKeeper state:
//! a private `PrometheusRecorder` (never installed globally), every metric
//! registered once at construction, values synced at scrape time.

use std::sync::{Arc, OnceLock};

use metrics::{Counter, Gauge, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use tokio::sync::watch;

use super::{ConnOutcome, IgnoredRecord, SessionState, Stats};
use crate::discovery::{DiscoveryStatus, ZkState};
use crate::routing::RouteTable;

const PREFIX: &str = "mysql_zk_proxy_";

/// Every [`ZkState`], in the order the `zookeeper_session_state` gauge lists them.
const ZK_STATES: [ZkState; 6] = [
    ZkState::Connecting,
    ZkState::Connected,
    ZkState::Disconnected,
    ZkState::Expired,
    ZkState::AuthFailed,
    ZkState::Closed,
];

/// The `state` label of a [`ZkState`] (exhaustive: a new variant must be named here).
pub fn zk_state_label(s: ZkState) -> &'static str {
    match s {
        ZkState::Connecting => "connecting",
        ZkState::Connected => "connected",
        ZkState::Disconnected => "disconnected",
        ZkState::Expired => "expired",
        ZkState::AuthFailed => "auth_failed",
        ZkState::Closed => "closed",
    }
}

/// Prometheus exposition for one proxy.
pub struct Metrics {
    stats: Arc<Stats>,
    table: Arc<RouteTable>,
    discovery: OnceLock<watch::Receiver<DiscoveryStatus>>,
    handle: PrometheusHandle,
    h: Handles,
}

/// The registered metric handles; `render` writes the current values into them.
struct Handles {
    connections_active: Gauge,
    connections_accepted: Counter,
    connections_by_outcome: Vec<(ConnOutcome, Counter)>,
    sessions: Vec<(SessionState, Gauge)>,
    bytes_client_to_backend: Counter,
    bytes_backend_to_client: Counter,
    route_epoch: Gauge,
    primary_known: Gauge,
    route_changes: Counter,
    records_ignored: Vec<(IgnoredRecord, Counter)>,
    zk_state: Vec<(ZkState, Gauge)>,
    zk_sessions_established: Counter,
    zk_sessions_expired: Counter,
    zk_disconnects: Counter,
}

/// Registers metrics on one recorder, describing each name once.
struct Registrar {
    recorder: PrometheusRecorder,
}

impl Registrar {
    fn key(name: &str, labels: &[(&'static str, &'static str)]) -> Key {
        let labels: Vec<Label> = labels.iter().map(|&(k, v)| Label::new(k, v)).collect();
        Key::from_parts(format!("{PREFIX}{name}"), labels)
    }

    fn name(name: &str) -> KeyName {
        KeyName::from(format!("{PREFIX}{name}"))
    }

    fn meta() -> Metadata<'static> {
        Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()))
    }

    fn counter(&self, name: &str, unit: Unit, help: &'static str) -> Counter {
        self.counter_with(name, unit, help, &[])
    }

    fn counter_with(
        &self,
        name: &str,
        unit: Unit,
        help: &'static str,
        labels: &[(&'static str, &'static str)],
    ) -> Counter {
        let help = SharedString::const_str(help);
        self.recorder
            .describe_counter(Self::name(name), Some(unit), help);
        self.recorder
            .register_counter(&Self::key(name, labels), &Self::meta())
    }

    fn gauge(&self, name: &str, unit: Unit, help: &'static str) -> Gauge {
        self.gauge_with(name, unit, help, &[])
    }

    fn gauge_with(
        &self,
        name: &str,
        unit: Unit,
        help: &'static str,
        labels: &[(&'static str, &'static str)],
    ) -> Gauge {
        let help = SharedString::const_str(help);
        self.recorder
            .describe_gauge(Self::name(name), Some(unit), help);
        self.recorder
            .register_gauge(&Self::key(name, labels), &Self::meta())
    }
}

impl Handles {
    fn register(r: &Registrar) -> Handles {
        Handles {
            connections_active: r.gauge(
                "client_connections_active",
                Unit::Count,
                "Client connections open now (every session state).",
            ),
            connections_accepted: r.counter(
                "client_connections_accepted_total",
                Unit::Count,
                "Client connections accepted.",
            ),
            connections_by_outcome: ConnOutcome::ALL
                .iter()
                .map(|&o| {
                    let c = r.counter_with(
                        "client_connections_total",
                        Unit::Count,
                        "Client connections closed, by how they ended.",
                        &[("outcome", o.label())],
                    );
                    (o, c)
                })
                .collect(),
            sessions: SessionState::ALL
                .iter()
                .map(|&s| {
                    let g = r.gauge_with(
                        "sessions",
                        Unit::Count,
                        "Client sessions open now, by state.",
                        &[("state", s.label())],
                    );
                    (s, g)
                })
                .collect(),
            bytes_client_to_backend: Self::bytes(r, "client_to_backend"),
            bytes_backend_to_client: Self::bytes(r, "backend_to_client"),
            route_epoch: r.gauge(
                "route_epoch",
                Unit::Count,
                "Epoch (or mzxid) of the current primary record; 0 when no primary is known.",
            ),
            primary_known: r.gauge(
                "primary_known",
                Unit::Count,
                "1 when a primary is known (new connections are routed), else 0.",
            ),
            route_changes: r.counter(
                "route_changes_total",
                Unit::Count,
                "Routes published after a ZooKeeper record was accepted.",
            ),
            records_ignored: IgnoredRecord::ALL
                .iter()
                .map(|&why| {
                    let c = r.counter_with(
                        "records_ignored_total",
                        Unit::Count,
                        "ZooKeeper primary records not applied, by reason.",
                        &[("reason", why.label())],
                    );
                    (why, c)
                })
                .collect(),
            zk_state: Self::zk_states(r),
            zk_sessions_established: r.counter(
                "zookeeper_sessions_established_total",
                Unit::Count,
                "ZooKeeper sessions established (the first one included).",
            ),
            zk_sessions_expired: r.counter(
                "zookeeper_sessions_expired_total",
                Unit::Count,
                "ZooKeeper sessions that expired.",
            ),
            zk_disconnects: r.counter(
                "zookeeper_disconnects_total",
                Unit::Count,
                "Times the ZooKeeper connection was lost while the session lived on.",
            ),
        }
    }

    fn bytes(r: &Registrar, direction: &'static str) -> Counter {
        r.counter_with(
            "bytes_total",
            Unit::Bytes,
            "Bytes relayed between clients and backends, by direction.",
            &[("direction", direction)],
        )
    }

    fn zk_states(r: &Registrar) -> Vec<(ZkState, Gauge)> {
        ZK_STATES
            .iter()
            .map(|&s| {
                let g = r.gauge_with(
                    "zookeeper_session_state",
                    Unit::Count,
                    "1 for the current state of the ZooKeeper session, 0 for the others.",
                    &[("state", zk_state_label(s))],
                );
                (s, g)
            })
            .collect()
    }
}

impl Metrics {
    pub fn new(stats: Arc<Stats>, table: Arc<RouteTable>) -> Metrics {
        let registrar = Registrar {
            recorder: PrometheusBuilder::new().build_recorder(),
        };
        let h = Handles::register(&registrar);
        Metrics {
            stats,
            table,
            discovery: OnceLock::new(),
            handle: registrar.recorder.handle(),
            h,
        }
    }

    /// Where `zookeeper_session_state` reads the session state; set once by
    /// the proxy after discovery starts (later calls are ignored). Until
    /// then every state reads 0.
    pub fn set_discovery(&self, status: watch::Receiver<DiscoveryStatus>) {
        let _ = self.discovery.set(status);
    }

    /// Prometheus text format, with every value read now.
    pub fn render(&self) -> String {
        self.sync_stats();
        self.sync_route();
        self.sync_zookeeper();
        self.handle.render()
    }

    fn sync_stats(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let (s, h) = (&self.stats, &self.h);
        h.connections_active.set(s.connections_active() as f64);
        h.connections_accepted
            .absolute(s.connections_accepted.load(Relaxed));
        for (o, c) in &h.connections_by_outcome {
            c.absolute(s.connections_with_outcome(*o));
        }
        for (state, g) in &h.sessions {
            g.set(s.sessions_in(*state) as f64);
        }
        h.bytes_client_to_backend
            .absolute(s.bytes_client_to_backend.load(Relaxed));
        h.bytes_backend_to_client
            .absolute(s.bytes_backend_to_client.load(Relaxed));
        h.route_changes.absolute(s.route_changes.load(Relaxed));
        for (why, c) in &h.records_ignored {
            c.absolute(s.records_ignored(*why));
        }
        h.zk_sessions_established
            .absolute(s.zk_sessions_established.load(Relaxed));
        h.zk_sessions_expired
            .absolute(s.zk_sessions_expired.load(Relaxed));
        h.zk_disconnects.absolute(s.zk_disconnects.load(Relaxed));
    }

    fn sync_route(&self) {
        let route = self.table.current();
        let epoch = route.primary.as_ref().map_or(0, |p| p.epoch);
        self.h.route_epoch.set(epoch as f64);
        self.h
            .primary_known
            .set(if route.primary.is_some() { 1.0 } else { 0.0 });
    }

    fn sync_zookeeper(&self) {
        let current = self.discovery.get().map(|rx| rx.borrow().state);
        for (state, g) in &self.h.zk_state {
            g.set(if Some(*state) == current { 1.0 } else { 0.0 });
        }
    }
}

#[cfg(test)]
#[path = "exposition_tests.rs"]
mod tests;
