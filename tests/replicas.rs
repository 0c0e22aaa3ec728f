//! The read-only listener against a real sandbox with two GTID replicas
//! (db2, db3): sessions spread over qualified replicas; records with a
//! stale epoch, garbage and replicas following another server are kept
//! out; a lagging replica leaves and comes back; a killed replica's idle
//! sessions move. Read-your-writes per consistency mode: tests/replicas/causal.rs;
//! `publish --replica`: tests/replicas/publish.rs.

#[path = "replicas/causal.rs"]
mod causal;
mod common;
#[path = "replicas/publish.rs"]
mod publish;
#[path = "replicas/support.rs"]
mod support;

use common::query;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use support::*;

const SECS_5: Duration = Duration::from_secs(5);
/// Bound on waits for a number of checks (not a timing target).
const SECS_30: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_spread_and_bad_records_are_kept_out() {
    let env = start_both_qualified().await;
    let ids = env.server_ids_closed(8).await;
    assert_eq!(ids.iter().filter(|&&i| i == 2).count(), 4, "{ids:?}");
    assert_eq!(ids.iter().filter(|&&i| i == 3).count(), 4, "{ids:?}");

    // a record with an epoch other than the primary's is ignored
    let db3 = env.cluster.replicas()[1].port();
    env.cluster.publish_replica("db3", db3, 7).await.unwrap();
    env.kept_out("db3", "stale_epoch").await;
    env.qualified(&["db2"], SECS_5).await;
    let ids = env.server_ids_closed(4).await;
    assert_eq!(ids, [2, 2, 2, 2]);

    // garbage is skipped and counted; the valid records stay
    let path = env.cluster.replica_path("junk");
    mysql_zk_proxy_sandbox::zk_write(&env.cluster.zk_connect(), &path, b"{not json")
        .await
        .unwrap();
    env.cluster.publish_replica("db3", db3, 1).await.unwrap();
    env.qualified(&["db2", "db3"], SECS_5).await;
    let router = env.proxy.read_router().unwrap();
    let invalid = || router.view(String::new()).invalid_records;
    let deadline = Instant::now() + SECS_5;
    while invalid() == 0 {
        assert!(Instant::now() < deadline, "garbage record not counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // db3 follows db2, not the primary: it never gets a session
    let mut admin = env.admin_on("db3").await;
    let db2 = env.cluster.replicas()[0].port();
    admin
        .query_drop(format!(
            "STOP SLAVE; CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={db2}; START SLAVE"
        ))
        .await
        .unwrap();
    env.kept_out("db3", "wrong_source").await;
    let ids = env.server_ids_closed(6).await;
    assert_eq!(ids, [2; 6], "a replica of another server got a session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_replica_gets_no_new_sessions_and_comes_back() {
    let env = start_both_qualified().await;
    let mut admin = env.admin_on("db3").await;
    admin.query_drop("STOP SLAVE SQL_THREAD").await.unwrap();
    let stopped = Instant::now();
    let checks = env.replicas()["db3"].checks;
    env.on_primary("UPDATE app.kv SET v = 'lagged' WHERE k = 'hello'")
        .await;
    // counted in checks, not time: a check may be under way when the thread
    // stops; the next one must see it stopped
    let r = env
        .until(
            "db3 out, or two checks of it after the stop",
            SECS_30,
            |r| !r["db3"].qualified || r["db3"].checks >= checks + 2,
        )
        .await;
    let took = stopped.elapsed();
    eprintln!("db3 disqualified {took:?} after its SQL thread stopped (check interval {CHECK:?})");
    assert_eq!(
        why_not(&r["db3"]),
        Some("sql_thread_stopped"),
        "still qualified two checks after its SQL thread stopped: {:#?}",
        r["db3"]
    );
    env.qualified(&["db2"], SECS_5).await;
    let ids = env.server_ids_closed(6).await;
    assert_eq!(ids, [2; 6], "a lagging replica got a session");

    admin.query_drop("START SLAVE SQL_THREAD").await.unwrap();
    let started = Instant::now();
    env.qualified(&["db2", "db3"], SECS_5).await;
    eprintln!(
        "db3 qualified again {:?} after catching up",
        started.elapsed()
    );
    let (ids, conns) = env.server_ids(4).await;
    assert!(ids.contains(&3), "db3 back: {ids:?}");
    let mut c = Conn::new(env.ro_opts()).await.unwrap();
    let v: String = query::one(&mut c, "SELECT v FROM app.kv WHERE k = 'hello'").await;
    assert_eq!(v, "lagged");
    close_all(conns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_over_max_lag_leaves_and_comes_back_when_caught_up() {
    let env = start_both_qualified().await;
    // db3's SQL thread keeps running but cannot apply: a table lock holds it
    let mut lock = env.admin_on("db3").await;
    lock.query_drop("LOCK TABLES app.kv WRITE").await.unwrap();
    env.on_primary("UPDATE app.kv SET v = 'late' WHERE k = 'hello'")
        .await;
    let written = Instant::now();
    let checks = env.replicas()["db3"].checks;
    let max_lag = Duration::from_secs(2);
    // Counted in checks, not time: one check may be under way at the write,
    // the next sees the primary ahead; checks are at least CHECK apart, so
    // max_lag / CHECK more pass max_lag and the one after that must
    // disqualify. Load only makes fewer checks pass meanwhile.
    let by = checks + (max_lag.as_millis() / CHECK.as_millis()) as u64 + 3;
    let mut took = None;
    let db3 = loop {
        let db3 = env.replicas().remove("db3").unwrap();
        let lagging = why_not(&db3) == Some("lagging");
        if lagging && took.is_none() {
            took = Some(written.elapsed());
        }
        // the check that measures a lag over max_lag disqualifies at once
        let over = db3.lag_ms.is_some_and(|l| l > max_lag.as_millis() as u64);
        assert!(!(db3.qualified && over), "qualified over max_lag: {db3:#?}");
        // still lagging when looked at late: the lag only grows meanwhile
        if db3.checks >= by {
            break db3;
        }
        assert!(written.elapsed() < SECS_30, "db3 not checked: {db3:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        why_not(&db3),
        Some("lagging"),
        "not out for lag {by} checks on: {db3:#?}"
    );
    let took = took.expect("seen lagging");
    eprintln!("db3 disqualified for lag {took:?} after the write (max_lag {max_lag:?})");
    assert!(
        took >= max_lag - CHECK,
        "left before its lag reached max_lag: {took:?}"
    );
    let ids = env.server_ids_closed(4).await;
    assert_eq!(ids, [2; 4], "a replica over max_lag got a session");

    lock.query_drop("UNLOCK TABLES").await.unwrap();
    let caught_up = Instant::now();
    env.qualified(&["db2", "db3"], SECS_5).await;
    let back = caught_up.elapsed();
    eprintln!("db3 qualified again {back:?} after catching up (requalify_checks 2)");
    assert!(
        back >= CHECK,
        "requalified without a second good check: {back:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_replica_moves_its_idle_sessions() {
    let mut env = start_both_qualified().await;
    // least connections: sessions alternate db2, db3, db2, ...
    let (ids, mut conns) = env.server_ids(6).await;
    assert_eq!(ids.iter().filter(|&&i| i == 3).count(), 3, "{ids:?}");
    // one db3 session read a table: its state is unknown once db3 is gone
    let tabled = ids.iter().position(|&i| i == 3).unwrap();
    let _: Option<String> =
        query::first(&mut conns[tabled], "SELECT v FROM app.kv WHERE k = 'hello'").await;
    env.cluster.replicas_mut()[1].kill().unwrap();
    env.qualified(&["db2"], SECS_5).await;
    for (i, c) in conns.iter_mut().enumerate() {
        let got: Result<Option<u64>, _> = c.query_first("SELECT @@server_id").await;
        if i == tabled {
            let e = got.expect_err("a session whose state is unknown is not moved");
            assert!(e.to_string().contains("9005"), "{e}");
        } else {
            assert_eq!(got.unwrap(), Some(2), "session {i} (was on {})", ids[i]);
        }
    }
    let moved = env
        .proxy
        .stats()
        .sessions_migrated
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(moved, 2, "the two idle db3 sessions that ran nothing moved");
    close_all(conns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_brings_the_replica_records_along() {
    let mut env = start_both_qualified().await;
    let report = env.cluster.switchover().await.expect("switchover");
    assert_eq!(env.cluster.primary().name(), "db2");
    // the promoted replica's record is gone; the old primary follows it
    assert!(env
        .cluster
        .published()
        .await
        .unwrap()
        .is_some_and(|(d, _)| String::from_utf8_lossy(&d).contains(&report.new_epoch.to_string())));
    env.qualified(&["db1", "db3"], Duration::from_secs(10))
        .await;
    let ids = env.server_ids_closed(4).await;
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, [1, 1, 3, 3], "{ids:?}");

    // an old primary back read-only with replication not started: no session
    let mut admin = env.admin_on("db1").await;
    admin
        .query_drop("STOP SLAVE; RESET SLAVE ALL")
        .await
        .unwrap();
    env.kept_out("db1", "not_replicating").await;
    let ids = env.server_ids_closed(4).await;
    assert_eq!(ids, [3; 4]);

    // /metrics shows every replica with its reason
    let admin_addr = env.proxy.admin_addr().unwrap();
    let (code, text) = common::http::get(admin_addr, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md")).unwrap();
    let documented: Vec<&str> = docs
        .lines()
        .filter_map(|l| l.strip_prefix("| `mysql_zk_proxy_read_only_"))
        .map(|rest| rest.split('`').next().unwrap())
        .collect();
    assert_eq!(documented.len(), 14, "{documented:?}");
    for name in documented {
        let typed = format!("# TYPE mysql_zk_proxy_read_only_{name} ");
        assert!(text.contains(&typed), "{name} not exposed");
    }
    for line in [
        "mysql_zk_proxy_read_only_replica_qualified{replica=\"db3\"} 1",
        "mysql_zk_proxy_read_only_replica_qualified{replica=\"db1\"} 0",
        "mysql_zk_proxy_read_only_replica_not_qualified{replica=\"db1\",reason=\"not_replicating\"} 1",
        "mysql_zk_proxy_read_only_replica_not_qualified{replica=\"db2\",reason=\"removed\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }
}
