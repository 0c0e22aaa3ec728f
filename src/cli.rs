//! Command line of the deployed binary: `run`, `check-config`, `publish`
//! and `switchover` (clap derive). The arguments of `publish` and
//! `switchover` belong to the ops crate, which runs them; the failover
//! drill (`mysql-zk-proxy-drill`) and the test bench
//! (`mysql-zk-proxy-sandbox`) are other binaries.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use mysql_zk_proxy_core::config::Overrides;
use mysql_zk_proxy_ops::cli::{PublishArgs, SwitchoverArgs};

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
    /// Write the primary record with compare-and-set, epoch = previous + 1
    /// (never backwards). Exits 0 when written, 1 when not.
    Publish(PublishArgs),
    /// Planned switchover to a GTID replica: drain the proxies, make the old primary read-only,
    /// catch up, promote, repoint, publish. Exits 0 when switched, 1 when
    /// refused, rolled back or failed.
    Switchover(SwitchoverArgs),
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
    /// Address of the read-only listener (replicas), "" to disable it
    /// (`read_only.listen`).
    #[arg(long, value_name = "ADDR")]
    pub read_only_listen: Option<String>,
}

impl From<OverrideArgs> for Overrides {
    fn from(a: OverrideArgs) -> Self {
        Overrides {
            listen: a.listen,
            zk: a.zk,
            primary_path: a.primary_path,
            admin: a.admin,
            read_only_listen: a.read_only_listen,
        }
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
            "--read-only-listen",
            "127.0.0.1:0",
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
        assert_eq!(o.read_only_listen.as_deref(), Some("127.0.0.1:0"));
    }

    #[test]
    fn check_config_requires_a_file() {
        assert!(Cli::try_parse_from(["mysql-zk-proxy", "check-config"]).is_err());
    }
}
