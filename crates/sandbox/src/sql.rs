//! Root SQL on a sandbox `MariaDb` through the `mariadb --no-defaults -N -B`
//! CLI over its unix socket: blocking and async flavours, errors with stderr.

use super::mariadb::MariaDb;
use super::{Result, SandboxError};
use std::io::Write;
use std::process::{Output, Stdio};

impl MariaDb {
    fn cli_args(&self, vertical: bool) -> Vec<String> {
        let mut args = vec![
            "--no-defaults".into(),
            format!("--socket={}", self.socket().display()),
            "--user=root".into(),
            "--connect-timeout=10".into(),
            "-B".into(),
        ];
        args.push(if vertical { "-E" } else { "-N" }.into());
        args
    }

    fn sql_result(&self, sql: &str, out: Output) -> Result<String> {
        if out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout);
            return Ok(text.trim_end_matches('\n').to_owned());
        }
        let mut command: String = sql.chars().take(300).collect();
        if command.len() < sql.len() {
            command.push_str("...");
        }
        Err(SandboxError::Command {
            instance: self.name().to_owned(),
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }

    /// Run `sql` (one or more `;`-separated statements) as root; returns the
    /// tab-separated rows without headers. Blocking: from async code prefer
    /// [`MariaDb::sql_async`].
    pub fn sql(&self, sql: &str) -> Result<String> {
        let mut child = std::process::Command::new("mariadb")
            .args(self.cli_args(false))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| SandboxError::io(format!("{}: spawn mariadb CLI", self.name()), e))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(sql.as_bytes()).map_err(|e| {
                SandboxError::io(format!("{}: write SQL to mariadb CLI", self.name()), e)
            })?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| SandboxError::io(format!("{}: wait for mariadb CLI", self.name()), e))?;
        self.sql_result(sql, out)
    }

    /// [`MariaDb::sql`] without blocking the async runtime.
    pub async fn sql_async(&self, sql: &str) -> Result<String> {
        self.run_async(sql, false).await
    }

    async fn run_async(&self, sql: &str, vertical: bool) -> Result<String> {
        use tokio::io::AsyncWriteExt;
        let mut child = tokio::process::Command::new("mariadb")
            .args(self.cli_args(vertical))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| SandboxError::io(format!("{}: spawn mariadb CLI", self.name()), e))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(sql.as_bytes()).await.map_err(|e| {
                SandboxError::io(format!("{}: write SQL to mariadb CLI", self.name()), e)
            })?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| SandboxError::io(format!("{}: wait for mariadb CLI", self.name()), e))?;
        self.sql_result(sql, out)
    }

    /// `SHOW SLAVE STATUS` as (column, value) pairs; empty when not a replica.
    pub async fn slave_status(&self) -> Result<Vec<(String, String)>> {
        let out = self.run_async("SHOW SLAVE STATUS", true).await?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
            .collect())
    }

    /// One column of `SHOW SLAVE STATUS` (e.g. `Slave_IO_Running`).
    pub(crate) async fn slave_status_field(&self, field: &str) -> Result<Option<String>> {
        let st = self.slave_status().await?;
        Ok(st.into_iter().find(|(k, _)| k == field).map(|(_, v)| v))
    }

    /// `@@global.gtid_binlog_pos`.
    pub async fn gtid_binlog_pos(&self) -> Result<String> {
        self.sql_async("SELECT @@global.gtid_binlog_pos").await
    }

    /// `@@global.read_only` as a bool.
    pub async fn read_only(&self) -> Result<bool> {
        Ok(self.sql_async("SELECT @@global.read_only").await? == "1")
    }

    /// `MASTER_GTID_WAIT(pos, timeout)`: true once this server applied `pos`.
    pub async fn wait_gtid(&self, pos: &str, timeout_s: u32) -> Result<bool> {
        let pos = pos.replace('\'', "");
        let r = self
            .sql_async(&format!("SELECT MASTER_GTID_WAIT('{pos}', {timeout_s})"))
            .await?;
        Ok(r == "0")
    }
}
