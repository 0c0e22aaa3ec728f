//! Helpers of the switchover tests: proxies with migratable app sessions
//! and a registration id, the record and registrations as ZooKeeper holds
//! them, direct admin connections, condition waits.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::{Conn, OptsBuilder};
use mysql_zk_proxy_core::config::Config;
use mysql_zk_proxy_core::config::UserConfig;
use mysql_zk_proxy_core::discovery::record::{parse_record, Record};
use mysql_zk_proxy_core::discovery::register::registration_path;
use mysql_zk_proxy_core::native_password::StoredHash;
use mysql_zk_proxy_sandbox::{zk_read, Cluster};

/// An operator account with a password that must never be printed.
pub const OP_USER: &str = "operator";
pub const OP_PASS: &str = "op-S3cret-9f2c";

/// The app user in the credential store (its idle sessions migrate), the
/// registration `id`, and a proxy drain of `drain`.
pub fn proxy_config(c: &mut Config, id: &str, drain: Duration) {
    let hex: String = StoredHash::of_password(b"app")
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let user: UserConfig = toml::from_str(&format!(
        "name = \"app\"\nmysql_native_password = \"*{hex}\"\n"
    ))
    .unwrap();
    c.users = vec![user];
    c.zookeeper.proxy_id = Some(id.into());
    c.failover.drain_timeout = drain;
}

/// Root-equivalent connection straight to a server.
pub async fn admin(port: u16) -> Conn {
    let opts = OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some("admin"))
        .pass(Some("admin"))
        .prefer_socket(false);
    Conn::new(opts).await.unwrap()
}

/// `@@read_only` of the server on `port`.
pub async fn read_only(port: u16) -> bool {
    let mut c = admin(port).await;
    let v: u8 = c
        .query_first("SELECT @@global.read_only")
        .await
        .unwrap()
        .unwrap();
    v == 1
}

/// The operator account, created on the primary; returns once the replica
/// (if any) has it too, so a test may stop replication right after.
pub async fn create_operator(cluster: &Cluster) {
    let mut c = admin(cluster.primary().port()).await;
    c.query_drop(format!(
        "CREATE USER '{OP_USER}'@'%' IDENTIFIED BY '{OP_PASS}'; \
         GRANT ALL ON *.* TO '{OP_USER}'@'%'"
    ))
    .await
    .unwrap();
    if let Some(replica) = cluster.replica() {
        let port = replica.port();
        wait_for("the operator account on the replica", || async move {
            let mut r = admin(port).await;
            let n: Option<i64> = r
                .query_first(format!(
                    "SELECT COUNT(*) FROM mysql.global_priv WHERE User = '{OP_USER}'"
                ))
                .await
                .unwrap();
            n == Some(1)
        })
        .await;
    }
}

/// The published record.
pub async fn record(cluster: &Cluster) -> Record {
    let (data, _) = cluster.published().await.unwrap().expect("a record");
    parse_record(&data).unwrap()
}

/// `drained_epoch` of registration `id`: `None` while not registered.
pub async fn drained_epoch(cluster: &Cluster, id: &str) -> Option<Option<u64>> {
    let path = registration_path(cluster.primary_path(), id);
    let (data, _) = zk_read(&cluster.zk_connect(), &path).await.unwrap()?;
    let v: serde_json::Value = serde_json::from_slice(&data).unwrap();
    Some(v["drained_epoch"].as_u64())
}

/// Wait (bounded) until `cond` holds.
pub async fn wait_for<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Wait until every id in `ids` is registered.
pub async fn wait_registered(cluster: &Cluster, ids: &[&str]) {
    for id in ids {
        wait_for(&format!("proxy {id} registered"), || async {
            drained_epoch(cluster, id).await.is_some()
        })
        .await;
    }
}

/// `SELECT COUNT(*)` of `table` on the server on `port` (0 while absent).
pub async fn count(port: u16, table: &str) -> i64 {
    let mut c = admin(port).await;
    let n = c.query_first(format!("SELECT COUNT(*) FROM {table}")).await;
    n.ok().flatten().unwrap_or(0)
}

/// The ports of the cluster's primary and of its replica.
pub fn primary_and_replica(cluster: &Cluster) -> (u16, u16) {
    (
        cluster.primary().port(),
        cluster.replica().expect("a replica").port(),
    )
}
