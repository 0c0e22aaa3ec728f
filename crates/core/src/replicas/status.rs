//! The read-only listener in `/status`: per replica, whether it qualifies
//! and why not, lag, sessions, reads and causal waits.

use std::sync::atomic::Ordering::Relaxed;

use serde::Serialize;

use super::health::NotQualified;
use super::ReadRouter;
use crate::discovery::replica_record::ReplicaState;

/// One replica in `/status`.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaView {
    pub name: String,
    pub address: String,
    pub epoch: u64,
    pub weight: u32,
    pub state: ReplicaState,
    pub qualified: bool,
    /// Checks taken of it so far (a count of check rounds, not of time).
    pub checks: u64,
    /// Why not, as of the last check (`null` while qualified).
    pub why_not: Option<NotQualified>,
    pub lag_ms: Option<u64>,
    /// Transactions of the primary it lacked at the last check.
    pub behind: Option<u64>,
    /// Sessions opened on it and running (some may have moved elsewhere).
    pub sessions: u64,
    /// Sessions ever opened on it (reads are sessions here).
    pub sessions_opened: u64,
    pub causal_waits: u64,
    pub causal_failures: u64,
    pub causal_wait_avg_ms: Option<f64>,
    /// Time spent in causal waits, in all.
    pub causal_wait_seconds: f64,
    /// Where its sessions go now (itself, another replica, the primary).
    pub routes_to: Option<String>,
}

/// The read-only listener as a whole.
#[derive(Debug, Clone, Serialize)]
pub struct ReadOnlyView {
    pub listen: String,
    pub consistency: crate::config::Consistency,
    pub max_lag_ms: u64,
    pub replicas: Vec<ReplicaView>,
    pub invalid_records: u64,
    pub fallback_sessions: u64,
    pub refused_sessions: u64,
}

impl ReadRouter {
    pub fn view(&self, listen: String) -> ReadOnlyView {
        let replicas = self
            .slots()
            .iter()
            .map(|s| {
                let st = s.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let c = &s.counters;
                let waits = c.causal_waits.load(Relaxed);
                let us = c.causal_wait_us.load(Relaxed);
                ReplicaView {
                    name: s.name.clone(),
                    address: format!("{}:{}", st.record.host, st.record.port),
                    epoch: st.record.epoch,
                    weight: st.record.weight,
                    state: st.record.state,
                    qualified: st.health.qualified(),
                    checks: st.health.checks,
                    why_not: st.health.why_not.clone(),
                    lag_ms: st.health.lag.map(|l| l.as_millis() as u64),
                    behind: st.behind,
                    sessions: c.sessions.load(Relaxed),
                    sessions_opened: c.opened.load(Relaxed),
                    causal_waits: waits,
                    causal_failures: c.causal_failures.load(Relaxed),
                    causal_wait_avg_ms: (waits > 0).then(|| us as f64 / waits as f64 / 1000.0),
                    causal_wait_seconds: us as f64 / 1e6,
                    routes_to: s.table.current().primary.as_ref().map(|p| p.address()),
                }
            })
            .collect();
        ReadOnlyView {
            listen,
            consistency: self.cfg.consistency,
            max_lag_ms: self.cfg.max_lag.as_millis() as u64,
            replicas,
            invalid_records: self.set.invalid_records.load(Relaxed),
            fallback_sessions: self.counters.fallback_sessions.load(Relaxed),
            refused_sessions: self.counters.refused_sessions.load(Relaxed),
        }
    }
}
