//! A session's environment: what every client session of one proxy
//! shares (the live config, TLS, the route table, counters, discovery's
//! status, the credential store, the failover timeline, the stop signals,
//! the KILL map, the relay buffers and the ledger). The listener builds it once and
//! hands each session an `Arc` of it; the session knows nothing of the
//! listener.

use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::acknowledged::Ledger;
use crate::credentials::CredentialStore;
use crate::discovery::DiscoveryHandle;
use crate::metrics::Stats;
use crate::reload::LiveConfig;
use crate::routing::{Primary, Route, RouteTable};
use crate::session::buffers::BufferPool;
use crate::session::kill::KillMap;
use crate::session::relay::StopSignals;
use crate::timeline::Timeline;

/// Everything a session needs, shared by all sessions of one proxy.
pub struct Env {
    /// The running config; live settings change at a reload.
    pub config: Arc<LiveConfig>,
    /// TLS acceptor (clients) and connector (backends) in force.
    pub tls: Arc<crate::tls::TlsState>,
    pub table: Arc<RouteTable>,
    pub stats: Arc<Stats>,
    pub discovery: DiscoveryHandle,
    /// Password hashes of users whose sessions can be migrated.
    pub credentials: Arc<CredentialStore>,
    /// The last failover's timeline (sessions mark the first answered statement).
    pub timeline: Arc<Timeline>,
    /// Hard stop: every session ends at once.
    pub cancel: CancellationToken,
    /// Graceful stop: no new connections; sessions end at their next rest point.
    pub drain: StopSignals,
    /// Connection ids clients know, for translating KILL after migrations.
    pub kills: Arc<KillMap>,
    /// Relay buffers, reused from one command to the next.
    pub buffers: BufferPool,
    /// Causal reads (read-only listener): asked before each read at rest;
    /// `None` everywhere else.
    pub before_read: Option<Arc<dyn crate::session::causal::BeforeRead>>,
    /// The sessions read from a replica: when their route moves (the
    /// replica stopped qualifying), a transaction open there finishes there
    /// (up to `failover.drain_timeout`) instead of getting 9006; a read is
    /// as good on the replica it started on. At rest they move as always.
    pub on_replica: bool,
    /// Acknowledged commits (docs/ledger.md) and the gate.
    pub ledger: Arc<Ledger>,
}

impl Env {
    /// The current route when it has a serving primary; otherwise wait for
    /// one, bounded by `failover.hold_timeout`. `None` on timeout or when
    /// the proxy starts draining. The one wait for a primary: a new client's
    /// greeting and a moved session both hold here.
    pub(crate) async fn serving_route(&self) -> Option<Arc<Route>> {
        let deadline = Instant::now() + self.config.load().failover.hold_timeout;
        tokio::select! {
            r = self.table.wait_for_primary(deadline) => r,
            _ = self.drain.at_rest.cancelled() => None,
        }
    }

    /// Wait at the ledger's gate (docs/ledger.md) before the first command
    /// reaches `primary`, for a new session and a moved one alike.
    pub(crate) async fn through_gate(&self, primary: &Primary) {
        let waited = self.ledger.gate.pass(&primary.address(), GATE_GRACE).await;
        if !waited.is_zero() {
            tracing::debug!(
                ?waited,
                "held by the gate until the new primary applied acknowledged commits"
            );
        }
    }
}

/// Beyond `failover.wait_for_acknowledged`, how long a session may wait for
/// the gate's reporter to log in and open it.
const GATE_GRACE: std::time::Duration = std::time::Duration::from_secs(3);
