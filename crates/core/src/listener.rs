//! Accept loop: admission (connection limit, keepalive, PROXY protocol
//! header), then one tracked task per client session.

pub(crate) mod admission;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;

use crate::session::Env;
use crate::workers::Workers;
use admission::{Registry, Slot, Slots};

/// What the accept loop needs: the sessions' shared environment, and what
/// only admission uses (limits, the session list, the workers).
pub struct Context {
    /// Handed to every session.
    pub session: Arc<Env>,
    pub sessions: TaskTracker,
    /// Admitted connections, against `listen.max_connections`.
    pub slots: Arc<Slots>,
    /// Live sessions with their client addresses (for `/status`).
    pub registry: Arc<Registry>,
    /// Per-core workers sessions are handed to (`runtime.mode = "per_core"`);
    /// None: sessions run on the acceptor's runtime.
    pub workers: Option<Arc<Workers>>,
    /// The read-only listener's routing: each session goes to a replica
    /// it picks (`session` is then the primary's environment, the
    /// fallback). `None`: the primary listener.
    pub reads: Option<Arc<crate::replicas::ReadRouter>>,
}

/// Accept until cancelled; each connection becomes a tracked task.
pub(crate) async fn accept_loop(listener: TcpListener, ctx: Arc<Context>) {
    let mut next_id: u64 = 0;
    loop {
        let accepted = tokio::select! {
            _ = ctx.session.cancel.cancelled() => break,
            _ = ctx.session.drain.at_rest.cancelled() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((sock, peer)) => {
                next_id += 1;
                let _ = sock.set_nodelay(true);
                ctx.session.stats.connections_accepted.fetch_add(1, Relaxed);
                let (max, keepalive) = {
                    let cfg = ctx.session.config.load();
                    (cfg.listen.max_connections, cfg.listen.keepalive)
                };
                admission::set_keepalive(&sock, keepalive);
                match ctx.slots.try_acquire(max) {
                    Some(slot) => spawn_session(sock, peer, next_id, slot, &ctx),
                    None => {
                        ctx.sessions.spawn(admission::refuse_too_many(
                            sock,
                            peer,
                            max,
                            ctx.clone(),
                        ));
                    }
                }
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

/// Run an admitted session: on the next per-core worker (the socket moves to
/// that worker's reactor), or on this runtime when there are no workers.
fn spawn_session(sock: TcpStream, peer: SocketAddr, id: u64, slot: Slot, ctx: &Arc<Context>) {
    let Some(workers) = &ctx.workers else {
        ctx.sessions
            .spawn(admission::admit(sock, peer, id, slot, ctx.clone()));
        return;
    };
    let sock = match sock.into_std() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(client = %peer, error = %e, "cannot hand the connection to a worker");
            return;
        }
    };
    let ctx2 = ctx.clone();
    let session = async move {
        match TcpStream::from_std(sock) {
            Ok(sock) => admission::admit(sock, peer, id, slot, ctx2).await,
            Err(e) => {
                tracing::warn!(client = %peer, error = %e, "worker cannot take the connection")
            }
        }
    };
    ctx.sessions.spawn_on(session, workers.next());
}
