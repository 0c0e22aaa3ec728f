//! Assembly of the read-only listener (`[read_only]`): its socket, the
//! replica set discovery fills, the replica monitor, the causal-read hook
//! and its accept loop, which runs the primary listener's admission and
//! session code with a [`ReadRouter`] choosing each session's replica.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::acknowledged::Ledger;
use crate::config::{Config, Consistency};
use crate::control::Login;
use crate::discovery::replicas::ReplicaSet;
use crate::listener::{self, Context};
use crate::replicas::causal::{AcknowledgedPosition, CausalShared, Pools, PrimaryPosition};
use crate::replicas::{spawn_monitor, ReadRouter};

/// Why the read-only listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReadOnlyError {
    #[error("cannot listen for read-only clients on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("read_only: {0}")]
    Password(#[source] crate::config::ConfigError),
}

/// Bound, not started yet (discovery needs the replica set first).
pub(crate) struct Pending {
    listener: TcpListener,
    addr: SocketAddr,
    pub(crate) set: Arc<ReplicaSet>,
    cfg: Config,
}

/// The running read-only listener.
pub(crate) struct ReadOnly {
    pub(crate) addr: SocketAddr,
    pub(crate) router: Arc<ReadRouter>,
}

impl Pending {
    pub(crate) async fn bind(cfg: &Config) -> Result<Pending, ReadOnlyError> {
        let addr: SocketAddr = cfg.read_only.listen.parse().expect("validated");
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ReadOnlyError::Bind { addr, source })?;
        Ok(Pending {
            addr: listener.local_addr().unwrap_or(addr),
            listener,
            set: Arc::new(ReplicaSet::default()),
            cfg: cfg.clone(),
        })
    }

    /// Start the monitor and the accept loop; `primary` is the primary
    /// listener's context (its environment is the fallback).
    pub(crate) fn start(
        self,
        primary: &Arc<Context>,
        sessions: &TaskTracker,
        cancel: &CancellationToken,
        tracker: &TaskTracker,
        ledger: &Arc<Ledger>,
    ) -> Result<ReadOnly, ReadOnlyError> {
        let ro = self.cfg.read_only.clone();
        let login = Login::monitor(&self.cfg.monitor).map_err(ReadOnlyError::Password)?;
        let env = primary.session.clone();
        let pools = Arc::new(Pools::new(login.clone()));
        let source: Option<Arc<dyn crate::replicas::causal::PositionSource>> = match ro.consistency
        {
            Consistency::None => None,
            Consistency::Fleet => Some(Arc::new(PrimaryPosition {
                table: env.table.clone(),
                pools: pools.clone(),
            })),
            Consistency::Proxy => Some(Arc::new(AcknowledgedPosition(ledger.clone()))),
        };
        let causal = source.map(|source| {
            Arc::new(CausalShared {
                source,
                pools,
                table: env.table.clone(),
                timeout: ro.causal_timeout,
            })
        });
        let router = Arc::new(ReadRouter::new(ro, self.set.clone()));
        spawn_monitor(
            router.clone(),
            env.clone(),
            login,
            causal,
            cancel.child_token(),
            tracker,
        );
        let ctx = Arc::new(Context {
            session: env,
            sessions: sessions.clone(),
            slots: Default::default(),
            registry: Default::default(),
            workers: primary.workers.clone(),
            reads: Some(router.clone()),
        });
        sessions.spawn(listener::accept_loop(self.listener, ctx));
        tracing::info!(read_only = %self.addr, consistency = ?self.cfg.read_only.consistency,
            "read-only listener started");
        Ok(ReadOnly {
            addr: self.addr,
            router,
        })
    }
}
