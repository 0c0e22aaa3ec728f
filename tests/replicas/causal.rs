//! Read-your-writes through the read-only listener: write through the
//! primary listener, read at once through the read-only listener, many
//! times, while both replicas' SQL threads are stopped and started in a
//! loop. `fleet` and `proxy` (the ledger learns each commit's GTID from the
//! primary's OK packets) see every write; `none` shows stale reads (so the
//! check can fail).

use crate::common::query;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use mysql_zk_proxy_core::config::Consistency;

use super::support::*;

const ROUNDS: usize = 1000;

/// Stop and start the SQL thread of every replica until `stop`.
fn slow_apply(env: &RoEnv, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    let ports: Vec<u16> = env.cluster.replicas().iter().map(|r| r.port()).collect();
    tokio::spawn(async move {
        let mut admins = Vec::new();
        for p in ports {
            let opts = mysql_async::Opts::from(crate::common::admin_opts(p));
            admins.push(Conn::new(opts).await.unwrap());
        }
        let mut cycles = 0;
        while !stop.load(Relaxed) {
            for a in admins.iter_mut() {
                a.query_drop("STOP SLAVE SQL_THREAD").await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(15)).await;
            for a in admins.iter_mut() {
                a.query_drop("START SLAVE SQL_THREAD").await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            cycles += 1;
        }
        cycles
    })
}

/// Write round `i` through the primary listener, read it through the
/// read-only listener; the number of reads that did not see their write.
async fn rounds(env: &RoEnv, stop_at_first: bool) -> (usize, usize) {
    let mut w = Conn::new(env.rw_opts()).await.unwrap();
    let mut r = Conn::new(env.ro_opts()).await.unwrap();
    let (mut stale, mut done) = (0, 0);
    for i in 1..=ROUNDS {
        w.query_drop(format!("UPDATE app.ryw SET n = {i} WHERE id = 1"))
            .await
            .unwrap();
        // no row yet (the table not replicated) is a stale read too
        let n: Option<i64> = query::first(&mut r, "SELECT n FROM app.ryw WHERE id = 1").await;
        done += 1;
        if n != Some(i as i64) {
            stale += 1;
            if stop_at_first {
                break;
            }
        }
    }
    let _ = (w.disconnect().await, r.disconnect().await);
    (stale, done)
}

async fn run(mode: Consistency) -> (usize, usize, u64) {
    // one check at start qualifies both; no later check moves the reader
    let env = start(mode, |c| {
        c.read_only.check_interval = Duration::from_secs(600);
        c.read_only.causal_timeout = Duration::from_secs(5);
    })
    .await;
    env.qualified(&["db2", "db3"], Duration::from_secs(5)).await;
    let p = env.cluster.primary();
    p.sql_async(
        "CREATE TABLE app.ryw (id INT PRIMARY KEY, n INT); INSERT INTO app.ryw VALUES (1, 0)",
    )
    .await
    .unwrap();
    let pos = p.gtid_binlog_pos().await.unwrap();
    for replica in env.cluster.replicas() {
        assert!(
            replica.wait_gtid(&pos, 10).await.unwrap(),
            "table replicated"
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let slow = slow_apply(&env, stop.clone());
    let (stale, done) = rounds(&env, false).await;
    let acked = env.proxy.ledger().position();
    stop.store(true, Relaxed);
    let cycles = slow.await.unwrap();
    let waits: u64 = env.replicas().values().map(|r| r.causal_waits).sum();
    eprintln!("{mode:?}: {stale} stale of {done} reads; {cycles} SQL-thread stop/start cycles; {waits} causal waits; acknowledged {acked}");
    assert!(!acked.is_empty(), "the ledger learned no commit");
    (stale, done, waits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_reads_see_every_own_write() {
    let (stale, done, waits) = run(Consistency::Fleet).await;
    assert_eq!((stale, done), (0, ROUNDS));
    assert!(waits >= ROUNDS as u64, "causal waits {waits}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_reads_see_every_acknowledged_write() {
    let (stale, done, waits) = run(Consistency::Proxy).await;
    assert_eq!((stale, done), (0, ROUNDS));
    assert!(waits >= ROUNDS as u64, "causal waits {waits}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_consistency_reads_go_stale() {
    let (stale, _, waits) = run(Consistency::None).await;
    assert!(
        stale > 0,
        "no stale read in {ROUNDS} rounds: the test could not fail"
    );
    assert_eq!(waits, 0);
}
