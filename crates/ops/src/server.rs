//! One control connection to a MariaDB/MySQL server for the switchover
//! (mysql_async over TCP): facts (`read_only`, `server_id`, GTID position,
//! `SHOW SLAVE STATUS`), read_only, GTID catch-up, promotion and repointing.
//! Every statement is bounded; secrets never appear in errors.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Row};

use super::Endpoint;
use mysql_zk_proxy_core::config::Secret;

/// A failure talking to one server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{addr}: {what}: {source}")]
    Mysql {
        addr: Endpoint,
        what: &'static str,
        #[source]
        source: mysql_async::Error,
    },
    #[error("{addr}: {what}: no answer within {after:?}")]
    Timeout {
        addr: Endpoint,
        what: &'static str,
        after: Duration,
    },
}

/// User and password for one purpose (control or replication).
#[derive(Debug, Clone)]
pub struct Login {
    pub user: String,
    pub password: Secret,
}

/// The replication state of a server (`SHOW SLAVE STATUS`), if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaveStatus {
    pub master: Endpoint,
    pub io_running: String,
    pub sql_running: String,
    /// `Using_Gtid` (MariaDB): `No`, `Current_Pos` or `Slave_Pos`.
    pub using_gtid: String,
    pub last_error: String,
}

/// An open control connection.
pub struct Server {
    pub addr: Endpoint,
    conn: Conn,
    timeout: Duration,
}

impl Server {
    /// Log in as `login`; connect and every later statement are bounded by `timeout`.
    pub async fn connect(
        addr: &Endpoint,
        login: &Login,
        timeout: Duration,
    ) -> Result<Server, ServerError> {
        let opts = OptsBuilder::default()
            .ip_or_hostname(addr.host.clone())
            .tcp_port(addr.port)
            .user(Some(login.user.clone()))
            .pass(Some(login.password.expose().to_owned()))
            .prefer_socket(false)
            .stmt_cache_size(0);
        let conn = bounded(addr, "connect", timeout, Conn::new(opts)).await?;
        Ok(Server {
            addr: addr.clone(),
            conn,
            timeout,
        })
    }

    async fn exec(&mut self, what: &'static str, sql: &str) -> Result<(), ServerError> {
        let t = self.timeout;
        bounded(&self.addr, what, t, self.conn.query_drop(sql)).await
    }

