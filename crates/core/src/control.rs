//! Control-plane logins (mysql_async over TCP, never the data path) as the
//! `[monitor]` user: one [`Login`] serves the failover verifier, the loss
//! reporter's GTID reads and the replica health checks.

use std::future::Future;
use std::time::Duration;

use mysql_async::{Conn, OptsBuilder};

use crate::config::{ConfigError, MonitorConfig, Secret};

/// Why a control-plane read got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{addr}: {source}")]
    Mysql {
        addr: String,
        #[source]
        source: mysql_async::Error,
    },
    #[error("{addr}: no answer within {after:?}")]
    Timeout { addr: String, after: Duration },
}

/// `read` (a login and queries on `addr`) bounded by `bound`.
pub async fn within<T>(
    addr: &str,
    bound: Duration,
    read: impl Future<Output = Result<T, mysql_async::Error>>,
) -> Result<T, ControlError> {
    match tokio::time::timeout(bound, read).await {
        Ok(r) => r.map_err(|source| ControlError::Mysql {
            addr: addr.to_owned(),
            source,
        }),
        Err(_) => Err(ControlError::Timeout {
            addr: addr.to_owned(),
            after: bound,
        }),
    }
}

/// Who a control-plane connection logs in as.
#[derive(Debug, Clone)]
pub struct Login {
    pub user: String,
    pub password: Secret,
}

impl Login {
    /// The `[monitor]` user, its password resolved now.
    pub fn monitor(cfg: &MonitorConfig) -> Result<Login, ConfigError> {
        Ok(Login {
            user: cfg.user.clone(),
            password: cfg.resolve_password()?,
        })
    }

    /// Connection options for `host:port` (TCP, no statement cache).
    pub fn opts(&self, host: &str, port: u16) -> OptsBuilder {
        OptsBuilder::default()
            .ip_or_hostname(host.to_owned())
            .tcp_port(port)
            .user(Some(self.user.clone()))
            .pass(Some(self.password.expose().to_owned()))
            .prefer_socket(false)
            .stmt_cache_size(0)
    }

    /// Log in to `host:port` on a fresh connection, run `read` on it and
    /// say goodbye (best effort: the answer is what matters).
    pub async fn once<T>(
        &self,
        host: &str,
        port: u16,
        read: impl AsyncFnOnce(&mut Conn) -> Result<T, mysql_async::Error>,
    ) -> Result<T, mysql_async::Error> {
        let mut conn = Conn::new(self.opts(host, port)).await?;
        let answer = read(&mut conn).await;
        let _ = conn.disconnect().await;
        answer
    }
}
