//! Causal reads for `read_only.consistency` `fleet` and `proxy`: before a
//! read at a rest point, the position it must see is taken from a
//! [`PositionSource`] (the primary's `@@gtid_binlog_pos`, one round trip,
//! or the position this proxy acknowledged, no round trip), then the
//! session's replica is asked to reach it: `@@gtid_current_pos` when that
//! already covers it, else `MASTER_GTID_WAIT(pos, remaining)`. Both run on
//! pooled control connections, never on the client's own session, so its
//! state (warnings, `FOUND_ROWS()`, ...) is untouched. The whole wait is
//! bounded by `read_only.causal_timeout`.
//!
//! MariaDB caveat: `MASTER_GTID_WAIT` compares with `@@gtid_slave_pos`, the
//! position replicated into the server; a former primary that has not
//! replicated a transaction since its demotion may have a position only in
//! its binlog, which is why `@@gtid_current_pos` is read first.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Pool, PoolConstraints, PoolOpts};

use super::SlotCounters;
use crate::acknowledged::Ledger;
use crate::control::Login;
use crate::routing::{Primary, RouteTable};
use crate::session::causal::{BeforeRead, WaitError, WaitFuture};
use mysql_zk_proxy_protocol::gtid::GtidPos;

/// Most pooled control connections per server.
const POOL_MAX: usize = 32;

/// Why a causal wait failed; the read does not run (error 9020).
#[derive(Debug, thiserror::Error)]
pub enum CausalError {
    #[error("no primary known to read the GTID position from")]
    NoPrimary,
    #[error("{addr}: {source}")]
    Mysql {
        addr: String,
        #[source]
        source: mysql_async::Error,
    },
    #[error("{addr}: {source}")]
    Position {
        addr: String,
        #[source]
        source: mysql_zk_proxy_protocol::gtid::GtidError,
    },
    #[error("replica {addr} did not reach GTID position {pos} within read_only.causal_timeout ({after:?})")]
    NotReached {
        addr: String,
        pos: String,
        after: Duration,
    },
    #[error("no causal answer from replica {addr} within read_only.causal_timeout ({after:?})")]
    Timeout { addr: String, after: Duration },
}

/// A boxed position read.
pub type PositionFuture<'a> =
    Pin<Box<dyn Future<Output = Result<GtidPos, CausalError>> + Send + 'a>>;

/// Where the position a read must see comes from.
pub trait PositionSource: Send + Sync {
    fn position(&self) -> PositionFuture<'_>;
    /// The position when it is known without I/O (`proxy`: the ledger's);
    /// an empty one means there is nothing to wait for.
    fn local(&self) -> Option<GtidPos> {
        None
    }
}

/// `fleet`: the primary's `@@gtid_binlog_pos` when the read begins.
pub struct PrimaryPosition {
    pub table: Arc<RouteTable>,
    pub pools: Arc<Pools>,
}

impl PositionSource for PrimaryPosition {
    fn position(&self) -> PositionFuture<'_> {
        Box::pin(async move {
            let route = self.table.current();
            let p = route.primary.as_ref().ok_or(CausalError::NoPrimary)?;
            read_position(&self.pools.get(p), p, "SELECT @@gtid_binlog_pos").await
        })
    }
}

/// Read a position variable over a pooled connection to `p`.
async fn read_position(pool: &Pool, p: &Primary, sql: &str) -> Result<GtidPos, CausalError> {
    let addr = p.address();
    let mysql = |source| CausalError::Mysql {
        addr: addr.clone(),
        source,
    };
    let mut conn = pool.get_conn().await.map_err(mysql)?;
    let text: Option<String> = conn.query_first(sql).await.map_err(mysql)?;
    text.unwrap_or_default()
        .parse::<GtidPos>()
        .map_err(|source| CausalError::Position {
            addr: addr.clone(),
            source,
        })
}

/// `proxy`: the highest position this proxy acknowledged to its clients
/// on the current primary (the ledger's, docs/ledger.md).
pub struct AcknowledgedPosition(pub Arc<Ledger>);

