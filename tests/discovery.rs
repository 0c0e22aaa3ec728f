//! Discovery against a real ZooKeeper: records, fencing, deletion, bad data,
//! connection loss, session expiry, ZooKeeper down at start, several servers
//! and a chroot. No mocks; every wait is on a channel with a deadline.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use mysql_zk_proxy::config::ZookeeperConfig;
use mysql_zk_proxy::discovery::{self, DiscoveryStatus, ZkState};
use mysql_zk_proxy::metrics::{IgnoredRecord, Stats};
use mysql_zk_proxy::routing::{Ordering, RecordState, Route, RouteTable};
use mysql_zk_proxy::sandbox::{zk_delete, zk_write, ZkServer};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const WAIT: Duration = Duration::from_secs(15);

/// One discovery task and what it writes to.
struct Disco {
    table: Arc<RouteTable>,
    stats: Arc<Stats>,
    status: watch::Receiver<DiscoveryStatus>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

fn cfg(connect: &str, path: &str, session_timeout: Duration) -> ZookeeperConfig {
    ZookeeperConfig {
        connect: connect.to_owned(),
        primary_path: path.to_owned(),
        session_timeout,
        connect_timeout: Duration::from_secs(2),
        retry_backoff: Duration::from_millis(100),
    }
}

impl Disco {
    fn start(cfg: ZookeeperConfig) -> Disco {
        let table = Arc::new(RouteTable::new());
        let stats = Stats::new();
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let h = discovery::spawn(cfg, table.clone(), stats.clone(), cancel.clone(), &tracker);
        Disco {
            table,
            stats,
            status: h.status,
            cancel,
            tracker,
        }
    }

