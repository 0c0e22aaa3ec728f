//! Where connections go: held while no primary is known, clear errors when
//! none appears or it is unreachable, and new connections follow the record.

mod common;

use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::Conn;
use mysql_zk_proxy_core::metrics::ConnOutcome;

fn proxy_error(r: Result<Conn, mysql_async::Error>) -> mysql_async::ServerError {
    match r {
        Err(mysql_async::Error::Server(e)) => e,
        Err(other) => panic!("expected a proxy error packet, got {other:?}"),
        Ok(_) => panic!("expected a proxy error, got a connection"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_primary_holds_then_errors_with_the_reason() {
    let env = common::start_with(false, |c| {
        c.failover.hold_timeout = Duration::from_millis(800);
    })
    .await;
    env.cluster.unpublish().await.unwrap();
    common::wait_for_no_primary(&env.proxy).await;
    let t0 = Instant::now();
    let e = proxy_error(Conn::new(env.via_proxy()).await);
    let waited = t0.elapsed();
    assert_eq!(e.code, 9001);
    assert!(e.message.starts_with("mysql-zk-proxy: "), "{}", e.message);
    assert!(e.message.contains("no primary known"), "{}", e.message);
    assert!(
        e.message.contains(env.cluster.primary_path()),
        "{}",
        e.message
    );
    assert!(
        waited >= Duration::from_millis(800),
        "greeting was held ({waited:?})"
    );
    common::outcome_counted(env.proxy.stats(), ConnOutcome::NoPrimary, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_connection_proceeds_when_a_primary_is_published() {
    let env = common::start(false).await;
    env.cluster.unpublish().await.unwrap();
    common::wait_for_no_primary(&env.proxy).await;
    let opts = env.via_proxy();
    let client = tokio::spawn(async move {
        let mut c = Conn::new(opts).await?;
        c.query_first::<u16, _>("SELECT @@port").await
    });
    // the client is now waiting for its greeting
    let stats = env.proxy.stats().clone();
    let deadline = Instant::now() + Duration::from_secs(5);
    while stats.sessions_in(mysql_zk_proxy_core::metrics::SessionState::WaitingForPrimary) == 0 {
        assert!(Instant::now() < deadline, "client never started waiting");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let port = env.cluster.primary().port();
    env.cluster.publish_json(port, 2).await.unwrap();
    let got = client.await.unwrap().unwrap();
    assert_eq!(got, Some(port));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_primary_is_a_clear_error_not_a_hang() {
    let env = common::start(false).await;
    let refused = mysql_zk_proxy_sandbox::process::RefusedPort::new().unwrap();
    let dead = refused.port();
    env.cluster.publish_json(dead, 5).await.unwrap();
    env.wait_for_primary_port(dead).await;
    let t0 = Instant::now();
    let e = proxy_error(Conn::new(env.via_proxy()).await);
    assert_eq!(e.code, 9002);
    assert!(
        e.message.starts_with("mysql-zk-proxy: cannot connect"),
        "{}",
        e.message
    );
    assert!(
        e.message.contains(&format!("127.0.0.1:{dead}")),
        "{}",
        e.message
    );
    assert!(t0.elapsed() < Duration::from_secs(10));
    common::outcome_counted(env.proxy.stats(), ConnOutcome::BackendUnreachable, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_dying_mid_session_closes_the_client() {
    let mut env = common::start(false).await;
    let mut c = Conn::new(env.via_proxy()).await.unwrap();
    let _: Option<i64> = c.query_first("SELECT 1").await.unwrap();
    env.cluster.primary_mut().kill().unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), c.query_drop("SELECT 1")).await;
    let r = r.expect("the client is told, not left hanging");
    assert!(r.is_err(), "query on a dead backend must fail");
    let stats = env.proxy.stats().clone();
    let deadline = Instant::now() + Duration::from_secs(5);
    while stats.connections_with_outcome(ConnOutcome::BackendLost) == 0 {
        assert!(Instant::now() < deadline, "backend loss not counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(stats.connections_active(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_connections_follow_the_record() {
    let env = common::start(true).await;
    let old_port = env.cluster.primary().port();
    let new_port = env.cluster.replica().expect("replica").port();
    let mut old = Conn::new(env.via_proxy()).await.unwrap();
    let p: u16 = old.query_first("SELECT @@port").await.unwrap().unwrap();
    assert_eq!(p, old_port);

    env.cluster.publish_json(new_port, 2).await.unwrap();
    env.wait_for_primary_port(new_port).await;
    let mut new = Conn::new(env.via_proxy()).await.unwrap();
    let p: u16 = new.query_first("SELECT @@port").await.unwrap().unwrap();
    assert_eq!(p, new_port, "new connection goes to the new primary");
}
