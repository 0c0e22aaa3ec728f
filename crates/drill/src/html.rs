//! The drill report as one self-contained HTML page: summary tables and
//! inline SVG charts (throughput, p99 latency, errors per 100 ms) with a
//! band for each switchover. No script, no external CSS or fonts.

use std::fmt::Write;

use super::report::Report;
use super::timeline::Spread;

const W: f64 = 1180.0;
const H: f64 = 190.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 26.0;

const STYLE: &str = "body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1240px}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:26px 0 8px}\
.meta{color:#666}.pass,.fail{display:inline-block;padding:3px 10px;border-radius:4px;color:#fff;font-weight:600}\
.pass{background:#2e7d32}.fail{background:#c62828}\
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right;vertical-align:top}\
th{background:#f4f4f4}td.l,th.l{text-align:left}pre{margin:0;font-size:12px;white-space:pre-wrap;text-align:left}\
svg{display:block;margin:4px 0 10px}svg text{font:11px system-ui,sans-serif;fill:#555}.cap{font-weight:600;color:#333;margin-top:12px}";

/// Escape text for HTML.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn fmt_spread(s: &Option<Spread>) -> [String; 3] {
    match s {
        Some(s) => [s.p50, s.p99, s.max].map(|v| format!("{v:.1}")),
        None => ["-", "-", "-"].map(String::from),
    }
}

/// The whole page.
pub fn page(r: &Report) -> String {
    let mut o = String::new();
    let _ = write!(o, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>mysql-zk-proxy drill {}</title><style>{STYLE}</style></head><body>", esc(&r.started));
    let _ = write!(o, "<h1>mysql-zk-proxy drill</h1><div class=\"meta\">{} &middot; proxy {} &middot; {:.1} s &middot; run {} &middot; switcher <code>{}</code></div>",
        esc(&r.started), esc(&r.proxy), r.duration_s, r.run, esc(&r.switcher));
    let (class, word) = if r.verdict.pass {
        ("pass", "PASS")
    } else {
        ("fail", "FAIL")
    };
    let _ = write!(
        o,
        "<p><span class=\"{class}\">{word}</span> {}</p>",
        esc(&r.verdict.failures.join("; "))
    );
    o.push_str(&summary_table(r));
    o.push_str(&charts(r));
    o.push_str(&switchover_table(r));
    o.push_str(&crate::unplanned::html::loss_table(r));
    o.push_str(&errors_table(r));
    o.push_str(&operations_table(r));
    o.push_str("</body></html>\n");
    o
}

fn summary_table(r: &Report) -> String {
    let s = &r.summary;
    let mut o = String::from("<h2>Summary</h2><table>");
    let row = |o: &mut String, k: &str, v: String| {
        let _ = write!(
            o,
            "<tr><th class=\"l\">{k}</th><td class=\"l\" colspan=\"3\">{v}</td></tr>"
        );
    };
    row(
        &mut o,
        "switchovers",
        format!(
            "{} done, {} failed",
            s.switchovers_done, s.switchovers_failed
        ),
    );
    row(
        &mut o,
        "operations",
        format!(
            "{} ({} ok), {} acknowledged writes",
            r.operations.total, r.operations.ok, r.operations.acknowledged_writes
        ),
    );
    row(&mut o, "client-visible errors", r.errors.total.to_string());
    row(
        &mut o,
        "connections dropped",
        r.connections_dropped.to_string(),
    );
    row(
        &mut o,
        "sessions (proxy)",
        format!(
            "migrated {}, closed by failover {}, transactions aborted {}, statements held {}",
            s.sessions_migrated, s.sessions_closed, s.transactions_aborted, s.statements_held
        ),
    );
    let verified = match (&r.verification, &r.verification_error) {
        (Some(v), _) => format!("{} of {} acknowledged writes found on the final primary {}; <b>{} lost</b>; {} unacknowledged rows present", v.found, v.acknowledged, esc(&v.primary), v.lost, v.unacknowledged_present),
        (None, e) => format!("not done: {}", esc(e.as_deref().unwrap_or("?"))),
    };
    row(&mut o, "verification", verified);
    o.push_str(
        "<tr><th class=\"l\">per switchover (ms)</th><th>p50</th><th>p99</th><th>max</th></tr>",
    );
    for (k, v) in [
        ("added latency", &s.added_latency_ms),
        ("write-unavailable window", &s.write_unavailable_ms),
        (
            "route switch (record written &rarr; in the proxy's route)",
            &s.route_switch_ms,
        ),
        (
            "record written &rarr; first statement answered",
            &s.first_statement_ms,
        ),
    ] {
        let [a, b, c] = fmt_spread(v);
        let _ = write!(
            o,
            "<tr><td class=\"l\">{k}</td><td>{a}</td><td>{b}</td><td>{c}</td></tr>"
        );
    }
    o.push_str("</table>");
    o
}

/// Linear or log10 y axis.
#[derive(Clone, Copy, PartialEq)]
enum Scale {
    Linear,
    Log,
}

/// The smallest 1/2/5 x 10^k at or above `v`.
fn nice_ceil(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|c| *c >= v * 0.999_999)
        .unwrap_or(10.0 * p)
}

