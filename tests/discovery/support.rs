//! Fixture for tests/discovery.rs: one discovery task on a real ZooKeeper,
//! waits on the route table / status watch with deadlines, record builders.
//! Also used by tests/fencing.rs.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use mysql_zk_proxy_core::config::ZookeeperConfig;
use mysql_zk_proxy_core::discovery::{self, DiscoveryStatus, ZkState};
use mysql_zk_proxy_core::metrics::Stats;
use mysql_zk_proxy_core::routing::{Route, RouteTable};
use mysql_zk_proxy_sandbox::{zk_delete, zk_write, ZkServer};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub const WAIT: Duration = Duration::from_secs(15);

/// One discovery task and what it writes to.
pub struct Disco {
    pub table: Arc<RouteTable>,
    pub stats: Arc<Stats>,
    pub status: watch::Receiver<DiscoveryStatus>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

pub fn cfg(connect: &str, path: &str, session_timeout: Duration) -> ZookeeperConfig {
    ZookeeperConfig {
        connect: connect.to_owned(),
        primary_path: path.to_owned(),
        session_timeout,
        connect_timeout: Duration::from_secs(2),
        retry_backoff: Duration::from_millis(100),
        ..ZookeeperConfig::default()
    }
}

impl Disco {
    pub fn start(cfg: ZookeeperConfig) -> Disco {
        Self::start_with(cfg, discovery::Extras::default())
    }

    /// With fencing (a verifier) and the other extras.
    pub fn start_with(cfg: ZookeeperConfig, extras: discovery::Extras) -> Disco {
        // `RUST_LOG=mysql_zk_proxy=debug cargo test --test discovery -- --nocapture`
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
        let table = Arc::new(RouteTable::new());
        let stats = Stats::new();
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let h = discovery::spawn_with(
            cfg,
            extras,
            table.clone(),
            stats.clone(),
            cancel.clone(),
            &tracker,
        );
        Disco {
            table,
            stats,
            status: h.status,
            cancel,
            tracker,
        }
    }

    /// Wait until the current route satisfies `pred`.
    pub async fn route(&self, what: &str, pred: impl Fn(&Route) -> bool) -> Arc<Route> {
        let mut rx = self.table.subscribe();
        let deadline = Instant::now() + WAIT;
        loop {
            let r = self.table.current();
            if pred(&r) {
                return r;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                panic!(
                    "timed out waiting for route: {what}; route {r:?}; status {:?}",
                    *self.status.borrow()
                );
            }
        }
    }

    /// Wait until the status satisfies `pred`.
    pub async fn status(
        &self,
        what: &str,
        pred: impl Fn(&DiscoveryStatus) -> bool,
    ) -> DiscoveryStatus {
        let mut rx = self.status.clone();
        let got = match tokio::time::timeout(WAIT, rx.wait_for(|s| pred(s))).await {
            Ok(Ok(s)) => Some(s.clone()),
            _ => None,
        };
        got.unwrap_or_else(|| {
            panic!(
                "timed out waiting for status: {what}; status {:?}",
                *self.status.borrow()
            )
        })
    }

    pub async fn connected(&self) -> DiscoveryStatus {
        self.status("connected", |s| s.state == ZkState::Connected)
            .await
    }

    pub async fn stop(self) {
        self.cancel.cancel();
        self.tracker.close();
        tokio::time::timeout(Duration::from_secs(5), self.tracker.wait())
            .await
            .expect("discovery stops promptly on cancel");
        assert_eq!(self.status.borrow().state, ZkState::Closed);
    }
}

pub fn json(host: &str, port: u16, epoch: u64) -> Vec<u8> {
    format!(r#"{{"host":"{host}","port":{port},"epoch":{epoch}}}"#).into_bytes()
}

pub fn port_of(r: &Route) -> Option<u16> {
    r.primary.as_ref().map(|p| p.port)
}

/// A fresh ZooKeeper for one test (killed on drop).
pub async fn zk_server() -> ZkServer {
    ZkServer::start_async().await.expect("zookeeper starts")
}

pub async fn write(connect: &str, path: &str, data: &[u8]) {
    zk_write(connect, path, data).await.expect("zk_write");
}

pub async fn delete(connect: &str, path: &str) {
    zk_delete(connect, path).await.expect("zk_delete");
}

/// Run a blocking harness call (stop / restart) off the async workers.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// A loopback port nothing listens on while the value lives (connections are refused).
pub fn dead_port() -> mysql_zk_proxy_sandbox::process::RefusedPort {
    mysql_zk_proxy_sandbox::process::RefusedPort::new().unwrap()
}
