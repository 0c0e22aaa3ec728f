//! Counters the proxy keeps (plain atomics on the data path) and their
//! Prometheus exposition: one recorder per proxy, never installed globally,
//! every metric registered once with help text, synced from the atomics at
//! scrape time. The list is documented in docs/metrics.md.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// How a client connection ended (label `outcome`, low cardinality).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnOutcome {
    /// Relayed until the client or the backend closed it normally.
    Closed,
    /// No primary became known within `failover.hold_timeout`.
    NoPrimary,
    /// The primary could not be reached (refused, timeout, bad greeting).
    BackendUnreachable,
    /// The backend rejected the login (its own error was forwarded).
    AuthFailed,
    /// The backend closed or broke the connection mid-session.
    BackendLost,
    /// The client broke the protocol or its socket failed.
    ClientError,
    /// Closed because the proxy shut down.
    Shutdown,
    /// Closed by a failover: not migratable, migration failed, or a
    /// transaction aborted (the client got a 9005/9006 error).
    FailoverClosed,
    /// Refused with error 1040: `listen.max_connections` reached.
    TooManyConnections,
    /// No login within `listen.handshake_timeout` (or no PROXY header in time).
    HandshakeTimeout,
    /// At rest longer than `listen.idle_timeout`.
    IdleTimeout,
    /// A PROXY protocol header missing, malformed, or from an untrusted source.
    ProxyProtocol,
}

impl ConnOutcome {
    pub const ALL: [ConnOutcome; 12] = [
        ConnOutcome::Closed,
        ConnOutcome::NoPrimary,
        ConnOutcome::BackendUnreachable,
        ConnOutcome::AuthFailed,
        ConnOutcome::BackendLost,
        ConnOutcome::ClientError,
        ConnOutcome::Shutdown,
        ConnOutcome::FailoverClosed,
        ConnOutcome::TooManyConnections,
        ConnOutcome::HandshakeTimeout,
        ConnOutcome::IdleTimeout,
        ConnOutcome::ProxyProtocol,
    ];
    pub fn label(self) -> &'static str {
        match self {
            ConnOutcome::Closed => "closed",
            ConnOutcome::NoPrimary => "no_primary",
            ConnOutcome::BackendUnreachable => "backend_unreachable",
            ConnOutcome::AuthFailed => "auth_failed",
            ConnOutcome::BackendLost => "backend_lost",
            ConnOutcome::ClientError => "client_error",
            ConnOutcome::Shutdown => "shutdown",
            ConnOutcome::FailoverClosed => "failover_closed",
            ConnOutcome::TooManyConnections => "too_many_connections",
            ConnOutcome::HandshakeTimeout => "handshake_timeout",
            ConnOutcome::IdleTimeout => "idle_timeout",
            ConnOutcome::ProxyProtocol => "proxy_protocol",
        }
    }
}

/// Where a live session is (label `state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Accepted, waiting for a primary to be known (greeting delayed).
    WaitingForPrimary,
    /// Connecting to the backend / exchanging the greeting and auth.
    Handshake,
    /// Authenticated, no response outstanding, no transaction open.
    Idle,
    /// A command is in flight or a transaction is open.
    Busy,
}

impl SessionState {
    pub const ALL: [SessionState; 4] = [
        SessionState::WaitingForPrimary,
        SessionState::Handshake,
        SessionState::Idle,
        SessionState::Busy,
    ];
    pub fn label(self) -> &'static str {
        match self {
            SessionState::WaitingForPrimary => "waiting_for_primary",
            SessionState::Handshake => "handshake",
            SessionState::Idle => "idle",
            SessionState::Busy => "busy",
        }
    }
}

/// Why a ZooKeeper record was not applied (label `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoredRecord {
    /// Lower epoch (or mzxid) than the current route.
    Stale,
    /// Data that is neither the JSON record nor `host:port`.
    Unparseable,
}

impl IgnoredRecord {
    pub const ALL: [IgnoredRecord; 2] = [IgnoredRecord::Stale, IgnoredRecord::Unparseable];
    pub fn label(self) -> &'static str {
        match self {
            IgnoredRecord::Stale => "stale",
            IgnoredRecord::Unparseable => "unparseable",
        }
    }
}

