//! Tests of the Prometheus exposition against docs/metrics.md and the counters.

use std::collections::BTreeSet;

use super::*;
use crate::routing::{Primary, Route};

fn docs() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/metrics.md");
    std::fs::read_to_string(path).expect("docs/metrics.md is readable")
}

/// `(name, type)` of every row of the metrics table in docs/metrics.md.
fn documented(docs: &str) -> BTreeSet<(String, String)> {
    docs.lines()
        .filter_map(|l| l.strip_prefix("| `mysql_zk_proxy_"))
        .map(|rest| {
            let mut cells = rest.split('|');
            let name = cells.next().unwrap().trim().trim_end_matches('`');
            let kind = cells.next().expect("a type column").trim();
            (format!("{PREFIX}{name}"), kind.to_string())
        })
        .collect()
}

/// `(name, type)` of every `# TYPE` line of a rendering.
fn exposed(text: &str) -> BTreeSet<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|rest| {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            (name.to_string(), kind.to_string())
        })
        .collect()
}

/// The value of one series (`name` or `name{labels}`), if rendered.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().expect("a number"))
}

fn metrics() -> (Arc<Stats>, Arc<RouteTable>, Metrics) {
    let stats = Stats::new();
    let table = Arc::new(RouteTable::new());
    let m = Metrics::new(stats.clone(), table.clone());
    (stats, table, m)
}

#[test]
fn exposes_exactly_the_documented_metrics() {
    let (_, _, m) = metrics();
    let docs = docs();
    let mut want = documented(&docs);
    // rendered only while the read-only listener is on (tests/replicas.rs)
    want.retain(|(name, _)| !name.starts_with(&format!("{PREFIX}read_only_")));
    assert!(want.len() >= 13, "table rows found in docs: {want:?}");
    assert_eq!(exposed(&m.render()), want);
}

#[test]
fn every_help_line_is_present_and_label_values_are_documented() {
    let (_, _, m) = metrics();
    let text = m.render();
    let docs = docs();
    for (name, _) in exposed(&text) {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "no help for {name}"
        );
    }
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((_, labels)) = line.split_once('{') else {
            continue;
        };
        let labels = labels.split_once('}').unwrap().0;
        for pair in labels.split(',') {
            let v = pair.split_once('=').unwrap().1.trim_matches('"');
            assert!(
                docs.contains(&format!("`{v}`")),
                "label value {v} undocumented"
            );
        }
    }
}

#[test]
fn labelled_series_start_at_zero() {
    let (_, _, m) = metrics();
    let text = m.render();
    for o in ConnOutcome::ALL {
        let s = format!(
            "{PREFIX}client_connections_total{{outcome=\"{}\"}}",
            o.label()
        );
        assert_eq!(value(&text, &s), Some(0.0), "{s}");
    }
    for s in SessionState::ALL {
        let s = format!("{PREFIX}sessions{{state=\"{}\"}}", s.label());
        assert_eq!(value(&text, &s), Some(0.0), "{s}");
    }
    for why in IgnoredRecord::ALL {
        let s = format!(
            "{PREFIX}records_ignored_total{{reason=\"{}\"}}",
            why.label()
        );
        assert_eq!(value(&text, &s), Some(0.0), "{s}");
    }
    assert_eq!(value(&text, &format!("{PREFIX}route_epoch")), Some(0.0));
    assert_eq!(value(&text, &format!("{PREFIX}primary_known")), Some(0.0));
}

#[test]
fn render_reads_stats_route_and_zookeeper_state() {
    use std::sync::atomic::Ordering::Relaxed;
    let (stats, table, m) = metrics();
    stats.connections_accepted.fetch_add(3, Relaxed);
    stats.connection_closed(ConnOutcome::NoPrimary);
    stats.bytes_backend_to_client.fetch_add(1234, Relaxed);
    stats.record_ignored(IgnoredRecord::Stale);
    stats.zk_disconnects.fetch_add(2, Relaxed);
    let _gauge = stats.session(SessionState::Busy);
    table.publish(|prev| Route {
        primary: Some(Primary {
            host: "10.0.0.5".into(),
            port: 3306,
            epoch: 42,
            server_id: None,
            server_uuid: None,
        }),
        ..prev.clone()
    });
    m.set_zk_state(|| "connected");

    let text = m.render();
    let v = |s: &str| value(&text, &format!("{PREFIX}{s}"));
    assert_eq!(v("client_connections_accepted_total"), Some(3.0));
    assert_eq!(
        v("client_connections_total{outcome=\"no_primary\"}"),
        Some(1.0)
    );
    assert_eq!(v("client_connections_active"), Some(1.0));
    assert_eq!(v("sessions{state=\"busy\"}"), Some(1.0));
    assert_eq!(
        v("bytes_total{direction=\"backend_to_client\"}"),
        Some(1234.0)
    );
    assert_eq!(v("bytes_total{direction=\"client_to_backend\"}"), Some(0.0));
    assert_eq!(v("records_ignored_total{reason=\"stale\"}"), Some(1.0));
    assert_eq!(v("zookeeper_disconnects_total"), Some(2.0));
    assert_eq!(v("route_epoch"), Some(42.0));
    assert_eq!(v("primary_known"), Some(1.0));
    assert_eq!(v("zookeeper_session_state{state=\"connected\"}"), Some(1.0));
    assert_eq!(
        v("zookeeper_session_state{state=\"connecting\"}"),
        Some(0.0)
    );
}

#[test]
fn two_proxies_do_not_share_metrics() {
    let (a, _, ma) = metrics();
    let (_, _, mb) = metrics();
    a.connections_accepted
        .fetch_add(7, std::sync::atomic::Ordering::Relaxed);
    let name = format!("{PREFIX}client_connections_accepted_total");
    assert_eq!(value(&ma.render(), &name), Some(7.0));
    assert_eq!(value(&mb.render(), &name), Some(0.0));
}
