//! The replica health checks' control-plane reads (mysql_async, never the
//! data path), logged in with the `[monitor]` credentials: the primary's
//! `@@gtid_binlog_pos`, and a replica's `SHOW SLAVE STATUS` and
//! `@@gtid_current_pos`. Also the GTID lag clock ([`LagClock`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};

pub use crate::control::Login;
use crate::control::{within, ControlError};
use mysql_zk_proxy_protocol::gtid::GtidPos;

/// Why a control-plane read failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("{addr}: {what}")]
    Bad { addr: String, what: String },
}

/// What a replica said about its replication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaFacts {
    pub source: Option<(String, u16)>,
    pub io_running: bool,
    pub sql_running: bool,
    pub seconds_behind: Option<u64>,
    /// `@@gtid_current_pos`.
    pub position: GtidPos,
}

/// A kept control connection to one server, opened again after a failure.
pub struct Probe {
    pub addr: String,
    host: String,
    port: u16,
    conn: Option<Conn>,
}

impl Probe {
    pub fn new(host: &str, port: u16) -> Probe {
        Probe {
            addr: format!("{host}:{port}"),
            host: host.to_owned(),
            port,
            conn: None,
        }
    }

    /// Whether this probe connects to `host:port`.
    pub fn is_for(&self, host: &str, port: u16) -> bool {
        self.host == host && self.port == port
    }

    /// Run `read` within `timeout`; the connection is dropped on any failure.
    async fn bounded<T>(
        &mut self,
        login: &Login,
        timeout: Duration,
        read: impl AsyncFnOnce(&mut Conn) -> Result<T, mysql_async::Error>,
    ) -> Result<T, ProbeError> {
        let run = async {
            let conn = match &mut self.conn {
                Some(c) => c,
                None => self
                    .conn
                    .insert(Conn::new(login.opts(&self.host, self.port)).await?),
            };
            read(conn).await
        };
        let r = within(&self.addr.clone(), timeout, run).await;
        if r.is_err() {
            self.conn = None;
        }
        Ok(r?)
    }

    /// The primary's `@@gtid_binlog_pos`.
    pub async fn binlog_position(
        &mut self,
        login: &Login,
        timeout: Duration,
    ) -> Result<GtidPos, ProbeError> {
        let text = self
            .bounded(login, timeout, async |c: &mut Conn| {
                c.query_first::<String, _>("SELECT @@gtid_binlog_pos").await
            })
            .await?
            .unwrap_or_default();
        text.parse::<GtidPos>().map_err(|e| self.bad(e.to_string()))
    }

    fn bad(&self, what: String) -> ProbeError {
        ProbeError::Bad {
            addr: self.addr.clone(),
            what,
        }
    }

    /// A replica's replication status and applied position.
    pub async fn replica_facts(
        &mut self,
        login: &Login,
        timeout: Duration,
    ) -> Result<ReplicaFacts, ProbeError> {
        let (status, pos) = self
            .bounded(login, timeout, async |c: &mut Conn| {
                let status: Option<Row> = c.query_first("SHOW SLAVE STATUS").await?;
                let pos: Option<String> = c.query_first("SELECT @@gtid_current_pos").await?;
                Ok((status, pos.unwrap_or_default()))
            })
            .await?;
        let position = pos
            .parse::<GtidPos>()
            .map_err(|e| self.bad(e.to_string()))?;
        let Some(row) = status else {
            return Ok(ReplicaFacts {
                source: None,
                io_running: false,
                sql_running: false,
                seconds_behind: None,
                position,
            });
        };
        let text = |col: &str| -> Option<String> { row.get_opt::<String, _>(col)?.ok() };
        let host = text("Master_Host").unwrap_or_default();
        let port = text("Master_Port")
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        Ok(ReplicaFacts {
            source: Some((host, port)),
            io_running: text("Slave_IO_Running").as_deref() == Some("Yes"),
            sql_running: text("Slave_SQL_Running").as_deref() == Some("Yes"),
            seconds_behind: text("Seconds_Behind_Master").and_then(|s| s.parse().ok()),
            position,
        })
    }
}

/// The primary's positions over time, to turn a replica's applied position
/// into a lag: a replica that lacks a transaction the primary had at time
/// `t` lags at least `now - t`. Its resolution is one check interval.
#[derive(Debug, Default)]
pub struct LagClock {
    samples: VecDeque<(Instant, GtidPos)>,
}

impl LagClock {
    /// Remember the primary's position at `at`; samples older than `keep`
    /// are forgotten (keep at least two `max_lag`s).
    pub fn sample(&mut self, at: Instant, pos: GtidPos, keep: Duration) {
        if self.samples.back().is_some_and(|(_, p)| *p == pos) {
            // the same position: the older sample says more
        } else {
            self.samples.push_back((at, pos));
        }
        while self.samples.len() > 1
            && self
                .samples
                .front()
                .is_some_and(|(t, _)| at.duration_since(*t) > keep)
        {
            self.samples.pop_front();
        }
    }

    /// The lag of a replica at `applied`, at `now`: since the oldest
    /// sampled primary position it does not cover (zero when it covers
    /// the newest).
    pub fn lag(&self, applied: &GtidPos, now: Instant) -> Duration {
        self.samples
            .iter()
            .find(|(_, p)| !applied.covers(p))
            .map_or(Duration::ZERO, |(t, _)| now.duration_since(*t))
    }

    /// The newest sampled primary position.
    pub fn latest(&self) -> Option<&GtidPos> {
        self.samples.back().map(|(_, p)| p)
    }

    /// Forget every sample (the primary changed).
    pub fn clear(&mut self) {
        self.samples.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(t: &str) -> GtidPos {
        t.parse().unwrap()
    }

    #[test]
    fn lag_is_the_age_of_the_oldest_missing_position() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut c = LagClock::default();
        c.sample(t0, pos("0-1-10"), s(60));
        c.sample(t0 + s(1), pos("0-1-10"), s(60));
        c.sample(t0 + s(2), pos("0-1-12"), s(60));
        c.sample(t0 + s(3), pos("0-1-20"), s(60));
        let now = t0 + s(4);
        assert_eq!(c.lag(&pos("0-1-20"), now), s(0));
        assert_eq!(c.lag(&pos("0-1-12"), now), s(1));
        assert_eq!(c.lag(&pos("0-1-11"), now), s(2));
        assert_eq!(
            c.lag(&pos("0-1-10"), now),
            s(2),
            "0-1-10 unchanged since t0"
        );
        assert_eq!(c.lag(&pos("0-1-5"), now), s(4));
        c.sample(t0 + s(100), pos("0-1-21"), s(60));
        assert_eq!(
            c.lag(&pos("0-1-5"), t0 + s(100)),
            s(0),
            "older samples forgotten"
        );
    }
}
