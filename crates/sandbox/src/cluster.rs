//! `Cluster`: ZooKeeper + MariaDB primary + GTID replica(s), users and
//! schemas as in devenv/up.sh, the primary and the replicas published in
//! ZooKeeper. Role changes (switchover, failover) live in `failover.rs`.

use super::mariadb::MariaDb;
use super::zk_tls::ZkTlsSpec;
use super::zookeeper::ZkServer;
use super::{zk_delete, zk_read, zk_write, Result, SandboxError};
use mysql_zk_proxy_core::discovery::replicas::replicas_path;
use std::path::PathBuf;

pub const DEFAULT_PRIMARY_PATH: &str = "/mysql/clusters/main/primary";
pub const APP_USER: &str = "app";
pub const APP_PASS: &str = "app";
pub(crate) const APP_DB: &str = "app";
pub const ADMIN_USER: &str = "admin";
pub const ADMIN_PASS: &str = "admin";
pub(crate) const REPL_USER: &str = "repl";
pub(crate) const REPL_PASS: &str = "repl";

/// What to start. `Cluster::builder().without_replica().start().await`.
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    /// GTID replicas of the primary (db2, db3, ...).
    replicas: usize,
    primary_path: String,
    publish: bool,
    server_args: Vec<String>,
    zk_tls: Option<ZkTlsSpec>,
}

impl Default for ClusterBuilder {
    fn default() -> Self {
        ClusterBuilder {
            replicas: 1,
            primary_path: DEFAULT_PRIMARY_PATH.to_owned(),
            publish: true,
            server_args: Vec::new(),
            zk_tls: None,
        }
    }
}

impl ClusterBuilder {
    /// Only a primary (faster, for tests that need one server).
    pub fn without_replica(mut self) -> Self {
        self.replicas = 0;
        self
    }
    /// `n` GTID replicas (default 1): db2, db3, ..., server ids 2, 3, ...
    pub fn replicas(mut self, n: usize) -> Self {
        self.replicas = n;
        self
    }
    /// The znode holding the primary (default [`DEFAULT_PRIMARY_PATH`]).
    pub fn primary_path(mut self, path: &str) -> Self {
        self.primary_path = path.to_owned();
        self
    }
    /// Whether `start` publishes `{"host","port","epoch":1}` and a replica
    /// record per replica (default true).
    pub fn publish(mut self, publish: bool) -> Self {
        self.publish = publish;
        self
    }

    /// More mariadbd options for both servers (e.g. `mariadb::tls_args`).
    pub fn server_args(mut self, args: Vec<String>) -> Self {
        self.server_args.extend(args);
        self
    }

    /// ZooKeeper also serves a TLS client port ([`ZkServer::secure_connect_string`]).
    pub fn zk_tls(mut self, spec: ZkTlsSpec) -> Self {
        self.zk_tls = Some(spec);
        self
    }

    /// Start everything in temp dirs (killed and removed on drop).
    pub async fn start(self) -> Result<Cluster> {
        let zk_tls = self.zk_tls.clone();
        let zk = blocking(move || match zk_tls {
            Some(spec) => ZkServer::start_tls(spec),
            None => ZkServer::start(),
        });
        let a1 = self.server_args.clone();
        let db1 = blocking(|| MariaDb::start_with("db1", 1, false, a1));
        // spawned at once, so every server starts in parallel
        let replicas: Vec<_> = (0..self.replicas)
            .map(|i| {
                let args = self.server_args.clone();
                let id = i as u32 + 2;
                tokio::task::spawn_blocking(move || {
                    MariaDb::start_with(&format!("db{id}"), id, true, args)
                })
            })
            .collect();
        let (zk, primary) = tokio::join!(zk, db1);
        let mut started = Vec::with_capacity(replicas.len());
        for r in replicas {
            started.push(
                r.await
                    .map_err(|e| SandboxError::Other(format!("sandbox start task failed: {e}")))?,
            );
        }
        let mut replicas = started.into_iter().collect::<Result<Vec<_>>>()?;
        let (zk, primary) = (zk?, primary?);
        let replica = (!replicas.is_empty()).then(|| replicas.remove(0));
        let cluster = Cluster {
            zk,
            primary,
            replica,
            more_replicas: replicas,
            primary_path: self.primary_path,
        };
        cluster.bootstrap(self.publish).await?;
        Ok(cluster)
    }
}

/// Run a blocking start on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SandboxError::Other(format!("sandbox start task failed: {e}")))?
}

