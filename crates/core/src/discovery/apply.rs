//! Applying what was read at `primary_path` to the routing table: ordering by
//! [`Ordering`], no-op detection, "znode absent = no primary", and the log
//! line, counters and status that go with each outcome. With verification on,
//! a new primary is published as the route's `pending` one; the verifier
//! task (`promote`) makes it the `primary` once it is writable.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::metrics::{IgnoredRecord, Stats};
use crate::routing::{Ordering, Primary, RecordState, Route, RouteTable};

use super::record::{parse_record, Record};
use super::status::StatusTx;

/// What to do with an observation, decided from the current route alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Publish a route with these values.
    Publish {
        primary: Option<Primary>,
        state: RecordState,
        high_water: Option<Ordering>,
    },
    /// Same ordering, primary and state: nothing to publish.
    Unchanged,
    /// Ordered below the route's high water: stale, ignored.
    Stale { got: Ordering, high_water: Ordering },
}

/// Decide on a parsed record found with the znode's `mzxid`.
pub(crate) fn decide_record(current: &Route, record: Record, mzxid: i64) -> Decision {
    let ordering = match record.epoch {
        Some(epoch) => Ordering::Epoch(epoch),
        None => Ordering::Mzxid(mzxid),
    };
    if let Some(high_water) = current.high_water {
        if ordering < high_water {
            return Decision::Stale {
                got: ordering,
                high_water,
            };
        }
    }
    let primary = Primary {
        host: record.host,
        port: record.port,
        epoch: record.epoch.unwrap_or(mzxid as u64),
        server_id: record.server_id,
        server_uuid: record.server_uuid,
    };
    // The candidate being verified counts as the current primary.
    let known = current.primary.as_ref().or(current.pending.as_ref());
    let same = current.high_water == Some(ordering)
        && known == Some(&primary)
        && current.state == record.state;
    if same {
        return Decision::Unchanged;
    }
    Decision::Publish {
        primary: Some(primary),
        state: record.state,
        high_water: Some(ordering),
    }
}

/// Decide on "the znode does not exist": no primary, high water kept.
pub(crate) fn decide_absent(current: &Route) -> Decision {
    if current.primary.is_none() && current.pending.is_none() {
        return Decision::Unchanged;
    }
    Decision::Publish {
        primary: None,
        state: RecordState::Serving,
        high_water: current.high_water,
    }
}

/// Where observations go: the route table, the counters and the status.
pub(crate) struct Publisher {
    pub(crate) table: Arc<RouteTable>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) status: StatusTx,
    /// A new primary must be verified (pending) before it is routed to.
    pub(crate) verify: bool,
}

impl Publisher {
    /// The znode holds `data`, last modified at `mzxid`.
    pub(crate) fn data(&self, data: &[u8], mzxid: i64) {
        let record = match parse_record(data) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    raw = %String::from_utf8_lossy(&data[..data.len().min(256)]),
                    "primary record unparseable; keeping the current route"
                );
                self.stats.record_ignored(IgnoredRecord::Unparseable);
                self.status.set_record(Some(data), Some(e.to_string()));
                return;
            }
        };
        let decision = decide_record(&self.table.current(), record, mzxid);
        self.apply(Some(data), decision);
    }

    /// The znode does not exist.
    pub(crate) fn absent(&self) {
        let decision = decide_absent(&self.table.current());
        self.apply(None, decision);
    }

    fn apply(&self, raw: Option<&[u8]>, decision: Decision) {
        match decision {
            Decision::Unchanged => {
                tracing::debug!("primary record unchanged");
                self.status.set_record(raw, None);
            }
            Decision::Stale { got, high_water } => {
                tracing::warn!(
                    record = ?got,
                    high_water = ?high_water,
                    "primary record ordered below the current high water; ignored (stale)"
                );
                self.stats.record_ignored(IgnoredRecord::Stale);
                let why = format!("stale record: {got:?} is below the high water {high_water:?}");
                self.status.set_record(raw, Some(why));
            }
            Decision::Publish {
                primary,
                state,
                high_water,
            } => {
                // Counter and status first: whoever sees the new route sees them too.
                self.stats.route_changes.fetch_add(1, Relaxed);
                self.status.set_record(raw, None);
                let old = self.table.current();
                let new = self.table.publish(|prev| {
                    let (primary, pending) = self.split(prev, primary, state);
                    Route {
                        primary,
                        pending,
                        state,
                        high_water,
                        ..prev.clone()
                    }
                });
                log_change(&old, &new);
            }
        }
    }

    /// `(primary, pending)` for a published record: a server other than the
    /// verified one waits for verification when that is on. The verified
    /// server under a new epoch stays routed, as its sessions keep their
    /// backends and a route with no primary meanwhile would abort their
    /// transactions: a `draining` record for its address (a switchover's
    /// first step; an identity claim it adds is not checked, as no new work
    /// goes to a draining route), or a serving one with the same claims.
    fn split(
        &self,
        prev: &Route,
        primary: Option<Primary>,
        state: RecordState,
    ) -> (Option<Primary>, Option<Primary>) {
        let verified = |p: &Primary| {
            prev.primary.as_ref().is_some_and(|v| {
                v.same_server(p) && (state == RecordState::Draining || v.same_claims(p))
            })
        };
        match primary {
            Some(p) if self.verify && !verified(&p) => (None, Some(p)),
            primary => (primary, None),
        }
    }

    /// No usable ZooKeeper session for `zookeeper.fail_closed_after`: stop
    /// routing (high water kept) until the record is read again.
    pub(crate) fn fail_closed(&self, why: String) {
        tracing::error!(reason = %why, "routing stopped: no primary until ZooKeeper is back");
        self.status.set_fail_closed(Some(why));
        let old = self.table.current();
        let new = self.table.update(|prev| {
            (prev.primary.is_some() || prev.pending.is_some()).then(|| Route {
                primary: None,
                pending: None,
                ..prev.clone()
            })
        });
        if let Some(new) = new {
            self.stats.route_changes.fetch_add(1, Relaxed);
            log_change(&old, &new);
        }
    }
}

