//! `mysql-zk-proxy switchover`: the planned switchover of a MariaDB GTID
//! primary/replica pair (docs/architecture.md, ZooKeeper contract). Phases:
//! check, publish `draining` (epoch + 1) and wait for every registered proxy's
//! acknowledgement, make the old primary read-only (`read_only = 1`), wait until the
//! target applied its GTID position, promote the target, publish it
//! `serving` (epoch + 2) with its `server_id`, then repoint the old primary
//! at it (after the publish: the old primary stays read-only either way, and
//! the repoint, ~0.1 s, is then not part of the time writes are blocked). Every record write is a compare-and-set on the version this
//! run last wrote. A failed drain (without `force`), read-only step, catch-up or
//! promotion rolls back: old primary writable, record serving on it (epoch + 2).

use std::time::{Duration, Instant};

use zookeeper_client::Client;

use super::checks::{self, Refusal};
use super::drain::wait_for_acks;
use super::report::{Epochs, Outcome, Phases, Report};
use super::server::{Login, Server, ServerError};
use super::zk::{compare_and_set, read, ZkOpError};

mod rollback;
use super::{record_json, Endpoint};
use mysql_zk_proxy_core::discovery::record::Record;
use mysql_zk_proxy_core::routing::RecordState;

/// What to do and the bounds of each wait.
#[derive(Debug, Clone)]
pub struct Plan {
    pub primary_path: String,
    pub target: Endpoint,
    /// Control login on both servers (needs SUPER / READ_ONLY ADMIN, REPLICATION).
    pub login: Login,
    /// What the old primary replicates from the target with.
    pub repl: Login,
    pub drain_timeout: Duration,
    pub catch_up_timeout: Duration,
    /// Bound on connecting and on every other statement.
    pub sql_timeout: Duration,
    /// Proceed when not every proxy acknowledged in time.
    pub force: bool,
    /// Name of the old primary's replica record when it has none yet
    /// (default `<host>-<port>`).
    pub old_primary_name: Option<String>,
}

/// Why a switchover stopped after the checks.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SwitchoverError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("{missing} of {registered} registered proxies did not acknowledge the drain within {after:?}: {ids}")]
    DrainIncomplete {
        missing: usize,
        registered: usize,
        ids: String,
        after: Duration,
    },
    #[error("the target did not apply the old primary's GTID position {pos} within {after:?}")]
    CatchUpTimeout { pos: String, after: Duration },
    #[error("the primary record changed under the switchover: {0}")]
    RecordChanged(#[source] ZkOpError),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    Zk(#[from] ZkOpError),
}

/// Run `plan` against the cluster behind `zk`; never panics on the way, the
/// report says how it ended.
pub async fn run(zk: &Client, plan: &Plan) -> Report {
    let mut run = Run::new(plan);
    let result = run.go(zk).await;
    run.finish(zk, result).await
}

/// One switchover in progress.
struct Run<'a> {
    plan: &'a Plan,
    t0: Instant,
    report: Report,
    old: Option<Server>,
    target: Option<Server>,
    /// The serving record found, with the old primary's server_id.
    record: Option<Record>,
    /// The znode version this run last read or wrote.
    version: i32,
    /// `read_only = 1` was sent to the old primary.
    blocked: bool,
    /// The draining record was written (the record must be restored on failure).
    drained: bool,
    /// The target was promoted: no roll-back any more.
    promoted: bool,
    blocked_at: Option<Instant>,
}

fn timed<T>(slot: &mut Option<Duration>, t: Instant, v: T) -> T {
    *slot = Some(t.elapsed());
    v
}

