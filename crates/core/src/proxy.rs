//! Assembly of one proxy instance: binds the listeners, starts discovery,
//! the accept loop and the admin server under one cancellation token and
//! task tracker, and shuts them down together.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::acknowledged::Ledger;
use crate::admin::AdminState;
use crate::config::{Config, ConfigError, RuntimeConfig, RuntimeMode};
use crate::discovery::DiscoveryHandle;
use crate::metrics::{Metrics, Stats};
use crate::reload::{LiveConfig, ReloadRecord};
use crate::routing::RouteTable;
use crate::session::relay::StopSignals;
use crate::timeline::{self, Timeline};
use crate::workers::Workers;

mod start;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot listen for clients on {addr}: {source}")]
    BindClient {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen for admin HTTP on {addr}: {source}")]
    BindAdmin {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("monitor: {0}")]
    Monitor(#[source] crate::config::ConfigError),
    #[error("cannot start the per-core worker threads: {0}")]
    Workers(#[source] std::io::Error),
    #[error("[[users]]: {0}")]
    Credentials(#[source] crate::credentials::CredentialError),
    #[error("invalid `{key}`: {0}", key = .0.key())]
    Tls(#[source] crate::tls::TlsError),
    #[error(transparent)]
    ReadOnly(#[from] crate::read_only::ReadOnlyError),
}

/// A running proxy. Drop without `shutdown` cancels everything too.
pub struct Proxy {
    config: Arc<LiveConfig>,
    /// TLS material, read again at a reload.
    tls: Arc<crate::tls::TlsState>,
    /// Set for `/ready` when admin HTTP is enabled.
    admin: Option<Arc<AdminState>>,
    table: Arc<RouteTable>,
    stats: Arc<Stats>,
    metrics: Arc<Metrics>,
    timeline: Arc<Timeline>,
    ledger: Arc<Ledger>,
    discovery: DiscoveryHandle,
    cancel: CancellationToken,
    drain: StopSignals,
    /// Background tasks: discovery, admin.
    tracker: TaskTracker,
    /// The accept loop and every client session.
    sessions: TaskTracker,
    listen_addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    /// The read-only listener, when `[read_only]` is on.
    read_only: Option<crate::read_only::ReadOnly>,
}

impl Proxy {
    /// Bind, spawn every task and return at once (discovery runs in the background).
    pub async fn start(config: Config) -> Result<Proxy, ProxyError> {
        start::start(config).await
    }

    /// The read-only listener's address, when `[read_only]` is on.
    pub fn read_only_addr(&self) -> Option<SocketAddr> {
        self.read_only.as_ref().map(|r| r.addr)
    }

    /// The read-only listener's routing, when `[read_only]` is on.
    pub fn read_router(&self) -> Option<&Arc<crate::replicas::ReadRouter>> {
        self.read_only.as_ref().map(|r| &r.router)
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.listen_addr
    }
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }
    pub fn route_table(&self) -> &Arc<RouteTable> {
        &self.table
    }
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
    /// The last failover's timeline (also in /status).
    pub fn last_failover(&self) -> Option<timeline::TimelineView> {
        self.timeline.last()
    }

    /// Acknowledged commits, the loss reports and the gate.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    pub fn discovery(&self) -> &DiscoveryHandle {
        &self.discovery
    }
    /// The config in force now.
    pub fn config(&self) -> Arc<Config> {
        self.config.get()
    }

    /// Apply a config loaded again from its file (SIGHUP), or record why
    /// that failed: live settings change for new sessions and checks at
    /// once, settings needing a restart are reported and keep their value.
    pub fn reload(&self, loaded: Result<Config, ConfigError>) -> ReloadRecord {
        let mut record = self.config.reload(loaded);
        if record.ok {
            // the files may have changed even if the config did not
            if let Err(e) = self.tls.reload(self.config.get().tls()) {
                record = self.config.record_failure(e.to_string());
            }
        }
        self.stats.ops.count_reload(record.ok);
        match (&record.error, record.restart_required.is_empty()) {
            (Some(e), _) => {
                tracing::error!(error = %e, "reload rejected; the running config is kept")
            }
            (None, true) => tracing::info!("config reloaded"),
            (None, false) => tracing::warn!(restart_required = ?record.restart_required,
                "config reloaded; these settings keep their running value until a restart"),
        }
        record
    }

    /// `/ready` answers 503 from now on (a stop is coming).
    pub(crate) fn set_not_ready(&self) {
        if let Some(a) = &self.admin {
            a.shutting_down
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The operator's stop (SIGTERM): `/ready` 503 at once, clients still
    /// served for `shutdown.ready_delay`, then [`Proxy::shutdown`] with the
    /// rest of `shutdown.timeout`.
    pub async fn stop(self) -> bool {
        let phases = self.config.get().shutdown.clone();
        self.set_not_ready();
        tracing::info!(ready_delay = ?phases.ready_delay, timeout = ?phases.timeout,
            "stopping: /ready answers 503; draining after the ready delay");
        tokio::time::sleep(phases.ready_delay).await;
        self.shutdown(phases.timeout.saturating_sub(phases.ready_delay))
            .await
    }

    /// Stop accepting and drain: sessions end at their next rest point; after
    /// half of `grace`, also inside a transaction once no reply is outstanding
    /// (the server rolls that transaction back); at `grace`, everything is
    /// cancelled. Returns true when every session ended before the hard stop.
    pub async fn shutdown(self, grace: Duration) -> bool {
        self.set_not_ready();
        self.drain.at_rest.cancel();
        self.sessions.close();
        let half = grace / 2;
        let mut clean = tokio::time::timeout(half, self.sessions.wait())
            .await
            .is_ok();
        if !clean {
            self.drain.when_idle.cancel();
            clean = tokio::time::timeout(half, self.sessions.wait())
                .await
                .is_ok();
        }
        self.cancel.cancel();
        self.tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.tracker.wait()).await;
        clean
    }
}

/// The per-core session workers, in `per_core` mode.
fn start_workers(rt: &RuntimeConfig) -> Result<Option<Arc<Workers>>, ProxyError> {
    match rt.mode {
        RuntimeMode::Shared => Ok(None),
        RuntimeMode::PerCore => {
            let n = rt.worker_threads();
            let workers = Workers::start(n).map_err(ProxyError::Workers)?;
            tracing::debug!(threads = n, "per-core session workers started");
            Ok(Some(Arc::new(workers)))
        }
    }
}

/// `<hostname>-<port>`: unique per proxy process on a host.
fn default_proxy_id(port: u16) -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let host = if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "proxy".to_string()
    };
    format!("{host}-{port}")
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
