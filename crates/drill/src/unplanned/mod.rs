//! The unplanned drill (`--unplanned`): each switch kills the primary and
//! publishes a replica. After each, the drill takes the proxy's loss report
//! (`/status` → `ledger.loss_reports`) and its own ground truth — the
//! writes its clients saw acknowledged since the previous failover that the
//! new primary lacks — and says whether they agree: the same count, and the
//! same transactions by GTID (docs/ledger.md, The unplanned drill).

pub mod html;
pub mod raw;
pub mod writer;

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use serde::Serialize;

use crate::load::{Acked, LoadCtx, TABLE};
use crate::options::DrillOptions;
use crate::report::{Report, Verdict};
use crate::{admin, verify};

/// Bound on the proxy's report appearing after a failover.
const REPORT_WAIT: Duration = Duration::from_secs(30);

/// One failover: the proxy's report next to the drill's ground truth.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FailoverLoss {
    /// The report's epoch (the record that named the new primary).
    pub epoch: Option<u64>,
    pub new_primary: Option<String>,
    /// The proxy's `missing` (`null`: no report, or its position unread).
    pub proxy_missing: Option<u64>,
    pub proxy_gtids: Vec<String>,
    pub proxy_error: Option<String>,
    /// Acknowledged writes since the previous failover absent on the new primary.
    pub observed_missing: u64,
    /// Their GTIDs, where the client saw them (write and transaction workers).
    pub observed_gtids: Vec<String>,
    /// Lost writes whose GTID the client could not see (mysql_async's
    /// prepared worker): matched by count.
    pub observed_without_gtid: u64,
    pub observed_seqs: Vec<u64>,
    /// From the failover command's start to the first write acknowledged
    /// after the crash (after the longest pause between acknowledged writes).
    pub first_write_after_ms: Option<f64>,
    /// Why the ground truth could not be taken.
    pub observed_error: Option<String>,
    pub agree: bool,
}

impl FailoverLoss {
    /// Same count, every GTID the drill saw lost named by the proxy, and the
    /// proxy's other GTIDs exactly as many as the lost writes without one.
    fn judge(&mut self) {
        let proxy: BTreeSet<&String> = self.proxy_gtids.iter().collect();
        let seen: BTreeSet<&String> = self.observed_gtids.iter().collect();
        let extra = proxy.difference(&seen).count() as u64;
        self.agree = self.observed_error.is_none()
            && self.proxy_missing == Some(self.observed_missing)
            && seen.is_subset(&proxy)
            && extra == self.observed_without_gtid;
    }
}

/// The highest epoch among the proxy's loss reports now (0: none).
pub async fn last_report_epoch(admin_addr: &str) -> u64 {
    let reports = reports(admin_addr).await.unwrap_or_default();
    reports
        .iter()
        .filter_map(|r| r["epoch"].as_u64())
        .max()
        .unwrap_or(0)
}

