//! Starting one proxy: the shared handles first, then the listeners (bound
//! before anything runs, so a taken port fails the start), the ledger's
//! reporter, discovery, the client and read-only listeners, and admin HTTP.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{default_proxy_id, start_workers, Proxy, ProxyError};
use crate::acknowledged::{self, Ledger, Observers};
use crate::admin::{self, AdminState};
use crate::config::Config;
use crate::credentials::CredentialStore;
use crate::discovery::{self, DiscoveryHandle};
use crate::listener::{self, admission};
use crate::metrics::{Metrics, Stats};
use crate::read_only::{self, ReadOnly};
use crate::reload::LiveConfig;
use crate::routing::RouteTable;
use crate::session;
use crate::session::buffers::BufferPool;
use crate::session::relay::StopSignals;
use crate::timeline::Timeline;
use crate::tls::TlsState;
use crate::verify::Verifier;

/// What every part of one proxy shares; nothing runs yet.
struct Shared {
    live: Arc<LiveConfig>,
    stats: Arc<Stats>,
    timeline: Arc<Timeline>,
    ledger: Arc<Ledger>,
    table: Arc<RouteTable>,
    metrics: Arc<Metrics>,
    credentials: Arc<CredentialStore>,
    tls: Arc<TlsState>,
    cancel: CancellationToken,
    drain: StopSignals,
    /// Background tasks: discovery, the ledger's reporter, admin.
    tracker: TaskTracker,
    /// The accept loops and every client session.
    sessions: TaskTracker,
}

/// The client and admin listeners, bound.
struct Bound {
    client: TcpListener,
    listen_addr: SocketAddr,
    admin: Option<TcpListener>,
    admin_addr: Option<SocketAddr>,
}

pub(super) async fn start(config: Config) -> Result<Proxy, ProxyError> {
    let (ledger, moves) = Ledger::new(
        config.failover.ledger_capacity,
        config.failover.wait_for_acknowledged,
    );
    let shared = Shared::new(&config, ledger)?;
    let bound = bind(&config).await?;
    let proxy_id = config
        .zookeeper
        .proxy_id
        .clone()
        .unwrap_or_else(|| default_proxy_id(bound.listen_addr.port()));
    let reporter = acknowledged::Reporter {
        ledger: shared.ledger.clone(),
        stats: shared.stats.clone(),
        monitor: config.monitor.clone(),
        zookeeper: config.zookeeper.clone(),
        zk_tls: shared.tls.zookeeper(),
        proxy_id: proxy_id.clone(),
    };
    acknowledged::spawn_reporter(
        reporter,
        moves,
        shared.cancel.child_token(),
        &shared.tracker,
    );
    let read_only = match config.read_only.enabled() {
        true => Some(read_only::Pending::bind(&config).await?),
        false => None,
    };
    let replicas = read_only.as_ref().map(|r| r.set.clone());
    let discovery = shared.discovery(&config, proxy_id, bound.listen_addr, replicas)?;
    let ctx = Arc::new(listener::Context {
        session: shared.session_env(&discovery),
        sessions: shared.sessions.clone(),
        slots: Default::default(),
        registry: Arc::new(admission::Registry::default()),
        workers: start_workers(&config.runtime)?,
        reads: None,
    });
    let read_only = match read_only {
        Some(ro) => Some(ro.start(
            &ctx,
            &shared.sessions,
            &shared.cancel,
            &shared.tracker,
            &shared.ledger,
        )?),
        None => None,
    };
    if let Some(ro) = &read_only {
        let router = ro.router.clone();
        shared
            .metrics
            .set_extra(move |out| router.render_metrics(out));
    }
    let registry = ctx.registry.clone();
    shared
        .sessions
        .spawn(listener::accept_loop(bound.client, ctx));
    let admin = bound.admin.map(|l| {
        let state = shared.admin_state(registry, &discovery, bound.listen_addr, &read_only);
        let serve = admin::serve(l, state.clone(), shared.cancel.child_token());
        shared.tracker.spawn(serve);
        state
    });
    tracing::info!(listen_addr = %bound.listen_addr, admin = ?bound.admin_addr,
        zk = %config.zookeeper.connect, primary_path = %config.zookeeper.primary_path,
        "proxy started");
    Ok(Proxy {
        config: shared.live,
        tls: shared.tls,
        admin,
        table: shared.table,
        stats: shared.stats,
        metrics: shared.metrics,
        timeline: shared.timeline,
        ledger: shared.ledger,
        discovery,
        cancel: shared.cancel,
        drain: shared.drain,
        tracker: shared.tracker,
        sessions: shared.sessions,
        listen_addr: bound.listen_addr,
        admin_addr: bound.admin_addr,
        read_only,
    })
}

