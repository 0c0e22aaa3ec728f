//! The human summary of a drill report, printed at the end of `drill`.

use std::fmt::Write;

use super::report::Report;
use super::timeline::Spread;

fn fmt_spread(s: &Option<Spread>) -> String {
    s.map_or("-".into(), |s| {
        format!("p50 {:.1} / p99 {:.1} / max {:.1} ms", s.p50, s.p99, s.max)
    })
}

/// The human summary.
pub fn summary(r: &Report) -> String {
    let mut o = String::new();
    let s = &r.summary;
    let _ = writeln!(
        o,
        "drill of {} through {} ({:.1} s, run {})",
        r.started, r.proxy, r.duration_s, r.run
    );
    let _ = writeln!(
        o,
        "  switchovers        {} done, {} failed ({})",
        s.switchovers_done, s.switchovers_failed, r.switcher
    );
    let ops = &r.operations;
    let _ = writeln!(
        o,
        "  operations         {} ({} ok), acknowledged writes {}",
        ops.total, ops.ok, ops.acknowledged_writes
    );
    let _ = writeln!(o, "  client errors      {}", r.errors.total);
    for e in &r.errors.by_kind {
        let _ = writeln!(
            o,
            "    {:<16} {:>6}  e.g. {}",
            e.kind, e.count, e.first_message
        );
    }
    let _ = writeln!(o, "  connections lost   {}", r.connections_dropped);
    for (label, spread, what) in [
        ("added latency    ", &s.added_latency_ms, ""),
        ("write unavailable", &s.write_unavailable_ms, ""),
        (
            "route switch     ",
            &s.route_switch_ms,
            " (record written -> proxy route)",
        ),
        (
            "first statement  ",
            &s.first_statement_ms,
            " (record written -> answered)",
        ),
    ] {
        let _ = writeln!(o, "  {label}  {}{what}", fmt_spread(spread));
    }
    let _ = writeln!(
        o,
        "  sessions           migrated {}, closed {}, transactions aborted {}, statements held {}",
        s.sessions_migrated, s.sessions_closed, s.transactions_aborted, s.statements_held
    );
    match (&r.verification, &r.verification_error) {
        (Some(v), _) => {
            let _ = writeln!(
                o,
                "  verification       {} of {} acknowledged writes on the final primary {}, lost {}{}",
                v.found,
                v.acknowledged,
                v.primary,
                v.lost,
                if v.lost_seqs.is_empty() { String::new() } else { format!(" (seq {:?})", v.lost_seqs) }
            );
        }
        (None, e) => {
            let _ = writeln!(
                o,
                "  verification       not done: {}",
                e.as_deref().unwrap_or("?")
            );
        }
    }
    for (i, l) in r
        .switchovers
        .iter()
        .filter_map(|s| Some((s.index, s.loss.as_ref()?)))
    {
        let missing = l.proxy_missing.map_or("?".into(), |m| m.to_string());
        let agree = if l.agree { "agree" } else { "DIFFER" };
        let _ = writeln!(
            o,
            "  failover {i:<3}       proxy reports {missing} missing, drill observed {} lost: {agree}",
            l.observed_missing
        );
    }
    for w in &r.warnings {
        let _ = writeln!(o, "  warning            {w}");
    }
    let verdict = if r.verdict.pass {
        "PASS".to_owned()
    } else {
        format!("FAIL: {}", r.verdict.failures.join("; "))
    };
    let _ = writeln!(o, "  verdict            {verdict}");
    o
}
