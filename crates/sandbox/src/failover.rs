//! Role changes of a sandbox `Cluster`: the planned switchover (the real
//! `mysql-zk-proxy switchover`, [`mysql_zk_proxy_ops::switchover`], with the
//! sandbox's addresses and credentials) and the promotion after a primary crash.

use super::cluster::{Cluster, ADMIN_PASS, ADMIN_USER, REPL_PASS, REPL_USER};
use super::{Result, SandboxError};
use mysql_zk_proxy_core::config::Secret;
use mysql_zk_proxy_ops::report::{Outcome, Report};
use mysql_zk_proxy_ops::server::Login;
use mysql_zk_proxy_ops::switchover::{self, Plan};
use mysql_zk_proxy_ops::{zk, Endpoint};
use std::time::{Duration, Instant};

/// Catch-up bound of a sandbox switchover (`MASTER_GTID_WAIT`).
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on the registered proxies' drain acknowledgements.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Phase timings of a planned switchover.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SwitchoverReport {
    pub old_port: u16,
    pub new_port: u16,
    /// Epoch of the serving record for the new primary (draining was one less).
    pub new_epoch: u64,
    /// Publish `draining`, wait for the registered proxies' acknowledgements.
    pub drain: Duration,
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

impl SwitchoverReport {
    fn from_ops(r: &Report, old_port: u16, new_port: u16) -> SwitchoverReport {
        let p = &r.phases;
        let d = |d: Option<Duration>| d.unwrap_or_default();
        SwitchoverReport {
            old_port,
            new_port,
            new_epoch: r.epochs.serving.unwrap_or_default(),
            drain: d(p.drain),
            catch_up: d(p.read_only) + d(p.catch_up),
            promote: d(p.promote) + d(p.repoint),
            publish: d(p.publish),
            write_blocked: d(r.write_blocked),
            total: r.total,
        }
    }
}

impl std::fmt::Display for SwitchoverReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        write!(
            f,
            "switchover 127.0.0.1:{} -> 127.0.0.1:{} epoch {}: drain {:.0} ms, catch-up {:.0} ms, \
             promote+repoint {:.0} ms, znode set {:.0} ms, write-blocked {:.0} ms, total {:.0} ms",
            self.old_port,
            self.new_port,
            self.new_epoch,
            ms(self.drain),
            ms(self.catch_up),
            ms(self.promote),
            ms(self.publish),
            ms(self.write_blocked),
            ms(self.total)
        )
    }
}

impl Cluster {
    /// The [`Plan`] of a switchover to the replica (admin login, repl user).
    pub fn switchover_plan(&self) -> Result<Plan> {
        let new = self.replica_or_err()?;
        let login = |user: &str, pass: &str| Login {
            user: user.to_owned(),
            password: Secret::new(pass),
        };
        Ok(Plan {
            primary_path: self.primary_path.clone(),
            target: Endpoint::new("127.0.0.1", new.port()),
            login: login(ADMIN_USER, ADMIN_PASS),
            repl: login(REPL_USER, REPL_PASS),
            drain_timeout: DRAIN_TIMEOUT,
            catch_up_timeout: CATCH_UP_TIMEOUT,
            sql_timeout: Duration::from_secs(10),
            force: false,
            old_primary_name: Some(self.primary.name().to_owned()),
        })
    }

    /// Planned switchover primary -> replica with `mysql-zk-proxy
    /// switchover` (draining, read-only, catch-up, promote, repoint, serving
    /// record with compare-and-set); the roles swap in `self`.
    pub async fn switchover(&mut self) -> Result<SwitchoverReport> {
        let plan = self.switchover_plan()?;
        let (old_port, new_port) = (self.primary.port(), plan.target.port);
        let report = self.switchover_with(&plan).await?;
        if report.outcome != Outcome::Switched {
            return Err(SandboxError::State(format!(
                "switchover {:?}: {}",
                report.outcome,
                report.error.as_deref().unwrap_or("no reason given")
            )));
        }
        Ok(SwitchoverReport::from_ops(&report, old_port, new_port))
    }

    /// Run `plan` (e.g. [`Cluster::switchover_plan`] with other bounds)
    /// against this cluster's ZooKeeper; the roles in `self` swap only when
    /// the report says switched.
    pub async fn switchover_with(&mut self, plan: &Plan) -> Result<Report> {
        let client = zk::connect(&self.zk_connect(), Duration::from_secs(10), None, None)
            .await
            .map_err(|e| SandboxError::Other(e.to_string()))?;
        let report = switchover::run(&client, plan).await;
        if report.outcome == Outcome::Switched {
            self.swap_roles();
            self.wait_demoted_io_thread().await;
        }
        Ok(report)
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

    pub(crate) fn replica_or_err(&self) -> Result<&super::MariaDb> {
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