/// The proxy's counters. Cheap to bump from any task; shared as `Arc<Stats>`.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections_accepted: AtomicU64,
    connections_by_outcome: [AtomicU64; ConnOutcome::ALL.len()],
    sessions_by_state: [AtomicI64; 4],
    pub bytes_client_to_backend: AtomicU64,
    pub bytes_backend_to_client: AtomicU64,
    pub route_changes: AtomicU64,
    records_ignored: [AtomicU64; 2],
    /// ZooKeeper sessions established (the first one included).
    pub zk_sessions_established: AtomicU64,
    /// ZooKeeper sessions that expired (each is followed by a new one).
    pub zk_sessions_expired: AtomicU64,
    /// Times the ZooKeeper connection was lost while the session lived on.
    pub zk_disconnects: AtomicU64,
    /// Sessions moved to a new primary at a rest point.
    pub sessions_migrated: AtomicU64,
    /// Sessions closed by a failover (not migratable, or migration failed).
    pub sessions_closed_by_failover: AtomicU64,
    /// Transactions aborted because they outlived `failover.drain_timeout`.
    pub transactions_aborted: AtomicU64,
    /// Commit OKs with a GTID sent to clients (the ledger's entries).
    pub acknowledged_writes: AtomicU64,
    /// Acknowledged commits the new primary lacked at the last move of the
    /// route to another server, and at every move together.
    pub acknowledged_missing_last: AtomicU64,
    pub acknowledged_missing: AtomicU64,
    /// Commands, latencies, reloads.
    pub ops: OpsStats,
}

impl Stats {
    pub fn new() -> Arc<Stats> {
        Arc::new(Stats::default())
    }

    pub(crate) fn connection_closed(&self, outcome: ConnOutcome) {
        self.connections_by_outcome[outcome as usize].fetch_add(1, Relaxed);
    }

    pub fn connections_with_outcome(&self, outcome: ConnOutcome) -> u64 {
        self.connections_by_outcome[outcome as usize].load(Relaxed)
    }

    pub(crate) fn record_ignored(&self, why: IgnoredRecord) {
        self.records_ignored[why as usize].fetch_add(1, Relaxed);
    }

    pub fn records_ignored(&self, why: IgnoredRecord) -> u64 {
        self.records_ignored[why as usize].load(Relaxed)
    }

    /// Sessions currently in `state`.
    pub fn sessions_in(&self, state: SessionState) -> i64 {
        self.sessions_by_state[state as usize].load(Relaxed)
    }

    /// Live client connections (every state).
    pub fn connections_active(&self) -> i64 {
        self.sessions_by_state.iter().map(|s| s.load(Relaxed)).sum()
    }

    /// Enter a state; the returned guard moves between states and leaves on drop.
    pub fn session(self: &Arc<Self>, state: SessionState) -> SessionGauge {
        self.sessions_by_state[state as usize].fetch_add(1, Relaxed);
        SessionGauge {
            stats: self.clone(),
            state,
        }
    }
}

/// Keeps a session counted in exactly one [`SessionState`] while it lives.
#[derive(Debug)]
pub struct SessionGauge {
    stats: Arc<Stats>,
    state: SessionState,
}

impl SessionGauge {
    pub fn set(&mut self, state: SessionState) {
        if state != self.state {
            self.stats.sessions_by_state[self.state as usize].fetch_sub(1, Relaxed);
            self.stats.sessions_by_state[state as usize].fetch_add(1, Relaxed);
            self.state = state;
        }
    }
    pub fn state(&self) -> SessionState {
        self.state
    }
}

impl Drop for SessionGauge {
    fn drop(&mut self) {
        self.stats.sessions_by_state[self.state as usize].fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauge_moves_and_leaves() {
        let s = Stats::new();
        {
            let mut g = s.session(SessionState::Handshake);
            assert_eq!(s.sessions_in(SessionState::Handshake), 1);
            g.set(SessionState::Idle);
            assert_eq!(s.sessions_in(SessionState::Handshake), 0);
            assert_eq!(s.sessions_in(SessionState::Idle), 1);
            assert_eq!(s.connections_active(), 1);
        }
        assert_eq!(s.connections_active(), 0);
    }
}

mod exposition;
mod ops;
pub use exposition::Metrics;
#[cfg(test)]
pub(crate) use exposition::ZK_STATE_LABELS;
pub use ops::{CommandKind, LatencyHistogram, OpsStats, LATENCY_BUCKETS};
