//! The reporter task: for each move of the route to another server, wait
//! (when the gate is on) for the new primary to apply the old term's
//! acknowledged commits, read its GTID positions over a control-plane login
//! (the `[monitor]` user), compare, and publish the loss report: `/status`
//! (the ledger keeps the last ones), metrics, a log line (WARN when commits
//! are missing) and a znode `<cluster>/failovers/<epoch>/<proxy id>`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use zookeeper_client::{Acls, CreateMode, Error as ZkError};

use super::report::{GateOutcome, LossReport, Moved, Positions};
use super::{GtidPos, Ledger};
use crate::config::{MonitorConfig, ZookeeperConfig};
use crate::control::{within, ControlError, Login};
use crate::metrics::Stats;
use crate::routing::Primary;
use crate::tls::ZkTls;

/// Why a new primary's position was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("no [monitor] user to read the new primary's GTID position with")]
    NoUser,
    #[error("[monitor] password: {0}")]
    Password(#[source] crate::config::ConfigError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("{addr} answered an unreadable GTID position: {source}")]
    Position {
        addr: String,
        #[source]
        source: mysql_zk_proxy_protocol::gtid::GtidError,
    },
}

/// What the reporter needs.
pub struct Reporter {
    pub ledger: Arc<Ledger>,
    pub stats: Arc<Stats>,
    pub monitor: MonitorConfig,
    pub zookeeper: ZookeeperConfig,
    pub zk_tls: Option<Arc<ZkTls>>,
    /// The proxy's id (`zookeeper.proxy_id`).
    pub proxy_id: String,
}

/// Run the reporter until `cancel`.
pub fn spawn(
    r: Reporter,
    mut moves: UnboundedReceiver<Moved>,
    cancel: CancellationToken,
    tracker: &TaskTracker,
) {
    tracker.spawn(async move {
        loop {
            let m = tokio::select! {
                m = moves.recv() => m,
                _ = cancel.cancelled() => None,
            };
            let Some(m) = m else { return };
            let report = r.report(&m).await;
            r.publish(report).await;
        }
    });
}

impl Reporter {
    /// Gate, read, compare; the gate is open again when this returns.
    async fn report(&self, m: &Moved) -> LossReport {
        let mut report = LossReport::new(m);
        let t0 = Instant::now();
        let gate = self.ledger.gate.wait();
        report.gate = match gate {
            None => GateOutcome::Off,
            Some(_) if m.old.position.is_empty() => GateOutcome::NotNeeded,
            Some(wait) => match self.wait_applied(&m.primary, &m.old.position, wait).await {
                Ok(true) => GateOutcome::Applied,
                Ok(false) => GateOutcome::TimedOut,
                Err(e) => {
                    report.error = Some(e.to_string());
                    GateOutcome::Failed
                }
            },
        };
        self.ledger.gate.open(m.epoch);
        if gate.is_some() && !m.old.position.is_empty() {
            report.gate_waited_ms = t0.elapsed().as_millis() as u64;
        }
        match self.positions(&m.primary).await {
            Ok(now) => report.compare(&m.old, &now),
            Err(e) => report.error = Some(e.to_string()),
        }
        report
    }

    /// `MASTER_GTID_WAIT(pos, wait)` on `p`: true when it applied `pos`.
    async fn wait_applied(
        &self,
        p: &Primary,
        pos: &GtidPos,
        wait: Duration,
    ) -> Result<bool, ReadError> {
        let sql = format!(
            "SELECT MASTER_GTID_WAIT('{pos}', {:.3})",
            wait.as_secs_f64()
        );
        let bound = wait + self.monitor.check_timeout;
        let got: Option<i64> = self.query(p, &sql, bound).await?;
        Ok(got == Some(0))
    }

    async fn positions(&self, p: &Primary) -> Result<Positions, ReadError> {
        let sql = "SELECT @@gtid_binlog_pos, @@gtid_slave_pos";
        let row: Option<(String, String)> = self.query(p, sql, self.monitor.check_timeout).await?;
        let (binlog, slave) = row.unwrap_or_default();
        let parse = |s: &str| {
            s.parse().map_err(|source| ReadError::Position {
                addr: p.address(),
                source,
            })
        };
        Ok(Positions {
            binlog: parse(&binlog)?,
            slave: parse(&slave)?,
        })
    }

