//! The promote task: turns the route's `pending` primary (a record
//! seen, not verified) into its `primary` once [`Verifier::verify`] accepts
//! it, re-checking every `recheck_interval` until then. Runs beside the
//! ZooKeeper session loop, so a slow or read-only server never delays
//! watching the record. The route table is its only input: a newer record
//! (or a deletion, or fail-closed) replaces `pending` and the check in
//! progress is dropped.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::status::StatusTx;
use crate::routing::{Primary, Route, RouteTable};
use crate::verify::{ServerFacts, Verifier, VerifyError};

/// Where the verifier is.
enum Phase {
    /// Nothing pending: wait for the route to change.
    Idle,
    /// A candidate to check; `attempt` counts failed checks so far.
    Check {
        candidate: Primary,
        since: Instant,
        attempt: u64,
    },
    Stop,
}

pub(crate) struct Promoter {
    pub(crate) verifier: Verifier,
    pub(crate) table: Arc<RouteTable>,
    pub(crate) status: StatusTx,
    pub(crate) cancel: CancellationToken,
}

/// Warn on the first failed check of a candidate and then every this many.
const WARN_EVERY: u64 = 25;

impl Promoter {
    pub(crate) async fn run(self) {
        let mut phase = Phase::Idle;
        loop {
            phase = match phase {
                Phase::Idle => self.idle().await,
                Phase::Check {
                    candidate,
                    since,
                    attempt,
                } => self.check(candidate, since, attempt).await,
                Phase::Stop => break,
            };
        }
    }

    /// The pending candidate of the current route, as a new check.
    fn pending(&self) -> Option<Phase> {
        let route = self.table.current();
        let candidate = route.pending.clone()?;
        Some(Phase::Check {
            candidate,
            since: Instant::now(),
            attempt: 0,
        })
    }

    async fn idle(&self) -> Phase {
        let mut rx = self.table.subscribe();
        loop {
            if let Some(check) = self.pending() {
                return check;
            }
            self.status.set_verify_error(None);
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Phase::Stop,
                changed = rx.changed() => if changed.is_err() { return Phase::Stop },
            }
        }
    }

    async fn check(&self, candidate: Primary, since: Instant, attempt: u64) -> Phase {
        if self.table.current().pending.as_ref() != Some(&candidate) {
            tracing::debug!(primary = %candidate, "candidate superseded before it was verified");
            return Phase::Idle;
        }
        let mut rx = self.table.subscribe();
        let result = match self.verify_once(&candidate, &mut rx).await {
            Ok(result) => result,
            Err(phase) => return phase,
        };
        match result {
            Ok(_) => {
                self.swap(&candidate, since);
                Phase::Idle
            }
            Err(e) => {
                self.failed(&candidate, &e, attempt + 1);
                // Re-check after the interval, or at once if the route moved.
                tokio::select! {
                    biased;
                    _ = self.cancel.cancelled() => return Phase::Stop,
                    _ = rx.changed() => {}
                    _ = tokio::time::sleep(self.verifier.recheck_interval) => {}
                }
                Phase::Check {
                    candidate,
                    since,
                    attempt: attempt + 1,
                }
            }
        }
    }

    /// One check of `candidate`; `Err(next phase)` when cancelled or when a
    /// newer record (or a deletion) supersedes it first: a slow check is
    /// abandoned at once.
    async fn verify_once(
        &self,
        candidate: &Primary,
        rx: &mut watch::Receiver<u64>,
    ) -> Result<Result<ServerFacts, VerifyError>, Phase> {
        let verify = self.verifier.verify(candidate);
        tokio::pin!(verify);
        loop {
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Err(Phase::Stop),
                r = &mut verify => return Ok(r),
                _ = rx.changed() => {
                    if self.table.current().pending.as_ref() != Some(candidate) {
                        return Err(Phase::Idle);
                    }
                }
            }
        }
    }

    /// Make `candidate` the primary, unless the route moved on meanwhile.
    fn swap(&self, candidate: &Primary, since: Instant) {
        let took = since.elapsed();
        tracing::info!(phase = "verified", primary = %candidate.address(), epoch = candidate.epoch,
            took = ?took, "new primary verified: writable, matches the record");
        let swapped = self.table.update(|prev| {
            (prev.pending.as_ref() == Some(candidate)).then(|| Route {
                primary: Some(candidate.clone()),
                pending: None,
                ..prev.clone()
            })
        });
        match swapped {
            Some(route) => {
                self.status.set_verify_error(None);
                tracing::info!(phase = "swapped", primary = %candidate.address(), epoch = candidate.epoch,
                    generation = route.generation, since_record = ?since.elapsed(), "route now sends new connections to the verified primary");
            }
            None => {
                tracing::info!(primary = %candidate, "verified candidate was superseded; not routed")
            }
        }
    }

    fn failed(&self, candidate: &Primary, e: &VerifyError, attempt: u64) {
        self.status
            .set_verify_error(Some(format!("epoch {}: {e}", candidate.epoch)));
        if attempt == 1 || attempt % WARN_EVERY == 0 {
            tracing::warn!(primary = %candidate.address(), epoch = candidate.epoch, attempt, error = %e,
                retry_in = ?self.verifier.recheck_interval, "new primary not verified; holding new connections");
        } else {
            tracing::debug!(primary = %candidate.address(), attempt, error = %e, "new primary still not verified");
        }
    }
}