fn log_change(old: &Route, new: &Route) {
    let show = |r: &Route| match (&r.primary, &r.pending) {
        (Some(p), _) => format!("{} {:?}", p.address(), r.state),
        (None, Some(p)) => format!("none (verifying {} epoch {})", p.address(), p.epoch),
        (None, None) => "none".to_owned(),
    };
    if let Some(p) = &new.pending {
        tracing::info!(phase = "record_seen", primary = %p.address(), epoch = p.epoch,
            generation = new.generation, "new primary record seen; verifying it before routing");
    }
    tracing::info!(
        epoch = new.primary.as_ref().map(|p| p.epoch),
        high_water = ?new.high_water,
        generation = new.generation,
        "primary changed: {} -> {}",
        show(old),
        show(new),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(port: u16, epoch: Option<u64>) -> Record {
        Record {
            host: "10.0.0.5".into(),
            port,
            epoch,
            server_id: None,
            server_uuid: None,
            state: RecordState::Serving,
        }
    }

    fn route_after(d: Decision) -> Route {
        match d {
            Decision::Publish {
                primary,
                state,
                high_water,
            } => Route {
                primary,
                state,
                high_water,
                ..Route::empty()
            },
            other => panic!("expected publish, got {other:?}"),
        }
    }

    #[test]
    fn first_record_is_published_with_its_epoch() {
        let r = route_after(decide_record(&Route::empty(), rec(3306, Some(42)), 7));
        assert_eq!(r.high_water, Some(Ordering::Epoch(42)));
        assert_eq!(r.primary.unwrap().epoch, 42);
    }

    #[test]
    fn lower_epoch_is_stale_equal_is_noop_higher_applies() {
        let cur = route_after(decide_record(&Route::empty(), rec(3306, Some(5)), 1));
        assert_eq!(
            decide_record(&cur, rec(3307, Some(4)), 99),
            Decision::Stale {
                got: Ordering::Epoch(4),
                high_water: Ordering::Epoch(5)
            }
        );
        assert_eq!(
            decide_record(&cur, rec(3306, Some(5)), 99),
            Decision::Unchanged
        );
        let moved = route_after(decide_record(&cur, rec(3307, Some(5)), 99));
        assert_eq!(moved.primary.unwrap().port, 3307);
        let up = route_after(decide_record(&cur, rec(3306, Some(6)), 99));
        assert_eq!(up.high_water, Some(Ordering::Epoch(6)));
    }

    #[test]
    fn state_change_at_equal_epoch_is_published() {
        let cur = route_after(decide_record(&Route::empty(), rec(3306, Some(5)), 1));
        let mut draining = rec(3306, Some(5));
        draining.state = RecordState::Draining;
        assert_eq!(
            route_after(decide_record(&cur, draining, 2)).state,
            RecordState::Draining
        );
    }

    #[test]
    fn plain_records_order_by_mzxid_below_any_epoch() {
        let cur = route_after(decide_record(&Route::empty(), rec(3306, None), 100));
        assert_eq!(cur.primary.as_ref().unwrap().epoch, 100);
        assert_eq!(
            decide_record(&cur, rec(3306, None), 100),
            Decision::Unchanged
        );
        assert!(matches!(
            decide_record(&cur, rec(3307, None), 90),
            Decision::Stale { .. }
        ));
        let epoch = route_after(decide_record(&cur, rec(3307, Some(0)), 101));
        assert!(matches!(
            decide_record(&epoch, rec(3306, None), 1 << 40),
            Decision::Stale { .. }
        ));
    }

    #[test]
    fn absent_keeps_high_water_and_blocks_lower_recreation() {
        let cur = route_after(decide_record(&Route::empty(), rec(3306, Some(9)), 1));
        let gone = route_after(decide_absent(&cur));
        assert!(gone.primary.is_none());
        assert_eq!(gone.high_water, Some(Ordering::Epoch(9)));
        assert_eq!(decide_absent(&gone), Decision::Unchanged);
        assert!(matches!(
            decide_record(&gone, rec(3306, Some(8)), 5),
            Decision::Stale { .. }
        ));
        assert!(gone_then(&gone, 9).primary.is_some());
    }

    fn gone_then(gone: &Route, epoch: u64) -> Route {
        route_after(decide_record(gone, rec(3306, Some(epoch)), 5))
    }

    #[test]
    fn pending_candidate_counts_as_known() {
        let mut cur = route_after(decide_record(&Route::empty(), rec(3306, Some(5)), 1));
        cur.pending = cur.primary.take();
        assert_eq!(
            decide_record(&cur, rec(3306, Some(5)), 2),
            Decision::Unchanged
        );
        assert!(matches!(
            decide_absent(&cur),
            Decision::Publish { primary: None, .. }
        ));
    }

    fn publisher(verify: bool) -> Publisher {
        Publisher {
            table: Arc::new(RouteTable::new()),
            stats: Stats::new(),
            status: StatusTx::new(
                tokio::sync::watch::channel(super::super::DiscoveryStatus::starting()).0,
            ),
            verify,
        }
    }

    #[test]
    fn with_verification_a_new_primary_is_pending_a_verified_one_stays() {
        let p = publisher(true);
        p.data(br#"{"host":"10.0.0.5","port":3306,"epoch":5}"#, 1);
        let r = p.table.current();
        assert!(r.primary.is_none());
        assert_eq!(r.pending.as_ref().unwrap().epoch, 5);
        // Verified (what the promote task does), then a draining record at the same epoch.
        p.table.publish(|prev| Route {
            primary: prev.pending.clone(),
            pending: None,
            ..prev.clone()
        });
        p.data(
            br#"{"host":"10.0.0.5","port":3306,"epoch":5,"state":"draining"}"#,
            2,
        );
        let r = p.table.current();
        assert_eq!(
            (r.primary.is_some(), r.state),
            (true, RecordState::Draining)
        );
        p.fail_closed("test".into());
        let r = p.table.current();
        assert!(r.primary.is_none() && r.pending.is_none());
        assert_eq!(r.high_water, Some(Ordering::Epoch(5)));
        let unverified = publisher(false);
        unverified.data(b"10.0.0.5:3306", 7);
        assert!(unverified.table.current().primary.is_some());
    }

    /// A publisher whose first record (`first`) was verified.
    fn verified(first: &[u8]) -> Publisher {
        let p = publisher(true);
        p.data(first, 1);
        p.table.publish(|prev| Route {
            primary: prev.pending.clone(),
            pending: None,
            ..prev.clone()
        });
        p
    }

    /// (the routed primary's epoch, the pending one's)
    fn routed(p: &Publisher) -> (Option<u64>, Option<u64>) {
        let r = p.table.current();
        (
            r.primary.as_ref().map(|p| p.epoch),
            r.pending.as_ref().map(|p| p.epoch),
        )
    }

    #[test]
    fn with_verification_the_verified_server_under_a_new_epoch_stays_routed() {
        let p = verified(br#"{"host":"10.0.0.5","port":3306,"epoch":5}"#);
        // a switchover's first step: the same server, draining, epoch + 1,
        // with the server_id the switchover read from it
        p.data(
            br#"{"host":"10.0.0.5","port":3306,"epoch":6,"server_id":1,"state":"draining"}"#,
            2,
        );
        assert_eq!(routed(&p), (Some(6), None));
        assert_eq!(p.table.current().state, RecordState::Draining);
        // rolled back: serving again, the same claims
        p.data(
            br#"{"host":"10.0.0.5","port":3306,"epoch":7,"server_id":1}"#,
            3,
        );
        assert_eq!(routed(&p), (Some(7), None));
        // the same address claiming another identity is a new server
        p.data(
            br#"{"host":"10.0.0.5","port":3306,"epoch":8,"server_id":2}"#,
            4,
        );
        assert_eq!(routed(&p), (None, Some(8)));
    }

    #[test]
    fn with_verification_a_serving_record_adding_a_claim_is_checked() {
        let p = verified(br#"{"host":"10.0.0.5","port":3306,"epoch":5}"#);
        p.data(
            br#"{"host":"10.0.0.5","port":3306,"epoch":6,"server_id":3}"#,
            2,
        );
        assert_eq!(routed(&p), (None, Some(6)));
    }

    #[test]
    fn absent_at_start_publishes_nothing() {
        assert_eq!(decide_absent(&Route::empty()), Decision::Unchanged);
    }
}
