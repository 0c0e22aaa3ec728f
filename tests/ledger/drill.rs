//! The unplanned drill in process against a real cluster: each failover
//! kills the primary (the first after the replica lagged 300 ms); the
//! drill's ground truth and the proxy's loss report agree, and a write
//! removed behind both of their backs makes the drill's verdict fail.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use mysql_zk_proxy_drill::progress::ProgressMode;
use mysql_zk_proxy_drill::switcher::Switcher;
use mysql_zk_proxy_drill::verify::VerifyTarget;
use mysql_zk_proxy_drill::{self as drill, DrillOptions, Report};
use tokio::sync::Mutex;

use crate::common::{self, admin_opts, APP_PASS, APP_USER};
use crate::support;

fn options(env: &common::Env, run: u64) -> DrillOptions {
    let proxy = ("127.0.0.1".into(), env.proxy.listen_addr().port());
    let mut o = DrillOptions::new(proxy, APP_USER, APP_PASS, "app");
    o.admin = env.proxy.admin_addr().map(|a| a.to_string());
    o.switchovers = 2;
    o.warmup = Duration::from_millis(1500);
    o.interval = Duration::from_millis(1500);
    o.unplanned = true;
    o.run = Some(run);
    o.verify = Some(VerifyTarget {
        zk: env.cluster.zk_connect(),
        primary_path: env.cluster.primary_path().to_owned(),
        tls: None,
        auth: None,
        user: APP_USER.into(),
        password: APP_PASS.into(),
        database: "app".into(),
    });
    o
}

/// Two unplanned failovers under the drill's load; with `tamper`, the
/// oldest row of the run is deleted on the new primary after the first.
async fn unplanned_drill(tamper: bool) -> Report {
    let env = support::start(None).await;
    let run = 900_000 + u64::from(std::process::id() % 1000);
    let o = options(&env, run);
    let common::Env { cluster, proxy } = env;
    let cluster = Arc::new(Mutex::new(cluster));
    let calls = Arc::new(AtomicU32::new(0));
    let sw = Switcher::Function(Box::new(move || {
        let (cluster, calls) = (cluster.clone(), calls.clone());
        Box::pin(async move {
            let first = calls.fetch_add(1, Relaxed) == 0;
            let lag = Duration::from_millis(if first { 300 } else { 0 });
            let mut c = cluster.lock().await;
            let report = c.crash_failover(lag).await.map_err(|e| e.to_string())?;
            if tamper && first {
                let mut a = Conn::new(admin_opts(report.new_port)).await.unwrap();
                let sql =
                    format!("DELETE FROM app.drill_writes WHERE run = {run} ORDER BY seq LIMIT 1");
                a.query_drop(sql).await.unwrap();
            }
            Ok(report.to_string())
        })
    }));
    let mut sw = sw;
    let report = drill::run(&o, &mut sw, ProgressMode::Off)
        .await
        .expect("the drill runs");
    drop(proxy);
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_unplanned_drill_agrees_with_the_proxys_loss_report() {
    let report = unplanned_drill(false).await;
    assert_eq!(report.switchovers.len(), 2);
    let losses: Vec<_> = report
        .switchovers
        .iter()
        .map(|s| s.loss.clone().unwrap())
        .collect();
    assert!(
        losses[0].observed_missing > 0,
        "the lagging replica lost writes: {losses:?}"
    );
    for l in &losses {
        assert!(l.agree, "{l:?}");
        assert_eq!(l.proxy_missing, Some(l.observed_missing));
        assert!(l.first_write_after_ms.is_some(), "{l:?}");
    }
    let lost: u64 = losses.iter().map(|l| l.observed_missing).sum();
    assert_eq!(report.verification.as_ref().unwrap().lost, lost);
    assert!(report.verdict.pass, "{:?}", report.verdict);
    let html = drill::html::page(&report);
    assert!(html.contains("the proxy's report against the drill's ground truth"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_lost_behind_the_proxys_back_fails_the_drill() {
    let report = unplanned_drill(true).await;
    let first = report.switchovers[0].loss.clone().unwrap();
    assert_eq!(
        first.observed_missing,
        first.proxy_missing.unwrap() + 1,
        "the deleted row is lost to the drill only: {first:?}"
    );
    assert!(!first.agree);
    assert!(!report.verdict.pass);
    assert!(
        report
            .verdict
            .failures
            .iter()
            .any(|f| f.starts_with("failover 1:")),
        "{:?}",
        report.verdict
    );
}
