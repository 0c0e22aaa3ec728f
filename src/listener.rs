//! Accept loop: admission (connection limit, keepalive, PROXY protocol
//! header), then one tracked task per client session.

pub mod admission;
pub mod proxy_protocol;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::discovery::DiscoveryHandle;
use crate::failover::credentials::CredentialStore;
use crate::failover::timeline::Timeline;
use crate::metrics::Stats;
use crate::reload::LiveConfig;
use crate::routing::RouteTable;
use crate::session::relay::StopSignals;
use admission::{Registry, Slots};

/// Everything a session needs, shared by all sessions of one proxy.
pub struct Context {
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
    pub sessions: TaskTracker,
    /// Admitted connections, against `listen.max_connections`.
    pub slots: Arc<Slots>,
    /// Live sessions with their client addresses (for `/status`).
    pub registry: Arc<Registry>,
    /// Connection ids clients know, for translating KILL after migrations.
    pub kills: Arc<crate::session::kill::KillMap>,
}

/// Accept until cancelled; each connection becomes a tracked task.
pub async fn accept_loop(listener: TcpListener, ctx: Arc<Context>) {
    let mut next_id: u64 = 0;
    loop {
        let accepted = tokio::select! {
            _ = ctx.cancel.cancelled() => break,
            _ = ctx.drain.at_rest.cancelled() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((sock, peer)) => {
                next_id += 1;
                let _ = sock.set_nodelay(true);
                ctx.stats.connections_accepted.fetch_add(1, Relaxed);
                let (max, keepalive) = {
                    let cfg = ctx.config.load();
                    (cfg.listen.max_connections, cfg.listen.keepalive)
                };
                admission::set_keepalive(&sock, keepalive);
                match ctx.slots.try_acquire(max) {
                    Some(slot) => {
                        ctx.sessions
                            .spawn(admission::admit(sock, peer, next_id, slot, ctx.clone()))
                    }
                    None => {
                        ctx.sessions
                            .spawn(admission::refuse_too_many(sock, peer, max, ctx.clone()))
                    }
                };
            }
            Err(e) => {
                // EMFILE/ENFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    tracing::debug!("accept loop stopped");
}
