//! Control-plane logins (mysql_async over TCP, never the data path) as the
//! `[fencing]` user: one [`Login`] serves the failover verifier, the loss
//! reporter's GTID reads and the replica health checks.

use mysql_async::{Conn, OptsBuilder};

use crate::config::{ConfigError, FencingConfig, Secret};

/// Who a control-plane connection logs in as.
#[derive(Debug, Clone)]
pub struct Login {
    pub user: String,
    pub password: Secret,
}

impl Login {
    /// The `[fencing]` user, its password resolved now.
    pub fn fencing(cfg: &FencingConfig) -> Result<Login, ConfigError> {
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