impl Shared {
    /// The shared handles, around the proxy's `ledger`.
    fn new(config: &Config, ledger: Arc<Ledger>) -> Result<Shared, ProxyError> {
        let stats = Stats::new();
        let timeline = Timeline::new(stats.clone());
        let observers = Observers(vec![timeline.clone(), ledger.clone()]);
        let table = Arc::new(RouteTable::observed(Arc::new(observers)));
        let credentials =
            CredentialStore::from_config(&config.users).map_err(ProxyError::Credentials)?;
        crate::tls::install_default_provider();
        let tls = TlsState::from_config(config.tls()).map_err(ProxyError::Tls)?;
        let shared = Shared {
            live: Arc::new(LiveConfig::new(config.clone())),
            metrics: Arc::new(Metrics::new(stats.clone(), table.clone())),
            stats,
            timeline,
            ledger,
            table,
            credentials: Arc::new(credentials),
            tls: Arc::new(tls),
            cancel: CancellationToken::new(),
            drain: StopSignals::default(),
            tracker: TaskTracker::new(),
            sessions: TaskTracker::new(),
        };
        Ok(shared)
    }

    /// Discovery, following the record (and the replicas' records when the
    /// read-only listener is on), registered as `proxy_id`.
    fn discovery(
        &self,
        config: &Config,
        proxy_id: String,
        listen_addr: SocketAddr,
        replicas: Option<Arc<crate::discovery::replicas::ReplicaSet>>,
    ) -> Result<DiscoveryHandle, ProxyError> {
        let extras = discovery::Extras {
            replicas,
            verifier: Verifier::from_config(&config.monitor).map_err(ProxyError::Monitor)?,
            credentials: Some(self.credentials.clone()),
            registration: Some(discovery::RegistrationInfo {
                id: proxy_id,
                listen: listen_addr.to_string(),
                stats: self.stats.clone(),
                drain_timeout: config.failover.drain_timeout,
            }),
            zk_tls: self.tls.zookeeper(),
        };
        let discovery = discovery::spawn_with(
            config.zookeeper.clone(),
            extras,
            self.table.clone(),
            self.stats.clone(),
            self.cancel.child_token(),
            &self.tracker,
        );
        let zk_status = discovery.status.clone();
        self.metrics
            .set_zk_state(move || zk_status.borrow().state.label());
        Ok(discovery)
    }

    /// What the client listener's sessions share.
    fn session_env(&self, discovery: &DiscoveryHandle) -> Arc<session::Env> {
        Arc::new(session::Env {
            tls: self.tls.clone(),
            credentials: self.credentials.clone(),
            timeline: self.timeline.clone(),
            config: self.live.clone(),
            table: self.table.clone(),
            stats: self.stats.clone(),
            discovery: discovery.clone(),
            cancel: self.cancel.child_token(),
            drain: self.drain.clone(),
            kills: Default::default(),
            buffers: BufferPool::for_relays(),
            before_read: None,
            on_replica: false,
            ledger: self.ledger.clone(),
        })
    }

    fn admin_state(
        &self,
        registry: Arc<admission::Registry>,
        discovery: &DiscoveryHandle,
        listen_addr: SocketAddr,
        read_only: &Option<ReadOnly>,
    ) -> Arc<AdminState> {
        Arc::new(AdminState {
            config: self.live.clone(),
            registry,
            table: self.table.clone(),
            discovery: discovery.clone(),
            metrics: self.metrics.clone(),
            stats: self.stats.clone(),
            started: std::time::SystemTime::now(),
            listen_addr,
            shutting_down: Default::default(),
            timeline: self.timeline.clone(),
            read_only: read_only
                .as_ref()
                .map(|r| (r.router.clone(), r.addr.to_string())),
            ledger: self.ledger.clone(),
        })
    }
}

/// Bind the client and admin listeners (port 0 resolved).
async fn bind(config: &Config) -> Result<Bound, ProxyError> {
    let addr = config.listen_addr();
    let client = TcpListener::bind(addr)
        .await
        .map_err(|source| ProxyError::BindClient { addr, source })?;
    let listen_addr = client.local_addr().unwrap_or(addr);
    let admin = match config.admin_addr() {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| ProxyError::BindAdmin { addr, source })?,
        ),
        None => None,
    };
    let admin_addr = admin.as_ref().and_then(|l| l.local_addr().ok());
    Ok(Bound {
        client,
        listen_addr,
        admin,
        admin_addr,
    })
}