impl<'a> Run<'a> {
    fn new(plan: &'a Plan) -> Run<'a> {
        Run {
            plan,
            t0: Instant::now(),
            report: Report {
                outcome: Outcome::Refused,
                from: None,
                to: plan.target.clone(),
                epochs: Epochs::default(),
                phases: Phases::default(),
                write_blocked: None,
                total: Duration::ZERO,
                proxies: Vec::new(),
                error: None,
                warnings: Vec::new(),
            },
            old: None,
            target: None,
            record: None,
            version: 0,
            blocked: false,
            drained: false,
            promoted: false,
            blocked_at: None,
        }
    }

    async fn go(&mut self, zk: &Client) -> Result<(), SwitchoverError> {
        let t = Instant::now();
        let r = self.check(zk).await;
        timed(&mut self.report.phases.check, t, r)?;
        let t = Instant::now();
        let r = self.drain(zk).await;
        timed(&mut self.report.phases.drain, t, r)?;
        self.ensure_unchanged(zk).await?;
        let (t, old) = (Instant::now(), self.old.as_mut().expect("checked"));
        self.blocked = true;
        self.blocked_at = Some(t);
        let r = old.set_read_only(true).await;
        timed(&mut self.report.phases.read_only, t, r)?;
        let t = Instant::now();
        let r = self.catch_up(zk).await;
        timed(&mut self.report.phases.catch_up, t, r)?;
        let t = Instant::now();
        let r = self.target.as_mut().expect("checked").promote().await;
        timed(&mut self.report.phases.promote, t, r)?;
        self.promoted = true;
        self.publish_target(zk).await?;
        self.repoint().await;
        self.update_replicas(zk).await;
        Ok(())
    }

    /// Record serving and parseable, both servers as expected.
    async fn check(&mut self, zk: &Client) -> Result<(), SwitchoverError> {
        let plan = self.plan;
        let current = read(zk, &plan.primary_path).await?;
        self.version = current.as_ref().map_or(0, |c| c.version);
        let mut record = checks::serving_record(&plan.primary_path, current)?;
        let from = Endpoint::of(&record);
        self.report.from = Some(from.clone());
        self.report.epochs.before = record.epoch;
        if from == plan.target {
            return Err(Refusal::SameTarget(from).into());
        }
        let mut old = Server::connect(&from, &plan.login, plan.sql_timeout)
            .await
            .map_err(Refusal::from)?;
        let mut target = Server::connect(&plan.target, &plan.login, plan.sql_timeout)
            .await
            .map_err(Refusal::from)?;
        let (old_id, _) = checks::servers(&mut old, &mut target).await?;
        record.server_id = Some(old_id);
        (self.record, self.old, self.target) = (Some(record), Some(old), Some(target));
        Ok(())
    }

    fn record(&self) -> &Record {
        self.record.as_ref().expect("checked")
    }

    fn epoch_after(&self, steps: u64) -> u64 {
        self.record().epoch.unwrap_or(0) + steps
    }

    /// Compare-and-set `record` on the version this run holds.
    async fn write(&mut self, zk: &Client, record: &Record) -> Result<(), ZkOpError> {
        let data = record_json(record);
        self.version =
            compare_and_set(zk, &self.plan.primary_path, &data, Some(self.version)).await?;
        Ok(())
    }

    /// Publish `draining` for the old primary, wait for the acknowledgements.
    async fn drain(&mut self, zk: &Client) -> Result<(), SwitchoverError> {
        let epoch = self.epoch_after(1);
        let draining = Record {
            epoch: Some(epoch),
            state: RecordState::Draining,
            ..self.record().clone()
        };
        // Another error (a lost connection) leaves it unknown whether the
        // write happened: the roll-back's compare-and-set tells.
        self.drained = true;
        self.write(zk, &draining).await.map_err(|e| match e {
            ZkOpError::Conflict { .. } => Refusal::RecordChanged(e).into(),
            e => SwitchoverError::Zk(e),
        })?;
        self.report.epochs.draining = Some(epoch);
        let timeout = self.plan.drain_timeout;
        let acks = wait_for_acks(zk, &self.plan.primary_path, epoch, timeout).await?;
        self.report.proxies = acks.proxies.clone();
        if acks.complete {
            return Ok(());
        }
        let missing: Vec<&str> = acks
            .proxies
            .iter()
            .filter(|p| !p.acked)
            .map(|p| p.id.as_str())
            .collect();
        let err = SwitchoverError::DrainIncomplete {
            missing: missing.len(),
            registered: acks.proxies.len(),
            ids: missing.join(", "),
            after: timeout,
        };
        if self.plan.force {
            self.report
                .warnings
                .push(format!("{err}; proceeding (--force)"));
            return Ok(());
        }
        Err(err)
    }

    /// The old primary's GTID position (read once it is read-only) applied on the
    /// target; then the record must still be ours before the promotion.
    async fn catch_up(&mut self, zk: &Client) -> Result<(), SwitchoverError> {
        let pos = self
            .old
            .as_mut()
            .expect("checked")
            .gtid_binlog_pos()
            .await?;
        let after = self.plan.catch_up_timeout;
        let target = self.target.as_mut().expect("checked");
        if !target.wait_gtid(&pos, after).await? {
            return Err(SwitchoverError::CatchUpTimeout { pos, after });
        }
        self.ensure_unchanged(zk).await
    }

    /// The record is still at the version this run wrote.
    async fn ensure_unchanged(&self, zk: &Client) -> Result<(), SwitchoverError> {
        match read(zk, &self.plan.primary_path).await? {
            Some(c) if c.version == self.version => Ok(()),
            other => Err(SwitchoverError::RecordChanged(ZkOpError::Conflict {
                path: self.plan.primary_path.clone(),
                expected: format!(
                    "version {}, found {}",
                    self.version,
                    other.map_or("no znode".into(), |c| format!("version {}", c.version))
                ),
            })),
        }
    }

    /// Old primary replicates from the target; a failure is only a warning
    /// (the target is promoted and published already).
    async fn repoint(&mut self) {
        let t = Instant::now();
        let (old, plan) = (self.old.as_mut().expect("checked"), self.plan);
        if let Err(e) = old.repoint(&plan.target, &plan.repl).await {
            let w = format!("the old primary was not repointed at the target: {e}");
            self.report.warnings.push(w);
        }
        self.report.phases.repoint = Some(t.elapsed());
    }

    /// The replica records follow the new epoch (only warnings on failure).
    async fn update_replicas(&mut self, zk: &Client) {
        let (plan, from) = (self.plan, self.report.from.clone().expect("checked"));
        let logins = (&plan.login, &plan.repl, plan.sql_timeout);
        let epoch = self.epoch_after(2);
        let names = (&from, plan.old_primary_name.as_deref());
        let warnings = super::replicas::follow_switchover(
            zk,
            &plan.primary_path,
            names,
            &plan.target,
            epoch,
            logins,
        )
        .await;
        self.report.warnings.extend(warnings);
    }

    /// The target serving, with its server_id, epoch + 2.
    async fn publish_target(&mut self, zk: &Client) -> Result<(), SwitchoverError> {
        let t = Instant::now();
        let server_id = self
            .target
            .as_mut()
            .expect("checked")
            .server_id()
            .await
            .ok();
        let serving = Record {
            host: self.plan.target.host.clone(),
            port: self.plan.target.port,
            epoch: Some(self.epoch_after(2)),
            server_id,
            server_uuid: None,
            state: RecordState::Serving,
        };
        let r = self.write(zk, &serving).await;
        self.report.phases.publish = Some(t.elapsed());
        self.report.write_blocked = self.blocked_at.map(|f| f.elapsed());
        r.map_err(|e| match e {
            ZkOpError::Conflict { .. } => SwitchoverError::RecordChanged(e),
            e => SwitchoverError::Zk(e),
        })?;
        self.report.epochs.serving = serving.epoch;
        Ok(())
    }
}
