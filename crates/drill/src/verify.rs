//! The end of a drill: find the final primary (the record in ZooKeeper),
//! connect to it directly, and check that every write the drill saw
//! acknowledged is there with the value it committed.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};
use serde::Serialize;

use super::load::{Acked, TABLE};
use super::DrillError;
use mysql_zk_proxy_core::config::{ZkAuth, ZkTlsConfig};
use mysql_zk_proxy_core::discovery::record::parse_record;

/// How many lost ids the report lists (the count is always complete).
const LIST_LOST: usize = 50;

/// Where to read the final primary from, and who to log in as.
#[derive(Debug, Clone)]
pub struct VerifyTarget {
    pub zk: String,
    pub primary_path: String,
    /// `--zk-tls-*`: TLS to ZooKeeper (`None`: plain).
    pub tls: Option<ZkTlsConfig>,
    /// `--zk-auth-*`: digest credentials (`None`: none).
    pub auth: Option<ZkAuth>,
    pub user: String,
    pub password: String,
    pub database: String,
}

/// The verification result.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Verification {
    /// `host:port` of the final primary (from ZooKeeper).
    pub primary: String,
    pub acknowledged: u64,
    /// Acknowledged rows found with the expected content.
    pub found: u64,
    /// Acknowledged rows missing, or present with another `n` (a lost UPDATE).
    pub lost: u64,
    /// The first lost `seq`s.
    pub lost_seqs: Vec<u64>,
    /// Rows of this run that exist although the client never saw their OK
    /// (the connection broke before the answer): not an error, an ambiguity.
    pub unacknowledged_present: u64,
}

/// The record's data and stat, read in a bounded session (over TLS and
/// authenticated when set).
async fn read_record(t: &VerifyTarget) -> Result<(Vec<u8>, zookeeper_client::Stat), DrillError> {
    let (connect, path) = (&t.zk, &t.primary_path);
    let bad = |reason: String| DrillError::Verify { reason };
    let timeout = Duration::from_secs(10);
    let client = mysql_zk_proxy_ops::zk::connect(connect, timeout, t.tls.as_ref(), t.auth.as_ref())
        .await
        .map_err(|e| bad(e.to_string()))?;
    match mysql_zk_proxy_ops::zk::get(&client, path).await {
        Ok(Some(got)) => Ok(got),
        Ok(None) => Err(bad(format!("{path} does not exist: no primary published"))),
        Err(e) => Err(bad(format!("cannot read the record from {connect}: {e}"))),
    }
}

/// The final primary's address, from the record in ZooKeeper.
pub async fn final_primary(t: &VerifyTarget) -> Result<(String, u16), DrillError> {
    let (data, _) = read_record(t).await?;
    let rec = parse_record(&data).map_err(|e| DrillError::Verify {
        reason: format!("{}: {e}", t.primary_path),
    })?;
    Ok((rec.host, rec.port))
}

/// When the current primary record was written (the znode's mtime, the
/// ZooKeeper server's clock, ms precision).
pub(crate) async fn record_written(t: &VerifyTarget) -> Result<SystemTime, DrillError> {
    let (_, stat) = read_record(t).await?;
    let ms = u64::try_from(stat.mtime).map_err(|_| DrillError::Verify {
        reason: format!("{}: mtime {}", t.primary_path, stat.mtime),
    })?;
    Ok(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
}

/// How to log in to `primary` as `t`'s user, on its database.
pub(crate) fn primary_opts(primary: (&str, u16), t: &VerifyTarget) -> OptsBuilder {
    OptsBuilder::default()
        .ip_or_hostname(primary.0)
        .tcp_port(primary.1)
        .user(Some(&t.user))
        .pass(Some(&t.password))
        .db_name(Some(&t.database))
        .prefer_socket(false)
}

/// Compare the rows of `run` on `primary` with `acked`.
pub async fn check(
    primary: (&str, u16),
    t: &VerifyTarget,
    run: u64,
    acked: &[Acked],
) -> Result<Verification, DrillError> {
    let opts = primary_opts(primary, t);
    let sql_err = |e: mysql_async::Error| DrillError::Verify {
        reason: format!("on the final primary {}:{}: {e}", primary.0, primary.1),
    };
    let mut conn = Conn::new(opts).await.map_err(sql_err)?;
    let rows: Vec<(u64, i64)> = conn
        .query(format!("SELECT seq, n FROM {TABLE} WHERE run = {run}"))
        .await
        .map_err(sql_err)?;
    let _ = conn.disconnect().await;
    Ok(compare(
        format!("{}:{}", primary.0, primary.1),
        &rows.into_iter().collect(),
        acked,
    ))
}

/// The pure part of [`check`].
pub fn compare(primary: String, rows: &HashMap<u64, i64>, acked: &[Acked]) -> Verification {
    let mut lost_seqs: Vec<u64> = acked
        .iter()
        .filter(|a| rows.get(&a.seq) != Some(&a.n))
        .map(|a| a.seq)
        .collect();
    lost_seqs.sort_unstable();
    let lost = lost_seqs.len() as u64;
    lost_seqs.truncate(LIST_LOST);
    let acked_seqs: std::collections::HashSet<u64> = acked.iter().map(|a| a.seq).collect();
    Verification {
        primary,
        acknowledged: acked.len() as u64,
        found: acked.len() as u64 - lost,
        lost,
        lost_seqs,
        unacknowledged_present: rows.keys().filter(|s| !acked_seqs.contains(s)).count() as u64,
    }
}

/// Find the final primary and check `acked` there.
pub async fn verify(
    t: &VerifyTarget,
    run: u64,
    acked: &[Acked],
) -> Result<Verification, DrillError> {
    let (host, port) = final_primary(t).await?;
    check((&host, port), t, run, acked).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_rows_and_lost_updates_count_as_lost() {
        let rows: HashMap<u64, i64> = [(1, 0), (2, 0), (4, 0)].into_iter().collect();
        let a = |seq, n| Acked {
            seq,
            n,
            gtid: None,
            at: Duration::ZERO,
        };
        let acked = [a(1, 0), a(2, 1), a(3, 0)];
        let v = compare("p:1".into(), &rows, &acked);
        assert_eq!((v.acknowledged, v.found, v.lost), (3, 1, 2));
        assert_eq!(v.lost_seqs, vec![2, 3]);
        assert_eq!(v.unacknowledged_present, 1);
    }
}
