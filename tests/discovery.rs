//! Discovery against a real ZooKeeper: records, epoch order, deletion, bad data,
//! connection loss, session expiry, ZooKeeper down at start, several servers
//! and a chroot. No mocks; every wait is on a channel with a deadline.

#[path = "discovery/support.rs"]
mod support;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use mysql_zk_proxy_core::discovery::ZkState;
use mysql_zk_proxy_core::metrics::IgnoredRecord;
use mysql_zk_proxy_core::routing::{Ordering, RecordState};
use support::*;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_record_is_published() {
    let z = Znode::start("/t/json/primary").await;
    z.write(&json("10.0.0.5", 3306, 42)).await;
    let d = Disco::start(z.cfg(Duration::from_secs(4)));
    let r = d.route("json primary", |r| r.primary.is_some()).await;
    let p = r.primary.as_ref().unwrap();
    assert_eq!((p.host.as_str(), p.port, p.epoch), ("10.0.0.5", 3306, 42));
    assert_eq!(r.high_water, Some(Ordering::Epoch(42)));
    assert_eq!(r.state, RecordState::Serving);
    let s = d.connected().await;
    assert!(s.session_id.as_deref().unwrap().starts_with("0x"), "{s:?}");
    assert_eq!(d.stats.route_changes.load(Relaxed), 1);

    z.write(br#"{"host":"10.0.0.6","port":3307,"epoch":43,"state":"draining","server_id":7}"#)
        .await;
    let r = d.routes_to("epoch 43", 3307).await;
    assert_eq!(r.state, RecordState::Draining);
    assert_eq!(r.primary.as_ref().unwrap().server_id, Some(7));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_host_port_record_orders_by_mzxid() {
    let z = Znode::start("/t/plain/primary").await;
    z.write(b"10.0.0.7:3306\n").await;
    let d = Disco::start(z.cfg(Duration::from_secs(4)));
    let r = d.route("plain primary", |r| r.primary.is_some()).await;
    let p = r.primary.as_ref().unwrap();
    assert_eq!((p.host.as_str(), p.port), ("10.0.0.7", 3306));
    let Some(Ordering::Mzxid(mzxid)) = r.high_water else {
        panic!("plain record must be mzxid-ordered: {r:?}");
    };
    assert_eq!(p.epoch, mzxid as u64);

    z.write(b"[::1]:3307").await;
    let r = d.routes_to("ipv6 plain primary", 3307).await;
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
    z.publish_until_routed(&d, "10.0.0.8", 3308, 1).await;
    // ... and a plain record cannot go back below it.
    z.write(b"10.0.0.9:3309").await;
    d.status("plain record ignored", |s| s.last_error.is_some())
        .await;
    assert_eq!(port_of(&d.table.current()), Some(3308));
    assert_eq!(d.stats.records_ignored(IgnoredRecord::Stale), 1);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epoch_order_lower_ignored_higher_applied() {
    let (z, d) = Znode::routed("/t/epochs/primary", Duration::from_secs(4), 10).await;

    z.write(&json("10.0.0.6", 3307, 9)).await;
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
    z.write(&json("10.0.0.5", 3306, 10)).await;
    d.status("equal record accepted", |s| s.last_error.is_none())
        .await;
    assert_eq!(d.table.current().generation, generation);

    let r = z.publish_until_routed(&d, "10.0.0.6", 3307, 11).await;
    assert_eq!(r.high_water, Some(Ordering::Epoch(11)));
    assert_eq!(r.generation, generation + 1);
    assert_eq!(d.stats.route_changes.load(Relaxed), 2);
    assert_eq!(d.stats.records_ignored(IgnoredRecord::Stale), 1);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_znode_means_no_primary_until_recreated() {
    let (z, d) = Znode::routed("/t/deleted/primary", Duration::from_secs(4), 5).await;

    z.delete().await;
    let r = d.routes_nowhere("no primary").await;
    assert_eq!(r.high_water, Some(Ordering::Epoch(5)), "high water kept");

    // Re-created with a lower epoch: still stale.
    z.write(&json("10.0.0.4", 3305, 4)).await;
    d.status("lower re-creation ignored", |s| s.last_error.is_some())
        .await;
    assert!(d.table.current().primary.is_none());
    assert_eq!(d.stats.records_ignored(IgnoredRecord::Stale), 1);

    z.delete().await;
    let r = z.publish_until_routed(&d, "10.0.0.6", 3307, 6).await;
    assert_eq!(r.high_water, Some(Ordering::Epoch(6)));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn znode_created_after_start_is_seen() {
    let z = Znode::start("/t/late/primary").await;
    z.delete().await;
    let d = Disco::start(z.cfg(Duration::from_secs(4)));
    d.connected().await;
    assert!(d.table.current().primary.is_none());
    z.publish_until_routed(&d, "10.0.0.5", 3306, 1).await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparseable_data_keeps_route_and_shows_in_status() {
    let (z, d) = Znode::routed("/t/garbage/primary", Duration::from_secs(4), 3).await;
    let generation = d.table.current().generation;

    z.write(br#"{"host":"10.0.0.6","port":70000,"epoch":4}"#)
        .await;
    let s = d
        .status("unparseable reported", |s| s.last_error.is_some())
        .await;
    assert!(s.last_error.unwrap().contains("70000"));
    assert!(s.last_record.unwrap().contains("70000"));
    assert_eq!(d.stats.records_ignored(IgnoredRecord::Unparseable), 1);
    z.write(b"\xff\xfe not utf-8").await;
    d.status("non-utf8 reported", |s| {
        s.last_error.as_deref().is_some_and(|e| e.contains("UTF-8"))
    })
    .await;
    assert_eq!(d.stats.records_ignored(IgnoredRecord::Unparseable), 2);
    let r = d.table.current();
    assert_eq!((port_of(&r), r.generation), (Some(3306), generation));

    // Still watching: a good record is applied and clears the error.
    z.publish_until_routed(&d, "10.0.0.6", 3307, 4).await;
    d.status("error cleared", |s| s.last_error.is_none()).await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_restart_is_survived_within_the_session() {
    // A long session so that it outlives the restart.
    let (mut z, d) = Znode::routed("/t/restart/primary", Duration::from_secs(10), 1).await;
    let session = d.connected().await.session_id;

    z.zk = blocking(move || z.zk.stop().map(|()| z.zk))
        .await
        .expect("stop");
    let s = d
        .status("disconnected", |s| s.state == ZkState::Disconnected)
        .await;
    assert_eq!(s.session_id, None);
    assert_eq!(
        port_of(&d.table.current()),
        Some(3306),
        "route kept while disconnected"
    );
    assert_eq!(d.stats.zk_disconnects.load(Relaxed), 1);

    z.zk = blocking(move || z.zk.restart().map(|()| z.zk))
        .await
        .expect("restart");
    let s = d.connected().await;
    assert_eq!(s.session_id, session, "same session after the restart");
    z.publish_until_routed(&d, "10.0.0.6", 3307, 2).await;
    assert_eq!(d.stats.zk_sessions_expired.load(Relaxed), 0);
    assert_eq!(d.stats.zk_sessions_established.load(Relaxed), 1);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_session_is_replaced_and_watching_continues() {
    let (z, d) = Znode::routed("/t/expiry/primary", Duration::from_secs(2), 1).await;
    let first = d.connected().await.session_id;

    // Frozen longer than the session timeout: the client gives the session up.
    z.zk.pause().expect("SIGSTOP");
    d.status("expired", |s| s.state == ZkState::Expired).await;
    assert_eq!(port_of(&d.table.current()), Some(3306), "last primary kept");
    assert!(d.stats.zk_sessions_expired.load(Relaxed) >= 1);
    z.zk.resume().expect("SIGCONT");

    let s = d.connected().await;
    assert_ne!(s.session_id, first, "a new session");
    assert_eq!(d.stats.zk_sessions_established.load(Relaxed), 2);
    z.publish_until_routed(&d, "10.0.0.6", 3307, 2).await;
    z.delete().await;
    d.routes_nowhere("deletion on the new session").await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_down_at_start_then_up() {
    let mut z = Znode::start("/t/down/primary").await;
    z.write(&json("10.0.0.5", 3306, 1)).await;
    z.zk = blocking(move || z.zk.stop().map(|()| z.zk))
        .await
        .expect("stop");

    let d = Disco::start(z.cfg(Duration::from_secs(2)));
    d.status("connect failure reported", |s| s.zk_error.is_some())
        .await;
    let s = d.status.borrow().clone();
    assert_eq!(s.state, ZkState::Connecting);
    assert!(d.table.current().primary.is_none());
    assert_eq!(d.stats.zk_sessions_established.load(Relaxed), 0);

    z.zk = blocking(move || z.zk.restart().map(|()| z.zk))
        .await
        .expect("start");
    d.routes_to("primary once ZooKeeper is up", 3306).await;
    let s = d.connected().await;
    assert!(s.zk_error.is_none() && s.session_id.is_some(), "{s:?}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_server_listed_first_and_chroot() {
    let zk = zk_server().await;
    let live = zk.connect_string();
    write(&live, "/proxy-a/mysql/primary", &json("10.0.0.5", 3306, 8)).await;
    write(&live, "/mysql/primary", &json("10.9.9.9", 9999, 99)).await;

    let dead = dead_port();
    let connect = format!("127.0.0.1:{},{live}/proxy-a", dead.port());
    let d = Disco::start(cfg(&connect, "/mysql/primary", Duration::from_secs(4)));
    let r = d
        .route("primary under the chroot", |r| r.primary.is_some())
        .await;
    assert_eq!(
        port_of(&r),
        Some(3306),
        "read under the chroot, not the root"
    );

    d.publish_until_routed(&live, "/proxy-a/mysql/primary", "10.0.0.6", 3307, 9)
        .await;
    delete(&live, "/proxy-a/mysql/primary").await;
    d.routes_nowhere("deleted under the chroot").await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_reaches_route_table_within_milliseconds() {
    let z = Znode::start("/t/latency/primary").await;
    z.write(&json("10.0.0.5", 1, 1)).await;
    let d = Disco::start(z.cfg(Duration::from_secs(4)));
    d.routes_to("epoch 1", 1).await;
    let writer = mysql_zk_proxy_sandbox::zk_connect(&z.connect)
        .await
        .unwrap();
    let mut took = Vec::new();
    for epoch in 2..=41u64 {
        let port = epoch as u16;
        let start = Instant::now();
        mysql_zk_proxy_sandbox::zkclient::write_with(
            &writer,
            z.path,
            &json("10.0.0.5", port, epoch),
        )
        .await
        .unwrap();
        d.routes_to("next epoch", port).await;
        took.push(start.elapsed());
    }
    took.sort();
    let (p50, p99) = (took[took.len() / 2], took[took.len() * 99 / 100]);
    eprintln!(
        "set_data -> RouteTable over {} changes: p50 {p50:?}, p99 {p99:?}, max {:?}",
        took.len(),
        took.last().unwrap()
    );
    assert!(p50 < Duration::from_millis(250), "p50 {p50:?}");
    d.stop().await;
}
