//! Prometheus exposition of one proxy's [`Stats`], route and ZooKeeper state:
//! a private `PrometheusRecorder` (never installed globally), every metric
//! registered once at construction, values synced at scrape time.

use mysql_zk_proxy_protocol::errors::ProxyErrorCode;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};

use metrics::{Counter, Gauge, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use super::{CommandKind, ConnOutcome, IgnoredRecord, SessionState, Stats};
use crate::routing::RouteTable;

const PREFIX: &str = "mysql_zk_proxy_";

/// The `state` labels of the `zookeeper_session_state` gauge, in the order
/// it lists them: the label of every discovery `ZkState` (discovery's tests
/// keep the two lists equal; metrics does not know discovery's types).
pub(crate) const ZK_STATE_LABELS: [&str; 6] = [
    "connecting",
    "connected",
    "disconnected",
    "expired",
    "auth_failed",
    "closed",
];

/// Reads the `state` label of the ZooKeeper session now.
type ZkStateSource = Box<dyn Fn() -> &'static str + Send + Sync>;

/// Appends more metrics in the text format (the read-only listener's,
/// whose replicas come and go): called at each scrape.
type ExtraSource = Box<dyn Fn(&mut String) + Send + Sync>;

/// Prometheus exposition for one proxy.
pub struct Metrics {
    stats: Arc<Stats>,
    table: Arc<RouteTable>,
    zk_state: OnceLock<ZkStateSource>,
    extra: OnceLock<ExtraSource>,
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
    route: RouteHandles,
    zk: ZkHandles,
    ops: OpsHandles,
}

struct OpsHandles {
    commands: Vec<(CommandKind, Counter)>,
    errors: Vec<(ProxyErrorCode, Counter)>,
    /// Config reloads: (applied?, counter).
    reloads: Vec<(bool, Counter)>,
}

struct RouteHandles {
    epoch: Gauge,
    primary_known: Gauge,
    changes: Counter,
    records_ignored: Vec<(IgnoredRecord, Counter)>,
    sessions_migrated: Counter,
    sessions_closed_by_failover: Counter,
    transactions_aborted: Counter,
    acknowledged: Counter,
    missing_last: Gauge,
    missing: Counter,
}

struct ZkHandles {
    state: Vec<(&'static str, Gauge)>,
    sessions_established: Counter,
    sessions_expired: Counter,
    disconnects: Counter,
}

/// Registers metrics on one recorder, describing each name once.
struct Registrar {
    recorder: PrometheusRecorder,
}

impl Registrar {
    fn key(name: &str, label: Option<(&'static str, &'static str)>) -> Key {
        let labels: Vec<Label> = label.map(|(k, v)| Label::new(k, v)).into_iter().collect();
        Key::from_parts(format!("{PREFIX}{name}"), labels)
    }

    fn key_name(name: &str) -> KeyName {
        KeyName::from(format!("{PREFIX}{name}"))
    }

    fn meta() -> Metadata<'static> {
        Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()))
    }

    fn counter(&self, name: &str, unit: Unit, help: &'static str) -> Counter {
        self.counter_at(name, unit, help, None)
    }

    fn counter_at(
        &self,
        name: &str,
        unit: Unit,
        help: &'static str,
        label: Option<(&'static str, &'static str)>,
    ) -> Counter {
        let help = SharedString::const_str(help);
        self.recorder
            .describe_counter(Self::key_name(name), Some(unit), help);
        self.recorder
            .register_counter(&Self::key(name, label), &Self::meta())
    }

    fn gauge(&self, name: &str, help: &'static str) -> Gauge {
        self.gauge_at(name, help, None)
    }

    fn gauge_at(
        &self,
        name: &str,
        help: &'static str,
        label: Option<(&'static str, &'static str)>,
    ) -> Gauge {
        let help = SharedString::const_str(help);
        self.recorder
            .describe_gauge(Self::key_name(name), Some(Unit::Count), help);
        self.recorder
            .register_gauge(&Self::key(name, label), &Self::meta())
    }
}

