//! Configuration: serde types (unknown keys rejected, durations as "10s"),
//! loading from TOML, command-line overrides and `validate()`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod failover;
pub use failover::{MonitorConfig, Secret, UserConfig};
mod listen;
pub use listen::{ListenConfig, ProxyProtocol, ShutdownConfig};
mod read_only;
pub use read_only::{Balance, Consistency, ReadOnlyConfig};
mod runtime;
pub use runtime::{RuntimeConfig, RuntimeMode};
pub mod secrets;
pub use crate::tls::{BackendTlsConfig, ListenTlsConfig, ZkTlsConfig};
use crate::tls::{TlsError, TlsSections};
pub use secrets::ZkAuth;
mod zookeeper;
pub use zookeeper::ZookeeperConfig;

/// A configuration problem; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("invalid `{key}`: {problem}")]
    Invalid { key: &'static str, problem: String },
}

pub fn invalid(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        problem: problem.into(),
    }
}

/// A TLS section or file that cannot be used, named by its key.
impl From<TlsError> for ConfigError {
    fn from(e: TlsError) -> Self {
        invalid(e.key(), e.to_string())
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub listen: ListenConfig,
    pub zookeeper: ZookeeperConfig,
    pub backend: BackendConfig,
    pub failover: FailoverConfig,
    /// The proxy's own login for its control-plane checks (new primaries,
    /// replicas, GTID positions). Configs written with the section's former
    /// name, `[fencing]`, still load.
    #[serde(alias = "fencing")]
    pub monitor: MonitorConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
    /// `[[users]]`: hashes for session migration (see `crate::credentials`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<UserConfig>,
    pub shutdown: ShutdownConfig,
    pub runtime: RuntimeConfig,
    /// `[read_only]`: the read-only listener on replicas.
    pub read_only: ReadOnlyConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BackendConfig {
    /// Bound on the TCP connect + greeting read from a primary.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// TCP keepalive idle time on backend connections; "0s" turns it off.
    #[serde(with = "humantime_serde")]
    pub keepalive: Duration,
    /// `[backend.tls]`: TLS to primaries.
    pub tls: BackendTlsConfig,
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            connect_timeout: Duration::from_secs(3),
            keepalive: Duration::from_secs(60),
            tls: BackendTlsConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FailoverConfig {
    /// How long a new connection waits (greeting delayed) while no primary is known.
    #[serde(with = "humantime_serde")]
    pub hold_timeout: Duration,
    /// After the primary changed, how long an open transaction may still
    /// finish on the old primary before it is aborted ("transaction aborted
    /// by failover"). A session that cannot be moved waits for its next
    /// command up to `listen.idle_timeout` (an hour without one) to answer
    /// it with 9005/9006 naming why.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// How long moving one session to a new primary may take in all (its
    /// state read on the old primary, the new login, the carry and its
    /// check); past it the session gets error 9005.
    #[serde(with = "humantime_serde")]
    pub migrate_timeout: Duration,
    /// Keep the ledger of acknowledged commits (docs/ledger.md): backend
    /// logins ask for session tracking, commit OKs are read for their GTID
    /// and the route's moves to another server get a loss report.
    pub ledger: bool,
    /// Recent acknowledged commits kept per primary term (the loss report
    /// lists the missing ones among them).
    pub ledger_capacity: usize,
    /// The gate: after the route moved to another server, sessions wait up
    /// to this long (before their backend connection) until the new primary
    /// applied every commit acknowledged under the old one. Absent = off.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub wait_for_acknowledged: Option<Duration>,
}

impl Default for FailoverConfig {
    fn default() -> Self {
        FailoverConfig {
            hold_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(5),
            migrate_timeout: Duration::from_secs(10),
            ledger: true,
            ledger_capacity: 10_000,
            wait_for_acknowledged: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address of the admin HTTP server (/live /ready /status /metrics); "" disables it.
    pub address: String,
    /// When set, /status requires `Authorization: Bearer <token>` (see
    /// `token_file` / `token_env`; at most one of the three).
    pub token: Secret,
    pub token_file: Option<PathBuf>,
    pub token_env: Option<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            address: "127.0.0.1:9104".into(),
            token: Secret::default(),
            token_file: None,
            token_env: None,
        }
    }
}

impl AdminConfig {
    /// The /status bearer token, if one is configured (files and variables
    /// are read on each call, so a rotated token applies at once).
    pub(crate) fn resolve_token(&self) -> Result<Option<Secret>, ConfigError> {
        secrets::admin_token(
            &self.token,
            self.token_file.as_ref(),
            self.token_env.as_deref(),
        )
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// tracing filter directive, e.g. "info" or "mysql_zk_proxy=debug"; RUST_LOG wins when set.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Command-line values that replace what the file says.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub zk: Option<String>,
    pub primary_path: Option<String>,
    pub admin: Option<String>,
    /// `--read-only-listen`: replaces `read_only.listen`.
    pub read_only_listen: Option<String>,
}

impl Config {
    /// The `[listen.tls]`, `[backend.tls]` and `[zookeeper.tls]` sections,
    /// as [`crate::tls::TlsState`] reads them.
    pub fn tls(&self) -> TlsSections<'_> {
        TlsSections {
            listen: &self.listen.tls,
            backend: &self.backend.tls,
            zookeeper: &self.zookeeper.tls,
        }
    }

    /// Parse TOML text (no validation).
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
    }

    /// Read, parse, apply overrides and validate.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut cfg = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| ConfigError::Read {
                    path: p.to_path_buf(),
                    source: e,
                })?;
                Config::from_toml(&text, p)?
            }
            None => Config::default(),
        };
        cfg.apply(overrides);
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn apply(&mut self, o: &Overrides) {
        if let Some(v) = &o.listen {
            self.listen.address = v.clone();
        }
        if let Some(v) = &o.zk {
            self.zookeeper.connect = v.clone();
        }
        if let Some(v) = &o.primary_path {
            self.zookeeper.primary_path = v.clone();
        }
        if let Some(v) = &o.admin {
            self.admin.address = v.clone();
        }
        if let Some(v) = &o.read_only_listen {
            self.read_only.listen = v.clone();
        }
    }

    /// Check every value before use; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        parse_addr("listen.address", &self.listen.address)?;
        self.listen.validate()?;
        self.shutdown.validate()?;
        self.runtime.validate()?;
        if !self.admin.address.is_empty() {
            parse_addr("admin.address", &self.admin.address)?;
        }
        self.admin.resolve_token()?;
        self.zookeeper.validate()?;
        positive("backend.connect_timeout", self.backend.connect_timeout)?;
        self.backend.tls.validate()?;
        self.validate_failover()?;
        self.read_only.validate(&self.monitor.user)?;
        if self.log.level.trim().is_empty() {
            return Err(invalid("log.level", "must not be empty"));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| invalid("log.level", e.to_string()))?;
        Ok(())
    }

    /// `[monitor]` and `[[users]]`.
    fn validate_failover(&self) -> Result<(), ConfigError> {
        self.monitor.validate()?;
        failover::validate_users(&self.users)
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.listen.address.parse().expect("validated")
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        (!self.admin.address.is_empty()).then(|| self.admin.address.parse().expect("validated"))
    }
}

