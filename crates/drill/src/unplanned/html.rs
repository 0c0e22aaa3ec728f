//! The unplanned drill's section of the HTML report: per failover, the
//! proxy's loss report next to the drill's ground truth.

use std::fmt::Write as _;

use crate::html::esc;
use crate::report::Report;

/// GTIDs shown per cell (the JSON report has them all).
const SHOWN: usize = 12;

fn gtids(v: &[String]) -> String {
    let mut s = v.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if v.len() > SHOWN {
        let _ = write!(s, " (+{} more)", v.len() - SHOWN);
    }
    if s.is_empty() {
        s.push('-');
    }
    esc(&s)
}

/// The table, or nothing when the drill was not unplanned.
pub fn loss_table(r: &Report) -> String {
    if !r.settings.unplanned {
        return String::new();
    }
    let mut o = String::from("<h2>Acknowledged writes lost: the proxy's report against the drill's ground truth</h2><div class=\"meta\">Per unplanned failover: what the proxy's loss report (<code>/status</code> ledger) says the new primary lacks, and the writes the drill's clients saw acknowledged since the previous failover that the new primary does not have. Lost writes without a GTID come from clients that cannot see it (mysql_async) and are matched by count.</div><table><tr><th>#</th><th>epoch</th><th>new primary</th><th>proxy: missing</th><th>drill: lost</th><th>of them without GTID</th><th>agree</th><th>kill → first write ms</th><th class=\"l\">proxy GTIDs</th><th class=\"l\">drill GTIDs</th></tr>");
    for s in &r.switchovers {
        let Some(l) = &s.loss else { continue };
        let (class, word) = if l.agree {
            ("pass", "yes")
        } else {
            ("fail", "NO")
        };
        let missing = match (l.proxy_missing, &l.proxy_error) {
            (Some(m), _) => m.to_string(),
            (None, Some(e)) => format!("? ({e})"),
            (None, None) => "?".into(),
        };
        let _ = write!(o, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><span class=\"{class}\">{word}</span></td><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
            s.index,
            l.epoch.map_or("-".into(), |e| e.to_string()),
            esc(l.new_primary.as_deref().unwrap_or("-")),
            esc(&missing),
            l.observed_missing,
            l.observed_without_gtid,
            l.first_write_after_ms.map_or("-".into(), |v| format!("{v:.0}")),
            gtids(&l.proxy_gtids),
            gtids(&l.observed_gtids));
    }
    o.push_str("</table>");
    o
}
