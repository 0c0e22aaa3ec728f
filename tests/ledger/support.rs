//! Support of the ledger tests: writers that learn each commit's GTID from
//! its OK (as a client asking for session tracking does), the ground truth
//! of which acknowledged writes a server lacks, and bounded waits for the
//! proxy's loss report.

use std::collections::BTreeSet;
use std::time::Duration;

use mysql_async::prelude::*;
use mysql_async::Conn;
use mysql_zk_proxy_core::acknowledged::report::LossReport;
use mysql_zk_proxy_core::config::Config;
use mysql_zk_proxy_protocol::caps::CLIENT_SESSION_TRACK;
use mysql_zk_proxy_protocol::gtid::Gtid;
use mysql_zk_proxy_protocol::ok;

use crate::common::raw::{RawConn, CLIENT_CAPS};
use crate::common::{self, admin_opts, APP_PASS, APP_USER};

/// The proxy's `zookeeper.proxy_id` (its loss reports' znode name).
pub const PROXY_ID: &str = "ledger-test";

/// The table every write goes to.
pub const TABLE: &str = "app.ledger_writes";

/// A cluster with a replica and a proxy whose `[monitor]` user (the
/// sandbox's admin) reads new primaries' positions; `gate` sets
/// `failover.wait_for_acknowledged`.
pub async fn start(gate: Option<Duration>) -> common::Env {
    let env = common::start_with(true, |c: &mut Config| {
        common::with_monitor(c);
        c.failover.wait_for_acknowledged = gate;
        c.zookeeper.proxy_id = Some(PROXY_ID.into());
    })
    .await;
    let mut a = Conn::new(admin_opts(env.cluster.primary().port()))
        .await
        .unwrap();
    a.query_drop(format!("CREATE TABLE {TABLE} (k INT PRIMARY KEY, v INT)"))
        .await
        .unwrap();
    caught_up(&env).await;
    env
}

/// Wait (bounded) until the replica applied everything the primary has.
pub async fn caught_up(env: &common::Env) {
    let pos = env.cluster.primary().gtid_binlog_pos().await.unwrap();
    let replica = env.cluster.replica().unwrap();
    assert!(
        replica.wait_gtid(&pos, 30).await.unwrap(),
        "replica at {pos}"
    );
}

/// A client through the proxy that asked for session tracking, so each
/// commit OK names its GTID.
pub struct Writer {
    conn: RawConn,
    /// Every write acknowledged to it: (key, GTID).
    pub acked: Vec<(i64, Gtid)>,
}

impl Writer {
    pub async fn open(proxy: &str) -> Writer {
        let login = (APP_USER, APP_PASS, "app");
        let conn = RawConn::login_with_caps(proxy, login, CLIENT_CAPS | CLIENT_SESSION_TRACK)
            .await
            .expect("login through the proxy");
        Writer {
            conn,
            acked: Vec::new(),
        }
    }

    /// An autocommit INSERT of key `k`; its GTID once acknowledged.
    pub async fn write(&mut self, k: i64) -> anyhow::Result<Gtid> {
        let sql = format!("\x03INSERT INTO {TABLE} (k, v) VALUES ({k}, 1)");
        let reply = self.conn.command(sql.as_bytes()).await?;
        let okp = reply.first().filter(|p| p.starts_with(&[0]));
        let okp = okp.ok_or_else(|| anyhow::anyhow!("not an OK: {reply:?}"))?;
        let gtid = ok::last_gtid(okp).and_then(Gtid::from_bytes);
        let gtid = gtid.ok_or_else(|| anyhow::anyhow!("no last_gtid in {okp:?}"))?;
        self.acked.push((k, gtid));
        Ok(gtid)
    }
}

/// The acknowledged writes whose row the server on `port` lacks: the
/// ground truth the proxy's report must equal.
pub async fn lacking(port: u16, acked: &[(i64, Gtid)]) -> BTreeSet<String> {
    let mut c = Conn::new(admin_opts(port)).await.unwrap();
    let have: Vec<i64> = c.query(format!("SELECT k FROM {TABLE}")).await.unwrap();
    let have: BTreeSet<i64> = have.into_iter().collect();
    acked
        .iter()
        .filter(|(k, _)| !have.contains(k))
        .map(|(_, g)| g.to_string())
        .collect()
}

/// The proxy's loss report for `epoch`, waited for (bounded).
pub async fn report_for(env: &common::Env, epoch: u64) -> LossReport {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let reports = env.proxy.ledger().reports();
        if let Some(r) = reports.into_iter().find(|r| r.epoch == epoch) {
            return r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no loss report for epoch {epoch} within 30 s: {:?}",
            env.proxy.ledger().reports()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The GTIDs a report names as missing.
pub fn named(r: &LossReport) -> BTreeSet<String> {
    r.missing_transactions
        .iter()
        .map(|m| m.gtid.clone())
        .collect()
}

/// The epoch of the record published now.
pub async fn epoch(env: &common::Env) -> u64 {
    let e = env.cluster.published_epoch().await.unwrap();
    e.expect("a JSON record with an epoch")
}
