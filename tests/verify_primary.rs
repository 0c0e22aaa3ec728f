//! Verification of new primaries against real servers: a new primary becomes the route only once
//! it is verified writable and matches the record (a read-only replica is
//! never routed to until `read_only=0`), and the ZooKeeper loss policy
//! (`zookeeper.fail_closed_after`). No mocks; waits are on the route table
//! and the status watch, with deadlines.

mod common;
#[path = "discovery/support.rs"]
mod support;

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_zk_proxy_core::config::{MonitorConfig, Secret, ZookeeperConfig};
use mysql_zk_proxy_core::discovery::{Extras, ZkState};
use mysql_zk_proxy_core::metrics::SessionState;
use mysql_zk_proxy_core::routing::Ordering;
use mysql_zk_proxy_core::verify::Verifier;
use mysql_zk_proxy_sandbox::Cluster;
use support::*;

fn verifier() -> Verifier {
    let cfg = MonitorConfig {
        user: "admin".into(),
        password: Secret::new("admin"),
        recheck_interval: Duration::from_millis(100),
        ..MonitorConfig::default()
    };
    Verifier::from_config(&cfg)
        .unwrap()
        .expect("verification on with a user")
}

fn fenced(cluster: &Cluster) -> Disco {
    let cfg = cfg(
        &cluster.zk_connect(),
        cluster.primary_path(),
        Duration::from_secs(4),
    );
    let extras = Extras {
        verifier: Some(verifier()),
        ..Extras::default()
    };
    Disco::start_with(cfg, extras)
}

async fn publish(cluster: &Cluster, record: String) {
    cluster
        .publish_raw(record.as_bytes())
        .await
        .expect("publish");
}