struct Chart<'a> {
    title: &'a str,
    x_max: f64,
    points: Vec<(f64, Option<f64>)>,
    scale: Scale,
    bars: bool,
    color: &'a str,
}

fn charts(r: &Report) -> String {
    let b = &r.timeline.buckets;
    let x_max = r.duration_s.max(0.1);
    let series =
        |f: fn(&super::timeline::Bucket) -> Option<f64>| b.iter().map(|k| (k.t_s, f(k))).collect();
    let mut o = String::from("<h2>Timeline</h2><div class=\"meta\">100 ms buckets by completion time; shaded bands are switchovers (command start to end, numbered).</div>");
    for c in [
        Chart {
            title: "throughput (successful operations/s)",
            x_max,
            points: series(|k| Some(k.ops_per_s)),
            scale: Scale::Linear,
            bars: false,
            color: "#1565c0",
        },
        Chart {
            title: "p99 latency per bucket (ms, log scale)",
            x_max,
            points: series(|k| k.p99_ms),
            scale: Scale::Log,
            bars: false,
            color: "#6a1b9a",
        },
        Chart {
            title: "client-visible errors per bucket",
            x_max,
            points: series(|k| Some(k.errors as f64)),
            scale: Scale::Linear,
            bars: true,
            color: "#c62828",
        },
    ] {
        let _ = write!(o, "<div class=\"cap\">{}</div>", c.title);
        o.push_str(&svg(&c, r));
    }
    o
}

fn svg(c: &Chart, r: &Report) -> String {
    let vals: Vec<f64> = c
        .points
        .iter()
        .filter_map(|p| p.1)
        .filter(|v| v.is_finite())
        .collect();
    let vmax = vals.iter().copied().fold(0.0, f64::max);
    let (lo, hi) = match c.scale {
        Scale::Linear => (0.0, nice_ceil(vmax.max(1.0))),
        Scale::Log => {
            let min = vals
                .iter()
                .copied()
                .filter(|v| *v > 0.0)
                .fold(f64::INFINITY, f64::min);
            let lo = 10f64.powf(min.clamp(1e-3, 1.0).log10().floor());
            (lo, 10f64.powf(vmax.max(lo * 10.0).log10().ceil()))
        }
    };
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let x = |t: f64| LEFT + t / c.x_max * pw;
    let y = |v: f64| match c.scale {
        Scale::Linear => TOP + ph - (v - lo) / (hi - lo) * ph,
        Scale::Log => TOP + ph - (v.max(lo).log10() - lo.log10()) / (hi.log10() - lo.log10()) * ph,
    };
    let mut o = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\">");
    for s in &r.switchovers {
        let (x0, x1) = (x(s.start_s), x(s.end_s).max(x(s.start_s) + 2.0));
        let fill = if s.ok { "#ffb300" } else { "#e53935" };
        let _ = write!(o, "<rect x=\"{x0:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{ph}\" fill=\"{fill}\" fill-opacity=\"0.22\"><title>switchover {}: {:.2}-{:.2} s, {} errors, added latency {:.1} ms, write-unavailable {:.1} ms</title></rect>",
            x1 - x0, s.index, s.start_s, s.end_s, s.errors, s.added_latency_ms, s.write_unavailable_ms);
        let _ = write!(
            o,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            (x0 + x1) / 2.0,
            TOP + 10.0,
            s.index
        );
    }
    o.push_str(&y_axis(c.scale, lo, hi, &y));
    o.push_str(&x_axis(c.x_max, &x));
    if c.bars {
        let bw = (pw / (c.x_max / 0.1)).max(1.0);
        for (t, v) in c
            .points
            .iter()
            .filter_map(|(t, v)| Some((*t, (*v)?)))
            .filter(|p| p.1 > 0.0)
        {
            let _ = write!(o, "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{t:.1} s: {v}</title></rect>", x(t), y(v), TOP + ph - y(v), c.color);
        }
    } else {
        for run in c.points.split(|p| p.1.is_none()).filter(|s| !s.is_empty()) {
            let pts: Vec<String> = run
                .iter()
                .map(|(t, v)| format!("{:.1},{:.1}", x(t + 0.05), y(v.unwrap_or(0.0))))
                .collect();
            let _ = write!(
                o,
                "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.3\" points=\"{}\"/>",
                c.color,
                pts.join(" ")
            );
        }
    }
    let _ = write!(o, "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#999\"/></svg>");
    o
}

