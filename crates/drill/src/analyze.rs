//! What each switchover cost the clients, computed from the recorded
//! operations (definitions in docs/drill.md):
//!
//! * the switchover's window is from the start of the switch command to its
//!   end plus a settle time (the route moves right after the record is
//!   written; migrated sessions pay at their next statement);
//! * baseline p50: per operation kind, over successful operations that
//!   overlap no window;
//! * added latency: the largest `latency - baseline p50 of its kind` among
//!   the operations that overlap the window (failed ones too), at least 0;
//! * write-unavailable window: the longest time without a successful write
//!   completing, among the gaps between consecutive write completions that
//!   overlap the window.

use std::collections::BTreeMap;
use std::time::Duration;

use super::load::{Op, OpKind};
use super::timeline::{ms, percentile};

/// A switchover's window: [start, end] since the drill started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Window {
    pub start: Duration,
    pub end: Duration,
}

impl Window {
    fn overlaps(&self, op: &Op) -> bool {
        op.start <= self.end && op.end() >= self.start
    }
}

/// Baseline p50 latency (ms) per kind, from successful ops outside every window.
pub(crate) fn baseline_p50(ops: &[Op], windows: &[Window]) -> BTreeMap<OpKind, f64> {
    let mut by_kind: BTreeMap<OpKind, Vec<f64>> = BTreeMap::new();
    for op in ops.iter().filter(|o| o.error.is_none()) {
        if !windows.iter().any(|w| w.overlaps(op)) {
            by_kind.entry(op.kind).or_default().push(ms(op.latency));
        }
    }
    by_kind
        .into_iter()
        .filter_map(|(k, mut v)| {
            v.sort_by(f64::total_cmp);
            Some((k, percentile(&v, 0.5)?))
        })
        .collect()
}

/// Added latency (ms) of the operations overlapping `w`; 0 when none.
pub(crate) fn added_latency(ops: &[Op], w: Window, base: &BTreeMap<OpKind, f64>) -> f64 {
    ops.iter()
        .filter(|o| o.kind != OpKind::Connect && w.overlaps(o))
        .map(|o| ms(o.latency) - base.get(&o.kind).copied().unwrap_or(0.0))
        .fold(0.0, f64::max)
}

/// Sorted completion times of the acknowledged writes.
pub(crate) fn write_completions(ops: &[Op]) -> Vec<Duration> {
    let mut v: Vec<Duration> = ops.iter().filter(|o| o.wrote).map(Op::end).collect();
    v.sort_unstable();
    v
}

/// The longest gap (ms) between consecutive write completions (with the
/// drill's start and `drill_end` as bounds) that overlaps `w`.
pub(crate) fn write_gap(writes: &[Duration], w: Window, drill_end: Duration) -> f64 {
    let mut points = Vec::with_capacity(writes.len() + 2);
    points.push(Duration::ZERO);
    points.extend_from_slice(writes);
    points.push(drill_end.max(writes.last().copied().unwrap_or_default()));
    points
        .windows(2)
        .filter(|p| p[0] <= w.end && p[1] >= w.start)
        .map(|p| ms(p[1] - p[0]))
        .fold(0.0, f64::max)
}

/// Client-visible errors among the operations that overlap `w`.
pub(crate) fn errors_in(ops: &[Op], w: Window) -> u64 {
    ops.iter()
        .filter(|o| o.error.is_some() && w.overlaps(o))
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::ErrKind;

    fn op(kind: OpKind, start: u64, lat: u64, wrote: bool) -> Op {
        Op {
            kind,
            start: Duration::from_millis(start),
            latency: Duration::from_millis(lat),
            error: None,
            wrote,
        }
    }
    const W: Window = Window {
        start: Duration::from_millis(1000),
        end: Duration::from_millis(1500),
    };

    #[test]
    fn added_latency_is_over_the_baseline_of_each_kind() {
        let mut ops = vec![
            op(OpKind::Read, 0, 2, false),
            op(OpKind::Read, 10, 4, false),
            op(OpKind::Read, 20, 2, false),
            op(OpKind::Transaction, 30, 10, true),
            op(OpKind::Read, 900, 150, false), // overlaps: 148 over
            op(OpKind::Transaction, 1400, 60, true), // overlaps: 50 over
            op(OpKind::Read, 2000, 900, false), // outside
        ];
        let base = baseline_p50(&ops, &[W]);
        assert_eq!(
            (base[&OpKind::Read], base[&OpKind::Transaction]),
            (2.0, 10.0)
        );
        assert_eq!(added_latency(&ops, W, &base), 148.0);
        ops[4].error = Some(ErrKind::Timeout);
        assert_eq!(errors_in(&ops, W), 1);
        assert_eq!(added_latency(&[], W, &base), 0.0);
    }

    #[test]
    fn write_gap_spans_the_window() {
        let ms = Duration::from_millis;
        let writes = [ms(900), ms(980), ms(1700), ms(1710)];
        assert_eq!(write_gap(&writes, W, ms(3000)), 720.0);
        // no write after the window starts: the gap runs to the drill's end
        assert_eq!(write_gap(&[ms(900)], W, ms(3000)), 2100.0);
        assert_eq!(write_gap(&[], W, ms(3000)), 3000.0);
    }
}