/// The status says why `epoch`'s primary is held, containing `what`.
async fn held(d: &Disco, epoch: u64, what: &str) {
    let tag = format!("epoch {epoch}:");
    let s = d
        .status(what, |s| {
            s.verify_error
                .as_deref()
                .is_some_and(|e| e.starts_with(&tag) && e.contains(what))
        })
        .await;
    let r = d.table.current();
    assert!(r.primary.is_none(), "held, yet routed: {r:?} {s:?}");
    assert_eq!(r.pending.as_ref().map(|p| p.epoch), Some(epoch), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_replica_is_routed_to_only_once_writable() {
    let cluster = Cluster::builder().start().await.expect("cluster");
    let (primary, replica) = (cluster.primary(), cluster.replica().unwrap());
    let d = fenced(&cluster);
    let r = d.route("primary verified", |r| r.primary.is_some()).await;
    assert_eq!(port_of(&r), Some(primary.port()));
    assert!(d.status.borrow().verify_error.is_none());

    // A record naming the read-only replica: seen, never routed to.
    publish(&cluster, record(replica.port(), 2, "")).await;
    held(&d, 2, "read-only").await;
    assert_eq!(d.table.current().high_water, Some(Ordering::Epoch(2)));
    replica
        .sql_async("SET GLOBAL read_only = 0")
        .await
        .expect("make the replica writable");
    let r = d
        .route("replica once writable", |r| {
            port_of(r) == Some(replica.port())
        })
        .await;
    assert_eq!(
        (r.primary.as_ref().unwrap().epoch, r.pending.is_none()),
        (2, true)
    );
    d.status("verify error cleared", |s| s.verify_error.is_none())
        .await;

    // A lower epoch is still ignored, even for a writable server.
    publish(&cluster, record(primary.port(), 1, "")).await;
    d.status("stale record", |s| {
        s.last_error.as_deref().is_some_and(|e| e.contains("stale"))
    })
    .await;
    assert_eq!(port_of(&d.table.current()), Some(replica.port()));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_proxy_new_connections_wait_for_the_verified_primary() {
    let env = common::start_with(true, |c| {
        common::with_monitor(c);
        c.monitor.recheck_interval = Duration::from_millis(100);
        c.failover.hold_timeout = Duration::from_secs(20);
    })
    .await;
    let replica = env.cluster.replica().unwrap();
    let table = env.proxy.route_table().clone();
    env.cluster.publish_json(replica.port(), 2).await.unwrap();
    let mut rx = table.subscribe();
    tokio::time::timeout(WAIT, async {
        while table.current().pending.as_ref().map(|p| p.port) != Some(replica.port()) {
            rx.changed().await.unwrap();
        }
    })
    .await
    .expect("the replica's record is pending");

    let opts = env.via_proxy();
    let client = tokio::spawn(async move {
        let mut c = mysql_async::Conn::new(opts).await?;
        let id: Option<u64> = c.query_first("SELECT @@server_id").await?;
        c.disconnect().await?;
        anyhow::Ok(id)
    });
    // Poll (bounded) until the client is held waiting for a primary.
    let stats = env.proxy.stats().clone();
    let deadline = tokio::time::Instant::now() + WAIT;
    while stats.sessions_in(SessionState::WaitingForPrimary) < 1 {
        assert!(tokio::time::Instant::now() < deadline, "client never held");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        table.current().primary.is_none(),
        "nothing routed while held"
    );

    replica.sql_async("SET GLOBAL read_only = 0").await.unwrap();
    env.wait_for_primary_port(replica.port()).await;
    let id = client.await.unwrap().expect("held client served");
    assert_eq!(id, Some(2), "served by the verified new primary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_identity_must_match_the_record() {
    let cluster = Cluster::builder()
        .without_replica()
        .start()
        .await
        .expect("cluster");
    let port = cluster.primary().port();
    let d = fenced(&cluster);
    d.route("primary verified", |r| r.primary.is_some()).await;

    publish(&cluster, record(port, 2, r#","server_id":99"#)).await;
    held(&d, 2, "server_id 1; the record says 99").await;
    // MariaDB has no @@server_uuid: a record naming one cannot be verified.
    publish(
        &cluster,
        record(
            port,
            3,
            r#","server_uuid":"3e11fa47-71ca-11e1-9e33-c80aa9429562""#,
        ),
    )
    .await;
    held(&d, 3, "no @@server_uuid").await;

    publish(&cluster, record(port, 4, r#","server_id":1"#)).await;
    let r = d
        .route("matching server_id", |r| {
            r.primary.as_ref().is_some_and(|p| p.epoch == 4)
        })
        .await;
    assert_eq!(r.primary.as_ref().unwrap().server_id, Some(1));

    // Deleting the znode drops a pending candidate too.
    publish(&cluster, record(port, 5, r#","server_id":7"#)).await;
    held(&d, 5, "server_id").await;
    cluster.unpublish().await.unwrap();
    let r = d
        .route("no primary, nothing pending", |r| r.pending.is_none())
        .await;
    assert!(r.primary.is_none());
    d.status("verify error cleared", |s| s.verify_error.is_none())
        .await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_after_stops_routing_until_zookeeper_is_back() {
    let z = Znode::start("/t/fail-closed/primary").await;
    let c = ZookeeperConfig {
        fail_closed_after: Some(Duration::from_millis(500)),
        ..z.cfg(Duration::from_secs(4))
    };
    let d = Disco::start_routed(c, 1).await;

    z.zk.pause().expect("SIGSTOP");
    let r = d.routes_nowhere("routing stopped").await;
    assert_eq!(r.high_water, Some(Ordering::Epoch(1)), "high water kept");
    let s = d.status.borrow().clone();
    assert!(
        s.fail_closed
            .as_deref()
            .is_some_and(|w| w.contains("fail_closed_after")),
        "{s:?}"
    );
    assert_ne!(s.state, ZkState::Connected);
    z.zk.resume().expect("SIGCONT");

    d.routes_to("routing resumed", 3306).await;
    d.status("fail-closed lifted", |s| s.fail_closed.is_none())
        .await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_routing_continues_while_zookeeper_is_paused() {
    let (z, d) = Znode::routed("/t/fail-open/primary", Duration::from_secs(2), 1).await;
    let generation = d.table.current().generation;

    z.zk.pause().expect("SIGSTOP");
    d.status("expired", |s| s.state == ZkState::Expired).await;
    let r = d.table.current();
    assert_eq!((port_of(&r), r.generation), (Some(3306), generation));
    assert!(d.status.borrow().fail_closed.is_none());
    z.zk.resume().expect("SIGCONT");
    d.connected().await;
    assert_eq!(port_of(&d.table.current()), Some(3306));
    d.stop().await;
}

/// `{"host":"127.0.0.1","port":P,"epoch":E<extra>}`.
fn record(port: u16, epoch: u64, extra: &str) -> String {
    format!(r#"{{"host":"127.0.0.1","port":{port},"epoch":{epoch}{extra}}}"#)
}
