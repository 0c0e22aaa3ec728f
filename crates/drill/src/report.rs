//! The drill report: the JSON document (serde types), built from what the
//! drill collected, with its verdict.

use serde::Serialize;
use std::collections::BTreeMap;

use super::admin::LastFailover;
use super::analyze::{self, Window};
use super::load::{ErrKind, Op, OpKind};
use super::options::DrillOptions;
use super::timeline::{self, ms, spread, Bucket, Spread};
use super::verify::Verification;
use super::Collected;

/// Version of the JSON layout (bumped on incompatible changes).
pub(crate) const FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub format: u32,
    pub started: String,
    /// The `run` column of this drill's rows in `drill_writes`.
    pub run: u64,
    pub duration_s: f64,
    pub proxy: String,
    pub switcher: String,
    pub settings: Settings,
    pub operations: Operations,
    pub errors: Errors,
    /// Connections the clients lost (broken, or closed by the proxy after 9005/9006).
    pub connections_dropped: u64,
    pub switchovers: Vec<SwitchoverReport>,
    pub summary: Summary,
    /// Counter changes over the drill, `name{labels}` -> delta (admin only).
    pub proxy_metrics_delta: BTreeMap<String, f64>,
    pub verification: Option<Verification>,
    pub verification_error: Option<String>,
    pub baseline_p50_ms: BTreeMap<&'static str, f64>,
    pub timeline: Timeline,
    pub warnings: Vec<String>,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub switchovers: u32,
    pub interval_ms: f64,
    pub warmup_ms: f64,
    pub settle_ms: f64,
    pub think_ms: f64,
    pub workers: BTreeMap<&'static str, u32>,
    /// Each switch was an unplanned failover (`--unplanned`).
    pub unplanned: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Operations {
    pub total: u64,
    pub ok: u64,
    pub errors: u64,
    pub acknowledged_writes: u64,
    pub by_kind: BTreeMap<&'static str, KindStats>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KindStats {
    pub ops: u64,
    pub ok: u64,
    pub errors: u64,
    /// Latency of every operation of the kind, successful or not.
    pub latency_ms: Option<Spread>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Errors {
    pub total: u64,
    pub by_kind: Vec<ErrorCount>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorCount {
    /// `error <code>` (from the proxy or the server), `connection lost`, `timeout`.
    pub kind: String,
    pub count: u64,
    pub first_message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SwitchoverReport {
    pub index: u32,
    pub start_s: f64,
    pub end_s: f64,
    pub ok: bool,
    pub status: String,
    pub output: String,
    pub wall_ms: f64,
    /// Client-visible errors among operations overlapping the window.
    pub errors: u64,
    pub added_latency_ms: f64,
    pub write_unavailable_ms: f64,
    /// Record written in ZooKeeper (its mtime) -> new primary in the
    /// proxy's route (admin and ZooKeeper only; compares their clocks).
    pub route_switch_ms: Option<f64>,
    /// Record written -> first statement answered by the new primary.
    pub first_statement_ms: Option<f64>,
    /// The proxy's `last_failover` for this switchover (admin only).
    pub proxy: Option<LastFailover>,
    /// `--unplanned`: the proxy's loss report next to the drill's ground truth.
    pub loss: Option<super::unplanned::FailoverLoss>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub switchovers_done: u32,
    pub switchovers_failed: u32,
    pub added_latency_ms: Option<Spread>,
    pub write_unavailable_ms: Option<Spread>,
    /// Record written in ZooKeeper -> new primary in the proxy's route.
    pub route_switch_ms: Option<Spread>,
    /// Record written -> first statement answered by the new primary.
    pub first_statement_ms: Option<Spread>,
    pub sessions_migrated: u64,
    pub sessions_closed: u64,
    pub transactions_aborted: u64,
    pub statements_held: u64,
    /// The proxy's own error packets, by code (admin only).
    pub proxy_errors: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    pub bucket_ms: f64,
    pub buckets: Vec<Bucket>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub pass: bool,
    pub failures: Vec<String>,
}

impl Verdict {
    /// Whether the drill failed with a failure line that `is` picks out.
    pub fn failed_for(&self, is: impl Fn(&str) -> bool) -> bool {
        !self.pass && self.failures.iter().any(|f| is(f))
    }
}

/// Work out the report.
pub fn build(o: &DrillOptions, switcher: &str, c: Collected) -> Report {
    let ops: Vec<Op> = c
        .workers
        .iter()
        .flat_map(|w| w.ops.iter().copied())
        .collect();
    let windows: Vec<Window> = c
        .switches
        .iter()
        .map(|s| Window {
            start: s.start,
            end: s.end + o.settle,
        })
        .collect();
    let base = analyze::baseline_p50(&ops, &windows);
    let writes = analyze::write_completions(&ops);
    let switchovers: Vec<SwitchoverReport> = c
        .switches
        .iter()
        .zip(&windows)
        .enumerate()
        .map(|(i, (s, &w))| SwitchoverReport {
            index: i as u32 + 1,
            start_s: s.start.as_secs_f64(),
            end_s: s.end.as_secs_f64(),
            ok: s.run.ok,
            status: s.run.status.clone(),
            output: s.run.output.clone(),
            wall_ms: ms(s.run.wall),
            errors: analyze::errors_in(&ops, w),
            added_latency_ms: analyze::added_latency(&ops, w, &base),
            write_unavailable_ms: analyze::write_gap(&writes, w, c.duration),
            route_switch_ms: since_written(s, |f| f.swapped_after_ms),
            first_statement_ms: since_written(s, |f| f.first_statement_after_ms),
            proxy: s.failover.clone(),
            loss: s.loss.clone(),
        })
        .collect();
    let errors = errors(&c);
    let summary = summary_of(&switchovers, &c.metrics_delta);
    let (verification, verification_error) = match c.verification {
        Ok(v) => (Some(v), None),
        Err(e) => (None, Some(e)),
    };
    let dropped = c.workers.iter().map(|w| w.dropped).sum();
    let mut r = Report {
        format: FORMAT,
        started: humantime::format_rfc3339_millis(c.started).to_string(),
        run: c.run,
        duration_s: c.duration.as_secs_f64(),
        proxy: format!("{}:{}", o.proxy.0, o.proxy.1),
        switcher: switcher.to_owned(),
        settings: Settings {
            switchovers: o.switchovers,
            interval_ms: ms(o.interval),
            warmup_ms: ms(o.warmup),
            settle_ms: ms(o.settle),
            think_ms: ms(o.think),
            workers: o.workers.iter().map(|(k, n)| (k.label(), *n)).collect(),
            unplanned: o.unplanned,
        },
        operations: operations(&ops),
        errors,
        connections_dropped: dropped,
        switchovers,
        summary,
        proxy_metrics_delta: c.metrics_delta,
        verification,
        verification_error,
        baseline_p50_ms: base.iter().map(|(k, v)| (k.label(), *v)).collect(),
        timeline: Timeline {
            bucket_ms: ms(timeline::BUCKET),
            buckets: timeline::buckets(&ops, c.duration),
        },
        warnings: c.warnings,
        verdict: Verdict {
            pass: false,
            failures: Vec::new(),
        },
    };
    r.verdict = verdict(&r);
    r
}

fn since_written(s: &super::Switched, after: fn(&LastFailover) -> Option<f64>) -> Option<f64> {
    let f = s.failover.as_ref()?;
    super::admin::since_written(f, s.record_written?, after(f))
}

fn operations(ops: &[Op]) -> Operations {
    let mut by_kind: BTreeMap<OpKind, (u64, u64, Vec<f64>)> = BTreeMap::new();
    for op in ops {
        let e = by_kind.entry(op.kind).or_default();
        e.0 += 1;
        e.1 += u64::from(op.error.is_some());
        e.2.push(ms(op.latency));
    }
    let real = ops.iter().filter(|o| o.kind != OpKind::Connect);
    Operations {
        total: real.clone().count() as u64,
        ok: real.filter(|o| o.error.is_none()).count() as u64,
        errors: ops.iter().filter(|o| o.error.is_some()).count() as u64,
        acknowledged_writes: ops.iter().filter(|o| o.wrote).count() as u64,
        by_kind: by_kind
            .into_iter()
            .map(|(k, (n, e, lat))| {
                let stats = KindStats {
                    ops: n,
                    ok: n - e,
                    errors: e,
                    latency_ms: spread(lat),
                };
                (k.label(), stats)
            })
            .collect(),
    }
}

fn errors(c: &Collected) -> Errors {
    let mut counts: BTreeMap<ErrKind, u64> = BTreeMap::new();
    let mut samples: BTreeMap<ErrKind, (std::time::Duration, String)> = BTreeMap::new();
    for w in &c.workers {
        for k in w.ops.iter().filter_map(|o| o.error) {
            *counts.entry(k).or_default() += 1;
        }
        for (k, m) in &w.samples {
            let first = samples.entry(*k).or_insert_with(|| m.clone());
            if m.0 < first.0 {
                *first = m.clone();
            }
        }
    }
    Errors {
        total: counts.values().sum(),
        by_kind: counts
            .into_iter()
            .map(|(k, count)| ErrorCount {
                kind: k.label(),
                count,
                first_message: samples.remove(&k).map(|(_, m)| m).unwrap_or_default(),
            })
            .collect(),
    }
}

/// A counter's change over the drill, summed over its label sets.
fn counter(delta: &BTreeMap<String, f64>, name: &str) -> u64 {
    delta
        .iter()
        .filter(|(k, _)| k.as_str() == name || k.starts_with(&format!("{name}{{")))
        .map(|(_, v)| *v as u64)
        .sum()
}

fn summary_of(sw: &[SwitchoverReport], delta: &BTreeMap<String, f64>) -> Summary {
    let done: Vec<&SwitchoverReport> = sw.iter().filter(|s| s.ok).collect();
    let errors_prefix = "mysql_zk_proxy_proxy_errors_total{code=\"";
    Summary {
        switchovers_done: done.len() as u32,
        switchovers_failed: (sw.len() - done.len()) as u32,
        added_latency_ms: spread(done.iter().map(|s| s.added_latency_ms).collect()),
        write_unavailable_ms: spread(done.iter().map(|s| s.write_unavailable_ms).collect()),
        route_switch_ms: spread(done.iter().filter_map(|s| s.route_switch_ms).collect()),
        first_statement_ms: spread(done.iter().filter_map(|s| s.first_statement_ms).collect()),
        sessions_migrated: counter(delta, "mysql_zk_proxy_sessions_migrated_total"),
        sessions_closed: counter(delta, "mysql_zk_proxy_sessions_closed_by_failover_total"),
        transactions_aborted: counter(
            delta,
            "mysql_zk_proxy_transactions_aborted_by_failover_total",
        ),
        statements_held: counter(
            delta,
            "mysql_zk_proxy_statement_hold_duration_seconds_count",
        ),
        proxy_errors: delta
            .iter()
            .filter_map(|(k, v)| {
                let code = k.strip_prefix(errors_prefix)?.strip_suffix("\"}")?;
                Some((code.to_owned(), *v as u64))
            })
            .collect(),
    }
}

fn verdict(r: &Report) -> Verdict {
    if r.settings.unplanned {
        return super::unplanned::verdict(r);
    }
    let mut f = Vec::new();
    let s = &r.summary;
    if s.switchovers_done < r.settings.switchovers {
        f.push(format!(
            "{} of {} switchovers done",
            s.switchovers_done, r.settings.switchovers
        ));
    }
    if r.errors.total > 0 {
        f.push(format!("{} client-visible errors", r.errors.total));
    }
    if r.connections_dropped > 0 {
        f.push(format!("{} connections dropped", r.connections_dropped));
    }
    // a planned switchover must not lose an acknowledged commit: the
    // proxy's loss report says 0 (when it could read the new primary)
    for sw in &r.switchovers {
        if let Some(l) = sw.loss.as_ref().filter(|l| l.proxy_missing.is_some()) {
            if l.proxy_missing != Some(0) || !l.agree {
                let n = l.proxy_missing.unwrap_or(0);
                f.push(format!(
                    "switchover {}: the proxy reported {n} acknowledged writes missing",
                    sw.index
                ));
            }
        }
    }
    match (&r.verification, &r.verification_error) {
        (Some(v), _) if v.lost > 0 => f.push(format!("{} acknowledged writes lost", v.lost)),
        (Some(v), _) if v.acknowledged == 0 => f.push("no write was acknowledged".into()),
        (Some(_), _) => {}
        (None, e) => f.push(format!("not verified: {}", e.as_deref().unwrap_or("?"))),
    }
    Verdict {
        pass: f.is_empty(),
        failures: f,
    }
}
