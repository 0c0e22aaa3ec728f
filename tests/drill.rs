//! `drill` against a real cluster (ZooKeeper + MariaDB primary/replica) and
//! an in-process proxy: a short drill with planned switchovers produces the
//! documented report and verifies its acknowledged writes on the final
//! primary; a row deleted behind the drill's back is reported lost.

mod common;

use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use mysql_zk_proxy_core::config::Config;
use mysql_zk_proxy_core::config::UserConfig;
use mysql_zk_proxy_core::native_password::StoredHash;
use mysql_zk_proxy_drill::progress::ProgressMode;
use mysql_zk_proxy_drill::switcher::Switcher;
use mysql_zk_proxy_drill::verify::VerifyTarget;
use mysql_zk_proxy_drill::{self as drill, DrillOptions};
use mysql_zk_proxy_sandbox::Cluster;
use tokio::sync::Mutex;

fn with_app_user(c: &mut Config) {
    let hex: String = StoredHash::of_password(common::APP_PASS.as_bytes())
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let user: UserConfig = toml::from_str(&format!(
        "name = \"{}\"\nmysql_native_password = \"*{hex}\"\n",
        common::APP_USER
    ))
    .unwrap();
    c.users = vec![user];
    c.failover.drain_timeout = Duration::from_secs(2);
    // the proxy's loss reports read the new primary's position as this user
    common::with_monitor(c);
}

/// A short drill's options against `env`, verified through its ZooKeeper.
fn options(env: &common::Env, switchovers: u32) -> DrillOptions {
    let proxy = ("127.0.0.1".into(), env.proxy.listen_addr().port());
    let mut o = DrillOptions::new(proxy, common::APP_USER, common::APP_PASS, "app");
    o.admin = env.proxy.admin_addr().map(|a| a.to_string());
    o.switchovers = switchovers;
    o.warmup = Duration::from_millis(1500);
    o.interval = Duration::from_millis(1500);
    o.idle_every = Duration::from_millis(300);
    o.verify = Some(VerifyTarget {
        zk: env.cluster.zk_connect(),
        primary_path: env.cluster.primary_path().to_owned(),
        tls: None,
        auth: None,
        user: common::APP_USER.into(),
        password: common::APP_PASS.into(),
        database: "app".into(),
    });
    o
}

/// A switcher running the cluster's planned switchover, then `after` on the
/// new primary's port.
fn switcher<F, Fut>(cluster: Arc<Mutex<Cluster>>, after: F) -> Switcher
where
    F: Fn(u16) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    Switcher::Function(Box::new(move || {
        let (cluster, after) = (cluster.clone(), after.clone());
        Box::pin(async move {
            let report = cluster.lock().await.switchover().await;
            let report = report.map_err(|e| e.to_string())?;
            after(report.new_port).await;
            Ok(report.to_string())
        })
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_short_drill_reports_and_verifies_its_writes() {
    let env = common::start_with(true, with_app_user).await;
    let o = options(&env, 2);
    let common::Env { cluster, proxy } = env;
    let cluster = Arc::new(Mutex::new(cluster));
    let mut sw = switcher(cluster.clone(), |_| async {});
    let report = drill::run(&o, &mut sw, ProgressMode::Off)
        .await
        .expect("the drill runs");
    let final_port = cluster.lock().await.primary().port();
    let json = serde_json::to_value(&report).unwrap();
    for key in [
        "operations",
        "errors",
        "connections_dropped",
        "switchovers",
        "summary",
        "verification",
        "timeline",
        "verdict",
    ] {
        assert!(json.get(key).is_some(), "no {key} in {json:#}");
    }
    assert_eq!(report.switchovers.len(), 2, "{json:#}");
    for s in &report.switchovers {
        assert!(s.ok, "{s:?}");
        let loss = s.loss.as_ref().expect("the proxy's loss report, compared");
        assert_eq!(
            loss.proxy_missing,
            Some(0),
            "a planned switchover loses nothing: {loss:?}"
        );
        assert!(loss.agree, "{loss:?}");
        let f = s
            .proxy
            .as_ref()
            .expect("the proxy's timeline of the switchover");
        assert!(
            f.swapped_after_ms.is_some() && f.first_statement_after_ms.is_some(),
            "{f:?}"
        );
        let route = s.route_switch_ms.expect("record written -> route");
        let first = s
            .first_statement_ms
            .expect("record written -> first answer");
        assert!(route <= first + 0.001, "{s:?}");
    }
    let sum = &report.summary;
    assert_eq!(sum.switchovers_done, 2);
    for spread in [
        sum.added_latency_ms,
        sum.write_unavailable_ms,
        sum.route_switch_ms,
    ] {
        let s = spread.expect("p50/p99/max across switchovers");
        assert!(s.p50 <= s.p99 && s.p99 <= s.max, "{s:?}");
    }
    assert!(
        sum.sessions_migrated > 0,
        "idle app sessions are migrated: {sum:?}"
    );
    let v = report.verification.as_ref().expect("verified");
    assert_eq!(v.primary, format!("127.0.0.1:{final_port}"));
    assert!(v.acknowledged > 100, "{v:?}");
    assert_eq!(v.acknowledged, report.operations.acknowledged_writes);
    assert_eq!((v.lost, v.found), (0, v.acknowledged), "{v:?}");
    let ok: u64 = report.timeline.buckets.iter().map(|b| b.ok).sum();
    assert_eq!(ok, report.operations.ok);
    let errors: u64 = report.errors.by_kind.iter().map(|e| e.count).sum();
    assert_eq!(errors, report.errors.total);
    let html = drill::html::page(&report);
    assert_eq!(html.matches("<svg").count(), 3);
    assert!(html.contains("switchover 2:"), "a band per switchover");
    drop(proxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_missing_on_the_final_primary_is_reported_lost() {
    let env = common::start_with(true, with_app_user).await;
    let mut o = options(&env, 1);
    let run = 777_000 + u64::from(std::process::id() % 1000);
    o.run = Some(run);
    let common::Env { cluster, proxy } = env;
    let cluster = Arc::new(Mutex::new(cluster));
    let deleted = Arc::new(std::sync::Mutex::new(None));
    let record = deleted.clone();
    // behind the drill's back: remove its oldest row on the new primary
    let mut sw = switcher(cluster.clone(), move |port| {
        let record = record.clone();
        async move {
            let mut c = Conn::new(common::app_opts(port)).await.unwrap();
            let seq: u64 = c
                .query_first(format!(
                    "SELECT MIN(seq) FROM drill_writes WHERE run = {run}"
                ))
                .await
                .unwrap()
                .expect("the drill wrote rows");
            c.query_drop(format!(
                "DELETE FROM drill_writes WHERE run = {run} AND seq = {seq}"
            ))
            .await
            .unwrap();
            *record.lock().unwrap() = Some(seq);
        }
    });
    let report = drill::run(&o, &mut sw, ProgressMode::Off)
        .await
        .expect("the drill runs");
    let seq = deleted.lock().unwrap().expect("a row was deleted");
    let v = report.verification.as_ref().expect("verified");
    assert_eq!((v.lost, v.lost_seqs.as_slice()), (1, &[seq][..]), "{v:?}");
    assert!(
        report
            .verdict
            .failed_for(|f| f == "1 acknowledged writes lost"),
        "{:?}",
        report.verdict
    );
    drop(proxy);
}
