//! The ledger of acknowledged commits against real ZooKeeper and MariaDB
//! (docs/ledger.md): clients see the bytes a direct connection gets while
//! the proxy reads each commit's GTID; after an unplanned failover the loss
//! report equals the ground truth (the acknowledged writes the new primary
//! lacks), a planned switchover reports none, and the gate keeps writes
//! from a new primary until it applied what was acknowledged.

mod common;
#[path = "ledger/drill.rs"]
mod drill;
#[path = "ledger/support.rs"]
mod support;
#[path = "ledger/wire.rs"]
mod wire;

use std::time::{Duration, Instant};

use mysql_zk_proxy_core::acknowledged::report::GateOutcome;
use support::*;

/// Writes acknowledged, then the primary is killed with the replica's SQL
/// thread stopped before the last of them: the promoted replica (relay log
/// discarded) lacks exactly those, and the report names them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unplanned_failover_reports_exactly_the_lost_commits() {
    let mut env = start(None).await;
    let proxy = env.proxy_addr();
    let (mut a, mut b) = (Writer::open(&proxy).await, Writer::open(&proxy).await);
    for k in 0..20 {
        let w = if k % 2 == 0 { &mut a } else { &mut b };
        w.write(k).await.unwrap();
    }
    caught_up(&env).await;
    let replica = env.cluster.replica().unwrap();
    replica.sql_async("STOP SLAVE SQL_THREAD").await.unwrap();
    for k in 20..35 {
        let w = if k % 2 == 0 { &mut a } else { &mut b };
        w.write(k).await.unwrap();
    }
    let acked: Vec<_> = a.acked.iter().chain(&b.acked).copied().collect();

    env.cluster.primary_mut().kill().unwrap();
    let new_port = env.cluster.promote_replica_after_crash().await.unwrap();
    let next = epoch(&env).await + 1;
    env.cluster.publish_json(new_port, next).await.unwrap();
    let report = report_for(&env, next).await;

    let truth = lacking(new_port, &acked).await;
    assert_eq!(
        truth.len(),
        15,
        "the writes after the SQL thread stopped are lost"
    );
    assert_eq!(report.missing, Some(truth.len() as u64), "{report:?}");
    assert_eq!(named(&report), truth);
    assert_eq!(report.acknowledged, 35);
    assert!(!report.incomplete);
    assert_eq!(report.gate, GateOutcome::Off);
    for m in &report.missing_transactions {
        assert_eq!(m.user, "app");
    }
    let stats = env.proxy.stats();
    let missing_metric = stats
        .acknowledged_missing_last
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(missing_metric, 15);

    // the fleet-wide answer in ZooKeeper
    let path = format!("/mysql/clusters/main/failovers/{next}/{PROXY_ID}");
    let (data, _) = mysql_zk_proxy_sandbox::zk_read(&env.cluster.zk_connect(), &path)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{path} written"));
    let doc: serde_json::Value = serde_json::from_slice(&data).unwrap();
    assert_eq!(doc["missing"], 15);
    assert_eq!(doc["missing_transactions"].as_array().unwrap().len(), 15);
}

/// A planned switchover waits for the replica to catch up: nothing lacks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planned_switchover_reports_nothing_missing() {
    let mut env = start(None).await;
    let mut w = Writer::open(&env.proxy_addr()).await;
    for k in 0..25 {
        w.write(k).await.unwrap();
    }
    let r = env.cluster.switchover().await.unwrap();
    env.wait_for_primary_port(r.new_port).await;
    let report = report_for(&env, r.new_epoch).await;
    assert_eq!(report.missing, Some(0), "{report:?}");
    assert_eq!(report.acknowledged, 25);
    assert!(lacking(r.new_port, &w.acked).await.is_empty());
    assert!(report.error.is_none(), "{report:?}");
}

/// Acknowledged commits still in the replica's relay log when it is
/// published: with the gate on, a write through the proxy reaches it only
/// after it applied them; with the gate off the report names them.
async fn relay_log_at_publish(gate: Option<Duration>) {
    let mut env = start(gate).await;
    let proxy = env.proxy_addr();
    let mut w = Writer::open(&proxy).await;
    for k in 0..10 {
        w.write(k).await.unwrap();
    }
    caught_up(&env).await;
    let replica = env.cluster.replica().unwrap();
    replica.sql_async("STOP SLAVE SQL_THREAD").await.unwrap();
    for k in 10..22 {
        w.write(k).await.unwrap();
    }
    // the IO thread has them all in the relay log
    let pos = env.cluster.primary().gtid_binlog_pos().await.unwrap();
    wait_received(replica, &pos).await;
    let new_port = replica.port();
    env.cluster.primary_mut().kill().unwrap();
    let replica = env.cluster.replica().unwrap();
    // the IO thread is left retrying: with both threads stopped, MariaDB
    // (GTID mode) discards the relay log when the SQL thread starts again
    replica.sql_async("SET GLOBAL read_only = 0").await.unwrap();
    let next = epoch(&env).await + 1;
    env.cluster.publish_json(new_port, next).await.unwrap();
    env.wait_for_primary_port(new_port).await;

    // a new client writes at once; the replica applies its relay log later
    let writer = tokio::spawn(async move {
        let mut n = Writer::open(&proxy).await;
        let g = n.write(1000).await.unwrap();
        (g, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let applying = Instant::now();
    replica.sql_async("START SLAVE SQL_THREAD").await.unwrap();
    let (new_gtid, written) = writer.await.unwrap();
    let report = report_for(&env, next).await;
    let late: std::collections::BTreeSet<String> =
        w.acked[10..].iter().map(|(_, g)| g.to_string()).collect();
    let last_acked = w.acked.last().unwrap().1;
    if gate.is_some() {
        assert!(written >= applying, "the write waited for the relay log");
        assert_eq!(report.gate, GateOutcome::Applied, "{report:?}");
        assert_eq!(report.missing, Some(0), "{report:?}");
        assert!(
            new_gtid.seq > last_acked.seq,
            "{new_gtid} after {last_acked}"
        );
    } else {
        assert_eq!(report.gate, GateOutcome::Off);
        assert_eq!(named(&report), late, "{report:?}");
        assert_eq!(report.missing, Some(12));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_holds_writes_until_the_relay_log_is_applied() {
    relay_log_at_publish(Some(Duration::from_secs(10))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_gate_the_report_names_the_unapplied_commits() {
    relay_log_at_publish(None).await;
}

/// Wait (bounded) until the replica's IO thread received `pos`.
async fn wait_received(replica: &mysql_zk_proxy_sandbox::MariaDb, pos: &str) {
    let want: mysql_zk_proxy_protocol::gtid::GtidPos = pos.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = replica.slave_status().await.unwrap();
        let io = st
            .iter()
            .find(|(k, _)| k == "Gtid_IO_Pos")
            .map(|(_, v)| v.clone());
        let got: mysql_zk_proxy_protocol::gtid::GtidPos =
            io.unwrap_or_default().parse().unwrap_or_default();
        if got.covers(&want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "IO thread at {got}, primary at {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
