//! The choice of a replica for a new read session: among the qualified
//! ones, the fewest running sessions (`least_connections`) or the fewest
//! per unit of the record's weight (`weighted`); ties go round-robin, so
//! short sessions opened one after another spread too. The chosen slot's
//! session count is held by a [`Lease`].

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::{Candidate, ReadRouter, SlotCounters};
use crate::config::Balance;
use crate::session::Env;

/// Counts a session on its slot while it lives.
pub struct Lease(Arc<SlotCounters>);

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.sessions.fetch_sub(1, Relaxed);
    }
}

/// Where a new read session goes.
pub enum Picked {
    /// A qualified replica: its slot's environment and the session's lease.
    Replica(Arc<Env>, Lease),
    /// No replica qualifies; `fallback_to_primary` sends it to the primary.
    Primary,
    /// No replica qualifies and there is no fallback (error 9021).
    Nothing,
}

/// Index of the candidate to use (pure); among equally loaded ones, the
/// first from index `turn` on (modulo their number).
pub(crate) fn choose(candidates: &[(u64, u32)], balance: Balance, turn: usize) -> Option<usize> {
    let load = |&(sessions, weight): &(u64, u32)| match balance {
        // sessions per unit of weight, scaled to stay an integer
        Balance::Weighted => (sessions as u128 * 1_000_000) / weight.max(1) as u128,
        Balance::LeastConnections => sessions as u128,
    };
    let n = candidates.len();
    (0..n)
        .map(|k| (turn + k) % n)
        .min_by_key(|&i| load(&candidates[i]))
}

impl ReadRouter {
    /// Choose where a new read session goes.
    pub fn pick(&self) -> Picked {
        let q = self.qualified();
        let loads: Vec<(u64, u32)> = q
            .iter()
            .map(|c: &Candidate| (c.slot.counters.sessions.load(Relaxed), c.weight))
            .collect();
        let turn = self.turn.fetch_add(1, Relaxed);
        match choose(&loads, self.cfg.balance, turn) {
            Some(i) => {
                let slot = &q[i].slot;
                slot.counters.sessions.fetch_add(1, Relaxed);
                slot.counters.opened.fetch_add(1, Relaxed);
                Picked::Replica(slot.env.clone(), Lease(slot.counters.clone()))
            }
            None if self.cfg.fallback_to_primary => {
                self.counters.fallback_sessions.fetch_add(1, Relaxed);
                Picked::Primary
            }
            None => {
                self.counters.refused_sessions.fetch_add(1, Relaxed);
                Picked::Nothing
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_connections_and_weighted() {
        let lc = Balance::LeastConnections;
        assert_eq!(choose(&[], lc, 0), None);
        assert_eq!(choose(&[(3, 1), (1, 1), (1, 1)], lc, 0), Some(1));
        assert_eq!(choose(&[(3, 1), (1, 1), (1, 1)], lc, 2), Some(2));
        let w = Balance::Weighted;
        // 4 sessions on weight 4 is less loaded than 2 on weight 1
        assert_eq!(choose(&[(2, 1), (4, 4)], w, 0), Some(1));
        assert_eq!(choose(&[(0, 1), (0, 9)], w, 0), Some(0));
    }

    #[test]
    fn ties_go_round_robin() {
        let idle = [(0, 1), (0, 1), (0, 1)];
        let picks: Vec<_> = (0..6)
            .map(|t| choose(&idle, Balance::LeastConnections, t))
            .collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2].map(Some));
    }
}
