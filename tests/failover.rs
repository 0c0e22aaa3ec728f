//! Failover outcomes per session state (docs/architecture.md, failover), against real
//! ZooKeeper and MariaDB: idle sessions of known users are migrated with their
//! schema and variables; others get a documented error at their next command;
//! transactions finish on a draining primary or are aborted (past the drain
//! timeout, or when the record moves without draining); an unplanned failover
//! moves sessions whose state is known and refuses the rest.

mod common;

use std::time::{Duration, Instant};

use common::with_app_user;
use mysql_async::prelude::*;
use mysql_async::Conn;

fn server_error(e: mysql_async::Error) -> mysql_async::ServerError {
    match e {
        mysql_async::Error::Server(e) => e,
        other => panic!("expected a server error, got {other:?}"),
    }
}

/// `e` must be a server error with `code` and a message containing `says`;
/// it is returned for any further checks.
fn refused(e: mysql_async::Error, code: u16, says: &str) -> mysql_async::ServerError {
    let e = server_error(e);
    assert_eq!(e.code, code, "{}", e.message);
    assert!(e.message.contains(says), "{}", e.message);
    e
}

/// A session that has run a statement when the record moves, and must then
/// be closed (9005) at its next one with a message containing `says`: that
/// error.
async fn next_statement_after_a_move(env: &common::Env, says: &str) -> mysql_async::ServerError {
    let mut c = Conn::new(env.via_proxy()).await.unwrap();
    let _: Option<i64> = c.query_first("SELECT 1").await.unwrap();
    move_record_to_replica(env).await;
    refused(c.query_drop("SELECT 1").await.unwrap_err(), 9005, says)
}

/// Record-only move to the replica (epoch 2; the servers keep their roles),
/// once the proxy routes there. Returns the replica's port.
async fn move_record_to_replica(env: &common::Env) -> u16 {
    let port = env.cluster.replica().expect("replica").port();
    env.cluster.publish_json(port, 2).await.unwrap();
    env.wait_for_primary_port(port).await;
    port
}

/// A cluster whose record moved straight to the replica (record-only: the
/// old primary stays writable) while an app client had a transaction open:
/// the cluster, a direct connection to the old primary with the empty table
/// `app.t`, and that client.
async fn transaction_open_across_a_move() -> (common::Env, Conn, Conn) {
    let env = common::start_with(true, with_app_user).await;
    let admin = env.direct_with_table().await;
    let c = env.client_in_transaction().await;
    move_record_to_replica(&env).await;
    (env, admin, c)
}

