//! deploy/: the Grafana dashboard is valid JSON whose queries use only
//! documented metric names; the systemd unit reloads with SIGHUP and waits
//! longer than the default shutdown.timeout.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Names in the metrics table of docs/metrics.md.
fn documented() -> BTreeSet<String> {
    read("docs/metrics.md")
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`'))
        .map(|(name, _)| name.to_string())
        .filter(|n| n.starts_with("mysql_zk_proxy_"))
        .collect()
}

/// Every `expr` and `query` string anywhere in the dashboard.
fn queries(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr" | "query", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => queries(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| queries(v, out)),
        _ => {}
    }
}

/// Metric names a query mentions (histogram series mapped to their family).
fn metric_names(q: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = q;
    while let Some(i) = rest.find("mysql_zk_proxy_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| f.ends_with("_seconds")))
            .unwrap_or(name);
        names.push(family.to_string());
        rest = &tail[end..];
    }
    names
}

#[test]
fn dashboard_uses_only_documented_metrics() {
    let dash: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana-dashboard.json")).expect("valid JSON");
    assert!(dash["panels"].as_array().is_some_and(|p| p.len() >= 8));
    let docs = documented();
    assert!(docs.len() >= 17, "{docs:?}");
    let mut qs = Vec::new();
    queries(&dash, &mut qs);
    let used: BTreeSet<String> = qs.iter().flat_map(|q| metric_names(q)).collect();
    assert!(used.len() >= 10, "{used:?}");
    for name in &used {
        assert!(
            docs.contains(name),
            "{name} is on the dashboard but not in docs/metrics.md"
        );
    }
}

#[test]
fn systemd_unit_reloads_with_sighup_and_outwaits_the_shutdown_timeout() {
    let unit = read("deploy/mysql-zk-proxy.service");
    let value = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("{key} missing"))
            .to_string()
    };
    assert!(value("ExecReload").contains("-HUP $MAINPID"));
    assert!(value("ExecStart").contains(" run --config "));
    let stop = humantime::parse_duration(&value("TimeoutStopSec")).unwrap();
    let default = mysql_zk_proxy_core::config::Config::default()
        .shutdown
        .timeout;
    assert!(
        stop > default + Duration::from_secs(5),
        "{stop:?} vs {default:?}"
    );
}