fn parse_addr(key: &'static str, v: &str) -> Result<SocketAddr, ConfigError> {
    v.parse().map_err(|_| {
        invalid(
            key,
            format!("{v:?} is not an IP:port address (e.g. 127.0.0.1:6033)"),
        )
    })
}

pub(crate) fn positive(key: &'static str, d: Duration) -> Result<(), ConfigError> {
    if d.is_zero() {
        return Err(invalid(key, "must be greater than 0"));
    }
    Ok(())
}

/// A test's check that a validation failed naming `key`.
#[cfg(test)]
pub(crate) fn names_key<E: std::fmt::Display>(result: Result<(), E>, key: &str) {
    match result {
        Ok(()) => panic!("expected an error naming {key}"),
        Err(e) => assert!(e.to_string().contains(key), "{key} not in: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn unknown_key_is_rejected_with_its_name() {
        let e = Config::from_toml("[listen]\nadress = \"x\"\n", Path::new("t.toml")).unwrap_err();
        assert!(e.to_string().contains("adress"), "{e}");
    }

    #[test]
    fn durations_are_humantime() {
        let c =
            Config::from_toml("[failover]\nhold_timeout = \"250ms\"\n", Path::new("t")).unwrap();
        assert_eq!(c.failover.hold_timeout, Duration::from_millis(250));
    }

    #[test]
    fn bad_values_name_the_key() {
        let mut c = Config::default();
        c.zookeeper.primary_path = "relative".into();
        crate::config::names_key(c.validate(), "zookeeper.primary_path");
        let mut c = Config::default();
        c.zookeeper.connect = "a:1,b".into();
        crate::config::names_key(c.validate(), "zookeeper.connect");
        let mut c = Config::default();
        c.zookeeper.connect = "tcp+tls://127.0.0.1:2281".into();
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("zookeeper.connect") && e.contains("zookeeper.tls.enabled"),
            "{e}"
        );
        let mut c = Config::default();
        c.listen.address = "nope".into();
        crate::config::names_key(c.validate(), "listen.address");
    }

    #[test]
    fn connect_string_with_chroot_and_several_servers() {
        let mut c = Config::default();
        c.zookeeper.connect = "127.0.0.1:2181,127.0.0.1:2182/mysql".into();
        c.validate().unwrap();
    }

    #[test]
    fn overrides_win() {
        let mut c = Config::default();
        c.apply(&Overrides {
            listen: Some("127.0.0.1:1".into()),
            zk: Some("h:2".into()),
            primary_path: Some("/p".into()),
            admin: Some("".into()),
            read_only_listen: None,
        });
        c.validate().unwrap();
        assert_eq!(c.zookeeper.connect, "h:2");
        assert!(c.admin_addr().is_none());
    }
}
