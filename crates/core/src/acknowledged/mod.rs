//! The ledger of acknowledged writes: per primary term (the stretch of
//! epochs during which the route named one server), the highest GTID per
//! replication domain whose commit OK reached a client, and a bounded ring
//! of the most recent ones with session id, user and time. Sessions record
//! into it from the relay (one short lock per commit); the loss report
//! ([`report`]) and the gate ([`gate`]) read it when the route moves to
//! another server (docs/ledger.md).
//!
//! [`Ledger::position`] is the shared read handle: the current primary's
//! highest acknowledged GTID per domain.

pub mod gate;
pub mod report;
mod watch;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

pub use mysql_zk_proxy_protocol::gtid::{Gtid, GtidPos};
pub use watch::{spawn as spawn_reporter, Reporter};

use crate::routing::{Primary, Route, RouteObserver};

/// Loss reports kept for `/status`, newest last.
const REPORTS_KEPT: usize = 8;

/// Terms kept: the current one and the previous ones a late reply may
/// still land in.
const TERMS_KEPT: usize = 4;

/// One acknowledged commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub gtid: Gtid,
    /// The proxy's session id (as in its logs and `/status`).
    pub session: u64,
    pub user: Arc<str>,
    pub at: SystemTime,
}

/// What was acknowledged while the route named one server.
#[derive(Debug, Clone)]
pub struct Term {
    /// `host:port` of the server.
    pub server: String,
    /// The record's epoch when the route first named it.
    pub epoch: u64,
    /// Highest acknowledged GTID per domain.
    pub position: GtidPos,
    /// The most recent acknowledgements, oldest first (at most the capacity).
    pub recent: VecDeque<Ack>,
    /// Acknowledgements recorded, including those the ring no longer holds.
    pub acknowledged: u64,
    /// The route moved away from the server (late replies still count).
    pub closed: bool,
}

impl Term {
    fn new(server: String, epoch: u64) -> Term {
        Term {
            server,
            epoch,
            position: GtidPos::new(),
            recent: VecDeque::new(),
            acknowledged: 0,
            closed: false,
        }
    }

    /// The ring lost acknowledgements of `domain` that a position up to
    /// `have` may lack: the oldest kept one is not the first after `have`.
    pub fn ring_short_of(&self, domain: u32, have: u64) -> bool {
        let dropped = self.acknowledged > self.recent.len() as u64;
        let oldest = self.recent.iter().find(|a| a.gtid.domain == domain);
        dropped && oldest.is_none_or(|a| a.gtid.seq > have + 1)
    }
}

struct Inner {
    terms: VecDeque<Term>,
    /// The server the route last named as serving primary.
    serving: Option<(String, u64)>,
}

impl Inner {
    /// Append a term (dropping the oldest past [`TERMS_KEPT`]); its index.
    fn push(&mut self, t: Term) -> usize {
        if self.terms.len() == TERMS_KEPT {
            self.terms.pop_front();
        }
        self.terms.push_back(t);
        self.terms.len() - 1
    }
}

/// The ledger of one proxy (each proxy has its own; nothing global).
pub struct Ledger {
    inner: Mutex<Inner>,
    capacity: usize,
    /// Told the (old term, new server, epoch) at each move to another server.
    moves: tokio::sync::mpsc::UnboundedSender<report::Moved>,
    pub gate: gate::Gate,
    reports: Mutex<VecDeque<report::LossReport>>,
}