/// Wait (up to 15 s) until `cond` holds; `what` names it on a timeout.
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_session_is_migrated_with_schema_and_variables() {
    let mut env = common::start_with(true, with_app_user).await;
    let mut admin = Conn::new(env.direct()).await.unwrap();
    admin
        .query_drop("CREATE TABLE app.other_t (x INT)")
        .await
        .unwrap();
    let mut c = Conn::new(env.via_proxy()).await.unwrap();
    let first_id = c.id();
    c.query_drop("SET @v = 42").await.unwrap();
    c.query_drop("SET SESSION sql_mode = 'ANSI_QUOTES'")
        .await
        .unwrap();
    c.query_drop("USE sbtest").await.unwrap();
    let report = env.cluster.switchover().await.unwrap();
    env.wait_for_primary_port(report.new_port).await;
    // the same client connection, no error, on the new primary with its state
    let row: (u16, String, i64, String) = c
        .query_first("SELECT @@port, DATABASE(), @v, @@sql_mode")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row,
        (report.new_port, "sbtest".into(), 42, "ANSI_QUOTES".into())
    );
    c.query_drop("INSERT INTO app.other_t VALUES (1)")
        .await
        .expect("writes go to the new primary");
    assert_eq!(c.id(), first_id, "the client keeps its connection");
    let stats = env.proxy.stats();
    assert_eq!(
        stats
            .sessions_migrated
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    // the failover timeline /status shows
    let t = env.proxy.last_failover().expect("a failover timeline");
    assert_eq!(t.to, format!("127.0.0.1:{}", report.new_port));
    assert_eq!(t.epoch, report.new_epoch);
    let swapped = t.swapped_after_ms.expect("swap recorded");
    let first = t
        .first_statement_after_ms
        .expect("first statement recorded");
    assert!(first >= swapped, "{t:?}");
    assert_eq!(t.sessions_migrated, 1, "{t:?}");
    assert_eq!(t.sessions_closed, 0, "{t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_is_closed_at_its_next_command() {
    let env = common::start(true).await; // no [[users]]
    let e = next_statement_after_a_move(&env, "not in the credential store").await;
    assert_eq!(e.state, "08S01");
    assert!(
        e.message.contains("epoch 1") && e.message.contains("epoch 2"),
        "{}",
        e.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_table_makes_a_session_unmigratable() {
    let env = common::start_with(true, with_app_user).await;
    let mut c = Conn::new(env.via_proxy()).await.unwrap();
    c.query_drop("CREATE TEMPORARY TABLE tmp (a INT)")
        .await
        .unwrap();
    move_record_to_replica(&env).await;
    refused(
        c.query_drop("SELECT * FROM tmp").await.unwrap_err(),
        9005,
        "temporary table",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_stored_hash_closes_instead_of_migrating() {
    let env = common::start_with(true, |c| {
        let hex = "*".to_string() + &"AB".repeat(20);
        c.users = vec![toml::from_str(&format!(
            "name = \"app\"\nmysql_native_password = \"{hex}\"\n"
        ))
        .unwrap()];
    })
    .await;
    let e = next_statement_after_a_move(&env, "does not match").await;
    assert!(!e.message.contains("ABAB"), "no secret in the message");
}

/// A record that moves straight to another server (no `draining` step)
/// ends an open transaction: its next statement would otherwise run on a
/// server the record left, so it gets 9006 and nothing of it commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_transaction_is_aborted_when_the_record_moves_without_a_drain() {
    let (_env, mut admin, mut c) = transaction_open_across_a_move().await;
    let e = server_error(c.query_drop("INSERT INTO t VALUES (2)").await.unwrap_err());
    assert_eq!(e.code, 9006, "{}", e.message);
    let n = common::rows_once_app_sessions_ended(&mut admin, "app.t").await;
    assert_eq!(n, 0, "no statement reached the old primary after the move");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_past_the_drain_timeout_is_aborted() {
    let (env, mut admin, mut c) = transaction_open_across_a_move().await;
    let stats = env.proxy.stats().clone();
    wait_until("the transaction to be aborted", || {
        stats
            .transactions_aborted
            .load(std::sync::atomic::Ordering::Relaxed)
            == 1
    })
    .await;
    let e = refused(
        c.query_drop("COMMIT").await.unwrap_err(),
        9006,
        "transaction aborted by failover",
    );
    assert_eq!(e.state, "40001");
    let n = common::rows_once_app_sessions_ended(&mut admin, "app.t").await;
    assert_eq!(n, 0, "rolled back, never half-applied");
}

/// A crashed primary cannot say what a session holds: a session whose
/// state is known without it (nothing ran since login) moves; one that ran
/// a statement since gets 9005 naming why, never a silently empty state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unplanned_failover_moves_known_sessions_and_refuses_the_rest() {
    let mut env = common::start_with(true, with_app_user).await;
    let mut known = Conn::new(env.via_proxy()).await.unwrap();
    known.ping().await.unwrap();
    let mut ran = Conn::new(env.via_proxy()).await.unwrap();
    ran.query_drop("SET @survivor = 'yes'").await.unwrap();
    env.cluster.primary_mut().kill().unwrap();
    let new_port = env.cluster.promote_replica_after_crash().await.unwrap();
    env.cluster.publish_json(new_port, 2).await.unwrap();
    env.wait_for_primary_port(new_port).await;
    let row: (u16, String) = tokio::time::timeout(
        Duration::from_secs(20),
        known.query_first("SELECT @@port, DATABASE()"),
    )
    .await
    .expect("nothing hangs")
    .unwrap()
    .unwrap();
    assert_eq!(row, (new_port, "app".into()));
    refused(
        ran.query_drop("SELECT @survivor").await.unwrap_err(),
        9005,
        "cannot be read",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planned_switchover_draining_costs_latency_not_errors() {
    draining_costs_latency_not_errors(with_app_user).await;
}

/// With verification on, the draining record (the serving primary at a new
/// epoch) keeps the route: the open transaction still commits there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planned_switchover_with_verification_costs_latency_not_errors() {
    draining_costs_latency_not_errors(|c| {
        with_app_user(c);
        common::with_monitor(c);
    })
    .await;
}

async fn draining_costs_latency_not_errors(tweak: fn(&mut mysql_zk_proxy_core::config::Config)) {
    let mut env = common::start_with(true, tweak).await;
    let old_port = env.cluster.primary().port();
    let mut c = Conn::new(env.via_proxy()).await.unwrap();
    c.query_drop("SET @x = 7").await.unwrap();
    // a transaction open through the proxy holds the drain (and so the
    // switchover) until it commits
    let mut tx = Conn::new(env.via_proxy()).await.unwrap();
    tx.query_drop("BEGIN").await.unwrap();
    tx.query_drop("SELECT 1").await.unwrap();
    let table = env.proxy.route_table().clone();
    let opts = env.via_proxy();
    let clients = async move {
        // woken by the route change itself, not a poll that could sleep
        // past a short-lived route
        let mut routes = table.subscribe();
        while table.current().serving() {
            routes.changed().await.expect("route table alive");
        }
        // issued while draining: held at the rest point, so it can only be
        // answered by the primary published afterwards
        let held = tokio::spawn(async move {
            let r: Option<(u16, i64)> = c.query_first("SELECT @@port, @x").await.unwrap();
            r
        });
        let newcomer = tokio::spawn(async move {
            let mut n = Conn::new(opts).await.unwrap();
            let p: Option<u16> = n.query_first("SELECT @@port").await.unwrap();
            p
        });
        tx.query_drop("COMMIT").await.unwrap();
        (held.await.unwrap(), newcomer.await.unwrap())
    };
    let (report, (held, newcomer)) = tokio::join!(env.cluster.switchover(), clients);
    let report = report.unwrap();
    assert_eq!(report.old_port, old_port);
    assert_eq!(
        held.unwrap(),
        (report.new_port, 7),
        "held statement ran on the new primary with its session state"
    );
    assert_eq!(
        newcomer,
        Some(report.new_port),
        "new connection held, then served by the new primary"
    );
    assert_eq!(
        env.proxy
            .stats()
            .sessions_closed_by_failover
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

/// `drained_epoch` in this proxy's registration znode (None while unset).
async fn drained_epoch(connect: &str, path: &str) -> Option<Option<u64>> {
    let (data, _) = mysql_zk_proxy_sandbox::zk_read(connect, path)
        .await
        .unwrap()?;
    let v: serde_json::Value = serde_json::from_slice(&data).unwrap();
    Some(v["drained_epoch"].as_u64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_is_acknowledged_once_transactions_finish() {
    let env = common::start_with(true, |c| {
        with_app_user(c);
        c.zookeeper.proxy_id = Some("px-test".into());
        c.failover.drain_timeout = Duration::from_secs(30);
    })
    .await;
    let zk = env.cluster.zk_connect();
    let path = mysql_zk_proxy_core::discovery::register::registration_path(
        env.cluster.primary_path(),
        "px-test",
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while drained_epoch(&zk, &path).await != Some(None) {
        assert!(
            Instant::now() < deadline,
            "proxy never registered at {path}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut c = Conn::new(env.via_proxy()).await.unwrap();
    c.query_drop("BEGIN").await.unwrap();
    c.query_drop("SELECT 1").await.unwrap();
    let port = env.cluster.primary().port();
    let draining = format!(r#"{{"host":"127.0.0.1","port":{port},"epoch":2,"state":"draining"}}"#);
    env.cluster.publish_raw(draining.as_bytes()).await.unwrap();
    let table = env.proxy.route_table().clone();
    wait_until("the draining record", || !table.current().serving()).await;
    // an open transaction holds the acknowledgement back (observed over a window)
    let window = Instant::now() + Duration::from_millis(300);
    while Instant::now() < window {
        assert_eq!(
            drained_epoch(&zk, &path).await,
            Some(None),
            "acknowledged with a transaction open"
        );
    }
    c.query_drop("COMMIT").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while drained_epoch(&zk, &path).await != Some(Some(2)) {
        assert!(
            Instant::now() < deadline,
            "drain of epoch 2 never acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_sent_while_the_primary_is_down_runs_on_the_new_one() {
    let mut env = common::start_with(true, with_app_user).await;
    let mut c = Conn::new(env.via_proxy()).await.unwrap();
    env.cluster.primary_mut().kill().unwrap();
    let stats = env.proxy.stats().clone();
    let waiting =
        || stats.sessions_in(mysql_zk_proxy_core::metrics::SessionState::WaitingForPrimary) == 1;
    wait_until("the proxy saw the backend go", waiting).await;
    // the client speaks before anyone has published the new primary
    let asked = tokio::spawn(async move {
        let row: Option<(u16, String)> = c.query_first("SELECT @@port, DATABASE()").await.unwrap();
        row
    });
    let new_port = env.cluster.promote_replica_after_crash().await.unwrap();
    assert!(!asked.is_finished(), "held, not answered with an error");
    env.cluster.publish_json(new_port, 2).await.unwrap();
    let row = tokio::time::timeout(Duration::from_secs(20), asked)
        .await
        .expect("nothing hangs")
        .unwrap();
    assert_eq!(row, Some((new_port, "app".into())));
    let stats = env.proxy.stats();
    assert_eq!(stats.ops.statement_hold.count(), 1, "one statement held");
    assert_eq!(
        stats
            .sessions_migrated
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

/// A move that blocks on the new primary (re-preparing a statement waits
/// behind a metadata lock there) ends at `failover.migrate_timeout` with
/// 9005: nothing hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_move_ends_at_the_migrate_timeout() {
    let env = common::start_with(true, |c| {
        with_app_user(c);
        c.failover.migrate_timeout = Duration::from_secs(1);
    })
    .await;
    let _admin = env.direct_with_table().await;
    let mut c = Conn::new(env.via_proxy()).await.unwrap();
    let stmt = c.prep("SELECT id FROM app.t").await.unwrap();
    let replica = env.cluster.replica().expect("replica").port();
    let admin = || Conn::new(common::admin_opts(replica));
    let (mut reader, mut alter) = (admin().await.unwrap(), admin().await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(15);
    while reader
        .query_drop("SELECT 1 FROM app.t LIMIT 0")
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "app.t never replicated");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // a transaction holds the table; an ALTER queues behind it and, waiting
    // for an exclusive lock, holds back every new statement on the table
    reader.query_drop("BEGIN").await.unwrap();
    reader.query_drop("SELECT * FROM app.t").await.unwrap();
    let alter_id = alter.id();
    let altering = tokio::spawn(async move {
        let _ = alter.query_drop("ALTER TABLE app.t ADD COLUMN x INT").await;
    });
    let waiting = format!(
        "SELECT COUNT(*) FROM information_schema.processlist WHERE id = {alter_id} \
         AND state LIKE 'Waiting for table metadata lock'"
    );
    let mut probe = admin().await.unwrap();
    while probe.query_first::<i64, _>(&waiting).await.unwrap() != Some(1) {
        assert!(Instant::now() < deadline, "the ALTER never waited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    move_record_to_replica(&env).await;
    let ran = tokio::time::timeout(Duration::from_secs(20), c.exec_drop(&stmt, ()))
        .await
        .expect("nothing hangs");
    refused(ran.unwrap_err(), 9005, "failover.migrate_timeout");
    probe.query_drop(format!("KILL {alter_id}")).await.unwrap();
    reader.query_drop("ROLLBACK").await.unwrap();
    altering.await.unwrap();
}