    async fn first<T: mysql_async::prelude::FromRow + Send + 'static>(
        &mut self,
        what: &'static str,
        sql: &str,
    ) -> Result<Option<T>, ServerError> {
        let t = self.timeout;
        bounded(&self.addr, what, t, self.conn.query_first(sql)).await
    }

    /// `@@global.read_only = 0`.
    pub async fn writable(&mut self) -> Result<bool, ServerError> {
        let v: Option<String> = self
            .first("read @@read_only", "SELECT @@global.read_only")
            .await?;
        Ok(matches!(v.as_deref(), Some("0" | "OFF")))
    }

    pub async fn server_id(&mut self) -> Result<u64, ServerError> {
        let v: Option<u64> = self
            .first("read @@server_id", "SELECT @@global.server_id")
            .await?;
        Ok(v.unwrap_or(0))
    }

    /// `@@global.gtid_binlog_pos` (MariaDB).
    pub async fn gtid_binlog_pos(&mut self) -> Result<String, ServerError> {
        let v: Option<String> = self
            .first("read @@gtid_binlog_pos", "SELECT @@global.gtid_binlog_pos")
            .await?;
        Ok(v.unwrap_or_default())
    }

    /// `SHOW SLAVE STATUS`; `None` when the server is not a replica.
    pub async fn slave_status(&mut self) -> Result<Option<SlaveStatus>, ServerError> {
        let row: Option<Row> = self.first("SHOW SLAVE STATUS", "SHOW SLAVE STATUS").await?;
        Ok(row.map(|row| {
            let col = |name: &str| -> String {
                row.get_opt::<Option<String>, _>(name)
                    .and_then(Result::ok)
                    .flatten()
                    .unwrap_or_default()
            };
            SlaveStatus {
                master: Endpoint::new(col("Master_Host"), col("Master_Port").parse().unwrap_or(0)),
                io_running: col("Slave_IO_Running"),
                sql_running: col("Slave_SQL_Running"),
                using_gtid: col("Using_Gtid"),
                last_error: [col("Last_IO_Error"), col("Last_SQL_Error")]
                    .into_iter()
                    .filter(|e| !e.is_empty())
                    .collect::<Vec<_>>()
                    .join("; "),
            }
        }))
    }

    pub(crate) async fn set_read_only(&mut self, on: bool) -> Result<(), ServerError> {
        let sql = format!("SET GLOBAL read_only = {}", u8::from(on));
        self.exec("set read_only", &sql).await
    }

    /// `MASTER_GTID_WAIT(pos, wait)`: true once `pos` is applied, false on timeout.
    pub async fn wait_gtid(&mut self, pos: &str, wait: Duration) -> Result<bool, ServerError> {
        let pos = pos.replace(['\'', '\\'], "");
        let sql = format!(
            "SELECT MASTER_GTID_WAIT('{pos}', {:.3})",
            wait.as_secs_f64()
        );
        let t = wait + self.timeout;
        let r: Option<i64> = bounded(
            &self.addr,
            "MASTER_GTID_WAIT",
            t,
            self.conn.query_first(sql),
        )
        .await?;
        Ok(r == Some(0))
    }

    /// Stop replicating, forget the primary, become writable.
    pub async fn promote(&mut self) -> Result<(), ServerError> {
        self.exec("STOP SLAVE", "STOP SLAVE").await?;
        self.exec("RESET SLAVE ALL", "RESET SLAVE ALL").await?;
        self.set_read_only(false).await
    }

    /// Replicate from `primary` with GTID from this server's own binlog
    /// position (it was the primary until now). Stays read-only.
    pub async fn repoint(&mut self, primary: &Endpoint, repl: &Login) -> Result<(), ServerError> {
        self.exec("STOP SLAVE", "STOP SLAVE").await?;
        self.exec("RESET SLAVE ALL", "RESET SLAVE ALL").await?;
        self.exec(
            "set gtid_slave_pos",
            "SET GLOBAL gtid_slave_pos = @@global.gtid_binlog_pos",
        )
        .await?;
        self.change_master(primary, repl).await
    }

    /// A replica follows `primary` from its own replicated position
    /// (another replica's repoint at a switchover).
    pub async fn follow(&mut self, primary: &Endpoint, repl: &Login) -> Result<(), ServerError> {
        self.exec("STOP SLAVE", "STOP SLAVE").await?;
        self.change_master(primary, repl).await
    }

    async fn change_master(&mut self, primary: &Endpoint, repl: &Login) -> Result<(), ServerError> {
        let change = format!(
            "CHANGE MASTER TO MASTER_HOST={}, MASTER_PORT={}, MASTER_USER={}, \
             MASTER_PASSWORD={}, MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
            quote(&primary.host),
            primary.port,
            quote(&repl.user),
            quote(repl.password.expose())
        );
        self.exec("CHANGE MASTER TO", &change).await?;
        self.exec("START SLAVE", "START SLAVE").await
    }

    /// Best-effort goodbye.
    pub async fn close(self) {
        let _ = tokio::time::timeout(self.timeout, self.conn.disconnect()).await;
    }
}

async fn bounded<T>(
    addr: &Endpoint,
    what: &'static str,
    after: Duration,
    fut: impl std::future::Future<Output = Result<T, mysql_async::Error>>,
) -> Result<T, ServerError> {
    match tokio::time::timeout(after, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(ServerError::Mysql {
            addr: addr.clone(),
            what,
            source,
        }),
        Err(_) => Err(ServerError::Timeout {
            addr: addr.clone(),
            what,
            after,
        }),
    }
}

/// A SQL string literal (quotes and backslashes escaped).
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quote_escapes_quotes_and_backslashes() {
        assert_eq!(quote("repl"), "'repl'");
        assert_eq!(quote(r"a'b\c"), r"'a\'b\\c'");
    }
}