/// A running sandbox cluster. Dropping it kills every process it started
/// and removes their temp dirs.
#[derive(Debug)]
pub struct Cluster {
    pub(crate) zk: ZkServer,
    pub(crate) primary: MariaDb,
    pub(crate) replica: Option<MariaDb>,
    /// Replicas after the first (db3, ...); they follow the primary too.
    pub(crate) more_replicas: Vec<MariaDb>,
    pub(crate) primary_path: String,
}

impl Cluster {
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    /// Primary + replica + ZooKeeper, primary published with epoch 1.
    pub async fn start() -> Result<Cluster> {
        ClusterBuilder::default().start().await
    }

    /// Assemble from already running parts (persistent sandbox).
    pub fn from_parts(
        zk: ZkServer,
        primary: MariaDb,
        replica: Option<MariaDb>,
        primary_path: String,
    ) -> Cluster {
        Cluster {
            zk,
            primary,
            replica,
            more_replicas: Vec::new(),
            primary_path,
        }
    }

    /// More replicas after the first (persistent sandbox with several).
    pub fn with_more_replicas(mut self, more: Vec<MariaDb>) -> Cluster {
        self.more_replicas = more;
        self
    }

    pub fn zk(&self) -> &ZkServer {
        &self.zk
    }
    pub fn primary(&self) -> &MariaDb {
        &self.primary
    }
    pub fn primary_mut(&mut self) -> &mut MariaDb {
        &mut self.primary
    }
    pub fn replica(&self) -> Option<&MariaDb> {
        self.replica.as_ref()
    }
    /// Every replica, the first one first.
    pub fn replicas(&self) -> Vec<&MariaDb> {
        self.replica.iter().chain(&self.more_replicas).collect()
    }
    /// Every replica, mutable (to kill or restart one).
    pub fn replicas_mut(&mut self) -> Vec<&mut MariaDb> {
        self.replica
            .iter_mut()
            .chain(self.more_replicas.iter_mut())
            .collect()
    }
    pub fn zk_connect(&self) -> String {
        self.zk.connect_string()
    }
    pub fn primary_path(&self) -> &str {
        &self.primary_path
    }

    /// Users, schemas and replication as in devenv/up.sh; the replica has
    /// caught up before this returns.
    pub(crate) async fn bootstrap(&self, publish: bool) -> Result<()> {
        self.primary.sql_async(&bootstrap_sql()).await?;
        for r in self.replicas() {
            // STOP first: a re-run after a half-done bootstrap finds it running.
            let repl = change_master_sql(self.primary.port());
            r.sql_async(&format!("STOP SLAVE; {repl}; START SLAVE"))
                .await?;
            let pos = self.primary.gtid_binlog_pos().await?;
            if !r.wait_gtid(&pos, 30).await? {
                let status = format!("{:?}", r.slave_status().await);
                return Err(SandboxError::State(format!(
                    "replica did not reach gtid {pos} in 30 s:\n{status}"
                )));
            }
        }
        if publish {
            self.publish_json(self.primary.port(), 1).await?;
            for r in self.replicas() {
                self.publish_replica(r.name(), r.port(), 1).await?;
            }
        }
        Ok(())
    }

    /// `<cluster>/replicas/<name>`, the replica record's znode.
    pub fn replica_path(&self, name: &str) -> String {
        format!("{}/{name}", replicas_path(&self.primary_path))
    }

    /// Publish the replica record `{"host":"127.0.0.1","port":P,"epoch":E}`.
    pub async fn publish_replica(&self, name: &str, port: u16, epoch: u64) -> Result<()> {
        let data = record_json("127.0.0.1", port, epoch);
        zk_write(
            &self.zk_connect(),
            &self.replica_path(name),
            data.as_bytes(),
        )
        .await
    }

    /// Publish a record for every replica that has none, at the published
    /// primary's epoch (a sandbox bootstrapped before replica records).
    pub async fn ensure_replica_records(&self) -> Result<()> {
        let epoch = self.published_epoch().await?.unwrap_or(1);
        for r in self.replicas() {
            if zk_read(&self.zk_connect(), &self.replica_path(r.name()))
                .await?
                .is_none()
            {
                self.publish_replica(r.name(), r.port(), epoch).await?;
            }
        }
        Ok(())
    }

    /// Delete a replica record.
    pub async fn unpublish_replica(&self, name: &str) -> Result<()> {
        zk_delete(&self.zk_connect(), &self.replica_path(name)).await
    }