impl PositionSource for AcknowledgedPosition {
    fn position(&self) -> PositionFuture<'_> {
        let pos = self.0.position();
        Box::pin(async move { Ok(pos) })
    }

    fn local(&self) -> Option<GtidPos> {
        Some(self.0.position())
    }
}

/// Control connection pools by server address.
pub struct Pools {
    login: Login,
    pools: Mutex<HashMap<String, Pool>>,
}

impl Pools {
    pub fn new(login: Login) -> Pools {
        Pools {
            login,
            pools: Mutex::default(),
        }
    }

    fn get(&self, p: &Primary) -> Pool {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools
            .entry(p.address())
            .or_insert_with(|| {
                let constraints = PoolConstraints::new(0, POOL_MAX).expect("0 <= max");
                let opts = self
                    .login
                    .opts(&p.host, p.port)
                    .pool_opts(PoolOpts::default().with_constraints(constraints));
                Pool::new(opts)
            })
            .clone()
    }
}

/// What every slot's causal hook shares.
pub struct CausalShared {
    pub source: Arc<dyn PositionSource>,
    pub pools: Arc<Pools>,
    /// The primary's route: a session moved to the primary needs no wait.
    pub table: Arc<RouteTable>,
    pub timeout: Duration,
}

impl CausalShared {
    /// The hook of one slot's sessions (its waits counted there).
    pub fn for_slot(self: &Arc<Self>, counters: Arc<SlotCounters>) -> CausalReads {
        CausalReads {
            shared: self.clone(),
            counters,
        }
    }

    async fn wait_for(&self, backend: &Primary, deadline: Instant) -> Result<(), CausalError> {
        let on_primary = self.table.current().primary.as_ref().map(Primary::address);
        if on_primary == Some(backend.address()) {
            return Ok(());
        }
        // A target known without I/O and empty: nothing to wait for, not
        // even the replica's position. Otherwise both are read after the
        // read arrived, so in parallel: a replica position that covers the
        // target has everything the read must see, whichever answered first.
        let local = self.source.local();
        if local.as_ref().is_some_and(GtidPos::is_empty) {
            return Ok(());
        }
        let pool = self.pools.get(backend);
        let replica = read_position(&pool, backend, "SELECT @@gtid_current_pos");
        let (target, current) = match local {
            Some(target) => (target, replica.await),
            None => {
                let (target, current) = tokio::join!(self.source.position(), replica);
                (target?, current)
            }
        };
        if target.is_empty() || current?.covers(&target) {
            return Ok(());
        }
        let addr = backend.address();
        let mysql = |source| CausalError::Mysql {
            addr: addr.clone(),
            source,
        };
        let mut conn = pool.get_conn().await.map_err(mysql)?;
        let left = deadline.saturating_duration_since(Instant::now());
        let waited: Option<i64> = conn
            .exec_first(
                "SELECT MASTER_GTID_WAIT(?, ?)",
                (target.to_string(), left.as_secs_f64()),
            )
            .await
            .map_err(mysql)?;
        match waited {
            Some(0) => Ok(()),
            _ => Err(CausalError::NotReached {
                addr,
                pos: target.to_string(),
                after: self.timeout,
            }),
        }
    }
}

/// The [`BeforeRead`] hook of one slot's sessions.
pub struct CausalReads {
    shared: Arc<CausalShared>,
    counters: Arc<SlotCounters>,
}

impl BeforeRead for CausalReads {
    fn wait<'a>(&'a self, backend: &'a Primary) -> WaitFuture<'a> {
        Box::pin(async move {
            let t0 = Instant::now();
            let timeout = self.shared.timeout;
            let run = self.shared.wait_for(backend, t0 + timeout);
            let r = match tokio::time::timeout(timeout, run).await {
                Ok(r) => r,
                Err(_) => Err(CausalError::Timeout {
                    addr: backend.address(),
                    after: timeout,
                }),
            };
            let c = &self.counters;
            c.causal_waits.fetch_add(1, Relaxed);
            c.causal_wait_us
                .fetch_add(t0.elapsed().as_micros() as u64, Relaxed);
            if r.is_err() {
                c.causal_failures.fetch_add(1, Relaxed);
            }
            r.map_err(WaitError::from)
        })
    }
}
