//! The loss report: which acknowledged commits of the old term the new
//! primary lacks. Pure: the term and the new primary's positions in, the
//! report out; [`super::watch`] reads the positions and publishes it.
//!
//! The new primary has a commit `d-s-n` when its `@@gtid_slave_pos` (what it
//! applied as a replica; local writes after its promotion do not move it)
//! reaches `n` in domain `d`, or when its `@@gtid_binlog_pos` in `d` was
//! written by the same server `s` at or past `n`. Comparing sequence
//! numbers alone would count a lost commit as present once the new primary
//! wrote its own commit with the same number.

use std::time::SystemTime;

use serde::Serialize;

use super::{Ack, Gtid, GtidPos, Term};

/// The route moved to another server: the old server's term, the new server.
#[derive(Debug, Clone)]
pub struct Moved {
    pub old: Term,
    pub primary: crate::routing::Primary,
    /// `host:port` of the new primary.
    pub server: String,
    /// The record's epoch that named it.
    pub epoch: u64,
}

/// The new primary's GTID positions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Positions {
    pub binlog: GtidPos,
    pub slave: GtidPos,
}

impl Positions {
    /// The server has the commit `g` (see the module doc).
    pub fn has(&self, g: &Gtid) -> bool {
        self.slave.contains(g)
            || self
                .binlog
                .get(g.domain)
                .is_some_and(|h| h.server == g.server && h.seq >= g.seq)
    }
}

/// One acknowledged commit the new primary lacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissingAck {
    pub gtid: String,
    pub session: u64,
    pub user: String,
    #[serde(with = "crate::time::rfc3339")]
    pub acknowledged_at: SystemTime,
}

impl From<&Ack> for MissingAck {
    fn from(a: &Ack) -> Self {
        MissingAck {
            gtid: a.gtid.to_string(),
            session: a.session,
            user: a.user.to_string(),
            acknowledged_at: a.at,
        }
    }
}

/// What the gate did at this move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GateOutcome {
    /// `failover.wait_for_acknowledged` is not set.
    Off,
    /// Nothing acknowledged in the old term: nothing to wait for.
    NotNeeded,
    /// The new primary applied every acknowledged commit in time.
    Applied,
    /// It had not within the bound; sessions went on (see docs/ledger.md).
    TimedOut,
    /// Its position could not be read or waited for.
    Failed,
}

/// The loss report of one move of the route (`/status`, the znode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LossReport {
    /// The epoch of the record that named the new primary.
    pub epoch: u64,
    pub from: String,
    pub from_epoch: u64,
    pub to: String,
    /// Commits acknowledged to clients under the old term.
    pub acknowledged: u64,
    /// Their highest GTID per domain.
    pub acknowledged_position: String,
    /// The new primary's `gtid_binlog_pos` and `gtid_slave_pos` as read.
    pub new_binlog_pos: Option<String>,
    pub new_slave_pos: Option<String>,
    /// Acknowledged commits the new primary lacks; `None` when its
    /// position could not be read (`error` says why).
    pub missing: Option<u64>,
    /// The missing commits, oldest first (those the ring still held).
    pub missing_transactions: Vec<MissingAck>,
    /// The ring had dropped acknowledgements that may be missing too:
    /// `missing` counts only those listed.
    pub incomplete: bool,
    pub gate: GateOutcome,
    /// Milliseconds from the move to the gate opening (0 when not closed).
    pub gate_waited_ms: u64,
    pub error: Option<String>,
    #[serde(with = "crate::time::rfc3339")]
    pub at: SystemTime,
}

impl LossReport {
    /// A report with no positions read yet.
    pub fn new(m: &Moved) -> LossReport {
        LossReport {
            epoch: m.epoch,
            from: m.old.server.clone(),
            from_epoch: m.old.epoch,
            to: m.server.clone(),
            acknowledged: m.old.acknowledged,
            acknowledged_position: m.old.position.to_string(),
            new_binlog_pos: None,
            new_slave_pos: None,
            missing: None,
            missing_transactions: Vec::new(),
            incomplete: false,
            gate: GateOutcome::Off,
            gate_waited_ms: 0,
            error: None,
            at: SystemTime::now(),
        }
    }

