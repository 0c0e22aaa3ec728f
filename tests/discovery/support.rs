//! Fixture for tests/discovery.rs: one discovery task on a real ZooKeeper,
//! waits on the route table / status watch with deadlines, record builders.
//! Also used by tests/verify_primary.rs.
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

    /// With verification (a verifier) and the other extras.
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

impl Disco {
    /// Publish `json("10.0.0.5", 3306, epoch)` at the configured primary path,
    /// start discovery on it and wait until it routes there: the common
    /// starting point of a test that then changes the record.
    pub async fn start_routed(cfg: ZookeeperConfig, epoch: u64) -> Disco {
        let (connect, path) = (cfg.connect.clone(), cfg.primary_path.clone());
        write(&connect, &path, &json("10.0.0.5", 3306, epoch)).await;
        let d = Disco::start(cfg);
        d.routes_to(&format!("epoch {epoch}"), 3306).await;
        d
    }

    /// Wait until there is no primary to route to.
    pub async fn routes_nowhere(&self, what: &str) -> Arc<Route> {
        self.route(what, |r| r.primary.is_none()).await
    }

    /// Wait until the primary is on `port`.
    pub async fn routes_to(&self, what: &str, port: u16) -> Arc<Route> {
        self.route(what, |r| port_of(r) == Some(port)).await
    }

    /// Write `json(host, port, epoch)` at `path` on `connect` and wait until
    /// the primary is on `port`.
    pub async fn publish_until_routed(
        &self,
        connect: &str,
        path: &str,
        host: &str,
        port: u16,
        epoch: u64,
    ) -> Arc<Route> {
        write(connect, path, &json(host, port, epoch)).await;
        self.routes_to(&format!("{host}:{port} at epoch {epoch}"), port)
            .await
    }
}

/// A fresh ZooKeeper for one test (killed on drop) and the znode that test
/// works on: where it publishes its primary record (or keeps its users).
pub struct Znode {
    pub zk: ZkServer,
    pub connect: String,
    pub path: &'static str,
}

impl Znode {
    pub async fn start(path: &'static str) -> Znode {
        let zk = zk_server().await;
        let connect = zk.connect_string();
        Znode { zk, connect, path }
    }

    /// A fresh znode at `path` holding `json("10.0.0.5", 3306, epoch)` and a
    /// discovery (with `session_timeout`) already routing to it.
    pub async fn routed(
        path: &'static str,
        session_timeout: Duration,
        epoch: u64,
    ) -> (Znode, Disco) {
        let z = Znode::start(path).await;
        let d = Disco::start_routed(z.cfg(session_timeout), epoch).await;
        (z, d)
    }

    /// The discovery config that watches this znode.
    pub fn cfg(&self, session_timeout: Duration) -> ZookeeperConfig {
        cfg(&self.connect, self.path, session_timeout)
    }

    pub async fn write(&self, data: &[u8]) {
        write(&self.connect, self.path, data).await;
    }

    pub async fn delete(&self) {
        delete(&self.connect, self.path).await;
    }

    /// Write `json(host, port, epoch)` and wait until `d` routes to `port`.
    pub async fn publish_until_routed(
        &self,
        d: &Disco,
        host: &str,
        port: u16,
        epoch: u64,
    ) -> Arc<Route> {
        d.publish_until_routed(&self.connect, self.path, host, port, epoch)
            .await
    }
}