/// One handle per value of a label, all registered up front (so each series
/// is exposed at 0 before its first event).
fn per_value<T: Copy, H>(
    values: &[T],
    label: fn(T) -> &'static str,
    make: impl Fn(&'static str) -> H,
) -> Vec<(T, H)> {
    values.iter().map(|&v| (v, make(label(v)))).collect()
}

impl Handles {
    fn register(r: &Registrar) -> Handles {
        let bytes = |direction| {
            r.counter_at(
                "bytes_total",
                Unit::Bytes,
                "Bytes relayed between clients and backends, by direction.",
                Some(("direction", direction)),
            )
        };
        Handles {
            connections_active: r.gauge(
                "client_connections_active",
                "Client connections open now (every session state).",
            ),
            connections_accepted: r.counter(
                "client_connections_accepted_total",
                Unit::Count,
                "Client connections accepted.",
            ),
            connections_by_outcome: per_value(&ConnOutcome::ALL, ConnOutcome::label, |v| {
                r.counter_at(
                    "client_connections_total",
                    Unit::Count,
                    "Client connections closed, by how they ended.",
                    Some(("outcome", v)),
                )
            }),
            sessions: per_value(&SessionState::ALL, SessionState::label, |v| {
                r.gauge_at(
                    "sessions",
                    "Client sessions open now, by state.",
                    Some(("state", v)),
                )
            }),
            bytes_client_to_backend: bytes("client_to_backend"),
            bytes_backend_to_client: bytes("backend_to_client"),
            route: RouteHandles::register(r),
            zk: ZkHandles::register(r),
            ops: OpsHandles::register(r),
        }
    }
}

impl RouteHandles {
    fn register(r: &Registrar) -> RouteHandles {
        RouteHandles {
            epoch: r.gauge(
                "route_epoch",
                "Epoch (or mzxid) of the current primary record; 0 when no primary is known.",
            ),
            primary_known: r.gauge(
                "primary_known",
                "1 when a primary is known (new connections are routed), else 0.",
            ),
            changes: r.counter(
                "route_changes_total",
                Unit::Count,
                "Routes published after a ZooKeeper record was accepted.",
            ),
            records_ignored: per_value(&IgnoredRecord::ALL, IgnoredRecord::label, |v| {
                r.counter_at(
                    "records_ignored_total",
                    Unit::Count,
                    "ZooKeeper primary records not applied, by reason.",
                    Some(("reason", v)),
                )
            }),
            sessions_migrated: r.counter(
                "sessions_migrated_total",
                Unit::Count,
                "Client sessions moved to a new primary at a rest point without the client noticing.",
            ),
            sessions_closed_by_failover: r.counter(
                "sessions_closed_by_failover_total",
                Unit::Count,
                "Client sessions closed by a failover (error 9005 or 9006 at their next command).",
            ),
            transactions_aborted: r.counter(
                "transactions_aborted_by_failover_total",
                Unit::Count,
                "Open transactions rolled back because they outlived failover.drain_timeout.",
            ),
            acknowledged: r.counter(
                "acknowledged_writes_total",
                Unit::Count,
                "Commit OKs carrying a GTID sent to clients (entries of the ledger).",
            ),
            missing_last: r.gauge(
                "acknowledged_writes_missing",
                "Acknowledged commits the new primary lacked at the last move of the route to another server.",
            ),
            missing: r.counter(
                "acknowledged_writes_missing_total",
                Unit::Count,
                "Acknowledged commits the new primary lacked, summed over every move of the route.",
            ),
        }
    }
}

impl ZkHandles {
    fn register(r: &Registrar) -> ZkHandles {
        ZkHandles {
            state: per_value(
                &ZK_STATE_LABELS,
                |l| l,
                |v| {
                    r.gauge_at(
                        "zookeeper_session_state",
                        "1 for the current state of the ZooKeeper session, 0 for the others.",
                        Some(("state", v)),
                    )
                },
            ),
            sessions_established: r.counter(
                "zookeeper_sessions_established_total",
                Unit::Count,
                "ZooKeeper sessions established (the first one included).",
            ),
            sessions_expired: r.counter(
                "zookeeper_sessions_expired_total",
                Unit::Count,
                "ZooKeeper sessions that expired.",
            ),
            disconnects: r.counter(
                "zookeeper_disconnects_total",
                Unit::Count,
                "Times the ZooKeeper connection was lost while the session lived on.",
            ),
        }
    }
}

impl OpsHandles {
    fn register(r: &Registrar) -> OpsHandles {
        let result = |ok: bool| if ok { "ok" } else { "error" };
        OpsHandles {
            commands: per_value(&CommandKind::ALL, CommandKind::label, |v| {
                r.counter_at(
                    "client_commands_total",
                    Unit::Count,
                    "Commands sent by clients, by type.",
                    Some(("command", v)),
                )
            }),
            errors: per_value(&ProxyErrorCode::ALL, ProxyErrorCode::label, |v| {
                r.counter_at(
                    "proxy_errors_total",
                    Unit::Count,
                    "Error packets the proxy itself sent to clients, by error code (docs/errors.md).",
                    Some(("code", v)),
                )
            }),
            reloads: per_value(&[true, false], result, |v| {
                r.counter_at(
                    "config_reloads_total",
                    Unit::Count,
                    "Configuration reloads (SIGHUP), by result.",
                    Some(("result", v)),
                )
            }),
        }
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
            zk_state: OnceLock::new(),
            extra: OnceLock::new(),
            handle: registrar.recorder.handle(),
            h,
        }
    }

    /// Where `zookeeper_session_state` reads the session state (one of
    /// [`ZK_STATE_LABELS`]); set once by the proxy after discovery starts
    /// (later calls are ignored). Until then every state reads 0.
    pub(crate) fn set_zk_state(&self, current: impl Fn() -> &'static str + Send + Sync + 'static) {
        let _ = self.zk_state.set(Box::new(current));
    }

    /// Where the read-only listener's metrics are rendered from; set once
    /// by the proxy when that listener is on (later calls are ignored).
    pub(crate) fn set_extra(&self, render: impl Fn(&mut String) + Send + Sync + 'static) {
        let _ = self.extra.set(Box::new(render));
    }

    /// Prometheus text format, with every value read now.
    pub(crate) fn render(&self) -> String {
        self.sync_connections();
        self.sync_route();
        self.sync_zookeeper();
        self.sync_ops();
        let mut text = self.handle.render();
        self.render_histograms(&mut text);
        if let Some(extra) = self.extra.get() {
            extra(&mut text);
        }
        text
    }

    fn sync_ops(&self) {
        let (s, h) = (&self.stats.ops, &self.h.ops);
        for (code, c) in &h.errors {
            c.absolute(s.errors(*code));
        }
        for (kind, c) in &h.commands {
            c.absolute(s.commands(*kind));
        }
        for (ok, c) in &h.reloads {
            c.absolute(s.reloads(*ok));
        }
    }

    /// The latency histograms, rendered from their atomics.
    fn render_histograms(&self, text: &mut String) {
        let ops = &self.stats.ops;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        ops.handshake.render(
            &format!("{PREFIX}handshake_duration_seconds"),
            "Time from accepting a client to its login OK, in seconds.",
            text,
        );
        ops.backend_connect.render(
            &format!("{PREFIX}backend_connect_duration_seconds"),
            "Time to connect to the primary and read its greeting (successful attempts), in seconds.",
            text,
        );
        ops.statement_hold.render(
            &format!("{PREFIX}statement_hold_duration_seconds"),
            "Statements held at a rest point during a failover, from the stop until sent to the new primary, in seconds.",
            text,
        );
    }

    fn sync_connections(&self) {
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
    }

    fn sync_route(&self) {
        let (s, h) = (&self.stats, &self.h.route);
        let route = self.table.current();
        let epoch = route.primary.as_ref().map_or(0, |p| p.epoch);
        h.epoch.set(epoch as f64);
        h.primary_known.set(flag(route.primary.is_some()));
        h.changes.absolute(s.route_changes.load(Relaxed));
        for (why, c) in &h.records_ignored {
            c.absolute(s.records_ignored(*why));
        }
        h.sessions_migrated
            .absolute(s.sessions_migrated.load(Relaxed));
        h.sessions_closed_by_failover
            .absolute(s.sessions_closed_by_failover.load(Relaxed));
        h.transactions_aborted
            .absolute(s.transactions_aborted.load(Relaxed));
        h.acknowledged.absolute(s.acknowledged_writes.load(Relaxed));
        h.missing_last
            .set(s.acknowledged_missing_last.load(Relaxed) as f64);
        h.missing.absolute(s.acknowledged_missing.load(Relaxed));
    }

    fn sync_zookeeper(&self) {
        let (s, h) = (&self.stats, &self.h.zk);
        let current = self.zk_state.get().map(|read| read());
        for (state, g) in &h.state {
            g.set(flag(Some(*state) == current));
        }
        h.sessions_established
            .absolute(s.zk_sessions_established.load(Relaxed));
        h.sessions_expired
            .absolute(s.zk_sessions_expired.load(Relaxed));
        h.disconnects.absolute(s.zk_disconnects.load(Relaxed));
    }
}

/// A 0/1 gauge value.
fn flag(on: bool) -> f64 {
    if on {
        1.0
    } else {
        0.0
    }
}

#[cfg(test)]
#[path = "exposition_tests.rs"]
mod tests;
