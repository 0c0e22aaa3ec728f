//! How a switchover ends: the outcome, and the roll-back after a failure
//! before the promotion (old primary writable again, record serving on it
//! with epoch + 2, each only if this run changed it).

use std::time::Instant;

use zookeeper_client::Client;

use super::{Run, SwitchoverError};
use crate::report::{Outcome, Report};
use crate::server::{Server, ServerError};
use mysql_zk_proxy_core::discovery::record::Record;
use mysql_zk_proxy_core::routing::RecordState;

impl Run<'_> {
    /// Roll back when needed, fill in the outcome and the total.
    pub(super) async fn finish(
        mut self,
        zk: &Client,
        result: Result<(), SwitchoverError>,
    ) -> Report {
        self.report.outcome = match result {
            Ok(()) => Outcome::Switched,
            Err(SwitchoverError::Refused(r)) => {
                self.report.error = Some(r.to_string());
                Outcome::Refused
            }
            Err(e) if !self.drained && !self.blocked => {
                self.report.error = Some(format!("{e}; nothing was changed"));
                Outcome::Refused
            }
            Err(e) if self.promoted => {
                let (to, from) = (
                    &self.plan.target,
                    self.report.from.as_ref().expect("checked"),
                );
                self.report.error = Some(format!(
                    "{e}; {to} is promoted (writable) and {from} read-only, but the serving \
                     record was not written: publish {to} by hand"
                ));
                Outcome::Failed
            }
            Err(e) => self.roll_back(zk, e).await,
        };
        if let Some(old) = self.old.take() {
            old.close().await;
        }
        if let Some(target) = self.target.take() {
            target.close().await;
        }
        self.report.total = self.t0.elapsed();
        self.report
    }

    /// Old primary writable again (if it was made read-only); record serving on it with
    /// epoch + 2 (if draining was written and the record is still ours).
    async fn roll_back(&mut self, zk: &Client, cause: SwitchoverError) -> Outcome {
        let t = Instant::now();
        let mut problems = Vec::new();
        if self.phases_touched_target() {
            self.report
                .warnings
                .push("promoting the target failed midway: check its replication".into());
        }
        if self.blocked {
            if let Err(e) = self.unblock_writes().await {
                problems.push(format!("the old primary is still read-only: {e}"));
            }
        }
        let record_ours = !matches!(cause, SwitchoverError::RecordChanged(_));
        if self.drained && record_ours {
            let serving = Record {
                epoch: Some(self.epoch_after(2)),
                state: RecordState::Serving,
                ..self.record().clone()
            };
            match self.write(zk, &serving).await {
                Ok(()) => self.report.epochs.serving = serving.epoch,
                Err(e) => problems.push(format!("the record was not restored to serving: {e}")),
            }
        }
        self.report.phases.rollback = Some(t.elapsed());
        self.report.write_blocked = self.blocked_at.map(|f| f.elapsed());
        let rolled = if record_ours {
            "rolled back"
        } else {
            "old primary writable again, record left as found"
        };
        if problems.is_empty() && record_ours {
            self.report.error = Some(format!("{cause}; {rolled}"));
            return Outcome::RolledBack;
        }
        problems.insert(0, cause.to_string());
        if problems.len() == 1 {
            problems.push(rolled.to_owned());
        }
        self.report.error = Some(problems.join("; "));
        Outcome::Failed
    }

    fn phases_touched_target(&self) -> bool {
        self.report.phases.promote.is_some()
    }

    /// `read_only = 0` on the old primary, on a new connection if the first fails.
    async fn unblock_writes(&mut self) -> Result<(), ServerError> {
        let old = self.old.as_mut().expect("made read-only after the checks");
        if old.set_read_only(false).await.is_ok() {
            return Ok(());
        }
        let plan = self.plan;
        let mut again = Server::connect(&old.addr, &plan.login, plan.sql_timeout).await?;
        again.set_read_only(false).await
    }
}