    /// Wait until the current route satisfies `pred`.
    async fn route(&self, what: &str, pred: impl Fn(&Route) -> bool) -> Arc<Route> {
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
    async fn status(&self, what: &str, pred: impl Fn(&DiscoveryStatus) -> bool) -> DiscoveryStatus {
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

    async fn connected(&self) -> DiscoveryStatus {
        self.status("connected", |s| s.state == ZkState::Connected)
            .await
    }

    async fn stop(self) {
        self.cancel.cancel();
        self.tracker.close();
        tokio::time::timeout(Duration::from_secs(5), self.tracker.wait())
            .await
            .expect("discovery stops promptly on cancel");
        assert_eq!(self.status.borrow().state, ZkState::Closed);
    }
}

fn json(host: &str, port: u16, epoch: u64) -> Vec<u8> {
    format!(r#"{{"host":"{host}","port":{port},"epoch":{epoch}}}"#).into_bytes()
}

fn port_of(r: &Route) -> Option<u16> {
    r.primary.as_ref().map(|p| p.port)
}

/// A fresh ZooKeeper for one test (killed on drop).
async fn zk_server() -> ZkServer {
    tokio::task::spawn_blocking(ZkServer::start)
        .await
        .unwrap()
        .expect("zookeeper starts")
}

async fn write(connect: &str, path: &str, data: &[u8]) {
    zk_write(connect, path, data).await.expect("zk_write");
}

async fn delete(connect: &str, path: &str) {
    zk_delete(connect, path).await.expect("zk_delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_record_is_published() {
    let zk = zk_server().await;
    let connect = zk.connect_string();
    let path = "/t/json/primary";
    write(&connect, path, &json("10.0.0.5", 3306, 42)).await;
    let d = Disco::start(cfg(&connect, path, Duration::from_secs(4)));
    let r = d.route("json primary", |r| r.primary.is_some()).await;
    let p = r.primary.as_ref().unwrap();
    assert_eq!((p.host.as_str(), p.port, p.epoch), ("10.0.0.5", 3306, 42));
    assert_eq!(r.high_water, Some(Ordering::Epoch(42)));
    assert_eq!(r.state, RecordState::Serving);
    let s = d.connected().await;
    assert!(s.session_id.as_deref().unwrap().starts_with("0x"), "{s:?}");
    assert_eq!(d.stats.route_changes.load(Relaxed), 1);

    let start = Instant::now();
    write(
        &connect,
        path,
        br#"{"host":"10.0.0.6","port":3307,"epoch":43,"state":"draining","server_id":7}"#,
    )
    .await;
    let r = d.route("epoch 43", |r| port_of(r) == Some(3307)).await;
    eprintln!("write -> route latency: {:?}", start.elapsed());
    assert_eq!(r.state, RecordState::Draining);
    assert_eq!(r.primary.as_ref().unwrap().server_id, Some(7));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_host_port_record_orders_by_mzxid() {
    let zk = zk_server().await;
    let connect = zk.connect_string();
    let path = "/t/plain/primary";
    write(&connect, path, b"10.0.0.7:3306\n").await;
    let d = Disco::start(cfg(&connect, path, Duration::from_secs(4)));
    let r = d.route("plain primary", |r| r.primary.is_some()).await;
    let p = r.primary.as_ref().unwrap();
    assert_eq!((p.host.as_str(), p.port), ("10.0.0.7", 3306));
    let Some(Ordering::Mzxid(mzxid)) = r.high_water else {
        panic!("plain record must be mzxid-ordered: {r:?}");
    };
    assert_eq!(p.epoch, mzxid as u64);

    write(&connect, path, b"[::1]:3307").await;
    let r = d
        .route("ipv6 plain primary", |r| port_of(r) == Some(3307))
        .await;
    let p = r.primary.as_ref().unwrap();
    assert_eq!(p.host, "::1");
    assert!(
        matches!(r.high_water, Some(Ordering::Mzxid(m)) if m > mzxid),
        "{r:?}"
    );
    assert_eq!(
        p.epoch as i64,
        match r.high_water {
            Some(Ordering::Mzxid(m)) => m,
            _ => 0,
        }
    );

    // An epoch-ordered record always wins over mzxid ordering ...
    write(&connect, path, &json("10.0.0.8", 3308, 1)).await;
    d.route("epoch 1 over mzxid", |r| port_of(r) == Some(3308))
        .await;
    // ... and a plain record cannot go back below it.
    write(&connect, path, b"10.0.0.9:3309").await;
    d.status("plain record fenced", |s| s.last_error.is_some())
        .await;
    assert_eq!(port_of(&d.table.current()), Some(3308));
    assert_eq!(d.stats.records_ignored(IgnoredRecord::Stale), 1);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epoch_fencing_lower_ignored_higher_applied() {
    let zk = zk_server().await;
    let connect = zk.connect_string();
    let path = "/t/fencing/primary";
    write(&connect, path, &json("10.0.0.5", 3306, 10)).await;
    let d = Disco::start(cfg(&connect, path, Duration::from_secs(4)));
    d.route("epoch 10", |r| port_of(r) == Some(3306)).await;

    write(&connect, path, &json("10.0.0.6", 3307, 9)).await;
    let s = d
        .status("stale record reported", |s| {
            s.last_error.as_deref().is_some_and(|e| e.contains("stale"))
        })
        .await;
    assert!(s.last_record.as_deref().unwrap().contains("3307"), "{s:?}");
    let r = d.table.current();
    assert_eq!(port_of(&r), Some(3306));
    assert_eq!(r.high_water, Some(Ordering::Epoch(10)));
    assert_eq!(d.stats.records_ignored(IgnoredRecord::Stale), 1);

    // Equal epoch, same address: no new route.
    let generation = r.generation;
    write(&connect, path, &json("10.0.0.5", 3306, 10)).await;
    d.status("equal record accepted", |s| s.last_error.is_none())
        .await;
    assert_eq!(d.table.current().generation, generation);

    write(&connect, path, &json("10.0.0.6", 3307, 11)).await;
    let r = d.route("epoch 11", |r| port_of(r) == Some(3307)).await;
    assert_eq!(r.high_water, Some(Ordering::Epoch(11)));
    assert_eq!(r.generation, generation + 1);
    assert_eq!(d.stats.route_changes.load(Relaxed), 2);
    assert_eq!(d.stats.records_ignored(IgnoredRecord::Stale), 1);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_znode_means_no_primary_until_recreated() {
    let zk = zk_server().await;
    let connect = zk.connect_string();
    let path = "/t/deleted/primary";
    write(&connect, path, &json("10.0.0.5", 3306, 5)).await;
    let d = Disco::start(cfg(&connect, path, Duration::from_secs(4)));
    d.route("epoch 5", |r| port_of(r) == Some(3306)).await;

    delete(&connect, path).await;
    let r = d.route("no primary", |r| r.primary.is_none()).await;
    assert_eq!(r.high_water, Some(Ordering::Epoch(5)), "high water kept");

    // Re-created with a lower epoch: still fenced off.
    write(&connect, path, &json("10.0.0.4", 3305, 4)).await;
    d.status("lower re-creation ignored", |s| s.last_error.is_some())
        .await;
    assert!(d.table.current().primary.is_none());
    assert_eq!(d.stats.records_ignored(IgnoredRecord::Stale), 1);

    delete(&connect, path).await;
    write(&connect, path, &json("10.0.0.6", 3307, 6)).await;
    let r = d
        .route("epoch 6 after re-creation", |r| port_of(r) == Some(3307))
        .await;
    assert_eq!(r.high_water, Some(Ordering::Epoch(6)));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn znode_created_after_start_is_seen() {
    let zk = zk_server().await;
    let connect = zk.connect_string();
    let path = "/t/late/primary";
    delete(&connect, path).await;
    let d = Disco::start(cfg(&connect, path, Duration::from_secs(4)));
    d.connected().await;
    assert!(d.table.current().primary.is_none());
    write(&connect, path, &json("10.0.0.5", 3306, 1)).await;
    d.route("created", |r| port_of(r) == Some(3306)).await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparseable_data_keeps_route_and_shows_in_status() {
    let zk = zk_server().await;
    let connect = zk.connect_string();
    let path = "/t/garbage/primary";
    write(&connect, path, &json("10.0.0.5", 3306, 3)).await;
    let d = Disco::start(cfg(&connect, path, Duration::from_secs(4)));
    d.route("epoch 3", |r| port_of(r) == Some(3306)).await;
    let generation = d.table.current().generation;

    write(
        &connect,
        path,
        br#"{"host":"10.0.0.6","port":70000,"epoch":4}"#,
    )
    .await;
    let s = d
        .status("unparseable reported", |s| s.last_error.is_some())
        .await;
    assert!(s.last_error.unwrap().contains("70000"));
    assert!(s.last_record.unwrap().contains("70000"));
    assert_eq!(d.stats.records_ignored(IgnoredRecord::Unparseable), 1);
    write(&connect, path, b"\xff\xfe not utf-8").await;
    d.status("non-utf8 reported", |s| {
        s.last_error.as_deref().is_some_and(|e| e.contains("UTF-8"))
    })
    .await;
    assert_eq!(d.stats.records_ignored(IgnoredRecord::Unparseable), 2);
    let r = d.table.current();
    assert_eq!((port_of(&r), r.generation), (Some(3306), generation));

    // Still watching: a good record is applied and clears the error.
    write(&connect, path, &json("10.0.0.6", 3307, 4)).await;
    d.route("epoch 4", |r| port_of(r) == Some(3307)).await;
    d.status("error cleared", |s| s.last_error.is_none()).await;
    d.stop().await;
}
