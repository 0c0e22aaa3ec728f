//! Shutdown drains: sessions end at a rest point, statements in flight
//! complete, a transaction that never ends is rolled back (never half-applied).

mod common;

use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::Conn;
use mysql_zk_proxy_core::metrics::ConnOutcome;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_sessions_and_refuses_new_ones() {
    let env = common::start(false).await;
    let mut idle = Conn::new(env.via_proxy()).await.unwrap();
    let _: Option<i64> = idle.query_first("SELECT 1").await.unwrap();
    let addr = env.proxy.listen_addr();
    let stats = env.proxy.stats().clone();
    let t0 = Instant::now();
    assert!(
        env.proxy.shutdown(Duration::from_secs(10)).await,
        "drained cleanly"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "idle sessions close at once"
    );
    assert!(
        idle.query_drop("SELECT 1").await.is_err(),
        "idle session was closed"
    );
    assert_eq!(stats.connections_with_outcome(ConnOutcome::Shutdown), 1);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_transaction_in_flight_finish() {
    let env = common::start(false).await;
    let mut direct = env.direct_with_table().await;
    let mut c = env.client_in_transaction().await;
    let stats = env.proxy.stats().clone();
    let proxy = env.proxy;
    let shutdown = tokio::spawn(proxy.shutdown(Duration::from_secs(20)));
    // the statement in flight and the COMMIT after it both run
    let slept: Option<i64> = c.query_first("SELECT SLEEP(0.3)").await.unwrap();
    assert_eq!(slept, Some(0));
    c.query_drop("INSERT INTO t VALUES (2)").await.unwrap();
    c.query_drop("COMMIT").await.unwrap();
    assert!(shutdown.await.unwrap(), "drained before the deadline");
    assert!(
        c.query_drop("SELECT 1").await.is_err(),
        "closed after the commit"
    );
    let n: i64 = direct
        .query_first("SELECT COUNT(*) FROM t")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 2, "the whole transaction is there");
    assert_eq!(stats.connections_with_outcome(ConnOutcome::Shutdown), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_left_open_is_rolled_back_not_half_applied() {
    let env = common::start(false).await;
    let mut direct = env.direct_with_table().await;
    let mut c = env.client_in_transaction().await;
    let t0 = Instant::now();
    let clean = env.proxy.shutdown(Duration::from_secs(2)).await;
    assert!(clean, "closed at the idle deadline, before the hard stop");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(1),
        "waited the at-rest phase first ({took:?})"
    );
    assert!(took < Duration::from_secs(5));
    assert!(c.query_drop("COMMIT").await.is_err(), "the client is told");
    // the server rolls back a transaction whose connection closed
    assert_eq!(
        common::rows_once_app_sessions_ended(&mut direct, "t").await,
        0,
        "rolled back"
    );
}
