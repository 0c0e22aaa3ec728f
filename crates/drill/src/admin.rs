//! The proxy's admin HTTP as the drill reads it: `/metrics` (counters before
//! and after, by series) and `/status` (`last_failover`), over a minimal
//! HTTP/1.0 GET ([`fetch`], also the integration tests' admin client).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::DrillError;

/// Bound on one admin request.
const TIMEOUT: Duration = Duration::from_secs(5);

/// `GET path` on `addr` with extra request header lines (`"Name: value"`),
/// read to the end of the connection: (status code, body). Unbounded in
/// time: callers bound it.
pub async fn fetch(addr: &str, path: &str, headers: &[&str]) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr).await?;
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    let req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n{extra}\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    let text = String::from_utf8_lossy(&out);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok());
    let code = code.ok_or_else(|| {
        let got = head.chars().take(80).collect::<String>();
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not an HTTP response: {got:?}"),
        )
    })?;
    Ok((code, body.to_owned()))
}

/// `GET path` on `addr`: the body of a 200 answer.
pub async fn get(addr: &str, path: &str) -> Result<String, DrillError> {
    let err = |reason: String| DrillError::Admin {
        addr: addr.to_owned(),
        path: path.to_owned(),
        reason,
    };
    match tokio::time::timeout(TIMEOUT, fetch(addr, path, &[])).await {
        Err(_) => Err(err(format!("no answer in {TIMEOUT:?}"))),
        Ok(Err(e)) => Err(err(e.to_string())),
        Ok(Ok((200, body))) => Ok(body),
        Ok(Ok((code, _))) => Err(err(format!("answered {code}"))),
    }
}

/// Every sample of a Prometheus text exposition: `name{labels}` -> value.
pub(crate) fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.trim().to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// `after - before` for every series that changed (absent before = 0).
pub fn delta(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d != 0.0)
        .collect()
}

/// `GET /metrics`, parsed.
pub async fn metrics(addr: &str) -> Result<BTreeMap<String, f64>, DrillError> {
    Ok(parse_metrics(&get(addr, "/metrics").await?))
}

/// The `last_failover` part of `/status` (see docs/metrics.md): the
/// proxy's own type, read back.
pub use mysql_zk_proxy_core::timeline::TimelineView as LastFailover;

/// Milliseconds from `written` (the record's mtime in ZooKeeper) to
/// `after_ms` past the proxy seeing the record (compares two clocks).
pub(crate) fn since_written(
    f: &LastFailover,
    written: SystemTime,
    after_ms: Option<f64>,
) -> Option<f64> {
    let gap = match f.record_seen.duration_since(written) {
        Ok(d) => d.as_secs_f64() * 1000.0,
        Err(e) => -e.duration().as_secs_f64() * 1000.0,
    };
    Some(gap + after_ms?)
}

#[derive(Deserialize)]
struct StatusDoc {
    last_failover: Option<LastFailover>,
}

/// `GET /status`: its `last_failover`.
pub async fn last_failover(addr: &str) -> Result<Option<LastFailover>, DrillError> {
    let body = get(addr, "/status").await?;
    let doc: StatusDoc = serde_json::from_str(&body).map_err(|e| DrillError::Admin {
        addr: addr.to_owned(),
        path: "/status".into(),
        reason: format!("not the expected JSON: {e}"),
    })?;
    Ok(doc.last_failover)
}

/// Wait (bounded by `within`) until `/status` shows a failover to an epoch
/// above `after_epoch` whose first statement was answered; the last view
/// seen otherwise.
pub(crate) async fn wait_failover(
    addr: &str,
    after_epoch: u64,
    within: Duration,
) -> Option<LastFailover> {
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = None;
    loop {
        if let Ok(Some(f)) = last_failover(addr).await {
            if f.epoch > after_epoch {
                let done = f.first_statement_after_ms.is_some();
                seen = Some(f);
                if done {
                    return seen;
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_samples_and_deltas() {
        let before = parse_metrics("# HELP x y\n# TYPE a counter\na 1\nb{code=\"9005\"} 2\nc 7\n");
        assert_eq!(before.get("b{code=\"9005\"}"), Some(&2.0));
        let after = parse_metrics("a 4\nb{code=\"9005\"} 2\nc 7\nd 1\n");
        let d = delta(&before, &after);
        assert_eq!(d.len(), 2, "{d:?}");
        assert_eq!((d["a"], d["d"]), (3.0, 1.0));
    }

    #[test]
    fn since_written_adds_the_proxy_phase_to_the_clock_gap() {
        let doc = r#"{"from":null,"to":"db2:3306","epoch":3,
            "record_seen":"2026-01-01T00:00:00.250Z","swapped_after_ms":null,
            "first_statement_after_ms":null,"sessions_migrated":0,"sessions_closed":0,
            "transactions_aborted":0,"statements_held":0}"#;
        let f: LastFailover = serde_json::from_str(doc).unwrap();
        let written = humantime::parse_rfc3339("2026-01-01T00:00:00.240Z").unwrap();
        assert_eq!(since_written(&f, written, Some(1.5)), Some(11.5));
        let later = humantime::parse_rfc3339("2026-01-01T00:00:00.255Z").unwrap();
        assert_eq!(since_written(&f, later, Some(1.0)), Some(-4.0));
        assert_eq!(since_written(&f, written, None), None);
    }
}