    /// Compare the old term with the new primary's positions.
    pub fn compare(&mut self, old: &Term, now: &Positions) {
        self.new_binlog_pos = Some(now.binlog.to_string());
        self.new_slave_pos = Some(now.slave.to_string());
        self.missing_transactions = old
            .recent
            .iter()
            .filter(|a| !now.has(&a.gtid))
            .map(MissingAck::from)
            .collect();
        self.missing = Some(self.missing_transactions.len() as u64);
        self.incomplete = old.position.gtids().any(|g| {
            let have = now.slave.get(g.domain).map_or(0, |h| h.seq);
            !now.has(g) && old.ring_short_of(g.domain, have)
        });
        self.error = None;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn term(acks: &[&str], capacity_dropped: u64) -> Term {
        let mut t = Term::new("a:1".into(), 3);
        let user: Arc<str> = Arc::from("app");
        for (i, g) in acks.iter().enumerate() {
            let gtid: Gtid = g.parse().unwrap();
            t.position.advance(gtid);
            t.recent.push_back(Ack {
                gtid,
                session: i as u64 + 1,
                user: user.clone(),
                at: SystemTime::UNIX_EPOCH,
            });
        }
        t.acknowledged = acks.len() as u64 + capacity_dropped;
        t
    }

    fn positions(binlog: &str, slave: &str) -> Positions {
        Positions {
            binlog: binlog.parse().unwrap(),
            slave: slave.parse().unwrap(),
        }
    }

    fn report(t: &Term, p: &Positions) -> LossReport {
        let m = Moved {
            old: t.clone(),
            primary: crate::routing::Primary::local(1, 5),
            server: "b:1".into(),
            epoch: 5,
        };
        let mut r = LossReport::new(&m);
        r.compare(t, p);
        r
    }

    #[test]
    fn a_caught_up_replica_lacks_nothing() {
        let t = term(&["0-1-10", "0-1-11", "0-1-12"], 0);
        let r = report(&t, &positions("0-1-12", "0-1-12"));
        assert_eq!(r.missing, Some(0));
        assert!(r.missing_transactions.is_empty());
        assert_eq!(r.acknowledged_position, "0-1-12");
        assert!(!r.incomplete);
    }

    #[test]
    fn commits_past_the_replicas_position_are_named() {
        let t = term(&["0-1-10", "0-1-11", "0-1-12"], 0);
        let r = report(&t, &positions("0-1-10", "0-1-10"));
        assert_eq!(r.missing, Some(2));
        let gtids: Vec<_> = r
            .missing_transactions
            .iter()
            .map(|m| m.gtid.as_str())
            .collect();
        assert_eq!(gtids, ["0-1-11", "0-1-12"]);
        assert_eq!(r.missing_transactions[0].session, 2);
        assert_eq!(r.missing_transactions[0].user, "app");
    }

    #[test]
    fn the_new_primarys_own_writes_do_not_hide_a_loss() {
        // promoted at 0-1-10, then wrote 0-2-11 and 0-2-12 itself
        let t = term(&["0-1-10", "0-1-11", "0-1-12"], 0);
        let r = report(&t, &positions("0-2-12", "0-1-10"));
        assert_eq!(r.missing, Some(2));
    }

    #[test]
    fn domains_are_compared_separately() {
        let t = term(&["0-1-10", "1-1-4"], 0);
        let r = report(&t, &positions("0-1-10", "0-1-10"));
        let gtids: Vec<_> = r
            .missing_transactions
            .iter()
            .map(|m| m.gtid.as_str())
            .collect();
        assert_eq!(gtids, ["1-1-4"]);
    }

    #[test]
    fn a_ring_that_dropped_what_may_be_missing_marks_the_report_incomplete() {
        // 5 acknowledged, the ring kept the last 2; the replica has only 0-1-1
        let t = term(&["0-1-4", "0-1-5"], 3);
        let r = report(&t, &positions("0-1-1", "0-1-1"));
        assert_eq!(r.missing, Some(2));
        assert!(r.incomplete);
        // the replica has everything the ring dropped: complete
        let r = report(&t, &positions("0-1-3", "0-1-3"));
        assert!(!r.incomplete);
    }
}
