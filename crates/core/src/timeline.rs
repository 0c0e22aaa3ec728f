//! The last failover's timeline, for /status and the logs: when the record
//! naming the new primary was seen, when the primary was verified and swapped
//! into the route, when a statement was first answered by it, and what the
//! failover did to sessions. Fed off the data path: the route table tells it
//! of every publish before any session can see the new route (so a session
//! that migrates at once is counted); a session marks the first answer.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::metrics::Stats;
use crate::routing::{Primary, Route, RouteObserver};

/// What /status shows of the last failover (also as the drill reads it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TimelineView {
    pub from: Option<String>,
    pub to: String,
    pub epoch: u64,
    #[serde(with = "crate::time::rfc3339")]
    pub record_seen: SystemTime,
    /// Record seen -> new primary in the route (verification included).
    pub swapped_after_ms: Option<f64>,
    /// Record seen -> first statement answered by the new primary through this proxy.
    pub first_statement_after_ms: Option<f64>,
    pub sessions_migrated: u64,
    pub sessions_closed: u64,
    pub transactions_aborted: u64,
    pub statements_held: u64,
}

#[derive(Debug)]
struct Current {
    view: TimelineView,
    seen: Instant,
    /// Counters when the record was seen (the view shows the difference).
    base: [u64; 4],
}

/// The recorder shared by the route table (as its observer), sessions and /status.
#[derive(Debug)]
pub struct Timeline {
    current: Mutex<Option<Current>>,
    /// Epoch whose first answer is still awaited (0: none).
    awaiting: AtomicU64,
    /// Highest epoch any session got an answer on. The swap is recorded
    /// before sessions can see the route, but a backend on that epoch may
    /// already be serving (a republished record), so both orders count.
    answered_epoch: AtomicU64,
    /// The last primary any route named (a failover is a move away from it).
    last_primary: Mutex<Option<Primary>>,
    stats: Arc<Stats>,
}

impl Timeline {
    pub fn new(stats: Arc<Stats>) -> Arc<Timeline> {
        Arc::new(Timeline {
            current: Mutex::new(None),
            awaiting: AtomicU64::new(0),
            answered_epoch: AtomicU64::new(0),
            last_primary: Mutex::new(None),
            stats,
        })
    }

    fn counters(&self) -> [u64; 4] {
        let s = &self.stats;
        [
            s.sessions_migrated.load(Relaxed),
            s.sessions_closed_by_failover.load(Relaxed),
            s.transactions_aborted.load(Relaxed),
            s.ops.statement_hold.count(),
        ]
    }

    /// The record naming `to` was seen (it may still be verified).
    pub fn record_seen(&self, from: Option<&Primary>, to: &Primary) {
        let mut cur = self.current.lock().expect("timeline lock");
        if cur
            .as_ref()
            .is_some_and(|c| c.view.epoch == to.epoch && c.view.to == to.address())
        {
            return;
        }
        tracing::info!(phase = "record_seen", to = %to, "failover: record naming a new primary seen");
        *cur = Some(Current {
            view: TimelineView {
                from: from.map(|p| p.to_string()),
                to: to.address(),
                epoch: to.epoch,
                record_seen: SystemTime::now(),
                swapped_after_ms: None,
                first_statement_after_ms: None,
                sessions_migrated: 0,
                sessions_closed: 0,
                transactions_aborted: 0,
                statements_held: 0,
            },
            seen: Instant::now(),
            base: self.counters(),
        });
    }

    /// `to` is now the route's primary.
    pub fn swapped(&self, from: Option<&Primary>, to: &Primary) {
        self.record_seen(from, to);
        let mut cur = self.current.lock().expect("timeline lock");
        let Some(c) = cur.as_mut().filter(|c| c.view.swapped_after_ms.is_none()) else {
            return;
        };
        let ms = c.seen.elapsed().as_secs_f64() * 1000.0;
        c.view.swapped_after_ms = Some(ms);
        tracing::info!(phase = "swapped", to = %to, after_ms = ms, "failover: new primary in the route");
        // SeqCst here and in `answered`: one of the two sees the other
        if self.answered_epoch.load(SeqCst) >= to.epoch.max(1) {
            // a session was quicker than this watcher: answered by now
            c.view.first_statement_after_ms = Some(ms);
            tracing::info!(
                phase = "first_statement",
                epoch = to.epoch,
                after_ms = ms,
                "failover: first statement answered by the new primary"
            );
        } else {
            self.awaiting.store(to.epoch.max(1), SeqCst);
        }
    }

