//! The unplanned failover of a sandbox `Cluster`, as an HA system makes it
//! after a crash: SIGKILL the primary, promote the replica (its relay log
//! discarded), publish it with the next epoch; then rebuild the crashed
//! server from a blank datadir as a replica of the new primary, so the
//! next failover finds a caught-up replica. `lag` stops the replica's SQL
//! thread that long before the kill, so the writes acknowledged meanwhile
//! are lost (docs/ledger.md, The unplanned drill).

use std::time::{Duration, Instant};

use serde::Serialize;

use super::cluster::{change_master_sql, Cluster};
use super::{Result, SandboxError};

/// A rebuilt server's id: this plus the epoch that promoted its primary.
const REBUILT_SERVER_ID: u64 = 1000;

/// Bound on the rebuilt replica catching up.
const REBUILD_CATCH_UP_S: u32 = 60;

/// What one unplanned failover did.
#[derive(Debug, Clone, Serialize)]
pub struct CrashReport {
    pub old_port: u16,
    pub new_port: u16,
    pub new_epoch: u64,
    /// The replica's SQL thread was stopped this long before the kill.
    pub lag_ms: u64,
    /// Kill, promote and publish.
    pub failover_ms: u64,
    /// The crashed server rebuilt as a caught-up replica.
    pub rebuild_ms: u64,
}

impl std::fmt::Display for CrashReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unplanned failover 127.0.0.1:{} -> 127.0.0.1:{} epoch {}: lag {} ms, \
             kill+promote+publish {} ms, rebuild {} ms",
            self.old_port,
            self.new_port,
            self.new_epoch,
            self.lag_ms,
            self.failover_ms,
            self.rebuild_ms
        )
    }
}

impl Cluster {
    /// SIGKILL the primary and fail over to the replica (see the module
    /// doc); the roles swap in `self`.
    pub async fn crash_failover(&mut self, lag: Duration) -> Result<CrashReport> {
        let t0 = Instant::now();
        let old_port = self.primary().port();
        if !lag.is_zero() {
            let r = self.replica_or_err()?;
            r.sql_async("STOP SLAVE SQL_THREAD").await?;
            tokio::time::sleep(lag).await;
        }
        self.primary_mut().kill()?;
        let new_port = self.promote_replica_after_crash().await?;
        let new_epoch = self.published_epoch().await?.unwrap_or(0) + 1;
        self.publish_json(new_port, new_epoch).await?;
        let failover_ms = t0.elapsed().as_millis() as u64;
        let t1 = Instant::now();
        self.rebuild_replica(REBUILT_SERVER_ID + new_epoch).await?;
        Ok(CrashReport {
            old_port,
            new_port,
            new_epoch,
            lag_ms: lag.as_millis() as u64,
            failover_ms,
            rebuild_ms: t1.elapsed().as_millis() as u64,
        })
    }

    /// Start the replica from a blank datadir and replicate the primary's
    /// whole binlog history (GTID from the start) under `server_id` (a
    /// server skips the events of its own id, and the history holds those
    /// it wrote before the crash); returns once caught up.
    pub async fn rebuild_replica(&mut self, server_id: u64) -> Result<()> {
        let primary_port = self.primary().port();
        let r = self
            .replica
            .as_mut()
            .ok_or_else(|| SandboxError::State("the cluster has no replica".into()))?;
        r.start_blank()?;
        let repl = change_master_sql(primary_port);
        r.sql_async(&format!(
            "SET GLOBAL server_id = {server_id}; {repl}; SET GLOBAL gtid_slave_pos = ''; START SLAVE"
        ))
        .await?;
        let pos = self.primary().gtid_binlog_pos().await?;
        let r = self.replica_or_err()?;
        if !r.wait_gtid(&pos, REBUILD_CATCH_UP_S).await? {
            let status = format!("{:?}", r.slave_status().await);
            return Err(SandboxError::State(format!(
                "rebuilt replica did not reach {pos} in {REBUILD_CATCH_UP_S} s: {status}"
            )));
        }
        Ok(())
    }
}
