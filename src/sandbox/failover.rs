//! Role changes of a sandbox `Cluster`: the planned switchover of
//! devenv/failover.sh (fence, catch up, promote, repoint, version-checked
//! publish with epoch + 1) and the promotion after a primary crash.

use super::cluster::{change_master_sql, json_u64, primary_json, Cluster};
use super::{zk_set_versioned, zk_write, Result, SandboxError};
use std::time::{Duration, Instant};

/// Catch-up timeout of a switchover, in seconds (`MASTER_GTID_WAIT`).
const CATCH_UP_TIMEOUT_S: u32 = 30;

/// Phase timings of a planned switchover.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SwitchoverReport {
    pub old_port: u16,
    pub new_port: u16,
    pub new_epoch: u64,
    /// read_only=1 on the old primary until the replica applied its GTID position.
    pub catch_up: Duration,
    /// Promote the replica and repoint the old primary at it.
    pub promote: Duration,
    /// Version-checked znode write.
    pub publish: Duration,
    /// From read_only=1 on the old primary to the new record in ZooKeeper.
    pub write_blocked: Duration,
    pub total: Duration,
}

impl std::fmt::Display for SwitchoverReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        write!(
            f,
            "switchover 127.0.0.1:{} -> 127.0.0.1:{} epoch {}: catch-up {:.0} ms, \
             promote+repoint {:.0} ms, znode set {:.0} ms, write-blocked {:.0} ms, total {:.0} ms",
            self.old_port,
            self.new_port,
            self.new_epoch,
            ms(self.catch_up),
            ms(self.promote),
            ms(self.publish),
            ms(self.write_blocked),
            ms(self.total)
        )
    }
}

impl Cluster {
    /// Planned switchover primary -> replica, like devenv/failover.sh; the
    /// roles swap in `self`. The znode gets epoch + 1 via a version-checked
    /// set (it fails on a concurrent change); an absent znode is created.
    pub async fn switchover(&mut self) -> Result<SwitchoverReport> {
        let t0 = Instant::now();
        let Some(new) = self.replica.as_ref() else {
            return Err(SandboxError::State("switchover needs a replica".into()));
        };
        let (old_port, new_port) = (self.primary.port(), new.port());
        let record = self.published().await?;
        let (epoch, version) = match &record {
            Some((data, ver)) => (json_u64(data, "epoch").unwrap_or(0), Some(*ver)),
            None => (0, None),
        };
        if let Some(p) = record.as_ref().and_then(|(d, _)| json_u64(d, "port")) {
            if p != u64::from(old_port) {
                return Err(SandboxError::State(format!(
                    "znode says port {p} but the primary is on {old_port}"
                )));
            }
        }
        let t1 = Instant::now();
        self.fence_and_catch_up().await?;
        let t2 = Instant::now();
        self.promote_and_repoint().await?;
        let t3 = Instant::now();
        let json = primary_json(new_port, epoch + 1);
        match version {
            Some(v) => zk_set_versioned(&self.zk_connect(), &self.primary_path, json.as_bytes(), v)
                .await
                .map(drop)?,
            None => zk_write(&self.zk_connect(), &self.primary_path, json.as_bytes()).await?,
        }
        let t4 = Instant::now();
        self.wait_demoted_io_thread().await;
        Ok(SwitchoverReport {
            old_port,
            new_port,
            new_epoch: epoch + 1,
            catch_up: t2 - t1,
            promote: t3 - t2,
            publish: t4 - t3,
            write_blocked: t4 - t1,
            total: t0.elapsed(),
        })
    }

    /// Old primary read_only=1, then wait until the replica applied its
    /// binlog position; on timeout make the old primary writable again.
    async fn fence_and_catch_up(&self) -> Result<()> {
        let (old, new) = (&self.primary, self.replica_or_err()?);
        old.sql_async("SET GLOBAL read_only = 1").await?;
        let pos = old.gtid_binlog_pos().await?;
        if new.wait_gtid(&pos, CATCH_UP_TIMEOUT_S).await? {
            return Ok(());
        }
        old.sql_async("SET GLOBAL read_only = 0").await?;
        Err(SandboxError::State(format!(
            "replica {} did not reach {pos} in {CATCH_UP_TIMEOUT_S} s; old primary made writable again",
            new.name()
        )))
    }

    /// Promote the replica, make the old primary its replica, swap roles.
    async fn promote_and_repoint(&mut self) -> Result<()> {
        let new = self.replica_or_err()?;
        new.sql_async("STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = 0")
            .await?;
        let repoint = format!(
            "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL gtid_slave_pos = @@global.gtid_binlog_pos; {}; START SLAVE",
            change_master_sql(new.port())
        );
        self.primary.sql_async(&repoint).await?;
        self.swap_roles();
        Ok(())
    }

    fn swap_roles(&mut self) {
        if let Some(r) = self.replica.as_mut() {
            std::mem::swap(&mut self.primary, r);
            r.set_read_only_at_start(true);
        }
        self.primary.set_read_only_at_start(false);
    }

    /// Not on the critical path: give the demoted server's IO thread a
    /// bounded moment to connect (like failover.sh, only logged).
    async fn wait_demoted_io_thread(&self) {
        let Some(r) = self.replica.as_ref() else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let io = r.slave_status_field("Slave_IO_Running").await;
            if io.ok().flatten().as_deref() == Some("Yes") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::warn!(
            server = r.name(),
            "demoted primary's replication IO thread not running"
        );
    }

    fn replica_or_err(&self) -> Result<&super::MariaDb> {
        self.replica
            .as_ref()
            .ok_or_else(|| SandboxError::State("the cluster has no replica".into()))
    }

    /// Unplanned failover after the primary crashed (e.g. `primary_mut().kill()`):
    /// the replica stops replicating and becomes writable; roles swap. Does
    /// not publish: call [`Cluster::publish_json`] with the next epoch.
    /// Returns the new primary's port.
    pub async fn promote_replica_after_crash(&mut self) -> Result<u16> {
        let new = self.replica_or_err()?;
        new.sql_async("STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = 0")
            .await?;
        self.swap_roles();
        Ok(self.primary.port())
    }
}
