//! Command line: `run`, `check-config`, `sandbox`, `publish`, `switchover`
//! and `drill` (clap derive), and the
//! log filter the binary installs (config `log.level`, RUST_LOG wins).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::EnvFilter;

use crate::config::Overrides;
use crate::ops::cli::{PublishArgs, SwitchoverArgs};
use crate::sandbox::cli::SandboxCommand;

/// Exit code of a bad configuration (unreadable file, TOML error, unknown
/// key, invalid value); other fatal errors exit with 1.
pub const EXIT_BAD_CONFIG: u8 = 2;

/// MySQL/MariaDB wire-protocol proxy that routes clients to the primary
/// published in ZooKeeper.
#[derive(Debug, Parser)]
#[command(name = "mysql-zk-proxy", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy until SIGTERM or SIGINT.
    Run(RunArgs),
    /// Load and validate a config file, print the effective config as TOML.
    /// Exits 0 when valid, 2 with the offending key when not.
    CheckConfig(CheckConfigArgs),
    /// Local ZooKeeper + MariaDB cluster for trying the proxy and for tests.
    #[command(subcommand)]
    Sandbox(SandboxCommand),
    /// Write the primary record with compare-and-set, epoch = previous + 1
    /// (never backwards). Exits 0 when written, 1 when not.
    Publish(PublishArgs),
    /// Planned switchover to a GTID replica: drain the proxies, fence,
    /// catch up, promote, repoint, publish. Exits 0 when switched, 1 when
    /// refused, rolled back or failed.
    Switchover(SwitchoverArgs),
    /// Drive a mixed load through a proxy while switching the primary N
    /// times; report what clients saw (summary, JSON, HTML). docs/drill.md.
    Drill(Box<crate::drill::DrillArgs>),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// TOML config file (see config/example.toml); defaults apply without one.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub overrides: OverrideArgs,
}

#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// TOML config file to check.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    #[command(flatten)]
    pub overrides: OverrideArgs,
}

/// Values that replace what the config file says.
#[derive(Debug, Clone, Default, Args)]
pub struct OverrideArgs {
    /// Address clients connect to (`listen.address`).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// ZooKeeper connect string host:port[,host:port][/chroot] (`zookeeper.connect`).
    #[arg(long, value_name = "CONNECT")]
    pub zk: Option<String>,
    /// Znode holding the primary record (`zookeeper.primary_path`).
    #[arg(long, value_name = "PATH")]
    pub primary_path: Option<String>,
    /// Admin HTTP address, "" to disable it (`admin.address`).
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<String>,
}

impl From<OverrideArgs> for Overrides {
    fn from(a: OverrideArgs) -> Self {
        Overrides {
            listen: a.listen,
            zk: a.zk,
            primary_path: a.primary_path,
            admin: a.admin,
        }
    }
}

/// RUST_LOG is set but is not a valid filter.
#[derive(Debug, thiserror::Error)]
#[error("invalid RUST_LOG {value:?}: {problem}")]
pub struct LogFilterError {
    pub value: String,
    pub problem: String,
}

/// The installed log filter. Plain `target=level` lists (the usual case:
/// `info`, `mysql_zk_proxy=debug,warn`) become a [`Targets`] filter, which
/// costs nothing when a span is entered; directives naming spans or fields
/// (`[session{id=7}]=debug`) need an [`EnvFilter`], which looks each entered
/// span up under a lock (every poll of every session).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // built once, at start-up
pub enum LogFilter {
    Targets(Targets),
    Env(EnvFilter),
}

impl LogFilter {
    fn parse(directives: &str) -> Result<LogFilter, String> {
        let is_static = |c: char| c.is_alphanumeric() || "_:=,-. ".contains(c);
        if directives.chars().all(is_static) {
            if let Ok(t) = directives.parse::<Targets>() {
                return Ok(LogFilter::Targets(t));
            }
        }
        EnvFilter::try_new(directives)
            .map(LogFilter::Env)
            .map_err(|e| e.to_string())
    }
}

impl std::fmt::Display for LogFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogFilter::Targets(t) => t.fmt(f),
            LogFilter::Env(e) => e.fmt(f),
        }
    }
}

/// The log filter: `rust_log` (the RUST_LOG variable) when set and not
/// blank, else the config's `log.level` (already validated).
pub fn log_filter(level: &str, rust_log: Option<&str>) -> Result<LogFilter, LogFilterError> {
    match rust_log.filter(|v| !v.trim().is_empty()) {
        Some(v) => LogFilter::parse(v).map_err(|problem| LogFilterError {
            value: v.to_string(),
            problem,
        }),
        None => Ok(LogFilter::parse(level)
            .unwrap_or_else(|_| LogFilter::Targets(Targets::new().with_default(Level::INFO)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_flags_without_a_file() {
        let cli = Cli::try_parse_from([
            "mysql-zk-proxy",
            "run",
            "--listen",
            "127.0.0.1:0",
            "--zk",
            "127.0.0.1:1",
            "--primary-path",
            "/p",
            "--admin",
            "",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run: {cli:?}")
        };
        assert!(args.config.is_none());
        let o = Overrides::from(args.overrides);
        assert_eq!(o.listen.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(o.zk.as_deref(), Some("127.0.0.1:1"));
        assert_eq!(o.primary_path.as_deref(), Some("/p"));
        assert_eq!(o.admin.as_deref(), Some(""));
    }

    #[test]
    fn check_config_requires_a_file() {
        assert!(Cli::try_parse_from(["mysql-zk-proxy", "check-config"]).is_err());
    }

    #[test]
    fn rust_log_wins_when_set_and_must_be_valid() {
        let f = log_filter("info", Some("mysql_zk_proxy=debug")).unwrap();
        assert_eq!(f.to_string(), "mysql_zk_proxy=debug");
        assert_eq!(log_filter("warn", Some(" ")).unwrap().to_string(), "warn");
        assert_eq!(log_filter("warn", None).unwrap().to_string(), "warn");
        let e = log_filter("info", Some("=[")).unwrap_err();
        assert!(e.to_string().contains("RUST_LOG"), "{e}");
    }

    #[test]
    fn plain_level_lists_get_the_lock_free_filter() {
        for plain in [
            "info",
            "mysql_zk_proxy=debug,warn",
            "zookeeper_client=off, info",
        ] {
            let f = log_filter("info", Some(plain)).unwrap();
            assert!(matches!(f, LogFilter::Targets(_)), "{plain}: {f:?}");
        }
        let spans = log_filter("info", Some("[session{id=7}]=debug,info")).unwrap();
        assert!(matches!(spans, LogFilter::Env(_)), "{spans:?}");
        assert!(log_filter("info", Some("mysql_zk_proxy=loud")).is_err());
    }
}