impl Ledger {
    /// A ledger keeping `capacity` recent acknowledgements per term, with
    /// the gate bounded by `wait` (`None`: off); the receiver gets every
    /// move of the route to another server.
    pub fn new(
        capacity: usize,
        wait: Option<std::time::Duration>,
    ) -> (
        Arc<Ledger>,
        tokio::sync::mpsc::UnboundedReceiver<report::Moved>,
    ) {
        let (moves, rx) = tokio::sync::mpsc::unbounded_channel();
        let ledger = Ledger {
            inner: Mutex::new(Inner {
                terms: VecDeque::new(),
                serving: None,
            }),
            capacity,
            moves,
            gate: gate::Gate::new(wait),
            reports: Mutex::default(),
        };
        (Arc::new(ledger), rx)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A client was sent the OK of a commit written as `gtid` by `server`
    /// (`host:port`, the session's backend, whose route epoch was `epoch`).
    pub fn record(&self, server: &str, epoch: u64, gtid: Gtid, session: u64, user: &Arc<str>) {
        let at = SystemTime::now();
        let mut inner = self.lock();
        let found = inner
            .terms
            .iter()
            .rposition(|t| t.server == server && t.epoch <= epoch);
        let i = found.unwrap_or_else(|| inner.push(Term::new(server.to_string(), epoch)));
        let term = &mut inner.terms[i];
        term.position.advance(gtid);
        term.acknowledged += 1;
        if term.recent.len() == self.capacity {
            term.recent.pop_front();
        }
        if self.capacity > 0 {
            term.recent.push_back(Ack {
                gtid,
                session,
                user: user.clone(),
                at,
            });
        }
    }

    /// The current primary's highest acknowledged GTID per domain (empty
    /// before the first acknowledged commit of its term).
    pub fn position(&self) -> GtidPos {
        let inner = self.lock();
        let Some((server, _)) = &inner.serving else {
            return GtidPos::new();
        };
        inner
            .terms
            .iter()
            .rev()
            .find(|t| &t.server == server)
            .map(|t| t.position.clone())
            .unwrap_or_default()
    }

    /// The last loss reports, oldest first.
    pub fn reports(&self) -> Vec<report::LossReport> {
        let r = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        r.iter().cloned().collect()
    }

    fn push_report(&self, report: report::LossReport) {
        let mut r = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        if r.len() == REPORTS_KEPT {
            r.pop_front();
        }
        r.push_back(report);
    }

    /// A copy of the terms kept, oldest first.
    pub fn terms(&self) -> Vec<Term> {
        self.lock().terms.iter().cloned().collect()
    }

    /// The route's serving primary is now `p`: when it was another server,
    /// close that server's term and hand it on.
    fn serving(&self, p: &Primary) {
        let (server, epoch) = (p.address(), p.epoch);
        let mut inner = self.lock();
        let prev = match &inner.serving {
            Some((s, _)) if *s == server => return,
            prev => prev.clone(),
        };
        inner.serving = Some((server.clone(), epoch));
        inner.push(Term::new(server.clone(), epoch));
        let Some((old, old_epoch)) = prev else {
            return;
        };
        let term = match inner.terms.iter_mut().rev().find(|t| t.server == old) {
            Some(t) => {
                t.closed = true;
                t.clone()
            }
            None => Term {
                closed: true,
                ..Term::new(old, old_epoch)
            },
        };
        self.gate.close_for(&term, &server, epoch);
        let _ = self.moves.send(report::Moved {
            old: term,
            primary: p.clone(),
            server,
            epoch,
        });
    }
}

/// The ledger in `/status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LedgerStatus {
    /// Commit OKs with a GTID sent to clients since the start.
    pub acknowledged: u64,
    /// The current primary's highest acknowledged GTID per domain.
    pub position: String,
    /// `"open"`, or the `host:port` sessions wait for.
    pub gate: String,
    /// The last loss reports, oldest first.
    pub loss_reports: Vec<report::LossReport>,
}

impl Ledger {
    /// The ledger's part of `/status`; `acknowledged` is the counter's value.
    pub fn status(&self, acknowledged: u64) -> LedgerStatus {
        LedgerStatus {
            acknowledged,
            position: self.position().to_string(),
            gate: match self.gate.state() {
                gate::GateState::Open => "open".into(),
                gate::GateState::Closed { server, .. } => server,
            },
            loss_reports: self.reports(),
        }
    }
}

impl RouteObserver for Ledger {
    /// Runs on the writer's thread before any session can load `next`: the
    /// gate is closed before a session can reach the new server.
    fn published(&self, _prev: &Route, next: &Route) {
        if let Some(p) = next.primary.as_ref().filter(|_| next.serving()) {
            self.serving(p);
        }
    }
}

/// Several observers of one route table, told in order.
pub struct Observers(pub Vec<Arc<dyn RouteObserver>>);

impl RouteObserver for Observers {
    fn published(&self, prev: &Route, next: &Route) {
        for o in &self.0 {
            o.published(prev, next);
        }
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