    /// A session's first reply from a backend on `epoch` completed.
    pub fn answered(&self, epoch: u64) {
        self.answered_epoch.fetch_max(epoch.max(1), SeqCst);
        if self.awaiting.load(SeqCst) != epoch.max(1)
            || self
                .awaiting
                .compare_exchange(epoch.max(1), 0, Relaxed, Relaxed)
                .is_err()
        {
            return;
        }
        let mut cur = self.current.lock().expect("timeline lock");
        if let Some(c) = cur.as_mut() {
            let ms = c.seen.elapsed().as_secs_f64() * 1000.0;
            c.view.first_statement_after_ms = Some(ms);
            tracing::info!(
                phase = "first_statement",
                epoch,
                after_ms = ms,
                "failover: first statement answered by the new primary"
            );
        }
    }

    /// The last timeline, with session counts since its record was seen.
    pub fn last(&self) -> Option<TimelineView> {
        let cur = self.current.lock().expect("timeline lock");
        let c = cur.as_ref()?;
        let now = self.counters();
        let mut v = c.view.clone();
        v.sessions_migrated = now[0] - c.base[0];
        v.sessions_closed = now[1] - c.base[1];
        v.transactions_aborted = now[2] - c.base[2];
        v.statements_held = now[3] - c.base[3];
        Some(v)
    }
}

/// The control-plane phases, from each published route (called with the
/// table's writer lock held, before the route is visible to sessions).
impl RouteObserver for Timeline {
    fn published(&self, _prev: &Route, next: &Route) {
        let mut last = self.last_primary.lock().expect("timeline lock");
        let moved = |p: &Primary| last.as_ref().is_none_or(|l| l.address() != p.address());
        if let Some(p) = next.pending.as_ref().filter(|p| last.is_some() && moved(p)) {
            self.record_seen(last.as_ref(), p);
        }
        if let Some(p) = next.primary.as_ref() {
            if moved(p) && last.is_some() {
                self.swapped(last.as_ref(), p);
            }
            *last = Some(p.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn primary(port: u16, epoch: u64) -> Primary {
        Primary::local(port, epoch)
    }

    fn route(primary: Option<Primary>, pending: Option<Primary>) -> Route {
        Route {
            primary,
            pending,
            ..Route::empty()
        }
    }

    #[test]
    fn a_session_that_migrates_as_soon_as_the_route_is_published_is_counted() {
        let stats = Stats::new();
        let t = Timeline::new(stats.clone());
        let table = crate::routing::RouteTable::observed(t.clone());
        table.publish(|_| route(Some(primary(1, 1)), None));
        assert!(t.last().is_none(), "the first primary is not a failover");
        table.publish(|_| route(None, Some(primary(2, 2))));
        table.publish(|_| route(Some(primary(2, 2)), None));
        // a session sees the new route and migrates before anything else runs
        stats.sessions_migrated.fetch_add(1, Relaxed);
        let v = t.last().expect("the timeline exists once publish returns");
        assert_eq!((v.to.as_str(), v.epoch), ("127.0.0.1:2", 2));
        assert_eq!(v.from.as_deref(), Some("127.0.0.1:1 (epoch 1)"));
        assert!(v.swapped_after_ms.is_some());
        assert_eq!(v.sessions_migrated, 1);
    }

    #[test]
    fn an_answer_before_the_swap_is_recorded_counts() {
        let t = Timeline::new(Stats::new());
        let (old, new) = (primary(1, 1), primary(2, 2));
        t.record_seen(Some(&old), &new);
        t.answered(2); // a session on the new primary, quicker than the watcher
        t.swapped(Some(&old), &new);
        let v = t.last().expect("timeline");
        assert_eq!(v.first_statement_after_ms, v.swapped_after_ms);
        assert!(v.first_statement_after_ms.is_some());
    }

    #[test]
    fn an_answer_after_the_swap_is_recorded_once() {
        let t = Timeline::new(Stats::new());
        let (old, new) = (primary(1, 1), primary(2, 2));
        t.swapped(Some(&old), &new);
        assert_eq!(t.last().unwrap().first_statement_after_ms, None);
        t.answered(1); // an old session: not the new primary
        assert_eq!(t.last().unwrap().first_statement_after_ms, None);
        t.answered(2);
        let first = t.last().unwrap().first_statement_after_ms;
        assert!(first.is_some());
        t.answered(2);
        assert_eq!(t.last().unwrap().first_statement_after_ms, first);
    }
}
