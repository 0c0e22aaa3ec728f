//! Admission of an accepted connection before its session starts: the
//! connection limit (error 1040 past it), TCP keepalive, the PROXY protocol
//! header from trusted load balancers, and the registry `/status` lists.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

pub(crate) use crate::net::set_keepalive;
use serde::Serialize;
use tokio::net::TcpStream;

use super::Context;
use crate::config::ProxyProtocol;
use crate::metrics::ConnOutcome;
use crate::proxy_header::{read_header, Header, ProxyHeaderError};
use crate::replicas::Picked;
use crate::session;
use crate::session::send_error;
use mysql_zk_proxy_protocol::errors::{Phase, ProxyErrorCode};

/// Most sessions `/status` lists.
pub(crate) const LISTED_MAX: usize = 100;

/// Client connections admitted and not yet ended.
#[derive(Debug, Default)]
pub struct Slots {
    used: AtomicUsize,
}

/// One admitted connection; frees its slot on drop.
#[derive(Debug)]
pub(crate) struct Slot(Arc<Slots>);

impl Slots {
    /// A slot, unless `max` (0 = no limit) are in use.
    pub(crate) fn try_acquire(self: &Arc<Self>, max: u32) -> Option<Slot> {
        let limit = if max == 0 { usize::MAX } else { max as usize };
        self.used
            .fetch_update(Relaxed, Relaxed, |n| (n < limit).then_some(n + 1))
            .ok()
            .map(|_| Slot(self.clone()))
    }
    #[cfg(test)]
    fn in_use(&self) -> usize {
        self.used.load(Relaxed)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.used.fetch_sub(1, Relaxed);
    }
}

/// Past `listen.max_connections`: MySQL's own 1040 instead of the greeting.
pub(crate) async fn refuse_too_many(
    mut sock: TcpStream,
    peer: SocketAddr,
    max: u32,
    ctx: Arc<Context>,
) {
    tracing::warn!(client = %peer, max_connections = max, "too many connections; refusing");
    let msg = format!("Too many connections (listen.max_connections = {max})");
    let stats = &ctx.session.stats;
    // counted before the client can read the error: a client (or test) that
    // sees 1040 finds it in the metrics too
    stats.connection_closed(ConnOutcome::TooManyConnections);
    let code = ProxyErrorCode::TooManyConnections;
    send_error(&mut sock, stats, 0, code, Phase::BeforeGreeting, &msg).await;
}

/// Read the PROXY header when the source must send one, then run the session.
pub(crate) async fn admit(
    mut sock: TcpStream,
    peer: SocketAddr,
    id: u64,
    slot: Slot,
    ctx: Arc<Context>,
) {
    let _slot = slot;
    let (mode, trusted, timeout) = {
        let cfg = ctx.session.config.load();
        let l = &cfg.listen;
        (
            l.proxy_protocol,
            l.is_trusted_proxy(peer.ip()),
            l.handshake_timeout,
        )
    };
    let (client, via) = if mode == ProxyProtocol::Required && trusted {
        match read_header(&mut sock, timeout).await {
            Ok(Header::Proxied { source, .. }) => (source, Some(peer)),
            Ok(Header::Local) => (peer, Some(peer)),
            Err(e) => return refuse_header(peer, e, &ctx),
        }
    } else {
        (peer, None)
    };
    let _listed = ctx.registry.add(id, client, via);
    let Some(reads) = &ctx.reads else {
        session::run(sock, client, via, id, ctx.session.clone()).await;
        return;
    };
    match reads.pick() {
        Picked::Replica(env, _lease) => session::run(sock, client, via, id, env).await,
        Picked::Primary => session::run(sock, client, via, id, ctx.session.clone()).await,
        Picked::Nothing => refuse_no_replica(sock, client, &ctx).await,
    }
}

/// Read-only listener, no replica qualifies and no fallback: 9021.
async fn refuse_no_replica(mut sock: TcpStream, peer: SocketAddr, ctx: &Context) {
    tracing::warn!(client = %peer, "no replica qualifies for reads; refusing");
    let msg =
        "no replica qualifies for reads and read_only.fallback_to_primary is off; retry later";
    let stats = &ctx.session.stats;
    stats.connection_closed(ConnOutcome::NoPrimary);
    let code = ProxyErrorCode::NoReplica;
    send_error(&mut sock, stats, 0, code, Phase::BeforeGreeting, msg).await;
}

fn refuse_header(peer: SocketAddr, e: ProxyHeaderError, ctx: &Context) {
    tracing::warn!(source = %peer, error = %e, "PROXY protocol header refused; closing");
    let outcome = match e {
        ProxyHeaderError::Timeout(_) => ConnOutcome::HandshakeTimeout,
        _ => ConnOutcome::ProxyProtocol,
    };
    ctx.session.stats.connection_closed(outcome);
}

/// A live session as `/status` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ListedSession {
    pub id: u64,
    /// The client's address (from the PROXY header when there was one).
    pub client: SocketAddr,
    /// The load balancer that relayed it, if any.
    pub via: Option<SocketAddr>,
    #[serde(with = "crate::time::rfc3339")]
    pub since: SystemTime,
}

/// Live sessions by id (one lock per connect and per close, never per packet).
#[derive(Debug, Default)]
pub struct Registry {
    live: Mutex<BTreeMap<u64, ListedSession>>,
}

/// Removes its session from the registry on drop.
pub struct Listed<'a>(&'a Registry, u64);

impl Registry {
    pub fn add(&self, id: u64, client: SocketAddr, via: Option<SocketAddr>) -> Listed<'_> {
        let s = ListedSession {
            id,
            client,
            via,
            since: SystemTime::now(),
        };
        self.lock().insert(id, s);
        Listed(self, id)
    }

    /// The oldest live sessions, at most [`LISTED_MAX`].
    pub fn list(&self) -> Vec<ListedSession> {
        self.lock().values().take(LISTED_MAX).cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, ListedSession>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        self.0.lock().remove(&self.1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_stop_at_the_limit_and_free_on_drop() {
        let slots = Arc::new(Slots::default());
        let a = slots.try_acquire(2).unwrap();
        let _b = slots.try_acquire(2).unwrap();
        assert!(slots.try_acquire(2).is_none());
        drop(a);
        assert_eq!(slots.in_use(), 1);
        assert!(slots.try_acquire(2).is_some());
        let many: Vec<_> = (0..10).map(|_| slots.try_acquire(0).unwrap()).collect();
        assert_eq!(slots.in_use(), 11);
        drop(many);
    }

    #[test]
    fn registry_lists_live_sessions_only() {
        let r = Registry::default();
        let peer: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        let a = r.add(1, peer, None);
        let _b = r.add(2, peer, Some("10.0.0.1:1".parse().unwrap()));
        assert_eq!(r.list().len(), 2);
        drop(a);
        let l = r.list();
        assert_eq!((l.len(), l[0].id, l[0].via.is_some()), (1, 2, true));
    }
}