fn y_axis(scale: Scale, lo: f64, hi: f64, y: &dyn Fn(f64) -> f64) -> String {
    let ticks: Vec<f64> = match scale {
        Scale::Linear => (0..=4)
            .map(|i| lo + (hi - lo) * f64::from(i) / 4.0)
            .collect(),
        Scale::Log => {
            let (a, b) = (lo.log10().round() as i32, hi.log10().round() as i32);
            (a..=b).map(|e| 10f64.powi(e)).collect()
        }
    };
    let mut o = String::new();
    for v in ticks {
        let yy = y(v);
        let label = if v >= 1000.0 {
            format!("{}k", (v / 100.0).round() / 10.0)
        } else if v >= 1.0 || v == 0.0 {
            format!("{v:.0}")
        } else {
            format!("{v}")
        };
        let _ = write!(o, "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#eee\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>", W - RIGHT, LEFT - 6.0, yy + 4.0);
    }
    o
}

fn x_axis(x_max: f64, x: &dyn Fn(f64) -> f64) -> String {
    let step = nice_ceil(x_max / 12.0);
    let mut o = String::new();
    let mut t = 0.0;
    while t <= x_max + 1e-9 {
        let xx = x(t);
        let _ = write!(o, "<line x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#999\"/><text x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{t}s</text>", H - BOTTOM, H - BOTTOM + 4.0, H - 8.0);
        t += step;
    }
    o
}

fn switchover_table(r: &Report) -> String {
    let mut o = String::from("<h2>Switchovers</h2><table><tr><th>#</th><th>start s</th><th>wall ms</th><th>status</th><th>errors</th><th>added latency ms</th><th>write-unavailable ms</th><th>route switch ms</th><th>first statement ms</th><th>migrated</th><th>closed</th><th class=\"l\">switch output</th></tr>");
    let opt = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
    for s in &r.switchovers {
        let p = s.proxy.as_ref();
        let _ = write!(o, "<tr><td>{}</td><td>{:.2}</td><td>{:.0}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\"><pre>{}</pre></td></tr>",
            s.index, s.start_s, s.wall_ms, esc(&s.status), s.errors, s.added_latency_ms, s.write_unavailable_ms,
            opt(s.route_switch_ms), opt(s.first_statement_ms),
            p.map_or("-".into(), |f| f.sessions_migrated.to_string()), p.map_or("-".into(), |f| f.sessions_closed.to_string()),
            esc(&s.output));
    }
    o.push_str("</table>");
    o
}

fn errors_table(r: &Report) -> String {
    let mut o = String::from("<h2>Client-visible errors by kind</h2>");
    if r.errors.by_kind.is_empty() {
        o.push_str("<p>None.</p>");
        return o;
    }
    o.push_str(
        "<table><tr><th class=\"l\">kind</th><th>count</th><th class=\"l\">first message</th></tr>",
    );
    for e in &r.errors.by_kind {
        let _ = write!(
            o,
            "<tr><td class=\"l\">{}</td><td>{}</td><td class=\"l\"><pre>{}</pre></td></tr>",
            esc(&e.kind),
            e.count,
            esc(&e.first_message)
        );
    }
    o.push_str("</table>");
    o
}

fn operations_table(r: &Report) -> String {
    let mut o = String::from("<h2>Operations by kind</h2><table><tr><th class=\"l\">kind</th><th>workers</th><th>ops</th><th>ok</th><th>errors</th><th>baseline p50 ms</th><th>p50 ms</th><th>p99 ms</th><th>max ms</th></tr>");
    for (k, s) in &r.operations.by_kind {
        let [a, b, c] = fmt_spread(&s.latency_ms);
        let workers = r.settings.workers.get(k).map_or("-".into(), u32::to_string);
        let base = r
            .baseline_p50_ms
            .get(k)
            .map_or("-".into(), |v| format!("{v:.2}"));
        let _ = write!(o, "<tr><td class=\"l\">{k}</td><td>{workers}</td><td>{}</td><td>{}</td><td>{}</td><td>{base}</td><td>{a}</td><td>{b}</td><td>{c}</td></tr>", s.ops, s.ok, s.errors);
    }
    o.push_str("</table>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceil_rounds_up_to_1_2_5() {
        assert_eq!(nice_ceil(0.0), 1.0);
        assert_eq!(nice_ceil(3.0), 5.0);
        assert_eq!(nice_ceil(5.0), 5.0);
        assert_eq!(nice_ceil(1234.0), 2000.0);
        assert_eq!(nice_ceil(0.07), 0.1);
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }
}
