//! mysql-zk-proxy's test bench, the sandbox: real ZooKeeper and MariaDB
//! (primary + GTID replica) as plain processes on free loopback ports in
//! temp dirs — the integration-test harness and the cluster of the
//! `mysql-zk-proxy-sandbox` binary.
//!
//! Layer: beside the deployed binary, not under it. It depends on
//! `mysql-zk-proxy-core` (config and TLS types) and `mysql-zk-proxy-ops`
//! (its switchover is the operator switchover; its `drill` is the ops
//! drill with the sandbox's values); only tests, benches, scripts and
//! developers depend on it, so the binary operators deploy holds none of it.
//!
//! * [`ZkServer`]: one standalone ZooKeeper (tickTime 500 ms), optionally with
//!   a TLS client port ([`ZkTlsSpec`]).
//! * [`MariaDb`]: one mariadbd (binlog, GTID) from a cached datadir template.
//! * [`Cluster`]: ZooKeeper + primary + GTID replica, users, published primary;
//!   planned [`Cluster::switchover`] and [`Cluster::promote_replica_after_crash`].
//! * [`zk_write`] / [`zk_read`] / [`zk_delete`]: tiny async ZooKeeper client helpers.
//! * [`cli`]: `mysql-zk-proxy-sandbox up|down|status|switchover|publish|env|drill`.
//!
//! Every server is started by PID, signalled by PID only, reaped, and killed on
//! `Drop` (also when a test panics). Instance dirs record the owner PID so a
//! later start sweeps what a hard-killed test process left behind.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mysql_zk_proxy_sandbox::SandboxError> {
//! use mysql_zk_proxy_sandbox::{cluster::APP_USER, Cluster};
//! let mut c = Cluster::start().await?; // ~0.7-1.3 s: ZK + db1 + db2, epoch 1 published
//! let (zk, path) = (c.zk_connect(), c.primary_path().to_owned());
//! c.primary().sql_async("INSERT INTO app.kv VALUES ('a', 'b', NOW())").await?;
//! let report = c.switchover().await?; // db2 primary, epoch 2 in the znode
//! c.primary_mut().kill()?; // unplanned: crash the new primary ...
//! let port = c.promote_replica_after_crash().await?; // ... promote db1
//! c.publish_json(port, report.new_epoch + 1).await?;
//! c.zk().pause()?; // SIGSTOP ZooKeeper: client sessions expire
//! # let _ = (zk, path, APP_USER); Ok(()) }
//! ```
//!
//! Servers need the Debian packages that `scripts/install-deps.sh` installs.

pub mod cli;
pub mod cluster;
pub mod crash;
pub mod failover;
pub mod instance;
pub mod mariadb;
pub mod persistent;
pub mod process;
mod sql;
pub mod state;
mod template;
pub mod zk_tls;
pub mod zkclient;
pub mod zookeeper;

pub use cluster::{Cluster, ClusterBuilder, DEFAULT_PRIMARY_PATH};
pub use failover::SwitchoverReport;
pub use mariadb::{DbSpec, MariaDb};
pub use zk_tls::{ClientAuth, ZkTlsSpec};
pub use zkclient::{zk_connect, zk_connect_as, zk_delete, zk_read, zk_set_versioned, zk_write};
pub use zookeeper::ZkServer;

use std::path::PathBuf;

/// Everything that can go wrong while starting, driving or stopping sandbox servers.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A file-system or process-spawn operation failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A server did not come up; `log_tail` is the end of its log.
    #[error("{instance} failed to start: {reason}\n--- log tail ---\n{log_tail}")]
    Start {
        instance: String,
        reason: String,
        log_tail: String,
    },
    /// A helper command (mariadb CLI, mariadb-install-db, ...) failed.
    #[error("{instance}: `{command}` failed ({status}): {stderr}")]
    Command {
        instance: String,
        command: String,
        status: String,
        stderr: String,
    },
    /// A condition was not reached before its deadline.
    #[error("timed out after {secs:.1}s waiting for {what}")]
    Timeout { what: String, secs: f64 },
    /// No ZooKeeper session could be established.
    #[error(transparent)]
    ZkSession(#[from] mysql_zk_proxy_core::discovery::connect::ConnectError),
    /// A ZooKeeper client operation failed.
    #[error("zookeeper {op} {path}: {source}")]
    Zk {
        op: &'static str,
        path: String,
        #[source]
        source: zookeeper_client::Error,
    },
    /// An operation was refused in the current state (e.g. no replica).
    #[error("{0}")]
    State(String),
    /// The persistent sandbox state file is missing or unreadable.
    #[error("sandbox state {path}: {reason}")]
    StateFile { path: PathBuf, reason: String },
    #[error("{0}")]
    Other(String),
    /// `drill` ran but its verdict failed (the report says why).
    #[error("the drill's verdict is FAIL")]
    DrillFailed,
}

impl SandboxError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        SandboxError::Io {
            what: what.into(),
            source,
        }
    }
}

/// Result alias for the sandbox.
pub type Result<T, E = SandboxError> = std::result::Result<T, E>;
