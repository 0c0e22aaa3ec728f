//! The draining acknowledgement protocol with two proxies, one slow to drain
//! (a transaction open through it): the switchover waits for both
//! acknowledgements before it makes the old primary read-only, the transaction commits on the old
//! primary, and the statements held meanwhile run on the new primary
//! without an error.

mod common;
#[path = "ops/support.rs"]
mod support;

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::Conn;
use mysql_zk_proxy_core::proxy::Proxy;
use mysql_zk_proxy_core::routing::RecordState;
use mysql_zk_proxy_ops::report::Outcome;
use support::*;

/// How long the test keeps the slow proxy's transaction open after the
/// fast proxy acknowledged (the switchover must not move meanwhile).
const HOLD: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_waits_for_every_proxy_and_loses_no_statement() {
    let env =
        common::start_with(true, |c| proxy_config(c, "px-fast", Duration::from_secs(5))).await;
    let mut cfg = common::test_config(&env.cluster);
    proxy_config(&mut cfg, "px-slow", Duration::from_secs(30));
    let slow = Proxy::start(cfg).await.expect("second proxy starts");
    wait_registered(&env.cluster, &["px-fast", "px-slow"]).await;
    let (old, new) = (
        env.cluster.primary().port(),
        env.cluster.replica().unwrap().port(),
    );
    admin(old)
        .await
        .query_drop("CREATE TABLE app.d (id INT PRIMARY KEY)")
        .await
        .unwrap();

    let slow_port = slow.listen_addr().port();
    let mut tx = Conn::new(common::app_opts(slow_port)).await.unwrap();
    tx.query_drop("BEGIN").await.unwrap();
    tx.query_drop("INSERT INTO app.d VALUES (1)").await.unwrap();
    let mut idle_fast = Conn::new(env.via_proxy()).await.unwrap();
    idle_fast.query_drop("SET @x = 7").await.unwrap();
    let mut idle_slow = Conn::new(common::app_opts(slow_port)).await.unwrap();
    idle_slow.query_drop("SET @y = 8").await.unwrap();

    let cluster = &env.cluster;
    let clients = async {
        wait_for("px-fast's acknowledgement", || async {
            drained_epoch(cluster, "px-fast").await == Some(Some(2))
        })
        .await;
        // issued while draining: held at their rest points
        let held_fast = tokio::spawn(async move {
            let r: Option<(u16, i64)> = idle_fast.query_first("SELECT @@port, @x").await.unwrap();
            r
        });
        let held_slow = tokio::spawn(async move {
            let r: Option<(u16, i64)> = idle_slow.query_first("SELECT @@port, @y").await.unwrap();
            r
        });
        // the slow proxy has not acknowledged, so nothing moves
        let window = Instant::now() + HOLD;
        while Instant::now() < window {
            assert_eq!(
                drained_epoch(cluster, "px-slow").await,
                Some(None),
                "acked with a transaction open"
            );
            assert_eq!(record(cluster).await.state, RecordState::Draining);
            assert!(
                !read_only(old).await,
                "made read-only before every proxy acknowledged"
            );
        }
        tx.query_drop("INSERT INTO app.d VALUES (2)").await.unwrap();
        let in_tx: u16 = tx.query_first("SELECT @@port").await.unwrap().unwrap();
        tx.query_drop("COMMIT").await.expect("the commit lands");
        let after: u16 = tx.query_first("SELECT @@port").await.unwrap().unwrap();
        let fast = held_fast.await.unwrap().unwrap();
        let slow = held_slow.await.unwrap().unwrap();
        (in_tx, after, fast, slow)
    };
    let mut plan = env.cluster.switchover_plan().unwrap();
    plan.drain_timeout = Duration::from_secs(20);
    // the tool itself (the sandbox's roles are not needed afterwards)
    let connect = cluster.zk_connect();
    let zk = mysql_zk_proxy_ops::zk::connect(&connect, Duration::from_secs(10), None, None);
    let zk = zk.await.unwrap();
    let run = mysql_zk_proxy_ops::switchover::run(&zk, &plan);
    let (report, (in_tx, after, fast, slow_row)) = tokio::join!(run, clients);
    eprintln!("{report}");
    assert_eq!(report.outcome, Outcome::Switched, "{report}");
    assert_eq!(report.proxies.len(), 2, "{report}");
    assert!(report.proxies.iter().all(|p| p.acked), "{report}");
    assert!(report.phases.drain.unwrap() >= HOLD, "{report}");
    assert_eq!(in_tx, old, "the transaction finished on the old primary");
    assert_eq!(after, new, "then its session moved to the new primary");
    assert_eq!(
        (fast, slow_row),
        ((new, 7), (new, 8)),
        "held statements ran on the new primary"
    );
    assert_eq!(
        count(new, "app.d").await,
        2,
        "the committed transaction is on the new primary"
    );
    for p in [&env.proxy, &slow] {
        assert_eq!(p.stats().sessions_closed_by_failover.load(Relaxed), 0);
        assert_eq!(p.stats().transactions_aborted.load(Relaxed), 0);
    }
}
