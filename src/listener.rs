//! Accept loop: one task per client connection, tracked for shutdown.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::discovery::DiscoveryHandle;
use crate::failover::credentials::CredentialStore;
use crate::metrics::Stats;
use crate::routing::RouteTable;
use crate::session;
use crate::session::relay::StopSignals;

/// Everything a session needs, shared by all sessions of one proxy.
pub struct Context {
    pub config: Arc<Config>,
    pub table: Arc<RouteTable>,
    pub stats: Arc<Stats>,
    pub discovery: DiscoveryHandle,
    /// Password hashes of users whose sessions can be migrated.
    pub credentials: Arc<CredentialStore>,
    /// Hard stop: every session ends at once.
    pub cancel: CancellationToken,
    /// Graceful stop: no new connections; sessions end at their next rest point.
    pub drain: StopSignals,
    pub sessions: TaskTracker,
}

/// Accept until cancelled; each connection becomes a tracked session task.
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
                ctx.sessions
                    .spawn(session::run(sock, peer, next_id, ctx.clone()));
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