async fn reports(admin_addr: &str) -> Result<Vec<serde_json::Value>, String> {
    let body = admin::get(admin_addr, "/status")
        .await
        .map_err(|e| e.to_string())?;
    let doc: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    Ok(doc["ledger"]["loss_reports"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// The proxy's newest report with an epoch above `after`, waited for.
async fn proxy_report(admin_addr: &str, after: u64) -> Result<serde_json::Value, String> {
    let deadline = tokio::time::Instant::now() + REPORT_WAIT;
    loop {
        let found = reports(admin_addr)
            .await?
            .into_iter()
            .rev()
            .find(|r| r["epoch"].as_u64().is_some_and(|e| e > after));
        if let Some(r) = found {
            return Ok(r);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "no loss report after epoch {after} within {REPORT_WAIT:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// After a failover that started at `switch_start`: the proxy's report
/// (newer than epoch `after`) and the ground truth of the writes in
/// `ctx.acked_log[*checked..]`, which are then checked.
pub async fn check(
    o: &DrillOptions,
    ctx: &LoadCtx,
    after: u64,
    checked: &mut usize,
    switch_start: Duration,
) -> FailoverLoss {
    let mut f = FailoverLoss::default();
    match o.admin.as_deref() {
        Some(a) => match proxy_report(a, after).await {
            Ok(r) => {
                f.epoch = r["epoch"].as_u64();
                f.proxy_missing = r["missing"].as_u64();
                f.proxy_error = r["error"].as_str().map(str::to_owned);
                let listed = r["missing_transactions"].as_array().cloned();
                f.proxy_gtids = listed
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|m| m["gtid"].as_str().map(str::to_owned))
                    .collect();
            }
            Err(e) => f.proxy_error = Some(e),
        },
        None => f.proxy_error = Some("no --admin: the proxy's report cannot be read".into()),
    }
    let since: Vec<Acked> = {
        let log = ctx.acked_log.lock().unwrap_or_else(|e| e.into_inner());
        let new = log[*checked..].to_vec();
        *checked = log.len();
        new
    };
    f.first_write_after_ms = first_write_after(&since, switch_start);
    match lost_on_new_primary(o, ctx.run, &since).await {
        Ok((primary, lost)) => {
            f.new_primary = Some(primary);
            f.observed_missing = lost.len() as u64;
            f.observed_seqs = lost.iter().map(|a| a.seq).collect();
            f.observed_gtids = lost
                .iter()
                .filter_map(|a| a.gtid.map(|g| g.to_string()))
                .collect();
            f.observed_without_gtid = lost.iter().filter(|a| a.gtid.is_none()).count() as u64;
        }
        Err(e) => f.observed_error = Some(e),
    }
    f.judge();
    f
}

/// From `start` to the first write acknowledged after the longest pause
/// between acknowledged writes since `start` (the crash's; writes go on
/// while the replica lags, before the kill), in ms.
fn first_write_after(acked: &[Acked], start: Duration) -> Option<f64> {
    let mut at: Vec<Duration> = acked.iter().map(|a| a.at).filter(|t| *t >= start).collect();
    at.sort_unstable();
    let after_gap = at
        .windows(2)
        .max_by_key(|w| w[1] - w[0])
        .map_or(at.first().copied(), |w| Some(w[1]));
    after_gap.map(|t| (t - start).as_secs_f64() * 1000.0)
}

/// The writes of `acked` whose row the final primary lacks (or has with
/// another `n`).
async fn lost_on_new_primary(
    o: &DrillOptions,
    run: u64,
    acked: &[Acked],
) -> Result<(String, Vec<Acked>), String> {
    let t = o
        .verify
        .as_ref()
        .ok_or("no --zk/--primary-path: the new primary is unknown")?;
    let (host, port) = verify::final_primary(t).await.map_err(|e| e.to_string())?;
    let (lo, hi) = match (
        acked.iter().map(|a| a.seq).min(),
        acked.iter().map(|a| a.seq).max(),
    ) {
        (Some(lo), Some(hi)) => (lo, hi),
        _ => return Ok((format!("{host}:{port}"), Vec::new())),
    };
    let opts = verify::primary_opts((&host, port), t);
    let read = async {
        let mut c = Conn::new(opts).await?;
        let sql =
            format!("SELECT seq, n FROM {TABLE} WHERE run = {run} AND seq BETWEEN {lo} AND {hi}");
        let rows: Vec<(u64, i64)> = c.query(sql).await?;
        let _ = c.disconnect().await;
        Ok::<_, mysql_async::Error>(rows)
    };
    let rows = tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .map_err(|_| format!("{host}:{port}: no answer within 30 s"))?
        .map_err(|e| format!("{host}:{port}: {e}"))?;
    let have: HashSet<(u64, i64)> = rows.into_iter().collect();
    let lost = acked
        .iter()
        .filter(|a| !have.contains(&(a.seq, a.n)))
        .copied()
        .collect();
    Ok((format!("{host}:{port}"), lost))
}

/// An unplanned drill passes when every failover was made and, for each,
/// the proxy's loss report equals the drill's ground truth, and the final
/// check finds exactly the writes those failovers lost. Client errors and
/// lost writes are what a crash costs: reported, not failures.
pub(crate) fn verdict(r: &Report) -> Verdict {
    let mut f = Vec::new();
    let s = &r.summary;
    if s.switchovers_done < r.settings.switchovers {
        let (done, all) = (s.switchovers_done, r.settings.switchovers);
        f.push(format!("{done} of {all} failovers done"));
    }
    let mut observed = 0;
    for sw in &r.switchovers {
        match &sw.loss {
            Some(l) if !l.agree => f.push(format!(
                "failover {}: the proxy reported {} missing, the drill observed {} ({})",
                sw.index,
                l.proxy_missing.map_or("none".into(), |m| m.to_string()),
                l.observed_missing,
                l.proxy_error
                    .as_deref()
                    .or(l.observed_error.as_deref())
                    .unwrap_or("different transactions")
            )),
            Some(l) => observed += l.observed_missing,
            None if sw.ok => f.push(format!("failover {}: not compared", sw.index)),
            None => {}
        }
    }
    match (&r.verification, &r.verification_error) {
        (Some(v), _) if v.lost != observed => f.push(format!(
            "{} acknowledged writes missing on the final primary, {observed} seen at the failovers",
            v.lost
        )),
        (Some(_), _) => {}
        (None, e) => f.push(format!("not verified: {}", e.as_deref().unwrap_or("?"))),
    }
    Verdict {
        pass: f.is_empty(),
        failures: f,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loss(proxy: (Option<u64>, &[&str]), observed: (&[&str], u64)) -> FailoverLoss {
        let s = |v: &[&str]| v.iter().map(|g| g.to_string()).collect::<Vec<_>>();
        let mut f = FailoverLoss {
            proxy_missing: proxy.0,
            proxy_gtids: s(proxy.1),
            observed_missing: observed.0.len() as u64 + observed.1,
            observed_gtids: s(observed.0),
            observed_without_gtid: observed.1,
            ..Default::default()
        };
        f.judge();
        f
    }

    #[test]
    fn the_first_write_after_is_the_one_ending_the_longest_pause() {
        let a = |ms| Acked {
            seq: 0,
            n: 0,
            gtid: None,
            at: Duration::from_millis(ms),
        };
        let acked = [a(90), a(110), a(120), a(130), a(400), a(410)];
        let got = first_write_after(&acked, Duration::from_millis(100));
        assert_eq!(got, Some(300.0));
        assert_eq!(
            first_write_after(&[a(150)], Duration::from_millis(100)),
            Some(50.0)
        );
        assert_eq!(
            first_write_after(&[a(50)], Duration::from_millis(100)),
            None
        );
    }

    #[test]
    fn agreement_is_the_same_count_and_the_same_transactions() {
        assert!(loss((Some(0), &[]), (&[], 0)).agree);
        assert!(loss((Some(2), &["0-1-5", "0-1-6"]), (&["0-1-5", "0-1-6"], 0)).agree);
        // one lost write's GTID unseen by the client: matched by count
        assert!(loss((Some(2), &["0-1-5", "0-1-6"]), (&["0-1-5"], 1)).agree);
        assert!(!loss((Some(1), &["0-1-5"]), (&["0-1-5", "0-1-6"], 0)).agree);
        assert!(!loss((Some(2), &["0-1-5", "0-1-7"]), (&["0-1-5", "0-1-6"], 0)).agree);
        assert!(!loss((None, &[]), (&[], 0)).agree, "no report");
    }
}