    /// Publish `{"host":"127.0.0.1","port":P,"epoch":E}` at the primary path.
    pub async fn publish_json(&self, port: u16, epoch: u64) -> Result<()> {
        self.publish_raw(primary_json(port, epoch).as_bytes()).await
    }

    /// Publish arbitrary bytes (plain `host:port`, garbage, ...) for drills.
    pub async fn publish_raw(&self, data: &[u8]) -> Result<()> {
        zk_write(&self.zk_connect(), &self.primary_path, data).await
    }

    /// Delete the primary znode (no primary known: a failover in progress).
    pub async fn unpublish(&self) -> Result<()> {
        zk_delete(&self.zk_connect(), &self.primary_path).await
    }

    /// The published record and its znode data version, `None` if absent.
    pub async fn published(&self) -> Result<Option<(Vec<u8>, i32)>> {
        zk_read(&self.zk_connect(), &self.primary_path).await
    }

    /// The `epoch` of the published JSON record (`None` if absent or none).
    pub async fn published_epoch(&self) -> Result<Option<u64>> {
        Ok(self
            .published()
            .await?
            .and_then(|(d, _)| json_u64(&d, "epoch")))
    }

    /// Every instance dir (for diagnostics).
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut v = vec![self.zk.dir().to_owned(), self.primary.dir().to_owned()];
        v.extend(self.replicas().iter().map(|r| r.dir().to_owned()));
        v
    }

    /// PIDs of every running process of the cluster.
    pub fn pids(&self) -> Vec<u32> {
        let mut v: Vec<u32> = [self.zk.pid(), self.primary.pid()]
            .into_iter()
            .flatten()
            .collect();
        v.extend(self.replicas().into_iter().filter_map(MariaDb::pid));
        v
    }
}

/// The JSON record of the design's ZooKeeper contract.
pub fn primary_json(port: u16, epoch: u64) -> String {
    record_json("127.0.0.1", port, epoch)
}

/// `{"host":H,"port":P,"epoch":E}` in this key order (host JSON-escaped).
pub fn record_json(host: &str, port: u16, epoch: u64) -> String {
    let host = serde_json::Value::from(host);
    format!("{{\"host\":{host},\"port\":{port},\"epoch\":{epoch}}}")
}

/// An unsigned integer field of a JSON object, if any.
pub(crate) fn json_u64(data: &[u8], key: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(data).ok()?;
    v.get(key)?.as_u64()
}

pub(crate) fn change_master_sql(primary_port: u16) -> String {
    format!(
        "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={primary_port}, \
         MASTER_USER='{REPL_USER}', MASTER_PASSWORD='{REPL_PASS}', \
         MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1"
    )
}

fn bootstrap_sql() -> String {
    let user = |u: &str, p: &str| {
        format!("CREATE USER IF NOT EXISTS '{u}'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('{p}');\n")
    };
    [
        user(APP_USER, APP_PASS),
        user(REPL_USER, REPL_PASS),
        user(ADMIN_USER, ADMIN_PASS),
        format!("GRANT ALL PRIVILEGES ON *.* TO '{ADMIN_USER}'@'%' WITH GRANT OPTION;\n"),
        format!("GRANT REPLICATION SLAVE, SLAVE MONITOR ON *.* TO '{REPL_USER}'@'%';\n"),
        format!("CREATE DATABASE IF NOT EXISTS `{APP_DB}`;\nCREATE DATABASE IF NOT EXISTS sbtest;\n"),
        format!("GRANT ALL ON `{APP_DB}`.* TO '{APP_USER}'@'%';\nGRANT ALL ON sbtest.* TO '{APP_USER}'@'%';\n"),
        format!(
            "CREATE TABLE IF NOT EXISTS `{APP_DB}`.kv (k VARCHAR(64) PRIMARY KEY, v VARCHAR(255), \
             updated TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6));\n"
        ),
        format!("INSERT INTO `{APP_DB}`.kv (k, v) VALUES ('hello', 'world') ON DUPLICATE KEY UPDATE v = v;\n"),
    ]
    .concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_json_keeps_contract_order_and_escapes() {
        assert_eq!(
            primary_json(3306, 42),
            r#"{"host":"127.0.0.1","port":3306,"epoch":42}"#
        );
        let rec = record_json("a\"b", 1, 2);
        assert_eq!(json_u64(rec.as_bytes(), "epoch"), Some(2));
        assert_eq!(json_u64(b"127.0.0.1:3306", "epoch"), None);
    }
}