    /// One row of `sql` on `p` over a fresh control-plane login, within `bound`.
    async fn query<T>(
        &self,
        p: &Primary,
        sql: &str,
        bound: Duration,
    ) -> Result<Option<T>, ReadError>
    where
        T: mysql_async::prelude::FromRow + Send + 'static,
    {
        if self.monitor.user.is_empty() {
            return Err(ReadError::NoUser);
        }
        let login = Login::monitor(&self.monitor).map_err(ReadError::Password)?;
        let run = login.once(&p.host, p.port, async |c: &mut Conn| {
            c.query_first(sql).await
        });
        Ok(within(&p.address(), bound, run).await?)
    }

    async fn publish(&self, report: LossReport) {
        let missing = report.missing.unwrap_or(0);
        self.stats
            .acknowledged_missing_last
            .store(missing, std::sync::atomic::Ordering::Relaxed);
        self.stats
            .acknowledged_missing
            .fetch_add(missing, std::sync::atomic::Ordering::Relaxed);
        log(&report);
        if let Err(e) = self.write_znode(&report).await {
            tracing::warn!(error = %e, epoch = report.epoch, "loss report not written to ZooKeeper");
        }
        self.ledger.push_report(report);
    }

    /// `<cluster>/failovers/<epoch>/<proxy id>`, parents created as needed.
    async fn write_znode(&self, report: &LossReport) -> Result<(), String> {
        let path = failover_path(&self.zookeeper.primary_path, report.epoch, &self.proxy_id);
        let cfg = &self.zookeeper;
        let client = crate::discovery::connect::open_discovery(cfg, self.zk_tls.as_ref())
            .await
            .map_err(|e| e.to_string())?;
        let data = serde_json::to_vec(report).map_err(|e| e.to_string())?;
        let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
        let write = async {
            let mut parent = String::new();
            let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            for part in &parts[..parts.len() - 1] {
                parent.push('/');
                parent.push_str(part);
                match client.create(&parent, b"", &persistent).await {
                    Ok(_) | Err(ZkError::NodeExists) => {}
                    Err(e) => return Err(e),
                }
            }
            match client.create(&path, &data, &persistent).await {
                Ok(_) => Ok(()),
                Err(ZkError::NodeExists) => client.set_data(&path, &data, None).await.map(|_| ()),
                Err(e) => Err(e),
            }
        };
        let written = tokio::time::timeout(cfg.connect_timeout, write).await;
        written
            .map_err(|_| format!("no answer within {:?}", cfg.connect_timeout))?
            .map_err(|e| format!("{path}: {e}"))
    }
}

/// Where a proxy's loss report for `epoch` goes: beside the primary record.
pub fn failover_path(primary_path: &str, epoch: u64, proxy_id: &str) -> String {
    let cluster = primary_path.rsplit_once('/').map_or("", |(p, _)| p);
    format!("{cluster}/failovers/{epoch}/{proxy_id}")
}

fn log(r: &LossReport) {
    let gtids: Vec<&str> = r
        .missing_transactions
        .iter()
        .map(|m| m.gtid.as_str())
        .collect();
    match (r.missing, &r.error) {
        (Some(n), _) if n > 0 => tracing::warn!(
            epoch = r.epoch, from = %r.from, to = %r.to, acknowledged = r.acknowledged,
            missing = n, gtids = %gtids.join(","), incomplete = r.incomplete,
            gate = ?r.gate, "the new primary lacks acknowledged commits"),
        (_, Some(e)) => tracing::warn!(epoch = r.epoch, from = %r.from, to = %r.to,
            acknowledged = r.acknowledged, error = %e, gate = ?r.gate,
            "loss report: the new primary's position could not be read"),
        _ => tracing::info!(epoch = r.epoch, from = %r.from, to = %r.to,
            acknowledged = r.acknowledged, gate = ?r.gate, gate_waited_ms = r.gate_waited_ms,
            "the new primary has every acknowledged commit"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reports_sit_beside_the_primary_record() {
        assert_eq!(
            super::failover_path("/mysql/clusters/main/primary", 7, "px-1"),
            "/mysql/clusters/main/failovers/7/px-1"
        );
        assert_eq!(super::failover_path("/primary", 1, "a"), "/failovers/1/a");
    }
}
