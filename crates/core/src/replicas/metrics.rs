//! The read-only listener's metrics in the Prometheus text format, read
//! from the router's counters at each scrape (docs/metrics.md, Read-only
//! listener). Per-replica series carry the `replica` label (the record's
//! name); replicas come and go with their records, so these are written
//! here rather than registered up front.

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use super::ReadRouter;

const P: &str = "mysql_zk_proxy_read_only_";

/// Every reason a replica may not qualify (the `reason` label).
pub const REASONS: [&str; 11] = [
    "removed",
    "stale_epoch",
    "no_primary",
    "unreachable",
    "not_replicating",
    "wrong_source",
    "io_thread_stopped",
    "sql_thread_stopped",
    "lagging",
    "draining",
    "recovering",
];

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {P}{name} {help}");
    let _ = writeln!(out, "# TYPE {P}{name} {kind}");
}

/// A label value with `\`, `"` and newlines escaped.
fn escaped(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

impl ReadRouter {
    /// Append the read-only listener's metrics to `out`.
    pub fn render_metrics(&self, out: &mut String) {
        let c = &self.counters;
        let totals: [(&str, &str, u64); 5] = [
            (
                "fallback_sessions_total",
                "Read-only sessions sent to the primary because no replica qualified.",
                c.fallback_sessions.load(Relaxed),
            ),
            (
                "refused_sessions_total",
                "Read-only sessions refused with 9021: no replica qualified and no fallback.",
                c.refused_sessions.load(Relaxed),
            ),
            (
                "invalid_records_total",
                "Replica records skipped as invalid.",
                self.set.invalid_records.load(Relaxed),
            ),
            (
                "checks_total",
                "Replica health checks run.",
                c.checks.load(Relaxed),
            ),
            (
                "check_errors_total",
                "Replica health checks that could not read the replica.",
                c.check_errors.load(Relaxed),
            ),
        ];
        for (name, help, v) in totals {
            family(out, name, "counter", help);
            let _ = writeln!(out, "{P}{name} {v}");
        }
        self.render_replicas(out);
    }

    fn render_replicas(&self, out: &mut String) {
        let view = self.view(String::new());
        type Get = fn(&super::status::ReplicaView) -> f64;
        let per: [(&str, &str, &str, Get); 8] = [
            (
                "replica_qualified",
                "gauge",
                "1 while the replica takes new read sessions, else 0.",
                |r| f64::from(u8::from(r.qualified)),
            ),
            (
                "replica_lag_seconds",
                "gauge",
                "Replica lag at the last check (GTID lag or Seconds_Behind_Master, the larger).",
                |r| r.lag_ms.unwrap_or(0) as f64 / 1000.0,
            ),
            (
                "replica_behind_transactions",
                "gauge",
                "Transactions of the primary the replica lacked at the last check.",
                |r| r.behind.unwrap_or(0) as f64,
            ),
            (
                "replica_sessions",
                "gauge",
                "Read sessions opened on the replica and still running.",
                |r| r.sessions as f64,
            ),
            (
                "replica_sessions_opened_total",
                "counter",
                "Read sessions opened on the replica.",
                |r| r.sessions_opened as f64,
            ),
            (
                "replica_causal_waits_total",
                "counter",
                "Causal waits before reads of the replica's sessions.",
                |r| r.causal_waits as f64,
            ),
            (
                "replica_causal_failures_total",
                "counter",
                "Causal waits that failed (the read got 9020).",
                |r| r.causal_failures as f64,
            ),
            (
                "replica_causal_wait_seconds_total",
                "counter",
                "Time spent in causal waits.",
                |r| r.causal_wait_seconds,
            ),
        ];
        for (name, kind, help, get) in per {
            family(out, name, kind, help);
            for r in &view.replicas {
                let _ = writeln!(
                    out,
                    "{P}{name}{{replica=\"{}\"}} {}",
                    escaped(&r.name),
                    get(r)
                );
            }
        }
        family(
            out,
            "replica_not_qualified",
            "gauge",
            "1 for the reason the replica does not qualify now, 0 for the others.",
        );
        for r in &view.replicas {
            let now = r.why_not.as_ref().map(|w| w.label());
            for reason in REASONS {
                let v = u8::from(now == Some(reason));
                let _ = writeln!(
                    out,
                    "{P}replica_not_qualified{{replica=\"{}\",reason=\"{reason}\"}} {v}",
                    escaped(&r.name)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replicas::health::NotQualified;

    #[test]
    fn every_reason_has_its_label() {
        let all = [
            NotQualified::Removed,
            NotQualified::StaleEpoch {
                record: 1,
                primary: 2,
            },
            NotQualified::NoPrimary,
            NotQualified::Unreachable {
                error: String::new(),
            },
            NotQualified::NotReplicating,
            NotQualified::WrongSource {
                source: String::new(),
                primary: String::new(),
            },
            NotQualified::IoThreadStopped,
            NotQualified::SqlThreadStopped,
            NotQualified::Lagging { lag_ms: 1 },
            NotQualified::Draining { state: "draining" },
            NotQualified::Recovering { good: 0, need: 1 },
        ];
        assert_eq!(all.map(|w| w.label()), REASONS);
        assert_eq!(escaped("a\"b\\c"), r#"a\"b\\c"#);
    }
}
